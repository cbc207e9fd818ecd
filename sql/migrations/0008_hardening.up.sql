-- motomind 0008: defects found by an adversarial review, fixed where they
-- live (issue #11).
--  * tenant_tables: the schema's tenant tables from the catalog, parents
--    first; purge_tenant and soft delete read it instead of lists;
--  * soft delete and restore obey exactly the table's UPDATE policies for
--    the application role (a read grant no longer lets a manager delete);
--  * access can be revoked: owners soft-delete memberships (never the last
--    owner) and delete or lower group grants;
--  * an event's author and creation time are the database's: the
--    application role cannot write created_by or created_at;
--  * partitions: a lower horizon (old dates stay in DEFAULT instead of one
--    partition a year), retention leaves an empty partition that refuses
--    events older than the archive, metrics of archived months are never
--    recomputed, and one failing partition or vehicle never stops
--    maintain() (failures are recorded for health());
--  * metrics: economy in one pass (no self-join), full recompute per
--    vehicle without locking writers out; advance_metrics clears what it
--    advanced in one statement at its end.

-- ---- the tenant tables, from the catalog ----------------------------------

DO $do$
BEGIN
  EXECUTE format($f$
    CREATE VIEW tenant_tables AS
    WITH RECURSIVE rels AS (
      SELECT c.oid AS rel, c.relname::text AS table_name FROM pg_class c
       WHERE c.relnamespace = %1$L::regnamespace AND c.relkind IN ('r', 'p') AND NOT c.relispartition
         AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id'
                                                    AND NOT a.attisdropped)),
    fk AS (
      SELECT DISTINCT k.conrelid AS child, k.confrelid AS parent FROM pg_constraint k
       WHERE k.contype = 'f' AND k.conrelid <> k.confrelid
         AND k.conrelid IN (SELECT rel FROM rels) AND k.confrelid IN (SELECT rel FROM rels)),
    walk (rel, depth) AS (
      SELECT rel, 0 FROM rels
      UNION ALL
      SELECT fk.child, w.depth + 1 FROM walk w JOIN fk ON fk.parent = w.rel WHERE w.depth < 64)
    SELECT r.table_name, r.rel::regclass AS rel, max(w.depth) AS depth,
           EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = r.rel AND a.attname = 'deleted_at'
                                                  AND NOT a.attisdropped) AS soft_delete
      FROM rels r JOIN walk w ON w.rel = r.rel
     GROUP BY r.table_name, r.rel$f$, current_schema());
END
$do$;
COMMENT ON VIEW tenant_tables IS
  'every table of the schema with a tenant_id (partitions excluded); depth orders them parents first';

-- The tables with soft delete and the column naming one of their rows: the
-- primary key without tenant_id, when that is one column.
CREATE VIEW soft_delete_tables AS
SELECT t.table_name, t.rel, min(a.attname)::text AS key_column
  FROM tenant_tables t
  JOIN pg_constraint k ON k.conrelid = t.rel AND k.contype = 'p'
  JOIN pg_attribute a ON a.attrelid = t.rel AND a.attnum = ANY (k.conkey) AND a.attname <> 'tenant_id'
 WHERE t.soft_delete
 GROUP BY t.table_name, t.rel
HAVING count(*) = 1;

DELETE FROM settings WHERE key = 'soft_delete_tables';

-- ---- soft delete obeys the write rules ------------------------------------

-- The application role's rule for updating rel, from its policies (OR of
-- the permissive ones): which = 'using' (the row before) or 'check' (after).
CREATE FUNCTION update_rule(rel regclass, which text) RETURNS text
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
  SELECT coalesce(string_agg('(' || pg_get_expr(CASE which WHEN 'using' THEN p.polqual ELSE
                                       coalesce(p.polwithcheck, p.polqual) END, p.polrelid) || ')', ' OR '), 'false')
    FROM pg_policy p
   WHERE p.polrelid = rel AND p.polcmd IN ('w', '*') AND p.polpermissive
     AND (SELECT oid FROM pg_roles WHERE rolname = (SELECT value FROM settings WHERE key = 'app_role')) = ANY (p.polroles)
