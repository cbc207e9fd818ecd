-- Shared by the specs: a real PostgreSQL (DATABASE_URL, set by tools/with-db)
-- and throwaway schemas, so specs never see each other's tables.
local motomind = require "motomind"

local H = {}

H.root = (debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$")) or "."
H.lua = os.getenv("MOTOMIND_TEST_LUA") or (jit and "luajit" or "lua5.4")

local counter = 0

--- A connection as the owner, in maintenance mode (it sees every tenant);
-- raises when the database is unreachable.
function H.connect(opts)
  opts = opts or {}
  if opts.maintenance == nil then opts.maintenance = true end
  return motomind.assert(motomind.connect(nil, opts))
end

--- A new empty schema name, unique to this process and call.
function H.schema_name(prefix)
  counter = counter + 1
  return ("%s_%d_%d_%d"):format(prefix or "spec", os.time() % 100000,
    math.random(1, 1e6), counter)
end

--- Connects with a fresh schema, migrated unless migrate == false.
-- Returns db; H.drop(db) removes the schema again.
function H.fresh(opts)
  opts = opts or {}
  local db = H.connect { schema = H.schema_name(opts.prefix) }
  if opts.migrate ~= false then db:migrate() end
  return db
end

function H.drop(db)
  if db:status() == "ok" then
    for _, suffix in ipairs { "", "_private", "_archive" } do
      db:exec("DROP SCHEMA IF EXISTS " .. db:escape_identifier(db:schema() .. suffix) .. " CASCADE")
    end
    db:close()
  end
end

--- Runs a shell command; returns its output and whether it exited 0.
-- (The exit status is read from the output: LuaJIT's popen close doesn't tell.)
function H.run(cmd)
  local p = io.popen("{ " .. cmd .. "\n} 2>&1; echo \"__exit=$?\"")
  local out = p:read("*a")
  p:close()
  local body, code = out:match("^(.*)__exit=(%d+)\n$")
  return body, tonumber(code) == 0
end

--- expect(cmd, succeeds, pattern, ...) -> the output: runs cmd, asserts it
-- succeeded (true) or failed (false) and that its output matches each pattern.
function H.expect(cmd, succeeds, ...)
  local out, ok = H.run(cmd)
  assert(ok == succeeds, ("expected `%s` to %s; it printed:\n%s"):format(cmd, succeeds and "succeed" or "fail", out))
  for i = 1, select("#", ...) do require("luassert").matches((select(i, ...)), out) end
  return out
end

--- A shell command running Lua code with this checkout's modules.
function H.lua_command(code)
  local build = H.root .. "/build/" .. H.lua
  local prelude = ("package.path = %q .. package.path; package.cpath = %q .. package.cpath; ")
    :format(H.root .. "/lua/?.lua;" .. H.root .. "/lua/?/init.lua;", build .. "/?.so;")
  return H.lua .. " -e " .. H.shell_quote(prelude .. code)
end

function H.shell_quote(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

--- The conninfo of db's server and database, as user (default: db's own
-- role): for another connection or a psql process to the same place.
function H.conninfo(db, user)
  local where = db:row("SELECT coalesce(inet_server_addr()::text, 'localhost') AS host, " ..
    "inet_server_port() AS port, current_database() AS db, current_user AS me")
  return ("host=%s port=%s dbname=%s user=%s"):format(where.host:gsub("/.*", ""), where.port, where.db,
    user or where.me)
end

--- A connection as the application role to owner's database and schema.
function H.app_connect(owner)
  local role = owner:value("SELECT value FROM settings WHERE key = 'app_role'")
  return motomind.assert(motomind.connect(H.conninfo(owner, role), { schema = owner:schema() }))
end

--- Inserts a user, and their membership when tenant and role are given.
function H.user(owner, tenant, role)
  local u = owner:value("INSERT INTO users (email) VALUES ('u-' || gen_random_uuid() || '@x.example') RETURNING id")
  if tenant then
    assert(owner:exec("INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, $3)", tenant, u, role))
  end
  return u
end

--- Inserts a tenant with one vehicle; returns tenant_id, vehicle_id.
function H.tenant_with_vehicle(db, opts)
  opts = opts or {}
  local t = motomind.assert(db:value("INSERT INTO " .. db:qualify("tenants") ..
    " (name) VALUES ($1) RETURNING id", opts.name or "spec tenant"))
  local v = motomind.assert(db:value("INSERT INTO " .. db:qualify("vehicles") ..
    " (tenant_id, nickname, vin, plate) VALUES ($1, $2, $3, $4) RETURNING id",
    t, opts.nickname or "car", opts.vin or motomind.null, opts.plate or motomind.null))
  return t, v
end

--- A fresh schema with a tenant, its vehicle and an owner:
-- db, tenant_id, vehicle_id, user_id.
function H.fresh_tenant()
  local db = H.fresh()
  local t, car = H.tenant_with_vehicle(db)
  return db, t, car, H.user(db, t, "owner")
end

--- Why a spec that needs the motomind_pg library is pending without it.
H.NO_LIBRARY = "the motomind_pg library is not installed (make install-pg as root; make test installs it)"

--- Whether PostgreSQL can load the motomind_pg server library (make test
-- installs it as root): migrations 0038 and 0042 then use it.
function H.pg_library_installed()
  local dir = H.run("pg_config --pkglibdir"):gsub("%s+$", "")
  local f = io.open(dir .. "/motomind_pg.so", "rb")
  if f then f:close() end
  return f ~= nil
end

--- The whole content of a file.
function H.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

--- Writes text to a new temporary file; returns its path.
function H.write_temp(text)
  local path = os.tmpname()
  local f = assert(io.open(path, "wb"))
  f:write(text)
  f:close()
  return path
end

math.randomseed(os.time() + math.floor(os.clock() * 1e6))
-- Rows with their NULL (motomind.null) fields left out, for assert.same.
function H.without_nulls(rows)
  local out = {}
  for i, r in ipairs(rows) do
    out[i] = {}
    for k, v in pairs(r) do
      if v ~= motomind.null then out[i][k] = v end
    end
  end
  return out
end

--- generated_payloads(n) -> { {type, JSON text} } (seeded): payloads built
-- from the schema document, mutated in ways that hit every rule, for the
-- specs that hold two implementations of the rules to the same verdicts.
function H.generated_payloads(n)
  local payload = require "motomind.payload"
  local schemas = dofile(H.root .. "/tools/payload_sql.lua").load(
    require("motomind.migrate").sql_directory() .. "/payloads.json")
  local seed = 12345
  local function rand(n) seed = seed * 48271 % 2147483647 return seed % n + 1 end
  local samples = { 0, -1, 0.5, 1e7, 12.25, 101, "", "USD", "usd", "pass", "2024-02-29", "2023-02-29",
    "s3://b/k", "no url", true, false, motomind.null, { a = 1 }, setmetatable({}, motomind.json.array_mt),
    ("z"):rep(210) }
  local function value(spec, depth)
    if depth > 0 and (rand(6) == 1 or depth > 3) then return samples[rand(#samples)] end
    local t = spec.type
    if t == "number" or t == "integer" then return (spec.min or 0) + rand(100) end
    if t == "string" then
      if spec.enum then return spec.enum[rand(#spec.enum)] end
      if spec.format == "currency" then return "EUR" end
      if spec.format == "url" then return "https://x.example/" .. rand(99) end
      return ("s"):rep(rand(8))
    end
    if t == "boolean" then return rand(2) == 1 end
    if t == "date" then return ("20%02d-%02d-%02d"):format(rand(30), rand(12), rand(28)) end
    if t == "array" then
      local a = setmetatable({}, motomind.json.array_mt)
      for k = 1, rand(3) - 1 do a[k] = value(spec.items, depth + 1) end
      return a
    end
    local o = {}
    for name, f in pairs(spec.fields) do
      if rand(3) > 1 then o[name] = value(f, depth + 1) end
    end
    if rand(10) == 1 then o["unknown_" .. rand(3)] = 1 end
    return o
  end
  local types = payload.types()
  local out = {}
  for i = 1, n do
    local t = types[rand(#types)]
    local p = value({ type = "object", fields = schemas[t].fields }, 0)
    if rand(8) == 1 then p.extra = samples[rand(#samples)] end
    out[i] = { t, assert(motomind.json.encode(p)) }
  end
  return out
end

return H
