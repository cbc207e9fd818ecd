-- Undoes 0028: costs without the money of the priced fills
-- (compute_vehicle_costs as 0015 made it, copied on purpose).
DROP FUNCTION compute_vehicle_costs(uuid, uuid, timestamptz, timestamptz, text);
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
ALTER TABLE vehicle_costs_monthly DROP COLUMN litres_amount, DROP COLUMN kwh_amount;
