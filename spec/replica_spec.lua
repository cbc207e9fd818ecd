-- Read replicas for real: a primary and a streaming-replication hot standby,
-- both throwaway clusters on loopback (tools/pg-local), started here.
local motomind = require "motomind"
local timeline = require "motomind.timeline"
local H = require "spec.helper"

describe("read replicas", function()
  local dir, primary_url, standby_url, owner, standby_owner, role, ctx, car

  -- tools/pg-local COMMAND for the cluster in dir/name; its URL.
  local function pg(command, name, arg)
    local out, ok = H.run(("MOTOMIND_PGDIR=%s %s/tools/pg-local %s %s"):format(
      H.shell_quote(dir .. "/" .. name), H.shell_quote(H.root), command, arg or ""))
    assert(ok, out)
    return (out:match("(postgresql://%S+)"))
  end
  local function port(url) return url:match(":(%d+)/") end
  local function multi(attrs)
    return ("postgresql://127.0.0.1:%s,127.0.0.1:%s/motomind?target_session_attrs=%s"):format(
      port(primary_url), port(standby_url), attrs)
  end
  local function fill(at, total)
    return { vehicle_id = car, type = "fuel", occurred_at = at, payload = { total = total, currency = "EUR" } }
  end
  local function totals(db)
    local out = {}
    for _, e in ipairs(assert(timeline.page(db, ctx, { vehicle = car })).events) do
      out[#out + 1] = e.payload.total
    end
    table.sort(out)
    return table.concat(out, " ")
  end
  -- Waits until the standby has replayed everything the primary wrote.
  local function caught_up()
    local lsn = owner:value("SELECT pg_current_wal_lsn()::text")
    for _ = 1, 200 do
      if standby_owner:value("SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn", lsn) then return end
      os.execute("sleep 0.05")
    end
    error("the standby did not catch up")
  end

  setup(function()
    dir = os.tmpname()
    os.remove(dir)
    primary_url = pg("start", "primary")
    owner = motomind.assert(motomind.connect(primary_url, { maintenance = true }))
    motomind.assert(owner:migrate())
    local t
    t, car = H.tenant_with_vehicle(owner)
    ctx = { tenant = t, user = H.user(owner, t, "owner") }
    role = owner:value("SELECT value FROM settings WHERE key = 'app_role'")
    standby_url = pg("standby", "standby", port(primary_url))
    standby_owner = motomind.assert(motomind.connect(standby_url))
    caught_up()
  end)

  teardown(function()
    for _, db in ipairs { owner, standby_owner } do db:close() end
    for _, name in ipairs { "standby", "primary" } do pg("stop", name) end
    os.execute("rm -rf " .. H.shell_quote(dir))
  end)

  -- A port in the kernel's ephemeral range can be the local end of a client
  -- connection, which the server then cannot bind: this spec's setup once
  -- failed so, five starts in a row.
  it("run their throwaway clusters on ports below the ephemeral range", function()
    local f = io.open("/proc/sys/net/ipv4/ip_local_port_range")
    if not f then return pending("no /proc/sys/net/ipv4/ip_local_port_range here") end
    local low = tonumber(f:read("*l"):match("^(%d+)"))
    f:close()
    for _, url in ipairs { primary_url, standby_url } do assert.is_true(tonumber(port(url)) < low, url) end
  end)

  it("serve lag-tolerant reads from the standby, and this connection's own writes from the primary", function()
    local db = motomind.assert(motomind.connect(primary_url, { user = role, read = standby_url }))
    finally(function() db:close() end)
    assert(timeline.append(db, ctx, fill("2025-01-10T08:00:00Z", 10)))
    caught_up()
    assert.equal("10", totals(db))
    assert.is_true(db:reader():value("SELECT pg_is_in_recovery()"))
    -- with replay paused, another session's write is not seen: the page
    -- came from the standby
    assert(standby_owner:exec("SELECT pg_wal_replay_pause()"))
    assert(owner:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, payload) " ..
      "VALUES ($1, $2, 'fuel', '2025-01-20T08:00:00Z', '{\"total\": 20, \"currency\": \"EUR\"}')", ctx.tenant, car))
    assert.equal("10", totals(db))
    -- a write of this connection is seen at once: the standby has not
    -- replayed it, so the page comes from the primary
    assert(timeline.append(db, ctx, fill("2025-01-30T08:00:00Z", 30)))
    assert.equal(db, db:reader())
    assert.equal("10 20 30", totals(db))
    -- reads return to the standby once it has replayed that write
    assert(standby_owner:exec("SELECT pg_wal_replay_resume()"))
    caught_up()
    assert.not_equal(db, db:reader())
    assert.equal("10 20 30", totals(db))
    -- inside a transaction, reads see its own uncommitted writes: they stay
    -- on the primary
    local ok, seen = pcall(db.as, db, ctx, function()
      assert(timeline.append(db, ctx, fill("2025-02-10T08:00:00Z", 40)))
      assert.equal(db, db:reader())
      error({ totals = totals(db) }, 0) -- (rolls the append back)
    end)
    assert.is_false(ok)
    assert.same({ totals = "10 20 30 40" }, seen)
    assert.equal("10 20 30", totals(db))
  end)

  it("refuse writes on the standby with a clear error, nothing written", function()
    local db = motomind.assert(motomind.connect(standby_url, { user = role }))
    finally(function() db:close() end)
    local ok, msg, sqlstate = timeline.append(db, ctx, fill("2025-02-01T08:00:00Z", 40))
    assert.is_nil(ok)
    assert.equal("25006", sqlstate)
    assert.matches("read%-only transaction", msg)
    assert.equal(0, owner:value("SELECT count(*) FROM vehicle_events WHERE occurred_at = '2025-02-01T08:00:00Z'"))
  end)

  it("fall back to the primary while the standby cannot be reached", function()
    local db = motomind.assert(motomind.connect(primary_url,
      { user = role, read = "postgresql://127.0.0.1:1/motomind", connect_timeout = 2 }))
    finally(function() db:close() end)
    assert.equal(db, db:reader())
    assert.equal("10 20 30", totals(db))
  end)

  it("take libpq's multi-host URLs: prefer-standby, read-write, and survive a failover by reconnecting", function()
    local reads = motomind.assert(motomind.connect(multi("prefer-standby"), { user = role }))
    finally(function() reads:close() end)
    assert.is_true(reads:value("SELECT pg_is_in_recovery()"))
    local db = motomind.assert(motomind.connect(multi("read-write"), { user = role }))
    assert.is_false(db:value("SELECT pg_is_in_recovery()"))
    assert.equal(port(primary_url), tostring(db:value("SELECT inet_server_port()")))
    -- the primary goes away; the standby is promoted
    pg("stop", "primary")
    local ok, _, sqlstate = timeline.append(db, ctx, fill("2025-03-01T08:00:00Z", 50))
    assert.is_nil(ok)
    -- (57P01 when the server said it was shutting down, 08xxx when it was gone)
    assert.is_truthy(sqlstate == "57P01" or sqlstate:match("^08"), sqlstate)
    db:close()
    pg("promote", "standby")
    db = motomind.assert(motomind.connect(multi("read-write"), { user = role }))
    assert.equal(port(standby_url), tostring(db:value("SELECT inet_server_port()")))
    assert(timeline.append(db, ctx, fill("2025-03-01T08:00:00Z", 50)))
    assert.equal("10 20 30 50", totals(db))
    db:close()
  end)
end)
