-- motomind 0004: tenancy enforced by the database.
--  * Applications connect as a role that owns nothing and has no BYPASSRLS
--    (motomind.app_role at migration time, default motomind_app). It may not
--    UPDATE/DELETE/TRUNCATE events, nor change the schema.
--  * The session context (motomind.tenant_id, motomind.user_id, set per
--    transaction) is checked against memberships: a made-up tenant id yields
--    nothing. Roles decide writes: owner and manager write, viewer reads.
--  * Row-level security is enabled and FORCED on every tenant-scoped table and
--    partition. The owner role (the one running migrations) sees rows only in
--    maintenance mode (motomind.maintenance = on, set by motomind's own
--    maintenance functions), so even the owner cannot mix tenants by accident.
--  * Soft-deleted rows are invisible; restore and purge go through functions.
--  * Every change to a mutable table lands in the append-only audit_log, with
--    the actor from the session context (never from the row).

CREATE TABLE audit_log (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  tenant_id   uuid,
  table_name  text NOT NULL,
  record_id   uuid NOT NULL,
  operation   text NOT NULL CHECK (operation IN ('insert', 'update', 'soft_delete', 'restore', 'delete')),
  old_values  jsonb,
  new_values  jsonb,
  actor       uuid,
  request_id  text,
  at          timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX audit_log_record_idx ON audit_log (tenant_id, table_name, record_id, id);

INSERT INTO settings VALUES
  ('soft_delete_tables', 'garages,vehicles,vehicle_images,reminders'),
  ('app_role', coalesce(nullif(current_setting('motomind.app_role', true), ''), 'motomind_app')),
  ('owner_role', current_user);

DO $do$
DECLARE
  s text := quote_ident(current_schema());
  app text := (SELECT value FROM settings WHERE key = 'app_role');
  owner text := current_user;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = app) THEN
    EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE', app);
  END IF;

  -- The session context. SECURITY DEFINER (memberships is itself protected),
  -- an empty search_path, and maintenance mode inside so the owner's
  -- policies let them read memberships.
  EXECUTE format($f$
    -- Who and which tenant the session claims to be (the Supabase set
    -- replaces these two to read its JWT claims as well).
    CREATE FUNCTION %1$s.current_user_id() RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
      SELECT nullif(current_setting('motomind.user_id', true), '')::uuid
    $$;
    CREATE FUNCTION %1$s.claimed_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
      SELECT nullif(current_setting('motomind.tenant_id', true), '')::uuid
    $$;
    -- The session user's role in the claimed tenant, when they are a live
    -- member of it; and that tenant, only then.
    CREATE FUNCTION %1$s.current_tenant_role() RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' SET motomind.maintenance = 'on' AS $$
      SELECT m.role FROM %1$s.memberships m JOIN %1$s.tenants t ON t.id = m.tenant_id
       WHERE m.tenant_id = %1$s.claimed_tenant_id() AND m.user_id = %1$s.current_user_id()
         AND m.deleted_at IS NULL AND t.deleted_at IS NULL
    $$;
    CREATE FUNCTION %1$s.current_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
      SELECT CASE WHEN %1$s.current_tenant_role() IS NOT NULL THEN %1$s.claimed_tenant_id() END
    $$;
    CREATE FUNCTION %1$s.in_maintenance() RETURNS boolean
    LANGUAGE sql STABLE AS $$ SELECT current_setting('motomind.maintenance', true) = 'on' $$;
  $f$, s);

  EXECUTE format('GRANT USAGE ON SCHEMA %s TO %I', s, app);
  EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %s FROM PUBLIC', s);
  EXECUTE format('GRANT SELECT ON settings TO %I', app);
  EXECUTE format('GRANT SELECT, INSERT, UPDATE ON tenants, users, memberships, garages, vehicles, '
                 'vehicle_images, reminders TO %I', app);
  EXECUTE format('GRANT SELECT, INSERT ON vehicle_events TO %I', app);
  EXECUTE format('GRANT SELECT ON vehicle_event_heads, vehicle_event_flags, vehicle_event_supersessions, '
                 'audit_log, vehicle_events_effective, vehicle_current_mileage TO %I', app);
END
$do$;

