-- Undoes 0010: reminders back to their 0001 shape, maintain() as in 0008,
-- protect_event_partition as in 0009.
DROP TRIGGER reminders_chain ON reminders;
DROP TRIGGER a_definition ON reminders;
DO $do$
DECLARE rel regclass;
BEGIN
  -- (this schema's events and their partitions only: other schemas of the
  -- database keep theirs)
  FOR rel IN SELECT tgrelid::regclass FROM pg_trigger
              WHERE tgname = 'vehicle_events_reminders' AND tgparentid = 0
                AND tgrelid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'vehicle_events'::regclass
                                UNION SELECT 'vehicle_events'::regclass) LOOP
    EXECUTE format('DROP TRIGGER vehicle_events_reminders ON %s', rel);
  END LOOP;
END
$do$;
DROP FUNCTION events_drive_reminders();
DROP FUNCTION add_reminder_trigger(regclass);
DROP TABLE tenant_secrets;
DROP FUNCTION claim_notifications(text, integer, interval);
DROP FUNCTION ack_notification(uuid, bigint, text);
DROP FUNCTION fail_notification(uuid, bigint, text, text, interval, integer);
DROP TABLE notifications;
DROP VIEW reminder_notices;
DROP VIEW reminders_due;
DROP FUNCTION reminder_changed();
DROP FUNCTION reminder_definition();
DROP TABLE reminder_occurrences;
DROP TABLE reminder_completions;
DROP FUNCTION reminder_completion_changed();
DROP FUNCTION reminder_completion_vehicle();
DROP TRIGGER reminders_notify_insert ON reminders;
DROP TRIGGER reminders_notify_update ON reminders;
DROP FUNCTION reminders_written();
DROP FUNCTION emit_reminder_notifications();
DROP FUNCTION wake_consumers(bigint);
DROP FUNCTION rebuild_reminder(uuid, uuid);
DROP FUNCTION vehicle_odometer(uuid, uuid);
CREATE OR REPLACE VIEW vehicle_current_mileage WITH (security_invoker = true) AS
SELECT v.tenant_id, v.id AS vehicle_id, r.mileage, r.occurred_at, v.odometer_unit
  FROM vehicles v
  CROSS JOIN LATERAL (
    SELECT e.mileage, e.occurred_at FROM vehicle_events_effective e
     WHERE e.tenant_id = v.tenant_id AND e.vehicle_id = v.id AND e.mileage IS NOT NULL
     ORDER BY e.occurred_at DESC, e.mileage DESC LIMIT 1) r;
ALTER TABLE vehicle_event_heads DROP COLUMN mileage, DROP COLUMN mileage_at, DROP COLUMN distance_per_day;
DROP INDEX reminders_tied_idx;
DELETE FROM reminders WHERE source <> 'manual' OR (first_due_on IS NULL AND first_due_mileage IS NULL);
UPDATE reminders SET due_on = first_due_on, due_mileage = first_due_mileage WHERE due_on IS NULL AND due_mileage IS NULL;
ALTER TABLE reminders
  DROP CONSTRAINT reminders_due_check, DROP CONSTRAINT reminders_tied_check, DROP CONSTRAINT reminders_vehicle_check,
  DROP COLUMN first_due_on, DROP COLUMN first_due_mileage, DROP COLUMN starts_on, DROP COLUMN repeat_months,
  DROP COLUMN repeat_distance, DROP COLUMN service_type, DROP COLUMN expiry_of, DROP COLUMN expiry_kind,
  DROP COLUMN due_soon_days, DROP COLUMN due_soon_distance, DROP COLUMN snoozed_until, DROP COLUMN snoozed_until_mileage,
  DROP COLUMN source, DROP COLUMN source_event_id,
  ADD CONSTRAINT reminders_check1 CHECK (due_on IS NOT NULL OR due_mileage IS NOT NULL);
ALTER TABLE reminders RENAME CONSTRAINT reminders_owner_check TO reminders_check;
ALTER TABLE reminders RENAME CONSTRAINT reminders_completed_check TO reminders_check2;
ALTER TABLE tenants DROP COLUMN due_soon_days, DROP COLUMN due_soon_distance;
DROP FUNCTION protect_tenant_table(regclass, text);
DROP FUNCTION apply_vehicle_write_policies(regclass);

CREATE OR REPLACE FUNCTION protect_event_partition(rel regclass) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_policy WHERE polrelid = rel) THEN
    PERFORM apply_tenant_policies(rel, 'events');
    PERFORM apply_event_write_policy(rel);
    PERFORM apply_live_vehicle_policy(rel);
  END IF;
END
$fn$;

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
