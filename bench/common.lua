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

--- best(fn) -> the least of 7 runs of fn, in seconds: for the in-process
-- codec figures, whose single runs last milliseconds and whose ratios a
-- stray scheduling delay on one side would otherwise move by a tenth. Each
-- run starts after a full garbage collection, so no run pays for the
-- garbage of the one before (or of the other side of a ratio).
function M.best(fn)
  local least = math.huge
  for _ = 1, 7 do
    collectgarbage()
    least = math.min(least, (M.timed(fn)))
  end
  return least
end

--- best_pair(a, b) -> best of a, best of b, their runs alternating: a ratio
-- of the two is then measured over the same stretch of the machine's time.
function M.best_pair(a, b)
  local la, lb = math.huge, math.huge
  for _ = 1, 7 do
    collectgarbage()
    la = math.min(la, (M.timed(a)))
    collectgarbage()
    lb = math.min(lb, (M.timed(b)))
  end
  return la, lb
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

--- app_connect(db, opts) -> a connection to db's schema as the application
-- role (the one settings names), to which the tables' policies apply; opts
-- adds connect options (e.g. field_key).
function M.app_connect(db, opts)
  local motomind = require "motomind"
  local o = { schema = db:schema(),
    user = motomind.assert(db:value("SELECT value FROM settings WHERE key = 'app_role'")) }
  for k, v in pairs(opts or {}) do o[k] = v end
  return motomind.assert(motomind.connect(nil, o))
end

--- generator(seed) -> rand(n), 0 <= rand(n) < n: Park-Miller, exact in
-- doubles, so the same data under Lua 5.4 and LuaJIT.
function M.generator(seed)
  return function(n) seed = seed * 48271 % 2147483647 return seed % n end
end

--- history(f, vehicles, n, rand): writes n events as JSON lines to file f,
-- one vehicle's history after another (ceil(n / #vehicles) each, from
-- 2020): fuel fills, odometer readings, every tenth a service.
function M.history(f, vehicles, n, rand)
  local per_vehicle = math.ceil(n / #vehicles)
  local written = 0
  for _, v in ipairs(vehicles) do
    local t, mileage = 1577836800 + rand(86400), 10000 + rand(50000)
    for i = 1, per_vehicle do
      if written == n then return end
      t = t + 3600 * (20 + rand(40))
      mileage = mileage + 20 + rand(400)
      local at = os.date("!%Y-%m-%dT%H:%M:%SZ", t)
      local line
      if i % 10 == 0 then
        line = ('{"vehicle_id":"%s","type":"maintenance","occurred_at":"%s","mileage":%d,"payload":{"service_type":"oil_change","total":%d.%02d,"currency":"USD","provider":{"name":"Quick Lube","technician":"Sam"},"parts":[{"name":"filter","quantity":1,"unit_cost":9.5}]}}')
          :format(v, at, mileage, 50 + rand(100), rand(100))
      elseif i % 4 == 0 then
        line = ('{"vehicle_id":"%s","type":"odometer","occurred_at":"%s","mileage":%d,"payload":{"source":"photo_ocr","ocr_confidence":%d,"photo_url":"s3://bucket/odo/%d.jpg"}}')
          :format(v, at, mileage, 60 + rand(40), i)
      else
        line = ('{"vehicle_id":"%s","type":"fuel","occurred_at":"%s","mileage":%d,"payload":{"volume":%d.%d,"unit":"l","price_per_unit":1.%03d,"total":%d.%02d,"currency":"EUR","full":%s,"station":"Shell Hauptstrasse %d","fuel_type":"diesel"}}')
          :format(v, at, mileage, 20 + rand(40), rand(10), rand(1000), 30 + rand(70), rand(100),
                  rand(10) > 0 and "true" or "false", rand(200))
      end
      f:write(line, "\n")
      written = written + 1
    end
  end
end

--- machine() -> what the figures were measured on: "N cores, N GiB; psql ..."
function M.machine()
  local fh = io.popen("echo \"$(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB\"; psql --version | head -1")
  local text = fh:read("*a"):gsub("\n", "; ")
  fh:close()
  return text
end

--- figures() -> add(what, value, note), rows(): a bench's results, and
-- them as the rows of its markdown table (header included).
function M.figures()
  local list = {}
  local function add(what, value, note) list[#list + 1] = { what, value, note or "" } end
  local function rows()
    local lines = { "| figure | value | notes |", "|---|---|---|" }
    for _, r in ipairs(list) do lines[#lines + 1] = ("| %s | %s | %s |"):format(r[1], r[2], r[3]) end
    return table.concat(lines, "\n")
  end
  return add, rows
end

--- latencies(n, fn) -> n timings of fn in ms, sorted.
function M.latencies(n, fn)
  local lat = {}
  for i = 1, n do lat[i] = M.timed(function() return fn(i) end) * 1000 end
  table.sort(lat)
  return lat
end

return M