$$;

-- Soft-deletes (deleted = true) or restores a row of the context tenant, when
-- the session's user could UPDATE it: the table's UPDATE policies for the
-- application role (USING and WITH CHECK) are evaluated on the row while it
-- is live (before a soft delete; after a restore, which is undone when they
-- refuse). Runs as the owner because the new row of an UPDATE must stay
-- visible to its writer, and soft-deleted rows are not. The stamp and audit
-- triggers record who did it.
CREATE OR REPLACE FUNCTION set_deleted(tbl text, row_id uuid, deleted boolean) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
DECLARE
  t soft_delete_tables;
  rule text;
  allowed boolean;
  n bigint;
BEGIN
  SELECT * INTO t FROM soft_delete_tables WHERE table_name = tbl;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format('%s has no soft delete%s', tbl,
      CASE tbl WHEN 'group_permissions' THEN ' (revoke a grant with DELETE, lower it with UPDATE)' ELSE '' END);
  END IF;
  IF current_tenant_role() IS DISTINCT FROM 'owner' AND current_tenant_role() IS DISTINCT FROM 'manager' THEN
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', MESSAGE = 'soft delete and restore: owners and managers only';
  END IF;
  rule := format('SELECT (%s) AND (%s) FROM %s WHERE tenant_id = $1 AND %I = $2 AND deleted_at IS NULL',
                 update_rule(t.rel, 'using'), update_rule(t.rel, 'check'), t.rel, t.key_column);
  IF deleted THEN
    EXECUTE rule INTO allowed USING current_tenant_id(), row_id;
    IF allowed IS NULL THEN RETURN false; END IF;
  END IF;
  IF allowed IS DISTINCT FROM false THEN
    EXECUTE format('UPDATE %s SET deleted_at = CASE WHEN $3 THEN now() END WHERE tenant_id = $1 AND %I = $2 '
                   'AND (deleted_at IS NULL) = $3', t.rel, t.key_column)
      USING current_tenant_id(), row_id, deleted;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 0 THEN RETURN false; END IF;
    IF NOT deleted THEN EXECUTE rule INTO allowed USING current_tenant_id(), row_id; END IF;
  END IF;
  IF NOT allowed THEN
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', TABLE = tbl,
      MESSAGE = format('%s %s: you may not change this row (the same rules as an UPDATE: a write grant on '
                       'its vehicle''s group, an admin grant for groups, the owner for memberships)',
                       CASE WHEN deleted THEN 'soft delete' ELSE 'restore' END, tbl);
  END IF;
  RETURN true;
END
$fn$;

