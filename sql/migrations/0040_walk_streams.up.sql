-- motomind 0040: the mileage walk streams (#17). Its rows (every walked
-- reading with its neighbours, 216 bytes each) were stored once
-- (MATERIALIZED) and read twice, by the jump flags and the decrease check:
-- at a million rows a 216 MB store past work_mem, written to disk and read
-- back twice (0.8 s of the walk's 4.8 s, auto_explain). Now only the rows
-- either rule may be about are stored — a decrease, or a jump over one
-- day's maximum (every flagged jump is one: 0026) — and the walk streams
-- through that filter. The same verdicts and flags; the body is edited in
-- place from the catalog, each edit checked to match exactly once.
DO $do$
DECLARE
  def text := pg_get_functiondef('check_new_events()'::regprocedure);
  edits text[] := ARRAY[
$e$  walk AS MATERIALIZED ($e$,
$e$  walk AS ($e$,
$e$  flagged AS (
$e$,
$e$  -- Only the rows a rule may be about leave the walk (a decrease, a jump
  -- over one day's maximum): the walk streams through, never stored.
  interesting AS MATERIALIZED (
    SELECT * FROM walk w
     WHERE w.mileage < w.prev_mileage
        OR w.mileage - w.prev_mileage > w.per_day OR w.next_mileage - w.mileage > w.per_day),
  flagged AS (
$e$,
$e$      FROM walk w
$e$,
$e$      FROM interesting w
$e$,
$e$    INTO bad FROM walk w WHERE w.mileage < w.prev_mileage LIMIT 1;$e$,
$e$    INTO bad FROM interesting w WHERE w.mileage < w.prev_mileage LIMIT 1;$e$];
  i int;
BEGIN
  FOR i IN 1 .. array_length(edits, 1) BY 2 LOOP
    IF (length(def) - length(replace(def, edits[i], ''))) <> length(edits[i]) THEN
      RAISE EXCEPTION '0040: check_new_events has not exactly one "%"', edits[i];
    END IF;
    def := replace(def, edits[i], edits[i + 1]);
  END LOOP;
  EXECUTE def;
END
$do$;
