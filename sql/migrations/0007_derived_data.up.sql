-- motomind 0007: derived data.
--  * vehicle_metrics_monthly: distance, fuel, costs and full-to-full economy
--    per vehicle and month, advanced incrementally from
--    vehicle_event_heads.dirty_from (only touched vehicles, from the first
--    touched month); rolled up per fleet group and per tenant in views;
--  * timeline_feed: the original design's pre-joined feed, a materialized
--    view in a private schema behind a tenant-filtering view, refreshed
--    concurrently with its freshness recorded by the refresh itself;
--  * maintain(): partitions, feed, metrics, retention, under one lock;
--  * db_health_stats and mv_freshness for the health report.

-- ---- metrics ---------------------------------------------------------------

-- A volume in litres (NULL for kWh: electricity is not counted as fuel volume).
CREATE FUNCTION volume_litres(volume numeric, unit text) RETURNS numeric
LANGUAGE sql IMMUTABLE AS $$
  SELECT volume * CASE unit WHEN 'l' THEN 1 WHEN 'us_gal' THEN 3.785411784 WHEN 'uk_gal' THEN 4.54609 END
$$;

CREATE TABLE vehicle_metrics_monthly (
  tenant_id         uuid NOT NULL,
  vehicle_id        uuid NOT NULL,
  month             date NOT NULL,
  distance          numeric NOT NULL,
  fuel_litres       numeric NOT NULL,
  energy_kwh        numeric NOT NULL,
  fuel_cost         numeric NOT NULL,
  maintenance_cost  numeric NOT NULL,
  economy_distance  numeric NOT NULL,
  economy_litres    numeric NOT NULL,
  fills             bigint NOT NULL,
  events            bigint NOT NULL,
  PRIMARY KEY (tenant_id, vehicle_id, month),
  FOREIGN KEY (tenant_id, vehicle_id) REFERENCES vehicles (tenant_id, id)
);
COMMENT ON TABLE vehicle_metrics_monthly IS
  'per vehicle and calendar month (in the vehicle''s timezone), from its effective timeline; '
  'distances in the vehicle''s odometer unit; costs as recorded (one currency per vehicle)';
COMMENT ON COLUMN vehicle_metrics_monthly.economy_distance IS
  'distance of the full-to-full intervals closed this month (partial fills carried forward, '
  'an interval with a missed fill or an unknown volume dropped); economy_litres is their fuel';
SELECT apply_tenant_policies('vehicle_metrics_monthly', 'derived');

-- The metrics per period (grain: 'month' or 'day', in the vehicle's
-- timezone) from first_period on, computed from the events at or after
-- read_from and before read_to (NULL arguments: every tenant, vehicle,
-- period, time). The caller reads from early enough to see the reading and
-- the full fill that precede first_period (metrics_read_from).
CREATE FUNCTION compute_vehicle_metrics(p_tenant uuid, p_vehicle uuid, read_from timestamptz, first_period date,
  read_to timestamptz DEFAULT NULL, grain text DEFAULT 'month')
RETURNS TABLE (tenant_id uuid, vehicle_id uuid, period date, distance numeric, fuel_litres numeric,
  energy_kwh numeric, fuel_cost numeric, maintenance_cost numeric, economy_distance numeric,
  economy_litres numeric, fills bigint, events bigint)
