-- motomind 0028: the price of fuel and of charging, exact (#14).
-- vehicle_costs_monthly kept the litres and kWh its fills bought, but only
-- the whole category's money: a price per litre divided the cost of every
-- fill of the month (one without a volume, a plug-in hybrid's charges) by
-- the litres of some. Two columns keep the money of the fills that state
-- their litres (litres_amount) and of the charges that state their kWh
-- (kwh_amount), so both prices are exact quotients.

ALTER TABLE vehicle_costs_monthly
  ADD COLUMN litres_amount numeric NOT NULL DEFAULT 0,
  ADD COLUMN kwh_amount numeric NOT NULL DEFAULT 0;
COMMENT ON COLUMN vehicle_costs_monthly.litres_amount IS
  'the money of the fills that state their volume in litres or gallons: litres_amount / litres is the price per litre';
COMMENT ON COLUMN vehicle_costs_monthly.kwh_amount IS
  'the money of the charges that state their kWh: kwh_amount / energy_kwh is the price per kWh';

DROP FUNCTION compute_vehicle_costs(uuid, uuid, timestamptz, timestamptz, text);
-- The costs per period, currency and category of the events at or after
-- read_from and before read_to (NULL: every tenant, vehicle, time).
CREATE FUNCTION compute_vehicle_costs(p_tenant uuid, p_vehicle uuid, read_from timestamptz,
  read_to timestamptz DEFAULT NULL, grain text DEFAULT 'month')
RETURNS TABLE (tenant_id uuid, vehicle_id uuid, period date, currency text, category text, amount numeric,
  entries bigint, litres numeric, energy_kwh numeric, litres_amount numeric, kwh_amount numeric)
LANGUAGE sql STABLE AS $$
  SELECT e.tenant_id, e.vehicle_id, date_trunc(grain, e.occurred_at AT TIME ZONE v.timezone)::date,
         e.payload->>'currency', c.category, sum(c.amount), count(*),
         coalesce(sum(f.litres), 0), coalesce(sum(f.kwh), 0),
         coalesce(sum(c.amount) FILTER (WHERE f.litres IS NOT NULL), 0),
         coalesce(sum(c.amount) FILTER (WHERE f.kwh IS NOT NULL), 0)
    FROM vehicle_events_effective e
    JOIN vehicles v ON v.tenant_id = e.tenant_id AND v.id = e.vehicle_id
   CROSS JOIN LATERAL cost_of(e.type, e.payload) c
   CROSS JOIN LATERAL (SELECT CASE WHEN e.type = 'fuel' THEN volume_litres((e.payload->>'volume')::numeric, e.payload->>'unit') END,
                              CASE WHEN e.type = 'fuel' AND e.payload->>'unit' = 'kwh' THEN (e.payload->>'volume')::numeric END)
                           AS f(litres, kwh)
   WHERE e.type IN ('fuel', 'maintenance', 'damage')
     AND (p_tenant IS NULL OR e.tenant_id = p_tenant) AND (p_vehicle IS NULL OR e.vehicle_id = p_vehicle)
     AND e.occurred_at >= coalesce(read_from, '-infinity') AND e.occurred_at < coalesce(read_to, 'infinity')
   GROUP BY 1, 2, 3, 4, 5
$$;

-- The months already computed get their prices' money.
UPDATE vehicle_costs_monthly m SET litres_amount = c.litres_amount, kwh_amount = c.kwh_amount
  FROM compute_vehicle_costs(NULL, NULL, NULL) c
 WHERE c.tenant_id = m.tenant_id AND c.vehicle_id = m.vehicle_id AND c.period = m.month
   AND c.currency = m.currency AND c.category = m.category
   AND (c.litres_amount <> 0 OR c.kwh_amount <> 0);
