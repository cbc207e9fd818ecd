-- motomind on Supabase, 1002: the trust boundary, tightened (issue #11).
--  * the verified JWT claim (sub) wins over the unsigned motomind.user_id
--    setting when both are present;
--  * users.email belongs to Supabase's auth: the profile follows auth.users,
--    so a signed-in user can no longer claim an address another person will
--    sign up with (only display_name is theirs to change);
--  * a sign-up without an e-mail (phone, anonymous) gets a profile too.

ALTER TABLE users ALTER COLUMN email DROP NOT NULL;

DO $do$
DECLARE
  s text := quote_ident(current_schema());
  app text := (SELECT value FROM settings WHERE key = 'app_role');
BEGIN
  EXECUTE format($f$
    CREATE OR REPLACE FUNCTION %1$s.current_user_id() RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
      SELECT coalesce(nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub',
                      nullif(current_setting('motomind.user_id', true), ''))::uuid
    $$;
  $f$, s);
  EXECUTE format('REVOKE UPDATE ON users FROM %I', app);
  EXECUTE format('GRANT UPDATE (display_name) ON users TO %I', app);
END
$do$;
