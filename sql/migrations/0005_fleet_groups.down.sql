-- Reverts 0005: fleet groups and group permissions; vehicles and events go
-- back to the tenant-wide writer rule of 0004.
UPDATE settings SET value = 'garages,vehicles,vehicle_images,reminders' WHERE key = 'soft_delete_tables';
CREATE OR REPLACE FUNCTION protect_event_partition(rel regclass) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = rel) THEN
    PERFORM apply_tenant_policies(rel, 'events');
  END IF;
END
$fn$;
DO $do$
DECLARE
  r record;
  app text := (SELECT value FROM settings WHERE key = 'app_role');
  writer text := '((SELECT current_tenant_role()) IN (''owner'', ''manager''))';
BEGIN
  FOR r IN SELECT c.oid::regclass AS rel FROM pg_class c
            WHERE c.oid IN ('vehicles'::regclass, 'vehicle_images'::regclass, 'reminders'::regclass) LOOP
    EXECUTE format('DROP POLICY writer_insert ON %s', r.rel);
    EXECUTE format('DROP POLICY writer_update ON %s', r.rel);
    EXECUTE format('CREATE POLICY writer_insert ON %s FOR INSERT TO %I WITH CHECK '
                   '(tenant_id = (SELECT current_tenant_id()) AND %s)', r.rel, app, writer);
    EXECUTE format('CREATE POLICY writer_update ON %s FOR UPDATE TO %I USING (tenant_id = (SELECT current_tenant_id()) '
                   'AND %s AND deleted_at IS NULL) WITH CHECK (tenant_id = (SELECT current_tenant_id()) AND %s)',
                   r.rel, app, writer, writer);
  END LOOP;
  FOR r IN SELECT c.oid::regclass AS rel FROM pg_class c WHERE c.oid = 'vehicle_events'::regclass
              OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'vehicle_events'::regclass) LOOP
    EXECUTE format('DROP POLICY writer_insert ON %s', r.rel);
    EXECUTE format('CREATE POLICY writer_insert ON %s FOR INSERT TO %I WITH CHECK '
                   '(tenant_id = (SELECT current_tenant_id()) AND %s)', r.rel, app, writer);
  END LOOP;
END
$do$;
DROP FUNCTION apply_event_write_policy(regclass);
DROP INDEX vehicles_group_idx;
ALTER TABLE vehicles DROP COLUMN group_id;
DROP TABLE group_permissions;
DROP TABLE fleet_groups;
DROP FUNCTION writable_vehicle_ids();
DROP FUNCTION group_ids_with(text);
DROP FUNCTION check_group_tree();
