--- The event row as the Lua layer's SQL needs it, derived from the one
-- definition in the C core (src/event.c): its columns in order and their
-- types. The staging table of imports, the INSERT column lists, the
-- recordset type list of the timeline API and the column list of exports
-- (whose JSON the C core writes from the same definition) are all built
-- here, so a new column is added in one place.
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

--- "id uuid, vehicle_id uuid, ...": a column definition list (recordsets;
-- times_as_text: the times as text, for a CSV's times without a zone,
-- which the session's time zone reads when they are cast).
function M.typed_columns(times_as_text)
  return map(function(f) return f.name .. " " .. (times_as_text and f.type == "timestamptz" and "text" or f.type) end)
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

return M
