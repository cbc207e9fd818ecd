-- motomind 0005: fleet groups, a tree per tenant (region > hub > team), and
-- per-group permissions inherited down the tree.
--  * owners write everything in their tenant;
--  * managers write vehicles outside any group, and grouped vehicles (with
--    their events, images and reminders) only under a group where they hold
--    a write or admin grant (on it or an ancestor);
--  * admin grants also let a manager shape the tree and grant below;
--  * viewers write nothing; every member reads the tenant.

CREATE TEMP TABLE audit_columns (
  created_at  timestamptz NOT NULL DEFAULT now(),
  created_by  uuid,
  updated_at  timestamptz NOT NULL DEFAULT now(),
  updated_by  uuid,
  deleted_at  timestamptz,
  deleted_by  uuid
) ON COMMIT DROP;

CREATE TABLE fleet_groups (
  tenant_id  uuid NOT NULL REFERENCES tenants (id),
  id         uuid NOT NULL DEFAULT gen_random_uuid(),
  parent_id  uuid,
  name       text NOT NULL CHECK (btrim(name) <> ''),
  kind       text CHECK (btrim(kind) <> ''),
  LIKE audit_columns INCLUDING DEFAULTS,
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, parent_id) REFERENCES fleet_groups (tenant_id, id),
  CHECK (parent_id <> id)
);
COMMENT ON COLUMN fleet_groups.kind IS 'free text: region, hub, team, department, ...';
CREATE UNIQUE INDEX fleet_groups_name_key ON fleet_groups
  (tenant_id, coalesce(parent_id, '00000000-0000-0000-0000-000000000000'), lower(name)) WHERE deleted_at IS NULL;
CREATE INDEX fleet_groups_parent_idx ON fleet_groups (tenant_id, parent_id);

CREATE TABLE group_permissions (
  tenant_id  uuid NOT NULL,
  group_id   uuid NOT NULL,
  user_id    uuid NOT NULL,
  level      text NOT NULL CHECK (level IN ('read', 'write', 'admin')),
  LIKE audit_columns INCLUDING DEFAULTS,
  PRIMARY KEY (tenant_id, group_id, user_id),
  FOREIGN KEY (tenant_id, group_id) REFERENCES fleet_groups (tenant_id, id),
  FOREIGN KEY (tenant_id, user_id) REFERENCES memberships (tenant_id, user_id)
);
CREATE INDEX group_permissions_user_idx ON group_permissions (tenant_id, user_id) WHERE deleted_at IS NULL;

ALTER TABLE vehicles ADD COLUMN group_id uuid,
  ADD FOREIGN KEY (tenant_id, group_id) REFERENCES fleet_groups (tenant_id, id);
CREATE INDEX vehicles_group_idx ON vehicles (tenant_id, group_id) WHERE deleted_at IS NULL;

-- No cycles: a group may not become its own ancestor. Tree changes of a
-- tenant are serialized, so two concurrent moves cannot build a cycle.
CREATE FUNCTION check_group_tree() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
BEGIN
  IF NEW.parent_id IS NULL THEN RETURN NEW; END IF;
  PERFORM pg_advisory_xact_lock(hashtext('motomind.groups:' || NEW.tenant_id));
  IF EXISTS (
    WITH RECURSIVE up AS (
      SELECT g.id, g.parent_id, 1 AS depth FROM fleet_groups g
       WHERE g.tenant_id = NEW.tenant_id AND g.id = NEW.parent_id
      UNION ALL
      SELECT g.id, g.parent_id, up.depth + 1 FROM fleet_groups g JOIN up ON g.id = up.parent_id
       WHERE g.tenant_id = NEW.tenant_id AND up.depth < 1000)
    SELECT 1 FROM up WHERE up.id = NEW.id) THEN
    RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'fleet_groups_no_cycle',
      MESSAGE = format('parent_id: group %s cannot be moved under its own descendant %s', NEW.id, NEW.parent_id);
  END IF;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER no_cycle BEFORE INSERT OR UPDATE OF parent_id ON fleet_groups
  FOR EACH ROW EXECUTE FUNCTION check_group_tree();