-- Hard-deletes the context tenant's soft-deleted rows of a table (owners only).
CREATE OR REPLACE FUNCTION purge_deleted(tbl text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
DECLARE
  rel regclass := (SELECT t.rel FROM soft_delete_tables t WHERE t.table_name = tbl);
  n bigint;
BEGIN
  IF rel IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = format('purge: %s has no soft delete', tbl);
  END IF;
  IF current_tenant_role() IS DISTINCT FROM 'owner' THEN
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', MESSAGE = 'purge: owners only';
  END IF;
  EXECUTE format('DELETE FROM %s WHERE tenant_id = $1 AND deleted_at IS NOT NULL', rel) USING current_tenant_id();
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$fn$;

-- ---- revoking access -------------------------------------------------------

-- A tenant always keeps a live owner: the last one cannot leave or be
-- demoted (owners of one tenant change one at a time).
CREATE FUNCTION keep_an_owner() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
BEGIN
  IF OLD.role = 'owner' AND OLD.deleted_at IS NULL
     AND (TG_OP = 'DELETE' OR NEW.deleted_at IS NOT NULL OR NEW.role <> 'owner')
     AND current_setting('motomind.purging_tenant', true) IS DISTINCT FROM OLD.tenant_id::text THEN
    PERFORM pg_advisory_xact_lock(hashtext('motomind.owners:' || OLD.tenant_id));
    IF NOT EXISTS (SELECT 1 FROM memberships m WHERE m.tenant_id = OLD.tenant_id AND m.user_id <> OLD.user_id
                                                 AND m.role = 'owner' AND m.deleted_at IS NULL) THEN
      RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'memberships_last_owner',
        MESSAGE = 'memberships: a tenant keeps at least one owner (add another owner first)';
    END IF;
  END IF;
  RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
END
$fn$;
REVOKE EXECUTE ON FUNCTION keep_an_owner() FROM PUBLIC;
CREATE TRIGGER keep_an_owner BEFORE UPDATE OR DELETE ON memberships
  FOR EACH ROW EXECUTE FUNCTION keep_an_owner();

-- Group grants are revoked by DELETE (audited) by whoever may write them.
DO $do$
DECLARE app text := (SELECT value FROM settings WHERE key = 'app_role');
BEGIN
  EXECUTE format('CREATE POLICY writer_delete ON group_permissions FOR DELETE TO %I USING (%s)', app,
                 update_rule('group_permissions', 'using'));
  EXECUTE format('GRANT DELETE ON group_permissions TO %I', app);
END
$do$;

-- ---- who wrote an event, and when: the database's -------------------------

ALTER TABLE vehicle_events ALTER COLUMN created_by SET DEFAULT current_user_id();
DO $do$
DECLARE app text := (SELECT value FROM settings WHERE key = 'app_role');
BEGIN
  EXECUTE format('REVOKE INSERT ON vehicle_events FROM %I', app);
  EXECUTE format('GRANT INSERT (%s) ON vehicle_events TO %I',
    (SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
      WHERE attrelid = 'vehicle_events'::regclass AND attnum > 0 AND NOT attisdropped
        AND attname NOT IN ('created_at', 'created_by')), app);
END
$do$;

-- ---- partitions: a lower horizon, retention that holds ---------------------

INSERT INTO settings VALUES ('partition_lower_horizon_years', '30'), ('archived_before', '');

-- What went wrong in maintain(), step by step (health() reports it).
CREATE TABLE maintenance_failures (
  id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at        timestamptz NOT NULL DEFAULT clock_timestamp(),
  step      text NOT NULL,
  object    text,
  message   text NOT NULL,
  sqlstate  text
);

CREATE FUNCTION record_failure(step text, object text, message text, sqlstate text) RETURNS void
LANGUAGE sql AS $$
  INSERT INTO maintenance_failures (step, object, message, sqlstate) VALUES (step, object, message, sqlstate)
$$;

-- As in 0003, with a lower horizon: periods before now minus
-- partition_lower_horizon_years get no partition (their rows stay in DEFAULT,
-- reported by partition_coverage), so a handful of very old dates cannot make
-- hundreds of partitions; and each partition is made in its own
-- subtransaction: one that fails is recorded and the others are made.
CREATE OR REPLACE FUNCTION ensure_partitions(ahead integer DEFAULT 2) RETURNS SETOF text
LANGUAGE plpgsql SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
DECLARE
  step interval := CASE (SELECT value FROM settings WHERE key = 'events_partition_interval')
                     WHEN 'month' THEN interval '1 month' ELSE interval '1 year' END;
  horizon timestamptz := now() + make_interval(years => (SELECT value::int FROM settings WHERE key = 'partition_horizon_years'));
  lower_horizon timestamptz := now() - make_interval(years => (SELECT value::int FROM settings
                                                               WHERE key = 'partition_lower_horizon_years'));
  b record;
  made text;
  msg text;
  state text;
BEGIN
  IF ahead < 0 OR ahead > 120 THEN
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value', MESSAGE = 'ahead: expected 0 to 120';
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('motomind.partitions:' || current_schema()));
  FOR b IN
    SELECT DISTINCT (event_partition_bounds(occurred_at)).* FROM vehicle_events_default
     WHERE occurred_at < horizon AND occurred_at >= lower_horizon
    UNION
    SELECT (event_partition_bounds(now() + step * g)).* FROM generate_series(0, ahead) g
    ORDER BY 1
  LOOP
    BEGIN
      made := create_event_partition(b.lo, b.hi);
      IF made IS NOT NULL THEN RETURN NEXT made; END IF;
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
      PERFORM record_failure('partitions', format('%s to %s', b.lo, b.hi), msg, state);
    END;
  END LOOP;
