-- Undoes 0042: current_tenant_id() as 0030 left it and deleted_vehicle_ids()
-- with its own body again (looked up per policy); no _lookup functions.
DO $do$
BEGIN
  IF to_regprocedure('deleted_vehicle_ids_lookup()') IS NOT NULL THEN
    EXECUTE replace(pg_get_functiondef('deleted_vehicle_ids_lookup()'::regprocedure),
                    '.deleted_vehicle_ids_lookup()', '.deleted_vehicle_ids()');
  END IF;
  EXECUTE format($f$
    CREATE OR REPLACE FUNCTION %1$s.current_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE AS $$
      SELECT CASE WHEN %1$s.current_tenant_role() IS NOT NULL THEN %1$s.claimed_tenant_id() END
    $$;
  $f$, quote_ident(current_schema()));
END
$do$;
DROP FUNCTION IF EXISTS deleted_vehicle_ids_lookup();
DROP FUNCTION IF EXISTS current_tenant_id_lookup();
