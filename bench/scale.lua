-- make bench-scale [SCALE_EVENTS=10000000]: a node at scale. 1,000 tenants
-- of 20 vehicles each import their histories (JSON lines, the validated C
-- path, as the application role) one tenant after another; the same
-- figures are taken when a hundredth, a tenth and all of the events are in:
-- a vehicle's timeline page p50 / p99 (owner and application role), and the
-- table and index sizes per million events. At the end: maintain() after
-- the load and after 1,000 new events, the tenant feed page, a tenant's
-- due list and yearly report. A benchmark, not a test: it never fails on a
-- number. Writes its section of bench/RESULTS.md; BENCH_KEEP=1 keeps the
-- schema bench_scale.
local motomind = require "motomind"
local import = require "motomind.import"
local timeline = require "motomind.timeline"
local reminders = require "motomind.reminders"
local reports = require "motomind.reports"

local EVENTS = tonumber(os.getenv("SCALE_EVENTS") or 10000000)
local TENANTS, PER_TENANT = 1000, 20 -- vehicles per tenant
local ROOT = arg[0]:match("^(.*)/bench/[^/]*$") or "."

local common = require "bench.common"
local timed, latencies = common.timed, common.latencies
local rand = common.generator(7)
local function uuid(prefix, i) return ("%s-0000-4000-8000-%012d"):format(prefix, i) end

local db = common.fresh("bench_scale")
for y = 2020, 2026 do
  motomind.assert(db:query("SELECT create_event_partition($1, $2)", y .. "-01-01T00:00:00Z", (y + 1) .. "-01-01T00:00:00Z"))
end
-- every tenant, its owner and its vehicles, in three statements
motomind.assert(db:exec("INSERT INTO tenants (id, name) SELECT ('00000000-0000-4000-8000-' || lpad(t::text, 12, '0'))::uuid, " ..
  "'tenant ' || t FROM generate_series(1, $1) t", TENANTS))
motomind.assert(db:exec("INSERT INTO users (id, email) SELECT ('00000001-0000-4000-8000-' || lpad(t::text, 12, '0'))::uuid, " ..
  "'owner' || t || '@scale.example' FROM generate_series(1, $1) t", TENANTS))
motomind.assert(db:exec("INSERT INTO memberships (tenant_id, user_id, role) SELECT " ..
  "('00000000-0000-4000-8000-' || lpad(t::text, 12, '0'))::uuid, ('00000001-0000-4000-8000-' || lpad(t::text, 12, '0'))::uuid, " ..
  "'owner' FROM generate_series(1, $1) t", TENANTS))
motomind.assert(db:exec("INSERT INTO vehicles (tenant_id, id, nickname) SELECT " ..
  "('00000000-0000-4000-8000-' || lpad(t::text, 12, '0'))::uuid, " ..
  "('00000002-0000-4000-8000-' || lpad(((t - 1) * $2 + k)::text, 12, '0'))::uuid, 'v' || k " ..
  "FROM generate_series(1, $1) t, generate_series(1, $2) k", TENANTS, PER_TENANT))
local function ctx_of(t) return { tenant = uuid("00000000", t), user = uuid("00000001", t) } end
local function vehicles_of(t)
  local list = {}
  for k = 1, PER_TENANT do list[k] = uuid("00000002", (t - 1) * PER_TENANT + k) end
  return list
end

local app = common.app_connect(db)

local result, figure_rows = common.figures()

-- The events table's sizes (every partition): heap, indexes, TOAST.
local function sizes()
  return motomind.assert(db:row([[
    SELECT sum(pg_relation_size(c.oid))::bigint AS heap, sum(pg_indexes_size(c.oid))::bigint AS indexes,
           sum(pg_total_relation_size(c.oid) - pg_relation_size(c.oid) - pg_indexes_size(c.oid))::bigint AS toast,
           (SELECT sum(pg_total_relation_size(t.oid)) FROM pg_class t
             WHERE t.relnamespace = $2::regnamespace AND t.relkind IN ('r', 'm'))::bigint AS schema
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass]],
    db:qualify("vehicle_events"), db:escape_identifier(db:schema())))
end

local MB = 1024 * 1024
-- A vehicle page (50 events, decoded) of the loaded tenants' vehicles,
-- 300 times, as the owner and as the application role.
local function pages(events, tenants, when)
  for _, who in ipairs { { "owner", db }, { "application role", app } } do
    local lat = latencies(300, function(i)
      local t = (i * 7919) % tenants + 1
      return assert(timeline.page(who[2], ctx_of(t), { vehicle = vehicles_of(t)[i % PER_TENANT + 1], limit = 50 }))
    end)
    result(("timeline page at %d events%s, %s: p50 / p99"):format(events, when or "", who[1]),
      ("%.2f / %.2f ms"):format(lat[150], lat[297]), "50 events, decoded (goal < 1 / 3 ms, flat)")
  end
end

-- The sizes and the pages, right after a load (ANALYZE only).
local function checkpoint(events, tenants)
  motomind.assert(db:exec("ANALYZE"))
  local s = sizes()
  local per_million = events / 1e6
  result(("events table at %d events: heap / indexes / TOAST per million events"):format(events),
    ("%.0f / %.0f / %.0f MB"):format(s.heap / MB / per_million, s.indexes / MB / per_million, s.toast / MB / per_million),
    ("%.2f GB in all; the schema's tables %.2f GB"):format((s.heap + s.indexes + s.toast) / 1024 / MB, s.schema / 1024 / MB))
  pages(events, tenants)
