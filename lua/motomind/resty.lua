--- motomind in OpenResty without blocking the nginx worker: calls run in
-- nginx's thread pool (ngx.run_worker_thread), each thread's Lua VM keeping
-- its own connections. The request side passes plain values (a function's
-- name, the context, arguments) and gets plain tables back; no userdata
-- crosses threads.
--
--   -- nginx.conf (main context): thread_pool motomind threads=4;
--   local mm = require("motomind.resty").new { conninfo = "...", schema = "motomind" }
--   local page, err, sqlstate = mm:call("timeline.page", ctx, vehicle_id, { limit = 50 })
--
-- Values: SQL NULL arrives as `null` (default ngx.null, so cjson.encode of a
-- result works) and empty arrays as `empty_array` when given (e.g.
-- cjson.empty_array); ngx.null and cjson.null in arguments bind as NULL.
local M = {}

local unpack = table.unpack or unpack

-- What a handler may call: "module.function" of these motomind modules (their
-- functions take db, ctx, ... and run inside db:as(ctx) themselves). import
-- and export take paths: an uploaded body's temp file, a file the handler
-- then streams back.
M.MODULES = { timeline = true, reminders = true, vehicles = true, import = true, export = true }

local DEFAULTS = { pool = "motomind", schema = nil, pool_size = 1, idle_timeout = 60, check_after = 1,
  connect_timeout = 5, statement_timeout = 10000, vms = 10, wait_timeout = 10 }

-- ---- the thread side (runs in the thread pool's Lua VMs) --------------------

-- Idle connections of this VM, per conninfo and schema: { db, since }.
local idle = {}
-- What this VM has to say besides the server's notices (logged by call()).
local warnings = {}

local function now() return os.time() end

-- A healthy connection for cfg: an idle one (checked with a round trip when
-- it idled check_after seconds or more, closed when it idled past
-- idle_timeout or fails), else a new one.
local function checkout(cfg)
  local motomind = require "motomind"
  local key = table.concat({ cfg.conninfo or "", cfg.schema or "", cfg.user or "", cfg.field_key or "" }, "\0")
  local list = idle[key] or {}
  idle[key] = list
  while #list > 0 do
    local entry = table.remove(list)
    local age = now() - entry.since
    if age > cfg.idle_timeout or entry.db:status() ~= "ok" then
      entry.db:close()
    elseif age < cfg.check_after or entry.db:exec("SELECT 1") then
      return entry.db, key
    else
      entry.db:close()
    end
  end
  local db, err, sqlstate = motomind.connect(cfg.conninfo,
    { schema = cfg.schema, user = cfg.user, connect_timeout = cfg.connect_timeout, field_key = cfg.field_key })
  if not db then return nil, err, sqlstate end
  db:set_pooled() -- (idle ones are closed by the collector when nginx ends this VM)
  local row, e2, s2 = db:row("SELECT set_config('statement_timeout', $1, false), " ..
    "current_setting('max_connections')::int AS max", tostring(cfg.statement_timeout))
  if not row then db:close(); return nil, e2, s2 end
  local budget = cfg.vms * cfg.pool_size * (cfg.workers or 1)
  if budget > row.max then
    warnings[#warnings + 1] = ("WARNING:  motomind.resty may hold %d connections (vms %d x pool_size %d x %d " ..
      "workers), more than the server's max_connections (%d)"):format(budget, cfg.vms, cfg.pool_size,
      cfg.workers or 1, row.max)
  end
  return db, key
end

-- Back to the pool when it is clean (no transaction left open), else closed.
local function checkin(cfg, key, db)
  if db:status() ~= "ok" or db:transaction_status() ~= "idle" or #idle[key] >= cfg.pool_size then
    db:close()
    return
  end
  table.insert(idle[key], { db = db, since = now() })
end

-- Plain values for the request side, in place (results are fresh tables
-- of this call): motomind.null -> cfg null, empty arrays -> cfg empty_array
-- when given; nginx copies tables across without their metatables.
local function plain(v, cfg, motomind)
  if v == motomind.null then return cfg.null end
  if type(v) == "userdata" then return tostring(v) end
  if type(v) ~= "table" then return v end
  if next(v) == nil and cfg.empty_array ~= nil and getmetatable(v) == motomind.json.array_mt then
    return cfg.empty_array
  end
  for k, x in pairs(v) do
    if type(x) == "table" or type(x) == "userdata" then v[k] = plain(x, cfg, motomind) end
  end
  return v
end

-- The call's outcome for the request side: a raised error as nil, message,
-- sqlstate, detail; then shape(...) of the values it returned. (Arguments
-- need nothing: ngx.null and cjson.null arrive as NULL light userdata, which
-- the C core binds as NULL.)
local function finish(motomind, shape, ok, ...)
  if not ok then
    local e = ...
    if getmetatable(e) == motomind.Error then return nil, e.message, e.sqlstate, e.detail end
    return nil, tostring(e), "XX000"
  end
  return shape(...)
end

-- The app's own module of that name, when cfg.modules lists it.
local function app_module(cfg, name)
  for _, m in ipairs(cfg.modules or {}) do
    if m == name then return name end
  end
end

-- Calls name(db, ctx, ...) on a pooled connection: notices | false, then
-- shape(results) or nil, message, sqlstate, detail.
local function invoke(cfg, shape, name, ctx, ...)
  local motomind = require "motomind"
  local mod, fn = tostring(name):match("^([%w_.]+)%.([%a_][%w_]*)$")
  local path = mod and (M.MODULES[mod] and "motomind." .. mod or app_module(cfg, mod))
  if not path then
    return false, nil, ("motomind.resty: cannot call %q (module.function of: %s)"):format(tostring(name),
      table.concat(M.module_names(cfg), ", ")), "22023"
  end
  local loaded, f = pcall(require, path)
  f = loaded and type(f) == "table" and f[fn]
  if type(f) ~= "function" then
    return false, nil, ("motomind.resty: %s has no function %s"):format(path, fn), "22023"
  end
  local db, key_or_err, sqlstate = checkout(cfg)
  if not db then return false, nil, key_or_err, sqlstate end
  local results = { n = 0 }
  local function collect(...) results = { n = select("#", ...), ... } end
  collect(pcall(f, db, ctx, ...))
  local notices = db:notices()
  for i, w in ipairs(warnings) do table.insert(notices, i, w) end
  warnings = {}
  checkin(cfg, key_or_err, db)
  return #notices > 0 and notices, finish(motomind, shape, unpack(results, 1, results.n))
end

--- run(cfg, name, ctx, ...) -> notices | false, results...: the thread side
-- of call() (nginx calls it in a thread VM): name is "module.function" of
-- M.MODULES or of cfg.modules; notices are the server's (ngx.log is not
-- available in a thread; call() logs them).
function M.run(cfg, name, ctx, ...)
  local motomind = require "motomind"
  return invoke(cfg, function(...)
    local n = select("#", ...)
    local out = { ... }
    for i = 1, n do out[i] = plain(out[i], cfg, motomind) end
    return unpack(out, 1, n)
  end, name, ctx, ...)
