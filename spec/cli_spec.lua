local motomind = require "motomind"
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
    local report = os.tmpname()
    local out, ok = H.run(bin .. " demo --schema " .. schema .. " --out " .. report)
    assert.is_true(ok, out)
    -- it writes the fleet's report, a self-contained page with its charts
    assert.matches("the fleet's report (costs, economy, charts): " .. report, out, 1, true)
    local html = H.read(report)
    assert.matches("^<!DOCTYPE html>.*<h1>Fleet of Demo Fleet</h1>.*<svg .*Cost by category and month", html)
    os.remove(report)
    local events, new = out:match("3 vehicles, (%d+) events %((%d+) new%)")
    assert.is_truthy(events, out)
    assert.equal(events, new)
    assert.matches("timeline of Taco %(2019 Toyota Tacoma%)", out)
    local dates = {}
    for d in out:gmatch("\n  (%d%d%d%d%-%d%d%-%d%d %d%d:%d%d)  ") do dates[#dates + 1] = d end
    assert.equal(15, #dates)
    for i = 2, #dates do assert.is_true(dates[i - 1] >= dates[i], out) end
    assert.matches("last months of Taco %(full%-to%-full economy%):\n  %d%d%d%d%-%d%d +[%d.]+ mi +[%d.]+ USD spent", out)
    -- it ends with the fleet's due list, most urgent first
    local due = out:match("what is due in the fleet, most urgent first:\n(.*)$")
    assert.is_truthy(due, out)
    local ranks, rank = {}, { overdue = 1, due_soon = 2, upcoming = 3, snoozed = 4 }
    for line in due:gmatch("[^\n]+") do ranks[#ranks + 1] = assert(rank[line:match("^  (%S+)")], line) end
    assert.equal(6, #ranks) -- an oil change and an inspection expiry per vehicle
    for i = 2, #ranks do assert.is_true(ranks[i - 1] <= ranks[i], due) end
    assert.matches("Oil change", due)
    assert.matches("Inspection %(safety%) expires", due)
    out = H.run(bin .. " demo --schema " .. schema)
    assert.matches("%(0 new%)", out)
  end)

  it("adds, lists, snoozes and completes reminders, and prints what is due", function()
    local db, t, car, u = tenant_owner()
    local args = (" --schema %s --tenant %s --user %s"):format(schema, t, u)
    assert(db:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
      "VALUES ($1, $2, 'odometer', now() - interval '1 day', 2000, '{\"source\": \"manual\"}')", t, car))
    local out, ok = H.run(bin .. " reminder add 'Oil change' --vehicle car --due-mileage 1800 --every-distance 5000" .. args)
    assert.is_true(ok, out)
    local id = out:match("^(%x+%-[%x-]+)\n$")
    assert.is_truthy(id, out)
    local far = os.date("!%Y-%m-%d", os.time() + 200 * 86400)
    out, ok = H.run(bin .. " reminder add Tax --vehicle car --due-on " .. far .. args)
    assert.is_true(ok, out)
    out = H.run(bin .. " due" .. args)
    assert.matches("^overdue  car  Oil change  %-  1800  %-  %-200", out)
    assert.matches("\nupcoming  car  Tax  " .. far, out, 1, true)
    out = H.run(bin .. " due --within 30" .. args)
    assert.not_matches("Tax", out)
    out = H.run(bin .. " due --limit 1" .. args) -- the most urgent only
    assert.matches("^overdue  car  Oil change", out)
    assert.not_matches("Tax", out)
    out, ok = H.run(bin .. " due --json --vehicle car" .. args)
    assert.is_true(ok, out)
    assert.equal("overdue", require("motomind").json.decode(out:match("^[^\n]+")).status)
    out, ok = H.run(bin .. " reminder complete " .. id .. " --mileage 2000" .. args)
    assert.is_true(ok, out)
    out = H.run(bin .. " reminder history " .. id .. args)
    assert.matches("^1  %-  1800  %d%d%d%d%-%d%d%-%d%d  2000", out)
    assert.matches("\n2  %-  7000  %-", out)
    out, ok = H.run(bin .. " reminder snooze " .. id .. args)
    assert.is_false(ok)
    assert.matches("--until DATE", out)
    out, ok = H.run(bin .. " reminder dismiss 00000000-0000-0000-0000-000000000000" .. args)
    assert.is_false(ok)
    assert.matches("no such live reminder", out)
    db:close()
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
    assert.is_false(ok, out) -- exit 1: a record was refused
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

  it("lists the CSV formats it reads, with the header names each accepts", function()
    local out, ok = H.run(bin .. " formats")
    assert.is_true(ok, out)
    assert.matches("fuelly: Fuelly fuel%-ups CSV %(import and export%)\n  fuel: fuelup_date|date%*, odometer, gallons, " ..
      "litres|liters,", out)
    assert.matches("\nlubelogger%-odometer: [^\n]*\n  odometer: date%*, odometer%*, notes", out)
    assert.matches("\nfuelly%-services: Fuelly services CSV %(import%)\n", out)
    local lines, names = {}, {}
    out, ok = H.run(bin .. " formats --json")
    assert.is_true(ok, out)
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = require("motomind").json.decode(line) end
    for i, f in ipairs(lines) do names[i] = f.name end
    assert.same(require("motomind.formats").DETECT, names)
    assert.same({ names = { "date" }, required = true }, lines[#lines - 1].sections[1].columns[1])
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

  it("maintains, refreshes, reports health (failing on warnings) and prints a schedule", function()
    local db = tenant_owner()
    db:close()
    local out, ok = H.run(bin .. " health --schema " .. schema)
    assert.is_false(ok)
    assert.matches("warning timeline_feed was never refreshed", out)
    out, ok = H.run(bin .. " maintain --schema " .. schema)
    assert.is_true(ok, out)
    assert.matches("partitions created: vehicle_events_%d%d%d%d", out)
    assert.matches("timeline feed: refreshed", out)
    assert.matches("metrics advanced for 0 vehicles", out)
    out, ok = H.run(bin .. " refresh --max-age 300 --schema " .. schema)
    assert.is_true(ok, out)
    assert.matches("timeline_feed: fresh", out)
    out, ok = H.run(bin .. " health --schema " .. schema)
    assert.is_true(ok, out)
    assert.matches("info    size #1: ", out)
    out, ok = H.run(bin .. " schedule --crontab --every '0 * * * *' --schema " .. schema)
    assert.is_true(ok, out)
    assert.matches("0 %* %* %* %* .*motomind maintain %-%-schema " .. schema, out)
  end)

  it("walks a new user's first hour: help, a tenant, a vehicle by nickname, a CSV import, one vehicle's export", function()
    local out, ok = H.run(bin .. " --help")
    assert.is_true(ok, out)
    assert.matches("usage: motomind COMMAND", out)
    out, ok = H.run(bin .. " import --help")
    assert.is_true(ok, out)
    assert.matches("usage: motomind import FILE", out)
    assert.matches("%-%-vehicle V +every event's vehicle: id, nickname, plate or VIN", out)
    out, ok = H.run(bin .. " import x.csv --vehicel vito")
    assert.is_false(ok)
    assert.matches("import: unknown option %-%-vehicel %(valid: .*%-%-vehicle", out)
    local s = " --schema " .. schema
    assert(H.run(bin .. " migrate" .. s))
    local user = H.run(bin .. " user add ada@example.com --name Ada" .. s):match("^(%S+)\n$")
    assert.is_truthy(user)
    out, ok = H.run(bin .. " tenant create 'Ada garage' --owner ada@example.com" .. s)
    assert.is_true(ok, out)
    local tenant = out:match("^(%S+)\n$")
    local as = (" --tenant %s --user ada@example.com"):format(tenant) .. s
    out, ok = H.run(bin .. " vehicle add vito" .. as)
    assert.is_false(ok)
    assert.matches("%-%-unit km|mi is required", out)
    out, ok = H.run(bin .. " vehicle add Vito --unit km --plate 'B-XY 12'" .. as)
    assert.is_true(ok, out)
    local vito = out:match("^(%S+)\n$")
    assert(H.run(bin .. " vehicle add Other --unit mi" .. as))
    out = H.run(bin .. " vehicle list --json" .. as)
    assert.matches('"nickname":"Vito"', out)
    assert.matches('"odometer_unit":"km"', out)
    -- a Fuelly-like file into the vehicle named by nickname
    local csv = H.write_temp("fuelup_date,odometer,litres,price,notes\n2025-01-05,1000,40,1.80,first\n" ..
      "2025-01-20,1500,35,1.75,second\n")
    out, ok = H.run(bin .. " import " .. csv .. " --format fuelly" .. as)
    assert.is_false(ok)
    assert.matches("a CSV file holds one vehicle's records: name the vehicle %(%-%-vehicle%)", out)
    assert.not_matches("0 records", out)
    -- a mistake (a euro file read as dollars), undone, then imported right
    out, ok = H.run(bin .. " import " .. csv .. " --vehicle vito" .. as)
    assert.is_true(ok, out)
    local batch = out:match("%(fuelly%): 2 records, 2 imported, 0 already there, 0 refused; batch (%S+)")
    assert.is_truthy(batch, out)
    out = H.run(bin .. " imports --json" .. as)
    assert.is_truthy(out:find('"id":"' .. batch .. '"', 1, true), out)
    local b = batch:gsub("%-", "%%-")
    out, ok = H.run(bin .. " import " .. csv .. " --vehicle vito --currency EUR" .. as)
    assert.is_false(ok)
    assert.matches("these bytes were imported as batch " .. b .. " on .* with other options", out)
    out, ok = H.run(bin .. " import --undo " .. batch .. as)
    assert.is_true(ok, out)
    assert.matches("import " .. b .. " undone: 2 events voided, 0 corrected since and kept", out)
    out, ok = H.run(bin .. " import " .. csv .. " --vehicle vito --currency EUR" .. as)
    assert.is_true(ok, out)
    assert.matches("%(fuelly%): 2 records, 2 imported, 0 already there, 0 refused", out)
    -- the vehicle by plate: shown, edited; its unit is fixed under its readings
    out, ok = H.run(bin .. " vehicle show 'b-xy 12'" .. as)
    assert.is_true(ok, out)
    assert.matches("nickname +Vito\n", out)
    assert.matches("odometer_unit +km\n", out)
    out, ok = H.run(bin .. " vehicle edit Vito --make Mercedes-Benz --model Vito --vin WDF63960113456789" .. as)
    assert.is_true(ok, out)
    assert.matches("make +Mercedes%-Benz\n", out)
    out, ok = H.run(bin .. " vehicle edit WDF63960113456789 --unit mi" .. as)
    assert.is_false(ok)
    assert.matches("odometer_unit: the vehicle's readings are in km; changing it to mi would misread every one", out)
    out, ok = H.run(bin .. " vehicle edit Other --vin 1M8GDM9A1KP042788" .. as)
    assert.is_false(ok)
    assert.matches("vin: check digit %(9th character%) is 1, this VIN's is X", out)
    out, ok = H.run(bin .. " import " .. csv .. " --vehicle nope" .. as)
    assert.is_false(ok)
    assert.matches('vehicle "nope": no vehicle of this tenant has that id, nickname, plate or VIN', out)
    local empty = H.write_temp("fuelup_date,odometer,litres\n")
    out, ok = H.run(bin .. " import " .. empty .. " --vehicle 'b-xy 12'" .. as)
    assert.is_false(ok)
    assert.matches("no records %(the file is empty, or holds only a header%)", out)
    -- the export of one vehicle holds its events only
    local db = H.connect { schema = schema }
    assert(db:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
      "SELECT $1, id, 'odometer', now(), 5, '{\"source\": \"manual\"}' FROM vehicles WHERE nickname = 'Other'", tenant))
    db:close()
    out, ok = H.run(bin .. " export --vehicle Vito" .. as)
    assert.is_true(ok, out)
    assert.matches("exported 6 records", out) -- the mistaken import, its voids, the right one
    local n = 0
    for id in out:gmatch('"vehicle_id": "([^"]+)"') do assert.equal(vito, id) n = n + 1 end
    assert.equal(6, n)
    -- a period, in every format that takes one
    out, ok = H.run(bin .. " export --vehicle Vito --format fuelly --from 2025-01-10 --to 2025-01-31" .. as)
    assert.is_true(ok, out)
    assert.matches("exported 1 records", out)
    assert.matches("2025%-01%-20 00:00", out)
    assert.not_matches("2025%-01%-05", out)
    out = H.run(bin .. " export --vehicle Vito --to 2025-01-10" .. as)
    assert.matches("exported 3 records", out) -- both imports' first fill, and the void of the mistaken one
    out, ok = H.run(bin .. " export --from 2025-02-30" .. as)
    assert.is_false(ok)
    assert.matches("from: expected a date %(YYYY%-MM%-DD%)", out)
    out, ok = H.run(bin .. " export --format backup --from 2025-01-01" .. as)
    assert.is_false(ok)
    assert.matches("a backup holds the whole tenant: %-%-from does not apply", out)
    -- a fuel log of one's own layout: a column the header lacks is one error naming it, nothing imported
    local log = H.write_temp("Day;Km;Litres;Paid\n05.03.2025;2000;38,5;70,10\n19.03.2025;2600;41,0;74,62\n")
    local layout = { separator = ";", decimal_comma = true, dates = "dmy", type = "fuel",
      set = { ["payload.currency"] = "EUR", ["payload.unit"] = "l", ["payload.full"] = true },
      columns = { { names = "Day", to = "occurred_at", as = "datetime" }, { names = "Odometer", to = "mileage", as = "number" },
        { names = "Litres", to = "payload.volume", as = "number" }, { names = "Paid", to = "payload.total", as = "number" },
        { names = "Note", to = "notes", optional = true } } }
    local spec_file = H.write_temp(motomind.json.encode(layout))
    out, ok = H.run(bin .. " import " .. log .. " --vehicle vito --spec " .. spec_file .. as)
    assert.is_false(ok)
    assert.matches("line 1: header: no odometer column %(expected odometer%); nothing imported", out)
    layout.columns[2].names = { "Km", "Odometer" }
    layout.columns[3].requried = true
    local f = assert(io.open(spec_file, "w")) f:write(motomind.json.encode(layout)) f:close()
    out, ok = H.run(bin .. " import " .. log .. " --vehicle vito --spec " .. spec_file .. as)
    assert.is_false(ok)
    assert.matches('layout.columns%[3%]: unknown key "requried" %(valid: as, empty, map, names, optional, required', out)
    layout.columns[3].requried = nil
    f = assert(io.open(spec_file, "w")) f:write(motomind.json.encode(layout)) f:close()
    out, ok = H.run(bin .. " import " .. log .. " --vehicle vito --spec " .. spec_file .. as)
    assert.is_true(ok, out)
    assert.matches("%(csv%): 2 records, 2 imported, 0 already there, 0 refused", out)
    out = H.run(bin .. " export --vehicle Vito --format fuelly --from 2025-03-01" .. as)
    assert.matches("exported 2 records", out)
    -- each fill's economy from the layout's columns: 38.5 l over 500 km, 41 l over 600 km
    assert.matches("\nVito,Vito,7%.70,2000,500,38%.5,1%.821,,2025%-03%-05 00:00,,,0,0,,,\n", out)
    assert.matches("\nVito,Vito,6%.83,2600,600,41,1%.820,,2025%-03%-19 00:00,,,0,0,,,\n", out)
    os.remove(log) os.remove(spec_file)
    -- a file in miles into the km vehicle: refused naming both units, then converted
    local miles = H.write_temp("fuelup_date,odometer,miles,gallons,price\n2025-04-01,1700,,10,3.50\n" ..
      "2025-04-15,1950,250,9,3.40\n")
    out, ok = H.run(bin .. " import " .. miles .. " --vehicle vito" .. as)
    assert.is_false(ok)
    assert.matches("its header gives distances in miles, the vehicle's odometer is in kilometres: import it into " ..
      "a vehicle in miles, or convert its mileages %(%-%-convert", out)
    out, ok = H.run(bin .. " import " .. miles .. " --vehicle vito --convert" .. as)
    assert.is_true(ok, out)
    assert.matches("converted mileages from mi to km %(x 1%.60934%)", out)
    assert.matches("2 records, 2 imported", out)
    out = H.run(bin .. " export --vehicle Vito --format fuelly --from 2025-04-01" .. as)
    assert.matches(",2735%.9,", out) -- 1700 mi
    assert.matches(",3138%.2,", out) -- 1950 mi
    os.remove(miles)
    out = H.run(bin .. " member list" .. as)
    assert.matches("ada@example.com  owner", out)
    os.remove(csv) os.remove(empty)
  end)
end)

