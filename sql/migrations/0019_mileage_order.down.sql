-- Undoes 0019: out-of-order readings reported as vehicle_events_mileage_check.
DO $do$
DECLARE
  def text := pg_get_functiondef('check_new_events()'::regprocedure);
  renamed text := replace(def, 'CONSTRAINT = ''vehicle_events_mileage_order''',
                               'CONSTRAINT = ''vehicle_events_mileage_check''');
BEGIN
  IF renamed = def THEN RAISE EXCEPTION '0019 down: check_new_events names no vehicle_events_mileage_order'; END IF;
  EXECUTE renamed;
END
$do$;
