-- motomind 0027: custom fields, tags and an event's position (#15).
--  * The rule vocabulary of sql/payloads.json (string with enum, format or
--    max_length; number and integer with min/max; boolean; date; object;
--    array) is interpreted in SQL by rule_problem, with src/payload.c's
--    messages, for rules that live in rows rather than in the document:
--    a tenant's custom fields, an event's location.
--  * custom_fields: the typed fields a tenant defines for its vehicles
--    (cost center, asset tag, ...); vehicles.extended_attributes holds the
--    values and always conforms to the tenant's live definitions (checked
--    when a vehicle is written and when a definition changes).
--  * Tags: vehicles.tags and vehicle_events.tags, JSON arrays of distinct
--    trimmed strings, filterable with @> (a GIN index on vehicles).
--  * vehicle_events.location: where an event happened ({lat, lon,
--    accuracy_m, place}), a column of the event row rather than
--    payload.extra.

-- ---- the rule vocabulary, in SQL -----------------------------------------------

-- What a rule expects, worded as src/payload.c's describe_spec.
CREATE FUNCTION rule_expects(spec jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN spec->>'type' IN ('number', 'integer') THEN
      CASE WHEN spec ? 'min' AND spec ? 'max' AND coalesce((spec->>'exclusive_min')::boolean, false)
             THEN format('%s > %s and <= %s', spec->>'type', payload_got(spec->'min'), payload_got(spec->'max'))
           WHEN spec ? 'min' AND spec ? 'max'
             THEN format('%s from %s to %s', spec->>'type', payload_got(spec->'min'), payload_got(spec->'max'))
           WHEN spec ? 'min' THEN format('%s %s %s', spec->>'type',
             CASE WHEN coalesce((spec->>'exclusive_min')::boolean, false) THEN '>' ELSE '>=' END, payload_got(spec->'min'))
           WHEN spec ? 'max' THEN format('%s <= %s', spec->>'type', payload_got(spec->'max'))
           ELSE spec->>'type' END
    WHEN spec->>'type' = 'string' AND spec ? 'enum' THEN
      'one of ' || (SELECT string_agg(e, ', ' ORDER BY i) FROM jsonb_array_elements_text(spec->'enum') WITH ORDINALITY AS x(e, i))
    WHEN spec->>'type' = 'string' AND spec ? 'format' THEN
      CASE spec->>'format' WHEN 'currency' THEN 'ISO 4217 currency code' ELSE 'URL' END
    WHEN spec->>'type' = 'string' AND spec ? 'max_length' THEN format('string of at most %s characters', spec->>'max_length')
    WHEN spec->>'type' = 'date' THEN 'date (YYYY-MM-DD)'
    WHEN spec->>'type' = 'array' AND spec ? 'max_items' THEN format('array of at most %s items', spec->>'max_items')
    ELSE spec->>'type' END
$$;

-- NULL when v satisfies the rule spec, else what is wrong, named by path
-- ("extended_attributes.cost_center: expected string of at most 20
-- characters, got 31 characters"), in the order src/payload.c checks:
-- an object's unknown keys first, then its fields by name.
CREATE FUNCTION rule_problem(path text, spec jsonb, v jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  kind text := spec->>'type';
  wrong boolean := false;
  problem text;
  k text;
  n numeric;
BEGIN
  CASE kind
  WHEN 'string' THEN
    wrong := coalesce(jsonb_typeof(v) <> 'string'
      OR (spec ? 'enum' AND NOT (spec->'enum') @> jsonb_build_array(v))
      OR (spec->>'format' = 'currency' AND v #>> '{}' !~ '^[A-Z]{3}$')
      OR (spec->>'format' = 'url' AND v #>> '{}' !~ '^[A-Za-z][A-Za-z0-9+.-]*://[^[:space:]]+$'), false);
    IF NOT wrong AND length(v #>> '{}') > (spec->>'max_length')::integer THEN
      RETURN format('%s: expected string of at most %s characters, got %s characters',
                    path, spec->>'max_length', length(v #>> '{}'));
    END IF;
  WHEN 'number', 'integer' THEN
    wrong := jsonb_typeof(v) <> 'number';
    IF NOT wrong THEN
      n := v::numeric;
      wrong := coalesce((kind = 'integer' AND n <> trunc(n))
        OR (CASE WHEN (spec->>'exclusive_min')::boolean THEN n <= (spec->>'min')::numeric
                 ELSE n < (spec->>'min')::numeric END)
        OR n > (spec->>'max')::numeric, false);
    END IF;
  WHEN 'boolean' THEN
    wrong := jsonb_typeof(v) <> 'boolean';
  WHEN 'date' THEN
    wrong := jsonb_typeof(v) <> 'string' OR NOT payload_valid_date(v #>> '{}');
  WHEN 'object' THEN
    wrong := jsonb_typeof(v) <> 'object';
    IF NOT wrong THEN
      FOR k IN SELECT x FROM jsonb_object_keys(v) AS x ORDER BY x COLLATE "C" LOOP
        IF NOT coalesce(spec->'fields' ? k, false) THEN RETURN path || '.' || k || ': unknown field'; END IF;
      END LOOP;
      FOR k IN SELECT x FROM jsonb_object_keys(coalesce(spec->'fields', '{}')) AS x ORDER BY x COLLATE "C" LOOP
        IF v ? k THEN
          problem := rule_problem(path || '.' || k, spec->'fields'->k, v->k);
        ELSIF coalesce(spec->'required' ? k, false) THEN
          problem := path || '.' || k || ': is required';
        END IF;
        IF problem IS NOT NULL THEN RETURN problem; END IF;
      END LOOP;
    END IF;
  WHEN 'array' THEN
    wrong := jsonb_typeof(v) <> 'array';
    IF NOT wrong AND jsonb_array_length(v) > (spec->>'max_items')::integer THEN
      RETURN format('%s: expected array of at most %s items, got %s items',
                    path, spec->>'max_items', jsonb_array_length(v));
    END IF;
    IF NOT wrong AND spec ? 'items' THEN
      FOR i IN 1 .. jsonb_array_length(v) LOOP
        problem := rule_problem(path || '[' || i || ']', spec->'items', v->(i - 1));
        IF problem IS NOT NULL THEN RETURN problem; END IF;
      END LOOP;
    END IF;
  ELSE
    RAISE EXCEPTION 'rule_problem: unknown rule type %', kind;
  END CASE;
  IF wrong THEN RETURN path || ': expected ' || rule_expects(spec) || ', got ' || payload_got(v); END IF;
  RETURN NULL;
END
$$;

-- true when problem is NULL; else raises it as a check violation. A CHECK
-- constraint written as holds(<something>_problem(...)) refuses a row with
-- the problem's own words (which name the field) instead of its name only.
CREATE FUNCTION holds(problem text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
  IF problem IS NOT NULL THEN
    RAISE EXCEPTION USING MESSAGE = problem, ERRCODE = 'check_violation';
  END IF;
  RETURN true;
END
$$;

-- ---- tags --------------------------------------------------------------------

-- NULL when v is a list of tags: at most 32 distinct strings of 1 to 64
-- characters without spaces around them.
CREATE FUNCTION tags_problem(path text, v jsonb) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  problem text := rule_problem(path, '{"type": "array", "max_items": 32, "items": {"type": "string", "max_length": 64}}', v);
  t text;
BEGIN
  IF problem IS NOT NULL THEN RETURN problem; END IF;
  FOR i IN 1 .. jsonb_array_length(v) LOOP
    t := v->>(i - 1);
    IF t = '' OR t <> btrim(t) THEN
      RETURN format('%s[%s]: expected a tag (not empty, no spaces around it), got %s', path, i, payload_got(v->(i - 1)));
    END IF;
    IF v->(i - 1) = ANY (ARRAY(SELECT jsonb_array_elements(v) LIMIT i - 1)) THEN
      RETURN format('%s[%s]: %s is already a tag', path, i, payload_got(v->(i - 1)));
    END IF;
  END LOOP;
  RETURN NULL;
END
$$;

ALTER TABLE vehicles
  ADD COLUMN tags jsonb NOT NULL DEFAULT '[]' CONSTRAINT vehicles_tags_check CHECK (holds(tags_problem('tags', tags)));
CREATE INDEX vehicles_tags ON vehicles USING gin (tags jsonb_path_ops);
COMMENT ON COLUMN vehicles.tags IS 'labels a fleet filters by (["delivery", "west"]): vehicles.list and reports take tags';

ALTER TABLE vehicle_events
  ADD COLUMN location jsonb,
  ADD COLUMN tags jsonb CONSTRAINT vehicle_events_tags_check CHECK (tags IS NULL OR holds(tags_problem('tags', tags)));
DO $do$ BEGIN
  EXECUTE format('GRANT INSERT (location, tags) ON vehicle_events TO %I', (SELECT value FROM settings WHERE key = 'app_role'));
END $do$;
COMMENT ON COLUMN vehicle_events.tags IS 'labels of the event (["business", "trip:alps"]); timeline pages filter by them';

-- ---- an event's position ----------------------------------------------------------

-- The rule of vehicle_events.location, in the payload vocabulary.
CREATE FUNCTION location_rule() RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT '{"type": "object", "required": ["lat", "lon"], "fields": {
            "lat": {"type": "number", "min": -90, "max": 90},
            "lon": {"type": "number", "min": -180, "max": 180},
            "accuracy_m": {"type": "number", "min": 0, "max": 100000},
            "place": {"type": "string", "max_length": 200}}}'::jsonb
$$;

ALTER TABLE vehicle_events ADD CONSTRAINT vehicle_events_location_check
  CHECK (location IS NULL OR holds(rule_problem('location', location_rule(), location)));
COMMENT ON COLUMN vehicle_events.location IS
  'where it happened: {"lat": 48.85, "lon": 2.35, "accuracy_m": 12, "place": "Total, Rue X"} (WGS 84 degrees)';

-- The effective timeline shows them (columns appended: the view's readers keep theirs).
CREATE OR REPLACE VIEW vehicle_events_effective WITH (security_invoker = true) AS
SELECT e.tenant_id, e.id, e.vehicle_id, e.type, e.occurred_at, e.mileage, e.payload, e.notes, e.created_at,
       e.created_by, e.correction, e.corrects_id, e.corrects_occurred_at, e.location, e.tags
  FROM vehicle_events e
 WHERE e.correction IS DISTINCT FROM 'void'
   AND NOT EXISTS (SELECT 1 FROM vehicle_event_supersessions s
                    WHERE s.tenant_id = e.tenant_id AND s.event_id = e.id AND s.occurred_at = e.occurred_at);

-- ---- custom fields ------------------------------------------------------------------

-- NULL when spec is a custom field's rule: a scalar rule of the payload
-- vocabulary (string with max_length or enum, number or integer with
-- min/max, boolean, date), checked by rule_problem against its own rule.
CREATE FUNCTION custom_field_spec_problem(spec jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT coalesce(
    rule_problem('spec', '{"type": "object", "required": ["type"], "fields": {
                   "type": {"type": "string", "enum": ["string", "number", "integer", "boolean", "date"]},
                   "max_length": {"type": "integer", "min": 1, "max": 10000},
                   "enum": {"type": "array", "max_items": 500, "items": {"type": "string", "max_length": 200}},
                   "min": {"type": "number"}, "max": {"type": "number"}}}', spec),
    CASE WHEN spec->>'type' <> 'string' AND (spec ? 'max_length' OR spec ? 'enum')
           THEN format('spec: max_length and enum are rules of a string, not of a %s', spec->>'type')
         WHEN spec->>'type' NOT IN ('number', 'integer') AND (spec ? 'min' OR spec ? 'max')
           THEN format('spec: min and max are rules of a number or integer, not of a %s', spec->>'type')
         WHEN (spec->>'min')::numeric > (spec->>'max')::numeric
           THEN format('spec: min (%s) is above max (%s)', spec->'min', spec->'max')
         WHEN jsonb_array_length(spec->'enum') = 0 THEN 'spec.enum: name at least one value'
    END)
$$;

CREATE TABLE custom_fields (
  tenant_id   uuid NOT NULL REFERENCES tenants (id),
  id          uuid NOT NULL DEFAULT gen_random_uuid(),
  name        text NOT NULL CONSTRAINT custom_fields_name_check CHECK (name ~ '^[a-z0-9][a-z0-9_]{0,63}$'),
  label       text CONSTRAINT custom_fields_label_check CHECK (length(label) BETWEEN 1 AND 200),
  spec        jsonb NOT NULL DEFAULT '{"type": "string", "max_length": 200}'
                CONSTRAINT custom_fields_spec_check CHECK (holds(custom_field_spec_problem(spec))),
  required    boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(), created_by uuid,
  updated_at timestamptz NOT NULL DEFAULT now(), updated_by uuid,
  deleted_at timestamptz, deleted_by uuid,
  PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX custom_fields_name_key ON custom_fields (tenant_id, name) WHERE deleted_at IS NULL;
COMMENT ON TABLE custom_fields IS
  'typed fields a tenant defines for its vehicles (values in vehicles.extended_attributes); '
  'spec is a rule of the payload vocabulary: {"type": "string", "max_length": 40}, {"type": "integer", "min": 0}, ...';
SELECT protect_tenant_table('custom_fields', 'mutable');

-- The rule a tenant's vehicles' extended_attributes follow: an object of its
-- live custom fields, the required ones required.
CREATE FUNCTION attributes_rule(tenant uuid) RETURNS jsonb
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT jsonb_build_object('type', 'object',
           'fields', coalesce(jsonb_object_agg(f.name, f.spec), '{}'),
           'required', coalesce(jsonb_agg(f.name) FILTER (WHERE f.required), '[]'))
    FROM custom_fields f WHERE f.tenant_id = tenant AND f.deleted_at IS NULL
$$;

ALTER TABLE vehicles ADD COLUMN extended_attributes jsonb NOT NULL DEFAULT '{}';
COMMENT ON COLUMN vehicles.extended_attributes IS
  'values of the tenant''s custom fields ({"cost_center": "CC-West", "asset_tag": "TRUCK-047"})';

-- A vehicle's extended_attributes follow its tenant's custom fields, for
-- every writer (definer: the definitions are read whatever the writer may see).
CREATE FUNCTION check_vehicle_attributes() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $$
DECLARE
  problem text;
BEGIN
  IF NEW.extended_attributes = '{}' AND NOT EXISTS (
       SELECT 1 FROM custom_fields f WHERE f.tenant_id = NEW.tenant_id AND f.deleted_at IS NULL AND f.required) THEN
    RETURN NEW;
  END IF;
  problem := rule_problem('extended_attributes', attributes_rule(NEW.tenant_id), NEW.extended_attributes);
  IF problem IS NOT NULL THEN
    RAISE EXCEPTION USING MESSAGE = problem, ERRCODE = 'check_violation', CONSTRAINT = 'vehicles_extended_attributes_check',
      TABLE = 'vehicles', COLUMN = 'extended_attributes';
  END IF;
  RETURN NEW;
END
$$;
CREATE TRIGGER vehicles_extended_attributes BEFORE INSERT OR UPDATE OF extended_attributes ON vehicles
  FOR EACH ROW EXECUTE FUNCTION check_vehicle_attributes();

-- A definition added, changed or removed keeps every live vehicle of the
-- tenant conforming: a change that would leave one out of its rule (a new
-- required field, a narrower type, a removed field still holding values) is
-- refused, naming the vehicle.
CREATE FUNCTION check_custom_field_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT SET motomind.maintenance = 'on' AS $$
DECLARE
  rule jsonb := attributes_rule(NEW.tenant_id);
  bad record;
BEGIN
  SELECT v.id, v.nickname, rule_problem('extended_attributes', rule, v.extended_attributes) AS problem INTO bad
    FROM vehicles v
   WHERE v.tenant_id = NEW.tenant_id AND v.deleted_at IS NULL
     AND rule_problem('extended_attributes', rule, v.extended_attributes) IS NOT NULL
   ORDER BY v.id LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'check_violation', CONSTRAINT = 'vehicles_extended_attributes_check',
      TABLE = 'custom_fields', COLUMN = 'spec',
      MESSAGE = CASE WHEN NEW.deleted_at IS NOT NULL
        THEN format('custom field %s: vehicle %s (%s) still holds a value (clear it before removing the field)',
                    NEW.name, bad.id, coalesce(bad.nickname, 'no nickname'))
        ELSE format('custom field %s: vehicle %s (%s) would break it: %s', NEW.name, bad.id,
                    coalesce(bad.nickname, 'no nickname'), bad.problem) END;
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER custom_fields_conform AFTER INSERT OR UPDATE ON custom_fields
  FOR EACH ROW EXECUTE FUNCTION check_custom_field_change();
