-- motomind 0019: "mileage never decreases" has a constraint name of its own
-- (#10). check_new_events reported an out-of-order reading under
-- vehicle_events_mileage_check, the name of CHECK (mileage >= 0), so a
-- caller could not tell a negative reading from one below an earlier
-- reading. It now reports vehicle_events_mileage_order; the function's body
-- is otherwise unchanged (edited in place from the catalog, checked below).
DO $do$
DECLARE
  def text := pg_get_functiondef('check_new_events()'::regprocedure);
  renamed text := replace(def, 'CONSTRAINT = ''vehicle_events_mileage_check''',
                               'CONSTRAINT = ''vehicle_events_mileage_order''');
BEGIN
  IF renamed = def THEN RAISE EXCEPTION '0019: check_new_events names no vehicle_events_mileage_check'; END IF;
  EXECUTE renamed;
END
$do$;
