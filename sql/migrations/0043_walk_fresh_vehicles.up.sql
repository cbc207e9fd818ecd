-- motomind 0043: the mileage walk leaves out new vehicles whose readings
-- need no verdict (#17). At a million new readings the walk (an index scan
-- of every touched vehicle's readings through a window) was the largest of
-- the rules: 1.5 of the ~3.9 s the trigger's statements took in a COPY of
-- 12.4 s (auto_explain). A vehicle is fresh when this statement created
-- its head (nothing of it existed before: every statement that writes a
-- vehicle's events upserts its head, and the head's foreign key keeps the
-- vehicle) and corrects none of its events: its readings are then exactly
-- the statement's. When the motomind_pg library loads (as for 0038),
-- mileage_chain(occurred_at, mileage) gives the largest step between a
-- vehicle's neighbouring readings in the walk's order, or NULL when mileage
-- goes down along it (src/pg/walk.c: collected, sorted unless they arrived
-- in order, compared exactly); a fresh vehicle whose largest step is at most its daily
-- maximum has nothing to refuse or flag, and is not walked. Every other
-- vehicle is walked as before, so the walk stays the one definition of the
-- verdicts and flags. The heads' upsert now also gives the walk its
-- vehicles and bounds (arrays in the vehicles' order, which the chain's
-- array follows), where the walk grouped the statement's rows again;
-- a statement without corrections skips the two statements about them.
-- Without the library a warning says why, and every vehicle is walked.
DO $do$
BEGIN
  CREATE FUNCTION mileage_chain_step(internal, timestamptz, numeric) RETURNS internal
    LANGUAGE C CALLED ON NULL INPUT AS 'motomind_pg', 'motomind_chain_step';
  CREATE FUNCTION mileage_chain_final(internal) RETURNS numeric
    LANGUAGE C AS 'motomind_pg', 'motomind_chain_final';
  CREATE AGGREGATE mileage_chain(timestamptz, numeric) (
    SFUNC = mileage_chain_step, STYPE = internal, SSPACE = 64,
    FINALFUNC = mileage_chain_final, FINALFUNC_MODIFY = READ_WRITE);
  REVOKE ALL ON FUNCTION mileage_chain(timestamptz, numeric) FROM PUBLIC;
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'motomind: the mileage walk reads every vehicle (%)', SQLERRM
    USING HINT = 'make install-pg puts the motomind_pg library where PostgreSQL loads it; a superuser migrates';
END
$do$;

-- edit_function(fn, edits, label): recreates fn from its definition in the
-- catalog with each edits[i] (odd i) replaced by edits[i + 1], each
-- checked to match exactly once (label names the migration in the error).
-- The migrations before this one each carried this loop.
CREATE FUNCTION edit_function(fn regprocedure, edits text[], label text) RETURNS void
LANGUAGE plpgsql AS $f$
DECLARE
  def text := pg_get_functiondef(fn);
  i int;
BEGIN
  FOR i IN 1 .. array_length(edits, 1) BY 2 LOOP
    IF (length(def) - length(replace(def, edits[i], ''))) <> length(edits[i]) THEN
      RAISE EXCEPTION '%: % has not exactly one "%"', label, fn, edits[i];
    END IF;
    def := replace(def, edits[i], edits[i + 1]);
  END LOOP;
  EXECUTE def;
END
$f$;
REVOKE ALL ON FUNCTION edit_function(regprocedure, text[], text) FROM PUBLIC;

SELECT edit_function('check_new_events()', ARRAY[
$e$DECLARE
  bad record;
$e$,
$e$DECLARE
  bad record;
  -- the vehicles this statement writes, in order: bounds of their readings
  -- (NULL: none), whether it corrects any, whether its head is new, and
  -- the chain's step
  heads_t uuid[]; heads_v uuid[]; heads_lo timestamptz[]; heads_hi timestamptz[];
  heads_corrected boolean[]; heads_created boolean[]; heads_step numeric[];
$e$,
$e$  INSERT INTO vehicle_event_heads AS h (tenant_id, vehicle_id, last_occurred_at, dirty_from, changed_at)
  SELECT tenant_id, vehicle_id, max(occurred_at), min(least(occurred_at, corrects_occurred_at)), now()
    FROM new_events GROUP BY tenant_id, vehicle_id ORDER BY tenant_id, vehicle_id
  ON CONFLICT (tenant_id, vehicle_id) DO UPDATE
     SET last_occurred_at = greatest(h.last_occurred_at, excluded.last_occurred_at),
         dirty_from = least(h.dirty_from, excluded.dirty_from),
         changed_at = excluded.changed_at;
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
$e$      FROM (SELECT n.tenant_id, n.vehicle_id, min(n.occurred_at) AS lo, max(n.occurred_at) AS hi
              FROM new_events n
             WHERE n.mileage IS NOT NULL OR n.corrects_id IS NOT NULL
             GROUP BY n.tenant_id, n.vehicle_id) g
      JOIN vehicles v ON v.tenant_id = g.tenant_id AND v.id = g.vehicle_id),
$e$,
$e$      FROM unnest(heads_t, heads_v, heads_lo, heads_hi, heads_corrected, heads_created, heads_step)
             g(tenant_id, vehicle_id, lo, hi, corrected, created, step)
      JOIN vehicles v ON v.tenant_id = g.tenant_id AND v.id = g.vehicle_id
     WHERE g.lo IS NOT NULL
       AND NOT coalesce(g.created AND NOT g.corrected AND g.step <= max_daily_distance(v.odometer_unit), false)),
$e$,
$e$  -- Corrections point at an original event of the same vehicle (not at
$e$,
$e$  -- (A statement without corrections skips the two statements about them.)
  IF true = ANY (heads_corrected) THEN
  -- Corrections point at an original event of the same vehicle (not at
$e$,
$e$  ON CONFLICT (tenant_id, event_id, occurred_at) DO UPDATE SET superseded_by = excluded.superseded_by;
$e$,
$e$  ON CONFLICT (tenant_id, event_id, occurred_at) DO UPDATE SET superseded_by = excluded.superseded_by;
  END IF;
$e$], '0043');
