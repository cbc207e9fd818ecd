-- motomind 0025: the due list reads what is due, not every reminder (#13).
--
-- A reminder's status moves with "today" (in its vehicle's timezone), but
-- only on days its inputs fix: the first day it is overdue and the first day
-- it is due soon (or worse) follow from its due, the vehicle's odometer (the
-- latest reading, when, the driving rate), its thresholds and the timezone.
-- Those days are kept per reminder in reminder_alerts, written by the
-- database whenever an input changes (the reminder, the vehicle's head, the
-- tenant's thresholds, the vehicle's timezone), and indexed: the status is
-- still computed on read, from today, but a list of what is overdue or due
-- soon reads those reminders alone. One definition computes the days
-- (reminder_alert_dates, applied by reminder_alerts_live), so the kept rows
-- are checked against it.
--
-- Also a defect: a distance projected more than 100 years away (a tiny
-- driving rate, a huge due mileage) overflowed the integer of days, and the
-- due list of the whole tenant failed; such a projection is now none.

-- The days a reminder's status changes: projected_on (the day its due
-- mileage is projected to be reached at the driving rate; none beyond 100
-- years), overdue_from (the first day it is overdue) and soon_from (the
-- first day it is due soon or overdue): '-infinity' when its distance
-- already makes it so, 'infinity' when nothing known now does. due_key
-- orders the list: the effective due date (the earlier of due_on and
-- projected_on), 'infinity' for none.
CREATE FUNCTION reminder_alert_dates(due_on date, due_mileage numeric, soon_days integer, soon_distance numeric,
  mileage numeric, mileage_at timestamptz, distance_per_day numeric, tz text,
  OUT projected_on date, OUT overdue_from date, OUT soon_from date, OUT due_key date)
LANGUAGE sql IMMUTABLE AS $$
  SELECT p.projected_on, coalesce(o.overdue_from, 'infinity'),
         coalesce(least(due_on - soon_days, p.projected_on - soon_days,
                        CASE WHEN due_mileage - mileage <= soon_distance THEN '-infinity'::date END, o.overdue_from),
                  'infinity'),
         coalesce(least(due_on, p.projected_on), 'infinity')
    FROM (SELECT CASE WHEN due_mileage IS NOT NULL AND distance_per_day > 0
                       AND greatest(due_mileage - mileage, 0) / distance_per_day <= 36525
                      THEN (mileage_at AT TIME ZONE tz)::date
                           + ceil(greatest(due_mileage - mileage, 0) / distance_per_day)::integer END AS projected_on) p,
         (SELECT least(due_on + 1, CASE WHEN due_mileage < mileage THEN '-infinity'::date END) AS overdue_from) o
$$;

-- Every reminder's days, computed now from its inputs (the definition the
-- kept rows follow).
CREATE VIEW reminder_alerts_live WITH (security_invoker = true) AS
SELECT r.tenant_id, r.id AS reminder_id, r.vehicle_id, x.projected_on, x.overdue_from, x.soon_from, x.due_key
  FROM reminders r
  JOIN tenants tn ON tn.id = r.tenant_id
  LEFT JOIN vehicles v ON v.tenant_id = r.tenant_id AND v.id = r.vehicle_id
  LEFT JOIN vehicle_event_heads h ON h.tenant_id = r.tenant_id AND h.vehicle_id = r.vehicle_id
  CROSS JOIN LATERAL reminder_alert_dates(r.due_on, r.due_mileage, coalesce(r.due_soon_days, tn.due_soon_days),
    coalesce(r.due_soon_distance, tn.due_soon_distance), h.mileage, h.mileage_at, h.distance_per_day,
    coalesce(v.timezone, 'UTC')) x;

CREATE TABLE reminder_alerts (
  tenant_id    uuid NOT NULL,
  reminder_id  uuid NOT NULL,
  projected_on date,
  overdue_from date NOT NULL,
  soon_from    date NOT NULL,
  due_key      date NOT NULL,
  PRIMARY KEY (tenant_id, reminder_id),
  FOREIGN KEY (tenant_id, reminder_id) REFERENCES reminders (tenant_id, id) ON DELETE CASCADE
);
COMMENT ON TABLE reminder_alerts IS
  'per reminder, the days its status changes (reminder_alert_dates), kept by the database as its inputs change; '
  'the status itself is computed on read (reminders_due)';
