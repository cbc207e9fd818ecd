-- Removes the payload rules.
ALTER TABLE vehicle_events DROP CONSTRAINT vehicle_events_type_check;
DROP FUNCTION payload_problem(text, jsonb);
DROP FUNCTION payload_items_1(jsonb, text);
DROP FUNCTION payload_unknown_key(jsonb, text[], text, text);
DROP FUNCTION payload_got(jsonb);
DROP FUNCTION payload_valid_date(text);