END
$fn$;

-- The partitions retention retires: as in 0007, never the empty partition
-- that stands for what is archived.
CREATE OR REPLACE FUNCTION partitions_to_archive() RETURNS SETOF text
LANGUAGE sql STABLE AS $$
  SELECT c.partition FROM partition_coverage() c, settings s
   WHERE s.key = 'retention_months' AND s.value <> '' AND c.kind = 'partition'
     AND c.partition <> 'vehicle_events_archived'
     AND c.range_to <= now() - make_interval(months => s.value::int)
   ORDER BY c.range_from
$$;

-- Detaches the retired partitions into <schema>_archive, then makes the
-- archived range one empty partition, vehicle_events_archived, whose CHECK
-- refuses every row: an event dated in archived time is refused at once, for
-- every writer, instead of re-creating an archived partition. Rows of that
-- range waiting in DEFAULT are archived too. archived_before records where
-- the archive ends (metrics before it are kept, never recomputed).
CREATE OR REPLACE FUNCTION archive_partitions() RETURNS SETOF text
LANGUAGE plpgsql SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
DECLARE
  p record;
  arch text := current_schema() || '_archive';
  archived timestamptz := nullif((SELECT value FROM settings WHERE key = 'archived_before'), '')::timestamptz;
  cutoff timestamptz := archived;
  leftovers text;
