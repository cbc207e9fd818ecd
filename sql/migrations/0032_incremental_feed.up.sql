-- motomind 0032: the feed refreshes what changed, not everything (#17).
-- The materialized feed was rebuilt whole by every refresh: at 10M events
-- maintain() took 101 s after 1,000 new events, nearly all of it the
-- REFRESH MATERIALIZED VIEW CONCURRENTLY of 10M rows, and that grows with
-- the table, not with the change. The feed becomes a plain table in the
-- private schema, rebuilt vehicle by vehicle:
--  * vehicle_event_heads.feed_dirty marks a vehicle whose feed rows are
--    stale: set by every event write (the write trigger stamps changed_at),
--    by a change of the vehicle's nickname, garage, group or deletion, and
--    by a rename of its garage or group;
--  * refresh_feed() replaces the dirty vehicles' rows from feed_source (the
--    materialized view's query, kept as a view: one definition for the
--    first build and each refresh) and clears the marks it saw, unless a
--    writer changed the head since (xmin) or holds it (the mark stays, the
--    next refresh takes it);
--  * a purged vehicle's rows go with its head; archived events go with the
--    archived_before setting that archive_partitions() moves.
-- The tenant view and timeline_feed_page() read the table as they read the
-- view; their definitions are re-created from the catalog, not copied.

-- (existing heads: clean, the feed is built whole below; new ones: marked)
ALTER TABLE vehicle_event_heads ADD COLUMN feed_dirty boolean NOT NULL DEFAULT false;
ALTER TABLE vehicle_event_heads ALTER COLUMN feed_dirty SET DEFAULT true;
COMMENT ON COLUMN vehicle_event_heads.feed_dirty IS
  'the vehicle''s rows in the timeline feed are stale (refresh_feed rebuilds them)';

DO $do$
DECLARE
  priv text := current_schema() || '_private';
  app text := (SELECT value FROM settings WHERE key = 'app_role');
  view_sql text := pg_get_viewdef('timeline_feed'::regclass);
  page_sql text := pg_get_functiondef('timeline_feed_page(integer, timestamptz, uuid, uuid)'::regprocedure);
  source_sql text := pg_get_viewdef(format('%I.timeline_feed', priv)::regclass);
BEGIN
  EXECUTE format('CREATE VIEW %I.feed_source AS %s', priv, source_sql);
  DROP VIEW timeline_feed;
  DROP FUNCTION timeline_feed_page(integer, timestamptz, uuid, uuid);
  EXECUTE format('DROP MATERIALIZED VIEW %I.timeline_feed', priv);
  EXECUTE format('CREATE TABLE %1$I.timeline_feed AS SELECT * FROM %1$I.feed_source', priv);
  EXECUTE format('ALTER TABLE %I.timeline_feed ADD PRIMARY KEY (tenant_id, id, occurred_at)', priv);
  EXECUTE format('CREATE INDEX ON %I.timeline_feed (tenant_id, occurred_at DESC, id DESC)', priv);
  EXECUTE format('CREATE INDEX ON %I.timeline_feed (tenant_id, vehicle_id, occurred_at DESC, id DESC)', priv);
  EXECUTE 'CREATE VIEW timeline_feed WITH (security_barrier) AS ' || view_sql;
  EXECUTE page_sql;
  EXECUTE format('GRANT SELECT ON timeline_feed TO %I', app);
  EXECUTE format('GRANT EXECUTE ON FUNCTION timeline_feed_page(integer, timestamptz, uuid, uuid) TO %I', app);
  -- built whole just now: its refresh record says so
  EXECUTE format('UPDATE mv_refreshes SET row_count = (SELECT count(*) FROM %I.timeline_feed), high_water = feed_high_water() '
                 'WHERE view_name = ''timeline_feed''', priv);
END
$do$;

