--- The event row as the Lua layer's SQL needs it, derived from the one
-- definition in the C core (src/event.c): its columns in order and their
-- types. The staging table of imports, the INSERT column lists, the
-- recordset type list of the timeline API and the JSON object of exports
-- are all built here, so a new column is added in one place.
local core = require "motomind.core"

local M = {}

M.FIELDS = core.event_fields()

local function map(fn, sep)
  local out = {}
  for i, f in ipairs(M.FIELDS) do out[i] = fn(f) end
  return table.concat(out, sep or ", ")
end

--- "id, vehicle_id, ...": the event columns (alias-qualified when given).
function M.columns(alias)
  return map(function(f) return (alias and alias .. "." or "") .. f.name end)
end

--- "id uuid, vehicle_id uuid, ...": a column definition list (recordsets).
function M.typed_columns()
  return map(function(f) return f.name .. " " .. f.type end)
end

--- "line bigint, id text, ...": the import staging table's columns (COPY
-- rows are line number first, then every field as text, as src/import.c writes).
function M.staging_columns()
  return "line bigint, " .. map(function(f) return f.name .. " text" end)
end

--- "s.id::uuid, s.vehicle_id::uuid, ...": the staged texts cast to their types.
function M.casts(alias)
  return map(function(f) return ("%s.%s::%s"):format(alias, f.name, f.type) end)
end

--- The SQL expression of an event row (alias) as one JSON text, its fields
-- in column order and its NULL columns left out (a JSON null inside a jsonb
-- field is the user's data, and stays), spaced as jsonb prints (its jsonb
-- fields are printed by it): concat() skips the NULL that
-- `', "k": ' || NULL` is.
-- Written as text, not with jsonb_build_object + jsonb_strip_nulls + ::text,
-- which built, stripped and printed a jsonb value per row: an export of
-- 200,000 events spent 1.0 s on that, this 0.17 s (docs/design.md). A
-- value's text is its JSON as it is for a uuid (quoted: hex and dashes) and
-- a numeric (finite: migration 0034), to_json's for the others (text to
-- escape, times in ISO 8601). The first field is the key (never NULL), so
-- the text starts with it.
local JSON_TEXT = {
  jsonb = "%s.%s::text",
  uuid = [['"' || %s.%s::text || '"']],
  numeric = "%s.%s::text",
}

function M.json_object(alias)
  assert(M.FIELDS[1].name == "id", "the first event field is the id")
  return "concat(" .. map(function(f)
    local value = (JSON_TEXT[f.type] or "to_json(%s.%s)::text"):format(alias, f.name)
    return ("'%s\"%s\": ' || %s"):format(f.name == "id" and "{" or ", ", f.name, value)
  end) .. ", '}')"
end

return M
