-- motomind 0003: the rules of the timeline, enforced by the database for
-- every writer (our API, psql, PostgREST):
--  * events are immutable; a correction is a new event that amends or voids
--    an earlier one (the latest correction wins);
--  * payloads are valid for their type (payload_problem, generated in 0002);
--  * mileage never decreases along occurred_at, judged against the previous
--    and the next reading (back-dated entries too), with writers to one
--    vehicle serialized;
--  * implausible odometer jumps are accepted but flagged;
--  * partitions are created ahead, and rows that land in the DEFAULT
--    partition are moved into real partitions by maintenance.
-- All checks of an INSERT run once per statement over its transition table
-- (set-based), not once per row: bulk loads stay close to COPY speed.

-- Corrections.
ALTER TABLE vehicle_events
  ADD COLUMN correction text CHECK (correction IN ('amend', 'void')),
  ADD COLUMN corrects_id uuid,
  ADD COLUMN corrects_occurred_at timestamptz,
  ADD CONSTRAINT vehicle_events_correction_ref_check CHECK (
    (correction IS NULL) = (corrects_id IS NULL) AND (corrects_id IS NULL) = (corrects_occurred_at IS NULL)),
  ADD CONSTRAINT vehicle_events_void_payload_check CHECK (correction IS DISTINCT FROM 'void' OR payload = '{}');
ALTER TABLE vehicle_events ALTER COLUMN created_at SET DEFAULT clock_timestamp();
COMMENT ON COLUMN vehicle_events.correction IS
  'amend: this event replaces corrects_id; void: this event hides corrects_id (reason in notes)';
CREATE INDEX vehicle_events_corrects_idx ON vehicle_events (tenant_id, corrects_id)
  WHERE corrects_id IS NOT NULL;

-- Events hidden from the effective timeline: amended (by a later correction)
-- or voided. Maintained by check_new_events(); readable history stays whole.
CREATE TABLE vehicle_event_supersessions (
  tenant_id      uuid NOT NULL,
  event_id       uuid NOT NULL,
  occurred_at    timestamptz NOT NULL,
  superseded_by  uuid NOT NULL,
  superseded_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, event_id, occurred_at)
);

-- One row per vehicle with events: the lock that serializes writers to a
-- vehicle, and what changed (for incremental metrics).
CREATE TABLE vehicle_event_heads (
  tenant_id         uuid NOT NULL,
  vehicle_id        uuid NOT NULL,
  last_occurred_at  timestamptz NOT NULL,
  dirty_from        timestamptz,
  changed_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, vehicle_id),
  FOREIGN KEY (tenant_id, vehicle_id) REFERENCES vehicles (tenant_id, id)
);
COMMENT ON COLUMN vehicle_event_heads.dirty_from IS
  'earliest occurred_at written (or corrected) since derived data last caught up (NULL: nothing pending)';

-- Findings on events that were accepted but look wrong (odometer typos).
CREATE TABLE vehicle_event_flags (
  tenant_id    uuid NOT NULL,
  event_id     uuid NOT NULL,
  occurred_at  timestamptz NOT NULL,
  vehicle_id   uuid NOT NULL,
  flag         text NOT NULL CHECK (flag IN ('implausible_jump')),
  detail       jsonb NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (tenant_id, event_id, occurred_at, flag)
);
CREATE INDEX vehicle_event_flags_vehicle_idx ON vehicle_event_flags (tenant_id, vehicle_id, occurred_at);

-- Settings of the schema (not per tenant).
CREATE TABLE settings (
  key    text PRIMARY KEY,
  value  text NOT NULL
);
INSERT INTO settings VALUES
  ('events_partition_interval', 'year'),  -- year or month; fixed once partitions exist
  ('partition_horizon_years', '10');      -- no partitions beyond now + this (clock errors)

-- The timeline as users see it: corrections applied, voided events hidden.
CREATE VIEW vehicle_events_effective AS
SELECT e.*
  FROM vehicle_events e
 WHERE e.correction IS DISTINCT FROM 'void'
   AND NOT EXISTS (SELECT 1 FROM vehicle_event_supersessions s
                    WHERE s.tenant_id = e.tenant_id AND s.event_id = e.id
                      AND s.occurred_at = e.occurred_at);

