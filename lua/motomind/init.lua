--- motomind: vehicle records on PostgreSQL. The public API.
-- Database calls return their results, or nil, message, sqlstate, detail;
-- misuse (wrong argument types, a closed connection) raises.
local core = require "motomind.core"

--- json.list(t) -> t, or for an empty table without a metatable one that
-- encodes as [] (an empty Lua table is {} to the encoder): for values that
-- are lists, such as tags.
local function list(t)
  if type(t) == "table" and next(t) == nil and getmetatable(t) == nil then
    return setmetatable({}, core.json_array_mt)
  end
  return t
end

local M = {
  null = core.null,
  version = core.version,
  json = {
    encode = core.json_encode,
    decode = core.json_decode,
    array_mt = core.json_array_mt,
    list = list,
  },
  DEFAULT_SCHEMA = "motomind",
}

local Connection = core.Connection
M.Connection = Connection

-- Per-connection settings, without keeping closed connections alive.
local settings = setmetatable({}, { __mode = "k" })

local Error = {}
Error.__index = Error
function Error.__tostring(e)
  if e.sqlstate then return e.message .. " (SQLSTATE " .. e.sqlstate .. ")" end
  return e.message
end
M.Error = Error

--- The raising flavour of any nil-on-failure call: returns its results, or
-- raises an Error object { message, sqlstate, detail } that prints nicely.
function M.assert(ok, ...)
  if ok then return ok, ... end
  return M.raise(...)
end

--- raise(message, sqlstate, detail) raises a motomind.Error (what
-- motomind.assert raises on a failure).
function M.raise(message, sqlstate, detail)
  error(setmetatable({ message = message or "unknown error", sqlstate = sqlstate,
                       detail = detail }, Error), 0)
end

local function caught(ok, ...)
  if ok then return ... end
  local e = ...
  if getmetatable(e) == Error then return nil, e.message, e.sqlstate, e.detail end
  error(e, 0)
end

--- try(fn, ...) -> fn's results | nil, message, sqlstate, detail: the
-- returning flavour of code that raises motomind errors (motomind.assert);
-- any other error (a bug, misuse) is re-raised.
function M.try(fn, ...)
  return caught(pcall(fn, ...))
end

--- check_ctx(ctx, who) raises (misuse) unless ctx is { tenant = <uuid>, ... }.
function M.check_ctx(ctx, who)
  if type(ctx) ~= "table" or type(ctx.tenant) ~= "string" then
    error(who .. ": ctx must be a table { tenant = <uuid>, user = <uuid> }", 3)
  end
end

--- True when a database is configured in the environment.
function M.configured()
  if os.getenv("DATABASE_URL") then return true end
  for _, v in ipairs { "PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE" } do
    if os.getenv(v) then return true end
  end
  return false
end

