-- Undoes 0042: current_tenant_id() (SQL, as 0030 left it) and
-- deleted_vehicle_ids() (PL/pgSQL, as 0009 and 0020 left it) from their
-- lookups' bodies again (looked up per policy), and no _lookup functions.
DO $do$
BEGIN
  IF to_regprocedure('deleted_vehicle_ids_lookup()') IS NOT NULL THEN
    EXECUTE replace(pg_get_functiondef('deleted_vehicle_ids_lookup()'::regprocedure),
                    '.deleted_vehicle_ids_lookup()', '.deleted_vehicle_ids()');
  END IF;
  IF to_regprocedure('current_tenant_id_lookup()') IS NOT NULL THEN -- (SQL again: its query, unwrapped)
    EXECUTE format('CREATE OR REPLACE FUNCTION %s.current_tenant_id() RETURNS uuid LANGUAGE sql STABLE AS %L',
                   quote_ident(current_schema()),
                   (SELECT substring(prosrc FROM '^BEGIN RETURN \((.*)\); END$') FROM pg_proc
                     WHERE oid = 'current_tenant_id_lookup()'::regprocedure));
  END IF;
END
$do$;
DROP FUNCTION IF EXISTS deleted_vehicle_ids_lookup();
DROP FUNCTION IF EXISTS current_tenant_id_lookup();
