-- Undoes 0043: the walk reads every touched vehicle again, grouping the
-- statement's rows itself, and the corrections' statements run for every
-- statement; the chain aggregate and edit_function go.
SELECT edit_function('check_new_events()', ARRAY[
$e$DECLARE
  bad record;
  -- the vehicles this statement writes, in order: bounds of their readings
  -- (NULL: none), whether it corrects any, whether its head is new, and
  -- the chain's step
  heads_t uuid[]; heads_v uuid[]; heads_lo timestamptz[]; heads_hi timestamptz[];
  heads_corrected boolean[]; heads_created boolean[]; heads_step numeric[];
$e$,
$e$DECLARE
  bad record;
$e$,
$e$  -- (xmax = 0: the row was inserted, not updated.)
  WITH g AS MATERIALIZED (
    SELECT tenant_id, vehicle_id, max(occurred_at) AS last_at, min(least(occurred_at, corrects_occurred_at)) AS dirty_from,
           min(occurred_at) FILTER (WHERE mileage IS NOT NULL OR corrects_id IS NOT NULL) AS lo,
           max(occurred_at) FILTER (WHERE mileage IS NOT NULL OR corrects_id IS NOT NULL) AS hi,
           bool_or(corrects_id IS NOT NULL) AS corrected
      FROM new_events GROUP BY tenant_id, vehicle_id),
  up AS (
    INSERT INTO vehicle_event_heads AS h (tenant_id, vehicle_id, last_occurred_at, dirty_from, changed_at)
    SELECT tenant_id, vehicle_id, last_at, dirty_from, now() FROM g ORDER BY tenant_id, vehicle_id
    ON CONFLICT (tenant_id, vehicle_id) DO UPDATE
       SET last_occurred_at = greatest(h.last_occurred_at, excluded.last_occurred_at),
           dirty_from = least(h.dirty_from, excluded.dirty_from),
           changed_at = excluded.changed_at
    RETURNING h.tenant_id, h.vehicle_id, h.xmax = 0 AS created)
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
$e$  INSERT INTO vehicle_event_heads AS h (tenant_id, vehicle_id, last_occurred_at, dirty_from, changed_at)
  SELECT tenant_id, vehicle_id, max(occurred_at), min(least(occurred_at, corrects_occurred_at)), now()
    FROM new_events GROUP BY tenant_id, vehicle_id ORDER BY tenant_id, vehicle_id
  ON CONFLICT (tenant_id, vehicle_id) DO UPDATE
     SET last_occurred_at = greatest(h.last_occurred_at, excluded.last_occurred_at),
         dirty_from = least(h.dirty_from, excluded.dirty_from),
         changed_at = excluded.changed_at;
$e$,
$e$      FROM unnest(heads_t, heads_v, heads_lo, heads_hi, heads_corrected, heads_created, heads_step)
             g(tenant_id, vehicle_id, lo, hi, corrected, created, step)
      JOIN vehicles v ON v.tenant_id = g.tenant_id AND v.id = g.vehicle_id
     WHERE g.lo IS NOT NULL
       AND NOT coalesce(g.created AND NOT g.corrected AND g.step <= max_daily_distance(v.odometer_unit), false)),
$e$,
$e$      FROM (SELECT n.tenant_id, n.vehicle_id, min(n.occurred_at) AS lo, max(n.occurred_at) AS hi
              FROM new_events n
             WHERE n.mileage IS NOT NULL OR n.corrects_id IS NOT NULL
             GROUP BY n.tenant_id, n.vehicle_id) g
      JOIN vehicles v ON v.tenant_id = g.tenant_id AND v.id = g.vehicle_id),
$e$,
$e$  -- (A statement without corrections skips the two statements about them.)
  IF true = ANY (heads_corrected) THEN
  -- Corrections point at an original event of the same vehicle (not at
$e$,
$e$  -- Corrections point at an original event of the same vehicle (not at
$e$,
$e$  ON CONFLICT (tenant_id, event_id, occurred_at) DO UPDATE SET superseded_by = excluded.superseded_by;
  END IF;
$e$,
$e$  ON CONFLICT (tenant_id, event_id, occurred_at) DO UPDATE SET superseded_by = excluded.superseded_by;
$e$], '0043 down');
DROP FUNCTION edit_function(regprocedure, text[], text);
DROP AGGREGATE IF EXISTS mileage_chain(timestamptz, numeric);
DROP FUNCTION IF EXISTS mileage_chain_final(internal);
DROP FUNCTION IF EXISTS mileage_chain_step(internal, timestamptz, numeric);