--- connect([conninfo_or_url], [{ schema = "motomind", user = nil, connect_timeout = nil,
--   maintenance = false, read = nil, field_key = nil, spin = nil }])
-- -> db | nil, message, sqlstate. Without a conninfo: DATABASE_URL, else
-- libpq's PG* variables (libpq's multi-host URLs work: "host1:5432,host2:5432"
-- with target_session_attrs). user and connect_timeout (seconds; libpq's, at
-- least 2) override the conninfo's. maintenance = true is for the owner role (migrations,
-- administration): it sees every tenant's rows; the application role never does.
-- read: the conninfo of a hot standby for reads that tolerate lag (see
-- db:reader()); connected when first needed. field_key: the secret (16+
-- characters) that seals and opens the sealed fields of tenants that seal
-- them (set for the session, never stored; see tenants.seal_fields).
-- spin: microseconds the client reads its socket without blocking before
-- it blocks for an answer (db:set_spin; default 1000 with two CPUs or
-- more, 0 on one): a virtual machine's halted vCPU is slow to wake.
function M.connect(conninfo, opts)
  if conninfo ~= nil and type(conninfo) ~= "string" then
    error("bad argument #1 to 'connect' (string expected, got " .. type(conninfo) .. ")", 2)
  end
  opts = opts or {}
  if opts.field_key ~= nil and type(opts.field_key) ~= "string" then error("connect: field_key must be a string", 2) end
  if opts.spin ~= nil and not (type(opts.spin) == "number" and opts.spin >= 0 and opts.spin <= core.spin_max
      and opts.spin % 1 == 0) then -- (checked before connecting; the bound is db:set_spin's)
    error("connect: spin must be a whole number of microseconds from 0 to " .. core.spin_max, 2)
  end
  local db, err, sqlstate = core.connect(conninfo or os.getenv("DATABASE_URL") or "", opts.user,
    opts.connect_timeout and tostring(opts.connect_timeout))
  if not db then return nil, err, sqlstate end
  if opts.spin ~= nil then db:set_spin(opts.spin) end
  local schema = opts.schema or M.DEFAULT_SCHEMA
  settings[db] = { schema = schema, read = opts.read and { conninfo = opts.read, user = opts.user,
    connect_timeout = opts.connect_timeout, field_key = opts.field_key, spin = opts.spin } }
  -- Unqualified names in ad-hoc queries resolve to motomind's schema first.
  local ok, e2, s2 = db:query("SELECT set_config('search_path', $1, false), " ..
    "set_config('motomind.maintenance', $2, false), set_config('motomind.field_key', $3, false)",
    db:escape_identifier(schema) .. ", public", opts.maintenance and "on" or "off", opts.field_key or "")
  if not ok then db:close(); return nil, e2, s2 end
  return db
end

--- The schema motomind's objects live in, for this connection.
function Connection:schema()
  return settings[self] and settings[self].schema or M.DEFAULT_SCHEMA
end

--- db:qualify(name) -> "schema"."name", quoted by libpq.
function Connection:qualify(name)
  return self:escape_identifier(self:schema()) .. "." .. self:escape_identifier(name)
end

--- First row of a query, or nil when there is none (nil, message, ... on error).
function Connection:row(sql, ...)
  local rows, err, sqlstate, detail = self:query(sql, ...)
  if not rows then return nil, err, sqlstate, detail end
  return rows[1]
end

--- The single value of a one-column query (nil when there is no row).
function Connection:value(sql, ...)
  local row, err, sqlstate, detail = self:row(sql, ...)
  if row == nil then return nil, err, sqlstate, detail end
  local k, v = next(row)
  if next(row, k) ~= nil then
    error("value() expects a query returning one column", 2)
  end
  return v
end

--- db:reader() -> the connection for reads that tolerate replication lag
-- (timeline pages, the feed, reports, due lists): the standby of connect's
-- opts.read once it has replayed this connection's last committed write
-- (read-your-writes), else db itself; db too while the standby is down
-- (retried after READ_RETRY seconds). Without opts.read, or inside a
-- transaction (whose own writes the standby has not seen): db.
local READ_RETRY = 5
local CAUGHT_UP = "SELECT NOT pg_is_in_recovery() OR pg_last_wal_replay_lsn() >= $1::pg_lsn AS ok"
function Connection:reader()
  local s = settings[self]
  local read = s and s.read
  if not read or self:transaction_status() ~= "idle" then return self end
  local r = self:get_reader()
  if not r or r:status() ~= "ok" then
    if read.retry_at and os.time() < read.retry_at then return self end
    r = M.connect(read.conninfo, { schema = s.schema, user = read.user, connect_timeout = read.connect_timeout,
      field_key = read.field_key, spin = read.spin })
    self:set_reader(r) -- (nil: the one that failed is closed)
    if not r then
      read.retry_at = os.time() + READ_RETRY
      return self
    end
    read.retry_at = nil
  end
  if read.lsn then
    local row = r:row(CAUGHT_UP, read.lsn)
    if not (row and row.ok) then return self end
    read.lsn = nil
  end
  return r
end

--- db:read_as(ctx, fn, ...) is db:as on db:reader(): fn(reader, ...) must
-- read through the connection it is given.
function Connection:read_as(ctx, fn, ...)
  return self:reader():as(ctx, fn, ...)
end

-- COMMIT; on a connection with a standby for reads, in the same round trip,
-- the primary's WAL position when the transaction wrote (its last write: the
-- standby must replay it before reads go there).
local COMMIT_NOTING_WRITES = "SELECT set_config('motomind.wrote', (txid_current_if_assigned() IS NOT NULL)::text, " ..
  "false); COMMIT; SELECT CASE WHEN current_setting('motomind.wrote') = 'true' AND NOT pg_is_in_recovery() " ..
  "THEN pg_current_wal_lsn()::text END AS lsn"
local function commit(db)
  local read = settings[db] and settings[db].read
  if not read then return M.assert(db:exec("COMMIT")) end
  local rows = M.assert(db:script(COMMIT_NOTING_WRITES))
  if rows[1].lsn ~= M.null then read.lsn = rows[1].lsn end