end

-- The load: each tenant's history as one JSON-lines file, imported.
local file = os.tmpname()
local per_tenant_events = math.floor(EVENTS / TENANTS)
local marks = { [TENANTS // 100] = true, [TENANTS // 10] = true }
local t_import, loaded = 0, 0
for t = 1, TENANTS do
  local f = assert(io.open(file, "w"))
  common.history(f, vehicles_of(t), per_tenant_events, rand)
  f:close()
  local dt, report = timed(function() return motomind.assert(import.import(app, ctx_of(t), file, { progress = false })) end)
  assert(report.inserted == per_tenant_events, "tenant " .. t .. ": not every event was imported")
  t_import, loaded = t_import + dt, loaded + report.inserted
  if t % 50 == 0 then io.stderr:write(("\r%d events, %.0f s importing"):format(loaded, t_import)) end
  if marks[t] then checkpoint(loaded, t) end
end
io.stderr:write("\n")
os.remove(file)
result(("import of %d events, one file per tenant (%d files, application role)"):format(loaded, TENANTS),
  ("%.0f s"):format(t_import), ("%.1f µs an event"):format(t_import / loaded * 1e6))
checkpoint(loaded, TENANTS)
-- The steady state autovacuum reaches after a bulk load: hint bits set and
-- the visibility map written, so a page no longer dirties what it reads.
local t_vacuum = timed(function() return motomind.assert(db:exec("VACUUM (ANALYZE) vehicle_events")) end)
result(("VACUUM (ANALYZE) of the events table at %d events"):format(loaded), ("%.0f s"):format(t_vacuum),
  "what autovacuum does after a bulk load")
pages(loaded, TENANTS, " after VACUUM")

-- Reminders: five a vehicle (by date, by distance, both; one recurring).
local t_reminders = timed(function()
  return motomind.assert(db:exec([[INSERT INTO reminders (tenant_id, vehicle_id, title, due_on, due_mileage, repeat_months)
    SELECT v.tenant_id, v.id, 'r' || k, CASE WHEN k % 3 <> 1 THEN current_date + (k * 37 % 200 - 30) END,
           CASE WHEN k % 3 <> 0 THEN h.mileage + k * 500 END, CASE WHEN k = 4 THEN 12 END
      FROM vehicles v LEFT JOIN vehicle_event_heads h ON h.tenant_id = v.tenant_id AND h.vehicle_id = v.id,
           generate_series(0, 4) k]]))
end)

-- maintain() after the load (every vehicle's metrics, the feed), then after
-- 1,000 new events of 50 vehicles (its steady state)
local t_maintain = timed(function() return db:maintain { max_age = 0 } end)
motomind.assert(db:exec([[
  INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload)
  SELECT h.tenant_id, h.vehicle_id, 'fuel', h.last_occurred_at + g * interval '1 day', h.mileage + g * 150,
         jsonb_build_object('volume', 40, 'unit', 'l', 'total', 60, 'currency', 'EUR', 'full', g % 3 <> 0)
    FROM (SELECT * FROM vehicle_event_heads ORDER BY vehicle_id LIMIT 50) h, generate_series(1, 20) g]]))
local t_steady = timed(function() return db:maintain { max_age = 0 } end)
result("maintain(): after the load / after 1,000 new events of 50 vehicles",
  ("%.1f s / %.2f s"):format(t_maintain, t_steady), ("every vehicle's metrics and feed rows after the load, the 50 " ..
  "vehicles' after; %d reminders inserted first in %.1f s"):format(TENANTS * PER_TENANT * 5,
  t_reminders))

-- A tenant's reads, as the application role: p50 of 51 over the tenants
local function tenant_p50(fn)
  local lat = latencies(51, function(i) return fn(ctx_of((i * 7919) % TENANTS + 1)) end)
  return lat[26], lat[50]
end
local feed50, feed99 = tenant_p50(function(c) return motomind.assert(timeline.feed(app, c, { limit = 50 })) end)
result(("tenant feed page (50) at %d events: p50 / p98"):format(loaded), ("%.2f / %.2f ms"):format(feed50, feed99),
  "the feed table, application role")
local due50, due99 = tenant_p50(function(c) return motomind.assert(reminders.due(app, c, {})) end)
result(("a tenant's due list (%d vehicles, %d reminders) at %d events: p50 / p98"):format(PER_TENANT, PER_TENANT * 5,
  loaded), ("%.2f / %.2f ms"):format(due50, due99), "application role, decoded")
local rep50, rep99 = tenant_p50(function(c)
  return motomind.assert(reports.build(app, c, { from = "2021-01-01", to = "2021-12-31" }))
end)
result(("a tenant's yearly report (2021, %d vehicles) at %d events: p50 / p98"):format(PER_TENANT, loaded),
  ("%.1f / %.1f ms"):format(rep50, rep99), "application role, every table of the report")
app:close()

local text = ("<!-- scale -->\n## Scale (make bench-scale)\n\n%d events, %d tenants of %d vehicles, %s, %s%s\n\n%s\n" ..
  "<!-- /scale -->"):format(loaded, TENANTS, PER_TENANT, os.date("!%Y-%m-%d"), common.machine(),
  jit and jit.version or _VERSION, figure_rows())
print(text)
common.write_section(ROOT, "scale", text)
if not os.getenv("BENCH_KEEP") then common.drop(db) end
db:close()
