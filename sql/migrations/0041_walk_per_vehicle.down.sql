-- Undoes 0041: one window over every touched vehicle's readings again.
DO $do$
DECLARE
  def text := pg_get_functiondef('check_new_events()'::regprocedure);
  edits text[] := ARRAY[
$e$  -- Vehicle after vehicle (the bounds in order, each joined to its
  -- readings): the window's rows arrive grouped by vehicle, and only each
  -- vehicle's are sorted by time, in memory, not the whole walk at once.
  walk AS (
    SELECT e.tenant_id, e.vehicle_id, e.id, e.occurred_at, e.mileage, b.tz, b.per_day,
           lag(e.mileage) OVER w AS prev_mileage, lag(e.occurred_at) OVER w AS prev_at,
           lead(e.mileage) OVER w AS next_mileage, lead(e.occurred_at) OVER w AS next_at
      FROM (SELECT * FROM bounds ORDER BY tenant_id, vehicle_id) b JOIN vehicle_events_effective e
        ON e.tenant_id = b.tenant_id AND e.vehicle_id = b.vehicle_id
       AND e.occurred_at BETWEEN b.from_at AND b.to_at AND e.mileage IS NOT NULL
    WINDOW w AS (PARTITION BY e.tenant_id, e.vehicle_id ORDER BY e.occurred_at, e.mileage)),
$e$,
$e$  walk AS (
    SELECT e.tenant_id, e.vehicle_id, e.id, e.occurred_at, e.mileage, b.tz, b.per_day,
           lag(e.mileage) OVER w AS prev_mileage, lag(e.occurred_at) OVER w AS prev_at,
           lead(e.mileage) OVER w AS next_mileage, lead(e.occurred_at) OVER w AS next_at
      FROM bounds b JOIN vehicle_events_effective e
        ON e.tenant_id = b.tenant_id AND e.vehicle_id = b.vehicle_id
       AND e.occurred_at BETWEEN b.from_at AND b.to_at AND e.mileage IS NOT NULL
    WINDOW w AS (PARTITION BY e.tenant_id, e.vehicle_id ORDER BY e.occurred_at, e.mileage)),
$e$];
  i int;
BEGIN
  FOR i IN 1 .. array_length(edits, 1) BY 2 LOOP
    IF (length(def) - length(replace(def, edits[i], ''))) <> length(edits[i]) THEN
      RAISE EXCEPTION '0041 down: check_new_events has not exactly one "%"', edits[i];
    END IF;
    def := replace(def, edits[i], edits[i + 1]);
  END LOOP;
  EXECUTE def;
END
$do$;
