-- motomind 0009 (issue #11, continued):
--  * imports learn up front which vehicles the session's user cannot write
--    (refused_event_vehicles, from the INSERT policies of vehicle_events), so
--    a viewer's file is refused in one statement, not bisected line by line;
--  * a soft-deleted vehicle's rows (events, flags, metrics, images,
--    reminders, feed rows) are hidden from the application role, by one
--    restrictive policy on every tenant table with a vehicle_id (from the
--    catalog) and by the feed's readers.

-- The application role's rule for inserting into rel, from its policies
-- (OR of the permissive ones), as update_rule does for UPDATE.
-- (Security definer: it reads the settings; the policies are public.)
CREATE FUNCTION insert_rule(rel regclass) RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
  SELECT coalesce(string_agg('(' || pg_get_expr(p.polwithcheck, p.polrelid) || ')', ' OR '), 'false')
    FROM pg_policy p
   WHERE p.polrelid = rel AND p.polcmd IN ('a', '*') AND p.polpermissive AND p.polwithcheck IS NOT NULL
     AND (SELECT oid FROM pg_roles WHERE rolname = (SELECT value FROM settings WHERE key = 'app_role')) = ANY (p.polroles)
$$;

-- Of these vehicles, those the session's user may not add events to, with
-- the reason and its SQLSTATE: not a vehicle of the context tenant (or
-- soft-deleted), or not writable (the INSERT policies of vehicle_events,
-- evaluated once per vehicle). Runs with the caller's rights.
CREATE FUNCTION refused_event_vehicles(ids uuid[])
RETURNS TABLE (vehicle_id uuid, reason text, sqlstate text)
LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $fn$
BEGIN
  RETURN QUERY EXECUTE format($q$
    SELECT w.vehicle_id,
           CASE WHEN v.id IS NULL THEN format('vehicle_id: no vehicle %%s in this tenant', w.vehicle_id)
                ELSE format('vehicle_id: vehicle %%s is not writable by this user', w.vehicle_id) END,
           CASE WHEN v.id IS NULL THEN '23503' ELSE '42501' END
      FROM (SELECT u.vehicle_id, (%s) AS writable
              FROM (SELECT current_tenant_id() AS tenant_id, x AS vehicle_id FROM unnest($1) x) u) w
      LEFT JOIN vehicles v ON v.tenant_id = current_tenant_id() AND v.id = w.vehicle_id AND v.deleted_at IS NULL
     WHERE v.id IS NULL OR NOT w.writable$q$, insert_rule('vehicle_events')) USING ids;
END
$fn$;

-- ---- a soft-deleted vehicle's rows are hidden -------------------------------

-- The context tenant's soft-deleted vehicles (the application role cannot
-- read them itself).
DO $do$
BEGIN
  EXECUTE format($f$
    CREATE FUNCTION %1$s.deleted_vehicle_ids() RETURNS uuid[]
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' SET motomind.maintenance = 'on' AS $$
      SELECT coalesce(array_agg(v.id), '{}') FROM %1$s.vehicles v
       WHERE v.tenant_id = %1$s.current_tenant_id() AND v.deleted_at IS NOT NULL
    $$$f$, quote_ident(current_schema()));
END
$do$;

-- A restrictive read policy: rows of soft-deleted vehicles are not read by
-- the application role (ANDed with the table's own read policies).
CREATE FUNCTION apply_live_vehicle_policy(rel regclass) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  EXECUTE format('DROP POLICY IF EXISTS live_vehicle ON %s', rel);
  EXECUTE format('CREATE POLICY live_vehicle ON %s AS RESTRICTIVE FOR SELECT TO %I '
                 'USING (vehicle_id IS NULL OR NOT (vehicle_id = ANY ((SELECT deleted_vehicle_ids())::uuid[])))',
                 rel, (SELECT value FROM settings WHERE key = 'app_role'));
END
$fn$;

-- Every tenant table with a vehicle_id, and each partition of one.
CREATE VIEW vehicle_scoped_tables AS
SELECT c.oid::regclass AS rel
  FROM tenant_tables t
  JOIN pg_inherits i ON true
  JOIN pg_class c ON c.oid = i.inhrelid
 WHERE i.inhparent = t.rel AND t.table_name <> 'vehicles'
   AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t.rel AND a.attname = 'vehicle_id' AND NOT a.attisdropped)
UNION
SELECT t.rel FROM tenant_tables t
 WHERE t.table_name <> 'vehicles'
   AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = t.rel AND a.attname = 'vehicle_id' AND NOT a.attisdropped);

SELECT apply_live_vehicle_policy(rel) FROM vehicle_scoped_tables;

-- New event partitions get it too (the rest of the body as in 0005).
CREATE OR REPLACE FUNCTION protect_event_partition(rel regclass) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = rel) THEN
    PERFORM apply_tenant_policies(rel, 'events');
    PERFORM apply_event_write_policy(rel);
    PERFORM apply_live_vehicle_policy(rel);
  END IF;
END
$fn$;

-- The feed (a materialized view, refreshed later) hides them at once.
DO $do$
BEGIN
  EXECUTE format($f$
    CREATE OR REPLACE VIEW timeline_feed WITH (security_barrier) AS
    SELECT f.* FROM %I.timeline_feed f WHERE f.tenant_id = (SELECT current_tenant_id())
       AND NOT (f.vehicle_id = ANY ((SELECT deleted_vehicle_ids())::uuid[]))
     ORDER BY f.occurred_at DESC, f.id DESC$f$, current_schema() || '_private');
  EXECUTE format($f$
    CREATE OR REPLACE FUNCTION timeline_feed_page(lim integer DEFAULT 50, before_at timestamptz DEFAULT NULL,
      before_id uuid DEFAULT NULL, vehicle uuid DEFAULT NULL) RETURNS SETOF %1$I.timeline_feed
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
    DECLARE
      tenant uuid := %2$I.current_tenant_id();
      hidden uuid[] := %2$I.deleted_vehicle_ids();
      cur_at timestamptz := coalesce(before_at, 'infinity');
      cur_id uuid := coalesce(before_id, 'ffffffff-ffff-ffff-ffff-ffffffffffff');
    BEGIN
      IF vehicle IS NULL THEN
        RETURN QUERY SELECT f.* FROM %1$I.timeline_feed f
          WHERE f.tenant_id = tenant AND (f.occurred_at, f.id) < (cur_at, cur_id)
            AND NOT (f.vehicle_id = ANY (hidden))
          ORDER BY f.occurred_at DESC, f.id DESC LIMIT lim;
      ELSIF NOT (vehicle = ANY (hidden)) THEN
        RETURN QUERY SELECT f.* FROM %1$I.timeline_feed f
          WHERE f.tenant_id = tenant AND f.vehicle_id = vehicle AND (f.occurred_at, f.id) < (cur_at, cur_id)
          ORDER BY f.occurred_at DESC, f.id DESC LIMIT lim;
      END IF;
    END
    $$$f$, current_schema() || '_private', current_schema());
END
$do$;

REVOKE EXECUTE ON FUNCTION insert_rule(regclass), apply_live_vehicle_policy(regclass),
  deleted_vehicle_ids() FROM PUBLIC;
DO $do$
DECLARE app text := (SELECT value FROM settings WHERE key = 'app_role');
BEGIN
  EXECUTE format('GRANT EXECUTE ON FUNCTION deleted_vehicle_ids(), insert_rule(regclass), '
                 'refused_event_vehicles(uuid[]) TO %I', app);
END
$do$;
