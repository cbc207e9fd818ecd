-- Undoes 0030: claimed_tenant_id() and current_tenant_id() as 0020 left them
-- (SECURITY DEFINER PL/pgSQL with an empty search_path).
DO $do$
BEGIN
  EXECUTE format($f$
    CREATE OR REPLACE FUNCTION %1$s.claimed_tenant_id() RETURNS uuid
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$BEGIN RETURN (
      SELECT nullif(current_setting('motomind.tenant_id', true), '')::uuid
    ); END$$;
    CREATE OR REPLACE FUNCTION %1$s.current_tenant_id() RETURNS uuid
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$BEGIN RETURN (
      SELECT CASE WHEN %1$s.current_tenant_role() IS NOT NULL THEN %1$s.claimed_tenant_id() END
    ); END$$;
  $f$, quote_ident(current_schema()));
END
$do$;