BEGIN
  FOR p IN SELECT c.partition, c.range_to FROM partition_coverage() c
            WHERE c.partition IN (SELECT partitions_to_archive()) ORDER BY c.range_from LOOP
    EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', arch);
    EXECUTE format('ALTER TABLE vehicle_events DETACH PARTITION %I', p.partition);
    EXECUTE format('ALTER TABLE %I SET SCHEMA %I', p.partition, arch);
    cutoff := greatest(cutoff, p.range_to);
    RETURN NEXT p.partition;
  END LOOP;
  IF cutoff IS NULL OR cutoff IS NOT DISTINCT FROM archived THEN
    RETURN;
  END IF;
  IF EXISTS (SELECT 1 FROM vehicle_events_default WHERE occurred_at < cutoff) THEN
    leftovers := 'vehicle_events_default_before_' || to_char(cutoff AT TIME ZONE 'UTC', 'YYYYMMDD');
    EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', arch);
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I.%I (LIKE vehicle_events)', arch, leftovers);
    PERFORM set_config('motomind.moving_partition', 'on', true);
    EXECUTE format('WITH moved AS (DELETE FROM vehicle_events_default WHERE occurred_at < $1 RETURNING *) '
                   'INSERT INTO %I.%I SELECT * FROM moved', arch, leftovers) USING cutoff;
    PERFORM set_config('motomind.moving_partition', 'off', true);
    RETURN NEXT leftovers;
  END IF;
  IF to_regclass('vehicle_events_archived') IS NOT NULL THEN
    ALTER TABLE vehicle_events DETACH PARTITION vehicle_events_archived;
    DROP TABLE vehicle_events_archived;
  END IF;
  CREATE TABLE vehicle_events_archived (LIKE vehicle_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
  ALTER TABLE vehicle_events_archived ADD CONSTRAINT vehicle_events_before_retention_are_archived CHECK (false);
  EXECUTE format('ALTER TABLE vehicle_events ATTACH PARTITION vehicle_events_archived FOR VALUES FROM (%L) TO (%L)',
                 '-infinity', cutoff);
  PERFORM add_event_triggers('vehicle_events_archived');
  UPDATE settings SET value = cutoff::text WHERE key = 'archived_before';
END
$fn$;

-- The first month (in tz) whose metrics may be computed: none before the archive.
CREATE FUNCTION first_live_month(tz text) RETURNS date
LANGUAGE sql STABLE SET search_path FROM CURRENT AS $$
  SELECT CASE WHEN date_trunc('month', c) = c THEN c::date ELSE (date_trunc('month', c) + interval '1 month')::date END
    FROM (SELECT nullif(value, '')::timestamptz AT TIME ZONE tz AS c FROM settings WHERE key = 'archived_before') x
$$;

-- ---- metrics: one pass, no writer waits ------------------------------------

-- As in 0007, but the economy of an interval takes the previous interval's
-- end by lag() over the intervals (linear), not by a self-join that was
-- planned as a nested loop (quadratic in a vehicle's fills).
CREATE OR REPLACE FUNCTION compute_vehicle_metrics(p_tenant uuid, p_vehicle uuid, read_from timestamptz, first_period date,
  read_to timestamptz DEFAULT NULL, grain text DEFAULT 'month')
RETURNS TABLE (tenant_id uuid, vehicle_id uuid, period date, distance numeric, fuel_litres numeric,
  energy_kwh numeric, fuel_cost numeric, maintenance_cost numeric, economy_distance numeric,
  economy_litres numeric, fills bigint, events bigint)
LANGUAGE sql STABLE AS $$
  WITH e AS MATERIALIZED (
    SELECT e.tenant_id, e.vehicle_id, e.id, e.type, e.occurred_at, e.mileage, e.payload,
           date_trunc(grain, e.occurred_at AT TIME ZONE v.timezone)::date AS month
      FROM vehicle_events_effective e
      JOIN vehicles v ON v.tenant_id = e.tenant_id AND v.id = e.vehicle_id
     WHERE (p_tenant IS NULL OR e.tenant_id = p_tenant) AND (p_vehicle IS NULL OR e.vehicle_id = p_vehicle)
       AND e.occurred_at >= coalesce(read_from, '-infinity') AND e.occurred_at < coalesce(read_to, 'infinity')),
  readings AS (
    SELECT r.tenant_id, r.vehicle_id, r.month,
           r.mileage - lag(r.mileage) OVER (PARTITION BY r.tenant_id, r.vehicle_id
                                            ORDER BY r.occurred_at, r.mileage, r.id) AS distance
      FROM e r WHERE r.mileage IS NOT NULL),
  fuel AS (
    SELECT f.tenant_id, f.vehicle_id, f.id, f.occurred_at, f.mileage, f.month, f.payload,
           coalesce(f.payload->>'unit', '') = 'kwh' AS electric,
           volume_litres((f.payload->>'volume')::numeric, f.payload->>'unit') AS litres,
           coalesce((f.payload->>'full')::boolean, true) AS full,
           coalesce((f.payload->>'missed')::boolean, false) AS missed,
           coalesce((f.payload->>'total')::numeric,
                    (f.payload->>'volume')::numeric * (f.payload->>'price_per_unit')::numeric, 0) AS cost
      FROM e f WHERE f.type = 'fuel'),
  liquid AS (
    SELECT l.*, count(*) FILTER (WHERE l.full) OVER (PARTITION BY l.tenant_id, l.vehicle_id
             ORDER BY l.occurred_at, l.mileage, l.id ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS grp
      FROM fuel l WHERE NOT l.electric),
  intervals AS (
    SELECT i.tenant_id, i.vehicle_id, i.grp, sum(i.litres) AS litres,
           bool_or(i.missed OR i.litres IS NULL) AS broken,
           max(i.mileage) FILTER (WHERE i.full) AS end_mileage, max(i.month) FILTER (WHERE i.full) AS month
      FROM liquid i GROUP BY i.tenant_id, i.vehicle_id, i.grp),
  chained AS (
    SELECT i.*, lag(i.end_mileage) OVER w AS prev_end, lag(i.grp) OVER w AS prev_grp
      FROM intervals i WINDOW w AS (PARTITION BY i.tenant_id, i.vehicle_id ORDER BY i.grp)),
  economy AS (
    SELECT c.tenant_id, c.vehicle_id, c.month, c.end_mileage - c.prev_end AS distance, c.litres
      FROM chained c
     WHERE c.prev_grp = c.grp - 1 AND NOT c.broken AND c.end_mileage IS NOT NULL AND c.prev_end IS NOT NULL
       AND c.litres > 0),
  parts (tenant_id, vehicle_id, month, distance, fuel_litres, energy_kwh, fuel_cost, maintenance_cost,
         economy_distance, economy_litres, fills, events) AS (
    SELECT r.tenant_id, r.vehicle_id, r.month, coalesce(r.distance, 0), 0, 0, 0, 0, 0, 0, 0, 0 FROM readings r
    UNION ALL
    SELECT f.tenant_id, f.vehicle_id, f.month, 0, coalesce(f.litres, 0),
           CASE WHEN f.electric THEN coalesce((f.payload->>'volume')::numeric, 0) ELSE 0 END, f.cost, 0, 0, 0, 1, 0
      FROM fuel f
    UNION ALL
    SELECT m.tenant_id, m.vehicle_id, m.month, 0, 0, 0, 0, coalesce((m.payload->>'total')::numeric, 0), 0, 0, 0, 0
      FROM e m WHERE m.type = 'maintenance'
    UNION ALL
    SELECT x.tenant_id, x.vehicle_id, x.month, 0, 0, 0, 0, 0, x.distance, x.litres, 0, 0 FROM economy x
    UNION ALL
    SELECT a.tenant_id, a.vehicle_id, a.month, 0, 0, 0, 0, 0, 0, 0, 0, 1 FROM e a)
  SELECT p.tenant_id, p.vehicle_id, p.month, sum(p.distance), sum(p.fuel_litres), sum(p.energy_kwh),
         sum(p.fuel_cost), sum(p.maintenance_cost), sum(p.economy_distance), sum(p.economy_litres),
         sum(p.fills)::bigint, sum(p.events)::bigint
    FROM parts p WHERE p.month >= coalesce(first_period, '-infinity')
   GROUP BY p.tenant_id, p.vehicle_id, p.month
$$;

-- Recomputes one vehicle's metrics from first_month on (never before the
-- archive); returns the rows written.
CREATE FUNCTION recompute_vehicle_metrics(p_tenant uuid, p_vehicle uuid, since timestamptz) RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT SET jit = off SET motomind.maintenance = 'on' AS $fn$
DECLARE
  tz text := (SELECT v.timezone FROM vehicles v WHERE v.tenant_id = p_tenant AND v.id = p_vehicle);
  first_month date := date_trunc('month', coalesce(since, '-infinity') AT TIME ZONE tz)::date;
  n bigint;
BEGIN
  first_month := greatest(first_month, first_live_month(tz));
  DELETE FROM vehicle_metrics_monthly m
   WHERE m.tenant_id = p_tenant AND m.vehicle_id = p_vehicle AND m.month >= coalesce(first_month, '-infinity');
  INSERT INTO vehicle_metrics_monthly
  SELECT * FROM compute_vehicle_metrics(p_tenant, p_vehicle,
    CASE WHEN first_month IS NOT NULL THEN metrics_read_from(p_tenant, p_vehicle, first_month::timestamp AT TIME ZONE tz) END,
    first_month);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$fn$;

-- Brings the metrics of vehicles with pending changes up to date (at most
-- max_vehicles; NULL: all), each from the first month its changes touch;
-- returns how many. Writers are never made to wait: the vehicles are read
-- without locks (advance and recompute exclude each other by an advisory
-- lock), and what was advanced is cleared in one statement at the end, only
-- where no write came meanwhile (the head row is unchanged, by its xmin). A
-- vehicle whose recompute fails is recorded and left pending.
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

-- Every vehicle's metrics again, vehicle by vehicle (the reference the
-- incremental path is checked against, and a repair). Takes no lock a
-- writer waits for; pending marks are left to advance_metrics.
CREATE OR REPLACE FUNCTION recompute_metrics() RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT SET jit = off SET motomind.maintenance = 'on' AS $fn$
DECLARE
  h record;
  n bigint := 0;
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext(current_schema() || '.metrics'));
  DELETE FROM vehicle_metrics_monthly m
   WHERE NOT EXISTS (SELECT 1 FROM vehicle_event_heads hd WHERE hd.tenant_id = m.tenant_id AND hd.vehicle_id = m.vehicle_id);
  FOR h IN SELECT hd.tenant_id, hd.vehicle_id FROM vehicle_event_heads hd ORDER BY 1, 2 LOOP
    n := n + recompute_vehicle_metrics(h.tenant_id, h.vehicle_id, NULL);
  END LOOP;
  RETURN n;
