local H = require "spec.helper"

describe("motomind command", function()
  local bin = H.lua .. " " .. H.root .. "/bin/motomind"
  local schema

  before_each(function() schema = H.schema_name("cli") end)
  -- A migrated schema with a tenant, its vehicle and its owner.
  local function tenant_owner()
    local db = H.connect { schema = schema }
    db:migrate()
    local t, car = H.tenant_with_vehicle(db)
    return db, t, car, H.user(db, t, "owner")
  end

  after_each(function()
    local db = H.connect { schema = schema }
    H.drop(db)
  end)

  it("migrates, reports status and rolls back with --to", function()
    local out, ok = H.run(bin .. " status --schema " .. schema)
    assert.is_true(ok, out)
    assert.matches("0001_core_tables%s+pending", out)
    out, ok = H.run(bin .. " migrate --schema " .. schema)
    assert.is_true(ok, out)
    assert.matches("applied  0001_core_tables", out)
    out = H.run(bin .. " status --schema=" .. schema)
    assert.matches("0001_core_tables%s+applied%s+%d%d%d%d%-%d%d%-%d%dT.* by ", out)
    out, ok = H.run(bin .. " migrate --to 0 --schema " .. schema)
    assert.is_true(ok, out)
    assert.matches("reverted 0001_core_tables", out)
  end)

  it("loads the demo fleet once and prints a vehicle timeline, newest first", function()
    local out, ok = H.run(bin .. " demo --schema " .. schema)
    assert.is_true(ok, out)
    local events, new = out:match("3 vehicles, (%d+) events %((%d+) new%)")
    assert.is_truthy(events, out)
    assert.equal(events, new)
    assert.matches("timeline of Taco %(2019 Toyota Tacoma%)", out)
    local dates = {}
    for d in out:gmatch("\n  (%d%d%d%d%-%d%d%-%d%d %d%d:%d%d)  ") do dates[#dates + 1] = d end
    assert.equal(15, #dates)
    for i = 2, #dates do assert.is_true(dates[i - 1] >= dates[i], out) end
    out = H.run(bin .. " demo --schema " .. schema)
    assert.matches("%(0 new%)", out)
  end)

  it("imports and exports JSON lines", function()
    local db, t, car, u = tenant_owner()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    f:write('{"vehicle_id": "', car, '", "type": "odometer", "occurred_at": "2025-01-01T00:00:00Z", ',
      '"mileage": 10, "payload": {"source": "manual"}}\n{"type": "odometer"}\n')
    f:close()
    local args = (" --schema %s --tenant %s --user %s"):format(schema, t, u)
    local out, ok = H.run(bin .. " import " .. path .. args)
    assert.is_true(ok, out)
    assert.matches(":2: vehicle_id: is required", out)
    assert.matches("%(jsonl%): 2 records, 1 imported, 0 already there, 1 refused", out)
    out, ok = H.run(bin .. " import " .. path .. args .. " --atomic")
    assert.is_false(ok)
    assert.matches("nothing imported %(atomic%)", out)
    out, ok = H.run(bin .. " export" .. args)
    assert.is_true(ok, out)
    assert.matches('"mileage": 10.0', out)
    assert.matches("exported 1 records", out)
    db:close()
    os.remove(path)
  end)

  it("shows import progress on a terminal only", function()
    local db, t, car, u = tenant_owner()
    local path = os.tmpname()
    local f = assert(io.open(path, "w"))
    for i = 1, 10000 do
      f:write(('{"vehicle_id": "%s", "type": "odometer", "occurred_at": "%s", "payload": {"source": "manual"}}\n')
        :format(car, os.date("!%Y-%m-%dT%H:%M:%SZ", 1735689600 + i * 60)))
    end
    f:close()
    local cmd = bin .. " import " .. path .. (" --schema %s --tenant %s --user %s"):format(schema, t, u)
    local out, ok = H.run(cmd)
    assert.is_true(ok, out)
    assert.not_matches("records/s", out)
    out, ok = H.run("script -qec " .. H.shell_quote(cmd) .. " /dev/null")
    assert.is_true(ok, out)
    assert.matches("10000 records, %d+ records/s, %d+s left", out)
    db:close()
    os.remove(path)
  end)

  it("explains what is wrong with bad usage", function()
    local out, ok = H.run(bin .. " frobnicate")
    assert.is_false(ok)
    assert.matches("unknown command 'frobnicate'", out)
    out, ok = H.run(bin .. " migrate --to x --schema " .. schema)
    assert.is_false(ok)
    assert.matches("%-%-to expects a whole number, got x", out)
    out, ok = H.run("env -u DATABASE_URL " .. bin .. " status")
    assert.is_false(ok)
    assert.matches("no database configured", out)
  end)
end)
