-- motomind 0015: money you can trust, and each fill's economy.
--  * every cost is counted in its own currency and category
--    (vehicle_costs_monthly, one row per vehicle, month, currency and
--    category); no figure adds two currencies. Each event's amount is
--    rounded to its currency's minor unit (cost_of), so sums are exact;
--  * tenants and vehicles have a currency (a vehicle's defaults to its
--    tenant's), vehicles a purchase and a sale (total cost of ownership);
--  * fill_economy: one row per fill with its full-to-full interval; the
--    monthly economy is the sum of its rows (one definition), and an
--    implausible interval (a typo'd odometer) is flagged and left out;
--  * the metrics tables and views lose their money columns (they added
--    currencies together); the cost views replace them.

-- Digits after the decimal point of a currency (ISO 4217 minor unit; 2 unless listed).
CREATE FUNCTION currency_exponent(code text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN code IN ('BIF', 'CLP', 'DJF', 'GNF', 'ISK', 'JPY', 'KMF', 'KRW', 'PYG', 'RWF', 'UGX', 'UYI', 'VND', 'VUV',
                  'XAF', 'XOF', 'XPF') THEN 0
    WHEN code IN ('BHD', 'IQD', 'JOD', 'KWD', 'LYD', 'OMR', 'TND') THEN 3
    ELSE 2 END
$$;

-- The money an event spends: its category and amount (in payload.currency,
-- rounded half away from zero to the currency's minor unit), or no row. A
-- fill without a total costs volume x price per unit; a maintenance event
-- without a category is a service; a damage counts when its repair is paid.
CREATE FUNCTION cost_of(type text, payload jsonb) RETURNS TABLE (category text, amount numeric)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT x.category, round(x.amount, currency_exponent(payload->>'currency'))
    FROM (SELECT CASE type WHEN 'fuel' THEN 'fuel'
                           WHEN 'maintenance' THEN coalesce(payload->>'category', 'service')
                           WHEN 'damage' THEN 'repair' END AS category,
                 CASE type WHEN 'fuel' THEN coalesce((payload->>'total')::numeric,
                                                     (payload->>'volume')::numeric * (payload->>'price_per_unit')::numeric)
                           WHEN 'maintenance' THEN (payload->>'total')::numeric
                           WHEN 'damage' THEN (payload->>'repair_cost')::numeric END AS amount) x
   WHERE x.amount IS NOT NULL
$$;

-- ---- currencies, purchase and sale -----------------------------------------

ALTER TABLE tenants ADD COLUMN currency text NOT NULL DEFAULT 'USD'
  CONSTRAINT tenants_currency_check CHECK (currency ~ '^[A-Z]{3}$');
COMMENT ON COLUMN tenants.currency IS 'ISO 4217: the currency of its vehicles unless they say otherwise';

-- (every tenant so far is USD, so existing vehicles are too)
ALTER TABLE vehicles
  ADD COLUMN currency text NOT NULL DEFAULT 'USD' CONSTRAINT vehicles_currency_check CHECK (currency ~ '^[A-Z]{3}$'),
  ADD COLUMN purchased_on date,
  ADD COLUMN purchase_price numeric CONSTRAINT vehicles_purchase_price_check CHECK (purchase_price >= 0),
  ADD COLUMN purchase_mileage numeric CONSTRAINT vehicles_purchase_mileage_check CHECK (purchase_mileage >= 0),
  ADD COLUMN sold_on date,
  ADD COLUMN sale_price numeric CONSTRAINT vehicles_sale_price_check CHECK (sale_price >= 0),
  ADD COLUMN sale_mileage numeric CONSTRAINT vehicles_sale_mileage_check CHECK (sale_mileage >= 0),
  ADD CONSTRAINT vehicles_sold_after_purchase CHECK (sold_on >= purchased_on),
  ADD CONSTRAINT vehicles_sale_mileage_after_purchase CHECK (sale_mileage >= purchase_mileage);
ALTER TABLE vehicles ALTER COLUMN currency DROP DEFAULT;
COMMENT ON COLUMN vehicles.currency IS
  'ISO 4217 (default: the tenant''s): purchase and sale prices are in it; its events may spend others';

-- A new vehicle without a currency takes its tenant's.
CREATE FUNCTION vehicle_currency_default() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  IF NEW.currency IS NULL THEN
    NEW.currency := (SELECT t.currency FROM tenants t WHERE t.id = NEW.tenant_id);
  END IF;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER currency_default BEFORE INSERT ON vehicles FOR EACH ROW EXECUTE FUNCTION vehicle_currency_default();

-- ---- each fill -------------------------------------------------------------

-- The fills (fuel events) of one vehicle at or after read_from and before
-- read_to (NULL: any time), in order, each with the
-- distance since the previous fill and, for a full fill, the full-to-full
-- interval it closes: partial fills carried forward, an interval with a
-- missed fill or an unknown volume dropped, liquid and electric apart. An
-- interval whose economy is out of bounds (0.5-100 km/l, 0.5-20 km/kWh) is
-- flagged implausible. Volumes of the interval in litres, or kWh. (The
-- vehicle is an equality, never "NULL: all": called laterally for each
-- vehicle, the events are read by the vehicle's index.)
CREATE FUNCTION fill_economy(p_tenant uuid, p_vehicle uuid, read_from timestamptz,
  read_to timestamptz DEFAULT NULL, grain text DEFAULT 'month')
RETURNS TABLE (tenant_id uuid, vehicle_id uuid, event_id uuid, occurred_at timestamptz, period date, mileage numeric,
  electric boolean, volume numeric, unit text, litres numeric, full boolean, missed boolean, cost numeric,
  currency text, distance numeric, closes_interval boolean, interval_distance numeric, interval_volume numeric,
  implausible boolean)
LANGUAGE sql STABLE AS $$
  WITH f AS (
    SELECT e.tenant_id, e.vehicle_id, e.id, e.occurred_at, e.mileage,
           date_trunc(grain, e.occurred_at AT TIME ZONE v.timezone)::date AS period,
           CASE v.odometer_unit WHEN 'mi' THEN 1.609344 ELSE 1 END AS km,
           coalesce(e.payload->>'unit', '') = 'kwh' AS electric,
           (e.payload->>'volume')::numeric AS volume, e.payload->>'unit' AS unit,
           volume_litres((e.payload->>'volume')::numeric, e.payload->>'unit') AS litres,
           coalesce((e.payload->>'full')::boolean, true) AS full,
           coalesce((e.payload->>'missed')::boolean, false) AS missed,
           (SELECT c.amount FROM cost_of(e.type, e.payload) c) AS cost, e.payload->>'currency' AS currency
      FROM vehicle_events_effective e
      JOIN vehicles v ON v.tenant_id = e.tenant_id AND v.id = e.vehicle_id
     WHERE e.type = 'fuel' AND e.tenant_id = p_tenant AND e.vehicle_id = p_vehicle
       AND e.occurred_at >= coalesce(read_from, '-infinity') AND e.occurred_at < coalesce(read_to, 'infinity')),
  -- numbered by the full fills before each: group k runs from after the
  -- k-th full fill to the (k+1)-th, which closes it
  numbered AS (
    SELECT f.*, CASE WHEN f.electric THEN f.volume ELSE f.litres END AS qty,
           count(*) FILTER (WHERE f.full) OVER (PARTITION BY f.tenant_id, f.vehicle_id, f.electric
             ORDER BY f.occurred_at, f.mileage, f.id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS grp,
           f.mileage - lag(f.mileage) OVER (PARTITION BY f.tenant_id, f.vehicle_id
                                            ORDER BY f.occurred_at, f.mileage, f.id) AS distance
      FROM f),
  grouped AS (
    SELECT n.*, sum(n.qty) OVER g AS grp_qty, bool_or(n.missed OR n.qty IS NULL) OVER g AS broken
      FROM numbered n WINDOW g AS (PARTITION BY n.tenant_id, n.vehicle_id, n.electric, n.grp)),
  -- a full fill's previous full fill ends the interval before its own
  chained AS (
    SELECT g.*, lag(g.mileage) OVER (PARTITION BY g.tenant_id, g.vehicle_id, g.electric, g.full ORDER BY g.grp) AS prev_end
      FROM grouped g),
  closing AS (
    SELECT c.*, c.full AND NOT c.broken AND c.mileage IS NOT NULL AND c.prev_end IS NOT NULL AND c.grp_qty > 0 AS closes
      FROM chained c)
  SELECT c.tenant_id, c.vehicle_id, c.id, c.occurred_at, c.period, c.mileage, c.electric, c.volume, c.unit, c.litres,
         c.full, c.missed, c.cost, c.currency, c.distance, c.closes,
         CASE WHEN c.closes THEN c.mileage - c.prev_end END,
         CASE WHEN c.closes THEN c.grp_qty END,
         c.closes AND (c.mileage - c.prev_end) * c.km / c.grp_qty
                       NOT BETWEEN 0.5 AND CASE WHEN c.electric THEN 20 ELSE 100 END
    FROM closing c
$$;

-- ---- metrics without money -------------------------------------------------

DROP VIEW tenant_metrics, group_metrics, vehicle_metrics;
DROP FUNCTION vehicle_metrics_daily(uuid, date, date);
DROP FUNCTION compute_vehicle_metrics(uuid, uuid, timestamptz, date, timestamptz, text);
ALTER TABLE vehicle_metrics_monthly DROP COLUMN fuel_cost, DROP COLUMN maintenance_cost;
COMMENT ON TABLE vehicle_metrics_monthly IS
  'per vehicle and calendar month (in the vehicle''s timezone), from its effective timeline; '
  'distances in the vehicle''s odometer unit; money is in vehicle_costs_monthly';
COMMENT ON COLUMN vehicle_metrics_monthly.economy_distance IS
  'distance of the plausible full-to-full intervals of liquid fuel closed this month (fill_economy); '
  'economy_litres is their fuel';

-- The metrics per period (grain: 'month' or 'day', in the vehicle's
-- timezone) from first_period on, computed from the events at or after
-- read_from and before read_to (NULL arguments: every tenant, vehicle,
-- period, time); the fills and their economy come from fill_economy. The
-- caller reads from early enough to see the reading and the full fill that
-- precede first_period (metrics_read_from).
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

-- Reports read a tenant's months of a period.
CREATE INDEX vehicle_metrics_monthly_month_idx ON vehicle_metrics_monthly (tenant_id, month);

-- A vehicle's metrics per day from from_day to to_day, computed on demand
-- (one vehicle's events in the range, and back to its last reading and full
-- fill): read with the caller's rights.
CREATE FUNCTION vehicle_metrics_daily(vehicle uuid, from_day date, to_day date)
RETURNS TABLE (day date, distance numeric, fuel_litres numeric, energy_kwh numeric, economy_distance numeric,
  economy_litres numeric, fills bigint, events bigint)
LANGUAGE sql STABLE AS $$
  SELECT m.period, m.distance, m.fuel_litres, m.energy_kwh, m.economy_distance, m.economy_litres, m.fills, m.events
    FROM vehicles v
   CROSS JOIN LATERAL compute_vehicle_metrics(v.tenant_id, v.id,
           metrics_read_from(v.tenant_id, v.id, from_day::timestamp AT TIME ZONE v.timezone), from_day,
           (to_day + 1)::timestamp AT TIME ZONE v.timezone, 'day') m
   WHERE v.id = vehicle AND v.tenant_id = coalesce(current_tenant_id(), v.tenant_id)
   ORDER BY m.period
$$;

-- ---- costs -----------------------------------------------------------------

CREATE TABLE vehicle_costs_monthly (
  tenant_id   uuid NOT NULL,
  vehicle_id  uuid NOT NULL,
  month       date NOT NULL,
  currency    text NOT NULL,
  category    text NOT NULL,
  amount      numeric NOT NULL,
  entries     bigint NOT NULL,
  litres      numeric NOT NULL,
  energy_kwh  numeric NOT NULL,
  PRIMARY KEY (tenant_id, vehicle_id, month, currency, category),
  FOREIGN KEY (tenant_id, vehicle_id) REFERENCES vehicles (tenant_id, id)
);
COMMENT ON TABLE vehicle_costs_monthly IS
  'what a vehicle spent per calendar month (its timezone), currency and category (cost_of): '
  'exact sums of amounts rounded to the currency''s minor unit; litres and energy_kwh: the fuel '
  'those fills bought (the price per unit in that currency)';
CREATE INDEX vehicle_costs_monthly_month_idx ON vehicle_costs_monthly (tenant_id, month);
SELECT protect_tenant_table('vehicle_costs_monthly', 'derived');

-- The costs per period, currency and category of the events at or after
-- read_from and before read_to (NULL: every tenant, vehicle, time).
CREATE FUNCTION compute_vehicle_costs(p_tenant uuid, p_vehicle uuid, read_from timestamptz,
  read_to timestamptz DEFAULT NULL, grain text DEFAULT 'month')
RETURNS TABLE (tenant_id uuid, vehicle_id uuid, period date, currency text, category text, amount numeric,
  entries bigint, litres numeric, energy_kwh numeric)
LANGUAGE sql STABLE AS $$
  SELECT e.tenant_id, e.vehicle_id, date_trunc(grain, e.occurred_at AT TIME ZONE v.timezone)::date,
         e.payload->>'currency', c.category, sum(c.amount), count(*),
         coalesce(sum(volume_litres((e.payload->>'volume')::numeric, e.payload->>'unit')) FILTER (WHERE e.type = 'fuel'), 0),
         coalesce(sum((e.payload->>'volume')::numeric) FILTER (WHERE e.type = 'fuel' AND e.payload->>'unit' = 'kwh'), 0)
    FROM vehicle_events_effective e
    JOIN vehicles v ON v.tenant_id = e.tenant_id AND v.id = e.vehicle_id
   CROSS JOIN LATERAL cost_of(e.type, e.payload) c
   WHERE e.type IN ('fuel', 'maintenance', 'damage')
     AND (p_tenant IS NULL OR e.tenant_id = p_tenant) AND (p_vehicle IS NULL OR e.vehicle_id = p_vehicle)
     AND e.occurred_at >= coalesce(read_from, '-infinity') AND e.occurred_at < coalesce(read_to, 'infinity')
   GROUP BY 1, 2, 3, 4, 5
$$;

-- Recomputes one vehicle's metrics and costs from the month of `since` on
-- (never before the archive); returns the metric rows written.
CREATE OR REPLACE FUNCTION recompute_vehicle_metrics(p_tenant uuid, p_vehicle uuid, since timestamptz) RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT SET jit = off SET motomind.maintenance = 'on' AS $fn$
DECLARE
  tz text := (SELECT v.timezone FROM vehicles v WHERE v.tenant_id = p_tenant AND v.id = p_vehicle);
  first_month date := date_trunc('month', coalesce(since, '-infinity') AT TIME ZONE tz)::date;
  month_start timestamptz;
  read_from timestamptz;
  n bigint;
BEGIN
  first_month := greatest(first_month, first_live_month(tz));
  month_start := first_month::timestamp AT TIME ZONE tz;
  -- (once: the metrics read the events twice, the readings and the fills)
  read_from := CASE WHEN first_month IS NOT NULL THEN metrics_read_from(p_tenant, p_vehicle, month_start) END;
  DELETE FROM vehicle_metrics_monthly m
   WHERE m.tenant_id = p_tenant AND m.vehicle_id = p_vehicle AND m.month >= coalesce(first_month, '-infinity');
  INSERT INTO vehicle_metrics_monthly SELECT * FROM compute_vehicle_metrics(p_tenant, p_vehicle, read_from, first_month);
  GET DIAGNOSTICS n = ROW_COUNT;
  DELETE FROM vehicle_costs_monthly m
   WHERE m.tenant_id = p_tenant AND m.vehicle_id = p_vehicle AND m.month >= coalesce(first_month, '-infinity');
  INSERT INTO vehicle_costs_monthly SELECT * FROM compute_vehicle_costs(p_tenant, p_vehicle, month_start);
  RETURN n;
END
$fn$;

-- Every vehicle's metrics and costs again, vehicle by vehicle (the reference
-- the incremental path is checked against, and a repair).
CREATE OR REPLACE FUNCTION recompute_metrics() RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT SET jit = off SET motomind.maintenance = 'on' AS $fn$
DECLARE
  h record;
  n bigint := 0;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext(current_schema() || '.metrics'));
  DELETE FROM vehicle_metrics_monthly m
   WHERE NOT EXISTS (SELECT 1 FROM vehicle_event_heads hd WHERE hd.tenant_id = m.tenant_id AND hd.vehicle_id = m.vehicle_id);
  DELETE FROM vehicle_costs_monthly m
   WHERE NOT EXISTS (SELECT 1 FROM vehicle_event_heads hd WHERE hd.tenant_id = m.tenant_id AND hd.vehicle_id = m.vehicle_id);
  FOR h IN SELECT hd.tenant_id, hd.vehicle_id FROM vehicle_event_heads hd ORDER BY 1, 2 LOOP
    n := n + recompute_vehicle_metrics(h.tenant_id, h.vehicle_id, NULL);
  END LOOP;
  RETURN n;
END
$fn$;

-- Costs land in the table the next time metrics advance; fill them now.
INSERT INTO vehicle_costs_monthly SELECT * FROM compute_vehicle_costs(NULL, NULL, NULL);

-- ---- the figures people read -----------------------------------------------

-- The economy of a distance in km on a volume (litres, or kWh when
-- electric) in every unit, two decimals; NULL where it does not apply.
CREATE FUNCTION economy_figures(km numeric, volume numeric, electric boolean DEFAULT false)
RETURNS TABLE (l_per_100km numeric, km_per_l numeric, mpg_us numeric, mpg_uk numeric, kwh_per_100km numeric,
  mi_per_kwh numeric)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN NOT electric THEN round(volume * 100 / nullif(km, 0), 2) END,
         CASE WHEN NOT electric THEN round(km / nullif(volume, 0), 2) END,
         CASE WHEN NOT electric THEN round(km / 1.609344 / nullif(volume / 3.785411784, 0), 2) END,
         CASE WHEN NOT electric THEN round(km / 1.609344 / nullif(volume / 4.54609, 0), 2) END,
         CASE WHEN electric THEN round(volume * 100 / nullif(km, 0), 2) END,
         CASE WHEN electric THEN round(km / 1.609344 / nullif(volume, 0), 2) END
$$;

-- Per vehicle and month: distance and economy in every unit.
CREATE VIEW vehicle_metrics WITH (security_invoker = true) AS
SELECT m.tenant_id, m.vehicle_id, m.month, v.odometer_unit, m.distance, m.fuel_litres, m.energy_kwh,
       m.economy_distance, m.economy_litres, x.l_per_100km, x.km_per_l, x.mpg_us, x.mpg_uk, m.fills, m.events
  FROM vehicle_metrics_monthly m
  JOIN vehicles v ON v.tenant_id = m.tenant_id AND v.id = m.vehicle_id
  CROSS JOIN LATERAL economy_figures(m.economy_distance * CASE v.odometer_unit WHEN 'mi' THEN 1.609344 ELSE 1 END,
                                     m.economy_litres) x;

-- Each fill of each vehicle with its interval's economy in every unit
-- (filter by vehicle_id: the fills are computed for the vehicles selected).
CREATE VIEW vehicle_fills WITH (security_invoker = true) AS
SELECT v.tenant_id, v.id AS vehicle_id, f.event_id, f.occurred_at, f.period AS month, f.mileage, v.odometer_unit,
       f.volume, f.unit, f.full, f.missed, f.cost, f.currency, f.distance, f.closes_interval, f.implausible,
       f.interval_distance, f.interval_volume,
       round(f.cost / nullif(f.volume, 0), 3) AS price_per_unit,
       round(f.cost / nullif(f.distance, 0), 4) AS cost_per_distance,
       x.l_per_100km, x.km_per_l, x.mpg_us, x.mpg_uk, x.kwh_per_100km, x.mi_per_kwh
  FROM vehicles v
  CROSS JOIN LATERAL fill_economy(v.tenant_id, v.id, NULL) f
  CROSS JOIN LATERAL economy_figures(f.interval_distance * CASE v.odometer_unit WHEN 'mi' THEN 1.609344 ELSE 1 END,
                                     f.interval_volume, f.electric) x;

-- Per vehicle, month and currency: what was spent, by the big two, and per
-- distance driven that month (in the vehicle's unit).
CREATE VIEW vehicle_costs WITH (security_invoker = true) AS
SELECT c.tenant_id, c.vehicle_id, c.month, c.currency,
       sum(c.amount) FILTER (WHERE c.category = 'fuel') AS fuel_cost,
       sum(c.amount) FILTER (WHERE c.category <> 'fuel') AS other_cost,
       sum(c.amount) AS total_cost, jsonb_object_agg(c.category, c.amount ORDER BY c.category) AS by_category,
       round(sum(c.amount) / nullif(max(m.distance), 0), 4) AS cost_per_distance
  FROM vehicle_costs_monthly c
  LEFT JOIN vehicle_metrics_monthly m ON m.tenant_id = c.tenant_id AND m.vehicle_id = c.vehicle_id AND m.month = c.month
 GROUP BY c.tenant_id, c.vehicle_id, c.month, c.currency;

-- Each live fleet group with every live group of its subtree, itself
-- included: what a group's roll-ups and reports count.
CREATE VIEW group_subtree WITH (security_invoker = true) AS
WITH RECURSIVE tree AS (
  SELECT g.tenant_id, g.id AS group_id, g.id AS member_id FROM fleet_groups g WHERE g.deleted_at IS NULL
  UNION ALL
  SELECT t.tenant_id, t.group_id, c.id FROM tree t
    JOIN fleet_groups c ON c.tenant_id = t.tenant_id AND c.parent_id = t.member_id AND c.deleted_at IS NULL)
SELECT tenant_id, group_id, member_id FROM tree;

-- Roll-ups: a group counts the vehicles of its whole subtree; distances in km.
CREATE VIEW group_metrics WITH (security_invoker = true) AS
SELECT t.tenant_id, t.group_id, m.month, count(DISTINCT m.vehicle_id) AS vehicles,
       sum(m.distance * CASE m.odometer_unit WHEN 'mi' THEN 1.609344 ELSE 1 END) AS distance_km,
       sum(m.fuel_litres) AS fuel_litres, sum(m.energy_kwh) AS energy_kwh
  FROM group_subtree t
  JOIN vehicles v ON v.tenant_id = t.tenant_id AND v.group_id = t.member_id AND v.deleted_at IS NULL
  JOIN vehicle_metrics m ON m.tenant_id = v.tenant_id AND m.vehicle_id = v.id
 GROUP BY t.tenant_id, t.group_id, m.month;

CREATE VIEW group_costs WITH (security_invoker = true) AS
SELECT t.tenant_id, t.group_id, c.month, c.currency, c.category, count(DISTINCT c.vehicle_id) AS vehicles,
       sum(c.amount) AS amount, sum(c.entries) AS entries
  FROM group_subtree t
  JOIN vehicles v ON v.tenant_id = t.tenant_id AND v.group_id = t.member_id AND v.deleted_at IS NULL
  JOIN vehicle_costs_monthly c ON c.tenant_id = v.tenant_id AND c.vehicle_id = v.id
 GROUP BY t.tenant_id, t.group_id, c.month, c.currency, c.category;

CREATE VIEW tenant_metrics WITH (security_invoker = true) AS
SELECT m.tenant_id, m.month, count(DISTINCT m.vehicle_id) AS vehicles,
       sum(m.distance * CASE m.odometer_unit WHEN 'mi' THEN 1.609344 ELSE 1 END) AS distance_km,
       sum(m.fuel_litres) AS fuel_litres, sum(m.energy_kwh) AS energy_kwh
  FROM vehicle_metrics m GROUP BY m.tenant_id, m.month;

CREATE VIEW tenant_costs WITH (security_invoker = true) AS
SELECT c.tenant_id, c.month, c.currency, c.category, count(DISTINCT c.vehicle_id) AS vehicles,
       sum(c.amount) AS amount, sum(c.entries) AS entries
  FROM vehicle_costs_monthly c
  JOIN vehicles v ON v.tenant_id = c.tenant_id AND v.id = c.vehicle_id AND v.deleted_at IS NULL
 GROUP BY c.tenant_id, c.month, c.currency, c.category;

DO $do$
BEGIN
  EXECUTE format('GRANT SELECT ON vehicle_metrics, vehicle_fills, vehicle_costs, group_subtree, group_metrics, group_costs, '
                 'tenant_metrics, tenant_costs TO %I', (SELECT value FROM settings WHERE key = 'app_role'));
END
$do$;
