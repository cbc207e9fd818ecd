-- A full recomputation clears the marks it made stale.
--
-- recompute_metrics rebuilt every vehicle's metrics and costs but left each
-- head's dirty_from mark, so the next advance_metrics recomputed, again,
-- every vehicle written before the full pass (after a bulk load, all of
-- them: the bench measured "incremental after 1,000 new events" advancing
-- 1,000 vehicles, at 2x the cost of a full pass instead of >= 20x). Now each
-- vehicle's mark is cleared with its recomputation, unless a writer marked
-- it again meanwhile (the head row's xmin changed), as advance_metrics does.

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
  FOR h IN SELECT hd.tenant_id, hd.vehicle_id, hd.xmin::text AS x FROM vehicle_event_heads hd ORDER BY 1, 2 LOOP
    n := n + recompute_vehicle_metrics(h.tenant_id, h.vehicle_id, NULL);
    UPDATE vehicle_event_heads hd SET dirty_from = NULL
     WHERE hd.tenant_id = h.tenant_id AND hd.vehicle_id = h.vehicle_id AND hd.dirty_from IS NOT NULL
       AND hd.xmin::text = h.x;
  END LOOP;
  RETURN n;
END
$fn$;
