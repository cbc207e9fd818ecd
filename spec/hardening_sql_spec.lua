-- Regression specs for the defects of the adversarial review that live in the
-- database (issue #11): soft delete around group grants, revoking access,
-- forged authors, retention and old dates, maintain() isolation, purge.
local motomind = require "motomind"
local H = require "spec.helper"
local samples = require "spec.samples"

local null = motomind.null

describe("soft delete, restore and purge obey the write rules (matrix from the catalog)", function()
  local owner, app, A, B

  -- Who may soft-delete (and restore) the seeded row of each table; purge is
  -- the owner's alone. A mutable table's rule follows from its columns
  -- (rows of a vehicle: those who may write the vehicle; else every
  -- manager); tables with policies of their own are listed.
  local WRITE_VEHICLE = { owner = 1, manager_write = 1, manager_admin = 1 }
  local MANAGERS = { owner = 1, manager_read = 1, manager_write = 1, manager_admin = 1 }
  local OWN = { fleet_groups = { owner = 1, manager_admin = 1 }, memberships = { owner = 1 }, vehicles = WRITE_VEHICLE }
  local EXPECT = {}
  local ACTORS = { "owner", "manager_read", "manager_write", "manager_admin", "viewer", "other", "nonmember" }

  setup(function()
    owner = H.fresh()
    local function seed()
      local t = owner:value("INSERT INTO tenants (name, kind) VALUES ('t', 'org') RETURNING id")
      local x = { tenant = t, users = {} }
      for _, role in ipairs { "owner", "manager_read", "manager_write", "manager_admin", "viewer" } do
        x.users[role] = H.user(owner, t, role:match("^manager") and "manager" or role)
      end
      x.group = owner:value("INSERT INTO fleet_groups (tenant_id, name) VALUES ($1, 'North') RETURNING id", t)
      for _, level in ipairs { "read", "write", "admin" } do
        assert(owner:exec("INSERT INTO group_permissions (tenant_id, group_id, user_id, level) VALUES ($1, $2, $3, $4)",
          t, x.group, x.users["manager_" .. level], level))
      end
      x.garages = owner:value("INSERT INTO garages (tenant_id, name) VALUES ($1, 'Depot') RETURNING id", t)
      x.vehicles = owner:value("INSERT INTO vehicles (tenant_id, group_id, nickname) VALUES ($1, $2, 'van') RETURNING id",
        t, x.group)
      x.vehicle_images = owner:value("INSERT INTO vehicle_images (tenant_id, vehicle_id, storage_url) VALUES ($1, $2, 's3://b/1') RETURNING id", t, x.vehicles)
      x.reminders = owner:value("INSERT INTO reminders (tenant_id, vehicle_id, title, due_mileage) VALUES ($1, $2, 'oil', 5000) RETURNING id", t, x.vehicles)
      x.reminder_completions = owner:value("INSERT INTO reminder_completions (tenant_id, reminder_id, completed_on) " ..
        "VALUES ($1, $2, '2025-01-01') RETURNING id", t, x.reminders)
      x.fleet_groups = x.group
      x.memberships = x.users.viewer
      return x
    end
    A, B = seed(), seed()
    for _, x in ipairs { A, B } do
      assert(owner:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
        "VALUES ($1, $2, 'odometer', '2025-01-01', 10, '{\"source\": \"manual\"}')", x.tenant, x.vehicles))
      samples.seed(owner, x.tenant, x.users.owner, "soft_delete_tables")
      for _, r in ipairs(owner:query("SELECT table_name, key_column FROM soft_delete_tables")) do
        x[r.table_name] = x[r.table_name] or owner:value(("SELECT %s FROM %s WHERE tenant_id = $1 LIMIT 1")
          :format(r.key_column, r.table_name), x.tenant)
      end
    end
    for _, r in ipairs(owner:query("SELECT s.table_name, k.kind, EXISTS (SELECT 1 FROM pg_attribute a " ..
        "WHERE a.attrelid = s.rel AND a.attname = 'vehicle_id' AND NOT a.attisdropped) AS per_vehicle " ..
        "FROM soft_delete_tables s JOIN tenant_table_kinds k ON k.rel = s.rel")) do
      EXPECT[r.table_name] = OWN[r.table_name] or r.kind == "mutable" and (r.per_vehicle and WRITE_VEHICLE or MANAGERS) or nil
    end
    A.nonmember = H.user(owner)
    app = H.app_connect(owner)
  end)
  teardown(function() app:close() H.drop(owner) end)

  local function ctx(actor)
    if actor == "other" then return { tenant = A.tenant, user = B.users.owner } end
    if actor == "nonmember" then return { tenant = A.tenant, user = A.nonmember } end
    return { tenant = A.tenant, user = A.users[actor] }
  end

  local function set(c)
    assert(app:query("SELECT set_config('motomind.tenant_id', $1, true), set_config('motomind.user_id', $2, true)",
      c.tenant, c.user))
  end

  -- true when the call was permitted (it took effect, or for a purge failed
  -- on something other than permissions: rows still referenced); always
  -- rolled back.
  local function try(tbl, op, actor)
    assert(app:exec("BEGIN"))
    local id = A[tbl]
    if op ~= "soft_delete" then
      set(ctx("owner"))
      assert.is_true(motomind.assert(app:value("SELECT set_deleted($1, $2, true)", tbl, id)))
    end
    set(ctx(actor))
    local sql = ({ soft_delete = "SELECT set_deleted($1, $2, true) AS ok", restore = "SELECT set_deleted($1, $2, false) AS ok",
                   purge = "SELECT purge_deleted($1) > 0 AS ok" })[op]
    local row, _, sqlstate
    if op == "purge" then row, _, sqlstate = app:row(sql, tbl) else row, _, sqlstate = app:row(sql, tbl, id) end
    app:exec("ROLLBACK")
    if op == "purge" and not row then return sqlstate == "23503" end
    return row ~= nil and row.ok == true
  end

  it("has a row for every table with soft delete, and gives exactly the allowed outcome", function()
    local tables = owner:query("SELECT table_name FROM soft_delete_tables ORDER BY 1")
    assert.is_true(#tables >= 6)
    local wrong, cells = {}, 0
    for _, t in ipairs(tables) do
      local e = assert(EXPECT[t.table_name], "no soft-delete matrix row for " .. t.table_name)
      for _, op in ipairs { "soft_delete", "restore", "purge" } do
        for _, actor in ipairs(ACTORS) do
          local allowed = op == "purge" and actor == "owner" or (op ~= "purge" and e[actor] ~= nil)
          local got = try(t.table_name, op, actor)
          cells = cells + 1
          if got ~= allowed then
            wrong[#wrong + 1] = ("%s %s as %s: %s, expected %s"):format(op, t.table_name, actor,
              got and "allowed" or "refused", allowed and "allowed" or "refused")
          end
        end
      end
    end
    assert.equal(0, #wrong, table.concat(wrong, "\n"))
    assert.equal(#tables * 3 * #ACTORS, cells)
  end)

  it("says why a read grant cannot soft-delete, and audits nothing then", function()
    local before = owner:value("SELECT count(*) FROM audit_log")
    local _, err, sqlstate = app:as(ctx("manager_read"), function(db)
      return db:value("SELECT set_deleted('vehicles', $1, true)", A.vehicles)
    end)
    assert.equal("42501", sqlstate)
    assert.matches("soft delete vehicles: you may not change this row", err, 1, true)
    assert.equal(before, owner:value("SELECT count(*) FROM audit_log"))
  end)

  it("lets the owner remove a member and revoke or lower a grant, effective at once; never the last owner", function()
    local o = ctx("owner")
    app:as(o, function(db)
      assert.equal(1, motomind.assert(db:exec("UPDATE group_permissions SET level = 'read' WHERE user_id = $1",
        A.users.manager_write)))
      assert.equal(1, motomind.assert(db:exec("DELETE FROM group_permissions WHERE user_id = $1", A.users.manager_admin)))
      assert.is_true(motomind.assert(db:value("SELECT set_deleted('memberships', $1, true)", A.users.viewer)))
    end)
    -- the removed member sees nothing any more; the lowered manager writes nothing in the group
    assert.equal(0, app:as(ctx("viewer"), function(db) return db:value("SELECT count(*) FROM vehicles") end))
    assert.equal(0, app:as(ctx("manager_write"), function(db)
      return motomind.assert(db:exec("UPDATE vehicles SET color = 'red' WHERE id = $1", A.vehicles)) end))
    local ops = owner:query("SELECT table_name, operation, actor FROM audit_log WHERE tenant_id = $1 " ..
      "AND table_name IN ('memberships', 'group_permissions') AND operation <> 'insert' ORDER BY id", A.tenant)
    assert.same({ "update", "delete", "soft_delete" }, { ops[1].operation, ops[2].operation, ops[3].operation })
    assert.equal(A.users.owner, ops[3].actor)
    -- the last owner stays
    local _, err = app:as(o, function(db) return db:value("SELECT set_deleted('memberships', $1, true)", A.users.owner) end)
    assert.matches("a tenant keeps at least one owner", err, 1, true)
    _, err = app:as(o, function(db) return db:exec("UPDATE memberships SET role = 'viewer' WHERE user_id = $1", A.users.owner) end)
    assert.matches("a tenant keeps at least one owner", err, 1, true)
    -- and a member can come back
    app:as(o, function(db) assert.is_true(motomind.assert(db:value("SELECT set_deleted('memberships', $1, false)", A.users.viewer))) end)
    assert.equal(1, app:as(ctx("viewer"), function(db) return db:value("SELECT count(*) FROM vehicles") end))
  end)

  it("names the way to revoke a grant when soft delete is asked for", function()
    local _, err = app:as(ctx("owner"), function(db)
      return db:value("SELECT set_deleted('group_permissions', $1, true)", A.group) end)
    assert.matches("group_permissions has no soft delete (revoke a grant with DELETE", err, 1, true)
  end)
end)

describe("an event's author and creation time", function()
  it("come from the database, whatever the client sends", function()
    local db, t, car, u = H.fresh_tenant()
    local manager = H.user(db, t, "manager")
    local app = H.app_connect(db)
    local _, err, sqlstate = app:as({ tenant = t, user = manager }, function(x)
      return x:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, payload, created_by, created_at) " ..
        "VALUES ($1, $2, 'odometer', now(), '{\"source\": \"manual\"}', $3, '2999-01-01')", t, car, u)
    end)
    assert.equal("42501", sqlstate, err)
    local e = motomind.assert(require("motomind.timeline").append(app, { tenant = t, user = manager },
      { vehicle_id = car, type = "odometer", occurred_at = "2025-01-01T00:00:00Z", mileage = 10,
        payload = { source = "manual" } }))
    local row = db:row("SELECT created_by, created_at > now() - interval '1 minute' AS recent FROM vehicle_events WHERE id = $1", e.id)
    assert.equal(manager, row.created_by) -- the session's user (append runs as its ctx), never a client value
    assert.is_true(row.recent)
    app:close()
    H.drop(db)
  end)
end)

describe("old dates, retention and maintain()", function()
  local db, t, car

  before_each(function() db, t, car = H.fresh_tenant() end)
  after_each(function() H.drop(db) end)

  local function odometer(at, mileage)
    return db:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
      "VALUES ($1, $2, 'odometer', $3, $4, '{\"source\": \"manual\"}')", t, car, at, mileage)
  end

  it("keeps very old dates in DEFAULT instead of making a partition a year", function()
    for year = 1886, 2024, 3 do assert(odometer(year .. "-06-01T00:00:00Z", year)) end
    local made = db:maintain { ahead = 1 }.partitions_created
    local horizon = tonumber(os.date("!%Y")) - 30
    for _, name in ipairs(made) do
      assert.is_true(tonumber(name:match("(%d%d%d%d)")) >= horizon, name)
    end
    assert.is_true(#made <= 35, #made .. " partitions")
    assert.is_true(db:value("SELECT count(*) FROM vehicle_events_default") > 0)
  end)

  it("refuses events dated in archived time, keeps archived metrics, and maintains every tenant", function()
    assert(db:exec("UPDATE settings SET value = '40' WHERE key = 'partition_lower_horizon_years'"))
    assert(odometer("2001-03-01T00:00:00Z", 100))
    assert(odometer("2001-04-01T00:00:00Z", 300))
    assert(db:maintain { ahead = 1 })
    local before = db:query("SELECT month, distance FROM vehicle_metrics_monthly ORDER BY month")
    assert.equal(2, #before)
    assert(db:exec("UPDATE settings SET value = '12' WHERE key = 'retention_months'"))
    local report = db:maintain()
    assert.same({ "vehicle_events_2001" }, report.archived)
    -- an event dated in the archive is refused, by every writer, with a clear reason
    local ok, err = odometer("1990-06-01T00:00:00Z", 50)
    assert.is_nil(ok)
    assert.matches("vehicle_events_before_retention_are_archived", err, 1, true)
    ok = odometer("2001-05-01T00:00:00Z", 400)
    assert.is_nil(ok)
    -- later maintenance runs, and never recomputes the archived months
    assert(odometer(os.date("!%Y") .. "-01-01T00:00:00Z", 1000))
    report = db:maintain()
    assert.equal(0, report.failures)
    assert.equal(1, report.vehicles_advanced)
    assert.same(before, db:query("SELECT month, distance FROM vehicle_metrics_monthly WHERE month < '2002-01-01' ORDER BY month"))
    assert(db:value("SELECT recompute_metrics()"))
    assert.same(before, db:query("SELECT month, distance FROM vehicle_metrics_monthly WHERE month < '2002-01-01' ORDER BY month"))
  end)

  it("records a failing step for health() and goes on with the others", function()
    local t2, car2 = H.tenant_with_vehicle(db, { name = "other" })
    assert(db:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
      "VALUES ($1, $2, 'odometer', '2024-01-01T00:00:00Z', 5, '{\"source\": \"manual\"}')", t2, car2))
    assert(odometer("2024-01-01T00:00:00Z", 5))
    -- one vehicle's timezone made unusable behind the rules' back: its metrics fail
    -- (each tenant's one vehicle is marked from its first event: the failing
    -- tenant's one-statement pass gives way to the per-vehicle pass, which records it)
    assert(db:exec("ALTER TABLE vehicles DISABLE TRIGGER ALL"))
    assert(db:exec("ALTER TABLE vehicles DROP CONSTRAINT vehicles_timezone_check"))
    assert(db:exec("UPDATE vehicles SET timezone = 'Nowhere/Atlantis' WHERE id = $1", car))
    local report = db:maintain { ahead = 1 }
    assert.equal(1, report.failures)
    assert.equal(1, report.vehicles_advanced) -- the other tenant's vehicle
    assert.equal(1, db:value("SELECT count(*) FROM vehicle_metrics_monthly WHERE tenant_id = $1", t2))
    local text = {}
    for _, f in ipairs(db:health()) do text[#text + 1] = f.finding end
    assert.matches("maintain() failed at metrics (vehicle " .. car, table.concat(text, "\n"), 1, true)
  end)

  it("purges a tenant with derived data, every table found from the catalog", function()
    assert(odometer("2024-01-01T00:00:00Z", 5))
    assert(odometer("2024-02-01T00:00:00Z", 50))
    assert(db:maintain { ahead = 1 })
    assert.is_true(db:value("SELECT count(*) FROM vehicle_metrics_monthly WHERE tenant_id = $1", t) > 0)
    assert(db:exec("UPDATE tenants SET deleted_at = now() WHERE id = $1", t))
    assert.is_true(db:value("SELECT purge_tenant($1)", t) > 0)
    for _, r in ipairs(db:query("SELECT rel::text AS rel FROM tenant_tables")) do
      assert.equal(0, db:value("SELECT count(*) FROM " .. r.rel .. " WHERE tenant_id = $1", t), r.rel)
    end
  end)
end)

describe("the Lua API's failures", function()
  local db, t, car, u

  before_each(function() db, t, car, u = H.fresh_tenant() end)
  after_each(function() H.drop(db) end)

  it("hands the server's error on from inside db:as instead of 'transaction aborted'", function()
    local page, err, sqlstate = require("motomind.timeline").feed(db, { tenant = t, user = u },
      { cursor = "not a time|00000000-0000-0000-0000-000000000000" })
    assert.is_nil(page)
    assert.equal("22007", sqlstate)
    assert.matches("not a time", err, 1, true)
    assert.equal("idle", db:transaction_status())
  end)

  it("refuses an import format name that is one of the module's functions", function()
    local path = H.write_temp("x\n")
    for _, name in ipairs { "detect", "names", "DETECT", "get" } do
      local r, err, sqlstate = db:import(path, { tenant = t, user = u, format = name, vehicle = car })
      assert.is_nil(r)
      assert.equal("22023", sqlstate)
      assert.matches("unknown format", err, 1, true)
    end
    os.remove(path)
  end)

  it("says an unwritable --errors path before anything is imported", function()
    local path = H.write_temp(motomind.json.encode { vehicle_id = car, type = "odometer", mileage = 1,
      occurred_at = "2024-01-01T00:00:00Z", payload = { source = "manual" } } .. "\n")
    local r, err = db:import(path, { tenant = t, user = u, errors = "/nonexistent/dir/errors.jsonl" })
    assert.is_nil(r)
    assert.matches("errors: /nonexistent/dir/errors.jsonl", err, 1, true)
    assert.equal(0, db:value("SELECT count(*) FROM vehicle_events"))
    os.remove(path)
  end)

  it("removes the spooled file when the reader raises", function()
    local function listing() return (H.run("ls /tmp | grep '^lua_' | sort")) end
    local before = listing()
    local ok, err = pcall(db.import, db, function() error("reader broke") end, { tenant = t, user = u })
    assert.is_false(ok)
    assert.matches("reader broke", tostring(err), 1, true)
    assert.equal(before, listing())
  end)

  it("validates the cron schedule and quotes the crontab line", function()
    local maintenance = require "motomind.maintenance"
    local r, err = maintenance.schedule(db, { every = "* * * * *; rm -rf /", crontab = true })
    assert.is_nil(r)
    assert.matches("is not a cron schedule", err, 1, true)
    local how, line = maintenance.schedule(db, { every = "*/5 * * * *", crontab = true, command = "/opt/my tools/motomind" })
    assert.equal("crontab", how)
    assert.equal("*/5 * * * * '/opt/my tools/motomind' maintain --schema " .. db:schema(), line)
  end)
end)

describe("a full metrics recompute", function()
  it("never makes a writer wait (it ran under a lock on every vehicle's head)", function()
    local db, t, car = H.fresh_tenant()
    assert(db:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
      "VALUES ($1, $2, 'odometer', '2024-01-01T00:00:00Z', 5, '{\"source\": \"manual\"}')", t, car))
    local writer = H.connect { schema = db:schema() }
    assert(db:exec("BEGIN"))
    assert(db:value("SELECT recompute_metrics()"))
    assert(writer:exec("SET statement_timeout = '3s'"))
    local ok, err = writer:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
      "VALUES ($1, $2, 'odometer', '2024-02-01T00:00:00Z', 50, '{\"source\": \"manual\"}')", t, car)
    assert(db:exec("COMMIT"))
    assert.equal(1, ok, err)
    writer:close()
    H.drop(db)
  end)
end)
