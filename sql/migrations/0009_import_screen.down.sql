-- Undoes 0009: the feed's readers, protect_event_partition and the event
-- policies as 0005/0007 left them.
DO $do$
BEGIN
  EXECUTE format($f$
    CREATE OR REPLACE VIEW timeline_feed WITH (security_barrier) AS
    SELECT f.* FROM %I.timeline_feed f WHERE f.tenant_id = (SELECT current_tenant_id())
     ORDER BY f.occurred_at DESC, f.id DESC$f$, current_schema() || '_private');
  EXECUTE format($f$
    CREATE OR REPLACE FUNCTION timeline_feed_page(lim integer DEFAULT 50, before_at timestamptz DEFAULT NULL,
      before_id uuid DEFAULT NULL, vehicle uuid DEFAULT NULL) RETURNS SETOF %1$I.timeline_feed
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$
    DECLARE
      tenant uuid := %2$I.current_tenant_id();
      cur_at timestamptz := coalesce(before_at, 'infinity');
      cur_id uuid := coalesce(before_id, 'ffffffff-ffff-ffff-ffff-ffffffffffff');
    BEGIN
      IF vehicle IS NULL THEN
        RETURN QUERY SELECT f.* FROM %1$I.timeline_feed f
          WHERE f.tenant_id = tenant AND (f.occurred_at, f.id) < (cur_at, cur_id)
          ORDER BY f.occurred_at DESC, f.id DESC LIMIT lim;
      ELSE
        RETURN QUERY SELECT f.* FROM %1$I.timeline_feed f
          WHERE f.tenant_id = tenant AND f.vehicle_id = vehicle AND (f.occurred_at, f.id) < (cur_at, cur_id)
          ORDER BY f.occurred_at DESC, f.id DESC LIMIT lim;
      END IF;
    END
    $$$f$, current_schema() || '_private', current_schema());
END
$do$;
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
DECLARE r regclass;
BEGIN
  FOR r IN SELECT rel FROM vehicle_scoped_tables LOOP
    EXECUTE format('DROP POLICY IF EXISTS live_vehicle ON %s', r);
  END LOOP;
END
$do$;
DROP VIEW vehicle_scoped_tables;
DROP FUNCTION apply_live_vehicle_policy(regclass);
DROP FUNCTION deleted_vehicle_ids();
DROP FUNCTION refused_event_vehicles(uuid[]);
DROP FUNCTION insert_rule(regclass);
