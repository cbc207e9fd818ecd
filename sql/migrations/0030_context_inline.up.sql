-- motomind 0030: the tenant context costs one membership lookup per policy
-- (#17). Row-level security evaluates current_tenant_id() once per policy
-- and statement (an InitPlan each: a timeline page read by the application
-- role has ten). Each was a SECURITY DEFINER PL/pgSQL call with its own
-- search_path (a GUC level saved and restored) calling two more of the same
-- kind: claimed_tenant_id(), which reads one setting, and
-- current_tenant_role(), the membership lookup. 27 µs a call, 0.3 ms of a
-- 1.8 ms page. Only the lookup needs the owner's rights (memberships is
-- itself protected), so claimed_tenant_id() becomes a plain SQL function
-- (as 0026 made current_user_id()) and current_tenant_id() a SQL CASE over
-- the two, both inlined where they are called; their names are qualified,
-- so they resolve the same under any search_path. current_tenant_role()
-- stays as it was. Who may see what is unchanged: the security spec's
-- matrix runs through them.
DO $do$
BEGIN
  EXECUTE format($f$
    CREATE OR REPLACE FUNCTION %1$s.claimed_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE AS $$
      SELECT nullif(pg_catalog.current_setting('motomind.tenant_id', true), '')::pg_catalog.uuid
    $$;
    CREATE OR REPLACE FUNCTION %1$s.current_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE AS $$
      SELECT CASE WHEN %1$s.current_tenant_role() IS NOT NULL THEN %1$s.claimed_tenant_id() END
    $$;
  $f$, quote_ident(current_schema()));
END
$do$;
