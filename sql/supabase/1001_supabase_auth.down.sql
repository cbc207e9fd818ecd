-- Reverts the Supabase set: motomind's own context only; no link to auth.users.
DO $do$
DECLARE
  s text := quote_ident(current_schema());
  app text := (SELECT value FROM settings WHERE key = 'app_role');
BEGIN
  EXECUTE format('DROP TRIGGER %I ON auth.users', current_schema() || '_profile');
  EXECUTE format($f$
    CREATE OR REPLACE FUNCTION %1$s.current_user_id() RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
      SELECT nullif(current_setting('motomind.user_id', true), '')::uuid
    $$;
    CREATE OR REPLACE FUNCTION %1$s.claimed_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
      SELECT nullif(current_setting('motomind.tenant_id', true), '')::uuid
    $$;
  $f$, s);
END
$do$;
DROP FUNCTION sync_auth_user();
ALTER TABLE users DROP CONSTRAINT users_auth_user_fkey;
