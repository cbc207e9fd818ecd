--- A CSV layout of one's own: a spec of the kind formats.lua writes for the
-- built-in formats (compiled and run in C, src/csv.c), read from a JSON or
-- Lua file and checked before any byte of the data is read. Unlike the
-- built-in specs, every column of a layout must be in the file's header
-- unless it says `optional = true`: a misspelt header is one error naming
-- the column, not a file of events without their mileage.
local motomind = require "motomind"

local M = {}

-- The keys each level of a layout takes (what src/csv.c reads, and
-- `optional`).
local KEYS = {
  layout = { separator = true, decimal_comma = true, dates = true, sections = true, name = true, type = true,
    record = true, set = true, columns = true },
  section = { name = true, type = true, record = true, set = true, columns = true },
  column = { names = true, to = true, as = true, required = true, optional = true, set = true, empty = true, map = true },
}

-- Refuses a key the level does not take, naming where it is.
local function known_keys(t, kind, where)
  if type(t) ~= "table" then motomind.raise(("%s: expected an object"):format(where), "22023") end
  for k in pairs(t) do
    if not KEYS[kind][k] then
      local valid = {}
      for v in pairs(KEYS[kind]) do valid[#valid + 1] = v end
      table.sort(valid)
      motomind.raise(("%s: unknown key %q (valid: %s)"):format(where, tostring(k), table.concat(valid, ", ")), "22023")
    end
  end
end

-- The section's columns, each required in the header unless optional.
local function section(s, where)
  known_keys(s, where == "layout" and "layout" or "section", where)
  if s.columns == nil and s.record == nil and s.type == nil then return end -- a section that holds no events
  if type(s.columns) ~= "table" or #s.columns == 0 then
    motomind.raise(where .. ": columns: expected a list of columns", "22023")
  end
  for i, c in ipairs(s.columns) do
    local at = ("%s.columns[%d]"):format(where, i)
    known_keys(c, "column", at)
    if c.optional ~= nil and type(c.optional) ~= "boolean" then motomind.raise(at .. ".optional: expected true or false", "22023") end
    c.required = c.required or not c.optional -- (optional stays: checking again changes nothing)
  end
end

--- check(spec) -> the spec, ready for db:import's format (each column
-- required in the header unless optional) | raises a motomind error naming
-- the place of the first problem. The spec is changed in place.
function M.check(spec)
  section(spec, "layout")
  if spec.sections ~= nil then
    if type(spec.sections) ~= "table" then motomind.raise("layout.sections: expected a list of sections", "22023") end
    for i, s in ipairs(spec.sections) do section(s, ("layout.sections[%d]"):format(i)) end
  end
  return spec
end

--- load(path) -> the layout in the file (JSON, or Lua returning a table,
-- run with no access to anything), checked | nil, message, sqlstate.
function M.load(path)
  return motomind.try(function()
    local f, err = io.open(path, "rb")
    if not f then motomind.raise("layout: " .. err, "58030") end
    local text = f:read("*a")
    f:close()
    local spec
    if path:match("%.lua$") then
      local chunk, lerr = load(text, "@" .. path, "t", {})
      if not chunk then motomind.raise("layout: " .. lerr, "22023") end
      local ok, result = pcall(chunk)
      if not ok then motomind.raise("layout: " .. tostring(result), "22023") end
      spec = result
    else
      local jerr
      spec, jerr = motomind.json.decode(text)
      if spec == nil then motomind.raise(("layout: %s: not JSON (%s)"):format(path, tostring(jerr)), "22023") end
    end
    if type(spec) ~= "table" then motomind.raise(("layout: %s: expected an object (a table)"):format(path), "22023") end
    return M.check(spec)
  end)
end

return M
