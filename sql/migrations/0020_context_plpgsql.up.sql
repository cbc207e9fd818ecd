-- motomind 0020: the session-context functions keep their plans (#17).
-- Row-level security calls current_tenant_id(), current_tenant_role(),
-- deleted_vehicle_ids() and the like once per policy and statement. As
-- SECURITY DEFINER SQL functions they are never inlined, and a SQL function
-- not inlined plans its query again on every call: 0.2-0.55 ms each, 2.4 ms
-- of a 3 ms timeline page read by the application role. PL/pgSQL keeps each
-- statement's plan for the session: the same page then executes in 1.0 ms.
-- Every SECURITY DEFINER SQL function of the schema (read from the
-- catalog: one that a later migration adds is left as written) becomes
-- PL/pgSQL with the same query, attributes and settings.
DO $do$
DECLARE
  f regprocedure;
  def text;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
            WHERE p.pronamespace = current_schema()::regnamespace AND p.prosecdef AND NOT p.proretset
              AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'sql') ORDER BY 1 LOOP
    def := pg_get_functiondef(f);
    def := regexp_replace(def, '\sLANGUAGE sql\s', E'\n LANGUAGE plpgsql\n');
    def := regexp_replace(def, 'AS \$function\$(.*)\$function\$', 'AS $function$BEGIN RETURN (\1); END$function$');
    IF def !~ 'LANGUAGE plpgsql' OR def !~ 'BEGIN RETURN \(' THEN
      RAISE EXCEPTION '0020: % could not be rewritten', f;
    END IF;
    EXECUTE def;
  END LOOP;
END
$do$;
