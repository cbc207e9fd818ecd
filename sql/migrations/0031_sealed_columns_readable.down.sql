-- Undoes 0031.
DO $do$
BEGIN
  EXECUTE format('REVOKE SELECT ON sealed_columns FROM %I', (SELECT value FROM settings WHERE key = 'app_role'));
END
$do$;
