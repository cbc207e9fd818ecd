-- motomind 0042: the tenant context's lookups run once per statement
-- (#17). Row-level security evaluates current_tenant_id() and
-- deleted_vehicle_ids() once per policy (an InitPlan each: ten in a
-- timeline page read by the application role), and each ran a SECURITY
-- DEFINER PL/pgSQL lookup: the membership check current_tenant_role()
-- (~9 us) or the tenant's deleted vehicles (~20 us), together ~0.15 ms of
-- the ~0.35 ms the policies added to a page (docs/design.md). When the
-- motomind_pg library loads (as for 0038), each of the two moves to
-- <name>_lookup(), and <name>() (the same function: the policies hold its
-- OID) becomes motomind_cached in C, which runs the lookup once and gives
-- its answer again while the transaction and subtransaction, what the
-- statement's snapshot sees (its command id and the transactions it counts
-- as running) and the claimed tenant and user are the same
-- (src/pg/context.c): a statement sees what its snapshot sees, as before.
-- The lookups are PL/pgSQL, which keeps its plans for the session (a SQL
-- function called from C would plan its query at every call). Without the
-- library a warning says why, and both run per policy as before. Who may
-- see what is unchanged: the security spec's matrix runs through them.
DO $do$
DECLARE
  s text := quote_ident(current_schema());
BEGIN
  EXECUTE replace(pg_get_functiondef('deleted_vehicle_ids()'::regprocedure),
                  '.deleted_vehicle_ids()', '.deleted_vehicle_ids_lookup()');
  -- current_tenant_id() is SQL (0030): its query, as PL/pgSQL
  EXECUTE format('CREATE FUNCTION %s.current_tenant_id_lookup() RETURNS uuid LANGUAGE plpgsql STABLE AS %L', s,
                 'BEGIN RETURN (' || (SELECT prosrc FROM pg_proc WHERE oid = 'current_tenant_id()'::regprocedure) ||
                 '); END');
  EXECUTE format($f$
    CREATE OR REPLACE FUNCTION %1$s.current_tenant_id() RETURNS uuid
      LANGUAGE C STABLE AS 'motomind_pg', 'motomind_cached';
    CREATE OR REPLACE FUNCTION %1$s.deleted_vehicle_ids() RETURNS uuid[]
      LANGUAGE C STABLE AS 'motomind_pg', 'motomind_cached';
  $f$, s);
EXCEPTION WHEN OTHERS THEN
  RAISE WARNING 'motomind: the tenant context is looked up once per policy (%)', SQLERRM
    USING HINT = 'make install-pg puts the motomind_pg library where PostgreSQL loads it; a superuser migrates';
END
$do$;
