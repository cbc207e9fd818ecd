-- motomind 0016: every tenant table says what kind of table it is (#10).
--  * apply_tenant_policies records its kind on the table's maintenance
--    policy (COMMENT 'kind: <kind>'), so tenant_table_kinds reads each
--    table's kind from the catalog: the isolation matrix derives what every
--    actor may do from it, and a new table needs no list edited;
--  * a fifth kind, 'append_only': members read, writers insert, nobody
--    updates or deletes (history: AI messages, vision results); its rows
--    are stamped with their author and time by the database.

CREATE OR REPLACE FUNCTION apply_tenant_policies(rel regclass, kind text) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  app text := (SELECT value FROM settings WHERE key = 'app_role');
  owner text := (SELECT value FROM settings WHERE key = 'owner_role');
  tenant text := '(tenant_id = (SELECT current_tenant_id()))';
  writer text := '((SELECT current_tenant_role()) IN (''owner'', ''manager''))';
BEGIN
  IF kind NOT IN ('mutable', 'events', 'append_only', 'derived', 'audit') THEN
    RAISE EXCEPTION 'apply_tenant_policies: unknown kind %', kind;
  END IF;
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', rel);
  EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', rel);
  EXECUTE format('CREATE POLICY maintenance ON %s TO %I USING (in_maintenance()) WITH CHECK (in_maintenance())',
                 rel, owner);
  EXECUTE format('COMMENT ON POLICY maintenance ON %s IS %L', rel, 'kind: ' || kind);
  IF kind = 'mutable' THEN
    EXECUTE format('CREATE POLICY member_read ON %s FOR SELECT TO %I USING (%s AND deleted_at IS NULL)', rel, app, tenant);
    EXECUTE format('CREATE POLICY writer_insert ON %s FOR INSERT TO %I WITH CHECK (%s AND %s)', rel, app, tenant, writer);
    EXECUTE format('CREATE POLICY writer_update ON %s FOR UPDATE TO %I USING (%s AND %s AND deleted_at IS NULL) '
                   'WITH CHECK (%s AND %s)', rel, app, tenant, writer, tenant, writer);
  ELSIF kind IN ('events', 'append_only') THEN
    EXECUTE format('CREATE POLICY member_read ON %s FOR SELECT TO %I USING (%s)', rel, app, tenant);
    EXECUTE format('CREATE POLICY writer_insert ON %s FOR INSERT TO %I WITH CHECK (%s AND %s)', rel, app, tenant, writer);
  ELSIF kind = 'derived' THEN
    EXECUTE format('CREATE POLICY member_read ON %s FOR SELECT TO %I USING (%s)', rel, app, tenant);
  ELSE -- audit
    EXECUTE format('CREATE POLICY writer_read ON %s FOR SELECT TO %I USING (%s AND %s)', rel, app, tenant, writer);
  END IF;
END
$fn$;

-- An append-only row's author and time: the database's, never the client's.
CREATE FUNCTION stamp_created() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  NEW.created_at := now();
  NEW.created_by := current_user_id();
  RETURN NEW;
END
$fn$;

-- The writer policies of a table whose rows belong to a vehicle: owners, or
-- a manager who may write the vehicle (0010's rule); an UPDATE policy only
-- for a table that had one (append-only tables have none).
CREATE OR REPLACE FUNCTION apply_vehicle_write_policies(rel regclass) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  app text := (SELECT value FROM settings WHERE key = 'app_role');
  rule text := '(tenant_id = (SELECT current_tenant_id()) AND ((SELECT current_tenant_role()) = ''owner'' '
               'OR vehicle_id = ANY ((SELECT writable_vehicle_ids())::uuid[])))';
  updates boolean := EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = rel AND polname = 'writer_update');
BEGIN
  EXECUTE format('DROP POLICY IF EXISTS writer_insert ON %s', rel);
  EXECUTE format('CREATE POLICY writer_insert ON %s FOR INSERT TO %I WITH CHECK %s', rel, app, rule);
  IF updates THEN
    EXECUTE format('DROP POLICY writer_update ON %s', rel);
    EXECUTE format('CREATE POLICY writer_update ON %s FOR UPDATE TO %I USING (deleted_at IS NULL AND %s) WITH CHECK %s',
                   rel, app, rule, rule);
  END IF;
END
$fn$;

-- Everything a new tenant table needs, by kind ('mutable', 'append_only' or
-- 'derived', as apply_tenant_policies): its policies; writes per vehicle
-- when rows carry a vehicle_id; for mutable tables the stamp and audit
-- triggers, for append-only ones the creation stamp and the refusal of
-- UPDATE and DELETE; grants; the live-vehicle read policy.
CREATE OR REPLACE FUNCTION protect_tenant_table(rel regclass, kind text) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  app text := (SELECT value FROM settings WHERE key = 'app_role');
  per_vehicle boolean := EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = rel AND a.attname = 'vehicle_id'
                                                              AND NOT a.attisdropped);
BEGIN
  PERFORM apply_tenant_policies(rel, kind);
  IF kind IN ('mutable', 'append_only') AND per_vehicle THEN
    PERFORM apply_vehicle_write_policies(rel);
  END IF;
  IF kind = 'mutable' THEN
    EXECUTE format('CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION stamp_row()', rel);
    EXECUTE format('CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION audit_row()', rel);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %s TO %I', rel, app);
  ELSIF kind = 'append_only' THEN
    EXECUTE format('CREATE TRIGGER stamp BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION stamp_created()', rel);
    EXECUTE format('CREATE TRIGGER append_only BEFORE UPDATE OR DELETE ON %s '
                   'FOR EACH ROW EXECUTE FUNCTION refuse_event_change()', rel);
    EXECUTE format('GRANT SELECT, INSERT ON %s TO %I', rel, app);
  ELSE
    EXECUTE format('GRANT SELECT ON %s TO %I', rel, app);
  END IF;
  IF per_vehicle THEN PERFORM apply_live_vehicle_policy(rel); END IF;
END
$fn$;

-- The kinds of the tables protected before kinds were recorded.
DO $do$
DECLARE r record;
BEGIN
  FOR r IN SELECT c.oid::regclass AS rel, k.kind
             FROM (VALUES ('garages', 'mutable'), ('vehicles', 'mutable'), ('vehicle_images', 'mutable'),
                          ('reminders', 'mutable'), ('reminder_completions', 'mutable'),
                          ('vehicle_events', 'events'), ('audit_log', 'audit'),
                          ('vehicle_event_heads', 'derived'), ('vehicle_event_flags', 'derived'),
                          ('vehicle_event_supersessions', 'derived'), ('vehicle_metrics_monthly', 'derived'),
                          ('vehicle_costs_monthly', 'derived'), ('reminder_occurrences', 'derived'),
                          ('notifications', 'derived')) k (name, kind)
             JOIN pg_class c ON c.relnamespace = current_schema()::regnamespace AND c.relname = k.name LOOP
    EXECUTE format('COMMENT ON POLICY maintenance ON %s IS %L', r.rel, 'kind: ' || r.kind);
  END LOOP;
END
$do$;

-- Each tenant table's kind (NULL: its policies are its own, e.g. fleet
-- groups and grants, which only owners manage).
CREATE VIEW tenant_table_kinds AS
SELECT t.table_name, t.rel, substring(obj_description(p.oid, 'pg_policy') FROM '^kind: (\w+)$') AS kind
  FROM tenant_tables t
  LEFT JOIN pg_policy p ON p.polrelid = t.rel AND p.polname = 'maintenance';

REVOKE EXECUTE ON FUNCTION stamp_created() FROM PUBLIC;
