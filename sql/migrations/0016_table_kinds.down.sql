-- Undoes 0016: no recorded kinds, no append-only kind (bodies as in 0004
-- and 0010).
DROP VIEW tenant_table_kinds;
DO $do$
DECLARE r record;
BEGIN
  FOR r IN SELECT p.polrelid::regclass AS rel FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
            WHERE c.relnamespace = current_schema()::regnamespace AND p.polname = 'maintenance' LOOP
    EXECUTE format('COMMENT ON POLICY maintenance ON %s IS NULL', r.rel);
  END LOOP;
END
$do$;

CREATE OR REPLACE FUNCTION protect_tenant_table(rel regclass, kind text) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  app text := (SELECT value FROM settings WHERE key = 'app_role');
  per_vehicle boolean := EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = 'vehicle_id'
                                                              AND NOT a.attisdropped);
BEGIN
  PERFORM apply_tenant_policies(rel, kind);
  IF kind = 'mutable' THEN
    IF per_vehicle THEN PERFORM apply_vehicle_write_policies(rel); END IF;
    EXECUTE format('CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION stamp_row()', rel);
    EXECUTE format('CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION audit_row()', rel);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %s TO %I', rel, app);
  ELSE
    EXECUTE format('GRANT SELECT ON %s TO %I', rel, app);
  END IF;
  IF per_vehicle THEN PERFORM apply_live_vehicle_policy(rel); END IF;
END
$fn$;
DROP FUNCTION stamp_created();

CREATE OR REPLACE FUNCTION apply_vehicle_write_policies(rel regclass) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  app text := (SELECT value FROM settings WHERE key = 'app_role');
  rule text := '(tenant_id = (SELECT current_tenant_id()) AND ((SELECT current_tenant_role()) = ''owner'' '
               'OR vehicle_id = ANY ((SELECT writable_vehicle_ids())::uuid[])))';
BEGIN
  EXECUTE format('DROP POLICY IF EXISTS writer_insert ON %s', rel);
  EXECUTE format('DROP POLICY IF EXISTS writer_update ON %s', rel);
  EXECUTE format('CREATE POLICY writer_insert ON %s FOR INSERT TO %I WITH CHECK %s', rel, app, rule);
  EXECUTE format('CREATE POLICY writer_update ON %s FOR UPDATE TO %I USING (deleted_at IS NULL AND %s) WITH CHECK %s',
                 rel, app, rule, rule);
END
$fn$;

CREATE OR REPLACE FUNCTION apply_tenant_policies(rel regclass, kind text) RETURNS void
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
