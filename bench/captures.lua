-- make bench-captures [CAPTURES=100000]: the capture analytics views of a
-- 1,000-vehicle tenant with CAPTURES capture sessions (as many photos,
-- vision calls and results, messages; a fifth as many location
-- corrections), each read by the application role through the Lua API
-- (row-level security on), against its limit: the same view read by a
-- superuser, to whom no policy applies. A benchmark: it never fails on a
-- number. Writes its section of bench/RESULTS.md (between the captures
-- markers).
local motomind = require "motomind"
local captures = require "motomind.captures"
local vision = require "motomind.vision"
local locations = require "motomind.locations"
local conversations = require "motomind.conversations"
local rows = require "motomind.rows"

local N = tonumber(os.getenv("CAPTURES") or 100000)
local VEHICLES = 1000
local ROOT = arg[0]:match("^(.*)/bench/[^/]*$") or "."
local common = require "bench.common"
local timed, p50 = common.timed, common.p50

local SCHEMA = "bench_captures"
local db = common.fresh(SCHEMA)
local tenant = motomind.assert(db:value("INSERT INTO tenants (name) VALUES ('bench') RETURNING id"))
local user = motomind.assert(db:value("INSERT INTO users (email) VALUES ('captures@bench.example') RETURNING id"))
motomind.assert(db:exec("INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'owner')", tenant, user))
local garage = motomind.assert(db:value("INSERT INTO garages (tenant_id, name) VALUES ($1, 'Depot') RETURNING id", tenant))
motomind.assert(db:exec("INSERT INTO vehicles (tenant_id, garage_id, nickname, odometer_unit) " ..
  "SELECT $1, $2, 'v' || i, 'km' FROM generate_series(1, $3) i", tenant, garage, VEHICLES))
motomind.assert(db:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
  "SELECT tenant_id, id, 'odometer', now() - interval '1 day', 100, '{\"source\": \"manual\"}' FROM vehicles " ..
  "WHERE tenant_id = $1", tenant))

-- Sessions over a year, a fifth abandoned at one of three steps; a photo,
-- a vision call and a confirmed result per session (one in eight read
-- wrong); conversations of five messages; a correction per five sessions.
local t_load = timed(function()
  local steps = "(ARRAY['photo', 'review', 'confirm'])"
  assert(db:exec(([[
    INSERT INTO capture_sessions (tenant_id, id, vehicle_id, flow, status, started_at, ended_at, steps, photos_taken, abandon_reason)
    SELECT $1, md5('s' || k)::uuid, v.id, (ARRAY['fuel', 'odometer', 'receipt', 'service'])[1 + k %% 4],
           CASE WHEN k %% 5 = 0 THEN 'abandoned' ELSE 'completed' END,
           timestamptz '2025-01-01' + (k %% 365) * interval '1 day', timestamptz '2025-01-01' + (k %% 365) * interval '1 day'
             + (20 + k %% 90) * interval '1 second', %s[1:1 + k %% 3], 1 + k %% 2,
           CASE WHEN k %% 5 = 0 THEN (ARRAY['blurry', 'cancelled'])[1 + k %% 2] END
      FROM generate_series(1, $2) k JOIN vehicles v ON v.tenant_id = $1 AND v.nickname = 'v' || (1 + k %% $3)]]):format(steps),
    tenant, N, VEHICLES))
  assert(db:exec([[
    INSERT INTO vehicle_images (tenant_id, id, vehicle_id, storage_url, capture_session_id, detected_kind)
    SELECT tenant_id, id, vehicle_id, 's3://bench/' || id, id, 'odometer' FROM capture_sessions WHERE tenant_id = $1]], tenant))
  assert(db:exec([[
    INSERT INTO vision_metrics (tenant_id, id, vehicle_id, image_id, capture_session_id, model, task, latency_ms, confidence,
                                tokens_in, tokens_out, cost, currency, fields)
    SELECT tenant_id, id, vehicle_id, id, id, (ARRAY['small', 'large'])[1 + abs(hashtext(id::text)) % 2], 'odometer',
           300 + abs(hashtext(id::text)) % 900, 0.9, 1000, 20, 0.003, 'USD', '{"mileage": {"value": 48210}}'
      FROM capture_sessions WHERE tenant_id = $1]], tenant))
  assert(db:exec([[
    INSERT INTO vision_accuracy (tenant_id, vehicle_id, vision_metric_id, field, extracted, confirmed)
    SELECT tenant_id, vehicle_id, id, 'mileage', '48210', CASE WHEN abs(hashtext(id::text)) % 8 = 0 THEN '48216' ELSE '48210' END
      FROM vision_metrics WHERE tenant_id = $1]], tenant))
  assert(db:exec([[
    INSERT INTO location_corrections (tenant_id, vehicle_id, capture_session_id, recorded_latitude, recorded_longitude,
                                      latitude, longitude, reason)
    SELECT tenant_id, vehicle_id, id, 52.5, 13.4, 52.5 + (abs(hashtext(id::text)) % 100) / 100000.0, 13.4,
           (ARRAY['user', 'geocoder', 'gps_drift'])[1 + abs(hashtext(id::text)) % 3]
      FROM capture_sessions WHERE tenant_id = $1 AND abs(hashtext(id::text)) % 5 = 0]], tenant))
  assert(db:exec([[
    INSERT INTO conversation_threads (tenant_id, id, vehicle_id, title)
    SELECT tenant_id, id, vehicle_id, 'thread' FROM capture_sessions WHERE tenant_id = $1 AND abs(hashtext(id::text)) % 5 = 1]],
    tenant))
  assert(db:exec([[
    INSERT INTO conversation_messages (tenant_id, thread_id, role, content, model, tokens_in, tokens_out, cost, currency)
    SELECT t.tenant_id, t.id, CASE WHEN m % 2 = 1 THEN 'user' ELSE 'assistant' END, 'message ' || m,
           CASE WHEN m % 2 = 0 THEN 'chat-1' END, CASE WHEN m % 2 = 0 THEN 800 END, CASE WHEN m % 2 = 0 THEN 60 END,
           CASE WHEN m % 2 = 0 THEN 0.002 END, CASE WHEN m % 2 = 0 THEN 'USD' END
      FROM conversation_threads t, generate_series(1, 5) m WHERE t.tenant_id = $1]], tenant))
  return true
end)
assert(db:exec("ANALYZE"))

