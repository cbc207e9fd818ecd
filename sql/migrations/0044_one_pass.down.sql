-- Undoes 0044: the triggers pass over the statement's rows once per
-- statement again, and creates_reminder goes.
ALTER FUNCTION events_drive_reminders() RESET jit;
SELECT edit_function('check_new_events()', ARRAY[
$e$  heads_corrected boolean[]; heads_created boolean[]; heads_step numeric[];
  -- each vehicle's latest time and earliest time changed; whether the
  -- native payload rules refused a row (NULL: not asked)
  heads_last timestamptz[]; heads_dirty timestamptz[]; payload_refused boolean;
$e$,
$e$  heads_corrected boolean[]; heads_created boolean[]; heads_step numeric[];
$e$,
$e$BEGIN
  -- One pass over the statement's rows, per vehicle in order; with the
  -- motomind_pg library it also takes each vehicle's chain step and asks
  -- the native payload rules of each row (0044).
  IF to_regprocedure('payload_problem_native(text,text,jsonb)') IS NOT NULL
     AND to_regprocedure('mileage_chain(timestamptz,numeric)') IS NOT NULL THEN
    SELECT array_agg(tenant_id ORDER BY tenant_id, vehicle_id), array_agg(vehicle_id ORDER BY tenant_id, vehicle_id),
           array_agg(last_at ORDER BY tenant_id, vehicle_id), array_agg(dirty_from ORDER BY tenant_id, vehicle_id),
           array_agg(lo ORDER BY tenant_id, vehicle_id), array_agg(hi ORDER BY tenant_id, vehicle_id),
           array_agg(corrected ORDER BY tenant_id, vehicle_id), array_agg(step ORDER BY tenant_id, vehicle_id),
           coalesce(bool_or(refused), false)
      INTO heads_t, heads_v, heads_last, heads_dirty, heads_lo, heads_hi, heads_corrected, heads_step, payload_refused
      FROM (SELECT tenant_id, vehicle_id, max(occurred_at) AS last_at, min(least(occurred_at, corrects_occurred_at)) AS dirty_from,
                   min(occurred_at) FILTER (WHERE mileage IS NOT NULL OR corrects_id IS NOT NULL) AS lo,
                   max(occurred_at) FILTER (WHERE mileage IS NOT NULL OR corrects_id IS NOT NULL) AS hi,
                   bool_or(corrects_id IS NOT NULL) AS corrected,
                   mileage_chain(occurred_at, mileage) FILTER (WHERE mileage IS NOT NULL) AS step,
                   bool_or(payload_problem_native(payload_document(), type, payload) IS NOT NULL)
                     FILTER (WHERE correction IS DISTINCT FROM 'void') AS refused
              FROM new_events GROUP BY tenant_id, vehicle_id) g;
  ELSE
    SELECT array_agg(tenant_id ORDER BY tenant_id, vehicle_id), array_agg(vehicle_id ORDER BY tenant_id, vehicle_id),
           array_agg(last_at ORDER BY tenant_id, vehicle_id), array_agg(dirty_from ORDER BY tenant_id, vehicle_id),
           array_agg(lo ORDER BY tenant_id, vehicle_id), array_agg(hi ORDER BY tenant_id, vehicle_id),
           array_agg(corrected ORDER BY tenant_id, vehicle_id)
      INTO heads_t, heads_v, heads_last, heads_dirty, heads_lo, heads_hi, heads_corrected
      FROM (SELECT tenant_id, vehicle_id, max(occurred_at) AS last_at, min(least(occurred_at, corrects_occurred_at)) AS dirty_from,
                   min(occurred_at) FILTER (WHERE mileage IS NOT NULL OR corrects_id IS NOT NULL) AS lo,
                   max(occurred_at) FILTER (WHERE mileage IS NOT NULL OR corrects_id IS NOT NULL) AS hi,
                   bool_or(corrects_id IS NOT NULL) AS corrected
              FROM new_events GROUP BY tenant_id, vehicle_id) g;
  END IF;

  -- Serialize writers per vehicle: lock (create) each touched vehicle's head,
  -- in a stable order. Under REPEATABLE READ / SERIALIZABLE a concurrent
  -- writer to the same vehicle gets a serialization failure (retry).
  -- (xmax = 0: the row was inserted, not updated.)
  WITH up AS (
    INSERT INTO vehicle_event_heads AS h (tenant_id, vehicle_id, last_occurred_at, dirty_from, changed_at)
    SELECT tenant_id, vehicle_id, last_at, dirty_from, now()
      FROM unnest(heads_t, heads_v, heads_last, heads_dirty) g(tenant_id, vehicle_id, last_at, dirty_from)
     ORDER BY tenant_id, vehicle_id
$e$,
$e$BEGIN
  -- Serialize writers per vehicle: lock (create) each touched vehicle's head,
  -- in a stable order. Under REPEATABLE READ / SERIALIZABLE a concurrent
  -- writer to the same vehicle gets a serialization failure (retry).
  -- (xmax = 0: the row was inserted, not updated.)
  WITH g AS MATERIALIZED (
    SELECT tenant_id, vehicle_id, max(occurred_at) AS last_at, min(least(occurred_at, corrects_occurred_at)) AS dirty_from,
           min(occurred_at) FILTER (WHERE mileage IS NOT NULL OR corrects_id IS NOT NULL) AS lo,
           max(occurred_at) FILTER (WHERE mileage IS NOT NULL OR corrects_id IS NOT NULL) AS hi,
           bool_or(corrects_id IS NOT NULL) AS corrected
      FROM new_events GROUP BY tenant_id, vehicle_id),
  up AS (
    INSERT INTO vehicle_event_heads AS h (tenant_id, vehicle_id, last_occurred_at, dirty_from, changed_at)
    SELECT tenant_id, vehicle_id, last_at, dirty_from, now() FROM g ORDER BY tenant_id, vehicle_id
$e$,
$e$    RETURNING h.tenant_id, h.vehicle_id, h.xmax = 0 AS created)
  SELECT array_agg(created ORDER BY tenant_id, vehicle_id) INTO heads_created FROM up;
$e$,
$e$    RETURNING h.tenant_id, h.vehicle_id, h.xmax = 0 AS created)
  SELECT array_agg(tenant_id ORDER BY tenant_id, vehicle_id), array_agg(vehicle_id ORDER BY tenant_id, vehicle_id),
         array_agg(lo ORDER BY tenant_id, vehicle_id), array_agg(hi ORDER BY tenant_id, vehicle_id),
         array_agg(corrected ORDER BY tenant_id, vehicle_id),
         (SELECT array_agg(created ORDER BY tenant_id, vehicle_id) FROM up)
    INTO heads_t, heads_v, heads_lo, heads_hi, heads_corrected, heads_created
    FROM g;
  IF true = ANY (heads_created) AND to_regprocedure('mileage_chain(timestamptz,numeric)') IS NOT NULL THEN
    SELECT array_agg(step ORDER BY tenant_id, vehicle_id) INTO heads_step
      FROM (SELECT tenant_id, vehicle_id, mileage_chain(occurred_at, mileage) FILTER (WHERE mileage IS NOT NULL) AS step
              FROM new_events GROUP BY tenant_id, vehicle_id) c;
  END IF;
$e$,
$e$  -- Payloads (a void carries none). Refused by the native rules in the
  -- pass above: the first refused row. Not asked (no library): a few rows
  -- row by row, preparing only their types' rules; many rows: the whole
  -- rule set inlined, set-based.
  IF payload_refused THEN
$e$,
$e$  -- Payloads (a void carries none). A few rows: row by row, preparing only
  -- their types' rules; many rows: the whole rule set inlined, set-based.
  IF to_regprocedure('payload_problem_native(text,text,jsonb)') IS NOT NULL THEN
$e$,
$e$  ELSIF payload_refused IS NULL AND (SELECT count(*) FROM (SELECT 1 FROM new_events LIMIT 17) few) <= 16 THEN
$e$,
$e$  ELSIF (SELECT count(*) FROM (SELECT 1 FROM new_events LIMIT 17) few) <= 16 THEN
$e$,
$e$  ELSIF payload_refused IS NULL THEN
    SELECT n.id, payload_problem(n.type, n.payload) AS problem INTO bad
$e$,
$e$  ELSE
    SELECT n.id, payload_problem(n.type, n.payload) AS problem INTO bad
$e$,
$e$  IF payload_refused IS DISTINCT FROM false AND FOUND THEN
    RAISE EXCEPTION USING MESSAGE = bad.problem, ERRCODE = 'check_violation',
$e$,
$e$  IF FOUND THEN
    RAISE EXCEPTION USING MESSAGE = bad.problem, ERRCODE = 'check_violation',
$e$], '0044 down');