-- The groups (with all their descendants) where the context user holds at
-- least `min_level` ('read' < 'write' < 'admin'). Computed once per
-- statement when policies call it as (SELECT group_ids_with('write')).
DO $do$
DECLARE s text := quote_ident(current_schema());
BEGIN
  EXECUTE format($f$
    CREATE FUNCTION %1$s.group_ids_with(min_level text) RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' SET motomind.maintenance = 'on' AS $$
      WITH RECURSIVE granted AS (
        SELECT p.group_id AS id FROM %1$s.group_permissions p
         WHERE p.tenant_id = %1$s.current_tenant_id() AND p.user_id = %1$s.current_user_id()
           AND p.deleted_at IS NULL
           AND array_position(ARRAY['read', 'write', 'admin'], p.level)
               >= array_position(ARRAY['read', 'write', 'admin'], min_level)
        UNION
        SELECT g.id FROM %1$s.fleet_groups g JOIN granted ON g.parent_id = granted.id
         WHERE g.tenant_id = %1$s.current_tenant_id() AND g.deleted_at IS NULL)
      SELECT coalesce(array_agg(id), '{}') FROM granted
    $$;
    -- May the context user write this vehicle (and its events, images,
    -- reminders)? Owners: always; managers: ungrouped vehicles, or under a
    -- write grant.
    CREATE FUNCTION %1$s.writable_vehicle_ids() RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' SET motomind.maintenance = 'on' AS $$
      SELECT coalesce(array_agg(v.id), '{}') FROM %1$s.vehicles v
       WHERE v.tenant_id = %1$s.current_tenant_id() AND v.deleted_at IS NULL
         AND (%1$s.current_tenant_role() = 'owner'
              OR (%1$s.current_tenant_role() = 'manager'
                  AND (v.group_id IS NULL OR v.group_id = ANY (%1$s.group_ids_with('write')))))
    $$;
  $f$, s);
END
$do$;

SELECT apply_tenant_policies(t::regclass, 'mutable') FROM unnest(ARRAY['fleet_groups', 'group_permissions']) t;

-- Groups and grants: owners anywhere; managers with an admin grant below it.
DO $do$
DECLARE
  app text := (SELECT value FROM settings WHERE key = 'app_role');
  owner_or_admin text := '((SELECT current_tenant_role()) = ''owner'' OR ((SELECT current_tenant_role()) = ''manager'' '
                         'AND %s = ANY ((SELECT group_ids_with(''admin''))::uuid[])))';
  tbl text;
  col text;