END
$fn$;

-- As in 0007, with each step in its own subtransaction: a failing step is
-- recorded (maintenance_failures, reported by health()) and the rest runs.
-- Metrics come last, so what they clear is committed right after.
CREATE OR REPLACE FUNCTION maintain(ahead integer DEFAULT 2, max_age interval DEFAULT '5 minutes') RETURNS jsonb
LANGUAGE plpgsql SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
DECLARE
  keep text := (SELECT value FROM settings WHERE key = 'retention_months');
  out jsonb := '{}';
  failures_before bigint := (SELECT coalesce(max(id), 0) FROM maintenance_failures);
  msg text;
  state text;
BEGIN
  IF NOT pg_try_advisory_xact_lock(hashtext(current_schema() || '.maintain')) THEN
    RETURN jsonb_build_object('skipped', true);
  END IF;
  out := out || jsonb_build_object('partitions_created', (SELECT coalesce(jsonb_agg(p), '[]') FROM ensure_partitions(ahead) p));
  IF keep <> '' THEN
    BEGIN
      out := out || jsonb_build_object('archived', (SELECT coalesce(jsonb_agg(p), '[]') FROM archive_partitions() p));
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
      PERFORM record_failure('retention', NULL, msg, state);
    END;
  END IF;
  BEGIN
    out := out || jsonb_build_object('feed', refresh_feed(max_age));
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, state = RETURNED_SQLSTATE;
    PERFORM record_failure('feed', 'timeline_feed', msg, state);
  END;
  out := out || jsonb_build_object('vehicles_advanced', advance_metrics());
  RETURN out || jsonb_build_object('failures', (SELECT count(*) FROM maintenance_failures WHERE id > failures_before));
