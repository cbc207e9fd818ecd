-- Undoes 0038: check_new_events with the SQL rules alone, and no native ones.
DO $do$
DECLARE
  def text := pg_get_functiondef('check_new_events()'::regprocedure);
  native text := $sql$  IF to_regprocedure('payload_problem_native(text,text,jsonb)') IS NOT NULL THEN
    SELECT n.id, payload_problem_native(payload_document(), n.type, n.payload) AS problem INTO bad
      FROM new_events n
     WHERE n.correction IS DISTINCT FROM 'void'
       AND payload_problem_native(payload_document(), n.type, n.payload) IS NOT NULL
     LIMIT 1;
  ELSIF$sql$;
BEGIN
  IF position(native IN def) = 0 THEN RAISE EXCEPTION '0038 down: check_new_events has no native rules'; END IF;
  EXECUTE replace(def, native, '  IF');
END
$do$;
DROP FUNCTION IF EXISTS payload_problem_native(text, text, jsonb);
