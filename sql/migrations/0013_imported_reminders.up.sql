-- motomind 0013: a reminder made from an event's next_service recurs as the
-- event says (next_service.repeat_months / repeat_distance, which 0012 adds
-- to the maintenance payload; Fuelio's cost reminders carry them). Read once,
-- when the reminder is made: a later service's next_service moves its due,
-- the recurrence stays the reminder's own.
CREATE FUNCTION reminder_repeat_from_source() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
BEGIN
  IF NEW.source = 'next_service' AND NEW.source_event_id IS NOT NULL
     AND NEW.repeat_months IS NULL AND NEW.repeat_distance IS NULL THEN
    SELECT (e.payload #>> '{next_service,repeat_months}')::integer, (e.payload #>> '{next_service,repeat_distance}')::numeric
      INTO NEW.repeat_months, NEW.repeat_distance
      FROM vehicle_events e WHERE e.tenant_id = NEW.tenant_id AND e.id = NEW.source_event_id;
  END IF;
  RETURN NEW;
END
$fn$;
-- (BEFORE triggers fire by name: after a_definition)
CREATE TRIGGER b_repeat_from_source BEFORE INSERT ON reminders
  FOR EACH ROW EXECUTE FUNCTION reminder_repeat_from_source();
