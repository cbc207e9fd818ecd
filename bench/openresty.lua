-- make bench-openresty: a vehicle's 50-event timeline page served by
-- Debian's nginx with its Lua module, three ways (motomind blocking the
-- worker, motomind in the thread pool, pgmoon over cosockets), with and
-- without 20 ms of server time, at 1, 8 and 32 connections (wrk), with one
-- and two workers. A benchmark, never a test. Writes its table into
-- bench/RESULTS.md (between the openresty markers).
local motomind = require "motomind"
local common = require "bench.common"

local SECONDS = tonumber(os.getenv("BENCH_SECONDS") or 10)
local ROOT = (arg[0]:match("^(.*)/bench/[^/]*$") or "."):gsub("^%.$", os.getenv("PWD"))
local PEERS = os.getenv("MOTOMIND_PEERS") or (ROOT .. "/../shared/peers")

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("*a")
  local ok = p:close()
  return out, ok
end

-- The data: a tenant with one vehicle of 60 fill-ups, read as the application role.
local db = common.fresh("bench_openresty")
local tenant = motomind.assert(db:value("INSERT INTO tenants (name) VALUES ('bench') RETURNING id"))
local user = motomind.assert(db:value("INSERT INTO users (email) VALUES ('openresty@bench.example') RETURNING id"))
motomind.assert(db:exec("INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'owner')", tenant, user))
local vehicle = motomind.assert(db:value("INSERT INTO vehicles (tenant_id, nickname, odometer_unit, timezone) " ..
  "VALUES ($1, 'bench', 'km', 'Europe/Berlin') RETURNING id", tenant))
motomind.assert(db:exec([[INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload)
  SELECT $1, $2, 'fuel', now() - make_interval(days => 7 * (61 - k)), 10000 + 500 * k,
         jsonb_build_object('volume', 40 + k % 7, 'unit', 'l', 'total', 60 + k % 11, 'currency', 'EUR', 'full', true,
                            'station', 'Shell Hauptstrasse ' || k)
    FROM generate_series(1, 60) k]], tenant, vehicle))
local role = motomind.assert(db:value("SELECT value FROM settings WHERE key = 'app_role'"))
local where = motomind.assert(db:row("SELECT coalesce(inet_server_addr()::text, '127.0.0.1') AS host, " ..
  "inet_server_port() AS port, current_database() AS db"))

-- nginx: a prefix of its own, the handlers at /blocking, /thread, /pgmoon.
local prefix = os.tmpname()
os.remove(prefix)
assert(select(2, sh("mkdir -p " .. prefix .. "/logs")))
local port = 18000 + math.random(0, 999)
local HANDLERS = { "blocking", "thread", "thread_json", "pgmoon" }
local function start(workers)
  local conf = ([=[
load_module /usr/lib/nginx/modules/ndk_http_module.so;
load_module /usr/lib/nginx/modules/ngx_http_lua_module.so;
worker_processes %d;
error_log logs/error.log warn;
pid logs/nginx.pid;
thread_pool motomind threads=16;
env DATABASE_URL; env BENCH_TENANT; env BENCH_USER; env BENCH_VEHICLE; env BENCH_SCHEMA; env BENCH_ROLE;
env BENCH_PG_HOST; env BENCH_PG_PORT; env BENCH_PG_DATABASE;
events { worker_connections 1024; }
http {
  access_log off;
  lua_worker_thread_vm_pool_size 16; # one VM (and connection) per thread, kept
  lua_package_path "%s/lua/?.lua;%s/lua/?/init.lua;%s/bench/?.lua;%s/pgmoon/?.lua;%s/pgmoon/?/init.lua;;";
  lua_package_cpath "%s/build/luajit/?.so;;";
  server {
    listen 127.0.0.1:%d;
    location ~ ^/(blocking|thread|thread_json|pgmoon)$ {
      content_by_lua_block { require("openresty_handlers")[ngx.var[1]](ngx.var.arg_slow ~= nil) }
    }
  }
}
]=]):format(workers, ROOT, ROOT, ROOT, PEERS, PEERS, ROOT, port)
  local f = assert(io.open(prefix .. "/nginx.conf", "w"))
  f:write(conf)
  f:close()
  local out, ok = sh(("DATABASE_URL=%q BENCH_TENANT=%s BENCH_USER=%s BENCH_VEHICLE=%s BENCH_SCHEMA=bench_openresty " ..
    "BENCH_ROLE=%s BENCH_PG_HOST=%s BENCH_PG_PORT=%s BENCH_PG_DATABASE=%s nginx -p %s -c %s/nginx.conf")
    :format(os.getenv("DATABASE_URL") or "", tenant, user, vehicle, role, where.host:gsub("/.*", ""), where.port,
      where.db, prefix, prefix))
  assert(ok, out)
  sh("sleep 0.5")
  for _, h in ipairs(HANDLERS) do -- each answers, and warms up (every thread VM connected)
    local body = sh(("curl -s -o /dev/null -w '%%{http_code}' http://127.0.0.1:%d/%s"):format(port, h))
    assert(body == "200", h .. " answered " .. body .. ": see " .. prefix .. "/logs/error.log")
    sh(("wrk -t2 -c32 -d2s 'http://127.0.0.1:%d/%s?slow=1'"):format(port, h))
  end
