-- Undoes 0026: current_user_id() as 0020 left it, and the jump allowance
-- computed for every reading walked.
CREATE OR REPLACE FUNCTION current_user_id() RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = '' AS $$BEGIN RETURN (
      SELECT nullif(current_setting('motomind.user_id', true), '')::uuid
    ); END$$;

DO $do$
DECLARE
  def text := pg_get_functiondef('check_new_events()'::regprocedure);
  edited text := def;
  jump text;
BEGIN
  FOREACH jump IN ARRAY ARRAY[
    'w.mileage - w.prev_mileage > w.per_day * greatest(extract(epoch FROM w.occurred_at - w.prev_at) / 86400, 1)',
    'w.next_mileage - w.mileage > w.per_day * greatest(extract(epoch FROM w.next_at - w.occurred_at) / 86400, 1)'] LOOP
    IF position(format('(%s > w.per_day AND %s)', split_part(jump, ' > ', 1), jump) IN edited) = 0 THEN
      RAISE EXCEPTION '0026 down: check_new_events has no pre-test for "%"', jump;
    END IF;
    edited := replace(edited, format('(%s > w.per_day AND %s)', split_part(jump, ' > ', 1), jump), jump);
  END LOOP;
  EXECUTE edited;
END
$do$;
