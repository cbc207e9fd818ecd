-- Undoes 0042: current_tenant_id() as 0030 left it (the membership check per
-- policy), and no tenant_role_cached().
DO $do$
BEGIN
  EXECUTE format($f$
    CREATE OR REPLACE FUNCTION %1$s.current_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE AS $$
      SELECT CASE WHEN %1$s.current_tenant_role() IS NOT NULL THEN %1$s.claimed_tenant_id() END
    $$;
  $f$, quote_ident(current_schema()));
END
$do$;
DROP FUNCTION IF EXISTS tenant_role_cached(regprocedure);