LANGUAGE sql STABLE AS $$
  WITH e AS MATERIALIZED (
    SELECT e.tenant_id, e.vehicle_id, e.id, e.type, e.occurred_at, e.mileage, e.payload,
           date_trunc(grain, e.occurred_at AT TIME ZONE v.timezone)::date AS month
      FROM vehicle_events_effective e
      JOIN vehicles v ON v.tenant_id = e.tenant_id AND v.id = e.vehicle_id
     WHERE (p_tenant IS NULL OR e.tenant_id = p_tenant) AND (p_vehicle IS NULL OR e.vehicle_id = p_vehicle)
       AND e.occurred_at >= coalesce(read_from, '-infinity') AND e.occurred_at < coalesce(read_to, 'infinity')),
  readings AS (
    SELECT r.tenant_id, r.vehicle_id, r.month,
           r.mileage - lag(r.mileage) OVER (PARTITION BY r.tenant_id, r.vehicle_id
                                            ORDER BY r.occurred_at, r.mileage, r.id) AS distance
      FROM e r WHERE r.mileage IS NOT NULL),
  fuel AS (
    SELECT f.tenant_id, f.vehicle_id, f.id, f.occurred_at, f.mileage, f.month, f.payload,
           coalesce(f.payload->>'unit', '') = 'kwh' AS electric,
           volume_litres((f.payload->>'volume')::numeric, f.payload->>'unit') AS litres,
           coalesce((f.payload->>'full')::boolean, true) AS full,
           coalesce((f.payload->>'missed')::boolean, false) AS missed,
           coalesce((f.payload->>'total')::numeric,
                    (f.payload->>'volume')::numeric * (f.payload->>'price_per_unit')::numeric, 0) AS cost
      FROM e f WHERE f.type = 'fuel'),
  -- Liquid fills in order, numbered by the full fills before each: group k
  -- runs from after the k-th full fill to the (k+1)-th, which closes it.
  liquid AS (
    SELECT l.*, count(*) FILTER (WHERE l.full) OVER (PARTITION BY l.tenant_id, l.vehicle_id
             ORDER BY l.occurred_at, l.mileage, l.id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS grp
      FROM fuel l WHERE NOT l.electric),
  intervals AS (
    SELECT i.tenant_id, i.vehicle_id, i.grp, sum(i.litres) AS litres,
           bool_or(i.missed OR i.litres IS NULL) AS broken,
           max(i.mileage) FILTER (WHERE i.full) AS end_mileage, max(i.month) FILTER (WHERE i.full) AS month
      FROM liquid i GROUP BY i.tenant_id, i.vehicle_id, i.grp),
  economy AS (
    SELECT i.tenant_id, i.vehicle_id, i.month, i.end_mileage - b.end_mileage AS distance, i.litres
      FROM intervals i
      JOIN intervals b ON b.tenant_id = i.tenant_id AND b.vehicle_id = i.vehicle_id AND b.grp = i.grp - 1
     WHERE NOT i.broken AND i.end_mileage IS NOT NULL AND b.end_mileage IS NOT NULL AND i.litres > 0),
  parts (tenant_id, vehicle_id, month, distance, fuel_litres, energy_kwh, fuel_cost, maintenance_cost,
         economy_distance, economy_litres, fills, events) AS (
    SELECT r.tenant_id, r.vehicle_id, r.month, coalesce(r.distance, 0), 0, 0, 0, 0, 0, 0, 0, 0 FROM readings r
    UNION ALL
    SELECT f.tenant_id, f.vehicle_id, f.month, 0, coalesce(f.litres, 0),
           CASE WHEN f.electric THEN coalesce((f.payload->>'volume')::numeric, 0) ELSE 0 END, f.cost, 0, 0, 0, 1, 0
      FROM fuel f
    UNION ALL
    SELECT m.tenant_id, m.vehicle_id, m.month, 0, 0, 0, 0, coalesce((m.payload->>'total')::numeric, 0), 0, 0, 0, 0
      FROM e m WHERE m.type = 'maintenance'
    UNION ALL
    SELECT x.tenant_id, x.vehicle_id, x.month, 0, 0, 0, 0, 0, x.distance, x.litres, 0, 0 FROM economy x
    UNION ALL
    SELECT a.tenant_id, a.vehicle_id, a.month, 0, 0, 0, 0, 0, 0, 0, 0, 1 FROM e a)
  SELECT p.tenant_id, p.vehicle_id, p.month, sum(p.distance), sum(p.fuel_litres), sum(p.energy_kwh),
         sum(p.fuel_cost), sum(p.maintenance_cost), sum(p.economy_distance), sum(p.economy_litres),
         sum(p.fills)::bigint, sum(p.events)::bigint
    FROM parts p WHERE p.month >= coalesce(first_period, '-infinity')
   GROUP BY p.tenant_id, p.vehicle_id, p.month
$$;

-- Where to start reading to compute a vehicle's metrics from `since`: the
-- last reading and the last full fill before it (the first distance and the
-- base of the first economy interval), found by the vehicle's index.
CREATE FUNCTION metrics_read_from(p_tenant uuid, p_vehicle uuid, since timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
  SELECT least(since,
    (SELECT max(e.occurred_at) FROM vehicle_events_effective e
      WHERE e.tenant_id = p_tenant AND e.vehicle_id = p_vehicle AND e.occurred_at < since AND e.mileage IS NOT NULL),
    (SELECT max(e.occurred_at) FROM vehicle_events_effective e
      WHERE e.tenant_id = p_tenant AND e.vehicle_id = p_vehicle AND e.occurred_at < since
        AND e.type = 'fuel' AND coalesce((e.payload->>'full')::boolean, true)
        AND coalesce(e.payload->>'unit', '') <> 'kwh'))
$$;

-- A vehicle's metrics per day from from_day to to_day, computed on demand
-- (one vehicle's events in the range, and back to its last reading and full
-- fill): read with the caller's rights.
CREATE FUNCTION vehicle_metrics_daily(vehicle uuid, from_day date, to_day date)
RETURNS TABLE (day date, distance numeric, fuel_litres numeric, energy_kwh numeric, fuel_cost numeric,
  maintenance_cost numeric, economy_distance numeric, economy_litres numeric, fills bigint, events bigint)
LANGUAGE sql STABLE AS $$
  SELECT m.period, m.distance, m.fuel_litres, m.energy_kwh, m.fuel_cost, m.maintenance_cost, m.economy_distance,
         m.economy_litres, m.fills, m.events
    FROM vehicles v
   CROSS JOIN LATERAL compute_vehicle_metrics(v.tenant_id, v.id,
           metrics_read_from(v.tenant_id, v.id, from_day::timestamp AT TIME ZONE v.timezone), from_day,
           (to_day + 1)::timestamp AT TIME ZONE v.timezone, 'day') m
   WHERE v.id = vehicle AND v.tenant_id = coalesce(current_tenant_id(), v.tenant_id)
   ORDER BY m.period
$$;

-- Brings the metrics of vehicles with pending changes up to date (at most
-- max_vehicles of them; NULL: all), each from the first month its changes
-- touch. Vehicles another session is writing or advancing are skipped (the
-- next run takes them). Returns how many vehicles were advanced.
CREATE FUNCTION advance_metrics(max_vehicles integer DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql SET search_path FROM CURRENT SET jit = off SET motomind.maintenance = 'on' AS $fn$
DECLARE
  h record;
  n integer := 0;
  tz text;
  first_month date;
  month_start timestamptz;
  read_from timestamptz;
BEGIN
  FOR h IN
    SELECT hd.tenant_id, hd.vehicle_id, hd.dirty_from FROM vehicle_event_heads hd
     WHERE hd.dirty_from IS NOT NULL ORDER BY hd.tenant_id, hd.vehicle_id LIMIT max_vehicles
       FOR UPDATE SKIP LOCKED
  LOOP
    SELECT v.timezone INTO tz FROM vehicles v WHERE v.tenant_id = h.tenant_id AND v.id = h.vehicle_id;
    first_month := date_trunc('month', h.dirty_from AT TIME ZONE tz)::date;
    month_start := first_month::timestamp AT TIME ZONE tz;
    read_from := metrics_read_from(h.tenant_id, h.vehicle_id, month_start);
    DELETE FROM vehicle_metrics_monthly m
     WHERE m.tenant_id = h.tenant_id AND m.vehicle_id = h.vehicle_id AND m.month >= first_month;
    INSERT INTO vehicle_metrics_monthly
    SELECT * FROM compute_vehicle_metrics(h.tenant_id, h.vehicle_id, read_from, first_month);
    UPDATE vehicle_event_heads hd SET dirty_from = NULL
     WHERE hd.tenant_id = h.tenant_id AND hd.vehicle_id = h.vehicle_id;
    n := n + 1;
  END LOOP;
  RETURN n;
END
$fn$;

-- Throws the metrics away and computes them all again, set-based (the
-- reference the incremental path is checked against, and a repair).
CREATE FUNCTION recompute_metrics() RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT SET jit = off SET work_mem = '128MB'
SET motomind.maintenance = 'on' AS $fn$
DECLARE n bigint;
BEGIN
  LOCK TABLE vehicle_event_heads IN SHARE ROW EXCLUSIVE MODE; -- no writer or advancer meanwhile
  DELETE FROM vehicle_metrics_monthly;
  INSERT INTO vehicle_metrics_monthly SELECT * FROM compute_vehicle_metrics(NULL, NULL, NULL, NULL);
  GET DIAGNOSTICS n = ROW_COUNT;
  UPDATE vehicle_event_heads SET dirty_from = NULL WHERE dirty_from IS NOT NULL;
  RETURN n;
END
$fn$;

-- The figures people read: totals, cost per distance, economy in every unit.
CREATE VIEW vehicle_metrics AS
SELECT m.tenant_id, m.vehicle_id, m.month, v.odometer_unit, m.distance, m.fuel_litres, m.energy_kwh,
       m.fuel_cost, m.maintenance_cost, m.fuel_cost + m.maintenance_cost AS total_cost,
       round((m.fuel_cost + m.maintenance_cost) / nullif(m.distance, 0), 4) AS cost_per_distance,
       m.economy_distance, m.economy_litres,
       round(m.economy_litres * 100 / nullif(m.economy_distance * k.km, 0), 2) AS l_per_100km,
       round(m.economy_distance * k.km / nullif(m.economy_litres, 0), 2) AS km_per_l,
       round(m.economy_distance * k.km / 1.609344 / nullif(m.economy_litres / 3.785411784, 0), 2) AS mpg_us,
       round(m.economy_distance * k.km / 1.609344 / nullif(m.economy_litres / 4.54609, 0), 2) AS mpg_uk,
       m.fills, m.events
  FROM vehicle_metrics_monthly m
  JOIN vehicles v ON v.tenant_id = m.tenant_id AND v.id = m.vehicle_id
  CROSS JOIN LATERAL (SELECT CASE v.odometer_unit WHEN 'mi' THEN 1.609344 ELSE 1 END AS km) k;

-- Roll-ups: a group counts the vehicles of its whole subtree; distances in km.
CREATE VIEW group_metrics AS
WITH RECURSIVE tree AS (
  SELECT g.tenant_id, g.id AS group_id, g.id AS member_id FROM fleet_groups g WHERE g.deleted_at IS NULL
  UNION ALL
  SELECT t.tenant_id, t.group_id, c.id FROM tree t
    JOIN fleet_groups c ON c.tenant_id = t.tenant_id AND c.parent_id = t.member_id AND c.deleted_at IS NULL)
SELECT t.tenant_id, t.group_id, m.month, count(DISTINCT m.vehicle_id) AS vehicles,
       sum(m.distance * CASE m.odometer_unit WHEN 'mi' THEN 1.609344 ELSE 1 END) AS distance_km,
       sum(m.fuel_litres) AS fuel_litres, sum(m.energy_kwh) AS energy_kwh, sum(m.fuel_cost) AS fuel_cost,
       sum(m.maintenance_cost) AS maintenance_cost, sum(m.total_cost) AS total_cost
  FROM tree t
  JOIN vehicles v ON v.tenant_id = t.tenant_id AND v.group_id = t.member_id AND v.deleted_at IS NULL
  JOIN vehicle_metrics m ON m.tenant_id = v.tenant_id AND m.vehicle_id = v.id
 GROUP BY t.tenant_id, t.group_id, m.month;

CREATE VIEW tenant_metrics AS
SELECT m.tenant_id, m.month, count(DISTINCT m.vehicle_id) AS vehicles,
       sum(m.distance * CASE m.odometer_unit WHEN 'mi' THEN 1.609344 ELSE 1 END) AS distance_km,
       sum(m.fuel_litres) AS fuel_litres, sum(m.energy_kwh) AS energy_kwh, sum(m.fuel_cost) AS fuel_cost,
       sum(m.maintenance_cost) AS maintenance_cost, sum(m.total_cost) AS total_cost
  FROM vehicle_metrics m GROUP BY m.tenant_id, m.month;

ALTER VIEW vehicle_metrics SET (security_invoker = true);
ALTER VIEW group_metrics SET (security_invoker = true);
ALTER VIEW tenant_metrics SET (security_invoker = true);

-- ---- the feed --------------------------------------------------------------

-- Freshness, written by the refreshing transaction itself.
CREATE TABLE mv_refreshes (
  view_name    text PRIMARY KEY,
  started_at   timestamptz NOT NULL,
  finished_at  timestamptz NOT NULL,
  duration     interval NOT NULL,
  row_count    bigint NOT NULL,
  high_water   timestamptz
);
COMMENT ON COLUMN mv_refreshes.high_water IS
  'the latest change (event write, vehicle, garage or group update) the refresh is sure to cover';

-- The latest change the feed depends on.
CREATE FUNCTION feed_high_water() RETURNS timestamptz
LANGUAGE sql STABLE SET motomind.maintenance = 'on' AS $$
  SELECT greatest((SELECT max(changed_at) FROM vehicle_event_heads), (SELECT max(updated_at) FROM vehicles),
                  (SELECT max(updated_at) FROM garages), (SELECT max(updated_at) FROM fleet_groups))
$$;

DO $do$
DECLARE
  priv text := current_schema() || '_private';
  app text := (SELECT value FROM settings WHERE key = 'app_role');
BEGIN
  -- It holds only what a refresh rebuilds: a leftover of a dropped install goes.
  EXECUTE format('DROP SCHEMA IF EXISTS %I CASCADE', priv);
  EXECUTE format('CREATE SCHEMA %I', priv);
  EXECUTE format($f$
    CREATE MATERIALIZED VIEW %1$I.timeline_feed AS
    SELECT e.tenant_id, e.id, e.occurred_at, e.vehicle_id, e.type, e.mileage, e.payload, e.notes,
           e.correction, v.nickname AS vehicle_nickname, g.name AS garage_name, fg.name AS group_name
      FROM %2$I.vehicle_events_effective e
      JOIN %2$I.vehicles v ON v.tenant_id = e.tenant_id AND v.id = e.vehicle_id
      LEFT JOIN %2$I.garages g ON g.tenant_id = v.tenant_id AND g.id = v.garage_id
      LEFT JOIN %2$I.fleet_groups fg ON fg.tenant_id = v.tenant_id AND fg.id = v.group_id
     WHERE v.deleted_at IS NULL$f$, priv, current_schema());
  EXECUTE format('CREATE UNIQUE INDEX ON %I.timeline_feed (tenant_id, id, occurred_at)', priv);
  EXECUTE format('CREATE INDEX ON %I.timeline_feed (tenant_id, occurred_at DESC, id DESC)', priv);
  EXECUTE format('CREATE INDEX ON %I.timeline_feed (tenant_id, vehicle_id, occurred_at DESC, id DESC)', priv);
  -- Materialized views carry no row-level security: readers get this view,
  -- which shows the session's tenant only, newest first (pages: use
  -- timeline_feed_page below).
  EXECUTE format($f$
    CREATE VIEW timeline_feed WITH (security_barrier) AS
    SELECT f.* FROM %I.timeline_feed f WHERE f.tenant_id = (SELECT current_tenant_id())
     ORDER BY f.occurred_at DESC, f.id DESC$f$, priv);
  EXECUTE format('GRANT SELECT ON timeline_feed, vehicle_metrics_monthly, vehicle_metrics, group_metrics, '
                 'tenant_metrics TO %I', app);
  -- (functions: executable by everyone, reading with the caller's rights)
END
$do$;

-- A page of the session's tenant's feed (of one vehicle, when given), newest
-- first, after the keyset cursor (before_at, before_id). Planned with its
-- LIMIT, so it reads the index; a query on the view with its own ORDER BY and
-- LIMIT may sort the tenant's whole feed instead (the view is a security
-- barrier, planned on its own).
DO $do$
BEGIN
  EXECUTE format($f$
    CREATE FUNCTION timeline_feed_page(lim integer DEFAULT 50, before_at timestamptz DEFAULT NULL,
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
  EXECUTE format('GRANT EXECUTE ON FUNCTION timeline_feed_page(integer, timestamptz, uuid, uuid) TO %I',
                 (SELECT value FROM settings WHERE key = 'app_role'));
END
$do$;

-- Refreshes the feed unless it is fresh: refreshed within max_age, or
-- nothing changed since its high-water mark. 'busy' when another session is
-- refreshing it (they never pile up). Readers are never blocked.
CREATE FUNCTION refresh_feed(max_age interval DEFAULT NULL) RETURNS text
LANGUAGE plpgsql SET search_path FROM CURRENT SET motomind.maintenance = 'on' SET jit = off AS $fn$
DECLARE
  started timestamptz := clock_timestamp();
  last mv_refreshes;
  mark timestamptz;
  n bigint;
BEGIN
  IF NOT pg_try_advisory_xact_lock(hashtext(current_schema() || '.refresh_feed')) THEN RETURN 'busy'; END IF;
  SELECT * INTO last FROM mv_refreshes WHERE view_name = 'timeline_feed';
  mark := feed_high_water(); -- read first: the refresh sees at least this much
  IF last.view_name IS NOT NULL AND ((max_age IS NOT NULL AND last.finished_at > now() - max_age)
     OR mark IS NOT DISTINCT FROM last.high_water) THEN
    RETURN 'fresh';
  END IF;
  EXECUTE format('REFRESH MATERIALIZED VIEW CONCURRENTLY %I.timeline_feed', current_schema() || '_private');
  EXECUTE format('SELECT count(*) FROM %I.timeline_feed', current_schema() || '_private') INTO n;
  INSERT INTO mv_refreshes AS r VALUES ('timeline_feed', started, clock_timestamp(), clock_timestamp() - started, n, mark)
  ON CONFLICT (view_name) DO UPDATE SET started_at = excluded.started_at, finished_at = excluded.finished_at,
    duration = excluded.duration, row_count = excluded.row_count, high_water = excluded.high_water;
  RETURN 'refreshed';
END
$fn$;

CREATE VIEW mv_freshness AS
SELECT r.view_name, r.started_at, r.finished_at, r.duration, r.row_count, r.high_water,
       now() - r.finished_at AS age, feed_high_water() IS DISTINCT FROM r.high_water AS behind
  FROM mv_refreshes r;

-- ---- retention, maintenance, health ----------------------------------------

INSERT INTO settings VALUES ('retention_months', ''); -- '' keeps everything

-- The event partitions the retention setting (retention_months) retires:
-- those that end before now minus that many months; none when it is ''.
CREATE FUNCTION partitions_to_archive() RETURNS SETOF text
LANGUAGE sql STABLE AS $$
  SELECT c.partition FROM partition_coverage() c, settings s
   WHERE s.key = 'retention_months' AND s.value <> '' AND c.kind = 'partition'
     AND c.range_to <= now() - make_interval(months => s.value::int)
   ORDER BY c.range_from
$$;

-- Detaches those partitions into the schema <schema>_archive (made on first
-- use); their metrics stay. Returns them.
CREATE FUNCTION archive_partitions() RETURNS SETOF text
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  p text;
  arch text := current_schema() || '_archive';
BEGIN
  FOR p IN SELECT partitions_to_archive() LOOP
    EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', arch);
    EXECUTE format('ALTER TABLE vehicle_events DETACH PARTITION %I', p);
    EXECUTE format('ALTER TABLE %I SET SCHEMA %I', p, arch);
    RETURN NEXT p;
  END LOOP;
END
$fn$;

-- Every maintenance job in one call, safe from several places at once (a
-- second caller returns at once with skipped = true): partitions ahead and
-- the DEFAULT partition drained, the feed refreshed when stale, metrics
-- advanced, partitions past the retention archived. What pg_cron runs.
CREATE FUNCTION maintain(ahead integer DEFAULT 2, max_age interval DEFAULT '5 minutes') RETURNS jsonb
LANGUAGE plpgsql SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
DECLARE
  keep text := (SELECT value FROM settings WHERE key = 'retention_months');
  out jsonb;
BEGIN
  IF NOT pg_try_advisory_xact_lock(hashtext(current_schema() || '.maintain')) THEN
    RETURN jsonb_build_object('skipped', true);
  END IF;
  out := jsonb_build_object(
    'partitions_created', (SELECT coalesce(jsonb_agg(p), '[]') FROM ensure_partitions(ahead) p),
    'feed', refresh_feed(max_age),
    'vehicles_advanced', advance_metrics());
  IF keep <> '' THEN
    out := out || jsonb_build_object('archived', (SELECT coalesce(jsonb_agg(p), '[]') FROM archive_partitions() p));
  END IF;
  RETURN out;
END
$fn$;

-- Sizes and dead rows of motomind's tables (and the feed), per relation.
DO $do$
BEGIN
  EXECUTE format($f$
    CREATE VIEW db_health_stats AS
    SELECT n.nspname AS schema_name, c.relname AS relation, c.relkind::text AS kind,
           pg_total_relation_size(c.oid) AS total_bytes, pg_relation_size(c.oid) AS table_bytes,
           pg_indexes_size(c.oid) AS index_bytes, s.n_live_tup AS live_rows, s.n_dead_tup AS dead_rows,
           s.last_autovacuum, s.last_autoanalyze
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_stat_all_tables s ON s.relid = c.oid
     WHERE n.nspname IN (%L, %L) AND c.relkind IN ('r', 'm')$f$,
    current_schema(), current_schema() || '_private');
END
$do$;

-- Upkeep is the owner's: the application role may not run it.
REVOKE EXECUTE ON FUNCTION advance_metrics(integer),
  recompute_metrics(), refresh_feed(interval), partitions_to_archive(), archive_partitions(), maintain(integer, interval),
  feed_high_water() FROM PUBLIC;
