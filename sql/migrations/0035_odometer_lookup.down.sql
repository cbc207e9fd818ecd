-- motomind 0035 down: vehicle_odometer as 0010 made it (SQL, planned at every call).
CREATE OR REPLACE FUNCTION vehicle_odometer(p_tenant uuid, p_vehicle uuid,
  OUT mileage numeric, OUT mileage_at timestamptz, OUT distance_per_day numeric)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
  WITH last AS (
    SELECT e.mileage, e.occurred_at FROM vehicle_events_effective e
     WHERE e.tenant_id = p_tenant AND e.vehicle_id = p_vehicle AND e.mileage IS NOT NULL
     ORDER BY e.occurred_at DESC, e.mileage DESC LIMIT 1),
  recent AS (
    SELECT e.mileage, e.occurred_at FROM vehicle_events_effective e, last
     WHERE e.tenant_id = p_tenant AND e.vehicle_id = p_vehicle AND e.mileage IS NOT NULL
       AND e.occurred_at >= last.occurred_at - interval '90 days'
     ORDER BY e.occurred_at, e.mileage LIMIT 1),
  first AS (
    SELECT e.mileage, e.occurred_at FROM vehicle_events_effective e
     WHERE e.tenant_id = p_tenant AND e.vehicle_id = p_vehicle AND e.mileage IS NOT NULL
     ORDER BY e.occurred_at, e.mileage LIMIT 1),
  base AS (
    SELECT CASE WHEN last.occurred_at - recent.occurred_at >= interval '14 days' THEN recent.mileage ELSE first.mileage END AS mileage,
           CASE WHEN last.occurred_at - recent.occurred_at >= interval '14 days' THEN recent.occurred_at ELSE first.occurred_at END AS at
      FROM last, recent, first)
  SELECT last.mileage, last.occurred_at,
         CASE WHEN last.occurred_at - base.at >= interval '1 day'
              THEN (last.mileage - base.mileage) / (extract(epoch FROM last.occurred_at - base.at) / 86400) END
    FROM last LEFT JOIN base ON true
$$;
