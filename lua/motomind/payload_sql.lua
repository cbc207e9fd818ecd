--- Generates the database's payload rules from the payload schema document
-- (sql/payloads.json), the same document the C codec interprets. The SQL
-- mirrors src/payload.c check for check and message for message:
--   payload_problem(type, payload) -> NULL when valid, else the message.
-- It is one SQL expression (an inlinable function), so validating a batch is
-- a set-based scan with no per-row procedural code.
local core = require "motomind.core"

local M = {}

local GOT_MAX_CHARS = 40

local function lit(s) return "'" .. tostring(s):gsub("'", "''") .. "'" end

local function sorted_keys(t)
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  return keys
end

-- Numbers as src/payload.c's format_number writes them.
local function number_text(n)
  if n == 0 then return "0" end
  if n == math.floor(n) and math.abs(n) < 1e15 then return ("%.0f"):format(n) end
  for p = 15, 17 do
    local s = ("%." .. p .. "g"):format(n)
    if tonumber(s) == n then return s end
  end
end

local function array_sql(list)
  local parts = {}
  for i, v in ipairs(list) do parts[i] = lit(v) end
  return "ARRAY[" .. table.concat(parts, ", ") .. "]::text[]"
end

-- What a spec expects, as src/payload.c's describe_spec says it.
local function describe(spec)
  local t = spec.type
  if t == "number" or t == "integer" then
    local min, max = spec.min and number_text(spec.min), spec.max and number_text(spec.max)
    if min and max and spec.exclusive_min then return ("%s > %s and <= %s"):format(t, min, max) end
    if min and max then return ("%s from %s to %s"):format(t, min, max) end
    if min then return ("%s %s %s"):format(t, spec.exclusive_min and ">" or ">=", min) end
    if max then return ("%s <= %s"):format(t, max) end
    return t
  elseif t == "string" and spec.enum then
    return "one of " .. table.concat(spec.enum, ", ")
  elseif t == "string" and spec.format then
    return spec.format == "currency" and "ISO 4217 currency code" or "URL"
  elseif t == "string" and spec.max_length then
    return ("string of at most %d characters"):format(spec.max_length)
  elseif t == "date" then
    return "date (YYYY-MM-DD)"
  elseif t == "array" and spec.max_items then
    return ("array of at most %d items"):format(spec.max_items)
  end
  return t
end

local object_checks