-- Views read with the reader's rights, so their tables' policies apply.
ALTER VIEW vehicle_events_effective SET (security_invoker = true);
ALTER VIEW vehicle_current_mileage SET (security_invoker = true);

-- The standard policies of a tenant-scoped table (or partition):
--   kind 'mutable': members read live rows; owners and managers insert and
--     update (soft delete included); no hard delete (purge_deleted).
--   kind 'events': members read; owners and managers insert.
--   kind 'derived': members read (written by motomind's own triggers).
--   kind 'audit': owners and managers read.
CREATE FUNCTION apply_tenant_policies(rel regclass, kind text) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  app text := (SELECT value FROM settings WHERE key = 'app_role');
  owner text := (SELECT value FROM settings WHERE key = 'owner_role');
  tenant text := '(tenant_id = (SELECT current_tenant_id()))';
  writer text := '((SELECT current_tenant_role()) IN (''owner'', ''manager''))';
BEGIN
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', rel);
  EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', rel);
  EXECUTE format('CREATE POLICY maintenance ON %s TO %I USING (in_maintenance()) WITH CHECK (in_maintenance())',
                 rel, owner);
  IF kind = 'mutable' THEN
    EXECUTE format('CREATE POLICY member_read ON %s FOR SELECT TO %I USING (%s AND deleted_at IS NULL)', rel, app, tenant);
    EXECUTE format('CREATE POLICY writer_insert ON %s FOR INSERT TO %I WITH CHECK (%s AND %s)', rel, app, tenant, writer);
    EXECUTE format('CREATE POLICY writer_update ON %s FOR UPDATE TO %I USING (%s AND %s AND deleted_at IS NULL) '
                   'WITH CHECK (%s AND %s)', rel, app, tenant, writer, tenant, writer);
  ELSIF kind = 'events' THEN
    EXECUTE format('CREATE POLICY member_read ON %s FOR SELECT TO %I USING (%s)', rel, app, tenant);
    EXECUTE format('CREATE POLICY writer_insert ON %s FOR INSERT TO %I WITH CHECK (%s AND %s)', rel, app, tenant, writer);
  ELSIF kind = 'derived' THEN
    EXECUTE format('CREATE POLICY member_read ON %s FOR SELECT TO %I USING (%s)', rel, app, tenant);
  ELSIF kind = 'audit' THEN
    EXECUTE format('CREATE POLICY writer_read ON %s FOR SELECT TO %I USING (%s AND %s)', rel, app, tenant, writer);
  ELSE
    RAISE EXCEPTION 'apply_tenant_policies: unknown kind %', kind;
  END IF;
END
$fn$;

SELECT apply_tenant_policies(t::regclass, 'mutable')
  FROM unnest(ARRAY['garages', 'vehicles', 'vehicle_images', 'reminders']) t;
SELECT apply_tenant_policies(t::regclass, 'derived')
  FROM unnest(ARRAY['vehicle_event_heads', 'vehicle_event_flags', 'vehicle_event_supersessions']) t;
SELECT apply_tenant_policies('audit_log', 'audit');
SELECT apply_tenant_policies(c.oid::regclass, 'events')
  FROM pg_class c WHERE c.oid = 'vehicle_events'::regclass
     OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'vehicle_events'::regclass);

