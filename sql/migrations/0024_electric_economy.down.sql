-- Undoes 0024: the months sum liquid fuel economy only (0015's function and
-- views; the roll-ups read vehicle_metrics, so they are made again too).
DROP VIEW tenant_metrics, group_metrics, vehicle_metrics;
DROP FUNCTION compute_vehicle_metrics(uuid, uuid, timestamptz, date, timestamptz, text);
ALTER TABLE vehicle_metrics_monthly DROP COLUMN economy_kwh_distance, DROP COLUMN economy_kwh;
CREATE FUNCTION compute_vehicle_metrics(p_tenant uuid, p_vehicle uuid, read_from timestamptz, first_period date,
  read_to timestamptz DEFAULT NULL, grain text DEFAULT 'month')
RETURNS TABLE (tenant_id uuid, vehicle_id uuid, period date, distance numeric, fuel_litres numeric,
  energy_kwh numeric, economy_distance numeric, economy_litres numeric, fills bigint, events bigint)
LANGUAGE sql STABLE AS $$
  WITH e AS MATERIALIZED (
    SELECT e.tenant_id, e.vehicle_id, e.id, e.occurred_at, e.mileage,
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
  parts (tenant_id, vehicle_id, month, distance, fuel_litres, energy_kwh, economy_distance, economy_litres,
         fills, events) AS (
    SELECT r.tenant_id, r.vehicle_id, r.month, coalesce(r.distance, 0), 0, 0, 0, 0, 0, 0 FROM readings r
    UNION ALL
    SELECT f.tenant_id, f.vehicle_id, f.period, 0, coalesce(f.litres, 0),
           CASE WHEN f.electric THEN coalesce(f.volume, 0) ELSE 0 END,
           CASE WHEN f.closes_interval AND NOT f.implausible AND NOT f.electric THEN f.interval_distance ELSE 0 END,
           CASE WHEN f.closes_interval AND NOT f.implausible AND NOT f.electric THEN f.interval_volume ELSE 0 END, 1, 0
      FROM vehicles fv CROSS JOIN LATERAL fill_economy(fv.tenant_id, fv.id, read_from, read_to, grain) f
     WHERE (p_tenant IS NULL OR fv.tenant_id = p_tenant) AND (p_vehicle IS NULL OR fv.id = p_vehicle)
    UNION ALL
    SELECT a.tenant_id, a.vehicle_id, a.month, 0, 0, 0, 0, 0, 0, 1 FROM e a)
  SELECT p.tenant_id, p.vehicle_id, p.month, sum(p.distance), sum(p.fuel_litres), sum(p.energy_kwh),
         sum(p.economy_distance), sum(p.economy_litres), sum(p.fills)::bigint, sum(p.events)::bigint
    FROM parts p WHERE p.month >= coalesce(first_period, '-infinity')
   GROUP BY p.tenant_id, p.vehicle_id, p.month
$$;

CREATE VIEW vehicle_metrics WITH (security_invoker = true) AS
SELECT m.tenant_id, m.vehicle_id, m.month, v.odometer_unit, m.distance, m.fuel_litres, m.energy_kwh,
       m.economy_distance, m.economy_litres, x.l_per_100km, x.km_per_l, x.mpg_us, x.mpg_uk, m.fills, m.events
  FROM vehicle_metrics_monthly m
  JOIN vehicles v ON v.tenant_id = m.tenant_id AND v.id = m.vehicle_id
  CROSS JOIN LATERAL economy_figures(m.economy_distance * CASE v.odometer_unit WHEN 'mi' THEN 1.609344 ELSE 1 END,
                                     m.economy_litres) x;

CREATE VIEW group_metrics WITH (security_invoker = true) AS
SELECT t.tenant_id, t.group_id, m.month, count(DISTINCT m.vehicle_id) AS vehicles,
       sum(m.distance * CASE m.odometer_unit WHEN 'mi' THEN 1.609344 ELSE 1 END) AS distance_km,
       sum(m.fuel_litres) AS fuel_litres, sum(m.energy_kwh) AS energy_kwh
  FROM group_subtree t
  JOIN vehicles v ON v.tenant_id = t.tenant_id AND v.group_id = t.member_id AND v.deleted_at IS NULL
  JOIN vehicle_metrics m ON m.tenant_id = v.tenant_id AND m.vehicle_id = v.id
 GROUP BY t.tenant_id, t.group_id, m.month;

CREATE VIEW tenant_metrics WITH (security_invoker = true) AS
SELECT m.tenant_id, m.month, count(DISTINCT m.vehicle_id) AS vehicles,
       sum(m.distance * CASE m.odometer_unit WHEN 'mi' THEN 1.609344 ELSE 1 END) AS distance_km,
       sum(m.fuel_litres) AS fuel_litres, sum(m.energy_kwh) AS energy_kwh
  FROM vehicle_metrics m GROUP BY m.tenant_id, m.month;

DO $do$ BEGIN
  EXECUTE format('GRANT SELECT ON vehicle_metrics, group_metrics, tenant_metrics TO %I',
                 (SELECT value FROM settings WHERE key = 'app_role'));
END $do$;

-- Where to start reading to compute a vehicle's metrics from `since`: the
-- last reading and the last full fill before it (the first distance and the
-- base of the first economy interval), found by the vehicle's index.
CREATE OR REPLACE FUNCTION metrics_read_from(p_tenant uuid, p_vehicle uuid, since timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
  SELECT least(since,
    (SELECT max(e.occurred_at) FROM vehicle_events_effective e
      WHERE e.tenant_id = p_tenant AND e.vehicle_id = p_vehicle AND e.occurred_at < since AND e.mileage IS NOT NULL),
    (SELECT max(e.occurred_at) FROM vehicle_events_effective e
      WHERE e.tenant_id = p_tenant AND e.vehicle_id = p_vehicle AND e.occurred_at < since
        AND e.type = 'fuel' AND coalesce((e.payload->>'full')::boolean, true)
        AND coalesce(e.payload->>'unit', '') <> 'kwh'))
$$;
