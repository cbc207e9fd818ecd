-- motomind 0029: sealed fields (#15), field-level encryption with pgcrypto.
-- A tenant may seal its sensitive values (a vehicle's VIN and plate, what
-- is said in AI conversations): stored only as PGP ciphertext (AES-256)
-- under a key the database never stores; each session that reads or writes
-- them brings the key (the motomind.field_key setting, from connect's
-- field_key). A column c is sealable when its table has c_sealed bytea next
-- to it (and c_hash bytea when rows are looked up or kept unique by it: an
-- HMAC of the upper-cased value under the same key). Everything else
-- (triggers, the rewrite when a tenant switches, readers) is derived from
-- that convention in the catalog. docs/design.md has the threat model and
-- the costs.

-- pgcrypto, once per database (an extension lives in one schema); each
-- motomind schema uses it wherever it already is.
DO $$
BEGIN
  PERFORM pg_advisory_xact_lock(hashtext('motomind.pgcrypto'));
  IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgcrypto') THEN
    CREATE SCHEMA IF NOT EXISTS motomind_pgcrypto;
    CREATE EXTENSION pgcrypto SCHEMA motomind_pgcrypto;
  END IF;
END
$$;

ALTER TABLE tenants ADD COLUMN seals_fields boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN tenants.seals_fields IS
  'sealable values (sealed_columns) are stored only encrypted; switched by set_field_sealing, which rewrites them';

ALTER TABLE vehicles ADD COLUMN vin_sealed bytea, ADD COLUMN vin_hash bytea,
                     ADD COLUMN plate_sealed bytea, ADD COLUMN plate_hash bytea;
CREATE UNIQUE INDEX vehicles_vin_hash_key ON vehicles (tenant_id, vin_hash)
  WHERE vin_hash IS NOT NULL AND deleted_at IS NULL;
CREATE UNIQUE INDEX vehicles_plate_hash_key ON vehicles (tenant_id, plate_hash)
  WHERE plate_hash IS NOT NULL AND deleted_at IS NULL;

ALTER TABLE conversation_messages ADD COLUMN content_sealed bytea,
  ALTER COLUMN content DROP NOT NULL,
  ADD CONSTRAINT conversation_messages_content_present CHECK (content IS NOT NULL OR content_sealed IS NOT NULL);

-- The sealable columns: c of every table of this schema (the one tenants is
-- in, bound when the view is created) that has c_sealed.
CREATE VIEW sealed_columns AS
SELECT s.attrelid::regclass AS rel, c.relname AS table_name, p.attname AS column_name,
       EXISTS (SELECT 1 FROM pg_attribute h WHERE h.attrelid = s.attrelid AND h.attname = p.attname || '_hash'
                                              AND NOT h.attisdropped) AS hashed
  FROM pg_attribute s
  JOIN pg_class c ON c.oid = s.attrelid AND c.relkind = 'r'
  JOIN pg_attribute p ON p.attrelid = s.attrelid AND p.attname = left(s.attname, -7) AND NOT p.attisdropped
 WHERE c.relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = 'tenants'::regclass) AND s.attname LIKE '%\_sealed' AND NOT s.attisdropped;
COMMENT ON VIEW sealed_columns IS 'columns c stored as c_sealed (and c_hash when hashed) in a tenant that seals its fields';

-- The session's key: NULL when none was given.
CREATE FUNCTION field_key() RETURNS text LANGUAGE sql STABLE AS
$$ SELECT nullif(current_setting('motomind.field_key', true), '') $$;

