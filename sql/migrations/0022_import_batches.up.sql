-- motomind 0022: import batches (#16). Every import records a batch (the
-- file's name and SHA-256, its format and options, its counts, who and
-- when, stamped by the database); every event it inserted names its batch.
-- undo_import_batch voids, in one statement, the batch's events that are
-- still effective; events corrected since are reported, not voided.
-- The events' import_batch_id is not a foreign key: a per-row check would
-- cost every import (see 0018); a batch is only ever read through it.

CREATE TABLE import_batches (
  tenant_id   uuid NOT NULL REFERENCES tenants (id),
  id          uuid NOT NULL DEFAULT gen_random_uuid(),
  file        text NOT NULL,
  checksum    text NOT NULL CONSTRAINT import_batches_checksum_check CHECK (checksum ~ '^[0-9a-f]{64}$'),
  format      text NOT NULL,
  options     jsonb NOT NULL DEFAULT '{}' CONSTRAINT import_batches_options_check CHECK (jsonb_typeof(options) = 'object'),
  records     integer NOT NULL DEFAULT 0 CONSTRAINT import_batches_records_check CHECK (records >= 0),
  inserted    integer NOT NULL DEFAULT 0 CONSTRAINT import_batches_inserted_check CHECK (inserted >= 0),
  duplicates  integer NOT NULL DEFAULT 0 CONSTRAINT import_batches_duplicates_check CHECK (duplicates >= 0),
  refused     integer NOT NULL DEFAULT 0 CONSTRAINT import_batches_refused_check CHECK (refused >= 0),
  undone_at   timestamptz,
  undone_by   uuid,
  created_at timestamptz NOT NULL DEFAULT now(), created_by uuid,
  updated_at timestamptz NOT NULL DEFAULT now(), updated_by uuid,
  deleted_at timestamptz, deleted_by uuid,
  PRIMARY KEY (tenant_id, id)
);
COMMENT ON TABLE import_batches IS
  'one row per import: the file (name, SHA-256), format and options, counts; undone_at once undo_import_batch voided its events';
CREATE INDEX import_batches_checksum_idx ON import_batches (tenant_id, checksum) WHERE deleted_at IS NULL;
SELECT protect_tenant_table('import_batches', 'mutable');

ALTER TABLE vehicle_events ADD COLUMN import_batch_id uuid;
COMMENT ON COLUMN vehicle_events.import_batch_id IS 'the import batch that inserted it (NULL: written through the API)';
DO $do$ BEGIN
  EXECUTE format('GRANT INSERT (import_batch_id) ON vehicle_events TO %I', (SELECT value FROM settings WHERE key = 'app_role'));
END $do$;

-- Records an import's batch for the caller (any member: the events it
-- inserted were checked by their own policies); the id is the one the
-- import gave its events.
CREATE FUNCTION record_import_batch(p_id uuid, p_file text, p_checksum text, p_format text, p_options jsonb,
  p_records integer, p_inserted integer, p_duplicates integer, p_refused integer) RETURNS uuid
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
BEGIN
  IF current_tenant_role() IS NULL OR current_user_id() IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege', MESSAGE = 'import batch: not a member of this tenant';
  END IF;
  INSERT INTO import_batches (tenant_id, id, file, checksum, format, options, records, inserted, duplicates, refused)
  VALUES (current_tenant_id(), p_id, p_file, p_checksum, p_format, coalesce(p_options, '{}'), p_records, p_inserted,
          p_duplicates, p_refused);
  RETURN p_id;
END
$fn$;

-- Undoes a batch as the caller: voids its events still effective (the
-- caller's write policies apply to each), reports those amended since
-- (left as corrected), and marks the batch undone. Refused for a batch of
-- another tenant, or one already undone.
CREATE FUNCTION undo_import_batch(p_batch uuid, OUT voided bigint, OUT corrected uuid[])
LANGUAGE plpgsql SET search_path FROM CURRENT AS $fn$
DECLARE
  b import_batches;
BEGIN
  SELECT * INTO b FROM import_batches WHERE tenant_id = current_tenant_id() AND id = p_batch;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'no_data_found', MESSAGE = format('import batch %s: not in this tenant', p_batch);
  END IF;
  IF b.undone_at IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
      MESSAGE = format('import batch %s: already undone at %s', p_batch, b.undone_at);
  END IF;
  PERFORM mark_import_batch_undone(p_batch); -- first: a concurrent undo waits here, then is refused
  SELECT coalesce(array_agg(e.id ORDER BY e.occurred_at, e.id), '{}') INTO corrected
    FROM vehicle_events e
   WHERE e.tenant_id = b.tenant_id AND e.import_batch_id = p_batch AND e.correction IS NULL
     AND EXISTS (SELECT 1 FROM vehicle_events c WHERE c.tenant_id = e.tenant_id AND c.corrects_id = e.id
                                                 AND c.corrects_occurred_at = e.occurred_at AND c.correction = 'amend');
  INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, payload, notes, correction, corrects_id,
                              corrects_occurred_at)
  SELECT e.tenant_id, e.vehicle_id, e.type, e.occurred_at, '{}', format('import %s undone', p_batch), 'void', e.id,
         e.occurred_at
    FROM vehicle_events e
   WHERE e.tenant_id = b.tenant_id AND e.import_batch_id = p_batch AND e.correction IS NULL
     AND NOT EXISTS (SELECT 1 FROM vehicle_event_supersessions s
                      WHERE s.tenant_id = e.tenant_id AND s.event_id = e.id AND s.occurred_at = e.occurred_at)
   ORDER BY e.vehicle_id, e.occurred_at;
  GET DIAGNOSTICS voided = ROW_COUNT;
END
$fn$;

-- Marks a batch undone, stamped with the caller and the time: for the
-- batch's own importer or a tenant owner or manager.
CREATE FUNCTION mark_import_batch_undone(p_batch uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $fn$
BEGIN
  UPDATE import_batches SET undone_at = now(), undone_by = current_user_id()
   WHERE tenant_id = current_tenant_id() AND id = p_batch AND undone_at IS NULL
     AND (created_by = current_user_id() OR current_tenant_role() IN ('owner', 'manager'));
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
      MESSAGE = format('import batch %s: only its importer or an owner or manager undoes it, once', p_batch);
  END IF;
END
$fn$;