end

local function rollback(db, nested)
  if db:status() ~= "ok" then return end
  if nested then
    db:exec("ROLLBACK TO SAVEPOINT motomind_tx")
    db:exec("RELEASE SAVEPOINT motomind_tx")
  else
    db:exec("ROLLBACK")
  end
end

local function finish(db, nested, ok, ...)
  if ok and db:transaction_status() == "inerror" then
    -- fn reported the failure itself (nil, message, sqlstate, detail):
    -- roll back and hand that on; otherwise it ignored a failed statement.
    local first, message = ...
    if first == nil and type(message) == "string" then
      rollback(db, nested)
      return ...
    end
    local err = "transaction aborted by an earlier failed statement; rolled back"
    return finish(db, nested, false, setmetatable({ message = err, sqlstate = "25P02" }, Error))
  end
  if ok then
    if nested then M.assert(db:exec("RELEASE SAVEPOINT motomind_tx")) else commit(db) end
    return ...
  end
  rollback(db, nested)
  error((...), 0)
end

--- db:transaction(fn, ...) calls fn(db, ...) in a transaction: commits and
-- returns fn's results, or rolls back and re-raises fn's error unchanged.
-- When fn returns nil, message, ... after a statement failed, the
-- transaction is rolled back and those values are returned as they are.
-- Nested calls use savepoints, so an inner failure undoes only the inner work.
-- When the transaction cannot even begin (the server went away), fn is not
-- called and the failure is returned: nil, message, sqlstate, detail.
function Connection:transaction(fn, ...)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'transaction' (function expected, got " .. type(fn) .. ")", 2)
  end
  local state = self:transaction_status()
  if state == "inerror" then
    error("transaction(): the current transaction is aborted; roll it back first", 2)
  end
  local nested = state == "intrans"
  local ok, err, sqlstate, detail = self:exec(nested and "SAVEPOINT motomind_tx" or "BEGIN")
  if not ok then return nil, err, sqlstate, detail end -- (the server is gone, say)
  return finish(self, nested, pcall(fn, self, ...))
end

local CONTEXT = "SELECT set_config('motomind.tenant_id', $1, true), " ..
  "set_config('motomind.user_id', $2, true), set_config('motomind.request_id', $3, true)"
local GENERIC_CONTEXT = CONTEXT .. ", set_config('plan_cache_mode', 'force_generic_plan', true)"

-- The context statement's parameters: ctx's tenant, user and request id
-- ("" for none). Raises, blaming the caller `level` frames up, when ctx is
-- not a table.
local function context_args(method, ctx, level)
  if type(ctx) ~= "table" then
    error(("bad argument #1 to '%s' (table expected, got %s)"):format(method, type(ctx)), level + 1)
  end
  return ctx.tenant or "", ctx.user or "", ctx.request_id or ""
end

-- db:as, the context set by the statement context (CONTEXT or GENERIC_CONTEXT).
local function enter(method, db, context, ctx, fn, ...)
  local tenant, user, request_id = context_args(method, ctx, 2) -- (callers tail-call enter)
  if type(fn) ~= "function" then
    error(("bad argument #2 to '%s' (function expected, got %s)"):format(method, type(fn)), 2)
  end
  if db:transaction_status() == "idle" then
    local ok, err, sqlstate, detail = db:begin_with(context, tenant, user, request_id)
    if not ok then return nil, err, sqlstate, detail end -- (the server is gone, say)
    return finish(db, false, pcall(fn, db, ...))
  end
  return db:transaction(function(_, ...)
    local ok, err, sqlstate, detail = db:query(context, tenant, user, request_id)
    if not ok then return nil, err, sqlstate, detail end
    return fn(db, ...)
  end, ...)
end

--- db:as({ tenant = <uuid>, user = <uuid>, request_id = <text> }, fn, ...)
-- runs fn(db, ...) in a transaction whose session context is that user acting
-- in that tenant (set_config(..., true): it ends with the transaction). The
-- database checks the user is a member; row-level security does the rest.
-- Outside a transaction, BEGIN and the context go in one round trip.
function Connection:as(ctx, fn, ...)
  return enter("as", self, CONTEXT, ctx, fn, ...)
end