-- The roots: tenants (their own row; owners update), users (themselves and
-- the members of their tenant; each updates themselves), memberships
-- (members read; owners manage).
DO $do$
DECLARE
  app text := (SELECT value FROM settings WHERE key = 'app_role');
  owner text := (SELECT value FROM settings WHERE key = 'owner_role');
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['tenants', 'users', 'memberships'] LOOP
    EXECUTE format('ALTER TABLE %I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE %I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('CREATE POLICY maintenance ON %I TO %I USING (in_maintenance()) WITH CHECK (in_maintenance())', t, owner);
  END LOOP;
  EXECUTE format('CREATE POLICY member_read ON tenants FOR SELECT TO %I '
                 'USING (id = (SELECT current_tenant_id()) AND deleted_at IS NULL)', app);
  EXECUTE format('CREATE POLICY owner_update ON tenants FOR UPDATE TO %I '
                 'USING (id = (SELECT current_tenant_id()) AND (SELECT current_tenant_role()) = ''owner'') '
                 'WITH CHECK (id = (SELECT current_tenant_id()))', app);
  EXECUTE format('CREATE POLICY member_read ON users FOR SELECT TO %I USING (deleted_at IS NULL AND '
                 '(id = (SELECT current_user_id()) OR id IN (SELECT m.user_id FROM memberships m)))', app);
  EXECUTE format('CREATE POLICY self_update ON users FOR UPDATE TO %I '
                 'USING (id = (SELECT current_user_id()) AND deleted_at IS NULL) '
                 'WITH CHECK (id = (SELECT current_user_id()))', app);
  EXECUTE format('CREATE POLICY member_read ON memberships FOR SELECT TO %I '
                 'USING (tenant_id = (SELECT current_tenant_id()) AND deleted_at IS NULL)', app);
  EXECUTE format('CREATE POLICY owner_insert ON memberships FOR INSERT TO %I '
                 'WITH CHECK (tenant_id = (SELECT current_tenant_id()) AND (SELECT current_tenant_role()) = ''owner'')', app);
  EXECUTE format('CREATE POLICY owner_update ON memberships FOR UPDATE TO %I '
                 'USING (tenant_id = (SELECT current_tenant_id()) AND (SELECT current_tenant_role()) = ''owner'' '
                 'AND deleted_at IS NULL) WITH CHECK (tenant_id = (SELECT current_tenant_id()))', app);
END
$do$;

-- Audit columns and the audit log, from the session context. Runs as the
-- owner (the app cannot write audit_log), in maintenance mode. A record is
-- named by its id (a membership by its user, a group grant by its group).
CREATE FUNCTION audit_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
DECLARE
  op text := lower(TG_OP);
  j jsonb := to_jsonb(CASE WHEN TG_OP = 'DELETE' THEN OLD ELSE NEW END);
BEGIN
  IF TG_OP = 'UPDATE' THEN
    IF OLD.deleted_at IS NULL AND NEW.deleted_at IS NOT NULL THEN op := 'soft_delete';
    ELSIF OLD.deleted_at IS NOT NULL AND NEW.deleted_at IS NULL THEN op := 'restore';
    END IF;
  END IF;
  INSERT INTO audit_log (tenant_id, table_name, record_id, operation, old_values, new_values, actor, request_id)
  VALUES (CASE TG_TABLE_NAME WHEN 'tenants' THEN (j ->> 'id')::uuid WHEN 'users' THEN current_tenant_id()
               ELSE (j ->> 'tenant_id')::uuid END,
          TG_TABLE_NAME,
          (j ->> CASE TG_TABLE_NAME WHEN 'memberships' THEN 'user_id' WHEN 'group_permissions' THEN 'group_id'
                                    ELSE 'id' END)::uuid,
          op, CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END, CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END,
          current_user_id(), nullif(current_setting('motomind.request_id', true), ''));
  RETURN NULL;
END
$fn$;

-- created_by/updated_by/deleted_by come from the session context; created_*
-- never change.
CREATE FUNCTION stamp_row() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  actor uuid := current_user_id();
BEGIN
  IF TG_OP = 'INSERT' THEN
    NEW.created_at := now(); NEW.created_by := actor;
    NEW.updated_at := now(); NEW.updated_by := actor;
    NEW.deleted_at := NULL; NEW.deleted_by := NULL;
  ELSE
    NEW.created_at := OLD.created_at; NEW.created_by := OLD.created_by;
    NEW.updated_at := now(); NEW.updated_by := actor;
    IF NEW.deleted_at IS NOT NULL AND OLD.deleted_at IS NULL THEN
      NEW.deleted_at := now(); NEW.deleted_by := actor;
    ELSIF NEW.deleted_at IS NULL THEN
      NEW.deleted_by := NULL;
    ELSE
      NEW.deleted_at := OLD.deleted_at; NEW.deleted_by := OLD.deleted_by;
    END IF;
  END IF;
  RETURN NEW;
END
$fn$;

DO $do$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['tenants', 'users', 'memberships', 'garages', 'vehicles', 'vehicle_images', 'reminders'] LOOP
    EXECUTE format('CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON %I FOR EACH ROW EXECUTE FUNCTION stamp_row()', t);
    EXECUTE format('CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON %I FOR EACH ROW EXECUTE FUNCTION audit_row()', t);
  END LOOP;
END
$do$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
  FOR EACH ROW EXECUTE FUNCTION refuse_event_change();

-- Events: created_by is the session's user.
ALTER TABLE vehicle_events ALTER COLUMN created_by SET DEFAULT nullif(current_setting('motomind.user_id', true), '')::uuid;

-- The timeline's own writes (heads, supersessions, flags) run as the owner.
ALTER FUNCTION check_new_events() SECURITY DEFINER;
ALTER FUNCTION check_new_events() SET motomind.maintenance = 'on';
ALTER FUNCTION ensure_partitions(integer) SET motomind.maintenance = 'on';
ALTER FUNCTION partition_coverage() SET motomind.maintenance = 'on';

-- New partitions get the events' policies too (called by add_event_triggers).
CREATE FUNCTION protect_event_partition(rel regclass) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = rel) THEN
    PERFORM apply_tenant_policies(rel, 'events');
  END IF;