BEGIN
  FOREACH tbl IN ARRAY ARRAY['fleet_groups', 'group_permissions'] LOOP
    col := CASE tbl WHEN 'fleet_groups' THEN 'coalesce(parent_id, id)' ELSE 'group_id' END;
    EXECUTE format('DROP POLICY writer_insert ON %I', tbl);
    EXECUTE format('DROP POLICY writer_update ON %I', tbl);
    EXECUTE format('CREATE POLICY writer_insert ON %I FOR INSERT TO %I WITH CHECK '
                   '(tenant_id = (SELECT current_tenant_id()) AND ' || owner_or_admin || ')', tbl, app, col);
    EXECUTE format('CREATE POLICY writer_update ON %I FOR UPDATE TO %I USING '
                   '(tenant_id = (SELECT current_tenant_id()) AND deleted_at IS NULL AND ' || owner_or_admin || ') '
                   'WITH CHECK (tenant_id = (SELECT current_tenant_id()) AND ' || owner_or_admin || ')', tbl, app, col, col);
  END LOOP;

  -- Vehicles and what hangs off them: the writer rule becomes per vehicle.
  EXECUTE format('DROP POLICY writer_insert ON vehicles');
  EXECUTE format('DROP POLICY writer_update ON vehicles');
  EXECUTE format('CREATE POLICY writer_insert ON vehicles FOR INSERT TO %I WITH CHECK (tenant_id = (SELECT current_tenant_id()) '
                 'AND ((SELECT current_tenant_role()) = ''owner'' OR ((SELECT current_tenant_role()) = ''manager'' '
                 'AND (group_id IS NULL OR group_id = ANY ((SELECT group_ids_with(''write''))::uuid[])))))', app);
  EXECUTE format('CREATE POLICY writer_update ON vehicles FOR UPDATE TO %I '
                 'USING (tenant_id = (SELECT current_tenant_id()) AND deleted_at IS NULL '
                 'AND id = ANY ((SELECT writable_vehicle_ids())::uuid[])) '
                 'WITH CHECK (tenant_id = (SELECT current_tenant_id()) AND ((SELECT current_tenant_role()) = ''owner'' '
                 'OR ((SELECT current_tenant_role()) = ''manager'' '
                 'AND (group_id IS NULL OR group_id = ANY ((SELECT group_ids_with(''write''))::uuid[])))))', app);
  FOREACH tbl IN ARRAY ARRAY['vehicle_images', 'reminders'] LOOP
    EXECUTE format('DROP POLICY writer_insert ON %I', tbl);
    EXECUTE format('DROP POLICY writer_update ON %I', tbl);
    EXECUTE format('CREATE POLICY writer_insert ON %I FOR INSERT TO %I WITH CHECK (tenant_id = (SELECT current_tenant_id()) '
                   'AND ((SELECT current_tenant_role()) = ''owner'' OR vehicle_id = ANY ((SELECT writable_vehicle_ids())::uuid[])))', tbl, app);
    EXECUTE format('CREATE POLICY writer_update ON %I FOR UPDATE TO %I USING (tenant_id = (SELECT current_tenant_id()) '
                   'AND deleted_at IS NULL AND ((SELECT current_tenant_role()) = ''owner'' '
                   'OR vehicle_id = ANY ((SELECT writable_vehicle_ids())::uuid[]))) '
                   'WITH CHECK (tenant_id = (SELECT current_tenant_id()) AND ((SELECT current_tenant_role()) = ''owner'' '
                   'OR vehicle_id = ANY ((SELECT writable_vehicle_ids())::uuid[])))', tbl, app);
  END LOOP;
END
$do$;

-- Events (parent and every partition): owners, or the vehicle is writable.
CREATE FUNCTION apply_event_write_policy(rel regclass) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE app text := (SELECT value FROM settings WHERE key = 'app_role');
BEGIN
  EXECUTE format('DROP POLICY IF EXISTS writer_insert ON %s', rel);
  EXECUTE format('CREATE POLICY writer_insert ON %s FOR INSERT TO %I WITH CHECK (tenant_id = (SELECT current_tenant_id()) '
                 'AND ((SELECT current_tenant_role()) = ''owner'' OR vehicle_id = ANY ((SELECT writable_vehicle_ids())::uuid[])))',
                 rel, app);
END
$fn$;
SELECT apply_event_write_policy(c.oid::regclass) FROM pg_class c
 WHERE c.oid = 'vehicle_events'::regclass
    OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'vehicle_events'::regclass);

CREATE OR REPLACE FUNCTION protect_event_partition(rel regclass) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = rel) THEN
    PERFORM apply_tenant_policies(rel, 'events');
    PERFORM apply_event_write_policy(rel);
  END IF;
END
$fn$;

DO $do$
DECLARE t text;
  app text := (SELECT value FROM settings WHERE key = 'app_role');
BEGIN
  FOREACH t IN ARRAY ARRAY['fleet_groups', 'group_permissions'] LOOP
    EXECUTE format('CREATE TRIGGER stamp BEFORE INSERT OR UPDATE ON %I FOR EACH ROW EXECUTE FUNCTION stamp_row()', t);
    EXECUTE format('CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON %I FOR EACH ROW EXECUTE FUNCTION audit_row()', t);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE ON %I TO %I', t, app);
  END LOOP;
  REVOKE EXECUTE ON FUNCTION group_ids_with(text), writable_vehicle_ids(), check_group_tree() FROM PUBLIC;
  EXECUTE format('GRANT EXECUTE ON FUNCTION group_ids_with(text), writable_vehicle_ids() TO %I', app);
END
$do$;

UPDATE settings SET value = value || ',fleet_groups,group_permissions' WHERE key = 'soft_delete_tables';
