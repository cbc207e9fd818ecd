local motomind = require "motomind"
local timeline = require "motomind.timeline"
local H = require "spec.helper"

describe("fleet groups", function()
  local owner, app, t, region, hub, team, other_region, boss

  setup(function()
    owner = H.fresh()
    app = H.app_connect(owner)
    t = owner:value("INSERT INTO tenants (name, kind) VALUES ('Fleet', 'org') RETURNING id")
    boss = H.user(owner, t, "owner")
    region = owner:value("INSERT INTO fleet_groups (tenant_id, name, kind) VALUES ($1, 'North', 'region') RETURNING id", t)
    hub = owner:value("INSERT INTO fleet_groups (tenant_id, parent_id, name, kind) VALUES ($1, $2, 'Oslo', 'hub') RETURNING id", t, region)
    team = owner:value("INSERT INTO fleet_groups (tenant_id, parent_id, name, kind) VALUES ($1, $2, 'Vans', 'team') RETURNING id", t, hub)
    other_region = owner:value("INSERT INTO fleet_groups (tenant_id, name, kind) VALUES ($1, 'South', 'region') RETURNING id", t)
  end)
  teardown(function() app:close() H.drop(owner) end)

  local function try(user, fn)
    local ok, err = pcall(app.as, app, { tenant = t, user = user }, fn)
    return ok, err
  end

  it("refuse cycles", function()
    local ok, msg, sqlstate = owner:exec("UPDATE fleet_groups SET parent_id = $1 WHERE id = $2", team, region)
    assert.is_nil(ok)
    assert.equal("23514", sqlstate)
    assert.matches("cannot be moved under its own descendant", msg)
    assert.is_nil((owner:exec("UPDATE fleet_groups SET parent_id = id WHERE id = $1", hub)))
  end)

  it("let a manager write under a write grant, inherited down the tree, and nowhere else", function()
    local manager = H.user(owner, t, "manager")
    assert(owner:exec("INSERT INTO group_permissions (tenant_id, group_id, user_id, level) VALUES ($1, $2, $3, 'write')",
      t, region, manager))
    local in_team = owner:value("INSERT INTO vehicles (tenant_id, group_id) VALUES ($1, $2) RETURNING id", t, team)
    local in_south = owner:value("INSERT INTO vehicles (tenant_id, group_id) VALUES ($1, $2) RETURNING id", t, other_region)
    local ungrouped = owner:value("INSERT INTO vehicles (tenant_id) VALUES ($1) RETURNING id", t)
    local function event(db, v)
      return motomind.assert(timeline.append(db, { tenant = t, user = manager }, { vehicle_id = v, type = "odometer",
        occurred_at = "2025-01-01T00:00:00Z", mileage = 10, payload = { source = "manual" } }))
    end
    assert.is_true((try(manager, function(db)
      assert.equal(1, db:exec("UPDATE vehicles SET color = 'white' WHERE id = $1", in_team))
      assert.equal(1, db:exec("UPDATE vehicles SET color = 'white' WHERE id = $1", ungrouped))
      assert.equal(0, db:exec("UPDATE vehicles SET color = 'white' WHERE id = $1", in_south))
      event(db, in_team)
      assert(db:exec("INSERT INTO vehicles (tenant_id, group_id) VALUES ($1, $2)", t, hub))
    end)))
    local ok, err = try(manager, function(db) event(db, in_south) end)
    assert.is_false(ok)
    assert.matches("row%-level security", tostring(err))
    ok = try(manager, function(db)
      motomind.assert(db:exec("INSERT INTO vehicles (tenant_id, group_id) VALUES ($1, $2)", t, other_region))
    end)
    assert.is_false(ok)
  end)

  it("let an admin grant shape the tree below it, and viewers write nothing", function()
    local admin = H.user(owner, t, "manager")
    local viewer = H.user(owner, t, "viewer")
    for _, u in ipairs { { admin, "admin" }, { viewer, "admin" } } do
      assert(owner:exec("INSERT INTO group_permissions (tenant_id, group_id, user_id, level) VALUES ($1, $2, $3, $4)",
        t, hub, u[1], u[2]))
    end
    assert.is_true((try(admin, function(db)
      motomind.assert(db:exec("INSERT INTO fleet_groups (tenant_id, parent_id, name) VALUES ($1, $2, 'Trucks')", t, hub))
      motomind.assert(db:exec("INSERT INTO group_permissions (tenant_id, group_id, user_id, level) VALUES ($1, $2, $3, 'read')",
        t, team, viewer))
    end)))
    assert.is_false((try(admin, function(db)
      motomind.assert(db:exec("INSERT INTO fleet_groups (tenant_id, name) VALUES ($1, 'Top level')", t))
    end)))
    local v = owner:value("INSERT INTO vehicles (tenant_id, group_id) VALUES ($1, $2) RETURNING id", t, team)
    assert.is_true((try(viewer, function(db)
      assert.equal(1, db:value("SELECT count(*) FROM vehicles WHERE id = $1", v)) -- reads
      assert.equal(0, db:exec("UPDATE vehicles SET color = 'x' WHERE id = $1", v)) -- but writes nothing
    end)))
    local ok, err = try(viewer, function(db)
      motomind.assert(db:exec("INSERT INTO fleet_groups (tenant_id, parent_id, name) VALUES ($1, $2, 'No')", t, hub))
    end)
    assert.is_false(ok)
    assert.equal("42501", err.sqlstate)
  end)
end)
