-- motomind 0038: the payload rules in C inside the database (#17). The SQL
-- rules generated from sql/payloads.json cost ~5 us a row in the insert
-- trigger (a quarter of a COPY's time, the largest of the rules); the same
-- checks by src/payload.c, reading each stored payload's jsonb tree, cost
-- ~2 us (docs/design.md). When the motomind_pg library is installed in
-- PostgreSQL's library directory (make install-pg) and the migrating role
-- may declare C functions (a superuser), payload_problem_native(doc, type,
-- payload) is declared, and check_new_events uses it, with the document of
-- the newest payload_rules migration (payload_document()). Otherwise a
-- warning says why, and the generated SQL rules go on as before. Both give
-- the same verdicts and messages (spec/payload_spec.lua).
DO $do$
BEGIN
  CREATE FUNCTION payload_problem_native(doc text, type text, payload jsonb) RETURNS text
    LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE AS 'motomind_pg', 'motomind_payload_problem';
  -- The trigger runs it as the owner; nobody else needs to compile documents.
  REVOKE ALL ON FUNCTION payload_problem_native(text, text, jsonb) FROM PUBLIC;
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'motomind: the payload rules stay in SQL (%)', SQLERRM
    USING HINT = 'make install-pg puts the motomind_pg library where PostgreSQL loads it; a superuser migrates';
END
$do$;

-- check_new_events: the native rules when they are declared (looked up per
-- statement, so dropping the function falls back to SQL), else as before.
DO $do$
DECLARE
  def text := pg_get_functiondef('check_new_events()'::regprocedure);
  was text := '  IF (SELECT count(*) FROM (SELECT 1 FROM new_events LIMIT 17) few) <= 16 THEN';
BEGIN
  IF position(was IN def) = 0 THEN RAISE EXCEPTION '0038: check_new_events has no "%"', was; END IF;
  EXECUTE replace(def, was, $sql$  IF to_regprocedure('payload_problem_native(text,text,jsonb)') IS NOT NULL THEN
    SELECT n.id, payload_problem_native(payload_document(), n.type, n.payload) AS problem INTO bad
      FROM new_events n
     WHERE n.correction IS DISTINCT FROM 'void'
       AND payload_problem_native(payload_document(), n.type, n.payload) IS NOT NULL
     LIMIT 1;
  ELSIF (SELECT count(*) FROM (SELECT 1 FROM new_events LIMIT 17) few) <= 16 THEN$sql$);
END
$do$;
