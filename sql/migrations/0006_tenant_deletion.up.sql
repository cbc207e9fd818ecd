-- motomind 0006: deleting a whole tenant on request.
--  * delete_tenant(): the tenant's owner soft-deletes it (from the tenant's
--    context); every member loses access at once. Export first: this is the
--    moment to offer it.
--  * purge_tenant(id): the owner role, in maintenance mode, removes every row
--    of a soft-deleted tenant for good: events and audit entries included.

CREATE OR REPLACE FUNCTION refuse_event_change() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'DELETE' AND (current_setting('motomind.moving_partition', true) = 'on'
      OR OLD.tenant_id::text = current_setting('motomind.purging_tenant', true)) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
    MESSAGE = format('%s are immutable: %s is not allowed%s', TG_TABLE_NAME, TG_OP,
                     CASE WHEN TG_TABLE_NAME LIKE 'vehicle_events%' THEN '; record a correction instead' ELSE '' END),
    TABLE = TG_TABLE_NAME;
END
$fn$;

CREATE FUNCTION delete_tenant() RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
DECLARE t uuid := current_tenant_id();
BEGIN
  IF t IS NULL OR current_tenant_role() IS DISTINCT FROM 'owner' THEN
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', MESSAGE = 'delete_tenant: the tenant''s owners only';
  END IF;
  UPDATE tenants SET deleted_at = now() WHERE id = t;
  RETURN true;
END
$fn$;

CREATE FUNCTION purge_tenant(t uuid) RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  n bigint := 0;
  k bigint;
  tbl text;
BEGIN
  IF NOT in_maintenance() THEN
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', MESSAGE = 'purge_tenant: the owner role, in maintenance mode';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM tenants WHERE id = t AND deleted_at IS NOT NULL) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = format('purge_tenant: tenant %s is not deleted (delete_tenant first)', t);
  END IF;
  PERFORM set_config('motomind.purging_tenant', t::text, true);
  FOREACH tbl IN ARRAY ARRAY['vehicle_event_flags', 'vehicle_event_supersessions', 'vehicle_images',
      'vehicle_events', 'vehicle_event_heads', 'reminders', 'vehicles', 'group_permissions', 'fleet_groups',
      'garages', 'memberships'] LOOP
    EXECUTE format('DELETE FROM %I WHERE tenant_id = $1', tbl) USING t;
    GET DIAGNOSTICS k = ROW_COUNT;
    n := n + k;
  END LOOP;
  DELETE FROM tenants WHERE id = t;
  DELETE FROM audit_log WHERE tenant_id = t;
  PERFORM set_config('motomind.purging_tenant', '', true);
  RETURN n + 1;
END
$fn$;

REVOKE EXECUTE ON FUNCTION delete_tenant(), purge_tenant(uuid) FROM PUBLIC;
DO $do$
BEGIN
  EXECUTE format('GRANT EXECUTE ON FUNCTION delete_tenant() TO %I', (SELECT value FROM settings WHERE key = 'app_role'));
END
$do$;
