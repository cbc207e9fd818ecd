-- motomind 0033 down: every marked vehicle advances on its own again (0008's advance_metrics).
CREATE OR REPLACE FUNCTION advance_metrics(max_vehicles integer DEFAULT NULL) RETURNS integer
LANGUAGE plpgsql SET search_path FROM CURRENT SET jit = off SET motomind.maintenance = 'on' AS $fn$
DECLARE
  h record;
  done_t uuid[] := '{}';
  done_v uuid[] := '{}';
  done_x text[] := '{}';
  msg text;
  state text;
BEGIN
  IF NOT pg_try_advisory_xact_lock(hashtext(current_schema() || '.metrics')) THEN RETURN 0; END IF;
  FOR h IN
    SELECT hd.tenant_id, hd.vehicle_id, hd.dirty_from, hd.xmin::text AS x FROM vehicle_event_heads hd
     WHERE hd.dirty_from IS NOT NULL ORDER BY hd.tenant_id, hd.vehicle_id LIMIT max_vehicles
  LOOP
    BEGIN
      PERFORM recompute_vehicle_metrics(h.tenant_id, h.vehicle_id, h.dirty_from);
      done_t := done_t || h.tenant_id;
      done_v := done_v || h.vehicle_id;
      done_x := done_x || h.x;
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
      PERFORM record_failure('metrics', format('vehicle %s of tenant %s', h.vehicle_id, h.tenant_id), msg, state);
    END;
  END LOOP;
  UPDATE vehicle_event_heads hd SET dirty_from = NULL
    FROM unnest(done_t, done_v, done_x) AS d(t, v, x)
   WHERE hd.tenant_id = d.t AND hd.vehicle_id = d.v AND hd.xmin::text = d.x;
  RETURN cardinality(done_v);
END
$fn$;

DROP FUNCTION advance_tenant_metrics(integer);
