-- Undoes 0027: no custom fields, tags or event locations. The effective
-- view keeps its two last columns, as typed NULLs (a view cannot drop
-- columns; 0003's down drops the view).
DROP TRIGGER custom_fields_conform ON custom_fields;
DROP FUNCTION check_custom_field_change();
DROP TRIGGER vehicles_extended_attributes ON vehicles;
DROP FUNCTION check_vehicle_attributes();
ALTER TABLE vehicles DROP COLUMN extended_attributes;
DROP FUNCTION attributes_rule(uuid);
DROP TABLE custom_fields;
DROP FUNCTION custom_field_spec_problem(jsonb);
CREATE OR REPLACE VIEW vehicle_events_effective WITH (security_invoker = true) AS
SELECT e.tenant_id, e.id, e.vehicle_id, e.type, e.occurred_at, e.mileage, e.payload, e.notes, e.created_at,
       e.created_by, e.correction, e.corrects_id, e.corrects_occurred_at, NULL::jsonb AS location, NULL::jsonb AS tags
  FROM vehicle_events e
 WHERE e.correction IS DISTINCT FROM 'void'
   AND NOT EXISTS (SELECT 1 FROM vehicle_event_supersessions s
                    WHERE s.tenant_id = e.tenant_id AND s.event_id = e.id AND s.occurred_at = e.occurred_at);
ALTER TABLE vehicle_events DROP COLUMN location, DROP COLUMN tags;
DROP FUNCTION location_rule();
DROP INDEX vehicles_tags;
ALTER TABLE vehicles DROP COLUMN tags;
DROP FUNCTION tags_problem(text, jsonb);
DROP FUNCTION holds(text);
DROP FUNCTION rule_problem(text, jsonb, jsonb);
DROP FUNCTION rule_expects(jsonb);
