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
local helpers -- generated helper functions, during generate()

local function jp_string(s) return '"' .. tostring(s):gsub('[\\"]', "\\%0") .. '"' end

local function regex_ok(at, re) return ("%s like_regex %s"):format(at, jp_string(re)) end

local JSON_TYPE = { number = "number", integer = "number", string = "string", date = "string",
                    boolean = "boolean", object = "object", array = "array" }

--- A JSONPath test for "some item of the array at `at` breaks spec", wrapped
-- by fmt. Lax mode unwraps array items inside filters, but not for .type(),
-- so the item types are tested on their own first.
function M.bad_items_jsonpath(items, at, fmt)
  return fmt:format(("%s[*].type() ? (@ != %s)"):format(at, jp_string(JSON_TYPE[items.type]))) .. " || " ..
         fmt:format(("%s[*] ? (%s)"):format(at, M.bad_jsonpath(items, "@")))
end

--- A JSONPath predicate, true when the value at `at` breaks spec: the fast
-- path for array items (the same rules as value_check, as a yes/no).
function M.bad_jsonpath(spec, at)
  local t, bad = spec.type, {}
  local function add(x) bad[#bad + 1] = x end
  if t == "number" or t == "integer" then
    add(at .. '.type() != "number"')
    if t == "integer" then add(at .. ".floor() != " .. at) end
    if spec.min then add(at .. (spec.exclusive_min and " <= " or " < ") .. number_text(spec.min)) end
    if spec.max then add(at .. " > " .. number_text(spec.max)) end
  elseif t == "string" then
    add(at .. '.type() != "string"')
    if spec.enum then
      local alts = {}
      for i, e in ipairs(spec.enum) do alts[i] = at .. " == " .. jp_string(e) end
      add("!(" .. table.concat(alts, " || ") .. ")")
    end
    if spec.format == "currency" then add("!(" .. regex_ok(at, "^[A-Z]{3}$") .. ")") end
    if spec.format == "url" then
      add("!(" .. regex_ok(at, "^[A-Za-z][A-Za-z0-9+.-]*://[^ \t\n\r\f\v]+$") .. ")")
    end
    if spec.max_length then
      assert(spec.max_length <= 255, "payload schema: max_length above 255 inside an array")
      add("!(" .. regex_ok(at, ("^.{0,%d}$"):format(spec.max_length)) .. ' flag "s")')
    end
  elseif t == "boolean" then
    add(at .. '.type() != "boolean"')
  elseif t == "object" then
    add(at .. '.type() != "object"')
    local names = sorted_keys(spec.fields)
    local others = {}
    for i, n in ipairs(names) do others[i] = "@.key != " .. jp_string(n) end
    add(("exists(%s.keyvalue() ? (%s))"):format(at, table.concat(others, " && ")))
    for _, n in ipairs(spec.required or {}) do add(("!exists(%s.%s)"):format(at, jp_string(n))) end
    for _, n in ipairs(names) do
      local f, fat = spec.fields[n], at .. "." .. jp_string(n)
      add(("(exists(%s) && (%s))"):format(fat, M.bad_jsonpath(f, fat)))
      for _, r in ipairs(f.requires or {}) do
        add(("(exists(%s) && !exists(%s.%s))"):format(fat, at, jp_string(r)))
      end
    end
    if spec.any_of then
      local alts = {}
      for i, n in ipairs(spec.any_of) do alts[i] = ("exists(%s.%s)"):format(at, jp_string(n)) end
      add("!(" .. table.concat(alts, " || ") .. ")")
    end
  elseif t == "array" then
    add(at .. '.type() != "array"')
    if spec.max_items then add(("%s.size() > %d"):format(at, spec.max_items)) end
    add(M.bad_items_jsonpath(spec.items, at, "exists(%s)"))
  else
    error("payload schema: " .. tostring(t) .. " is not supported inside an array")
  end
  return table.concat(bad, " || ")
end

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
    -- Fast path: a JSONPath test for any bad item; the helper that names
    -- the first bad item (a sub-select) runs only when there is one.
    when(("NOT (%s @? %s OR %s @? %s)"):format(v, lit(("$[*].type() ? (@ != %s)"):format(jp_string(JSON_TYPE[spec.items.type]))),
      v, lit("$[*] ? (" .. M.bad_jsonpath(spec.items, "@") .. ")")), "NULL")
    local helper = ("payload_items_%d"):format(#helpers + 1)
    helpers[#helpers + 1] = false -- reserve the name before nested arrays take theirs
    local item = value_check(spec.items, "a.v", "path || '[' || a.i || ']'", depth + 1)
    helpers[tonumber(helper:match("%d+$"))] = ([[
CREATE OR REPLACE FUNCTION %s(v jsonb, path text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
  SELECT s.m FROM (SELECT a.i, %s AS m FROM jsonb_array_elements(v) WITH ORDINALITY AS a(v, i)) s
   WHERE s.m IS NOT NULL ORDER BY s.i LIMIT 1
$$;
]]):format(helper, item)
    return ("CASE %s ELSE %s(%s, %s) END"):format(table.concat(whens, " "), helper, v, path)
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
    ("CASE WHEN (%s - %s) = '{}'::jsonb THEN NULL ELSE payload_unknown_key(%s, %s, %s, %s) END")
      :format(v, array_sql(allowed), v, array_sql(allowed), path, lit(hint)),
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
LANGUAGE sql STABLE PARALLEL SAFE AS $$
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
           WHEN (substr(s, 1, 4)::int %% 4 = 0 AND substr(s, 1, 4)::int %% 100 <> 0)
             OR substr(s, 1, 4)::int %% 400 = 0 THEN 29
           ELSE 28 END
  END
$$;
]]):format(GOT_MAX_CHARS, GOT_MAX_CHARS)

local function jsonb_lit(v) return lit(core.json_encode(v)) .. "::jsonb" end

-- Whether only a JSON string's text (->>) can equal a member of enum: each
-- begins with a letter and is not true or false (the text of a number,
-- object or array begins otherwise; a JSON null reads as NULL).
local function text_only(enum)
  for _, e in ipairs(enum) do
    if not e:match("^%a") or e == "true" or e == "false" then return false end
  end
  return true
end

--- A cheap test that field `name` of the object o (SQL jsonb) certainly
-- meets spec: no casts, nothing that can raise, so evaluation order does not
-- matter. It may say false for a valid value (the exact checks then decide)
-- but never true for an invalid one; the parity specs hold it to that. Text
-- is read with ->> (one lookup; o -> name #>> '{}' built a jsonb value
-- first). NULL when the field is absent, or is a JSON null read as text.
local function fast_value(spec, o, name)
  local v, text = ("(%s -> %s)"):format(o, lit(name)), ("(%s ->> %s)"):format(o, lit(name))
  local t = spec.type
  if t == "number" or t == "integer" then
    -- jsonb orders types Null < String < Number < Boolean < Array < Object, so
    -- a value between two numbers is a number in that range.
    local parts = {}
    parts[#parts + 1] = ("%s %s %s"):format(v, spec.exclusive_min and ">" or ">=", jsonb_lit(spec.min or -1e300))
    parts[#parts + 1] = ("%s <= %s"):format(v, jsonb_lit(spec.max or 1e300))
    if t == "integer" then parts[#parts + 1] = ("%s ~ '^-?[0-9]+$'"):format(text) end
    return table.concat(parts, " AND ")
  elseif t == "string" then
    if spec.enum then
      if text_only(spec.enum) then return ("%s = ANY (%s)"):format(text, array_sql(spec.enum)) end
      local alts = {}
      for i, e in ipairs(spec.enum) do alts[i] = lit(core.json_encode(e)) end
      return ("%s = ANY (ARRAY[%s]::jsonb[])"):format(v, table.concat(alts, ", "))
    end
    local parts = { ("jsonb_typeof(%s) = 'string'"):format(v) }
    if spec.format == "currency" then parts[#parts + 1] = ("%s ~ '^[A-Z]{3}$'"):format(text) end
    if spec.format == "url" then
      parts[#parts + 1] = ("%s ~ '^[A-Za-z][A-Za-z0-9+.-]*://[^ \t\n\r\f\v]+$'"):format(text)
    end
    if spec.max_length then parts[#parts + 1] = ("length(%s) <= %d"):format(text, spec.max_length) end
    return table.concat(parts, " AND ")
  elseif t == "boolean" then
    return ("jsonb_typeof(%s) = 'boolean'"):format(v)
  elseif t == "date" then
    return ("jsonb_typeof(%s) = 'string' AND payload_valid_date(%s)"):format(v, text)
  elseif t == "array" then
    return ("%s = '[]'::jsonb"):format(v) -- items are left to the exact checks
  end
  return M.fast_object(spec, v, false)
end

function M.fast_object(spec, v, top)
  local names = sorted_keys(spec.fields)
  local allowed = {}
  for i, n in ipairs(names) do allowed[i] = n end
  if top then allowed[#allowed + 1] = "extra" end
  local parts = { ("jsonb_typeof(%s) = 'object'"):format(v),
                  ("(%s - %s) = '{}'::jsonb"):format(v, array_sql(allowed)) }
  if top then
    parts[#parts + 1] = ("(NOT (%s ? 'extra') OR jsonb_typeof(%s -> 'extra') = 'object')"):format(v, v)
  end
  for _, n in ipairs(spec.required or {}) do parts[#parts + 1] = ("%s ? %s"):format(v, lit(n)) end
  for _, n in ipairs(names) do
    -- A NULL test is true for an absent field, false for a JSON null.
    local f = spec.fields[n]
    parts[#parts + 1] = ("coalesce(%s, NOT (%s ? %s))"):format(fast_value(f, v, n), v, lit(n))
    for _, r in ipairs(f.requires or {}) do
      parts[#parts + 1] = ("(%s ? %s OR NOT (%s ? %s))"):format(v, lit(r), v, lit(n))
    end
  end
  if spec.any_of then parts[#parts + 1] = ("%s ?| %s"):format(v, array_sql(spec.any_of)) end
  return "(" .. table.concat(parts, "\n      AND ") .. ")"
end

--- The SQL that installs the rules for a decoded schema document.
function M.generate(schemas, document)
  local types = sorted_keys(schemas)
  local whens = {}
  helpers = {}
  local per_type, dispatch = {}, {}
  for _, t in ipairs(types) do
    local fn = "payload_problem_" .. t
    per_type[#per_type + 1] = ("CREATE OR REPLACE FUNCTION %s(p jsonb) RETURNS text\n" ..
      "LANGUAGE sql STABLE PARALLEL SAFE AS $$\n  SELECT CASE\n    WHEN %s THEN NULL\n" ..
      "    WHEN jsonb_typeof(p) <> 'object' THEN 'payload: expected object, got ' || payload_got(p)\n" ..
      "    ELSE %s END\n$$;\n"):format(fn, M.fast_object(schemas[t], "p", true),
      object_checks(schemas[t], "p", "'payload'", true, 1))
    whens[#whens + 1] = ("    WHEN %s THEN %s(p)"):format(lit(t), fn)
    dispatch[#dispatch + 1] = ("  IF type = %s THEN RETURN %s(p); END IF;"):format(lit(t), fn)
  end
  return table.concat {
    "-- GENERATED from sql/payloads.json by tools/gen-payload-migration: do not edit.\n",
    "-- Payload rules, mirroring the C codec (src/payload.c) check for check.\n\n",
    HELPERS, "\n",
    "-- The first bad item of each array field, by index (only called when there is one).\n",
    table.concat(helpers, "\n"), "\n",
    "-- Per type: NULL when the payload is valid, else what is wrong. Free of\n",
    "-- sub-selects, so PostgreSQL inlines them into set-based checks; a cheap\n",
    "-- test passes valid payloads before the exact checks run.\n",
    table.concat(per_type, "\n"), "\n",
    "-- Any type, inlined whole: for checking many rows in one statement.\n",
    "CREATE OR REPLACE FUNCTION payload_problem(type text, p jsonb) RETURNS text\n",
    "LANGUAGE sql STABLE PARALLEL SAFE AS $$\n",
    "  SELECT CASE type\n",
    table.concat(whens, "\n"), "\n",
    "    ELSE 'type: unknown event type ' || to_jsonb(left(type, 64))::text\n",
    "  END\n$$;\n\n",
    "-- Any type, one row at a time: only the row's type's rules are prepared,\n",
    "-- which is cheaper than the whole expression for a statement of a few rows.\n",
    "CREATE OR REPLACE FUNCTION payload_problem_row(type text, p jsonb) RETURNS text\n",
    "LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$\nBEGIN\n",
    table.concat(dispatch, "\n"), "\n",
    "  RETURN 'type: unknown event type ' || to_jsonb(left(type, 64))::text;\nEND\n$$;\n\n",
    "-- The schema document itself, for the same rules in C inside the database\n",
    "-- (payload_problem_native, when the motomind_pg library is installed).\n",
    "CREATE OR REPLACE FUNCTION payload_document() RETURNS text\n",
    "LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$\n  SELECT ", lit(document), "::text\n$$;\n\n",
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
