--- A CSV layout of one's own: a spec of the kind formats.lua writes for the
-- built-in formats (compiled and run in C, src/csv.c), read from a JSON or
-- Lua file and checked before any byte of the data is read. Unlike the
-- built-in specs, every column of a layout must be in the file's header
-- unless it says `optional = true`: a misspelt header is one error naming
-- the column, not a file of events without their mileage.
local motomind = require "motomind"
local core = require "motomind.core"

local M = {}

--- check(spec) -> the spec, ready for db:import's format (each column
-- required in the header unless optional) | raises a motomind error naming
-- the place of the first problem (compiled by the C reader, which refuses
-- keys it does not take). The spec is changed in place.
function M.check(spec)
  local ok, err = pcall(core.csv_check, spec)
  if not ok then motomind.raise("layout: " .. tostring(err):gsub("^csv spec: ", ""), "22023") end
  for i, s in ipairs(spec.sections or { spec }) do
    for j, c in ipairs(s.columns or {}) do
      if c.optional ~= nil and type(c.optional) ~= "boolean" then
        motomind.raise(("layout: %scolumns[%d].optional: expected true or false"):format(
          spec.sections and ("sections[%d]."):format(i) or "", j), "22023")
      end
      c.required = c.required or not c.optional -- (optional stays: checking again changes nothing)
    end
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
