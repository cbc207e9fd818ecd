-- GENERATED from sql/payloads.json by tools/gen-payload-migration: do not edit.
-- Payload rules, mirroring the C codec (src/payload.c) check for check.

-- Renders a JSON value for "got ..." in messages, as src/payload.c does.
CREATE OR REPLACE FUNCTION payload_got(v jsonb) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE jsonb_typeof(v)
    WHEN 'string' THEN to_jsonb(CASE WHEN length(v #>> '{}') > 40
                                     THEN left(v #>> '{}', 40) || '...' ELSE v #>> '{}' END)::text
    WHEN 'number' THEN CASE WHEN v::numeric = 0 THEN '0'
                            WHEN v::numeric = trunc(v::numeric) AND abs(v::numeric) < 1e15
                            THEN trunc(v::numeric)::text
                            ELSE v::numeric::float8::text END
    WHEN 'object' THEN 'object'
    WHEN 'array' THEN 'array'
    ELSE v::text END
$$;

-- The first key of v (in byte order) that is not allowed, as a message.
CREATE OR REPLACE FUNCTION payload_unknown_key(v jsonb, allowed text[], path text, hint text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT path || '.' || k || hint FROM jsonb_object_keys(v) AS k
   WHERE k <> ALL (allowed) ORDER BY k COLLATE "C" LIMIT 1
$$;

-- true for a real calendar date written YYYY-MM-DD (year 1 or later).
CREATE OR REPLACE FUNCTION payload_valid_date(s text) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN s !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN false
    WHEN substr(s, 1, 4)::int < 1 OR substr(s, 6, 2)::int NOT BETWEEN 1 AND 12 THEN false
    ELSE substr(s, 9, 2)::int BETWEEN 1 AND
      CASE WHEN substr(s, 6, 2)::int IN (4, 6, 9, 11) THEN 30
           WHEN substr(s, 6, 2)::int <> 2 THEN 31
           WHEN (substr(s, 1, 4)::int % 4 = 0 AND substr(s, 1, 4)::int % 100 <> 0)
             OR substr(s, 1, 4)::int % 400 = 0 THEN 29
           ELSE 28 END
  END
$$;

-- The first bad item of each array field, by index (only called when there is one).
CREATE OR REPLACE FUNCTION payload_items_1(v jsonb, path text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT s.m FROM (SELECT a.i, CASE WHEN jsonb_typeof(a.v) <> 'object' THEN path || '[' || a.i || ']' || ': expected object, got ' || payload_got(a.v) ELSE COALESCE(CASE WHEN (a.v - ARRAY['name', 'part_number', 'quantity', 'unit_cost']::text[]) = '{}'::jsonb THEN NULL ELSE payload_unknown_key(a.v, ARRAY['name', 'part_number', 'quantity', 'unit_cost']::text[], path || '[' || a.i || ']', ': unknown field') END,
    CASE WHEN (a.v -> 'name') IS NULL THEN path || '[' || a.i || ']' || '.name' || ': is required' ELSE COALESCE(CASE WHEN jsonb_typeof((a.v -> 'name')) <> 'string' THEN path || '[' || a.i || ']' || '.name' || ': expected string of at most 200 characters, got ' || payload_got((a.v -> 'name')) WHEN length(((a.v -> 'name') #>> '{}')) > 200 THEN path || '[' || a.i || ']' || '.name' || ': expected string of at most 200 characters, got ' || length(((a.v -> 'name') #>> '{}')) || ' characters' END) END,
    CASE WHEN (a.v -> 'part_number') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((a.v -> 'part_number')) <> 'string' THEN path || '[' || a.i || ']' || '.part_number' || ': expected string of at most 100 characters, got ' || payload_got((a.v -> 'part_number')) WHEN length(((a.v -> 'part_number') #>> '{}')) > 100 THEN path || '[' || a.i || ']' || '.part_number' || ': expected string of at most 100 characters, got ' || length(((a.v -> 'part_number') #>> '{}')) || ' characters' END) END,
    CASE WHEN (a.v -> 'quantity') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((a.v -> 'quantity')) <> 'number' THEN path || '[' || a.i || ']' || '.quantity' || ': expected number > 0 and <= 100000, got ' || payload_got((a.v -> 'quantity')) WHEN ((a.v -> 'quantity'))::numeric <= 0 OR ((a.v -> 'quantity'))::numeric > 100000 THEN path || '[' || a.i || ']' || '.quantity' || ': expected number > 0 and <= 100000, got ' || payload_got((a.v -> 'quantity')) END) END,
    CASE WHEN (a.v -> 'unit_cost') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((a.v -> 'unit_cost')) <> 'number' THEN path || '[' || a.i || ']' || '.unit_cost' || ': expected number from 0 to 10000000, got ' || payload_got((a.v -> 'unit_cost')) WHEN ((a.v -> 'unit_cost'))::numeric < 0 OR ((a.v -> 'unit_cost'))::numeric > 10000000 THEN path || '[' || a.i || ']' || '.unit_cost' || ': expected number from 0 to 10000000, got ' || payload_got((a.v -> 'unit_cost')) END) END) END AS m FROM jsonb_array_elements(v) WITH ORDINALITY AS a(v, i)) s
   WHERE s.m IS NOT NULL ORDER BY s.i LIMIT 1
$$;

-- Per type: NULL when the payload is valid, else what is wrong. Free of
-- sub-selects, so PostgreSQL inlines them into set-based checks; a cheap
-- test passes valid payloads before the exact checks run.
CREATE OR REPLACE FUNCTION payload_problem_damage(p jsonb) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN (jsonb_typeof(p) = 'object'
      AND (p - ARRAY['currency', 'description', 'estimate', 'repair_cost', 'severity', 'extra']::text[]) = '{}'::jsonb
      AND (NOT (p ? 'extra') OR jsonb_typeof(p -> 'extra') = 'object')
      AND p ? 'severity'
      AND coalesce(jsonb_typeof((p -> 'currency')) = 'string' AND (p ->> 'currency') ~ '^[A-Z]{3}$', NOT (p ? 'currency'))
      AND coalesce(jsonb_typeof((p -> 'description')) = 'string' AND length((p ->> 'description')) <= 2000, NOT (p ? 'description'))
      AND coalesce((p -> 'estimate') >= '0'::jsonb AND (p -> 'estimate') <= '10000000'::jsonb, NOT (p ? 'estimate'))
      AND (p ? 'currency' OR NOT (p ? 'estimate'))
      AND coalesce((p -> 'repair_cost') >= '0'::jsonb AND (p -> 'repair_cost') <= '10000000'::jsonb, NOT (p ? 'repair_cost'))
      AND (p ? 'currency' OR NOT (p ? 'repair_cost'))
      AND coalesce((p ->> 'severity') = ANY (ARRAY['minor', 'moderate', 'severe', 'total_loss']::text[]), NOT (p ? 'severity'))) THEN NULL
    WHEN jsonb_typeof(p) <> 'object' THEN 'payload: expected object, got ' || payload_got(p)
    ELSE COALESCE(CASE WHEN (p - ARRAY['currency', 'description', 'estimate', 'repair_cost', 'severity', 'extra']::text[]) = '{}'::jsonb THEN NULL ELSE payload_unknown_key(p, ARRAY['currency', 'description', 'estimate', 'repair_cost', 'severity', 'extra']::text[], 'payload', ': unknown field (put free-form fields under payload.extra)') END,
    CASE WHEN jsonb_typeof(p -> 'extra') <> 'object' THEN 'payload' || '.extra: expected object, got ' || payload_got(p -> 'extra') END,
    CASE WHEN (p -> 'currency') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'currency')) <> 'string' THEN 'payload' || '.currency' || ': expected ISO 4217 currency code, got ' || payload_got((p -> 'currency')) WHEN ((p -> 'currency') #>> '{}') !~ '^[A-Z]{3}$' THEN 'payload' || '.currency' || ': expected ISO 4217 currency code, got ' || payload_got((p -> 'currency')) END) END,
    CASE WHEN (p -> 'description') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'description')) <> 'string' THEN 'payload' || '.description' || ': expected string of at most 2000 characters, got ' || payload_got((p -> 'description')) WHEN length(((p -> 'description') #>> '{}')) > 2000 THEN 'payload' || '.description' || ': expected string of at most 2000 characters, got ' || length(((p -> 'description') #>> '{}')) || ' characters' END) END,
    CASE WHEN (p -> 'estimate') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'estimate')) <> 'number' THEN 'payload' || '.estimate' || ': expected number from 0 to 10000000, got ' || payload_got((p -> 'estimate')) WHEN ((p -> 'estimate'))::numeric < 0 OR ((p -> 'estimate'))::numeric > 10000000 THEN 'payload' || '.estimate' || ': expected number from 0 to 10000000, got ' || payload_got((p -> 'estimate')) END, CASE WHEN NOT (p ? 'currency') THEN 'payload' || '.estimate' || ': needs ' || 'payload' || '.currency' END) END,
    CASE WHEN (p -> 'repair_cost') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'repair_cost')) <> 'number' THEN 'payload' || '.repair_cost' || ': expected number from 0 to 10000000, got ' || payload_got((p -> 'repair_cost')) WHEN ((p -> 'repair_cost'))::numeric < 0 OR ((p -> 'repair_cost'))::numeric > 10000000 THEN 'payload' || '.repair_cost' || ': expected number from 0 to 10000000, got ' || payload_got((p -> 'repair_cost')) END, CASE WHEN NOT (p ? 'currency') THEN 'payload' || '.repair_cost' || ': needs ' || 'payload' || '.currency' END) END,
    CASE WHEN (p -> 'severity') IS NULL THEN 'payload' || '.severity' || ': is required' ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'severity')) <> 'string' THEN 'payload' || '.severity' || ': expected one of minor, moderate, severe, total_loss, got ' || payload_got((p -> 'severity')) WHEN NOT (((p -> 'severity') #>> '{}') = ANY (ARRAY['minor', 'moderate', 'severe', 'total_loss']::text[])) THEN 'payload' || '.severity' || ': expected one of minor, moderate, severe, total_loss, got ' || payload_got((p -> 'severity')) END) END) END
$$;

CREATE OR REPLACE FUNCTION payload_problem_document(p jsonb) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN (jsonb_typeof(p) = 'object'
      AND (p - ARRAY['expires_on', 'kind', 'storage_url', 'title', 'extra']::text[]) = '{}'::jsonb
      AND (NOT (p ? 'extra') OR jsonb_typeof(p -> 'extra') = 'object')
      AND p ? 'kind'
      AND p ? 'storage_url'
      AND coalesce(jsonb_typeof((p -> 'expires_on')) = 'string' AND payload_valid_date((p ->> 'expires_on')), NOT (p ? 'expires_on'))
      AND coalesce((p ->> 'kind') = ANY (ARRAY['registration', 'insurance', 'title', 'receipt', 'warranty', 'manual', 'other']::text[]), NOT (p ? 'kind'))
      AND coalesce(jsonb_typeof((p -> 'storage_url')) = 'string' AND (p ->> 'storage_url') ~ '^[A-Za-z][A-Za-z0-9+.-]*://[^ 	
]+$', NOT (p ? 'storage_url'))
      AND coalesce(jsonb_typeof((p -> 'title')) = 'string' AND length((p ->> 'title')) <= 200, NOT (p ? 'title'))) THEN NULL
    WHEN jsonb_typeof(p) <> 'object' THEN 'payload: expected object, got ' || payload_got(p)
    ELSE COALESCE(CASE WHEN (p - ARRAY['expires_on', 'kind', 'storage_url', 'title', 'extra']::text[]) = '{}'::jsonb THEN NULL ELSE payload_unknown_key(p, ARRAY['expires_on', 'kind', 'storage_url', 'title', 'extra']::text[], 'payload', ': unknown field (put free-form fields under payload.extra)') END,
    CASE WHEN jsonb_typeof(p -> 'extra') <> 'object' THEN 'payload' || '.extra: expected object, got ' || payload_got(p -> 'extra') END,
    CASE WHEN (p -> 'expires_on') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'expires_on')) <> 'string' THEN 'payload' || '.expires_on' || ': expected date (YYYY-MM-DD), got ' || payload_got((p -> 'expires_on')) WHEN NOT payload_valid_date(((p -> 'expires_on') #>> '{}')) THEN 'payload' || '.expires_on' || ': expected date (YYYY-MM-DD), got ' || payload_got((p -> 'expires_on')) END) END,
    CASE WHEN (p -> 'kind') IS NULL THEN 'payload' || '.kind' || ': is required' ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'kind')) <> 'string' THEN 'payload' || '.kind' || ': expected one of registration, insurance, title, receipt, warranty, manual, other, got ' || payload_got((p -> 'kind')) WHEN NOT (((p -> 'kind') #>> '{}') = ANY (ARRAY['registration', 'insurance', 'title', 'receipt', 'warranty', 'manual', 'other']::text[])) THEN 'payload' || '.kind' || ': expected one of registration, insurance, title, receipt, warranty, manual, other, got ' || payload_got((p -> 'kind')) END) END,
    CASE WHEN (p -> 'storage_url') IS NULL THEN 'payload' || '.storage_url' || ': is required' ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'storage_url')) <> 'string' THEN 'payload' || '.storage_url' || ': expected URL, got ' || payload_got((p -> 'storage_url')) WHEN ((p -> 'storage_url') #>> '{}') !~ '^[A-Za-z][A-Za-z0-9+.-]*://[^ \t\n\r\f\v]+$' THEN 'payload' || '.storage_url' || ': expected URL, got ' || payload_got((p -> 'storage_url')) END) END,
    CASE WHEN (p -> 'title') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'title')) <> 'string' THEN 'payload' || '.title' || ': expected string of at most 200 characters, got ' || payload_got((p -> 'title')) WHEN length(((p -> 'title') #>> '{}')) > 200 THEN 'payload' || '.title' || ': expected string of at most 200 characters, got ' || length(((p -> 'title') #>> '{}')) || ' characters' END) END) END
$$;

CREATE OR REPLACE FUNCTION payload_problem_fuel(p jsonb) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN (jsonb_typeof(p) = 'object'
      AND (p - ARRAY['currency', 'fuel_type', 'full', 'grade', 'missed', 'price_per_unit', 'station', 'total', 'unit', 'volume', 'extra']::text[]) = '{}'::jsonb
      AND (NOT (p ? 'extra') OR jsonb_typeof(p -> 'extra') = 'object')
      AND coalesce(jsonb_typeof((p -> 'currency')) = 'string' AND (p ->> 'currency') ~ '^[A-Z]{3}$', NOT (p ? 'currency'))
      AND coalesce((p ->> 'fuel_type') = ANY (ARRAY['gasoline', 'diesel', 'e85', 'lpg', 'cng', 'electric', 'hydrogen', 'other']::text[]), NOT (p ? 'fuel_type'))
      AND coalesce(jsonb_typeof((p -> 'full')) = 'boolean', NOT (p ? 'full'))
      AND coalesce(jsonb_typeof((p -> 'grade')) = 'string' AND length((p ->> 'grade')) <= 40, NOT (p ? 'grade'))
      AND coalesce(jsonb_typeof((p -> 'missed')) = 'boolean', NOT (p ? 'missed'))
      AND coalesce((p -> 'price_per_unit') >= '0'::jsonb AND (p -> 'price_per_unit') <= '100000'::jsonb, NOT (p ? 'price_per_unit'))
      AND (p ? 'currency' OR NOT (p ? 'price_per_unit'))
      AND coalesce(jsonb_typeof((p -> 'station')) = 'string' AND length((p ->> 'station')) <= 200, NOT (p ? 'station'))
      AND coalesce((p -> 'total') >= '0'::jsonb AND (p -> 'total') <= '10000000'::jsonb, NOT (p ? 'total'))
      AND (p ? 'currency' OR NOT (p ? 'total'))
      AND coalesce((p ->> 'unit') = ANY (ARRAY['us_gal', 'uk_gal', 'l', 'kwh']::text[]), NOT (p ? 'unit'))
      AND coalesce((p -> 'volume') > '0'::jsonb AND (p -> 'volume') <= '100000'::jsonb, NOT (p ? 'volume'))
      AND (p ? 'unit' OR NOT (p ? 'volume'))
      AND p ?| ARRAY['volume', 'total']::text[]) THEN NULL
    WHEN jsonb_typeof(p) <> 'object' THEN 'payload: expected object, got ' || payload_got(p)
    ELSE COALESCE(CASE WHEN (p - ARRAY['currency', 'fuel_type', 'full', 'grade', 'missed', 'price_per_unit', 'station', 'total', 'unit', 'volume', 'extra']::text[]) = '{}'::jsonb THEN NULL ELSE payload_unknown_key(p, ARRAY['currency', 'fuel_type', 'full', 'grade', 'missed', 'price_per_unit', 'station', 'total', 'unit', 'volume', 'extra']::text[], 'payload', ': unknown field (put free-form fields under payload.extra)') END,
    CASE WHEN jsonb_typeof(p -> 'extra') <> 'object' THEN 'payload' || '.extra: expected object, got ' || payload_got(p -> 'extra') END,
    CASE WHEN (p -> 'currency') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'currency')) <> 'string' THEN 'payload' || '.currency' || ': expected ISO 4217 currency code, got ' || payload_got((p -> 'currency')) WHEN ((p -> 'currency') #>> '{}') !~ '^[A-Z]{3}$' THEN 'payload' || '.currency' || ': expected ISO 4217 currency code, got ' || payload_got((p -> 'currency')) END) END,
    CASE WHEN (p -> 'fuel_type') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'fuel_type')) <> 'string' THEN 'payload' || '.fuel_type' || ': expected one of gasoline, diesel, e85, lpg, cng, electric, hydrogen, other, got ' || payload_got((p -> 'fuel_type')) WHEN NOT (((p -> 'fuel_type') #>> '{}') = ANY (ARRAY['gasoline', 'diesel', 'e85', 'lpg', 'cng', 'electric', 'hydrogen', 'other']::text[])) THEN 'payload' || '.fuel_type' || ': expected one of gasoline, diesel, e85, lpg, cng, electric, hydrogen, other, got ' || payload_got((p -> 'fuel_type')) END) END,
    CASE WHEN (p -> 'full') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'full')) <> 'boolean' THEN 'payload' || '.full' || ': expected boolean, got ' || payload_got((p -> 'full')) END) END,
    CASE WHEN (p -> 'grade') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'grade')) <> 'string' THEN 'payload' || '.grade' || ': expected string of at most 40 characters, got ' || payload_got((p -> 'grade')) WHEN length(((p -> 'grade') #>> '{}')) > 40 THEN 'payload' || '.grade' || ': expected string of at most 40 characters, got ' || length(((p -> 'grade') #>> '{}')) || ' characters' END) END,
    CASE WHEN (p -> 'missed') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'missed')) <> 'boolean' THEN 'payload' || '.missed' || ': expected boolean, got ' || payload_got((p -> 'missed')) END) END,
    CASE WHEN (p -> 'price_per_unit') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'price_per_unit')) <> 'number' THEN 'payload' || '.price_per_unit' || ': expected number from 0 to 100000, got ' || payload_got((p -> 'price_per_unit')) WHEN ((p -> 'price_per_unit'))::numeric < 0 OR ((p -> 'price_per_unit'))::numeric > 100000 THEN 'payload' || '.price_per_unit' || ': expected number from 0 to 100000, got ' || payload_got((p -> 'price_per_unit')) END, CASE WHEN NOT (p ? 'currency') THEN 'payload' || '.price_per_unit' || ': needs ' || 'payload' || '.currency' END) END,
    CASE WHEN (p -> 'station') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'station')) <> 'string' THEN 'payload' || '.station' || ': expected string of at most 200 characters, got ' || payload_got((p -> 'station')) WHEN length(((p -> 'station') #>> '{}')) > 200 THEN 'payload' || '.station' || ': expected string of at most 200 characters, got ' || length(((p -> 'station') #>> '{}')) || ' characters' END) END,
    CASE WHEN (p -> 'total') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'total')) <> 'number' THEN 'payload' || '.total' || ': expected number from 0 to 10000000, got ' || payload_got((p -> 'total')) WHEN ((p -> 'total'))::numeric < 0 OR ((p -> 'total'))::numeric > 10000000 THEN 'payload' || '.total' || ': expected number from 0 to 10000000, got ' || payload_got((p -> 'total')) END, CASE WHEN NOT (p ? 'currency') THEN 'payload' || '.total' || ': needs ' || 'payload' || '.currency' END) END,
    CASE WHEN (p -> 'unit') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'unit')) <> 'string' THEN 'payload' || '.unit' || ': expected one of us_gal, uk_gal, l, kwh, got ' || payload_got((p -> 'unit')) WHEN NOT (((p -> 'unit') #>> '{}') = ANY (ARRAY['us_gal', 'uk_gal', 'l', 'kwh']::text[])) THEN 'payload' || '.unit' || ': expected one of us_gal, uk_gal, l, kwh, got ' || payload_got((p -> 'unit')) END) END,
    CASE WHEN (p -> 'volume') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'volume')) <> 'number' THEN 'payload' || '.volume' || ': expected number > 0 and <= 100000, got ' || payload_got((p -> 'volume')) WHEN ((p -> 'volume'))::numeric <= 0 OR ((p -> 'volume'))::numeric > 100000 THEN 'payload' || '.volume' || ': expected number > 0 and <= 100000, got ' || payload_got((p -> 'volume')) END, CASE WHEN NOT (p ? 'unit') THEN 'payload' || '.volume' || ': needs ' || 'payload' || '.unit' END) END,
    CASE WHEN NOT (p ?| ARRAY['volume', 'total']::text[]) THEN 'payload' || ': needs one of volume, total' END) END