-- The problem with value v (SQL jsonb expression) at path (SQL text
-- expression), or NULL.
local function value_check(spec, v, path, depth)
  local expected = ("%s || %s || payload_got(%s)"):format(path, lit(": expected " .. describe(spec) .. ", got "), v)
  local text = "(" .. v .. " #>> '{}')"
  local t = spec.type
  local whens = {}
  local function when(cond, msg) whens[#whens + 1] = ("WHEN %s THEN %s"):format(cond, msg or expected) end
  if t == "number" or t == "integer" then
    when(("jsonb_typeof(%s) <> 'number'"):format(v))
    local num, bad = "(" .. v .. ")::numeric", {}
    if t == "integer" then bad[#bad + 1] = num .. " <> trunc(" .. num .. ")" end
    if spec.min then bad[#bad + 1] = num .. (spec.exclusive_min and " <= " or " < ") .. number_text(spec.min) end
    if spec.max then bad[#bad + 1] = num .. " > " .. number_text(spec.max) end
    if #bad > 0 then when(table.concat(bad, " OR ")) end
  elseif t == "string" then
    when(("jsonb_typeof(%s) <> 'string'"):format(v))
    if spec.enum then when(("NOT (%s = ANY (%s))"):format(text, array_sql(spec.enum))) end
    if spec.format == "currency" then when(text .. " !~ '^[A-Z]{3}$'") end
    if spec.format == "url" then
      when(text .. " !~ '^[A-Za-z][A-Za-z0-9+.-]*://[^ \\t\\n\\r\\f\\v]+$'")
    end
    if spec.max_length then
      when(("length(%s) > %d"):format(text, spec.max_length),
        ("%s || %s || length(%s) || ' characters'"):format(path,
          lit((": expected string of at most %d characters, got "):format(spec.max_length)), text))
    end
  elseif t == "boolean" then
    when(("jsonb_typeof(%s) <> 'boolean'"):format(v))
  elseif t == "date" then
    when(("jsonb_typeof(%s) <> 'string'"):format(v))
    when(("NOT payload_valid_date(%s)"):format(text))
  elseif t == "object" then
    when(("jsonb_typeof(%s) <> 'object'"):format(v))
    return ("CASE %s ELSE %s END"):format(table.concat(whens, " "), object_checks(spec, v, path, false, depth))
  elseif t == "array" then
    when(("jsonb_typeof(%s) <> 'array'"):format(v))
    if spec.max_items then
      when(("jsonb_array_length(%s) > %d"):format(v, spec.max_items),
        ("%s || %s || jsonb_array_length(%s) || ' items'"):format(path,
          lit((": expected array of at most %d items, got "):format(spec.max_items)), v))
    end
    local a = "a" .. depth
    local item = value_check(spec.items, a .. ".v", ("%s || '[' || %s.i || ']'"):format(path, a), depth + 1)
    return ("CASE %s ELSE (SELECT s.m FROM (SELECT %s.i, %s AS m FROM jsonb_array_elements(%s) " ..
            "WITH ORDINALITY AS %s(v, i)) s WHERE s.m IS NOT NULL ORDER BY s.i LIMIT 1) END")
      :format(table.concat(whens, " "), a, item, v, a)
  else
    error("payload schema: unknown type " .. tostring(t))
  end
  return ("CASE %s END"):format(table.concat(whens, " "))
end

-- COALESCE of an object's checks, in src/payload.c's check_object order.
function object_checks(spec, v, path, top, depth)
  local names = sorted_keys(spec.fields)
  local allowed = {}
  for i, n in ipairs(names) do allowed[i] = n end
  if top then allowed[#allowed + 1] = "extra" end
  local required = {}
  for _, n in ipairs(spec.required or {}) do required[n] = true end
  local hint = top and ": unknown field (put free-form fields under payload.extra)" or ": unknown field"
  local checks = {
    ("CASE WHEN (%s - %s) = '{}'::jsonb THEN NULL ELSE (SELECT %s || '.' || k || %s " ..
     "FROM jsonb_object_keys(%s) AS k WHERE k <> ALL (%s) ORDER BY k COLLATE \"C\" LIMIT 1) END")
      :format(v, array_sql(allowed), path, lit(hint), v, array_sql(allowed)),
  }
  if top then
    checks[#checks + 1] = ("CASE WHEN jsonb_typeof(%s -> 'extra') <> 'object' THEN %s || " ..
      "'.extra: expected object, got ' || payload_got(%s -> 'extra') END"):format(v, path, v)
  end
  for _, name in ipairs(names) do
    local f = spec.fields[name]
    local fv = ("(%s -> %s)"):format(v, lit(name))
    local fpath = ("%s || %s"):format(path, lit("." .. name))
    local parts = { value_check(f, fv, fpath, depth) }
    for _, r in ipairs(f.requires or {}) do
      parts[#parts + 1] = ("CASE WHEN NOT (%s ? %s) THEN %s || ': needs ' || %s || %s END")
        :format(v, lit(r), fpath, path, lit("." .. r))
    end
    checks[#checks + 1] = ("CASE WHEN %s IS NULL THEN %s ELSE COALESCE(%s) END"):format(
      fv, required[name] and (fpath .. " || ': is required'") or "NULL", table.concat(parts, ", "))
  end
  if spec.any_of then
    checks[#checks + 1] = ("CASE WHEN NOT (%s ?| %s) THEN %s || %s END"):format(
      v, array_sql(spec.any_of), path, lit(": needs one of " .. table.concat(spec.any_of, ", ")))
  end
  return "COALESCE(" .. table.concat(checks, ",\n    ") .. ")"
end

local HELPERS = ([[
-- Renders a JSON value for "got ..." in messages, as src/payload.c does.
CREATE OR REPLACE FUNCTION payload_got(v jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE jsonb_typeof(v)
    WHEN 'string' THEN to_jsonb(CASE WHEN length(v #>> '{}') > %d
                                     THEN left(v #>> '{}', %d) || '...' ELSE v #>> '{}' END)::text
    WHEN 'number' THEN CASE WHEN v::numeric = 0 THEN '0'
                            WHEN v::numeric = trunc(v::numeric) AND abs(v::numeric) < 1e15
                            THEN trunc(v::numeric)::text
                            ELSE v::numeric::float8::text END
    WHEN 'object' THEN 'object'
    WHEN 'array' THEN 'array'
    ELSE v::text END
$$;

-- true for a real calendar date written YYYY-MM-DD (year 1 or later).
CREATE OR REPLACE FUNCTION payload_valid_date(s text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE
    WHEN s !~ '^[0-9]{4}-[0-9]{2}-[0-9]{2}$' THEN false
    WHEN substr(s, 1, 4)::int < 1 OR substr(s, 6, 2)::int NOT BETWEEN 1 AND 12 THEN false
    ELSE substr(s, 9, 2)::int BETWEEN 1 AND
      CASE WHEN substr(s, 6, 2)::int IN (4, 6, 9, 11) THEN 30
           WHEN substr(s, 6, 2)::int <> 2 THEN 31
           WHEN (substr(s, 1, 4)::int %% 4 = 0 AND substr(s, 1, 4)::int %% 100 <> 0)
             OR substr(s, 1, 4)::int %% 400 = 0 THEN 29
           ELSE 28 END
  END
$$;
]]):format(GOT_MAX_CHARS, GOT_MAX_CHARS)

--- The SQL that installs the rules for a decoded schema document.
function M.generate(schemas)
  local types = sorted_keys(schemas)
  local whens = {}
  for _, t in ipairs(types) do
    whens[#whens + 1] = ("    WHEN type = %s THEN %s"):format(lit(t),
      object_checks(schemas[t], "p", "'payload'", true, 1))
  end
  return table.concat {
    "-- GENERATED from sql/payloads.json by tools/gen-payload-migration: do not edit.\n",
    "-- Payload rules, mirroring the C codec (src/payload.c) check for check.\n\n",
    HELPERS, "\n",
    "-- NULL when the payload is valid for the event type, else what is wrong.\n",
    "CREATE OR REPLACE FUNCTION payload_problem(type text, p jsonb) RETURNS text\n",
    "LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$\n",
    "  SELECT CASE\n",
    "    WHEN NOT (type = ANY (", array_sql(types), ")) THEN\n",
    "      'type: unknown event type ' || to_jsonb(left(type, 64))::text\n",
    "    WHEN jsonb_typeof(p) <> 'object' THEN 'payload: expected object, got ' || payload_got(p)\n",
    table.concat(whens, "\n"), "\n",
    "  END\n$$;\n\n",
    "ALTER TABLE vehicle_events DROP CONSTRAINT IF EXISTS vehicle_events_type_check;\n",
    "ALTER TABLE vehicle_events ADD CONSTRAINT vehicle_events_type_check\n",
    "  CHECK (type = ANY (", array_sql(types), "));\n",
  }
end

--- Reads and decodes the schema document.
function M.load(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return assert(core.json_decode(text)), text
end

return M
