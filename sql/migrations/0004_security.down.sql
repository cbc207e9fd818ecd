-- Reverts 0004: policies, row-level security, stamping, audit, grants. The
-- application role stays (other schemas may use it).
DO $do$
DECLARE
  r record;
  app text := (SELECT value FROM settings WHERE key = 'app_role');
BEGIN
  FOR r IN SELECT polname, polrelid::regclass AS rel FROM pg_policy
            WHERE polrelid IN (SELECT oid FROM pg_class WHERE relnamespace = current_schema()::regnamespace) LOOP
    EXECUTE format('DROP POLICY %I ON %s', r.polname, r.rel);
  END LOOP;
  FOR r IN SELECT oid::regclass AS rel FROM pg_class
            WHERE relnamespace = current_schema()::regnamespace AND relrowsecurity LOOP
    EXECUTE format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', r.rel);
    EXECUTE format('ALTER TABLE %s DISABLE ROW LEVEL SECURITY', r.rel);
  END LOOP;
  FOR r IN SELECT tgname, tgrelid::regclass AS rel FROM pg_trigger
            WHERE tgname IN ('stamp', 'audit') AND NOT tgisinternal
              AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = current_schema()::regnamespace) LOOP
    EXECUTE format('DROP TRIGGER %I ON %s', r.tgname, r.rel);
  END LOOP;
  EXECUTE format('REVOKE ALL ON ALL TABLES IN SCHEMA %I FROM %I', current_schema(), app);
  EXECUTE format('REVOKE ALL ON ALL FUNCTIONS IN SCHEMA %I FROM %I', current_schema(), app);
  EXECUTE format('REVOKE USAGE ON SCHEMA %I FROM %I', current_schema(), app);
END
$do$;
ALTER FUNCTION check_new_events() SECURITY INVOKER;
ALTER FUNCTION check_new_events() RESET motomind.maintenance;
ALTER FUNCTION ensure_partitions(integer) RESET motomind.maintenance;
ALTER FUNCTION partition_coverage() RESET motomind.maintenance;
DROP FUNCTION protect_event_partition(regclass);
ALTER TABLE vehicle_events ALTER COLUMN created_by DROP DEFAULT;
ALTER VIEW vehicle_events_effective RESET (security_invoker);
ALTER VIEW vehicle_current_mileage RESET (security_invoker);
DROP FUNCTION purge_deleted(text);
DROP FUNCTION set_deleted(text, uuid, boolean);
DROP FUNCTION create_tenant(text, text);
DROP TRIGGER audit_log_append_only ON audit_log;
DROP FUNCTION stamp_row();
DROP FUNCTION audit_row();
DROP FUNCTION apply_tenant_policies(regclass, text);
DROP FUNCTION in_maintenance();
DROP FUNCTION current_tenant_id();
DROP FUNCTION current_tenant_role();
DROP FUNCTION claimed_tenant_id();
DROP FUNCTION current_user_id();
DELETE FROM settings WHERE key IN ('app_role', 'owner_role', 'soft_delete_tables');
DROP TABLE audit_log;