-- The latest effective odometer reading of each vehicle.
CREATE VIEW vehicle_current_mileage AS
SELECT v.tenant_id, v.id AS vehicle_id, r.mileage, r.occurred_at, v.odometer_unit
  FROM vehicles v
  CROSS JOIN LATERAL (
    SELECT e.mileage, e.occurred_at FROM vehicle_events_effective e
     WHERE e.tenant_id = v.tenant_id AND e.vehicle_id = v.id AND e.mileage IS NOT NULL
     ORDER BY e.occurred_at DESC, e.mileage DESC LIMIT 1) r;

-- The largest plausible distance per day, in the vehicle's unit
-- (setting motomind.max_daily_distance, in miles, default 1500).
CREATE FUNCTION max_daily_distance(unit text) RETURNS numeric
LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(current_setting('motomind.max_daily_distance', true), '')::numeric, 1500)
         * CASE WHEN unit = 'km' THEN 1.609344 ELSE 1 END
$$;

-- The AFTER INSERT statement trigger of vehicle_events and of each of its
-- partitions (a direct insert into a partition does not fire the parent's).
-- (jit is off: compiling the inlined payload rules would cost more than
-- evaluating them; work_mem lets a bulk batch's walk sort in memory.)
CREATE FUNCTION check_new_events() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT SET jit = off SET work_mem = '128MB' AS $fn$
DECLARE
  bad record;
BEGIN
  -- Serialize writers per vehicle: lock (create) each touched vehicle's head,
  -- in a stable order. Under REPEATABLE READ / SERIALIZABLE a concurrent
  -- writer to the same vehicle gets a serialization failure (retry).
  INSERT INTO vehicle_event_heads AS h (tenant_id, vehicle_id, last_occurred_at, dirty_from, changed_at)
  SELECT tenant_id, vehicle_id, max(occurred_at), min(least(occurred_at, corrects_occurred_at)), now()
    FROM new_events GROUP BY tenant_id, vehicle_id ORDER BY tenant_id, vehicle_id
  ON CONFLICT (tenant_id, vehicle_id) DO UPDATE
     SET last_occurred_at = greatest(h.last_occurred_at, excluded.last_occurred_at),
         dirty_from = least(h.dirty_from, excluded.dirty_from),
         changed_at = excluded.changed_at;

  -- Payloads (a void carries none). A few rows: row by row, preparing only
  -- their types' rules; many rows: the whole rule set inlined, set-based.
  IF (SELECT count(*) FROM (SELECT 1 FROM new_events LIMIT 17) few) <= 16 THEN
    SELECT n.id, payload_problem_row(n.type, n.payload) AS problem INTO bad
      FROM new_events n
     WHERE n.correction IS DISTINCT FROM 'void' AND payload_problem_row(n.type, n.payload) IS NOT NULL
     LIMIT 1;
  ELSE
    SELECT n.id, payload_problem(n.type, n.payload) AS problem INTO bad
      FROM new_events n
     WHERE n.correction IS DISTINCT FROM 'void' AND payload_problem(n.type, n.payload) IS NOT NULL
     LIMIT 1;
  END IF;
  IF FOUND THEN
    RAISE EXCEPTION USING MESSAGE = bad.problem, ERRCODE = 'check_violation',
      CONSTRAINT = 'vehicle_events_payload_check', TABLE = 'vehicle_events', COLUMN = 'payload',
      DETAIL = format('event %s', bad.id);
  END IF;

  -- Corrections point at an original event of the same vehicle (not at
  -- another correction), and an amendment keeps the original's type.
  SELECT n.id, n.corrects_id, n.type, o.id AS found, o.vehicle_id <> n.vehicle_id AS other_vehicle,
         o.correction AS o_correction, o.type AS o_type INTO bad
    FROM new_events n
    LEFT JOIN vehicle_events o ON o.tenant_id = n.tenant_id AND o.id = n.corrects_id
                              AND o.occurred_at = n.corrects_occurred_at
   WHERE n.corrects_id IS NOT NULL
     AND (o.id IS NULL OR o.vehicle_id <> n.vehicle_id OR o.correction IS NOT NULL
          OR (n.correction = 'amend' AND o.type <> n.type))
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'vehicle_events_correction_check',
      TABLE = 'vehicle_events', COLUMN = 'corrects_id', DETAIL = format('event %s', bad.id),
      MESSAGE = CASE
        WHEN bad.found IS NULL OR bad.other_vehicle THEN
          format('corrects_id: no event %s at that time for this vehicle', bad.corrects_id)
        WHEN bad.o_correction IS NOT NULL THEN
          format('corrects_id: event %s is itself a correction; correct the original event', bad.corrects_id)
        ELSE format('type: an amendment keeps the type of the event it corrects (%s, not %s)', bad.o_type, bad.type)
      END;
  END IF;

  -- The latest correction of an event wins: the original and every earlier
  -- correction of it leave the effective timeline.
  WITH roots AS (
    SELECT DISTINCT tenant_id, corrects_id AS id, corrects_occurred_at AS at
      FROM new_events WHERE corrects_id IS NOT NULL),
  chain AS (
    SELECT e.tenant_id, e.id, e.occurred_at, e.created_at, r.id AS root
      FROM roots r JOIN vehicle_events e
        ON e.tenant_id = r.tenant_id AND e.corrects_id = r.id AND e.corrects_occurred_at = r.at),
  latest AS (
    SELECT DISTINCT ON (tenant_id, root) tenant_id, root, id
      FROM chain ORDER BY tenant_id, root, created_at DESC, id DESC)
  INSERT INTO vehicle_event_supersessions AS s (tenant_id, event_id, occurred_at, superseded_by)
  SELECT r.tenant_id, r.id, r.at, l.id FROM roots r JOIN latest l ON l.tenant_id = r.tenant_id AND l.root = r.id
  UNION ALL
  SELECT c.tenant_id, c.id, c.occurred_at, l.id FROM chain c
    JOIN latest l ON l.tenant_id = c.tenant_id AND l.root = c.root WHERE c.id <> l.id
  ON CONFLICT (tenant_id, event_id, occurred_at) DO UPDATE SET superseded_by = excluded.superseded_by;

  -- Mileage never decreases along occurred_at. Each touched vehicle's
  -- effective readings are walked in order from the reading before its
  -- earliest new one to the reading after its latest new one; the same walk
  -- flags implausible jumps into or out of new readings.
  -- (MATERIALIZED: each vehicle's bounds are looked up once, not per row.)
  WITH touched AS MATERIALIZED (
    SELECT n.tenant_id, n.vehicle_id, min(n.occurred_at) AS lo, max(n.occurred_at) AS hi,
           max(v.timezone) AS tz, max_daily_distance(max(v.odometer_unit)) AS per_day
      FROM new_events n JOIN vehicles v ON v.tenant_id = n.tenant_id AND v.id = n.vehicle_id
     WHERE n.mileage IS NOT NULL OR n.corrects_id IS NOT NULL
     GROUP BY n.tenant_id, n.vehicle_id),
  bounds AS MATERIALIZED (
    SELECT t.*,
      coalesce((SELECT e.occurred_at FROM vehicle_events_effective e
                 WHERE e.tenant_id = t.tenant_id AND e.vehicle_id = t.vehicle_id
                   AND e.mileage IS NOT NULL AND e.occurred_at < t.lo
                 ORDER BY e.occurred_at DESC LIMIT 1), '-infinity') AS from_at,
      coalesce((SELECT e.occurred_at FROM vehicle_events_effective e
                 WHERE e.tenant_id = t.tenant_id AND e.vehicle_id = t.vehicle_id
                   AND e.mileage IS NOT NULL AND e.occurred_at > t.hi
                 ORDER BY e.occurred_at LIMIT 1), 'infinity') AS to_at
      FROM touched t),
  walk AS MATERIALIZED (
    SELECT e.tenant_id, e.vehicle_id, e.id, e.occurred_at, e.mileage, b.tz, b.per_day,
           lag(e.mileage) OVER w AS prev_mileage, lag(e.occurred_at) OVER w AS prev_at,
           lead(e.mileage) OVER w AS next_mileage, lead(e.occurred_at) OVER w AS next_at
      FROM bounds b JOIN vehicle_events_effective e
        ON e.tenant_id = b.tenant_id AND e.vehicle_id = b.vehicle_id
       AND e.occurred_at BETWEEN b.from_at AND b.to_at AND e.mileage IS NOT NULL
    WINDOW w AS (PARTITION BY e.tenant_id, e.vehicle_id ORDER BY e.occurred_at, e.mileage)),
  flagged AS (
    INSERT INTO vehicle_event_flags (tenant_id, event_id, occurred_at, vehicle_id, flag, detail)
    SELECT w.tenant_id, w.id, w.occurred_at, w.vehicle_id, 'implausible_jump',
           jsonb_build_object('previous_mileage', w.prev_mileage, 'previous_at', w.prev_at,
                              'next_mileage', w.next_mileage, 'next_at', w.next_at,
                              'max_per_day', w.per_day)
      FROM walk w
     WHERE (w.mileage - w.prev_mileage > w.per_day * greatest(extract(epoch FROM w.occurred_at - w.prev_at) / 86400, 1)
         OR w.next_mileage - w.mileage > w.per_day * greatest(extract(epoch FROM w.next_at - w.occurred_at) / 86400, 1))
       AND EXISTS (SELECT 1 FROM new_events n WHERE n.tenant_id = w.tenant_id AND n.id = w.id
                                              AND n.occurred_at = w.occurred_at)
    ON CONFLICT DO NOTHING)
  SELECT w.*, EXISTS (SELECT 1 FROM new_events n WHERE n.tenant_id = w.tenant_id AND n.id = w.id
                                                   AND n.occurred_at = w.occurred_at) AS is_new
    INTO bad FROM walk w WHERE w.mileage < w.prev_mileage LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'vehicle_events_mileage_check',
      TABLE = 'vehicle_events', COLUMN = 'mileage',
      DETAIL = format('vehicle %s, event %s', bad.vehicle_id, bad.id),
      MESSAGE = CASE WHEN bad.is_new THEN
        format('mileage %s on %s is below %s recorded on %s',
               trim_scale(bad.mileage), to_char(bad.occurred_at AT TIME ZONE bad.tz, 'YYYY-MM-DD'),
               trim_scale(bad.prev_mileage), to_char(bad.prev_at AT TIME ZONE bad.tz, 'YYYY-MM-DD'))
      ELSE
        format('mileage %s on %s is above %s recorded on %s',
               trim_scale(bad.prev_mileage), to_char(bad.prev_at AT TIME ZONE bad.tz, 'YYYY-MM-DD'),
               trim_scale(bad.mileage), to_char(bad.occurred_at AT TIME ZONE bad.tz, 'YYYY-MM-DD'))
      END;
  END IF;
  RETURN NULL;
END
$fn$;

-- Events are never updated or deleted (create_event_partition moves rows out
-- of the DEFAULT partition with motomind.moving_partition set, locally).
CREATE FUNCTION refuse_event_change() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'DELETE' AND current_setting('motomind.moving_partition', true) = 'on' THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
    MESSAGE = format('vehicle events are immutable: %s is not allowed; record a correction instead', TG_OP),
    TABLE = TG_TABLE_NAME;
END
$fn$;

CREATE TRIGGER vehicle_events_immutable BEFORE UPDATE OR DELETE ON vehicle_events
  FOR EACH ROW EXECUTE FUNCTION refuse_event_change();

-- Statement triggers are per table: the parent, and each partition (added
-- by create_event_partition). Later migrations protect each new partition
-- further by defining protect_event_partition(regclass).
CREATE FUNCTION add_event_triggers(rel regclass) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  EXECUTE format('CREATE TRIGGER vehicle_events_check AFTER INSERT ON %s '
                 'REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT '
                 'EXECUTE FUNCTION check_new_events()', rel);
  EXECUTE format('CREATE TRIGGER vehicle_events_no_truncate BEFORE TRUNCATE ON %s '
                 'FOR EACH STATEMENT EXECUTE FUNCTION refuse_event_change()', rel);
  IF rel <> 'vehicle_events'::regclass AND to_regprocedure('protect_event_partition(regclass)') IS NOT NULL THEN
    EXECUTE 'SELECT protect_event_partition($1)' USING rel;
  END IF;
END
$fn$;
SELECT add_event_triggers('vehicle_events');
SELECT add_event_triggers('vehicle_events_default');

-- Partition bounds containing ts, aligned in UTC.
CREATE FUNCTION event_partition_bounds(ts timestamptz, OUT lo timestamptz, OUT hi timestamptz)
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
  SELECT b, b + CASE s.value WHEN 'month' THEN interval '1 month' ELSE interval '1 year' END
    FROM settings s,
         LATERAL (SELECT date_trunc(s.value, ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS b) x
   WHERE s.key = 'events_partition_interval'
$$;

-- Creates the partition for [lo, hi), first moving any rows of that range
-- out of the DEFAULT partition, so that attaching never fails on them.
CREATE FUNCTION create_event_partition(lo timestamptz, hi timestamptz) RETURNS text
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  name text := 'vehicle_events_' || CASE WHEN hi - lo > interval '1 month'
    THEN to_char(lo AT TIME ZONE 'UTC', 'YYYY') ELSE to_char(lo AT TIME ZONE 'UTC', 'YYYY_MM') END;
  moved bigint;
BEGIN
  IF to_regclass(quote_ident(name)) IS NOT NULL THEN
    RETURN NULL;
  END IF;
  EXECUTE format('CREATE TABLE %I (LIKE vehicle_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', name);
  EXECUTE format('ALTER TABLE %I ADD CONSTRAINT %I CHECK (occurred_at >= %L AND occurred_at < %L)',
                 name, name || '_bounds', lo, hi);
  PERFORM set_config('motomind.moving_partition', 'on', true);
  EXECUTE format('WITH moved AS (DELETE FROM vehicle_events_default WHERE occurred_at >= $1 AND occurred_at < $2 '
                 'RETURNING *) INSERT INTO %I SELECT * FROM moved', name) USING lo, hi;
  GET DIAGNOSTICS moved = ROW_COUNT;
  PERFORM set_config('motomind.moving_partition', 'off', true);
  EXECUTE format('ALTER TABLE vehicle_events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
  EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', name, name || '_bounds');
  PERFORM add_event_triggers(name::regclass);
  RETURN name;
END
$fn$;

-- Creates the partitions of the current period and `ahead` periods after it,
-- and drains the DEFAULT partition into real partitions, creating them for
-- periods that hold rows (never for periods beyond the horizon: a single
-- far-future date from a bad clock stays in DEFAULT, reported by
-- partition_coverage, instead of creating hundreds of partitions).
-- Idempotent; concurrent callers serialize on an advisory lock.
CREATE FUNCTION ensure_partitions(ahead integer DEFAULT 2) RETURNS SETOF text
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  step interval := CASE (SELECT value FROM settings WHERE key = 'events_partition_interval')
                     WHEN 'month' THEN interval '1 month' ELSE interval '1 year' END;
  horizon timestamptz := now() + make_interval(years => (SELECT value::int FROM settings WHERE key = 'partition_horizon_years'));
  b record;
  made text;
BEGIN
  IF ahead < 0 OR ahead > 120 THEN
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = 'ahead: expected 0 to 120';
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('motomind.partitions:' || current_schema()));
  FOR b IN
    SELECT DISTINCT (event_partition_bounds(occurred_at)).* FROM vehicle_events_default
     WHERE occurred_at < horizon
    UNION
    SELECT (event_partition_bounds(now() + step * g)).* FROM generate_series(0, ahead) g
    ORDER BY 1
  LOOP
    made := create_event_partition(b.lo, b.hi);
    IF made IS NOT NULL THEN RETURN NEXT made; END IF;
  END LOOP;
END
$fn$;

-- Range partitions, the gaps between them, and the DEFAULT partition, with
-- exact row counts.
CREATE FUNCTION partition_coverage() RETURNS TABLE (
  kind text, partition text, range_from timestamptz, range_to timestamptz, row_count bigint)
LANGUAGE plpgsql STABLE SET search_path FROM CURRENT AS $fn$
DECLARE
  p record;
  prev_hi timestamptz;
BEGIN
  FOR p IN
    SELECT c.oid::regclass AS rel, c.relname,
           (regexp_match(pg_get_expr(c.relpartbound, c.oid), 'FROM \(''(.*)''\) TO \(''(.*)''\)')) AS r
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'vehicle_events'::regclass
     ORDER BY 3 NULLS LAST
  LOOP
    kind := CASE WHEN p.r IS NULL THEN 'default' ELSE 'partition' END;
    range_from := p.r[1]::timestamptz;
    range_to := p.r[2]::timestamptz;
    IF kind = 'partition' AND prev_hi IS NOT NULL AND range_from > prev_hi THEN
      RETURN QUERY SELECT 'gap'::text, NULL::text, prev_hi, range_from, 0::bigint;
    END IF;
    IF kind = 'partition' THEN prev_hi := range_to; END IF;
    partition := p.relname;
    EXECUTE format('SELECT count(*) FROM %s', p.rel) INTO row_count;
    RETURN NEXT;
  END LOOP;
END
$fn$;
CREATE VIEW partition_coverage AS SELECT * FROM partition_coverage();