end
local function stop() sh(("nginx -p %s -c %s/nginx.conf -s stop; sleep 0.5"):format(prefix, prefix)) end

-- One point: requests per second and median latency (ms) from wrk.
local function point(handler, slow, connections)
  local out = sh(("wrk -t%d -c%d -d%ds --latency 'http://127.0.0.1:%d/%s%s'"):format(math.min(2, connections),
    connections, SECONDS, port, handler, slow and "?slow=1" or ""))
  local rps = tonumber(out:match("Requests/sec:%s*([%d.]+)"))
  local value, unit = out:match("\n%s*50%%%s*([%d.]+)(%a+)")
  local p50 = tonumber(value) and tonumber(value) * ({ us = 0.001, ms = 1, s = 1000 })[unit]
  local errors = out:match("Non%-2xx or 3xx responses: (%d+)")
  assert(rps and p50, "wrk: " .. out)
  return rps, p50, tonumber(errors) or 0
end

local rows = {}
local LABEL = { blocking = "motomind, in the request (blocking)", thread = "motomind.resty call + cjson.encode",
  thread_json = "motomind.resty call_json (encoded in the thread)", pgmoon = "pgmoon (cosockets) + cjson, the peer" }
local figures = {}
for _, workers in ipairs { 1, 2 } do
  start(workers)
  for _, slow in ipairs { false, true } do
    for _, h in ipairs(HANDLERS) do
      local cells = {}
      for _, c in ipairs { 1, 8, 32 } do
        local rps, p50, errors = point(h, slow, c)
        figures[table.concat({ workers, tostring(slow), h, c }, "/")] = { rps, p50 }
        cells[#cells + 1] = ("%.0f (%.1f ms)%s"):format(rps, p50, errors > 0 and (" %d errors"):format(errors) or "")
      end
      rows[#rows + 1] = ("| %d | %s | %s | %s |"):format(workers, slow and "page + 20 ms" or "page", LABEL[h],
        table.concat(cells, " | "))
      io.stderr:write(rows[#rows], "\n")
    end
  end
  stop()
end
if not os.getenv("BENCH_KEEP") then sh("rm -rf " .. prefix) end
common.drop(db)
db:close()

local function f(workers, slow, h, c, i) return figures[table.concat({ workers, tostring(slow), h, c }, "/")][i] end
local goals = {}
for _, h in ipairs { "thread", "thread_json" } do
  goals[#goals + 1] = ("- %s: 20 ms query at c=32, one worker: throughput / pgmoon's = %.2f (goal >= 1.0); " ..
    "plain page at c=1, one worker: p50 / blocking p50 = %.2f (goal <= 1.15)"):format(LABEL[h],
    f(1, true, h, 32, 1) / f(1, true, "pgmoon", 32, 1), f(1, false, h, 1, 2) / f(1, false, "blocking", 1, 2))
end
local machine = sh("echo \"$(nproc) cores\"; nginx -v 2>&1 | sed 's/.*: //'; luajit -v | cut -d' ' -f1-2"):gsub("\n", "; ")
local text = table.concat({ "<!-- openresty -->",
  ("OpenResty bench (make bench-openresty), %s, %s%d s per point, wrk; requests/s (p50):"):format(os.date("!%Y-%m-%d"),
    machine, SECONDS), "",
  "| workers | query | handler | c=1 | c=8 | c=32 |", "|---|---|---|---|---|---|",
  table.concat(rows, "\n"), "", table.concat(goals, "\n"), "<!-- /openresty -->" }, "\n")
print(text)
common.write_section(ROOT, "openresty", text)
