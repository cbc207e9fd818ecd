-- Undoes 0022: no import batches.
DROP FUNCTION undo_import_batch(uuid);
DROP FUNCTION mark_import_batch_undone(uuid);
DROP FUNCTION record_import_batch(uuid, text, text, text, jsonb, integer, integer, integer, integer);
ALTER TABLE vehicle_events DROP COLUMN import_batch_id;
DROP TABLE import_batches;
