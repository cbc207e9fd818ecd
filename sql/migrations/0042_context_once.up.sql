-- motomind 0042: the tenant context's membership check runs once per
-- statement (#17). Row-level security evaluates current_tenant_id() once
-- per policy (an InitPlan each: ten in a timeline page read by the
-- application role), and each ran the membership lookup, the SECURITY
-- DEFINER PL/pgSQL current_tenant_role(): ~9 us a call, ~0.1 ms of the
-- ~0.35 ms the policies add to a page (docs/design.md). When the
-- motomind_pg library loads (as for 0038), tenant_role_cached(verifier)
-- runs current_tenant_role() once and gives its answer again while the
-- transaction, the statement's snapshot (its command id, and the count of
-- transactions completed when it was taken), the calling role and the
-- claimed tenant and user are the same (src/pg/context.c): a statement
-- sees the membership its snapshot sees, as before. Otherwise a warning
-- says why, and current_tenant_id() checks per policy as before. Who may
-- see what is unchanged: the security spec's matrix runs through it.
DO $do$
BEGIN
  CREATE FUNCTION tenant_role_cached(verifier regprocedure) RETURNS text
    LANGUAGE C STABLE AS 'motomind_pg', 'motomind_tenant_role_cached';
  EXECUTE format($f$
    CREATE OR REPLACE FUNCTION %1$s.current_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE AS $$
      SELECT CASE WHEN %1$s.tenant_role_cached(%2$L) IS NOT NULL THEN %1$s.claimed_tenant_id() END
    $$;
  $f$, quote_ident(current_schema()), quote_ident(current_schema()) || '.current_tenant_role()');
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'motomind: the tenant context is checked once per policy (%)', SQLERRM
    USING HINT = 'make install-pg puts the motomind_pg library where PostgreSQL loads it; a superuser migrates';
END
$do$;