-- The crypto, bound to wherever pgcrypto is (as the owner: the
-- application role needs no rights on pgcrypto's schema). PGP's S2K runs
-- once (mode 1: salted, not iterated): the key is a random secret of 16+
-- characters, not a password to stretch (iterated S2K costs 0.3 ms a value,
-- mode 1 12 us).
DO $$
DECLARE
  ext text := (SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'pgcrypto');
BEGIN
  EXECUTE format($f$
    CREATE FUNCTION seal_text(value text, field text) RETURNS bytea LANGUAGE plpgsql VOLATILE SECURITY DEFINER
    SET search_path FROM CURRENT AS $b$
    DECLARE
      key text := field_key();
    BEGIN
      IF key IS NULL THEN
        RAISE EXCEPTION '%%: sealed in this tenant, and this session has no field key (connect with field_key)', field
          USING ERRCODE = 'invalid_parameter_value';
      ELSIF length(key) < 16 THEN
        RAISE EXCEPTION 'field key: %% characters, at least 16 needed (a random secret, not a password)', length(key)
          USING ERRCODE = 'invalid_parameter_value';
      END IF;
      RETURN %1$s.pgp_sym_encrypt(value, key, 'cipher-algo=aes256, s2k-mode=1');
    END
    $b$;

    CREATE FUNCTION unseal_text(sealed bytea, field text) RETURNS text LANGUAGE plpgsql STABLE STRICT SECURITY DEFINER
    SET search_path FROM CURRENT AS $b$
    DECLARE
      key text := field_key();
    BEGIN
      IF key IS NULL THEN RETURN NULL; END IF;
      RETURN %1$s.pgp_sym_decrypt(sealed, key);
    EXCEPTION WHEN external_routine_invocation_exception THEN
      RAISE EXCEPTION '%%: the field key does not open this value (it was sealed under another key)', field
        USING ERRCODE = 'invalid_parameter_value';
    END
    $b$;

    CREATE FUNCTION seal_hash(value text) RETURNS bytea LANGUAGE plpgsql STABLE SECURITY DEFINER
    SET search_path FROM CURRENT AS $b$
    BEGIN
      RETURN %1$s.hmac(upper(value), field_key(), 'sha256');
    END
    $b$;
  $f$, quote_ident(ext));
END
$$;
COMMENT ON FUNCTION seal_text(text, text) IS 'PGP ciphertext of value under the session''s field key (field names the value in errors)';
COMMENT ON FUNCTION unseal_text(bytea, text) IS
  'the plaintext of a sealed value (readers select coalesce(c, unseal_text(c_sealed, ''c''))); NULL without a field key';
COMMENT ON FUNCTION seal_hash(text) IS 'HMAC-SHA256 of the upper-cased value under the field key: lookups and uniqueness of sealed values';

-- (PL/pgSQL: a SECURITY DEFINER SQL function would plan its query on every call.)
CREATE FUNCTION tenant_seals(tenant uuid) RETURNS boolean
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS
$$ BEGIN RETURN coalesce((SELECT seals_fields FROM tenants WHERE id = tenant), false); END $$;

-- The patch that seals value as column col of a row (col_hash too when hashed).
CREATE FUNCTION sealed_patch(col text, value text, hashed boolean) RETURNS jsonb LANGUAGE sql VOLATILE AS $$
  SELECT jsonb_build_object(col, NULL, col || '_sealed', seal_text(value, col))
      || CASE WHEN hashed THEN jsonb_build_object(col || '_hash', seal_hash(value)) ELSE '{}' END
$$;

-- A row image (jsonb, e.g. one the audit log keeps) with the plaintext of
-- its sealable columns cols sealed (hashed: whether each has c_hash).
CREATE FUNCTION seal_image(image jsonb, cols text[], hashed boolean[]) RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  FOR i IN 1 .. cardinality(cols) LOOP
    IF image->>cols[i] IS NOT NULL THEN
      image := image || sealed_patch(cols[i], image->>cols[i], hashed[i]);
    END IF;
  END LOOP;
  RETURN image;
END
$$;

-- BEFORE INSERT OR UPDATE OF c (c = TG_ARGV[0]); named to fire after the
-- table's other BEFORE triggers, which see the plaintext.
-- - A plaintext c in a sealing tenant is checked against c's CHECK
--   constraints (they see NULL once it is sealed), then sealed.
-- - An UPDATE naming c that leaves the sealed value as it was clears it:
--   c set to NULL clears the value; a plaintext c (a tenant that does not
--   seal) replaces it. (The switch's rewrite names every sealable column:
--   there a NULL c keeps its sealed value.)
CREATE FUNCTION seal_field() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  col text := TG_ARGV[0];
  seals boolean := tenant_seals(NEW.tenant_id);
  image jsonb;
  hashed boolean;
  resealing boolean;
  check_row record;
  passed boolean;
BEGIN
  IF TG_OP = 'INSERT' AND NOT seals THEN
    RETURN NEW; -- (a plain tenant's insert: nothing to seal, nothing to clear)
  END IF;
  image := to_jsonb(NEW);
  hashed := image ? (col || '_hash');
  resealing := NEW.tenant_id::text = current_setting('motomind.resealing_tenant', true);
  IF image->>col IS NOT NULL AND seals THEN
    -- (the switch's rewrite seals values the CHECKs passed when written)
    IF NOT resealing THEN
      FOR check_row IN SELECT k.conname, pg_get_expr(k.conbin, k.conrelid) AS expr
                         FROM pg_constraint k JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attname = col
                        WHERE k.conrelid = TG_RELID AND k.contype = 'c' AND a.attnum = ANY (k.conkey) LOOP
        EXECUTE format('SELECT %s FROM (SELECT ($1::%s).*) AS t', check_row.expr, TG_RELID::regclass)
          INTO passed USING NEW;
        IF passed IS FALSE THEN
          RAISE EXCEPTION 'new row for relation "%" violates check constraint "%"', TG_TABLE_NAME, check_row.conname
            USING ERRCODE = 'check_violation', CONSTRAINT = check_row.conname, TABLE = TG_TABLE_NAME, COLUMN = col;
        END IF;
      END LOOP;
    END IF;
    RETURN jsonb_populate_record(NEW, sealed_patch(col, image->>col, hashed));
  ELSIF TG_OP = 'UPDATE' AND image->(col || '_sealed') <> 'null'
        AND image->(col || '_sealed') = to_jsonb(OLD)->(col || '_sealed') AND (image->>col IS NOT NULL OR NOT resealing) THEN
    RETURN jsonb_populate_record(NEW, jsonb_build_object(col || '_sealed', NULL)
      || CASE WHEN hashed THEN jsonb_build_object(col || '_hash', NULL) ELSE '{}' END);
  END IF;
  RETURN NEW;
END
$$;

DO $$
DECLARE
  s record;
BEGIN
  FOR s IN SELECT rel, column_name FROM sealed_columns LOOP
    EXECUTE format('CREATE TRIGGER %I BEFORE INSERT OR UPDATE OF %I ON %s FOR EACH ROW EXECUTE FUNCTION seal_field(%L)',
                   'z_seal_' || s.column_name, s.column_name, s.rel, s.column_name);
  END LOOP;
END
$$;

-- Append-only rows (and the audit log) may be rewritten by the sealing
-- switch of their tenant, and by nothing else.
CREATE OR REPLACE FUNCTION refuse_event_change() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  IF TG_OP = 'DELETE' AND (current_setting('motomind.moving_partition', true) = 'on'
      OR OLD.tenant_id::text = current_setting('motomind.purging_tenant', true)) THEN
    RETURN OLD;
  END IF;
  IF TG_OP = 'UPDATE' AND OLD.tenant_id::text = current_setting('motomind.resealing_tenant', true) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
    MESSAGE = format('%s are immutable: %s is not allowed%s', TG_TABLE_NAME, TG_OP,
                     CASE WHEN TG_TABLE_NAME LIKE 'vehicle_events%' THEN '; record a correction instead' ELSE '' END),
    TABLE = TG_TABLE_NAME;
END
$fn$;

-- Switches sealing for the context's tenant (its owner, with a field key)
-- and rewrites its sealable values in one transaction: sealed, or opened
-- again. Sealing also seals the plaintext that the audit log's images of
-- those tables hold. Returns the number of values rewritten.
CREATE FUNCTION set_field_sealing(seal boolean) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $$
DECLARE
  tenant uuid := current_tenant_id();
  s record;
  n bigint;
  total bigint := 0;
BEGIN
  IF tenant IS NULL OR current_tenant_role() IS DISTINCT FROM 'owner' THEN
    RAISE EXCEPTION 'field sealing: the tenant''s owners only switch it' USING ERRCODE = 'insufficient_privilege';
  END IF;
  IF field_key() IS NULL THEN
    RAISE EXCEPTION 'field sealing: this session has no field key (connect with field_key)'
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  UPDATE tenants SET seals_fields = seal WHERE id = tenant AND seals_fields IS DISTINCT FROM seal;
  IF NOT FOUND THEN RETURN 0; END IF;
  PERFORM set_config('motomind.resealing_tenant', tenant::text, true);
  -- One UPDATE per table, naming each sealable column (c = c seals it;
  -- c = its opened value stores it plain again and clears c_sealed); a
  -- column that holds nothing is left as it is.
  FOR s IN SELECT rel,
                  string_agg(format('%I = %s', column_name, CASE WHEN seal THEN quote_ident(column_name)
                    ELSE format('coalesce(%I, unseal_text(%I, %L))', column_name, column_name || '_sealed', column_name)
                    END), ', ') AS sets,
                  string_agg(format('(%I IS NOT NULL)::int', CASE WHEN seal THEN column_name
                    ELSE column_name || '_sealed' END), ' + ') AS held
             FROM sealed_columns GROUP BY rel ORDER BY rel::text LOOP
    EXECUTE format('SELECT coalesce(sum(%s), 0) FROM %s WHERE tenant_id = $1', s.held, s.rel) INTO n USING tenant;
    EXECUTE format('UPDATE %s SET %s WHERE tenant_id = $1 AND %s > 0', s.rel, s.sets, s.held) USING tenant;
    total := total + n;
  END LOOP;
  IF seal THEN
    FOR s IN SELECT table_name, array_agg(column_name) AS cols, array_agg(hashed) AS hashed,
                    string_agg(format('old_values->>%1$L IS NOT NULL OR new_values->>%1$L IS NOT NULL', column_name),
                               ' OR ') AS held
               FROM sealed_columns GROUP BY table_name LOOP
      EXECUTE format('UPDATE audit_log SET old_values = seal_image(old_values, $2, $3), '
                     'new_values = seal_image(new_values, $2, $3) WHERE tenant_id = $1 AND table_name = $4 AND (%s)',
                     s.held) USING tenant, s.cols, s.hashed, s.table_name;
    END LOOP;
  END IF;
  PERFORM set_config('motomind.resealing_tenant', '', true);
  RETURN total;
END
$$;
COMMENT ON FUNCTION set_field_sealing(boolean) IS
  'switches field sealing for the context''s tenant (its owner, with a field key), rewriting its sealable values; returns how many';
