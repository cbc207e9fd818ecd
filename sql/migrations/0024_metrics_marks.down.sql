-- Undoes 0024: the full recomputation leaves the heads' marks (0015's body).
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
