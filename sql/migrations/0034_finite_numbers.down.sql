-- motomind 0034 down: numeric columns take NaN and infinities again.
DO $$
DECLARE
  c record;
BEGIN
  FOR c IN
    SELECT conrelid::regclass AS rel, conname
      FROM pg_constraint
     WHERE connamespace IN (to_regnamespace(current_schema()), to_regnamespace(current_schema() || '_private'))
       AND contype = 'c' AND conislocal AND conname LIKE '%\_finite'
  LOOP
    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', c.rel, c.conname);
  END LOOP;
END $$;
