-- Undoes 0017: no capture tables, views or photo columns.
DROP VIEW event_photo_details, active_garages, ai_usage_monthly, vision_accuracy_stats, location_correction_stats,
  capture_abandonment_analysis, capture_session_analytics;
DROP TABLE user_maintenance_preferences, vehicle_spec_enhancements, conversation_messages, conversation_threads,
  location_corrections, vision_accuracy, vision_metrics, event_photos, photo_metadata;
DROP TRIGGER event_vehicle ON vehicle_images;
ALTER TABLE vehicle_images DROP CONSTRAINT vehicle_images_capture_session_fkey;
DROP TABLE capture_sessions;
DROP INDEX vehicle_images_checksum_key;
ALTER TABLE vehicle_images RENAME CONSTRAINT vehicle_images_event_pair_check TO vehicle_images_check;
ALTER TABLE vehicle_images
  DROP CONSTRAINT vehicle_images_vehicle_key,
  DROP COLUMN content_type, DROP COLUMN byte_size, DROP COLUMN width, DROP COLUMN height, DROP COLUMN checksum,
  DROP COLUMN taken_at, DROP COLUMN detected_kind, DROP COLUMN ai_model, DROP COLUMN ai_confidence, DROP COLUMN ai_fields,
  DROP COLUMN capture_session_id;
DROP FUNCTION conversation_message_insert();
DROP FUNCTION capture_session_end();
DROP FUNCTION check_event_vehicle();
DROP FUNCTION great_circle_m(numeric, numeric, numeric, numeric);
DROP FUNCTION values_match(text, text);
DROP FUNCTION is_extracted_fields(jsonb);
DROP DOMAIN photo_kind;