END
$fn$;

-- A tenant, with the calling user as its owner.
CREATE FUNCTION create_tenant(name text, kind text DEFAULT 'solo') RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
DECLARE
  uid uuid := current_user_id();
  tid uuid;
BEGIN
  IF uid IS NULL OR NOT EXISTS (SELECT 1 FROM users WHERE id = uid AND deleted_at IS NULL) THEN
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', MESSAGE = 'create_tenant: no user in the session context';
  END IF;
  INSERT INTO tenants (name, kind) VALUES (name, kind) RETURNING id INTO tid;
  INSERT INTO memberships (tenant_id, user_id, role) VALUES (tid, uid, 'owner');
  RETURN tid;
END
$fn$;

-- Soft-deletes (deleted = true) or restores a row of the context tenant;
-- owners and managers. (A plain UPDATE cannot: the new row of an UPDATE must
-- stay visible to its writer, and soft-deleted rows are not.) The stamp and
-- audit triggers record who did it.
CREATE FUNCTION set_deleted(tbl text, row_id uuid, deleted boolean) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
DECLARE n bigint;
BEGIN
  IF tbl NOT IN (SELECT unnest(string_to_array((SELECT value FROM settings WHERE key = 'soft_delete_tables'), ','))) THEN
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format('%s has no soft delete', tbl);
  END IF;
  IF current_tenant_role() IS DISTINCT FROM 'owner' AND current_tenant_role() IS DISTINCT FROM 'manager' THEN
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', MESSAGE = 'soft delete and restore: owners and managers only';
  END IF;
  EXECUTE format('UPDATE %I SET deleted_at = CASE WHEN $3 THEN now() END WHERE tenant_id = $1 AND id = $2 '
                 'AND (deleted_at IS NULL) = $3', tbl)
    USING current_tenant_id(), row_id, deleted;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n > 0;
END
$fn$;

-- Hard-deletes the context tenant's soft-deleted rows of a table (owners only).
CREATE FUNCTION purge_deleted(tbl text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
DECLARE n bigint;
BEGIN
  IF tbl NOT IN (SELECT unnest(string_to_array((SELECT value FROM settings WHERE key = 'soft_delete_tables'), ','))) THEN
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format('purge: %s has no soft delete', tbl);
  END IF;
  IF current_tenant_role() IS DISTINCT FROM 'owner' THEN
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', MESSAGE = 'purge: owners only';
  END IF;
  EXECUTE format('DELETE FROM %I WHERE tenant_id = $1 AND deleted_at IS NOT NULL', tbl) USING current_tenant_id();
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$fn$;

-- SECURITY DEFINER functions: the app role only, never PUBLIC.
DO $do$
DECLARE app text := (SELECT value FROM settings WHERE key = 'app_role');
BEGIN
  REVOKE EXECUTE ON FUNCTION create_tenant(text, text), set_deleted(text, uuid, boolean), purge_deleted(text),
    current_tenant_id(), current_user_id(), claimed_tenant_id(), current_tenant_role(), audit_row(),
    check_new_events() FROM PUBLIC;
  EXECUTE format('GRANT EXECUTE ON FUNCTION create_tenant(text, text), set_deleted(text, uuid, boolean), '
                 'purge_deleted(text), current_tenant_id(), current_user_id(), claimed_tenant_id(), '
                 'current_tenant_role() TO %I', app);
END
$do$;
