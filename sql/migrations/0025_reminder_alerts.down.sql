-- Undoes 0025: the due list computes every reminder's days on read again
-- (reminders_due as in 0011, reminder_notices as in 0010).
DROP TRIGGER reminder_alerts ON tenants;
DROP TRIGGER reminder_alerts ON vehicles;
DROP TRIGGER reminder_alerts ON vehicle_event_heads;
DROP TRIGGER reminder_alerts_update ON vehicle_event_heads;
DROP TRIGGER reminders_alerts_insert ON reminders;
DROP TRIGGER reminders_alerts_update ON reminders;
DROP FUNCTION tenant_thresholds_changed(), vehicle_timezone_changed(), odometer_changed(), reminders_alerts();
DROP VIEW reminder_notices, reminders_due;
CREATE VIEW reminders_due WITH (security_invoker = true) AS
SELECT r.tenant_id, r.id AS reminder_id, r.vehicle_id, r.garage_id, v.group_id, r.title, r.service_type,
       r.expiry_of, r.expiry_kind, r.source, r.due_on, r.due_mileage, v.odometer_unit AS unit,
       h.mileage AS current_mileage, d.today, r.due_on - d.today AS days_left,
       r.due_mileage - h.mileage AS distance_left, p.projected_on,
       least(r.due_on, p.projected_on) AS effective_due_on, s.status,
       CASE s.status WHEN 'overdue' THEN 1 WHEN 'due_soon' THEN 2 WHEN 'upcoming' THEN 3 ELSE 4 END AS urgency,
       r.repeat_months, r.repeat_distance, r.snoozed_until, r.snoozed_until_mileage
  FROM reminders r
  JOIN tenants tn ON tn.id = r.tenant_id
  LEFT JOIN vehicles v ON v.tenant_id = r.tenant_id AND v.id = r.vehicle_id
  LEFT JOIN vehicle_event_heads h ON h.tenant_id = r.tenant_id AND h.vehicle_id = r.vehicle_id
  -- OFFSET 0 keeps each lateral a computed column instead of an expression
  -- copied into every use of it
  CROSS JOIN LATERAL (SELECT (now() AT TIME ZONE coalesce(v.timezone, 'UTC'))::date AS today OFFSET 0) d
  CROSS JOIN LATERAL (
    SELECT CASE WHEN r.due_mileage IS NOT NULL AND h.distance_per_day > 0
                THEN (h.mileage_at AT TIME ZONE coalesce(v.timezone, 'UTC'))::date
                     + ceil(greatest(r.due_mileage - h.mileage, 0) / h.distance_per_day)::integer END AS projected_on
    OFFSET 0) p
  CROSS JOIN LATERAL (
    SELECT CASE
      WHEN r.snoozed_until > d.today OR r.snoozed_until_mileage > coalesce(h.mileage, 0) THEN 'snoozed'
      WHEN r.due_on < d.today OR r.due_mileage < h.mileage THEN 'overdue'
      WHEN r.due_on - d.today <= coalesce(r.due_soon_days, tn.due_soon_days)
        OR r.due_mileage - h.mileage <= coalesce(r.due_soon_distance, tn.due_soon_distance)
        OR p.projected_on - d.today <= coalesce(r.due_soon_days, tn.due_soon_days) THEN 'due_soon'
      ELSE 'upcoming' END AS status) s
 WHERE r.status = 'active' AND r.deleted_at IS NULL AND (r.due_on IS NOT NULL OR r.due_mileage IS NOT NULL)
   AND (r.vehicle_id IS NULL OR v.deleted_at IS NULL);

CREATE VIEW reminder_notices WITH (security_invoker = true) AS
SELECT d.tenant_id, d.vehicle_id, d.reminder_id, d.status AS kind, d.due_on, d.due_mileage,
       jsonb_build_object('kind', d.status, 'reminder_id', d.reminder_id, 'vehicle_id', d.vehicle_id,
                          'title', d.title, 'due_on', d.due_on, 'due_mileage', d.due_mileage, 'unit', d.unit,
                          'current_mileage', d.current_mileage, 'days_left', d.days_left,
                          'distance_left', d.distance_left, 'projected_on', d.projected_on) AS payload
  FROM reminders_due d
 WHERE d.status IN ('due_soon', 'overdue');
DO $do$
BEGIN
  EXECUTE format('GRANT SELECT ON reminders_due TO %I', (SELECT value FROM settings WHERE key = 'app_role'));
END
$do$;

DROP FUNCTION refresh_live_reminder_alerts(uuid, uuid), refresh_reminder_alerts(uuid, uuid[]);
DROP TABLE reminder_alerts;
DROP VIEW reminder_alerts_live;
DROP FUNCTION reminder_alert_dates(date, numeric, integer, numeric, numeric, timestamptz, numeric, text);
