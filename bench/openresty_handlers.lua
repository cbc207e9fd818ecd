--- make bench-openresty's handlers (bench/openresty.lua writes the nginx.conf
-- that calls them): one 50-event timeline page of a vehicle as JSON, served
-- three ways — motomind called in the request (blocking the worker),
-- motomind in nginx's thread pool (motomind.resty), and pgmoon over
-- cosockets (the peer, loaded from ../shared/peers) — each with and without
-- 20 ms of server time (pg_sleep) before the page: for motomind a statement
-- of its own (a round trip, then the page's), for pgmoon in the page's
-- multi-statement query.
local cjson = require "cjson"

local M = {}

local ctx = { tenant = os.getenv("BENCH_TENANT"), user = os.getenv("BENCH_USER") }
local vehicle = os.getenv("BENCH_VEHICLE")
local schema = os.getenv("BENCH_SCHEMA")

-- Runs in the thread pool too (resty.new's modules): the page, after
-- 20 ms of server time when slow.
function M.page(db, c, slow)
  local timeline = require "motomind.timeline"
  if slow then
    local ok, err, sqlstate = db:exec("SELECT pg_sleep(0.02)")
    if not ok then return nil, err, sqlstate end
  end
  return timeline.page(db, c, { vehicle = vehicle, limit = 50 })
end

local function reply(text)
  ngx.header["Content-Type"] = "application/json"
  ngx.print(text)
end

-- motomind in the request: one connection per worker, every call blocks it.
local blocking_db
function M.blocking(slow)
  local motomind = require "motomind"
  if not blocking_db then
    blocking_db = motomind.assert(motomind.connect(nil, { schema = schema, user = os.getenv("BENCH_ROLE") }))
  end
  local page = motomind.assert(M.page(blocking_db, ctx, slow))
  reply(motomind.json.encode(page))
end

local client
local function resty()
  client = client or require("motomind.resty").new { schema = schema, user = os.getenv("BENCH_ROLE"),
    modules = { "openresty_handlers" }, vms = 16 }
  return client
end

-- the page as tables across the thread boundary, encoded by cjson here
function M.thread(slow)
  local page, err = resty():call("openresty_handlers.page", ctx, slow)
  if not page then error(err) end
  reply(cjson.encode(page))
end

-- the page encoded in the thread: only its text crosses
function M.thread_json(slow)
  local text, err = resty():call_json("openresty_handlers.page", ctx, slow)
  if not text then error(err) end
  reply(text)
end

-- pgmoon: the same page query (literals in place of parameters), in one
-- simple-protocol round trip with the context, over a keepalive pool.
local page_sql
function M.pgmoon(slow)
  local pgmoon = require "pgmoon"
  local pg = pgmoon.new { host = os.getenv("BENCH_PG_HOST"), port = os.getenv("BENCH_PG_PORT"),
    database = os.getenv("BENCH_PG_DATABASE"), user = os.getenv("BENCH_ROLE") }
  pg.convert_null = true
  pg.NULL = ngx.null
  assert(pg:connect())
  if not page_sql then
    local internal = require "motomind.internal"
    local q = { qualify = function(_, name) return ('"%s"."%s"'):format(schema, name) end,
                schema = function() return schema end }
    local page = internal.page_query(q, ctx, { vehicle = vehicle })
    local literals = {}
    for i = 1, page.params.n do literals[i] = pg:escape_literal(tostring(page.params[i])) end
    page_sql = page.sql:gsub("%$(%d+)", function(n) return literals[tonumber(n)] end)
  end
  local sql = ("BEGIN; SELECT set_config('motomind.tenant_id', %s, true), set_config('motomind.user_id', %s, true); " ..
    "%s %s; COMMIT"):format(pg:escape_literal(ctx.tenant), pg:escape_literal(ctx.user),
    slow and "SELECT pg_sleep(0.02);" or "", page_sql)
  local res = assert(pg:query(sql))
  local rows = res[slow and 4 or 3]
  if #rows > 50 then rows[#rows] = nil end
  pg:keepalive(60000, 32) -- (as many as the most concurrent requests)
  reply(cjson.encode({ events = rows }))
end

return M
