-- Reverts 1002: motomind.user_id first again, email writable by its user.
DO $do$
DECLARE
  s text := quote_ident(current_schema());
  app text := (SELECT value FROM settings WHERE key = 'app_role');
BEGIN
  EXECUTE format($f$
    CREATE OR REPLACE FUNCTION %1$s.current_user_id() RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = '' AS $$
      SELECT coalesce(nullif(current_setting('motomind.user_id', true), ''),
                      nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')::uuid
    $$;
  $f$, s);
  EXECUTE format('REVOKE UPDATE (display_name) ON users FROM %I', app);
  EXECUTE format('GRANT UPDATE ON users TO %I', app);
END
$do$;
DELETE FROM users WHERE email IS NULL;
ALTER TABLE users ALTER COLUMN email SET NOT NULL;