-- Every event write stamps its vehicle's head (changed_at): the feed's
-- rows of that vehicle are stale. (UPDATE OF fires on the write trigger's
-- ON CONFLICT DO UPDATE, which sets changed_at; the refresh's and the
-- metrics' own updates of the head do not set it.)
CREATE FUNCTION mark_feed_dirty() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  NEW.feed_dirty := true;
  RETURN NEW;
END
$fn$;
CREATE TRIGGER feed_dirty BEFORE UPDATE OF changed_at ON vehicle_event_heads
  FOR EACH ROW EXECUTE FUNCTION mark_feed_dirty();

-- What the feed copies from a vehicle, its garage or its group changed: its
-- heads are stale. (Definer: the application role writes vehicles, not heads.)
CREATE FUNCTION feed_vehicles_changed() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
BEGIN
  IF TG_TABLE_NAME = 'vehicles' THEN
    UPDATE vehicle_event_heads h SET feed_dirty = true
     WHERE h.tenant_id = NEW.tenant_id AND h.vehicle_id = NEW.id AND NOT h.feed_dirty;
  ELSIF TG_TABLE_NAME = 'garages' THEN
    UPDATE vehicle_event_heads h SET feed_dirty = true FROM vehicles v
     WHERE v.tenant_id = NEW.tenant_id AND v.garage_id = NEW.id
       AND h.tenant_id = v.tenant_id AND h.vehicle_id = v.id AND NOT h.feed_dirty;
  ELSE
    UPDATE vehicle_event_heads h SET feed_dirty = true FROM vehicles v
     WHERE v.tenant_id = NEW.tenant_id AND v.group_id = NEW.id
       AND h.tenant_id = v.tenant_id AND h.vehicle_id = v.id AND NOT h.feed_dirty;
  END IF;
  RETURN NULL;
END
$fn$;
CREATE TRIGGER feed_changed AFTER UPDATE OF nickname, garage_id, group_id, deleted_at ON vehicles
  FOR EACH ROW WHEN (OLD.nickname IS DISTINCT FROM NEW.nickname OR OLD.garage_id IS DISTINCT FROM NEW.garage_id
                     OR OLD.group_id IS DISTINCT FROM NEW.group_id OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
  EXECUTE FUNCTION feed_vehicles_changed();
CREATE TRIGGER feed_changed AFTER UPDATE OF name ON garages
  FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name) EXECUTE FUNCTION feed_vehicles_changed();
CREATE TRIGGER feed_changed AFTER UPDATE OF name ON fleet_groups
  FOR EACH ROW WHEN (OLD.name IS DISTINCT FROM NEW.name) EXECUTE FUNCTION feed_vehicles_changed();

DO $do$
BEGIN
  -- A vehicle's head goes (a purge): so do its feed rows.
  EXECUTE format($f$
    CREATE FUNCTION feed_vehicle_gone() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $$
    BEGIN
      DELETE FROM %1$I.timeline_feed f WHERE f.tenant_id = OLD.tenant_id AND f.vehicle_id = OLD.vehicle_id;
      RETURN NULL;
    END
    $$$f$, current_schema() || '_private');
  -- Events before archived_before left for the archive: so do their rows.
  EXECUTE format($f$
    CREATE FUNCTION feed_archived() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $$
    BEGIN
      DELETE FROM %1$I.timeline_feed f WHERE f.occurred_at < nullif(NEW.value, '')::timestamptz;
      RETURN NULL;
    END
    $$$f$, current_schema() || '_private');

  -- Refreshes the feed unless it is fresh: refreshed within max_age, or no
  -- vehicle marked. 'busy' when another session is refreshing it (they
  -- never pile up). Readers are never blocked: they read the rows as they
  -- were until the refresh commits.
  EXECUTE format($f$
    CREATE OR REPLACE FUNCTION refresh_feed(max_age interval DEFAULT NULL) RETURNS text
    LANGUAGE plpgsql SET search_path FROM CURRENT SET motomind.maintenance = 'on' SET jit = off AS $$
    DECLARE
      started timestamptz := clock_timestamp();
      last mv_refreshes;
      mark timestamptz;
      ts uuid[];
      vs uuid[];
      xs text[];
      removed bigint;
      added bigint;
    BEGIN
      IF NOT pg_try_advisory_xact_lock(hashtext(current_schema() || '.refresh_feed')) THEN RETURN 'busy'; END IF;
      SELECT * INTO last FROM mv_refreshes WHERE view_name = 'timeline_feed';
      IF last.view_name IS NOT NULL AND max_age IS NOT NULL AND last.finished_at > now() - max_age THEN
        RETURN 'fresh';
      END IF;
      mark := feed_high_water();
      SELECT array_agg(h.tenant_id), array_agg(h.vehicle_id), array_agg(h.xmin::text) INTO ts, vs, xs
        FROM vehicle_event_heads h WHERE h.feed_dirty;
      IF last.view_name IS NOT NULL AND ts IS NULL THEN RETURN 'fresh'; END IF;
      DELETE FROM %1$I.timeline_feed f USING unnest(ts, vs) d(t, v) WHERE f.tenant_id = d.t AND f.vehicle_id = d.v;
      GET DIAGNOSTICS removed = ROW_COUNT;
      INSERT INTO %1$I.timeline_feed
      SELECT s.* FROM unnest(ts, vs) d(t, v) JOIN %1$I.feed_source s ON s.tenant_id = d.t AND s.vehicle_id = d.v;
      GET DIAGNOSTICS added = ROW_COUNT;
      UPDATE vehicle_event_heads h SET feed_dirty = false
        FROM (SELECT k.tenant_id, k.vehicle_id FROM vehicle_event_heads k
                JOIN unnest(ts, vs, xs) d(t, v, x) ON k.tenant_id = d.t AND k.vehicle_id = d.v AND k.xmin::text = d.x
                 FOR UPDATE OF k SKIP LOCKED) c
       WHERE h.tenant_id = c.tenant_id AND h.vehicle_id = c.vehicle_id;
      INSERT INTO mv_refreshes AS r VALUES ('timeline_feed', started, clock_timestamp(), clock_timestamp() - started,
        CASE WHEN last.view_name IS NULL THEN (SELECT count(*) FROM %1$I.timeline_feed)
             ELSE last.row_count - removed + added END, mark)
      ON CONFLICT (view_name) DO UPDATE SET started_at = excluded.started_at, finished_at = excluded.finished_at,
        duration = excluded.duration, row_count = excluded.row_count, high_water = excluded.high_water;
      RETURN 'refreshed';
    END
    $$$f$, current_schema() || '_private');
END
$do$;
CREATE TRIGGER feed_vehicle_gone AFTER DELETE ON vehicle_event_heads
  FOR EACH ROW EXECUTE FUNCTION feed_vehicle_gone();
CREATE TRIGGER feed_archived AFTER INSERT OR UPDATE OF value ON settings
  FOR EACH ROW WHEN (NEW.key = 'archived_before') EXECUTE FUNCTION feed_archived();

-- Some vehicle's feed rows are stale.
CREATE FUNCTION feed_behind() RETURNS boolean
LANGUAGE sql STABLE SET motomind.maintenance = 'on' AS $$
  SELECT EXISTS (SELECT 1 FROM vehicle_event_heads h WHERE h.feed_dirty)
$$;

CREATE OR REPLACE VIEW mv_freshness AS
SELECT r.view_name, r.started_at, r.finished_at, r.duration, r.row_count, r.high_water,
       now() - r.finished_at AS age, feed_behind() AS behind
  FROM mv_refreshes r;

REVOKE EXECUTE ON FUNCTION mark_feed_dirty(), feed_vehicles_changed(), feed_vehicle_gone(), feed_archived() FROM PUBLIC;
