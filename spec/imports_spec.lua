-- Import batches (migration 0022, #16): every import is recorded, its events
-- name it, and it can be undone or replaced.
local motomind = require "motomind"
local H = require "spec.helper"
local import = require "motomind.import"
local imports = require "motomind.imports"
local timeline = require "motomind.timeline"

describe("import batches", function()
  local db, t, car, u, ctx
  before_each(function()
    db, t, car, u = H.fresh_tenant()
    ctx = { tenant = t, user = u }
  end)
  after_each(function() H.drop(db) end)

  -- A Fuelly-like CSV of three fills; price in the file's currency.
  local function fuelly(price)
    local lines = { "car_name,odometer,gallons,price,fuelup_date,partial_fuelup,missed_fuelup" }
    for i = 1, 3 do
      lines[#lines + 1] = ("car,%d,10.0,%s,2025-0%d-01,0,0"):format(1000 + 300 * i, price, i)
    end
    return H.write_temp(table.concat(lines, "\n") .. "\n")
  end
  local function effective()
    return db:value("SELECT count(*) FROM vehicle_events_effective WHERE tenant_id = $1", t)
  end

  it("records each import: the file's SHA-256, options and counts, stamped by the database; its events name it", function()
    local path = fuelly("3.10")
    local report = motomind.assert(import.import(db, ctx, path, { format = "fuelly", vehicle = car, currency = "USD" }))
    local b = db:row("SELECT * FROM import_batches WHERE id = $1", report.batch)
    assert.equal(H.run("sha256sum " .. path):match("^%x+"), b.checksum)
    assert.equal(path:match("[^/]*$"), b.file)
    assert.same({ format = "fuelly", vehicle = car, currency = "USD" }, b.options)
    assert.same({ 3, 3, 0, 0 }, { b.records, b.inserted, b.duplicates, b.refused })
    assert.equal(u, b.created_by)
    assert.equal(3, db:value("SELECT count(*) FROM vehicle_events WHERE import_batch_id = $1", report.batch))
    -- the same bytes, the same options: a batch of duplicates
    local again = motomind.assert(import.import(db, ctx, path, { format = "fuelly", vehicle = car, currency = "USD" }))
    assert.are_not.equal(report.batch, again.batch)
    assert.same({ 0, 3 }, { again.inserted, again.duplicates })
    local listed = motomind.assert(imports.list(db, ctx))
    assert.same({ again.batch, report.batch }, { listed[1].id, listed[2].id })
    -- a batch is recorded only with its import: an atomic import refused leaves none
    local bad = H.write_temp('{"vehicle_id":"' .. car .. '","type":"odometer","occurred_at":"2025-06-01T00:00:00Z",' ..
      '"mileage":9000,"payload":{"source":"manual"}}\n{}\n')
    local none, _, _, detail = import.import(db, ctx, bad, { atomic = true })
    assert.is_nil(none)
    assert.equal(2, #motomind.assert(imports.list(db, ctx)))
    assert.equal(1, #detail.report.rejected)
    os.remove(path) os.remove(bad)
  end)

  it("undoes an import: voids its events still as imported, keeps and lists those corrected since, once", function()
    local path = fuelly("3.10")
    local report = motomind.assert(import.import(db, ctx, path, { format = "fuelly", vehicle = car }))
    local first = db:row("SELECT id, occurred_at FROM vehicle_events WHERE import_batch_id = $1 ORDER BY occurred_at LIMIT 1",
      report.batch)
    motomind.assert(timeline.correct(db, ctx, first, { notes = "the receipt says otherwise" }))
    local app = H.app_connect(db)            -- as the application role: row-level security decides
    local r = motomind.assert(imports.undo(app, ctx, report.batch))
    app:close()
    assert.equal(2, r.voided)
    assert.same({ first.id }, r.corrected)
    assert.equal(1, effective())           -- the amendment stays
    local b = db:row("SELECT undone_at, undone_by FROM import_batches WHERE id = $1", report.batch)
    assert.equal(u, b.undone_by)
    local again, msg, sqlstate = imports.undo(db, ctx, report.batch)
    assert.is_nil(again)
    assert.equal("22023", sqlstate)
    assert.matches("already undone", msg)
    -- another tenant's batch is not there
    local t2 = H.tenant_with_vehicle(db, { name = "other" })
    local u2 = H.user(db, t2, "owner")
    local _, msg2, sqlstate2 = imports.undo(db, { tenant = t2, user = u2 }, report.batch)
    assert.equal("P0002", sqlstate2)
    assert.matches("not in this tenant", msg2)
    -- the same bytes again: the voided rows come back, the amended one stays a duplicate; once
    local back = motomind.assert(import.import(db, ctx, path, { format = "fuelly", vehicle = car }))
    assert.same({ 2, 1 }, { back.inserted, back.duplicates })
    assert.equal(3, effective())
    local twice = motomind.assert(import.import(db, ctx, path, { format = "fuelly", vehicle = car }))
    assert.same({ 0, 3 }, { twice.inserted, twice.duplicates })
    -- and through a second undo
    assert.equal(2, motomind.assert(imports.undo(db, ctx, back.batch)).voided)
    assert.equal(1, effective())
    local third = motomind.assert(import.import(db, ctx, path, { format = "fuelly", vehicle = car }))
    assert.same({ 2, 1 }, { third.inserted, third.duplicates })
    assert.equal(3, effective())
    os.remove(path)
  end)

  it("is undone only by its importer or an owner or manager", function()
    local path = fuelly("3.10")
    local report = motomind.assert(import.import(db, ctx, path, { format = "fuelly", vehicle = car }))
    local viewer = H.user(db, t, "viewer")
    local app = H.app_connect(db)
    local none, msg, sqlstate = imports.undo(app, { tenant = t, user = viewer }, report.batch)
    app:close()
    assert.is_nil(none)
    assert.equal("42501", sqlstate, msg)
    assert.equal(3, effective())
    os.remove(path)
  end)

  it("refuses the same bytes with other options, naming the earlier import; --replace undoes it in the same transaction", function()
    local path = fuelly("2.90")
    local first = motomind.assert(import.import(db, ctx, path, { format = "fuelly", vehicle = car }))
    local none, msg, sqlstate, detail = import.import(db, ctx, path, { format = "fuelly", vehicle = car, currency = "EUR" })
    assert.is_nil(none)
    assert.equal("23505", sqlstate)
    assert.matches("imported as batch " .. first.batch, msg, 1, true)
    assert.matches("--replace", msg, 1, true)
    assert.equal(first.batch, detail.batch)
    assert.equal(3, effective())
    local second = motomind.assert(import.import(db, ctx, path, { format = "fuelly", vehicle = car, currency = "EUR",
      replace = true }))
    assert.same({ { batch = first.batch, voided = 3, corrected = {} } }, second.replaced)
    assert.equal(3, second.inserted)
    assert.equal(3, effective())
    assert.same({ "EUR" }, { db:value([[SELECT DISTINCT payload ->> 'currency' FROM vehicle_events_effective
      WHERE tenant_id = $1]], t) })
    os.remove(path)
  end)

  it("is listed, imported, undone and replaced from the command line", function()
    local function run(command)
      return H.run(("%s %s/bin/motomind %s --schema %s --tenant %s --user %s"):format(H.lua, H.root, command,
        db:schema(), t, u))
    end
    local path = fuelly("3.10")
    local out, ok = run("import " .. path .. " --format fuelly --vehicle car")
    assert.is_true(ok, out)
    local batch = out:match("3 records, 3 imported, 0 already there, 0 refused; batch (%x+%-[%x-]+)")
    assert.is_truthy(batch, out)
    out, ok = run("import " .. path .. " --format fuelly --vehicle car --currency EUR")
    assert.is_false(ok)
    assert.matches("imported as batch " .. batch, out, 1, true)
    assert.matches("--replace undoes that import", out, 1, true)
    out = run("imports --json")
    assert.equal(batch, motomind.json.decode(out:match("[^\n]+")).id)
    out, ok = run("import --undo " .. batch)
    assert.is_true(ok, out)
    assert.matches("import " .. batch .. " undone: 3 events voided, 0 corrected since and kept", out, 1, true)
    out, ok = run("import " .. path .. " --format fuelly --vehicle car --currency EUR")
    assert.is_true(ok, out)                -- the earlier batch is undone: nothing to replace
    assert.matches("3 imported", out)
    os.remove(path)
  end)
end)