$$;

CREATE OR REPLACE FUNCTION payload_problem_inspection(p jsonb) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN (jsonb_typeof(p) = 'object'
      AND (p - ARRAY['expires_on', 'inspector', 'kind', 'result', 'extra']::text[]) = '{}'::jsonb
      AND (NOT (p ? 'extra') OR jsonb_typeof(p -> 'extra') = 'object')
      AND p ? 'result'
      AND coalesce(jsonb_typeof((p -> 'expires_on')) = 'string' AND payload_valid_date((p ->> 'expires_on')), NOT (p ? 'expires_on'))
      AND coalesce(jsonb_typeof((p -> 'inspector')) = 'string' AND length((p ->> 'inspector')) <= 200, NOT (p ? 'inspector'))
      AND coalesce(jsonb_typeof((p -> 'kind')) = 'string' AND length((p ->> 'kind')) <= 100, NOT (p ? 'kind'))
      AND coalesce((p ->> 'result') = ANY (ARRAY['pass', 'fail', 'advisory']::text[]), NOT (p ? 'result'))) THEN NULL
    WHEN jsonb_typeof(p) <> 'object' THEN 'payload: expected object, got ' || payload_got(p)
    ELSE COALESCE(CASE WHEN (p - ARRAY['expires_on', 'inspector', 'kind', 'result', 'extra']::text[]) = '{}'::jsonb THEN NULL ELSE payload_unknown_key(p, ARRAY['expires_on', 'inspector', 'kind', 'result', 'extra']::text[], 'payload', ': unknown field (put free-form fields under payload.extra)') END,
    CASE WHEN jsonb_typeof(p -> 'extra') <> 'object' THEN 'payload' || '.extra: expected object, got ' || payload_got(p -> 'extra') END,
    CASE WHEN (p -> 'expires_on') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'expires_on')) <> 'string' THEN 'payload' || '.expires_on' || ': expected date (YYYY-MM-DD), got ' || payload_got((p -> 'expires_on')) WHEN NOT payload_valid_date(((p -> 'expires_on') #>> '{}')) THEN 'payload' || '.expires_on' || ': expected date (YYYY-MM-DD), got ' || payload_got((p -> 'expires_on')) END) END,
    CASE WHEN (p -> 'inspector') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'inspector')) <> 'string' THEN 'payload' || '.inspector' || ': expected string of at most 200 characters, got ' || payload_got((p -> 'inspector')) WHEN length(((p -> 'inspector') #>> '{}')) > 200 THEN 'payload' || '.inspector' || ': expected string of at most 200 characters, got ' || length(((p -> 'inspector') #>> '{}')) || ' characters' END) END,
    CASE WHEN (p -> 'kind') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'kind')) <> 'string' THEN 'payload' || '.kind' || ': expected string of at most 100 characters, got ' || payload_got((p -> 'kind')) WHEN length(((p -> 'kind') #>> '{}')) > 100 THEN 'payload' || '.kind' || ': expected string of at most 100 characters, got ' || length(((p -> 'kind') #>> '{}')) || ' characters' END) END,
    CASE WHEN (p -> 'result') IS NULL THEN 'payload' || '.result' || ': is required' ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'result')) <> 'string' THEN 'payload' || '.result' || ': expected one of pass, fail, advisory, got ' || payload_got((p -> 'result')) WHEN NOT (((p -> 'result') #>> '{}') = ANY (ARRAY['pass', 'fail', 'advisory']::text[])) THEN 'payload' || '.result' || ': expected one of pass, fail, advisory, got ' || payload_got((p -> 'result')) END) END) END
$$;

CREATE OR REPLACE FUNCTION payload_problem_maintenance(p jsonb) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN (jsonb_typeof(p) = 'object'
      AND (p - ARRAY['category', 'currency', 'next_service', 'parts', 'provider', 'service_type', 'total', 'extra']::text[]) = '{}'::jsonb
      AND (NOT (p ? 'extra') OR jsonb_typeof(p -> 'extra') = 'object')
      AND p ? 'service_type'
      AND coalesce((p ->> 'category') = ANY (ARRAY['service', 'repair', 'upgrade', 'tires', 'tax', 'insurance', 'registration', 'parking_tolls', 'fines', 'cleaning', 'accessories', 'other']::text[]), NOT (p ? 'category'))
      AND coalesce(jsonb_typeof((p -> 'currency')) = 'string' AND (p ->> 'currency') ~ '^[A-Z]{3}$', NOT (p ? 'currency'))
      AND coalesce((jsonb_typeof((p -> 'next_service')) = 'object'
      AND ((p -> 'next_service') - ARRAY['due_on', 'mileage', 'repeat_distance', 'repeat_months']::text[]) = '{}'::jsonb
      AND coalesce(jsonb_typeof(((p -> 'next_service') -> 'due_on')) = 'string' AND payload_valid_date(((p -> 'next_service') ->> 'due_on')), NOT ((p -> 'next_service') ? 'due_on'))
      AND coalesce(((p -> 'next_service') -> 'mileage') >= '0'::jsonb AND ((p -> 'next_service') -> 'mileage') <= '100000000'::jsonb, NOT ((p -> 'next_service') ? 'mileage'))
      AND coalesce(((p -> 'next_service') -> 'repeat_distance') > '0'::jsonb AND ((p -> 'next_service') -> 'repeat_distance') <= '10000000'::jsonb, NOT ((p -> 'next_service') ? 'repeat_distance'))
      AND coalesce(((p -> 'next_service') -> 'repeat_months') >= '1'::jsonb AND ((p -> 'next_service') -> 'repeat_months') <= '600'::jsonb AND ((p -> 'next_service') ->> 'repeat_months') ~ '^-?[0-9]+$', NOT ((p -> 'next_service') ? 'repeat_months'))
      AND (p -> 'next_service') ?| ARRAY['mileage', 'due_on', 'repeat_months', 'repeat_distance']::text[]), NOT (p ? 'next_service'))
      AND coalesce((p -> 'parts') = '[]'::jsonb, NOT (p ? 'parts'))
      AND coalesce((jsonb_typeof((p -> 'provider')) = 'object'
      AND ((p -> 'provider') - ARRAY['address', 'name', 'technician']::text[]) = '{}'::jsonb
      AND coalesce(jsonb_typeof(((p -> 'provider') -> 'address')) = 'string' AND length(((p -> 'provider') ->> 'address')) <= 500, NOT ((p -> 'provider') ? 'address'))
      AND coalesce(jsonb_typeof(((p -> 'provider') -> 'name')) = 'string' AND length(((p -> 'provider') ->> 'name')) <= 200, NOT ((p -> 'provider') ? 'name'))
      AND coalesce(jsonb_typeof(((p -> 'provider') -> 'technician')) = 'string' AND length(((p -> 'provider') ->> 'technician')) <= 200, NOT ((p -> 'provider') ? 'technician'))), NOT (p ? 'provider'))
      AND coalesce(jsonb_typeof((p -> 'service_type')) = 'string' AND length((p ->> 'service_type')) <= 100, NOT (p ? 'service_type'))
      AND coalesce((p -> 'total') >= '0'::jsonb AND (p -> 'total') <= '10000000'::jsonb, NOT (p ? 'total'))
      AND (p ? 'currency' OR NOT (p ? 'total'))) THEN NULL
    WHEN jsonb_typeof(p) <> 'object' THEN 'payload: expected object, got ' || payload_got(p)
    ELSE COALESCE(CASE WHEN (p - ARRAY['category', 'currency', 'next_service', 'parts', 'provider', 'service_type', 'total', 'extra']::text[]) = '{}'::jsonb THEN NULL ELSE payload_unknown_key(p, ARRAY['category', 'currency', 'next_service', 'parts', 'provider', 'service_type', 'total', 'extra']::text[], 'payload', ': unknown field (put free-form fields under payload.extra)') END,
    CASE WHEN jsonb_typeof(p -> 'extra') <> 'object' THEN 'payload' || '.extra: expected object, got ' || payload_got(p -> 'extra') END,
    CASE WHEN (p -> 'category') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'category')) <> 'string' THEN 'payload' || '.category' || ': expected one of service, repair, upgrade, tires, tax, insurance, registration, parking_tolls, fines, cleaning, accessories, other, got ' || payload_got((p -> 'category')) WHEN NOT (((p -> 'category') #>> '{}') = ANY (ARRAY['service', 'repair', 'upgrade', 'tires', 'tax', 'insurance', 'registration', 'parking_tolls', 'fines', 'cleaning', 'accessories', 'other']::text[])) THEN 'payload' || '.category' || ': expected one of service, repair, upgrade, tires, tax, insurance, registration, parking_tolls, fines, cleaning, accessories, other, got ' || payload_got((p -> 'category')) END) END,
    CASE WHEN (p -> 'currency') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'currency')) <> 'string' THEN 'payload' || '.currency' || ': expected ISO 4217 currency code, got ' || payload_got((p -> 'currency')) WHEN ((p -> 'currency') #>> '{}') !~ '^[A-Z]{3}$' THEN 'payload' || '.currency' || ': expected ISO 4217 currency code, got ' || payload_got((p -> 'currency')) END) END,
    CASE WHEN (p -> 'next_service') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'next_service')) <> 'object' THEN 'payload' || '.next_service' || ': expected object, got ' || payload_got((p -> 'next_service')) ELSE COALESCE(CASE WHEN ((p -> 'next_service') - ARRAY['due_on', 'mileage', 'repeat_distance', 'repeat_months']::text[]) = '{}'::jsonb THEN NULL ELSE payload_unknown_key((p -> 'next_service'), ARRAY['due_on', 'mileage', 'repeat_distance', 'repeat_months']::text[], 'payload' || '.next_service', ': unknown field') END,
    CASE WHEN ((p -> 'next_service') -> 'due_on') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof(((p -> 'next_service') -> 'due_on')) <> 'string' THEN 'payload' || '.next_service' || '.due_on' || ': expected date (YYYY-MM-DD), got ' || payload_got(((p -> 'next_service') -> 'due_on')) WHEN NOT payload_valid_date((((p -> 'next_service') -> 'due_on') #>> '{}')) THEN 'payload' || '.next_service' || '.due_on' || ': expected date (YYYY-MM-DD), got ' || payload_got(((p -> 'next_service') -> 'due_on')) END) END,
    CASE WHEN ((p -> 'next_service') -> 'mileage') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof(((p -> 'next_service') -> 'mileage')) <> 'number' THEN 'payload' || '.next_service' || '.mileage' || ': expected number from 0 to 100000000, got ' || payload_got(((p -> 'next_service') -> 'mileage')) WHEN (((p -> 'next_service') -> 'mileage'))::numeric < 0 OR (((p -> 'next_service') -> 'mileage'))::numeric > 100000000 THEN 'payload' || '.next_service' || '.mileage' || ': expected number from 0 to 100000000, got ' || payload_got(((p -> 'next_service') -> 'mileage')) END) END,
    CASE WHEN ((p -> 'next_service') -> 'repeat_distance') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof(((p -> 'next_service') -> 'repeat_distance')) <> 'number' THEN 'payload' || '.next_service' || '.repeat_distance' || ': expected number > 0 and <= 10000000, got ' || payload_got(((p -> 'next_service') -> 'repeat_distance')) WHEN (((p -> 'next_service') -> 'repeat_distance'))::numeric <= 0 OR (((p -> 'next_service') -> 'repeat_distance'))::numeric > 10000000 THEN 'payload' || '.next_service' || '.repeat_distance' || ': expected number > 0 and <= 10000000, got ' || payload_got(((p -> 'next_service') -> 'repeat_distance')) END) END,
    CASE WHEN ((p -> 'next_service') -> 'repeat_months') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof(((p -> 'next_service') -> 'repeat_months')) <> 'number' THEN 'payload' || '.next_service' || '.repeat_months' || ': expected integer from 1 to 600, got ' || payload_got(((p -> 'next_service') -> 'repeat_months')) WHEN (((p -> 'next_service') -> 'repeat_months'))::numeric <> trunc((((p -> 'next_service') -> 'repeat_months'))::numeric) OR (((p -> 'next_service') -> 'repeat_months'))::numeric < 1 OR (((p -> 'next_service') -> 'repeat_months'))::numeric > 600 THEN 'payload' || '.next_service' || '.repeat_months' || ': expected integer from 1 to 600, got ' || payload_got(((p -> 'next_service') -> 'repeat_months')) END) END,
    CASE WHEN NOT ((p -> 'next_service') ?| ARRAY['mileage', 'due_on', 'repeat_months', 'repeat_distance']::text[]) THEN 'payload' || '.next_service' || ': needs one of mileage, due_on, repeat_months, repeat_distance' END) END) END,
    CASE WHEN (p -> 'parts') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'parts')) <> 'array' THEN 'payload' || '.parts' || ': expected array of at most 200 items, got ' || payload_got((p -> 'parts')) WHEN jsonb_array_length((p -> 'parts')) > 200 THEN 'payload' || '.parts' || ': expected array of at most 200 items, got ' || jsonb_array_length((p -> 'parts')) || ' items' WHEN NOT ((p -> 'parts') @? '$[*].type() ? (@ != "object")' OR (p -> 'parts') @? '$[*] ? (@.type() != "object" || exists(@.keyvalue() ? (@.key != "name" && @.key != "part_number" && @.key != "quantity" && @.key != "unit_cost")) || !exists(@."name") || (exists(@."name") && (@."name".type() != "string" || !(@."name" like_regex "^.{0,200}$" flag "s"))) || (exists(@."part_number") && (@."part_number".type() != "string" || !(@."part_number" like_regex "^.{0,100}$" flag "s"))) || (exists(@."quantity") && (@."quantity".type() != "number" || @."quantity" <= 0 || @."quantity" > 100000)) || (exists(@."unit_cost") && (@."unit_cost".type() != "number" || @."unit_cost" < 0 || @."unit_cost" > 10000000)))') THEN NULL ELSE payload_items_1((p -> 'parts'), 'payload' || '.parts') END) END,
    CASE WHEN (p -> 'provider') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'provider')) <> 'object' THEN 'payload' || '.provider' || ': expected object, got ' || payload_got((p -> 'provider')) ELSE COALESCE(CASE WHEN ((p -> 'provider') - ARRAY['address', 'name', 'technician']::text[]) = '{}'::jsonb THEN NULL ELSE payload_unknown_key((p -> 'provider'), ARRAY['address', 'name', 'technician']::text[], 'payload' || '.provider', ': unknown field') END,
    CASE WHEN ((p -> 'provider') -> 'address') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof(((p -> 'provider') -> 'address')) <> 'string' THEN 'payload' || '.provider' || '.address' || ': expected string of at most 500 characters, got ' || payload_got(((p -> 'provider') -> 'address')) WHEN length((((p -> 'provider') -> 'address') #>> '{}')) > 500 THEN 'payload' || '.provider' || '.address' || ': expected string of at most 500 characters, got ' || length((((p -> 'provider') -> 'address') #>> '{}')) || ' characters' END) END,
    CASE WHEN ((p -> 'provider') -> 'name') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof(((p -> 'provider') -> 'name')) <> 'string' THEN 'payload' || '.provider' || '.name' || ': expected string of at most 200 characters, got ' || payload_got(((p -> 'provider') -> 'name')) WHEN length((((p -> 'provider') -> 'name') #>> '{}')) > 200 THEN 'payload' || '.provider' || '.name' || ': expected string of at most 200 characters, got ' || length((((p -> 'provider') -> 'name') #>> '{}')) || ' characters' END) END,
    CASE WHEN ((p -> 'provider') -> 'technician') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof(((p -> 'provider') -> 'technician')) <> 'string' THEN 'payload' || '.provider' || '.technician' || ': expected string of at most 200 characters, got ' || payload_got(((p -> 'provider') -> 'technician')) WHEN length((((p -> 'provider') -> 'technician') #>> '{}')) > 200 THEN 'payload' || '.provider' || '.technician' || ': expected string of at most 200 characters, got ' || length((((p -> 'provider') -> 'technician') #>> '{}')) || ' characters' END) END) END) END,
    CASE WHEN (p -> 'service_type') IS NULL THEN 'payload' || '.service_type' || ': is required' ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'service_type')) <> 'string' THEN 'payload' || '.service_type' || ': expected string of at most 100 characters, got ' || payload_got((p -> 'service_type')) WHEN length(((p -> 'service_type') #>> '{}')) > 100 THEN 'payload' || '.service_type' || ': expected string of at most 100 characters, got ' || length(((p -> 'service_type') #>> '{}')) || ' characters' END) END,
    CASE WHEN (p -> 'total') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'total')) <> 'number' THEN 'payload' || '.total' || ': expected number from 0 to 10000000, got ' || payload_got((p -> 'total')) WHEN ((p -> 'total'))::numeric < 0 OR ((p -> 'total'))::numeric > 10000000 THEN 'payload' || '.total' || ': expected number from 0 to 10000000, got ' || payload_got((p -> 'total')) END, CASE WHEN NOT (p ? 'currency') THEN 'payload' || '.total' || ': needs ' || 'payload' || '.currency' END) END) END
$$;

CREATE OR REPLACE FUNCTION payload_problem_odometer(p jsonb) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN (jsonb_typeof(p) = 'object'
      AND (p - ARRAY['ocr_confidence', 'photo_url', 'source', 'extra']::text[]) = '{}'::jsonb
      AND (NOT (p ? 'extra') OR jsonb_typeof(p -> 'extra') = 'object')
      AND p ? 'source'
      AND coalesce((p -> 'ocr_confidence') >= '0'::jsonb AND (p -> 'ocr_confidence') <= '100'::jsonb AND (p ->> 'ocr_confidence') ~ '^-?[0-9]+$', NOT (p ? 'ocr_confidence'))
      AND coalesce(jsonb_typeof((p -> 'photo_url')) = 'string' AND (p ->> 'photo_url') ~ '^[A-Za-z][A-Za-z0-9+.-]*://[^ 	
]+$', NOT (p ? 'photo_url'))
      AND coalesce((p ->> 'source') = ANY (ARRAY['manual', 'photo_ocr', 'telematics']::text[]), NOT (p ? 'source'))) THEN NULL
    WHEN jsonb_typeof(p) <> 'object' THEN 'payload: expected object, got ' || payload_got(p)
    ELSE COALESCE(CASE WHEN (p - ARRAY['ocr_confidence', 'photo_url', 'source', 'extra']::text[]) = '{}'::jsonb THEN NULL ELSE payload_unknown_key(p, ARRAY['ocr_confidence', 'photo_url', 'source', 'extra']::text[], 'payload', ': unknown field (put free-form fields under payload.extra)') END,
    CASE WHEN jsonb_typeof(p -> 'extra') <> 'object' THEN 'payload' || '.extra: expected object, got ' || payload_got(p -> 'extra') END,
    CASE WHEN (p -> 'ocr_confidence') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'ocr_confidence')) <> 'number' THEN 'payload' || '.ocr_confidence' || ': expected integer from 0 to 100, got ' || payload_got((p -> 'ocr_confidence')) WHEN ((p -> 'ocr_confidence'))::numeric <> trunc(((p -> 'ocr_confidence'))::numeric) OR ((p -> 'ocr_confidence'))::numeric < 0 OR ((p -> 'ocr_confidence'))::numeric > 100 THEN 'payload' || '.ocr_confidence' || ': expected integer from 0 to 100, got ' || payload_got((p -> 'ocr_confidence')) END) END,
    CASE WHEN (p -> 'photo_url') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'photo_url')) <> 'string' THEN 'payload' || '.photo_url' || ': expected URL, got ' || payload_got((p -> 'photo_url')) WHEN ((p -> 'photo_url') #>> '{}') !~ '^[A-Za-z][A-Za-z0-9+.-]*://[^ \t\n\r\f\v]+$' THEN 'payload' || '.photo_url' || ': expected URL, got ' || payload_got((p -> 'photo_url')) END) END,
    CASE WHEN (p -> 'source') IS NULL THEN 'payload' || '.source' || ': is required' ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'source')) <> 'string' THEN 'payload' || '.source' || ': expected one of manual, photo_ocr, telematics, got ' || payload_got((p -> 'source')) WHEN NOT (((p -> 'source') #>> '{}') = ANY (ARRAY['manual', 'photo_ocr', 'telematics']::text[])) THEN 'payload' || '.source' || ': expected one of manual, photo_ocr, telematics, got ' || payload_got((p -> 'source')) END) END) END
$$;

CREATE OR REPLACE FUNCTION payload_problem_reminder(p jsonb) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN (jsonb_typeof(p) = 'object'
      AND (p - ARRAY['due_mileage', 'due_on', 'title', 'extra']::text[]) = '{}'::jsonb
      AND (NOT (p ? 'extra') OR jsonb_typeof(p -> 'extra') = 'object')
      AND p ? 'title'
      AND coalesce((p -> 'due_mileage') >= '0'::jsonb AND (p -> 'due_mileage') <= '100000000'::jsonb, NOT (p ? 'due_mileage'))
      AND coalesce(jsonb_typeof((p -> 'due_on')) = 'string' AND payload_valid_date((p ->> 'due_on')), NOT (p ? 'due_on'))
      AND coalesce(jsonb_typeof((p -> 'title')) = 'string' AND length((p ->> 'title')) <= 200, NOT (p ? 'title'))
      AND p ?| ARRAY['due_on', 'due_mileage']::text[]) THEN NULL
    WHEN jsonb_typeof(p) <> 'object' THEN 'payload: expected object, got ' || payload_got(p)
    ELSE COALESCE(CASE WHEN (p - ARRAY['due_mileage', 'due_on', 'title', 'extra']::text[]) = '{}'::jsonb THEN NULL ELSE payload_unknown_key(p, ARRAY['due_mileage', 'due_on', 'title', 'extra']::text[], 'payload', ': unknown field (put free-form fields under payload.extra)') END,
    CASE WHEN jsonb_typeof(p -> 'extra') <> 'object' THEN 'payload' || '.extra: expected object, got ' || payload_got(p -> 'extra') END,
    CASE WHEN (p -> 'due_mileage') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'due_mileage')) <> 'number' THEN 'payload' || '.due_mileage' || ': expected number from 0 to 100000000, got ' || payload_got((p -> 'due_mileage')) WHEN ((p -> 'due_mileage'))::numeric < 0 OR ((p -> 'due_mileage'))::numeric > 100000000 THEN 'payload' || '.due_mileage' || ': expected number from 0 to 100000000, got ' || payload_got((p -> 'due_mileage')) END) END,
    CASE WHEN (p -> 'due_on') IS NULL THEN NULL ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'due_on')) <> 'string' THEN 'payload' || '.due_on' || ': expected date (YYYY-MM-DD), got ' || payload_got((p -> 'due_on')) WHEN NOT payload_valid_date(((p -> 'due_on') #>> '{}')) THEN 'payload' || '.due_on' || ': expected date (YYYY-MM-DD), got ' || payload_got((p -> 'due_on')) END) END,
    CASE WHEN (p -> 'title') IS NULL THEN 'payload' || '.title' || ': is required' ELSE COALESCE(CASE WHEN jsonb_typeof((p -> 'title')) <> 'string' THEN 'payload' || '.title' || ': expected string of at most 200 characters, got ' || payload_got((p -> 'title')) WHEN length(((p -> 'title') #>> '{}')) > 200 THEN 'payload' || '.title' || ': expected string of at most 200 characters, got ' || length(((p -> 'title') #>> '{}')) || ' characters' END) END,
    CASE WHEN NOT (p ?| ARRAY['due_on', 'due_mileage']::text[]) THEN 'payload' || ': needs one of due_on, due_mileage' END) END
$$;

-- Any type, inlined whole: for checking many rows in one statement.
CREATE OR REPLACE FUNCTION payload_problem(type text, p jsonb) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT CASE type
    WHEN 'damage' THEN payload_problem_damage(p)
    WHEN 'document' THEN payload_problem_document(p)
    WHEN 'fuel' THEN payload_problem_fuel(p)
    WHEN 'inspection' THEN payload_problem_inspection(p)
    WHEN 'maintenance' THEN payload_problem_maintenance(p)
    WHEN 'odometer' THEN payload_problem_odometer(p)
    WHEN 'reminder' THEN payload_problem_reminder(p)
    ELSE 'type: unknown event type ' || to_jsonb(left(type, 64))::text
  END
$$;

-- Any type, one row at a time: only the row's type's rules are prepared,
-- which is cheaper than the whole expression for a statement of a few rows.
CREATE OR REPLACE FUNCTION payload_problem_row(type text, p jsonb) RETURNS text
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
  IF type = 'damage' THEN RETURN payload_problem_damage(p); END IF;
  IF type = 'document' THEN RETURN payload_problem_document(p); END IF;
  IF type = 'fuel' THEN RETURN payload_problem_fuel(p); END IF;
  IF type = 'inspection' THEN RETURN payload_problem_inspection(p); END IF;
  IF type = 'maintenance' THEN RETURN payload_problem_maintenance(p); END IF;
  IF type = 'odometer' THEN RETURN payload_problem_odometer(p); END IF;
  IF type = 'reminder' THEN RETURN payload_problem_reminder(p); END IF;
  RETURN 'type: unknown event type ' || to_jsonb(left(type, 64))::text;
END
$$;

ALTER TABLE vehicle_events DROP CONSTRAINT IF EXISTS vehicle_events_type_check;
ALTER TABLE vehicle_events ADD CONSTRAINT vehicle_events_type_check
  CHECK (type = ANY (ARRAY['damage', 'document', 'fuel', 'inspection', 'maintenance', 'odometer', 'reminder']::text[]));
DROP FUNCTION payload_document();