end

--- run_json(cfg, name, ctx, ...) -> notices | false, JSON text of the first
-- result | nil, message, sqlstate, detail: the thread side of call_json().
function M.run_json(cfg, name, ctx, ...)
  local motomind = require "motomind"
  return invoke(cfg, function(first, ...)
    if first == nil then return nil, ... end
    local text, err = motomind.json.encode(first)
    if not text then return nil, "motomind.resty: the result is not JSON: " .. err, "22023" end
    return text
  end, name, ctx, ...)
end

--- The modules call() reaches (motomind's and cfg.modules), sorted.
function M.module_names(cfg)
  local names = {}
  for k in pairs(M.MODULES) do names[#names + 1] = k end
  for _, k in ipairs(cfg and cfg.modules or {}) do names[#names + 1] = k end
  table.sort(names)
  return names
end

-- ---- the request side (runs in the nginx worker) -----------------------------

local Client = {}
Client.__index = Client

--- new(opts) -> client. opts: conninfo (default DATABASE_URL), schema, user
-- (overrides the conninfo's: the application role), modules (names of the
-- app's own modules whose functions(db, ctx, ...) call() may run: several
-- steps in one trip to the thread), pool (the thread_pool's name, default "motomind"), pool_size (idle
-- connections kept per thread, default 1), idle_timeout (s, 60),
-- check_after (s idle before a connection is checked, 1), connect_timeout
-- (s, 5), statement_timeout (ms, 10000), vms (calls in flight per worker:
-- nginx.conf's lua_worker_thread_vm_pool_size, default 10), wait_timeout
-- (s a call waits for one of them, 10), null (default ngx.null),
-- empty_array (e.g. cjson.empty_array; default: an empty table),
-- field_key (connect's: opens sealed fields).
function M.new(opts)
  local cfg = {}
  for k, v in pairs(DEFAULTS) do cfg[k] = v end
  for k, v in pairs(opts or {}) do cfg[k] = v end
  if cfg.null == nil and ngx then cfg.null = ngx.null end
  return setmetatable({ cfg = cfg }, Client)
end

-- Logs the server's notices of a call through ngx.log.
local function log_notices(notices, ...)
  for _, n in ipairs(notices or {}) do
    ngx.log(n:find("^WARNING") and ngx.WARN or ngx.NOTICE, "motomind: ", n)
  end
  return ...
end

local function called(pool, ok, ...)
  if ok then return log_notices(...) end
  local err = ...
  if tostring(err):find("^thread pool .* not found") then
    return nil, ("motomind.resty: no thread pool %q: add `thread_pool %s threads=4;` to nginx.conf's main context")
      :format(pool, pool), "58000"
  end
  if tostring(err):find("not found", 1, true) then
    return nil, "motomind.resty: the thread VM cannot load motomind (set lua_package_path and lua_package_cpath " ..
      "in nginx.conf's http block): " .. tostring(err), "58000"
  end
  return nil, "motomind.resty: " .. tostring(err), "XX000"
end

-- Per worker and thread pool: a semaphore of cfg.vms permits. nginx refuses
-- a call outright ("no available Lua vm") when every cached thread VM is in
-- use, so calls beyond that wait here for one to come back.
local permits = {}

local function released(sema, pool, ran, ...)
  sema:post(1)
  if not ran then return nil, "motomind.resty: " .. tostring(...), "22023" end -- (e.g. an argument nginx cannot pass)
  return called(pool, ...)
end

-- Runs entry (run or run_json) of this module in the thread pool, holding
-- one of the worker's permits meanwhile.
local function dispatch(client, entry, name, ctx, ...)
  if not ngx or not ngx.run_worker_thread then
    error("motomind.resty: call() runs in OpenResty (rewrite, access or content phase)", 3)
  end
  local cfg = client.cfg
  cfg.workers = cfg.workers or ngx.worker.count() -- (for the connection budget the threads check)
  local sema = permits[cfg.pool]
  if not sema then
    sema = assert(require("ngx.semaphore").new(cfg.vms))
    permits[cfg.pool] = sema
  end
  if not sema:wait(cfg.wait_timeout) then
    return nil, ("motomind.resty: %d calls of this worker have been running for %s s; none ended (raise " ..
      "lua_worker_thread_vm_pool_size and vms, or find the slow call)"):format(cfg.vms, cfg.wait_timeout), "53300"
  end
  return released(sema, cfg.pool, pcall(ngx.run_worker_thread, cfg.pool, "motomind.resty", entry, cfg, name, ctx, ...))
end

--- client:call("module.function", ctx, ...) -> what the function returns,
-- as plain values | nil, message, sqlstate, detail. The worker goes on
-- serving other requests meanwhile; at most cfg.vms calls of this worker
-- run at once, the others wait up to cfg.wait_timeout seconds.
function Client:call(name, ctx, ...)
  return dispatch(self, "run", name, ctx, ...)
end

--- client:call_json("module.function", ctx, ...) -> the JSON text of what
-- the function returns (motomind.json: NULL as null, empty arrays as []) |
-- nil, message, sqlstate, detail. The encoding runs in the thread, and only
-- a string comes back: the nginx worker neither copies the tables nor
-- encodes them.
function Client:call_json(name, ctx, ...)
  return dispatch(self, "run_json", name, ctx, ...)
end

--- protect(handler) -> a function running handler(...) that, when it
-- raises, logs the error with ngx.log(ngx.ERR, ...) — a motomind.Error
-- with its message, SQLSTATE and detail (nginx itself logs an error that is
-- not a string as "unknown reason") — and answers 500.
function M.protect(handler)
  return function(...)
    local ok, err = xpcall(handler, function(e)
      local text = tostring(e)
      if type(e) == "table" and e.detail ~= nil then
        local encoded, detail = pcall(require("motomind").json.encode, e.detail)
        text = text .. "; detail: " .. (encoded and detail or tostring(e.detail))
      end
      return debug.traceback(text, 2)
    end, ...)
    if ok then return end
    ngx.log(ngx.ERR, err)
    return ngx.exit(ngx.HTTP_INTERNAL_SERVER_ERROR)
  end
end

return M
