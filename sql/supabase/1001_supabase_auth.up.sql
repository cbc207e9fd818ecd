-- motomind on Supabase (optional set: motomind migrate --supabase). Needs
-- Supabase's auth schema (auth.users) and its authenticated role.
--  * users.id is auth.users.id; a profile is created on signup and its email
--    kept in sync;
--  * the identity comes from the JWT claims PostgREST sets
--    (request.jwt.claims: sub, and tenant_id or app_metadata.tenant_id) when
--    motomind's own context is not set;
--  * the authenticated role gets the application role's rights (and its
--    policies).

ALTER TABLE users ADD CONSTRAINT users_auth_user_fkey
  FOREIGN KEY (id) REFERENCES auth.users (id) ON DELETE CASCADE NOT VALID;

CREATE FUNCTION sync_auth_user() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO users (id, email, display_name)
    VALUES (NEW.id, NEW.email, NEW.raw_user_meta_data ->> 'full_name')
    ON CONFLICT (id) DO NOTHING;
  ELSIF NEW.email IS DISTINCT FROM OLD.email THEN
    UPDATE users SET email = NEW.email WHERE id = NEW.id;
  END IF;
  RETURN NULL;
END
$fn$;
REVOKE EXECUTE ON FUNCTION sync_auth_user() FROM PUBLIC;

DO $do$
DECLARE
  s text := quote_ident(current_schema());
  app text := (SELECT value FROM settings WHERE key = 'app_role');
BEGIN
  -- One trigger per motomind schema on auth.users.
  EXECUTE format('CREATE TRIGGER %I AFTER INSERT OR UPDATE OF email ON auth.users '
                 'FOR EACH ROW EXECUTE FUNCTION %s.sync_auth_user()', current_schema() || '_profile', s);
  EXECUTE format($f$
    CREATE OR REPLACE FUNCTION %1$s.current_user_id() RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
      SELECT coalesce(nullif(current_setting('motomind.user_id', true), ''),
                      nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')::uuid
    $$;
    CREATE OR REPLACE FUNCTION %1$s.claimed_tenant_id() RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
      SELECT coalesce(nullif(current_setting('motomind.tenant_id', true), ''),
                      nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'tenant_id',
                      nullif(current_setting('request.jwt.claims', true), '')::jsonb -> 'app_metadata' ->> 'tenant_id')::uuid
    $$;
  $f$, s);
  EXECUTE format('GRANT %I TO authenticated', app);
END
$do$;
