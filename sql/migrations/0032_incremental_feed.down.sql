-- Undoes 0032: the feed is a materialized view again, refreshed whole
-- (mv_freshness, the view and refresh_feed as 0007 made them).
DROP TRIGGER feed_dirty ON vehicle_event_heads;
DROP TRIGGER feed_vehicle_gone ON vehicle_event_heads;
DROP TRIGGER feed_changed ON vehicles;
DROP TRIGGER feed_changed ON garages;
DROP TRIGGER feed_changed ON fleet_groups;
DROP TRIGGER feed_archived ON settings;
DROP FUNCTION mark_feed_dirty(), feed_vehicles_changed(), feed_vehicle_gone(), feed_archived();

CREATE OR REPLACE VIEW mv_freshness AS
SELECT r.view_name, r.started_at, r.finished_at, r.duration, r.row_count, r.high_water,
       now() - r.finished_at AS age, feed_high_water() IS DISTINCT FROM r.high_water AS behind
  FROM mv_refreshes r;
DROP FUNCTION feed_behind();

DO $do$
DECLARE
  priv text := current_schema() || '_private';
  app text := (SELECT value FROM settings WHERE key = 'app_role');
  view_sql text := pg_get_viewdef('timeline_feed'::regclass);
  page_sql text := pg_get_functiondef('timeline_feed_page(integer, timestamptz, uuid, uuid)'::regprocedure);
  source_sql text := pg_get_viewdef(format('%I.feed_source', priv)::regclass);
BEGIN
  DROP VIEW timeline_feed;
  DROP FUNCTION timeline_feed_page(integer, timestamptz, uuid, uuid);
  EXECUTE format('DROP TABLE %I.timeline_feed', priv);
  EXECUTE format('DROP VIEW %I.feed_source', priv);
  EXECUTE format('CREATE MATERIALIZED VIEW %I.timeline_feed AS %s', priv, source_sql);
  EXECUTE format('CREATE UNIQUE INDEX ON %I.timeline_feed (tenant_id, id, occurred_at)', priv);
  EXECUTE format('CREATE INDEX ON %I.timeline_feed (tenant_id, occurred_at DESC, id DESC)', priv);
  EXECUTE format('CREATE INDEX ON %I.timeline_feed (tenant_id, vehicle_id, occurred_at DESC, id DESC)', priv);
  EXECUTE 'CREATE VIEW timeline_feed WITH (security_barrier) AS ' || view_sql;
  EXECUTE page_sql;
  EXECUTE format('GRANT SELECT ON timeline_feed TO %I', app);
  EXECUTE format('GRANT EXECUTE ON FUNCTION timeline_feed_page(integer, timestamptz, uuid, uuid) TO %I', app);

  EXECUTE format($f$
    CREATE OR REPLACE FUNCTION refresh_feed(max_age interval DEFAULT NULL) RETURNS text
    LANGUAGE plpgsql SET search_path FROM CURRENT SET motomind.maintenance = 'on' SET jit = off AS $$
    DECLARE
      started timestamptz := clock_timestamp();
      last mv_refreshes;
      mark timestamptz;
      n bigint;
    BEGIN
      IF NOT pg_try_advisory_xact_lock(hashtext(current_schema() || '.refresh_feed')) THEN RETURN 'busy'; END IF;
      SELECT * INTO last FROM mv_refreshes WHERE view_name = 'timeline_feed';
      mark := feed_high_water(); -- read first: the refresh sees at least this much
      IF last.view_name IS NOT NULL AND ((max_age IS NOT NULL AND last.finished_at > now() - max_age)
         OR mark IS NOT DISTINCT FROM last.high_water) THEN
        RETURN 'fresh';
      END IF;
      REFRESH MATERIALIZED VIEW CONCURRENTLY %1$I.timeline_feed;
      SELECT count(*) INTO n FROM %1$I.timeline_feed;
      INSERT INTO mv_refreshes AS r VALUES ('timeline_feed', started, clock_timestamp(), clock_timestamp() - started, n, mark)
      ON CONFLICT (view_name) DO UPDATE SET started_at = excluded.started_at, finished_at = excluded.finished_at,
        duration = excluded.duration, row_count = excluded.row_count, high_water = excluded.high_water;
      RETURN 'refreshed';
    END
    $$$f$, priv);
END
$do$;

ALTER TABLE vehicle_event_heads DROP COLUMN feed_dirty;