SELECT edit_function('events_drive_reminders()', ARRAY[
$e$  n bigint;
  -- the vehicles this statement writes, in order, and whether it moves each
  -- one's odometer, touches events its tied reminders follow, may create a
  -- reminder
  veh_t uuid[]; veh_v uuid[]; veh_odometer boolean[]; veh_tied boolean[]; veh_creates boolean;
BEGIN
  SELECT array_agg(tenant_id ORDER BY tenant_id, vehicle_id), array_agg(vehicle_id ORDER BY tenant_id, vehicle_id),
         array_agg(odometer ORDER BY tenant_id, vehicle_id), array_agg(tied ORDER BY tenant_id, vehicle_id), bool_or(creates)
    INTO veh_t, veh_v, veh_odometer, veh_tied, veh_creates
    FROM (SELECT tenant_id, vehicle_id, bool_or(mileage IS NOT NULL OR corrects_id IS NOT NULL) AS odometer,
                 bool_or(type IN ('maintenance', 'inspection', 'document') OR corrects_id IS NOT NULL) AS tied,
                 bool_or(creates_reminder(type, correction, payload)) AS creates
            FROM new_events GROUP BY tenant_id, vehicle_id) g;

  UPDATE vehicle_event_heads h SET mileage = o.mileage, mileage_at = o.mileage_at, distance_per_day = o.distance_per_day
    FROM unnest(veh_t, veh_v, veh_odometer) t(tenant_id, vehicle_id, moved)
    CROSS JOIN LATERAL vehicle_odometer(t.tenant_id, t.vehicle_id) o
   WHERE t.moved AND h.tenant_id = t.tenant_id AND h.vehicle_id = t.vehicle_id;
$e$,
$e$  n bigint;
BEGIN
  UPDATE vehicle_event_heads h SET mileage = o.mileage, mileage_at = o.mileage_at, distance_per_day = o.distance_per_day
    FROM (SELECT DISTINCT tenant_id, vehicle_id FROM new_events WHERE mileage IS NOT NULL OR corrects_id IS NOT NULL) t
    CROSS JOIN LATERAL vehicle_odometer(t.tenant_id, t.vehicle_id) o
   WHERE h.tenant_id = t.tenant_id AND h.vehicle_id = t.vehicle_id;
$e$,
$e$  IF veh_creates THEN
  INSERT INTO reminders (tenant_id, vehicle_id, title,$e$,
$e$  INSERT INTO reminders (tenant_id, vehicle_id, title,$e$,
$e$   WHERE creates_reminder(n.type, n.correction, n.payload)
$e$,
$e$   WHERE n.correction IS DISTINCT FROM 'void'
     AND ((n.type = 'maintenance' AND n.payload ? 'next_service') OR (n.type IN ('inspection', 'document') AND n.payload ? 'expires_on'))
$e$,
$e$   ORDER BY n.tenant_id, n.vehicle_id, n.type, k.tie, n.occurred_at;
  END IF;
$e$,
$e$   ORDER BY n.tenant_id, n.vehicle_id, n.type, k.tie, n.occurred_at;
$e$,
$e$     WHERE (x.tenant_id, x.vehicle_id) IN (SELECT t, v FROM unnest(veh_t, veh_v, veh_tied) u(t, v, tied) WHERE tied)
$e$,
$e$     WHERE (x.tenant_id, x.vehicle_id) IN (SELECT DISTINCT tenant_id, vehicle_id FROM new_events
                                            WHERE type IN ('maintenance', 'inspection', 'document') OR corrects_id IS NOT NULL)
$e$,
$e$  SELECT x.* FROM unnest(veh_t, veh_v) t(tenant_id, vehicle_id) CROSS JOIN LATERAL (
$e$,
$e$  SELECT x.* FROM (SELECT DISTINCT tenant_id, vehicle_id FROM new_events) t CROSS JOIN LATERAL (
$e$], '0044 down');

DROP FUNCTION creates_reminder(text, text, jsonb);