END
$fn$;

-- ---- purge: every tenant table, from the catalog ---------------------------

CREATE OR REPLACE FUNCTION purge_tenant(t uuid) RETURNS bigint
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  n bigint := 0;
  k bigint;
  r record;
BEGIN
  IF NOT in_maintenance() THEN
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', MESSAGE = 'purge_tenant: the owner role, in maintenance mode';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM tenants WHERE id = t AND deleted_at IS NOT NULL) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = format('purge_tenant: tenant %s is not deleted (delete_tenant first)', t);
  END IF;
  PERFORM set_config('motomind.purging_tenant', t::text, true);
  FOR r IN SELECT tt.rel, tt.table_name FROM tenant_tables tt ORDER BY tt.depth DESC, tt.table_name LOOP
    EXECUTE format('DELETE FROM %s WHERE tenant_id = $1', r.rel) USING t;
    GET DIAGNOSTICS k = ROW_COUNT;
    IF r.table_name <> 'audit_log' THEN n := n + k; END IF;
  END LOOP;
  DELETE FROM tenants WHERE id = t;
  DELETE FROM audit_log WHERE tenant_id = t; -- the tenant's own deletion, just logged
  PERFORM set_config('motomind.purging_tenant', '', true);
  RETURN n + 1;
END
$fn$;

REVOKE EXECUTE ON FUNCTION update_rule(regclass, text), record_failure(text, text, text, text),
  first_live_month(text), recompute_vehicle_metrics(uuid, uuid, timestamptz) FROM PUBLIC;
