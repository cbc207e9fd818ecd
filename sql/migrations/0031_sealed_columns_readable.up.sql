-- motomind 0031: the application role reads sealed_columns (#10). The view
-- is where the sealing convention lives (0029: c_sealed beside c, c_hash
-- for lookups); motomind.rows learns from it which columns a reader opens
-- and which companions only the database writes, instead of applying the
-- convention to pg_attribute a second time. It shows catalog facts the role
-- can already read in pg_attribute.
DO $do$
BEGIN
  EXECUTE format('GRANT SELECT ON sealed_columns TO %I', (SELECT value FROM settings WHERE key = 'app_role'));
END
$do$;
