-- Undoes 0015: money back in the metrics as 0007/0008 had it (the table
-- made again in 0007's column order and refilled), no costs, no per-fill
-- economy, no currencies, purchase or sale.
DROP VIEW tenant_costs, tenant_metrics, group_costs, group_metrics, group_subtree, vehicle_costs, vehicle_fills,
  vehicle_metrics;
DROP FUNCTION vehicle_metrics_daily(uuid, date, date);
DROP FUNCTION compute_vehicle_metrics(uuid, uuid, timestamptz, date, timestamptz, text);
DROP FUNCTION compute_vehicle_costs(uuid, uuid, timestamptz, timestamptz, text);
DROP TABLE vehicle_costs_monthly, vehicle_metrics_monthly;
DROP FUNCTION fill_economy(uuid, uuid, timestamptz, timestamptz, text);
DROP FUNCTION economy_figures(numeric, numeric, boolean);
DROP TRIGGER currency_default ON vehicles;
DROP FUNCTION vehicle_currency_default();
ALTER TABLE vehicles DROP COLUMN currency, DROP COLUMN purchased_on, DROP COLUMN purchase_price,
  DROP COLUMN purchase_mileage, DROP COLUMN sold_on, DROP COLUMN sale_price, DROP COLUMN sale_mileage;
ALTER TABLE tenants DROP COLUMN currency;
DROP FUNCTION cost_of(text, jsonb);
DROP FUNCTION currency_exponent(text);

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
SELECT protect_tenant_table('vehicle_metrics_monthly', 'derived');

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
  liquid AS (
    SELECT l.*, count(*) FILTER (WHERE l.full) OVER (PARTITION BY l.tenant_id, l.vehicle_id
             ORDER BY l.occurred_at, l.mileage, l.id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS grp
      FROM fuel l WHERE NOT l.electric),
  intervals AS (
    SELECT i.tenant_id, i.vehicle_id, i.grp, sum(i.litres) AS litres,
           bool_or(i.missed OR i.litres IS NULL) AS broken,
           max(i.mileage) FILTER (WHERE i.full) AS end_mileage, max(i.month) FILTER (WHERE i.full) AS month
      FROM liquid i GROUP BY i.tenant_id, i.vehicle_id, i.grp),
  chained AS (
    SELECT i.*, lag(i.end_mileage) OVER w AS prev_end, lag(i.grp) OVER w AS prev_grp
      FROM intervals i WINDOW w AS (PARTITION BY i.tenant_id, i.vehicle_id ORDER BY i.grp)),
  economy AS (
    SELECT c.tenant_id, c.vehicle_id, c.month, c.end_mileage - c.prev_end AS distance, c.litres
      FROM chained c
     WHERE c.prev_grp = c.grp - 1 AND NOT c.broken AND c.end_mileage IS NOT NULL AND c.prev_end IS NOT NULL
       AND c.litres > 0),
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

CREATE OR REPLACE FUNCTION recompute_vehicle_metrics(p_tenant uuid, p_vehicle uuid, since timestamptz) RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT SET jit = off SET motomind.maintenance = 'on' AS $fn$
DECLARE
  tz text := (SELECT v.timezone FROM vehicles v WHERE v.tenant_id = p_tenant AND v.id = p_vehicle);
  first_month date := date_trunc('month', coalesce(since, '-infinity') AT TIME ZONE tz)::date;
  n bigint;
BEGIN
  first_month := greatest(first_month, first_live_month(tz));
  DELETE FROM vehicle_metrics_monthly m
   WHERE m.tenant_id = p_tenant AND m.vehicle_id = p_vehicle AND m.month >= coalesce(first_month, '-infinity');
  INSERT INTO vehicle_metrics_monthly
  SELECT * FROM compute_vehicle_metrics(p_tenant, p_vehicle,
    CASE WHEN first_month IS NOT NULL THEN metrics_read_from(p_tenant, p_vehicle, first_month::timestamp AT TIME ZONE tz) END,
    first_month);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$fn$;

CREATE OR REPLACE FUNCTION recompute_metrics() RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT SET jit = off SET motomind.maintenance = 'on' AS $fn$
DECLARE
  h record;
  n bigint := 0;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext(current_schema() || '.metrics'));
  DELETE FROM vehicle_metrics_monthly m
   WHERE NOT EXISTS (SELECT 1 FROM vehicle_event_heads hd WHERE hd.tenant_id = m.tenant_id AND hd.vehicle_id = m.vehicle_id);
  FOR h IN SELECT hd.tenant_id, hd.vehicle_id FROM vehicle_event_heads hd ORDER BY 1, 2 LOOP
    n := n + recompute_vehicle_metrics(h.tenant_id, h.vehicle_id, NULL);
  END LOOP;
  RETURN n;
END
$fn$;

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

DO $do$
BEGIN
  EXECUTE format('GRANT SELECT ON vehicle_metrics, group_metrics, tenant_metrics TO %I',
                 (SELECT value FROM settings WHERE key = 'app_role'));
END
$do$;
SELECT recompute_metrics();
