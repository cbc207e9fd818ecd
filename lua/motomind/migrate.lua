--- Versioned schema migrations: sql/migrations/NNNN_name.up.sql and
-- NNNN_name.down.sql, applied each in its own transaction under an advisory
-- lock, recorded in <schema>.schema_migrations with a checksum. An applied
-- migration whose file changed is refused: history is never rewritten.
local motomind = require "motomind"
local core = require "motomind.core"

local M = {}

--- The directory of motomind's SQL (migrations/, payloads.json): MOTOMIND_SQL,
-- the copy installed beside this module, or the source tree's sql/.
function M.sql_directory()
  local env = os.getenv("MOTOMIND_SQL")
  if env then return env end
  local src = debug.getinfo(1, "S").source
  local here = src:sub(1, 1) == "@" and src:sub(2):match("^(.*)/[^/]*$") or "."
  for _, dir in ipairs { here .. "/sql", here .. "/../../sql" } do
    if core.listdir(dir .. "/migrations") then return dir end
  end
  error("motomind: cannot find its SQL files (set MOTOMIND_SQL)")
end

--- The directory holding the migration files (MOTOMIND_MIGRATIONS overrides).
function M.directory()
  return os.getenv("MOTOMIND_MIGRATIONS") or M.sql_directory() .. "/migrations"
end

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("*a")
  f:close()
  return text
end

