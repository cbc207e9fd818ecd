-- motomind 0034: every numeric column holds a finite number.
-- PostgreSQL's numeric takes 'NaN' (and, without a precision, 'Infinity'
-- and '-Infinity'), and orders NaN above every number: CHECK (mileage >= 0)
-- let a NaN mileage in for any writer (psql, PostgREST), where no reading,
-- economy or total means anything, and an export wrote it as NaN, which is
-- not JSON. One CHECK per numeric column of every table of the schema and
-- of its private schema, from the catalog (partitions inherit their
-- parent's); the schema spec holds every numeric column to one.
DO $$
DECLARE
  c record;
BEGIN
  FOR c IN
    SELECT t.oid::regclass AS rel, t.relname, a.attname
      FROM pg_class t JOIN pg_attribute a ON a.attrelid = t.oid
     WHERE t.relnamespace IN (to_regnamespace(current_schema()), to_regnamespace(current_schema() || '_private'))
       AND t.relkind IN ('r', 'p') AND NOT t.relispartition
       AND a.attnum > 0 AND NOT a.attisdropped AND a.atttypid = 'numeric'::regtype
     ORDER BY 1, a.attnum
  LOOP
    EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I CHECK (%I > ''-Infinity'' AND %I < ''Infinity'')',
                   c.rel, left(c.relname || '_' || c.attname, 56) || '_finite', c.attname, c.attname);
  END LOOP;
END $$;
