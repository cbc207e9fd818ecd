-- Metrics after a bulk load, a tenant at a time (#17).
--
-- advance_metrics() recomputed each marked vehicle on its own, in its own
-- subtransaction, each statement planned again (custom plans: the metric
-- functions' (p IS NULL OR col = p) filters) for one vehicle's events. After
-- a bulk load every vehicle is marked from its first event, and that cost
-- 15 ms a vehicle of 500 events at 1M events, 138 ms at 10M (46 minutes of
-- maintain() after loading 10M). A tenant most of whose vehicles are marked
-- from their first event (a load, an import) is now recomputed in one
-- statement per table: advance_tenant_metrics(), called first by
-- advance_metrics(). It writes what the per-vehicle path writes for such a
-- vehicle, its whole history, and clears the marks it saw unchanged (xmin),
-- as the per-vehicle path does. Left to the per-vehicle path: vehicles
-- marked from later than their first event, tenants with few marked
-- vehicles (a statement over the tenant's events would compute the others
-- for nothing), anything once partitions are archived (the retention
-- floor), and a tenant whose statement fails (the per-vehicle path then
-- records the vehicle that fails and goes on).

CREATE FUNCTION advance_tenant_metrics(max_vehicles integer DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql SET search_path FROM CURRENT SET jit = off SET motomind.maintenance = 'on' AS $fn$
DECLARE
  t record;
  n integer := 0;
BEGIN
  IF NOT pg_try_advisory_xact_lock(hashtext(current_schema() || '.metrics'))
     OR first_live_month('UTC') IS NOT NULL THEN
    RETURN 0;
  END IF;
  FOR t IN
    SELECT hd.tenant_id, array_agg(hd.vehicle_id) AS vehicles, array_agg(hd.xmin::text) AS xs
      FROM vehicle_event_heads hd
     WHERE hd.dirty_from IS NOT NULL
       AND hd.dirty_from <= (SELECT min(e.occurred_at) FROM vehicle_events e
                               WHERE e.tenant_id = hd.tenant_id AND e.vehicle_id = hd.vehicle_id)
     GROUP BY hd.tenant_id
    HAVING count(*) * 2 > (SELECT count(*) FROM vehicle_event_heads a WHERE a.tenant_id = hd.tenant_id)
     ORDER BY hd.tenant_id
  LOOP
    EXIT WHEN n + cardinality(t.vehicles) > max_vehicles;
    BEGIN
      DELETE FROM vehicle_metrics_monthly m WHERE m.tenant_id = t.tenant_id AND m.vehicle_id = ANY (t.vehicles);
      INSERT INTO vehicle_metrics_monthly
        SELECT c.* FROM compute_vehicle_metrics(t.tenant_id, NULL, NULL, NULL) c WHERE c.vehicle_id = ANY (t.vehicles);
      DELETE FROM vehicle_costs_monthly m WHERE m.tenant_id = t.tenant_id AND m.vehicle_id = ANY (t.vehicles);
      INSERT INTO vehicle_costs_monthly
        SELECT c.* FROM compute_vehicle_costs(t.tenant_id, NULL, NULL) c WHERE c.vehicle_id = ANY (t.vehicles);
      UPDATE vehicle_event_heads hd SET dirty_from = NULL
        FROM unnest(t.vehicles, t.xs) AS d(v, x)
       WHERE hd.tenant_id = t.tenant_id AND hd.vehicle_id = d.v AND hd.xmin::text = d.x;
      n := n + cardinality(t.vehicles);
    EXCEPTION WHEN OTHERS THEN
      NULL; -- left marked: the per-vehicle path takes them, and records the failing one
    END;
  END LOOP;
  RETURN n;
END
$fn$;
COMMENT ON FUNCTION advance_tenant_metrics(integer) IS
  'recomputes, one statement per table and tenant, the metrics of vehicles marked from their first event '
  'when they are most of their tenant''s (after a load); returns how many; advance_metrics() calls it first';

-- 0008's advance_metrics, unchanged, is the per-vehicle path; advance_metrics
-- runs the tenants first, then it.
ALTER FUNCTION advance_metrics(integer) RENAME TO advance_vehicle_metrics;
COMMENT ON FUNCTION advance_vehicle_metrics(integer) IS
  'recomputes each marked vehicle''s metrics from its mark, in its own subtransaction (failures recorded); '
  'returns how many';
CREATE FUNCTION advance_metrics(max_vehicles integer DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  bulk integer;
BEGIN
  IF NOT pg_try_advisory_xact_lock(hashtext(current_schema() || '.metrics')) THEN RETURN 0; END IF;
  bulk := advance_tenant_metrics(max_vehicles);
  RETURN bulk + advance_vehicle_metrics(max_vehicles - bulk);
END
$fn$;

REVOKE EXECUTE ON FUNCTION advance_tenant_metrics(integer), advance_metrics(integer) FROM PUBLIC;
