-- What the benches share: a wall clock, timing, their schemas, and their
-- sections of bench/RESULTS.md.
local M = {}

-- The wall clock in seconds, to the microsecond (LuaSocket). It was once
-- `date +%s.%N` through popen: spawning it added ~3 ms to every timing,
-- which inflated sub-10 ms figures and pulled their ratios toward 1.
M.now = require("socket").gettime

--- timed(fn) -> seconds, fn's results.
function M.timed(fn)
  local t0 = M.now()
  local a, b, c, d = fn()
  return M.now() - t0, a, b, c, d
end

--- p50(fn) -> the median of 11 runs of fn, in ms.
function M.p50(fn)
  local lat = {}
  for i = 1, 11 do lat[i] = M.timed(fn) * 1000 end
  table.sort(lat)
  return lat[6]
end

--- Puts text (which starts and ends with the <!-- name --> markers) in
-- bench/RESULTS.md under root, in place of the previous one or at the end.
function M.write_section(root, name, text)
  local path = root .. "/bench/RESULTS.md"
  local fh = io.open(path, "rb")
  local old = fh and fh:read("*a") or ""
  if fh then fh:close() end
  local new = old:find("<!-- " .. name .. " -->", 1, true)
    and old:gsub("<!%-%- " .. name .. " %-%->.-<!%-%- /" .. name .. " %-%->", function() return text end)
    or old .. "\n" .. text .. "\n"
  fh = assert(io.open(path, "wb"))
  fh:write(new)
  fh:close()
end

--- drop(db): drops the connection's bench schema and its companions (the
-- private schema of the feed and policies, the archive).
function M.drop(db)
  for _, suffix in ipairs { "", "_private", "_archive" } do
    db:exec("DROP SCHEMA IF EXISTS " .. db:escape_identifier(db:schema() .. suffix) .. " CASCADE")
  end
end

--- fresh(schema) -> an owner connection (maintenance mode) to a new,
-- migrated schema of that name (an earlier one dropped first).
function M.fresh(schema)
  local motomind = require "motomind"
  local db = motomind.assert(motomind.connect(nil, { schema = schema, maintenance = true }))
  M.drop(db)
  motomind.assert(db:migrate())
  return db
end

return M