--- Lists the migrations in dir (or in each of a list of dirs), ordered by
-- version: { version = 1, name = "core_tables", up = path, down = path }.
-- Raises on a malformed name, a duplicate version or a missing down script.
function M.load(dirs)
  dirs = dirs or M.directory()
  if type(dirs) == "string" then dirs = { dirs } end
  local by_version, list = {}, {}
  for _, dir in ipairs(dirs) do
    for _, file in ipairs(assert(core.listdir(dir))) do
      local v, name, dirn = file:match("^(%d%d%d%d)_([%w_]+)%.(%a+)%.sql$")
      if file:match("%.sql$") and not (v and (dirn == "up" or dirn == "down")) then
        error(("migration file %s: expected NNNN_name.up.sql or NNNN_name.down.sql"):format(file))
      end
      if v then
        local version = tonumber(v)
        local m = by_version[version]
        if not m then
          m = { version = version, name = name }
          by_version[version] = m
          list[#list + 1] = m
        elseif m.name ~= name then
          error(("migration %s: two names for one version (%s, %s)"):format(v, m.name, name))
        end
        m[dirn] = dir .. "/" .. file
      end
    end
  end
  table.sort(list, function(a, b) return a.version < b.version end)
  for _, m in ipairs(list) do
    if not m.up or not m.down then
      error(("migration %04d_%s: both .up.sql and .down.sql are required"):format(m.version, m.name))
    end
  end
  return list
end

local function label(m) return ("%04d_%s"):format(m.version, m.name) end

local function checksum(db, text)
  return motomind.assert(db:value("SELECT encode(sha256(convert_to($1, 'UTF8')), 'hex')", text))
end

local function ensure_history(db, schema)
  local qs = db:escape_identifier(schema)
  motomind.assert(db:script(
    "CREATE SCHEMA IF NOT EXISTS " .. qs .. ";\n" ..
    "CREATE TABLE IF NOT EXISTS " .. qs .. [[.schema_migrations (
       version     integer PRIMARY KEY,
       name        text NOT NULL,
       checksum    text NOT NULL,
       applied_at  timestamptz NOT NULL DEFAULT now(),
       applied_by  text NOT NULL DEFAULT current_user,
       duration_ms numeric NOT NULL DEFAULT 0)]]))
end

local function applied_rows(db, schema)
  local exists = motomind.assert(db:query("SELECT to_regclass($1) IS NOT NULL AS ok",
    db:escape_identifier(schema) .. ".schema_migrations"))[1].ok
  if not exists then return {} end
  local rows = motomind.assert(db:query(
    "SELECT version, name, checksum, applied_at, applied_by FROM " ..
    db:escape_identifier(schema) .. ".schema_migrations ORDER BY version"))
  local by_version = {}
  for _, r in ipairs(rows) do by_version[r.version] = r end
  return by_version
end

--- Compares files with the history: each migration gets state "applied",
-- "pending" or "changed" (checksum differs); applied versions without a
-- file come back as state "missing".
-- The directories of a migrate/status call: the main set, plus the Supabase
-- set when opts.supabase.
local function dirs_of(opts)
  local dirs = { opts.dir or M.directory() }
  if opts.supabase then dirs[2] = M.sql_directory() .. "/supabase" end
  return dirs
end

local function plan(db, schema, opts)
  local files = M.load(dirs_of(opts))
  local applied = applied_rows(db, schema)
  local seen, out = {}, {}
  for _, m in ipairs(files) do
    m.up_sql = read(m.up)
    m.checksum = checksum(db, m.up_sql)
    local a = applied[m.version]
    seen[m.version] = true
    if a then
      m.applied_at, m.applied_by, m.applied_checksum = a.applied_at, a.applied_by, a.checksum
      m.state = (a.checksum ~= m.checksum or a.name ~= m.name) and "changed" or "applied"
    else
      m.state = "pending"
    end
    out[#out + 1] = m
  end
  for version, a in pairs(applied) do
    if not seen[version] then
      out[#out + 1] = { version = version, name = a.name, state = "missing",
                        applied_at = a.applied_at, applied_by = a.applied_by }
    end
  end
  table.sort(out, function(a, b) return a.version < b.version end)
  return out
end

local function refuse_drift(list)
  for _, m in ipairs(list) do
    if m.state == "changed" then
      error(("migration %s: checksum mismatch: applied as %s, the file now has %s; " ..
             "an applied migration must never change, add a new one instead")
            :format(label(m), m.applied_checksum:sub(1, 12), m.checksum:sub(1, 12)), 0)
    elseif m.state == "missing" then
      error(("migration %s is applied but its file is missing (is this an older motomind?)")
            :format(label(m)), 0)
    end
  end
end

-- A deadlock or serialization failure rolled the whole migration back (one
-- transaction): it is run again, up to this many times in all. Another
-- session's locks (a concurrent ANALYZE of the partitions, say) can close
-- a cycle with a script's DDL, and a migrator that gave up there would leave
-- the schema between versions for no fault of its own.
local ATTEMPTS = 3
local TRANSIENT = { ["40P01"] = true, ["40001"] = true }

-- The error of migration m failing in direction with message, sqlstate, detail.
local function failure(m, direction, message, sqlstate, detail)
  return setmetatable({ message = ("migration %s (%s): %s"):format(label(m), direction, message),
                        sqlstate = sqlstate, detail = detail }, motomind.Error)
end

local function run_one(db, schema, m, direction, opts, attempt)
  attempt = attempt or 1
  local history = db:escape_identifier(schema) .. ".schema_migrations"
  -- (the transaction returns nil, message, ... when it could not begin)
  local ok, err, message, sqlstate, detail = pcall(db.transaction, db, function()
    local started = os.clock()
    -- The owner migrates in maintenance mode (row-level security lets it see
    -- every tenant's rows); app_role names the application role to create.
    -- pg_temp goes last, so functions made with SET search_path FROM CURRENT
    -- (SECURITY DEFINER ones included) never see a temporary table first.
    motomind.assert(db:query("SELECT set_config('search_path', $1, true), " ..
      "set_config('motomind.maintenance', 'on', true), set_config('motomind.app_role', $2, true)",
      db:escape_identifier(schema) .. ", pg_temp", opts.app_role or ""))
    local ran, message, sqlstate, detail = db:script(direction == "up" and m.up_sql or read(m.down))
    if not ran then error(failure(m, direction, message, sqlstate, detail), 0) end
    if direction == "up" then
      motomind.assert(db:exec("INSERT INTO " .. history ..
        " (version, name, checksum, duration_ms) VALUES ($1, $2, $3, $4)",
        m.version, m.name, m.checksum, (os.clock() - started) * 1000))
    else
      motomind.assert(db:exec("DELETE FROM " .. history .. " WHERE version = $1", m.version))
    end
    return true
  end)
  if ok and err then return end
  if ok then err = failure(m, direction, message, sqlstate, detail) end
  if type(err) == "table" and TRANSIENT[err.sqlstate] and attempt < ATTEMPTS then
    return run_one(db, schema, m, direction, opts, attempt + 1)
  end
  error(err, 0)
end

local function with_lock(db, schema, fn)
  motomind.assert(db:query("SELECT pg_advisory_lock(hashtext($1))", "motomind.migrate:" .. schema))
  local ok, err = pcall(fn)
  db:query("SELECT pg_advisory_unlock(hashtext($1))", "motomind.migrate:" .. schema)
  if not ok then error(err, 0) end
  return err
end

--- migrate(db, { schema =, to =, dir =, app_role =, supabase = }) brings the schema to version `to`
-- (default: the newest), applying up scripts or rolling back through down
-- scripts. Returns the list of { version, name, direction } it ran.
-- Two migrators started together serialize on an advisory lock: the second
-- finds nothing left to do.
function M.migrate(db, opts)
  opts = opts or {}
  local schema = opts.schema or db:schema()
  return with_lock(db, schema, function()
    ensure_history(db, schema)
    local list = plan(db, schema, opts)
    refuse_drift(list)
    local target = opts.to or (list[#list] and list[#list].version or 0)
    local done = {}
    for _, m in ipairs(list) do
      if m.state == "pending" and m.version <= target then
        run_one(db, schema, m, "up", opts)
        done[#done + 1] = { version = m.version, name = m.name, direction = "up" }
      end
    end
    for i = #list, 1, -1 do
      local m = list[i]
      if m.state == "applied" and m.version > target then
        run_one(db, schema, m, "down", opts)
        done[#done + 1] = { version = m.version, name = m.name, direction = "down" }
      end
    end
    return done
  end)
end

--- status(db, { schema =, dir =, supabase = }) -> list of { version, name, state,
-- applied_at, applied_by } with state applied / pending / changed / missing.
function M.status(db, opts)
  opts = opts or {}
  local list = plan(db, opts.schema or db:schema(), opts)
  local out = {}
  for i, m in ipairs(list) do
    out[i] = { version = m.version, name = m.name, state = m.state,
               applied_at = m.applied_at, applied_by = m.applied_by }
  end
  return out
end

return M