-- A status's reminders in the list's order: the days are conditions the
-- index checks itself (only matching rows are read from the table).
CREATE INDEX reminder_alerts_order_idx ON reminder_alerts (tenant_id, due_key, overdue_from, soon_from)
  INCLUDE (reminder_id);
SELECT protect_tenant_table('reminder_alerts', 'derived');

-- Brings the kept days of a tenant's given reminders up to date (one
-- statement, planned once per session).
CREATE FUNCTION refresh_reminder_alerts(p_tenant uuid, p_ids uuid[]) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
BEGIN
  INSERT INTO reminder_alerts AS a (tenant_id, reminder_id, projected_on, overdue_from, soon_from, due_key)
  SELECT l.tenant_id, l.reminder_id, l.projected_on, l.overdue_from, l.soon_from, l.due_key FROM reminder_alerts_live l
   WHERE l.tenant_id = p_tenant AND l.reminder_id = ANY (p_ids)
   ORDER BY l.reminder_id
  ON CONFLICT (tenant_id, reminder_id) DO UPDATE
    SET projected_on = excluded.projected_on, overdue_from = excluded.overdue_from, soon_from = excluded.soon_from,
        due_key = excluded.due_key
  WHERE (a.projected_on, a.overdue_from, a.soon_from, a.due_key) IS DISTINCT FROM
        (excluded.projected_on, excluded.overdue_from, excluded.soon_from, excluded.due_key);
END
$fn$;

-- The same for the live reminders of a tenant, or of one of its vehicles
-- (a soft-deleted one is brought up to date when it is restored: an update).
CREATE FUNCTION refresh_live_reminder_alerts(p_tenant uuid, p_vehicle uuid DEFAULT NULL) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
DECLARE
  ids uuid[];
BEGIN
  IF p_vehicle IS NULL THEN
    ids := ARRAY(SELECT r.id FROM reminders r WHERE r.tenant_id = p_tenant AND r.deleted_at IS NULL);
  ELSE
    ids := ARRAY(SELECT r.id FROM reminders r
                  WHERE r.tenant_id = p_tenant AND r.vehicle_id = p_vehicle AND r.deleted_at IS NULL);
  END IF;
  IF cardinality(ids) > 0 THEN PERFORM refresh_reminder_alerts(p_tenant, ids); END IF;
END
$fn$;

-- The reminders a statement wrote: their days, before their notifications
-- (statement triggers fire by name: reminders_alerts_* before
-- reminders_chain_insert and reminders_notify_*, which read the days).
CREATE FUNCTION reminders_alerts() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT w.tenant_id, array_agg(w.id) AS ids FROM written w GROUP BY w.tenant_id LOOP
    PERFORM refresh_reminder_alerts(t.tenant_id, t.ids);
  END LOOP;
  RETURN NULL;
END
$fn$;
CREATE TRIGGER reminders_alerts_insert AFTER INSERT ON reminders REFERENCING NEW TABLE AS written
  FOR EACH STATEMENT EXECUTE FUNCTION reminders_alerts();
CREATE TRIGGER reminders_alerts_update AFTER UPDATE ON reminders REFERENCING NEW TABLE AS written
  FOR EACH STATEMENT EXECUTE FUNCTION reminders_alerts();

-- A head's odometer, a vehicle's timezone, a tenant's thresholds: the days
-- of the reminders they feed.
CREATE FUNCTION odometer_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  IF TG_OP = 'DELETE' THEN
    PERFORM refresh_live_reminder_alerts(OLD.tenant_id, OLD.vehicle_id);
  ELSE
    PERFORM refresh_live_reminder_alerts(NEW.tenant_id, NEW.vehicle_id);
  END IF;
  RETURN NULL;
END
$fn$;
CREATE TRIGGER reminder_alerts AFTER INSERT OR DELETE ON vehicle_event_heads
  FOR EACH ROW EXECUTE FUNCTION odometer_changed();
CREATE TRIGGER reminder_alerts_update AFTER UPDATE OF mileage, mileage_at, distance_per_day ON vehicle_event_heads
  FOR EACH ROW WHEN ((OLD.mileage, OLD.mileage_at, OLD.distance_per_day) IS DISTINCT FROM
                     (NEW.mileage, NEW.mileage_at, NEW.distance_per_day))
  EXECUTE FUNCTION odometer_changed();

