-- make bench-sealed [SEALED=2000]: what sealing a tenant's fields (0029)
-- costs. Two tenants alike (SEALED vehicles with a VIN and a plate, a
-- thread of SEALED messages), one sealing, the other not; each figure is
-- the same API call by the application role on both (p50 of 11), so the
-- plain tenant is the limit. A benchmark: it never fails on a number.
-- Writes its section of bench/RESULTS.md (between the sealed markers).
local motomind = require "motomind"
local vehicles = require "motomind.vehicles"
local tenants = require "motomind.tenants"
local conversations = require "motomind.conversations"

local N = tonumber(os.getenv("SEALED") or 2000)
local KEY = "bench: a random secret, 32 chars"
local ROOT = arg[0]:match("^(.*)/bench/[^/]*$") or "."
local common = require "bench.common"
local timed, p50 = common.timed, common.p50

local db = common.fresh("bench_sealed")
local app = common.app_connect(db, { field_key = KEY })

-- A tenant with its owner, N vehicles (VIN, plate) and a thread of N messages.
local function tenant(name)
  local t = motomind.assert(db:value("INSERT INTO tenants (name) VALUES ($1) RETURNING id", name))
  local u = motomind.assert(db:value("INSERT INTO users (email) VALUES ($1) RETURNING id", name .. "@bench.example"))
  motomind.assert(db:exec("INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'owner')", t, u))
  motomind.assert(db:exec("INSERT INTO vehicles (tenant_id, nickname, odometer_unit, vin, plate) " ..
    "SELECT $1, 'v' || i, 'km', 'WDB' || lpad(i::text, 14, '0'), 'B-' || i FROM generate_series(1, $2) i", t, N))
  local ctx = { tenant = t, user = u }
  local thread = motomind.assert(conversations.start(app, ctx, {})).id
  motomind.assert(db:exec("INSERT INTO conversation_messages (tenant_id, thread_id, role, content) " ..
    "SELECT $1, $2, 'user', 'how often should I rotate the tyres of v' || i || '?' FROM generate_series(1, $3) i",
    t, thread, N))
  return ctx, thread
end

local plain, plain_thread = tenant("plain")
local sealed, sealed_thread = tenant("sealed")
local t_switch, values = timed(function() return motomind.assert(tenants.seal_fields(app, sealed, true)) end)

-- The crypto alone, the physical limit of what a read adds: pgcrypto
-- opening the same ciphertexts in one statement (the owner, no policy, no
-- Lua), over the sealed tenant's rows of tbl.
local ext = motomind.assert(db:value("SELECT extnamespace::regnamespace::text FROM pg_extension " ..
  "WHERE extname = 'pgcrypto'"))
local function crypto_alone(tbl, cols)
  local opens = {}
  for i, c in ipairs(cols) do opens[i] = ("length(%s.pgp_sym_decrypt(%s_sealed, $2))"):format(ext, c) end
  local sql = ("SELECT sum(%s) FROM %s WHERE tenant_id = $1"):format(table.concat(opens, " + "), db:qualify(tbl))
  return function() return motomind.assert(db:value(sql, sealed.tenant, KEY)) end
end

local added = 0
local CALLS = {
  { "list the tenant's vehicles", function(ctx) return #motomind.assert(vehicles.list(app, ctx)) end,
    crypto = crypto_alone("vehicles", { "vin", "plate" }) },
  { "resolve a vehicle by plate", function(ctx)
      return motomind.assert(vehicles.resolve(app, ctx, "b-" .. math.floor(N / 2))) end },
  { "get a vehicle", function(ctx)
      ctx.first = ctx.first or motomind.assert(vehicles.resolve(app, ctx, "v1"))
      return motomind.assert(vehicles.get(app, ctx, ctx.first)).vin end },
  { "read a thread's messages", function(ctx, thread)
      return #motomind.assert(conversations.messages(app, ctx, thread)) end,
    crypto = crypto_alone("conversation_messages", { "content" }) },
  { "add a vehicle (VIN, plate)", function(ctx)
      added = added + 1
      return motomind.assert(vehicles.add(app, ctx, { nickname = "n" .. added, odometer_unit = "km",
        vin = ("WVW%014d"):format(added), plate = "N-" .. added })).vin end },
  { "add a message", function(ctx, thread)
      return motomind.assert(conversations.say(app, ctx, thread, { role = "user", content = "and the brakes?" })).content
  end },
}

local lines = { "<!-- sealed -->", "## Sealed fields (make bench-sealed)", "",
  ("Two tenants alike: %d vehicles with a VIN and a plate, a thread of %d messages; one seals its fields. " ..
   "Switching sealing on rewrote %d values (and the audit log's images) in %.2f s (%.0f us a value). Each call " ..
   "by the application role through the Lua API, p50 of 11. The limit: the same call on the plain tenant, plus, " ..
   "for the bulk reads, pgcrypto opening the same ciphertexts alone in one statement (the crypto itself)."):format(
   N, N, values, t_switch, t_switch / values * 1e6), "",
  "| call | rows | sealed (ms) | plain (ms) | crypto alone (ms) | sealed / limit |", "|---|---|---|---|---|---|" }
for _, c in ipairs(CALLS) do
  local rows = c[2](sealed, sealed_thread)
  local same = c[2](plain, plain_thread)
  assert(type(rows) ~= "number" or rows == same, c[1] .. ": the tenants differ")
  local ours = p50(function() return c[2](sealed, sealed_thread) end)
  local plain_ms = p50(function() return c[2](plain, plain_thread) end)
  local crypto_ms = c.crypto and p50(c.crypto) or 0
  lines[#lines + 1] = ("| %s | %s | %.2f | %.2f | %s | %.2f× |"):format(c[1], type(rows) == "number" and rows or 1, ours,
    plain_ms, c.crypto and ("%.2f"):format(crypto_ms) or "-", ours / (plain_ms + crypto_ms))
  print(lines[#lines])
end
lines[#lines + 1] = "<!-- /sealed -->"
common.write_section(ROOT, "sealed", table.concat(lines, "\n"))
app:close()
if not os.getenv("BENCH_KEEP") then common.drop(db) end
db:close()
