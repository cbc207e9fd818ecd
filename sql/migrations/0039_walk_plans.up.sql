-- motomind 0039: the mileage walk's plan at a million rows (#17). Measured
-- with auto_explain inside the trigger, COPY of 1,000,000 events: the walk
-- took 9.2 s (0.7 s at 200,000). The planner, estimating 8,000 walked rows
-- (the bounds come from a CTE), read the supersessions (empty) by a merge
-- anti join, which sorted the million rows by event id on disk (87 MB,
-- 4.2 s) and then sorted them again for the window (80 MB, 2.4 s). With
-- merge joins off inside the trigger it probes the supersessions' index
-- per row, in the index's order, as it does at 200,000: 4.1-5.6 s. The
-- walk's vehicles are also grouped before they are joined with vehicles
-- (a hash aggregate of the statement's rows), where every row was joined
-- and the million sorted to group them (0.9 s). The same rules; the body
-- is edited in place from the catalog, the edit checked.
ALTER FUNCTION check_new_events() SET enable_mergejoin = off;

DO $do$
DECLARE
  def text := pg_get_functiondef('check_new_events()'::regprocedure);
  was text := $s$  WITH touched AS MATERIALIZED (
    SELECT n.tenant_id, n.vehicle_id, min(n.occurred_at) AS lo, max(n.occurred_at) AS hi,
           max(v.timezone) AS tz, max_daily_distance(max(v.odometer_unit)) AS per_day
      FROM new_events n JOIN vehicles v ON v.tenant_id = n.tenant_id AND v.id = n.vehicle_id
     WHERE n.mileage IS NOT NULL OR n.corrects_id IS NOT NULL
     GROUP BY n.tenant_id, n.vehicle_id),$s$;
BEGIN
  IF position(was IN def) = 0 THEN RAISE EXCEPTION '0039: check_new_events has no "%"', was; END IF;
  EXECUTE replace(def, was, $s$  WITH touched AS MATERIALIZED (
    SELECT g.tenant_id, g.vehicle_id, g.lo, g.hi, v.timezone AS tz, max_daily_distance(v.odometer_unit) AS per_day
      FROM (SELECT n.tenant_id, n.vehicle_id, min(n.occurred_at) AS lo, max(n.occurred_at) AS hi
              FROM new_events n
             WHERE n.mileage IS NOT NULL OR n.corrects_id IS NOT NULL
             GROUP BY n.tenant_id, n.vehicle_id) g
      JOIN vehicles v ON v.tenant_id = g.tenant_id AND v.id = g.vehicle_id),$s$);
END
$do$;
