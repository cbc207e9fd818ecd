--- The example OpenResty app's handlers (see nginx.conf): a vehicle's
-- timeline as JSON, an event appended from a JSON body, a CSV upload
-- imported, a vehicle exported as CSV. motomind runs in nginx's thread pool
-- (motomind.resty): the worker keeps serving other requests meanwhile.
local cjson = require "cjson.safe"
local mm = require("motomind.resty").new {
  conninfo = os.getenv("MOTOMIND_DATABASE_URL"), -- `env MOTOMIND_DATABASE_URL;` in nginx.conf
  schema = os.getenv("MOTOMIND_SCHEMA"),
  user = os.getenv("MOTOMIND_USER"), -- the application role (row-level security applies)
  modules = { "vehicle_page" },      -- this app's own functions run in the thread pool
  vms = 4,                           -- nginx.conf's lua_worker_thread_vm_pool_size
}

local M = {}

-- Answers status with a JSON body: a table, or JSON text as it is.
local function reply(status, body)
  ngx.status = status
  ngx.header["Content-Type"] = "application/json"
  ngx.say(type(body) == "string" and body or cjson.encode(body))
  return ngx.exit(status)
end

-- A motomind error as an HTTP answer: bad input 422, unknown or foreign
-- vehicle 404, not allowed 403, the rest 503 (database down) or 500.
local STATUS = { ["22"] = 422, ["23503"] = 404, ["42501"] = 403, ["08"] = 503, ["57"] = 503, ["58"] = 500 }
local function fail(message, sqlstate)
  sqlstate = sqlstate or "XX000"
  local status = STATUS[sqlstate] or STATUS[sqlstate:sub(1, 2)] or (sqlstate == "23514" and 422) or 500
  if status >= 500 then ngx.log(ngx.ERR, "motomind: ", message, " (", sqlstate, ")") end
  return reply(status, { error = message, sqlstate = sqlstate })
end

--- The caller's motomind context. A real app verifies its JWT here (e.g.
-- lua-resty-jwt against its issuer's key) and maps the verified subject to
-- motomind's user and tenant; this example trusts two headers, which only a
-- trusted proxy in front of it may set.
function M.context()
  local h = ngx.req.get_headers()
  local tenant, user = h["x-tenant"], h["x-user"]
  if not tenant or not user then
    return reply(401, { error = "X-Tenant and X-User headers are required" })
  end
  return { tenant = tenant, user = user, request_id = ngx.var.request_id }
end

--- GET /vehicles/ID/events[?limit=N&cursor=C]: a page of the timeline.
function M.page(ctx, vehicle)
  local args = ngx.req.get_uri_args()
  -- call_json: the page is encoded in the thread; only its text comes back
  local page, err, sqlstate = mm:call_json("vehicle_page.page", ctx, vehicle,
    { limit = tonumber(args.limit) or 50, cursor = args.cursor })
  if not page then return fail(err, sqlstate) end
  return reply(200, page)
end

--- POST /vehicles/ID/events with a JSON event: 201 and the stored event, or
-- 422 with the payload codec's message.
function M.append(ctx, vehicle)
  ngx.req.read_body()
  local event = cjson.decode(ngx.req.get_body_data() or "")
  if type(event) ~= "table" then return reply(400, { error = "the body must be a JSON object" }) end
  event.vehicle_id = vehicle
  local stored, err, sqlstate = mm:call("timeline.append", ctx, event)
  if not stored then return fail(err, sqlstate) end
  return reply(201, stored)
end

--- POST /vehicles/ID/imports?format=NAME with a CSV body (kept in a temp
-- file by nginx: client_body_in_file_only): the import's report.
function M.import(ctx, vehicle)
  ngx.req.read_body()
  local path = ngx.req.get_body_file()
  if not path then return reply(400, { error = "empty body" }) end
  local report, err, sqlstate, partial = mm:call("import.import", ctx, path,
    { vehicle = vehicle, format = ngx.var.arg_format, progress = false })
  if not report then
    if partial and partial.records and partial.records > 0 then return reply(422, { error = err, report = partial }) end
    return fail(err, sqlstate)
  end
  return reply(#report.rejected > 0 and 207 or 200, report)
end

--- GET /vehicles/ID/export.csv?format=lubelogger-fuel: written to a temp
-- file in the thread, streamed back in 64 KiB chunks.
function M.export(ctx, vehicle)
  local path = os.tmpname()
  local n, err, sqlstate = mm:call("export.export", ctx, path,
    { vehicle = vehicle, format = ngx.var.arg_format or "lubelogger-fuel" })
  if not n then os.remove(path); return fail(err, sqlstate) end
  ngx.header["Content-Type"] = "text/csv"
  local f = assert(io.open(path, "rb"))
  os.remove(path)
  while true do
    local chunk = f:read(65536)
    if not chunk then break end
    ngx.print(chunk)
    ngx.flush(true)
  end
  f:close()
end

return M