--- db:read_as_generic(ctx, fn, ...) is db:read_as with generic plans for
-- the transaction (plan_cache_mode, set in the same round trip): for
-- prepared statements whose best plan does not depend on their parameters'
-- values, such as a timeline page, where planning each execution again
-- costs more than running it.
function Connection:read_as_generic(ctx, fn, ...)
  return enter("read_as_generic", self:reader(), GENERIC_CONTEXT, ctx, fn, ...)
end

-- Per connection (weak: closed ones go), the statements read_prepared_as
-- has prepared on it.
local prepared = setmetatable({}, { __mode = "k" })

--- db:read_prepared_as(ctx, name, sql, ...) -> rows | nil, message,
-- sqlstate, detail: one statement read as db:read_as_generic(ctx) reads it,
-- in one round trip. The statement is prepared as name (once per connection;
-- the name must say its SQL), and the context, the statement and the end of
-- its transaction go to the server together (libpq's pipeline mode: an
-- implicit transaction, which set_config(..., true) does not outlive). Inside
-- an open transaction it is read_as_generic around the statement.
function Connection:read_prepared_as(ctx, name, sql, ...)
  local args = { context_args("read_prepared_as", ctx, 2) }
  local db = self:reader() -- (self inside a transaction)
  local mine = prepared[db] or {}
  prepared[db] = mine
  if not mine[name] then
    local ok, err, sqlstate, detail = db:prepare(name, sql)
    if not ok then return nil, err, sqlstate, detail end
    mine[name] = true
  end
  if db:transaction_status() == "idle" then return db:query_prepared_after(GENERIC_CONTEXT, args, name, ...) end
  return enter("read_prepared_as", db, GENERIC_CONTEXT, ctx, function(_, ...) return db:query_prepared(name, ...) end, ...)
end

--- ensure_partitions{ ahead = 2 } creates the event partitions of the current
-- period and `ahead` periods after it, and moves rows out of the DEFAULT
-- partition into real partitions. Returns the names it created.
function Connection:ensure_partitions(opts)
  opts = opts or {}
  local rows, err, sqlstate, detail = self:query("SELECT p FROM " ..
    self:escape_identifier(self:schema()) .. ".ensure_partitions($1) AS p", opts.ahead or 2)
  if not rows then return nil, err, sqlstate, detail end
  local names = {}
  for i, r in ipairs(rows) do names[i] = r.p end
  return names
end

--- Range partitions, gaps and the DEFAULT partition of vehicle_events, with row counts.
function Connection:partition_coverage()
  return self:query("SELECT * FROM " .. self:qualify("partition_coverage") .. " ORDER BY range_from NULLS LAST")
end

--- Applies pending migrations (see motomind.migrate).
function Connection:migrate(opts)
  return require("motomind.migrate").migrate(self, opts)
end

--- Applied and pending migrations (see motomind.migrate).
function Connection:migration_status(opts)
  return require("motomind.migrate").status(self, opts)
end

-- The context of opts.tenant / opts.user / opts.request_id.
local function context(opts)
  return { tenant = opts.tenant, user = opts.user, request_id = opts.request_id }
end

--- db:import(path_or_reader, { tenant =, user =, format =, ... }) imports a
-- file as that user of that tenant (see motomind.import for the
-- options and the report). A reader is a function returning the file's
-- chunks, then nil; it is spooled to a temporary file first.
function Connection:import(source, opts)
  opts = opts or {}
  local import = require "motomind.import"
  if type(source) ~= "function" then return import.import(self, context(opts), source, opts) end
  local path = os.tmpname()
  local ok, report, err, sqlstate, detail = pcall(function()
    local f = assert(io.open(path, "wb"))
    local spooled, why = pcall(function() for chunk in source do f:write(chunk) end end)
    f:close()
    if not spooled then error(why, 0) end
    local named = setmetatable({ name = opts.name or "(reader)" }, { __index = opts })
    return import.import(self, context(opts), path, named)
  end)
  os.remove(path) -- also when the reader raised
  if not ok then error(report, 0) end
  return report, err, sqlstate, detail
end

--- db:export(path_or_sink, { tenant =, user =, format =, vehicle = }) ->
-- records | nil, message, sqlstate, detail (see motomind.export).
function Connection:export(sink, opts)
  opts = opts or {}
  return require("motomind.export").export(self, context(opts), sink, opts)
end

--- db:refresh{ max_age = seconds }, db:maintain{ ... }, db:health{ ... }:
-- see motomind.maintenance.
for _, name in ipairs { "refresh", "maintain", "health" } do
  Connection[name] = function(self, opts) return require("motomind.maintenance")[name](self, opts) end
end

return M
