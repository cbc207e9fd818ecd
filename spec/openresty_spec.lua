-- The OpenResty example (examples/openresty) in Debian's nginx with its Lua
-- module, driven over HTTP: motomind calls run in nginx's thread pool
-- (motomind.resty).
local motomind = require "motomind"
local H = require "spec.helper"
local http = require "socket.http"
local ltn12 = require "ltn12"

local function request(port, method, path, headers, body)
  local out = {}
  headers = headers or {}
  if body then headers["content-length"] = #body end
  local _, status, resp_headers = http.request {
    url = ("http://127.0.0.1:%d%s"):format(port, path), method = method, headers = headers,
    source = body and ltn12.source.string(body) or nil, sink = ltn12.sink.table(out),
  }
  local text = table.concat(out)
  return status, text, resp_headers, (motomind.json.decode(text))
end

-- nginx runs its own LuaJIT whatever runs busted: once, in the Lua 5.4 pass.
if jit then return end

describe("OpenResty (nginx + lua-nginx-module, motomind.resty)", function()
  local db, tenant, car, user, other_tenant, other_car, other_user, prefix, port, app_role

  local function nginx(args)
    return H.run(("nginx -p %s -c %s/nginx.conf %s"):format(prefix, prefix, args or ""))
  end

  setup(function()
    local root = H.run("cd " .. H.shell_quote(H.root) .. " && pwd"):gsub("\n$", "")
    db, tenant, car, user = H.fresh_tenant()
    other_tenant, other_car = H.tenant_with_vehicle(db, { nickname = "theirs" })
    other_user = H.user(db, other_tenant, "owner")
    app_role = db:value("SELECT value FROM settings WHERE key = 'app_role'")
    for i = 1, 3 do
      assert(db:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
        "VALUES ($1, $2, 'odometer', now() - make_interval(days => 10 - $3), 1000 * $3, '{\"source\": \"manual\"}')",
        tenant, car, i))
      assert(db:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
        "VALUES ($1, $2, 'odometer', now() - make_interval(days => 10 - $3), 500 * $3, '{\"source\": \"manual\"}')",
        other_tenant, other_car, i))
    end
    -- motomind installed from its rock into a LuaJIT tree, as an OpenResty user would
    prefix = os.tmpname()
    os.remove(prefix)
    local tree = prefix .. "/tree"
    assert(H.run("mkdir -p " .. prefix .. "/logs " .. prefix .. "/examples && ln -s " .. root ..
      "/examples/openresty " .. prefix .. "/examples/openresty"))
    local built, ok = H.run(("mkdir -p %s/src && cd %s && cp -r Makefile src lua sql bin rockspec tools %s/src && " ..
      "cd %s/src && luarocks --lua-version 5.1 make rockspec/motomind-scm-1.rockspec --tree %s " ..
      "LUA_INCDIR=/usr/include/luajit-2.1"):format(prefix, H.shell_quote(root), prefix, prefix, tree))
    assert(ok, built)
    -- the example's nginx.conf with that tree, a free port and a prefix of its own
    local s = require "socket".bind("127.0.0.1", 0)
    port = select(2, s:getsockname())
    s:close()
    local conf = H.read(H.root .. "/examples/openresty/nginx.conf")
      :gsub("listen 127%.0%.0%.1:8080;", "listen 127.0.0.1:" .. port .. ";")
      :gsub("/usr/local/share/lua/5%.1/", tree .. "/share/lua/5.1/")
      :gsub("/usr/local/lib/lua/5%.1/", tree .. "/lib/lua/5.1/")
      :gsub('(lua_package_path "[^"]*)(;;")', "%1;$prefix/?.lua%2")
      :gsub("env MOTOMIND_USER;", "env MOTOMIND_USER;\nenv MOTOMIND_OWNER;")
      -- a location calling through a thread pool nginx.conf does not declare
      :gsub('(\n    location ~ "%^/vehicles)', [[

    location /no-pool {
      content_by_lua_block {
        local ok, err, sqlstate = require("motomind.resty").new { pool = "nowhere" }:call("vehicles.list", {})
        ngx.say(tostring(ok), "|", err, "|", sqlstate)
      }
    }
    location /raises {
      content_by_lua_block {
        require("motomind.resty").protect(function()
          require("motomind").assert(nil, "boom: a bad thing", "22023", { hint = "look here" })
        end)()
      }
    }
    location /notice {
      content_by_lua_block {
        local ok, err = require("motomind.resty").new { modules = { "spec_notices" }, vms = 500,
          -- (its own connection, as the owner: the application role's count stays the app's)
          conninfo = os.getenv("MOTOMIND_DATABASE_URL"), schema = os.getenv("MOTOMIND_SCHEMA"),
          user = os.getenv("MOTOMIND_OWNER") }:call("spec_notices.warn", {})
        ngx.say(tostring(ok), "|", tostring(err))
      }
    }
    location /refused {
      content_by_lua_block {
        local ok, err, sqlstate = require("motomind.resty").new { modules = { "vehicle_page" } }:call("os.exit", {})
        ngx.say(tostring(ok), "|", err, "|", sqlstate)
      }
    }%1]], 1)
    -- a module of the spec's own that makes the server warn
    local m = assert(io.open(prefix .. "/spec_notices.lua", "w"))
    m:write([[return { warn = function(db) return db:exec("DO $$ BEGIN RAISE WARNING 'spec notice %', 42; END $$") end }]])
    m:close()
    local f = assert(io.open(prefix .. "/nginx.conf", "w"))
    f:write(conf)
    f:close()
    local where = db:row("SELECT inet_server_port() AS port, current_database() AS db")
    local out, ok = H.run(("env -u LUA_PATH -u LUA_CPATH MOTOMIND_DATABASE_URL=%s MOTOMIND_SCHEMA=%s MOTOMIND_USER=%s " ..
      "MOTOMIND_OWNER=%s nginx -p %s -c %s/nginx.conf")
      :format(H.shell_quote(("host=127.0.0.1 port=%s dbname=%s"):format(where.port, where.db)), db:schema(), app_role,
        H.shell_quote(db:value("SELECT current_user")), prefix, prefix))
    assert(ok, out)
    for _ = 1, 50 do -- until it listens
      if request(port, "GET", "/no-pool") then break end
      require "socket".sleep(0.1)
    end
  end)

  teardown(function()
    if not prefix then return end
    nginx("-s stop")
    require "socket".sleep(0.2)
    if not os.getenv("MOTOMIND_KEEP_NGINX") then H.run("rm -rf " .. prefix) end
    H.drop(db)
  end)

  local function as(t, u) return { ["x-tenant"] = t, ["x-user"] = u } end

  it("serves a vehicle's timeline page as JSON, from a thread", function()
    local status, _, headers, page = request(port, "GET", "/vehicles/" .. car .. "/events", as(tenant, user))
    assert.equal(200, status)
    assert.equal("application/json", headers["content-type"])
    assert.equal(3, #page.events)
    assert.same({ 3000, 2000, 1000 }, { tonumber(page.events[1].mileage), tonumber(page.events[2].mileage),
      tonumber(page.events[3].mileage) })
    assert.equal(car, page.events[1].vehicle_id)
  end)

  it("appends an event from a JSON body: 201, or 422 with the codec's message", function()
    local body = '{"type":"fuel","occurred_at":"' .. os.date("!%Y-%m-%dT%H:%M:%SZ") .. '","mileage":9500,' ..
      '"payload":{"volume":40,"unit":"l","total":60,"currency":"EUR","full":true}}'
    local status, text, _, stored = request(port, "POST", "/vehicles/" .. car .. "/events", as(tenant, user), body)
    assert.equal(201, status, text)
    assert.equal(car, stored.vehicle_id)
    assert.equal(1, db:value("SELECT count(*) FROM vehicle_events WHERE id = $1", stored.id))
    status, text, _, stored = request(port, "POST", "/vehicles/" .. car .. "/events", as(tenant, user),
      '{"type":"fuel","occurred_at":"' .. os.date("!%Y-%m-%dT%H:%M:%SZ") .. '","mileage":9600,"payload":{"volume":-1,"unit":"l"}}')
    assert.equal(422, status, text)
    assert.matches("payload.volume", stored.error)
  end)

  it("keeps tenants apart: another tenant's vehicle is 404, never its data", function()
    local status, text = request(port, "GET", "/vehicles/" .. other_car .. "/events", as(tenant, user))
    assert.equal(404, status, text)
    assert.not_matches(other_car .. '"', text:gsub("vehicle %b\"\"", ""))
    status = request(port, "POST", "/vehicles/" .. other_car .. "/events", as(tenant, user),
      '{"type":"odometer","occurred_at":"2026-01-02T10:00:00Z","mileage":1,"payload":{"source":"manual"}}')
    assert.equal(404, status)
    -- requests of both tenants through the same threads: each sees only its own
    for i = 1, 40 do
      local mine = i % 2 == 0
      local _, _, _, page = request(port, "GET", "/vehicles/" .. (mine and car or other_car) .. "/events",
        mine and as(tenant, user) or as(other_tenant, other_user))
      assert.is_true(#page.events > 0)
      for _, e in ipairs(page.events) do assert.equal(mine and car or other_car, e.vehicle_id) end
    end
  end)

  it("imports an uploaded CSV and streams a vehicle's export back", function()
    local csv = "Date,Odometer,FuelConsumed,Cost,FuelEconomy,IsFillToFull,MissedFuelUp,Notes,Tags\n" ..
      os.date("!%m/%d/%Y", os.time() + 2 * 86400) .. ",9800,10.5,36.75,,True,False,,\n" ..
      os.date("!%m/%d/%Y", os.time() + 3 * 86400) .. ",9900,11,38.5,,True,False,,\n"
    local status, text, _, report = request(port, "POST", "/vehicles/" .. car .. "/imports?format=lubelogger-fuel",
      as(tenant, user), csv)
    assert.equal(200, status, text)
    assert.same({ 2, 2 }, { report.records, report.inserted })
    local body
    status, body = request(port, "GET", "/vehicles/" .. car .. "/export.csv?format=lubelogger-fuel", as(tenant, user))
    assert.equal(200, status)
    assert.matches("^Date,Odometer,FuelConsumed", body)
    assert.matches("\n" .. os.date("!%m/%d/%Y", os.time() + 3 * 86400) .. ",9900,11,38.5,", body)
  end)

  it("says what is missing when the thread pool is not declared, and runs only motomind's and the app's modules", function()
    local _, text = request(port, "GET", "/no-pool")
    assert.matches('^nil|motomind.resty: no thread pool "nowhere": add `thread_pool nowhere threads=4;`', text)
    _, text = request(port, "GET", "/refused")
    assert.equal('nil|motomind.resty: cannot call "os.exit" (module.function of: export, import, reminders, ' ..
      'timeline, vehicle_page, vehicles)|22023\n', text)
  end)

  it("logs a raised motomind error with its message, SQLSTATE and detail (resty.protect), and answers 500", function()
    local status = request(port, "GET", "/raises")
    assert.equal(500, status)
    local log = H.read(prefix .. "/logs/error.log")
    assert.matches('boom: a bad thing %(SQLSTATE 22023%); detail: {"hint":"look here"}', log)
  end)

  it("serves more concurrent calls than thread VMs: the extra ones wait for a VM", function()
    local url = ("http://127.0.0.1:%d/vehicles/%s/events?limit=5"):format(port, car)
    local out = H.run(("for i in $(seq 16); do curl -s -o /dev/null -w '%%{http_code}\\n' -H 'X-Tenant: %s' " ..
      "-H 'X-User: %s' '%s' & done; wait"):format(tenant, user, url))
    assert.equal(("200\n"):rep(16), out)
  end)

  it("sends the server's notices to nginx's log, and warns of a connection budget past max_connections", function()
    local _, text = request(port, "GET", "/notice")
    assert.equal("0|nil\n", text)
    local log = H.read(prefix .. "/logs/error.log")
    assert.matches("motomind: WARNING:  spec notice 42", log)
    -- and that a client's connection budget exceeds the server's max_connections
    assert.matches("motomind: WARNING:  motomind.resty may hold 500 connections %(vms 500 x pool_size 1 x 1 workers%), " ..
      "more than the server's max_connections", log)
  end)

  it("keeps one connection per thread over 1,000 requests, and recovers after the server drops them", function()
    for _ = 1, 1000 do
      local status = request(port, "GET", "/vehicles/" .. car .. "/events?limit=5", as(tenant, user))
      assert.equal(200, status)
    end
    local function connections()
      return db:value("SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND datname = current_database()",
        app_role)
    end
    assert.is_true(connections() <= 4, "connections: " .. connections()) -- threads=4, pool_size 1
    assert(db:query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1 " ..
      "AND datname = current_database()", app_role))
    -- each thread's dead connection fails one request cleanly (503, JSON), then it reconnects
    local failed, served = 0, 0
    for _ = 1, 20 do
      local status, text, _, body = request(port, "GET", "/vehicles/" .. car .. "/events?limit=5", as(tenant, user))
      if status == 200 then served = served + 1
      else
        failed = failed + 1
        assert.equal(503, status, text)
        assert.is_string(body.error)
      end
    end
    assert.is_true(failed <= 4, "failed: " .. failed)
    assert.is_true(served >= 16)
    assert.is_true(connections() <= 4)
  end)

  -- A real restart of the server (this project's throwaway cluster, which
  -- the suite runs on: stopped and started again on its port).
  it("answers 503 promptly while the database is down, and serves again once it is back", function()
    local pg_local = H.shell_quote(H.root .. "/tools/pg-local")
    local url = H.run(pg_local .. " url"):gsub("\n$", "")
    if url ~= os.getenv("DATABASE_URL") then
      pending("DATABASE_URL is not this project's cluster: the spec does not restart someone else's server")
      return
    end
    local page = "/vehicles/" .. car .. "/events?limit=5"
    assert.equal(200, (request(port, "GET", page, as(tenant, user))))
    local out, ok = H.run(pg_local .. " down")
    assert(ok, out)
    local gettime = require("socket").gettime
    for _ = 1, 8 do
      local t0 = gettime()
      local status, text, _, body = request(port, "GET", page, as(tenant, user))
      assert.equal(503, status, text)
      assert.is_string(body.error)
      assert.is_true(gettime() - t0 < 3, "a request took " .. (gettime() - t0) .. " s while the database was down")
    end
    out, ok = H.run(pg_local .. " up")
    assert(ok, out)
    local served = 0
    for _ = 1, 20 do
      if request(port, "GET", page, as(tenant, user)) == 200 then served = served + 1 end
    end
    assert.is_true(served >= 16, "served after the restart: " .. served)
    local schema = db:schema()
    db:close() -- (the spec's own connection dropped with the server)
    db = H.connect { schema = schema }
  end)

  -- Last: it stops nginx. Its thread VMs end with their pooled connections
  -- open, which the collector closes without the leak warning.
  it("stops cleanly: the thread VMs' pooled connections close without a warning", function()
    assert.equal(200, (request(port, "GET", "/vehicles/" .. car .. "/events?limit=5", as(tenant, user))))
    local pid = H.read(prefix .. "/logs/nginx.pid"):match("%d+")
    nginx("-s quit")
    for _ = 1, 100 do
      if not select(2, H.run("kill -0 " .. pid .. " 2>/dev/null")) then break end
      require "socket".sleep(0.1)
    end
    assert.is_false(select(2, H.run("kill -0 " .. pid .. " 2>/dev/null")), "nginx still running")
    assert.no.matches("garbage-collected while open", H.read(prefix .. "/logs/error.log"), 1, true)
  end)
end)
