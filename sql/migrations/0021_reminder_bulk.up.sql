-- motomind 0021: inserting many reminders in one statement costs each one,
-- not each one times the table (#13). 50,000 reminders inserted in one
-- statement (10,000 vehicles, five each) took over nine minutes:
-- * each row's AFTER trigger rebuilt its chain, and each rebuild's UPDATE of
--   the reminder looked up its notifications in reminders_due. A table
--   filled by the statement has no statistics (or those of an empty table),
--   so every index starting with tenant_id costs the planner the same, and
--   it took one that reads the whole tenant for each row: quadratic;
-- * a new reminder that no event can complete (no service_type, no
--   expiry_of) has no completions: its chain is its first due, nothing to
--   rebuild row by row.
-- New reminders now get their chains from one statement trigger. It first
-- gives the planner statistics when the statement wrote more rows than the
-- table's statistics know of (at least 1,000: a table being filled; a
-- day-to-day write never does), then chains the untied reminders in two
-- set-based statements and rebuilds the tied ones one by one as before.

-- The chains of the reminders a statement inserted: an untied one is due
-- at its first due (one open occurrence, when it has one) and active unless
-- inserted dismissed, as rebuild_reminder would make it; a tied one is
-- rebuilt from the events that complete it.
CREATE FUNCTION reminders_inserted() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
DECLARE
  r record;
  n bigint := (SELECT count(*) FROM written);
BEGIN
  IF n >= 1000 AND n > (SELECT c.reltuples FROM pg_class c WHERE c.oid = 'reminders'::regclass) THEN
    ANALYZE reminders;
  END IF;
  PERFORM set_config('motomind.reminder_chain', 'on', true);
  INSERT INTO reminder_occurrences (tenant_id, reminder_id, seq, vehicle_id, due_on, due_mileage)
  SELECT w.tenant_id, w.id, 1, w.vehicle_id, w.first_due_on, w.first_due_mileage FROM written w
   WHERE w.service_type IS NULL AND w.expiry_of IS NULL
     AND (w.first_due_on IS NOT NULL OR w.first_due_mileage IS NOT NULL)
   ORDER BY w.tenant_id, w.id;
  UPDATE reminders x SET due_on = w.first_due_on, due_mileage = w.first_due_mileage,
         status = CASE WHEN w.status = 'dismissed' THEN 'dismissed' ELSE 'active' END, completed_at = NULL
    FROM written w
   WHERE w.service_type IS NULL AND w.expiry_of IS NULL AND x.tenant_id = w.tenant_id AND x.id = w.id
     AND (x.due_on, x.due_mileage, x.status, x.completed_at) IS DISTINCT FROM
         (w.first_due_on, w.first_due_mileage, CASE WHEN w.status = 'dismissed' THEN 'dismissed' ELSE 'active' END,
          NULL::timestamptz);
  PERFORM set_config('motomind.reminder_chain', 'off', true);
  FOR r IN SELECT w.tenant_id, w.id FROM written w WHERE w.service_type IS NOT NULL OR w.expiry_of IS NOT NULL
            ORDER BY w.tenant_id, w.id LOOP
    PERFORM rebuild_reminder(r.tenant_id, r.id);
  END LOOP;
  RETURN NULL;
END
$fn$;
DROP TRIGGER reminders_chain ON reminders;
CREATE TRIGGER reminders_chain AFTER UPDATE ON reminders
  FOR EACH ROW EXECUTE FUNCTION reminder_changed();
CREATE TRIGGER reminders_chain_insert AFTER INSERT ON reminders REFERENCING NEW TABLE AS written
  FOR EACH STATEMENT EXECUTE FUNCTION reminders_inserted();
