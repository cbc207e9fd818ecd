-- make bench-report [REPORT_EVENTS=1000000]: the yearly report of a
-- 1,000-vehicle tenant (REPORT_EVENTS events over five years, with their
-- metrics and costs), read by the application role through
-- motomind.reports, against its limit: one statement scanning the monthly
-- metric and cost rows the report reads, with nothing on top. A
-- benchmark: it never fails on a number. Writes its section of
-- bench/RESULTS.md (between the report markers). BENCH_KEEP=1 keeps the
-- schema bench_report.
local motomind = require "motomind"
local reports = require "motomind.reports"
local render = require "motomind.report_render"

local EVENTS = tonumber(os.getenv("REPORT_EVENTS") or 1000000)
local VEHICLES = 1000
local ROOT = arg[0]:match("^(.*)/bench/[^/]*$") or "."

local common = require "bench.common"
local timed, p50 = common.timed, common.p50

local SCHEMA = "bench_report"
local db = common.fresh(SCHEMA)
for y = 2020, 2026 do
  motomind.assert(db:query("SELECT create_event_partition($1, $2)", y .. "-01-01T00:00:00Z", (y + 1) .. "-01-01T00:00:00Z"))
end
local tenant = motomind.assert(db:value("INSERT INTO tenants (name, currency) VALUES ('bench', 'EUR') RETURNING id"))
local user = motomind.assert(db:value("INSERT INTO users (email) VALUES ('report@bench.example') RETURNING id"))
motomind.assert(db:exec("INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'owner')", tenant, user))
motomind.assert(db:exec("INSERT INTO vehicles (tenant_id, nickname, odometer_unit) " ..
  "SELECT $1, 'v' || i, CASE WHEN i % 4 = 0 THEN 'mi' ELSE 'km' END FROM generate_series(1, $2) i", tenant, VEHICLES))

-- Each vehicle's history, 2021-2025: fills (a tenth partial; a twentieth in
-- another currency), services in four categories, readings.
local per = EVENTS // VEHICLES
local t_load = timed(function()
  return motomind.assert(db:exec([[
    INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload)
    SELECT $1, v.id, CASE WHEN k % 10 = 0 THEN 'maintenance' WHEN k % 3 = 0 THEN 'odometer' ELSE 'fuel' END,
           timestamptz '2021-01-01' + (k * 1826.0 / $2) * interval '1 day', 1000 + k * 150,
           CASE WHEN k % 10 = 0 THEN jsonb_build_object('service_type', 'service', 'total', 40 + k % 200,
                  'currency', 'EUR', 'category', (ARRAY['service', 'tires', 'repair', 'insurance'])[1 + k % 4])
                WHEN k % 3 = 0 THEN '{"source": "manual"}'
                ELSE jsonb_build_object('volume', 30 + k % 20, 'unit', 'l', 'price_per_unit', 1.5 + (k % 37) / 100.0,
                  'currency', CASE WHEN k % 20 = 1 THEN 'CHF' ELSE 'EUR' END, 'full', k % 10 <> 7) END
      FROM vehicles v, generate_series(1, $2) k WHERE v.tenant_id = $1]], tenant, per))
end)
local t_metrics = timed(function() return motomind.assert(db:value("SELECT recompute_metrics()")) end)
motomind.assert(db:exec("ANALYZE"))

local app = common.app_connect(db)
local ctx = { tenant = tenant, user = user }
local YEAR = { from = "2025-01-01", to = "2025-12-31" }
local report
local report_ms = p50(function() report = motomind.assert(reports.build(app, ctx, YEAR)) end)
local html_ms = p50(function() return render.html(report) end)
-- the limit: one statement scanning the monthly rows the report reads (the
-- year's costs and metrics, and every month's metrics for the lifetime
-- figures) with nothing on top, as the owner (no row-level security)
local rows = 0
local limit_ms = p50(function()
  rows = motomind.assert(db:value([[SELECT
      (SELECT count(amount) FROM vehicle_costs_monthly WHERE tenant_id = $1 AND month BETWEEN '2025-01-01' AND '2025-12-31')
    + (SELECT count(distance) FROM vehicle_metrics_monthly WHERE tenant_id = $1 AND month BETWEEN '2025-01-01' AND '2025-12-31')
    + (SELECT count(distance) FROM vehicle_metrics_monthly WHERE tenant_id = $1 AND month <= '2025-12-31')]], tenant))
end)
local vehicle = motomind.assert(db:value("SELECT id FROM vehicles WHERE tenant_id = $1 ORDER BY nickname LIMIT 1", tenant))
local vehicle_ms = p50(function() return motomind.assert(reports.build(app, ctx, { vehicle = vehicle, from = YEAR.from,
  to = YEAR.to })) end)
app:close()

local machine = io.popen("echo \"$(nproc) cores\"; psql --version | head -1"):read("*a"):gsub("\n", "; ")
local text = table.concat({ "<!-- report -->",
  ("Report bench (make bench-report), %s, %s%s:"):format(os.date("!%Y-%m-%d"), machine, jit and jit.version or _VERSION), "",
  "| figure | value | notes |", "|---|---|---|",
  ("| yearly report of the tenant (1,000 vehicles, %d events), p50 | %.1f ms | goal < 200 ms; application role, " ..
    "every table of the report |"):format(EVENTS, report_ms),
  ("| ... vs one scan of the monthly rows it reads (the limit) | %.2fx | %.1f ms for %d rows, one statement, " ..
    "owner, no row-level security |"):format(report_ms / limit_ms, limit_ms, rows),
  ("| the report as HTML (charts included) | %.1f ms | |"):format(html_ms),
  ("| yearly report of one vehicle (its fills included), p50 | %.1f ms | |"):format(vehicle_ms),
  ("| loading: %d events with their rules / recompute_metrics | %.0f s / %.0f s | |"):format(EVENTS, t_load, t_metrics),
  "<!-- /report -->" }, "\n")
print(text)
common.write_section(ROOT, "report", text)
if not os.getenv("BENCH_KEEP") then -- (kept: the data, to look into)
  common.drop(db)
end
db:close()
