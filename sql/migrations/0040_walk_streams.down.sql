-- Undoes 0040: the walk stored whole again.
DO $do$
DECLARE
  def text := pg_get_functiondef('check_new_events()'::regprocedure);
  edits text[] := ARRAY[
$e$  walk AS ($e$,
$e$  walk AS MATERIALIZED ($e$,
$e$  -- Only the rows a rule may be about leave the walk (a decrease, a jump
  -- over one day's maximum): the walk streams through, never stored.
  interesting AS MATERIALIZED (
    SELECT * FROM walk w
     WHERE w.mileage < w.prev_mileage
        OR w.mileage - w.prev_mileage > w.per_day OR w.next_mileage - w.mileage > w.per_day),
  flagged AS (
$e$,
$e$  flagged AS (
$e$,
$e$      FROM interesting w
$e$,
$e$      FROM walk w
$e$,
$e$    INTO bad FROM interesting w WHERE w.mileage < w.prev_mileage LIMIT 1;$e$,
$e$    INTO bad FROM walk w WHERE w.mileage < w.prev_mileage LIMIT 1;$e$];
  i int;
BEGIN
  FOR i IN 1 .. array_length(edits, 1) BY 2 LOOP
    IF (length(def) - length(replace(def, edits[i], ''))) <> length(edits[i]) THEN
      RAISE EXCEPTION '0040 down: check_new_events has not exactly one "%"', edits[i];
    END IF;
    def := replace(def, edits[i], edits[i + 1]);
  END LOOP;
  EXECUTE def;
END
$do$;
