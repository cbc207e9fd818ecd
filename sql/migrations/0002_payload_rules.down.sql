-- Removes the payload rules.
ALTER TABLE vehicle_events DROP CONSTRAINT vehicle_events_type_check;
DROP FUNCTION payload_problem_row(text, jsonb);
DROP FUNCTION payload_problem(text, jsonb);
DROP FUNCTION payload_problem_reminder(jsonb);
DROP FUNCTION payload_problem_odometer(jsonb);
DROP FUNCTION payload_problem_maintenance(jsonb);
DROP FUNCTION payload_problem_inspection(jsonb);
DROP FUNCTION payload_problem_fuel(jsonb);
DROP FUNCTION payload_problem_document(jsonb);
DROP FUNCTION payload_problem_damage(jsonb);
DROP FUNCTION payload_items_1(jsonb, text);
DROP FUNCTION payload_valid_date(text);
DROP FUNCTION payload_unknown_key(jsonb, text[], text, text);
DROP FUNCTION payload_got(jsonb);