local counts = db:row([[SELECT (SELECT count(*) FROM capture_sessions) AS sessions, (SELECT count(*) FROM vision_accuracy) AS results,
  (SELECT count(*) FROM location_corrections) AS corrections, (SELECT count(*) FROM conversation_messages) AS messages]])

local app = common.app_connect(db)
local super = assert(motomind.connect(nil, { schema = SCHEMA }))
assert(super:value("SELECT rolsuper FROM pg_roles WHERE rolname = current_user"), "the limit needs a superuser")
local ctx = { tenant = tenant, user = user }

local VIEWS = {
  { "capture_session_analytics", function() return motomind.assert(captures.analytics(app, ctx)) end },
  { "capture_abandonment_analysis", function() return motomind.assert(captures.abandonment(app, ctx)) end },
  { "vision_accuracy_stats", function() return motomind.assert(vision.accuracy(app, ctx)) end },
  { "location_correction_stats", function() return motomind.assert(locations.stats(app, ctx)) end },
  { "ai_usage_monthly", function() return motomind.assert(conversations.usage(app, ctx)) end },
  { "active_garages", function() return motomind.assert(rows.list(app, ctx, "active_garages")) end },
}
local lines = { "<!-- captures -->", "## Capture analytics views (make bench-captures)", "",
  ("%d vehicles; %d capture sessions (as many photos and vision calls), %d confirmed results, %d location " ..
   "corrections, %d messages; loaded in %.1f s. Each view read by the application role through the Lua API " ..
   "(row-level security, `db:as`), p50 of 11, against the same view read by a superuser (no policy applies)."):format(
    VEHICLES, counts.sessions, counts.results, counts.corrections, counts.messages, t_load), "",
  "| view | rows | motomind (ms) | limit (ms) | ratio |", "|---|---|---|---|---|" }
for _, v in ipairs(VIEWS) do
  local n = #v[2]()
  local ours = p50(v[2])
  local limit = p50(function()
    return motomind.assert(super:query("SELECT * FROM " .. super:qualify(v[1]) .. " WHERE tenant_id = $1", tenant))
  end)
  lines[#lines + 1] = ("| `%s` | %d | %.1f | %.1f | %.2f× |"):format(v[1], n, ours, limit, ours / limit)
  print(lines[#lines])
end
lines[#lines + 1] = "<!-- /captures -->"
common.write_section(ROOT, "captures", table.concat(lines, "\n"))
app:close()
super:close()
if not os.getenv("BENCH_KEEP") then
  common.drop(db)
end
db:close()