CREATE FUNCTION vehicle_timezone_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  PERFORM refresh_live_reminder_alerts(NEW.tenant_id, NEW.id);
  RETURN NULL;
END
$fn$;
CREATE TRIGGER reminder_alerts AFTER UPDATE OF timezone ON vehicles
  FOR EACH ROW WHEN (OLD.timezone IS DISTINCT FROM NEW.timezone) EXECUTE FUNCTION vehicle_timezone_changed();

CREATE FUNCTION tenant_thresholds_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  PERFORM refresh_live_reminder_alerts(NEW.id);
  RETURN NULL;
END
$fn$;
CREATE TRIGGER reminder_alerts AFTER UPDATE OF due_soon_days, due_soon_distance ON tenants
  FOR EACH ROW WHEN ((OLD.due_soon_days, OLD.due_soon_distance) IS DISTINCT FROM (NEW.due_soon_days, NEW.due_soon_distance))
  EXECUTE FUNCTION tenant_thresholds_changed();

-- The status from the kept days and today; the rest as in 0011, and the
-- days themselves (last: a view's columns only grow).
CREATE OR REPLACE VIEW reminders_due WITH (security_invoker = true) AS
SELECT r.tenant_id, r.id AS reminder_id, r.vehicle_id, r.garage_id, v.group_id, r.title, r.service_type,
       r.expiry_of, r.expiry_kind, r.source, r.due_on, r.due_mileage, v.odometer_unit AS unit,
       h.mileage AS current_mileage, d.today, r.due_on - d.today AS days_left,
       r.due_mileage - h.mileage AS distance_left, a.projected_on,
       least(r.due_on, a.projected_on) AS effective_due_on, s.status,
       CASE s.status WHEN 'overdue' THEN 1 WHEN 'due_soon' THEN 2 WHEN 'upcoming' THEN 3 ELSE 4 END AS urgency,
       r.repeat_months, r.repeat_distance, r.snoozed_until, r.snoozed_until_mileage, a.overdue_from, a.soon_from,
       a.due_key
  FROM reminders r
  JOIN reminder_alerts a ON a.tenant_id = r.tenant_id AND a.reminder_id = r.id
  LEFT JOIN vehicles v ON v.tenant_id = r.tenant_id AND v.id = r.vehicle_id
  LEFT JOIN vehicle_event_heads h ON h.tenant_id = r.tenant_id AND h.vehicle_id = r.vehicle_id
  -- OFFSET 0: today is computed once per timezone (0011)
  CROSS JOIN LATERAL (SELECT (now() AT TIME ZONE coalesce(v.timezone, 'UTC'))::date AS today OFFSET 0) d
  CROSS JOIN LATERAL (
    SELECT CASE
      WHEN r.snoozed_until > d.today OR r.snoozed_until_mileage > coalesce(h.mileage, 0) THEN 'snoozed'
      WHEN a.overdue_from <= d.today THEN 'overdue'
      WHEN a.soon_from <= d.today THEN 'due_soon'
      ELSE 'upcoming' END AS status) s
 WHERE r.status = 'active' AND r.deleted_at IS NULL AND (r.due_on IS NOT NULL OR r.due_mileage IS NOT NULL)
   AND (r.vehicle_id IS NULL OR v.deleted_at IS NULL);

-- What is due soon or overdue, read by the kept days' index: no timezone's
-- today is later than tomorrow in UTC.
CREATE OR REPLACE VIEW reminder_notices WITH (security_invoker = true) AS
SELECT d.tenant_id, d.vehicle_id, d.reminder_id, d.status AS kind, d.due_on, d.due_mileage,
       jsonb_build_object('kind', d.status, 'reminder_id', d.reminder_id, 'vehicle_id', d.vehicle_id,
                          'title', d.title, 'due_on', d.due_on, 'due_mileage', d.due_mileage, 'unit', d.unit,
                          'current_mileage', d.current_mileage, 'days_left', d.days_left,
                          'distance_left', d.distance_left, 'projected_on', d.projected_on) AS payload
  FROM reminders_due d
 WHERE d.status IN ('due_soon', 'overdue') AND d.soon_from <= (now() AT TIME ZONE 'UTC')::date + 1;

INSERT INTO reminder_alerts (tenant_id, reminder_id, projected_on, overdue_from, soon_from, due_key)
SELECT tenant_id, reminder_id, projected_on, overdue_from, soon_from, due_key FROM reminder_alerts_live;
