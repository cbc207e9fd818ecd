-- Undoes 0029. Sealed values cannot go back to plaintext without their
-- key: while a tenant seals, the down migration refuses (its owner
-- switches sealing off first). pgcrypto stays: other schemas may use it.
-- refuse_event_change() goes back to 0006's body (copied on purpose).
DO $$
DECLARE
  s record;
  sealed bigint;
BEGIN
  FOR s IN SELECT rel, column_name FROM sealed_columns LOOP
    EXECUTE format('SELECT count(*) FROM %s WHERE %I IS NOT NULL', s.rel, s.column_name || '_sealed') INTO sealed;
    IF sealed > 0 THEN
      RAISE EXCEPTION '0029 down: % sealed values in %.% (tenants seal their fields: switch sealing off first)',
        sealed, s.rel, s.column_name USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    EXECUTE format('DROP TRIGGER %I ON %s', 'z_seal_' || s.column_name, s.rel);
  END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION refuse_event_change() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'DELETE' AND (current_setting('motomind.moving_partition', true) = 'on'
      OR OLD.tenant_id::text = current_setting('motomind.purging_tenant', true)) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
    MESSAGE = format('%s are immutable: %s is not allowed%s', TG_TABLE_NAME, TG_OP,
                     CASE WHEN TG_TABLE_NAME LIKE 'vehicle_events%' THEN '; record a correction instead' ELSE '' END),
    TABLE = TG_TABLE_NAME;
END
$fn$;

DROP FUNCTION set_field_sealing(boolean);
DROP FUNCTION seal_field();
DROP FUNCTION seal_image(jsonb, text[], boolean[]);
DROP FUNCTION sealed_patch(text, text, boolean);
DROP FUNCTION tenant_seals(uuid);
DROP FUNCTION seal_hash(text);
DROP FUNCTION unseal_text(bytea, text);
DROP FUNCTION seal_text(text, text);
DROP FUNCTION field_key();
DROP VIEW sealed_columns;

ALTER TABLE conversation_messages DROP CONSTRAINT conversation_messages_content_present,
  ALTER COLUMN content SET NOT NULL, DROP COLUMN content_sealed;
ALTER TABLE vehicles DROP COLUMN vin_sealed, DROP COLUMN vin_hash, DROP COLUMN plate_sealed, DROP COLUMN plate_hash;
ALTER TABLE tenants DROP COLUMN seals_fields;
