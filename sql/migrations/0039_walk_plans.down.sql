-- Undoes 0039: merge joins allowed, the walk's vehicles joined row by row.
ALTER FUNCTION check_new_events() RESET enable_mergejoin;

DO $do$
DECLARE
  def text := pg_get_functiondef('check_new_events()'::regprocedure);
  now_ text := $s$  WITH touched AS MATERIALIZED (
    SELECT g.tenant_id, g.vehicle_id, g.lo, g.hi, v.timezone AS tz, max_daily_distance(v.odometer_unit) AS per_day
      FROM (SELECT n.tenant_id, n.vehicle_id, min(n.occurred_at) AS lo, max(n.occurred_at) AS hi
              FROM new_events n
             WHERE n.mileage IS NOT NULL OR n.corrects_id IS NOT NULL
             GROUP BY n.tenant_id, n.vehicle_id) g
      JOIN vehicles v ON v.tenant_id = g.tenant_id AND v.id = g.vehicle_id),$s$;
BEGIN
  IF position(now_ IN def) = 0 THEN RAISE EXCEPTION '0039 down: check_new_events has no grouped walk'; END IF;
  EXECUTE replace(def, now_, $s$  WITH touched AS MATERIALIZED (
    SELECT n.tenant_id, n.vehicle_id, min(n.occurred_at) AS lo, max(n.occurred_at) AS hi,
           max(v.timezone) AS tz, max_daily_distance(max(v.odometer_unit)) AS per_day
      FROM new_events n JOIN vehicles v ON v.tenant_id = n.tenant_id AND v.id = n.vehicle_id
     WHERE n.mileage IS NOT NULL OR n.corrects_id IS NOT NULL
     GROUP BY n.tenant_id, n.vehicle_id),$s$);
END
$do$;
