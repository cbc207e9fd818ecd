-- Undoes 0020: the functions it rewrote are SQL functions again.
DO $do$
DECLARE
  f regprocedure;
  def text;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
            WHERE p.pronamespace = current_schema()::regnamespace AND p.prosecdef
              AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'plpgsql')
              AND p.prosrc ~ '^BEGIN RETURN \(.*\); END$' ORDER BY 1 LOOP
    def := pg_get_functiondef(f);
    def := regexp_replace(def, '\sLANGUAGE plpgsql\s', E'\n LANGUAGE sql\n');
    def := regexp_replace(def, 'AS \$function\$BEGIN RETURN \((.*)\); END\$function\$', 'AS $function$\1$function$');
    EXECUTE def;
  END LOOP;
END
$do$;
