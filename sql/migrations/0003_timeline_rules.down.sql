-- Reverts 0003 (partitions created since stay attached as plain partitions).
DROP VIEW partition_coverage;
DROP FUNCTION partition_coverage();
DROP FUNCTION ensure_partitions(integer);
DROP FUNCTION create_event_partition(timestamptz, timestamptz);
DROP FUNCTION event_partition_bounds(timestamptz);
DO $$
DECLARE r record;
BEGIN
  FOR r IN SELECT tgrelid::regclass AS rel, tgname FROM pg_trigger
            WHERE tgname IN ('vehicle_events_check', 'vehicle_events_no_truncate', 'vehicle_events_immutable')
              AND tgrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'vehicle_events'::regclass
                              UNION SELECT 'vehicle_events'::regclass)
              AND tgparentid = 0
  LOOP
    EXECUTE format('DROP TRIGGER %I ON %s', r.tgname, r.rel);
  END LOOP;
END $$;
DROP FUNCTION add_event_triggers(regclass);
DROP FUNCTION refuse_event_change();
DROP FUNCTION check_new_events();
DROP FUNCTION max_daily_distance(text);
DROP VIEW vehicle_current_mileage;
DROP VIEW vehicle_events_effective;
DROP TABLE settings;
DROP TABLE vehicle_event_flags;
DROP TABLE vehicle_event_heads;
DROP TABLE vehicle_event_supersessions;
DROP INDEX vehicle_events_corrects_idx;
ALTER TABLE vehicle_events ALTER COLUMN created_at SET DEFAULT now();
ALTER TABLE vehicle_events
  DROP CONSTRAINT vehicle_events_void_payload_check,
  DROP CONSTRAINT vehicle_events_correction_ref_check,
  DROP COLUMN corrects_occurred_at,
  DROP COLUMN corrects_id,
  DROP COLUMN correction;
