-- Electric economy per month.
--
-- The months summed the economy intervals of liquid fuel only: an electric
-- vehicle's (or a plug-in hybrid's charging) kWh intervals were in each
-- fill's row (vehicle_fills: kWh/100 km, mi/kWh) but in no month, so the
-- months were not the sums of the fills for them. Now the months keep the
-- plausible full-to-full charging intervals apart from the fuel ones
-- (economy_kwh_distance on economy_kwh: never mixed with litres), and
-- vehicle_metrics gives their figures; an incremental pass reads back to the
-- last full charge as it does to the last full fill. Existing months of
-- vehicles with charges are filled in here.

ALTER TABLE vehicle_metrics_monthly ADD COLUMN economy_kwh_distance numeric NOT NULL DEFAULT 0,
  ADD COLUMN economy_kwh numeric NOT NULL DEFAULT 0;
COMMENT ON COLUMN vehicle_metrics_monthly.economy_kwh_distance IS
  'distance of the plausible full-to-full charging intervals (kWh) closed this month (fill_economy); '
  'economy_kwh is their energy';

DROP FUNCTION compute_vehicle_metrics(uuid, uuid, timestamptz, date, timestamptz, text);
-- The metrics per period (grain: 'month' or 'day', in the vehicle's
-- timezone) from first_period on, computed from the events at or after
-- read_from and before read_to (NULL arguments: every tenant, vehicle,
-- period, time); the fills and their economy come from fill_economy (the
-- charging intervals kept apart). The caller reads from early enough to see
-- the reading and the full fill that precede first_period (metrics_read_from).
CREATE FUNCTION compute_vehicle_metrics(p_tenant uuid, p_vehicle uuid, read_from timestamptz, first_period date,
  read_to timestamptz DEFAULT NULL, grain text DEFAULT 'month')
RETURNS TABLE (tenant_id uuid, vehicle_id uuid, period date, distance numeric, fuel_litres numeric,
  energy_kwh numeric, economy_distance numeric, economy_litres numeric, fills bigint, events bigint,
  economy_kwh_distance numeric, economy_kwh numeric)
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
         fills, events, economy_kwh_distance, economy_kwh) AS (
    SELECT r.tenant_id, r.vehicle_id, r.month, coalesce(r.distance, 0), 0, 0, 0, 0, 0, 0, 0, 0 FROM readings r
    UNION ALL
    SELECT f.tenant_id, f.vehicle_id, f.period, 0, coalesce(f.litres, 0),
           CASE WHEN f.electric THEN coalesce(f.volume, 0) ELSE 0 END,
           CASE WHEN f.closes_interval AND NOT f.implausible AND NOT f.electric THEN f.interval_distance ELSE 0 END,
           CASE WHEN f.closes_interval AND NOT f.implausible AND NOT f.electric THEN f.interval_volume ELSE 0 END, 1, 0,
           CASE WHEN f.closes_interval AND NOT f.implausible AND f.electric THEN f.interval_distance ELSE 0 END,
           CASE WHEN f.closes_interval AND NOT f.implausible AND f.electric THEN f.interval_volume ELSE 0 END
      FROM vehicles fv CROSS JOIN LATERAL fill_economy(fv.tenant_id, fv.id, read_from, read_to, grain) f
     WHERE (p_tenant IS NULL OR fv.tenant_id = p_tenant) AND (p_vehicle IS NULL OR fv.id = p_vehicle)
    UNION ALL
    SELECT a.tenant_id, a.vehicle_id, a.month, 0, 0, 0, 0, 0, 0, 1, 0, 0 FROM e a)
  SELECT p.tenant_id, p.vehicle_id, p.month, sum(p.distance), sum(p.fuel_litres), sum(p.energy_kwh),
         sum(p.economy_distance), sum(p.economy_litres), sum(p.fills)::bigint, sum(p.events)::bigint,
         sum(p.economy_kwh_distance), sum(p.economy_kwh)
    FROM parts p WHERE p.month >= coalesce(first_period, '-infinity')
   GROUP BY p.tenant_id, p.vehicle_id, p.month
$$;

-- Where to start reading to compute a vehicle's metrics from `since`: the
-- last reading, the last full fill and the last full charge before it (the
-- first distance and the bases of the first economy intervals, fuel and
-- charging apart), found by the vehicle's index.
CREATE OR REPLACE FUNCTION metrics_read_from(p_tenant uuid, p_vehicle uuid, since timestamptz) RETURNS timestamptz
LANGUAGE sql STABLE AS $$
  SELECT least(since,
    (SELECT max(e.occurred_at) FROM vehicle_events_effective e
      WHERE e.tenant_id = p_tenant AND e.vehicle_id = p_vehicle AND e.occurred_at < since AND e.mileage IS NOT NULL),
    (SELECT max(e.occurred_at) FROM vehicle_events_effective e
      WHERE e.tenant_id = p_tenant AND e.vehicle_id = p_vehicle AND e.occurred_at < since
        AND e.type = 'fuel' AND coalesce((e.payload->>'full')::boolean, true)
        AND coalesce(e.payload->>'unit', '') <> 'kwh'),
    (SELECT max(e.occurred_at) FROM vehicle_events_effective e
      WHERE e.tenant_id = p_tenant AND e.vehicle_id = p_vehicle AND e.occurred_at < since
        AND e.type = 'fuel' AND coalesce((e.payload->>'full')::boolean, true)
        AND e.payload->>'unit' = 'kwh'))
$$;

-- Per vehicle and month: distance and economy in every unit, liquid and electric.
CREATE OR REPLACE VIEW vehicle_metrics WITH (security_invoker = true) AS
SELECT m.tenant_id, m.vehicle_id, m.month, v.odometer_unit, m.distance, m.fuel_litres, m.energy_kwh,
       m.economy_distance, m.economy_litres, x.l_per_100km, x.km_per_l, x.mpg_us, x.mpg_uk, m.fills, m.events,
       m.economy_kwh_distance, m.economy_kwh, k.kwh_per_100km, k.mi_per_kwh
  FROM vehicle_metrics_monthly m
  JOIN vehicles v ON v.tenant_id = m.tenant_id AND v.id = m.vehicle_id
  CROSS JOIN LATERAL economy_figures(m.economy_distance * CASE v.odometer_unit WHEN 'mi' THEN 1.609344 ELSE 1 END,
                                     m.economy_litres) x
  CROSS JOIN LATERAL economy_figures(m.economy_kwh_distance * CASE v.odometer_unit WHEN 'mi' THEN 1.609344 ELSE 1 END,
                                     m.economy_kwh, true) k;

UPDATE vehicle_metrics_monthly m SET economy_kwh_distance = c.economy_kwh_distance, economy_kwh = c.economy_kwh
  FROM (SELECT DISTINCT e.tenant_id, e.vehicle_id FROM vehicle_events e
         WHERE e.type = 'fuel' AND e.payload->>'unit' = 'kwh') ev
  CROSS JOIN LATERAL compute_vehicle_metrics(ev.tenant_id, ev.vehicle_id, NULL, NULL) c
 WHERE c.economy_kwh > 0 AND m.tenant_id = c.tenant_id AND m.vehicle_id = c.vehicle_id AND m.month = c.period;
