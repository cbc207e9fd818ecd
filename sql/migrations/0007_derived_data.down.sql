-- Reverts 0007 (archived partitions stay in <schema>_archive, detached).
DROP VIEW db_health_stats;
DROP FUNCTION maintain(integer, interval);
DROP FUNCTION archive_partitions(interval);
DELETE FROM settings WHERE key = 'retention_months';
DROP VIEW mv_freshness;
DROP FUNCTION refresh_feed(interval);
DROP FUNCTION timeline_feed_page(integer, timestamptz, uuid, uuid);
DROP VIEW timeline_feed;
DO $do$ BEGIN EXECUTE format('DROP SCHEMA %I CASCADE', current_schema() || '_private'); END $do$;
DROP FUNCTION feed_high_water();
DROP TABLE mv_refreshes;
DROP VIEW tenant_metrics, group_metrics, vehicle_metrics;
DROP FUNCTION recompute_metrics();
DROP FUNCTION advance_metrics(integer);
DROP FUNCTION compute_vehicle_metrics(uuid, uuid, timestamptz, date);
DROP TABLE vehicle_metrics_monthly;
DROP FUNCTION volume_litres(numeric, text);
