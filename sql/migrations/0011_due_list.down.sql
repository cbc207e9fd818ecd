-- Undoes 0011: reminders_due as in 0010.
CREATE OR REPLACE VIEW reminders_due WITH (security_invoker = true) AS
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
  CROSS JOIN LATERAL (SELECT (now() AT TIME ZONE coalesce(v.timezone, 'UTC'))::date AS today) d
  CROSS JOIN LATERAL (
    SELECT CASE WHEN r.due_mileage IS NOT NULL AND h.distance_per_day > 0
                THEN (h.mileage_at AT TIME ZONE coalesce(v.timezone, 'UTC'))::date
                     + ceil(greatest(r.due_mileage - h.mileage, 0) / h.distance_per_day)::integer END AS projected_on) p
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
