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
    local out = H.expect(bin .. " status --schema " .. schema, true, "0001_core_tables%s+pending")
    H.expect(bin .. " migrate --schema " .. schema, true, "applied  0001_core_tables")
    out = H.run(bin .. " status --schema=" .. schema)
    assert.matches("0001_core_tables%s+applied%s+%d%d%d%d%-%d%d%-%d%dT.* by ", out)
    H.expect(bin .. " migrate --to 0 --schema " .. schema, true, "reverted 0001_core_tables")
  end)

  it("loads the demo fleet once and prints a vehicle timeline, newest first", function()
    local report = os.tmpname()
    local out = H.expect(bin .. " demo --schema " .. schema .. " --out " .. report, true)
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
    -- a projection from a stale reading is not shown as a date still to come
    -- (a day either side: the vehicles' timezones)
    local yesterday = os.date("!%Y-%m-%d", os.time() - 86400)
    for d in due:gmatch("at this pace (%d%d%d%d%-%d%d%-%d%d)") do assert.is_true(d >= yesterday, due) end
    out = H.run(bin .. " demo --schema " .. schema)
    assert.matches("%(0 new%)", out)
  end)

  it("adds, lists, snoozes and completes reminders, and prints what is due", function()
    local db, t, car, u = tenant_owner()
    local args = (" --schema %s --tenant %s --user %s"):format(schema, t, u)
    assert(db:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
      "VALUES ($1, $2, 'odometer', now() - interval '1 day', 2000, '{\"source\": \"manual\"}')", t, car))
    local out = H.expect(bin .. " reminder add 'Oil change' --vehicle car --due-mileage 1800 --every-distance 5000" .. args, true)
    local id = out:match("^(%x+%-[%x-]+)\n$")
    assert.is_truthy(id, out)
    local far = os.date("!%Y-%m-%d", os.time() + 200 * 86400)
    H.expect(bin .. " reminder add Tax --vehicle car --due-on " .. far .. args, true)
    out = H.run(bin .. " due" .. args)
    assert.matches("^overdue  car  Oil change  %-  1800  %-  %-200", out)
    assert.matches("\nupcoming  car  Tax  " .. far, out, 1, true)
    out = H.run(bin .. " due --within 30" .. args)
    assert.not_matches("Tax", out)
    out = H.run(bin .. " due --limit 1" .. args) -- the most urgent only
    assert.matches("^overdue  car  Oil change", out)
    assert.not_matches("Tax", out)
    out = H.expect(bin .. " due --json --vehicle car" .. args, true)
    assert.equal("overdue", require("motomind").json.decode(out:match("^[^\n]+")).status)
    H.expect(bin .. " reminder complete " .. id .. " --mileage 2000" .. args, true)
    out = H.run(bin .. " reminder history " .. id .. args)
    assert.matches("^1  %-  1800  %d%d%d%d%-%d%d%-%d%d  2000", out)
    assert.matches("\n2  %-  7000  %-", out)
    H.expect(bin .. " reminder snooze " .. id .. args, false, "--until DATE")
    out = H.expect(bin .. " reminder dismiss 00000000-0000-0000-0000-000000000000" .. args, false,
      "no such live reminder")
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
    H.expect(bin .. " import " .. path .. args .. " --atomic", false, "nothing imported %(atomic%)")
    out = H.expect(bin .. " export" .. args, true, '"mileage": 10.0', "exported 1 records")
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
    local out = H.expect(cmd, true)
    assert.not_matches("records/s", out)
    out = H.expect("script -qec " .. H.shell_quote(cmd) .. " /dev/null", true,
      "10000 records, %d+ records/s, %d+s left")
    db:close()
    os.remove(path)
  end)

  it("lists the CSV formats it reads, with the header names each accepts", function()
    local out = H.expect(bin .. " formats", true)
    assert.matches("fuelly: Fuelly fuel%-ups CSV %(import and export%)\n  fuel: fuelup_date|date%*, odometer, gallons, " ..
      "litres|liters,", out)
    assert.matches("\nlubelogger%-odometer: [^\n]*\n  odometer: date%*, odometer%*, notes", out)
    assert.matches("\nfuelly%-services: Fuelly services CSV %(import%)\n", out)
    local lines, names = {}, {}
    out = H.expect(bin .. " formats --json", true)
    for line in out:gmatch("[^\n]+") do lines[#lines + 1] = require("motomind").json.decode(line) end
    for i, f in ipairs(lines) do names[i] = f.name end
    assert.same(require("motomind.formats").DETECT, names)
    assert.same({ names = { "date" }, required = true }, lines[#lines - 1].sections[1].columns[1])
  end)

  it("explains what is wrong with bad usage", function()
    local out = H.expect(bin .. " frobnicate", false, "unknown command 'frobnicate'")
    H.expect(bin .. " migrate --to x --schema " .. schema, false, "%-%-to expects a whole number, got x")
    H.expect("env -u DATABASE_URL " .. bin .. " status", false, "no database configured")
  end)

  it("maintains, refreshes, reports health (failing on warnings) and prints a schedule", function()
    local db = tenant_owner()
    db:close()
    local out = H.expect(bin .. " health --schema " .. schema, false, "warning timeline_feed was never refreshed")
    H.expect(bin .. " maintain --schema " .. schema, true,
      "partitions created: vehicle_events_%d%d%d%d", "timeline feed: refreshed", "metrics advanced for 0 vehicles")
    H.expect(bin .. " refresh --max-age 300 --schema " .. schema, true, "timeline_feed: fresh")
    H.expect(bin .. " health --schema " .. schema, true, "info    size #1: ")
    H.expect(bin .. " schedule --crontab --every '0 * * * *' --schema " .. schema, true,
      "0 %* %* %* %* .*motomind maintain %-%-schema " .. schema)
  end)

  it("manages garages, a group tree, grants and vehicles placed in them, as the database allows", function()
    local db, t, _, owner = tenant_owner()
    local manager = H.user(db, t, "manager")
    local viewer = H.user(db, t, "viewer")
    db:close()
    local s = (" --tenant %s --schema %s --user "):format(t, schema)
    local out = H.expect(bin .. " garage add Depot --description 'north yard'" .. s .. owner, true)
    out = H.expect(bin .. " garage add depot" .. s .. owner, false, "garages_name_key")
    local europe = H.run(bin .. " group add Europe --kind region" .. s .. owner):match("^(%S+)\n$")
    assert.is_truthy(europe)
    assert(H.run(bin .. " group add Berlin --parent Europe --kind hub" .. s .. owner))
    assert(H.run(bin .. " group add Lyon --parent " .. europe .. s .. owner))
    out = H.run(bin .. " group list" .. s .. owner)
    assert.matches("Europe +region\n.*Europe / Berlin +hub\n.*Europe / Lyon +%-\n", out)
    -- a vehicle in a garage and a group, by their names
    H.expect(bin .. " vehicle add Sprinter --unit km --garage depot --group 'Europe / Berlin'" .. s .. owner, true)
    out = H.run(bin .. " garage list --json" .. s .. owner)
    assert.matches('"vehicles":1', out)
    -- the manager writes a grouped vehicle only under a write grant
    H.expect(bin .. " vehicle edit Sprinter --model 316" .. s .. manager, false,
      "no such vehicle in this tenant, or not yours to change")
    H.expect(bin .. " group grant Berlin " .. manager .. " write" .. s .. owner, true)
    assert(H.run(bin .. " vehicle edit Sprinter --model 316" .. s .. manager))
    H.expect(bin .. " group grant Europe " .. viewer .. " admin" .. s .. manager, false) -- a write grant gives no right to grant
    assert(H.run(bin .. " group revoke Berlin " .. manager .. s .. owner))
    H.expect(bin .. " vehicle edit Sprinter --model 317" .. s .. manager, false)
    H.expect(bin .. " group revoke Berlin " .. manager .. s .. owner, false,
      "no grant of that user on that group")
    -- a name two groups share is refused listing their paths; the path names one
    assert(H.run(bin .. " group add Asia" .. s .. owner))
    assert(H.run(bin .. " group add Berlin --parent Asia" .. s .. owner))
    H.expect(bin .. " group grant Berlin " .. manager .. " read" .. s .. owner, false,
      'group "Berlin" is ambiguous: Asia / Berlin %(.-%); Europe / Berlin %(')
    assert(H.run(bin .. " group grant 'asia / berlin' " .. manager .. " read" .. s .. owner))
    H.expect(bin .. " group add Paris --parent Nowhere" .. s .. owner, false,
      'group "Nowhere": no group of this tenant has that id, name or path')
  end)

  it("walks a new user's first hour: help, a tenant, a vehicle by nickname, a CSV import, one vehicle's export", function()
    local out = H.expect(bin .. " --help", true, "usage: motomind COMMAND")
    H.expect(bin .. " import --help", true,
      "usage: motomind import FILE", "%-%-vehicle V +every event's vehicle: id, nickname, plate or VIN")
    out = H.expect(bin .. " import x.csv --vehicel vito", false,
      "import: unknown option %-%-vehicel %(valid: .*%-%-vehicle")
    local s = " --schema " .. schema
    assert(H.run(bin .. " migrate" .. s))
    local user = H.run(bin .. " user add ada@example.com --name Ada" .. s):match("^(%S+)\n$")
    assert.is_truthy(user)
    out = H.expect(bin .. " tenant create 'Ada garage' --owner ada@example.com" .. s, true)
    local tenant = out:match("^(%S+)\n$")
    local as = (" --tenant %s --user ada@example.com"):format(tenant) .. s
    H.expect(bin .. " vehicle add vito" .. as, false, "%-%-unit km|mi is required")
    out = H.expect(bin .. " vehicle add Vito --unit km --plate 'B-XY 12'" .. as, true)
    local vito = out:match("^(%S+)\n$")
    assert(H.run(bin .. " vehicle add Other --unit mi" .. as))
    out = H.run(bin .. " vehicle list --json" .. as)
    assert.matches('"nickname":"Vito"', out)
    assert.matches('"odometer_unit":"km"', out)
    -- a Fuelly-like file into the vehicle named by nickname
    local csv = H.write_temp("fuelup_date,odometer,litres,price,notes\n2025-01-05,1000,40,1.80,first\n" ..
      "2025-01-20,1500,35,1.75,second\n")
    out = H.expect(bin .. " import " .. csv .. " --format fuelly" .. as, false,
      "a CSV file holds one vehicle's records: name the vehicle %(%-%-vehicle%)")
    assert.not_matches("0 records", out)
    -- a mistake (a euro file read as dollars), undone, then imported right
    out = H.expect(bin .. " import " .. csv .. " --vehicle vito" .. as, true)
    local batch = out:match("%(fuelly%): 2 records, 2 imported, 0 already there, 0 refused; batch (%S+)")
    assert.is_truthy(batch, out)
    out = H.run(bin .. " imports --json" .. as)
    assert.is_truthy(out:find('"id":"' .. batch .. '"', 1, true), out)
    local b = batch:gsub("%-", "%%-")
    H.expect(bin .. " import " .. csv .. " --vehicle vito --currency EUR" .. as, false,
      "these bytes were imported as batch " .. b .. " on .* with other options")
    H.expect(bin .. " import --undo " .. batch .. as, true,
      "import " .. b .. " undone: 2 events voided, 0 corrected since and kept")
    H.expect(bin .. " import " .. csv .. " --vehicle vito --currency EUR" .. as, true,
      "%(fuelly%): 2 records, 2 imported, 0 already there, 0 refused")
    -- the vehicle by plate: shown, edited; its unit is fixed under its readings
    H.expect(bin .. " vehicle show 'b-xy 12'" .. as, true, "nickname +Vito\n", "odometer_unit +km\n")
    H.expect(bin .. " vehicle edit Vito --make Mercedes-Benz --model Vito --vin WDF63960113456789" .. as, true,
      "make +Mercedes%-Benz\n")
    H.expect(bin .. " vehicle edit WDF63960113456789 --unit mi" .. as, false,
      "odometer_unit: the vehicle's readings are in km; changing it to mi would misread every one")
    H.expect(bin .. " vehicle edit Other --vin 1M8GDM9A1KP042788" .. as, false,
      "vin: check digit %(9th character%) is 1, this VIN's is X")
    out = H.expect(bin .. " import " .. csv .. " --vehicle nope" .. as, false,
      'vehicle "nope": no vehicle of this tenant has that id, nickname, plate or VIN')
    local empty = H.write_temp("fuelup_date,odometer,litres\n")
    out = H.expect(bin .. " import " .. empty .. " --vehicle 'b-xy 12'" .. as, false,
      "no records %(the file is empty, or holds only a header%)")
    -- the export of one vehicle holds its events only
    local db = H.connect { schema = schema }
    assert(db:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
      "SELECT $1, id, 'odometer', now(), 5, '{\"source\": \"manual\"}' FROM vehicles WHERE nickname = 'Other'", tenant))
    db:close()
    out = H.expect(bin .. " export --vehicle Vito" .. as, true)
    assert.matches("exported 6 records", out) -- the mistaken import, its voids, the right one
    local n = 0
    for id in out:gmatch('"vehicle_id": "([^"]+)"') do assert.equal(vito, id) n = n + 1 end
    assert.equal(6, n)
    -- a period, in every format that takes one
    out = H.expect(bin .. " export --vehicle Vito --format fuelly --from 2025-01-10 --to 2025-01-31" .. as, true,
      "exported 1 records", "2025%-01%-20 00:00")
    assert.not_matches("2025%-01%-05", out)
    out = H.run(bin .. " export --vehicle Vito --to 2025-01-10" .. as)
    assert.matches("exported 3 records", out) -- both imports' first fill, and the void of the mistaken one
    H.expect(bin .. " export --from 2025-02-30" .. as, false, "from: expected a date %(YYYY%-MM%-DD%)")
    out = H.expect(bin .. " export --format backup --from 2025-01-01" .. as, false,
      "a backup holds the whole tenant: %-%-from does not apply")
    -- a fuel log of one's own layout: a column the header lacks is one error naming it, nothing imported
    local log = H.write_temp("Day;Km;Litres;Paid\n05.03.2025;2000;38,5;70,10\n19.03.2025;2600;41,0;74,62\n")
    local layout = { separator = ";", decimal_comma = true, dates = "dmy", type = "fuel",
      set = { ["payload.currency"] = "EUR", ["payload.unit"] = "l", ["payload.full"] = true },
      columns = { { names = "Day", to = "occurred_at", as = "datetime" }, { names = "Odometer", to = "mileage", as = "number" },
        { names = "Litres", to = "payload.volume", as = "number" }, { names = "Paid", to = "payload.total", as = "number" },
        { names = "Note", to = "notes", optional = true } } }
    local spec_file = H.write_temp(motomind.json.encode(layout))
    out = H.expect(bin .. " import " .. log .. " --vehicle vito --spec " .. spec_file .. as, false,
      "line 1: header: no odometer column %(expected odometer%); nothing imported")
    layout.columns[2].names = { "Km", "Odometer" }
    layout.columns[3].requried = true
    local f = assert(io.open(spec_file, "w")) f:write(motomind.json.encode(layout)) f:close()
    out = H.expect(bin .. " import " .. log .. " --vehicle vito --spec " .. spec_file .. as, false,
      'layout: columns%[3%]: unknown key "requried" %(valid: as, empty, map, names, optional, required')
    layout.columns[3].requried = nil
    f = assert(io.open(spec_file, "w")) f:write(motomind.json.encode(layout)) f:close()
    H.expect(bin .. " import " .. log .. " --vehicle vito --spec " .. spec_file .. as, true,
      "%(csv%): 2 records, 2 imported, 0 already there, 0 refused")
    out = H.run(bin .. " export --vehicle Vito --format fuelly --from 2025-03-01" .. as)
    assert.matches("exported 2 records", out)
    -- each fill's economy from the layout's columns: 38.5 l over 500 km, 41 l over 600 km
    assert.matches("\nVito,Vito,7%.70,2000,500,38%.5,1%.821,,2025%-03%-05 00:00,,,0,0,,,\n", out)
    assert.matches("\nVito,Vito,6%.83,2600,600,41,1%.820,,2025%-03%-19 00:00,,,0,0,,,\n", out)
    os.remove(log) os.remove(spec_file)
    -- a file in miles into the km vehicle: refused naming both units, then converted
    local miles = H.write_temp("fuelup_date,odometer,miles,gallons,price\n2025-04-01,1700,,10,3.50\n" ..
      "2025-04-15,1950,250,9,3.40\n")
    out = H.expect(bin .. " import " .. miles .. " --vehicle vito" .. as, false)
    assert.matches("its header gives distances in miles, the vehicle's odometer is in kilometres: import it into " ..
      "a vehicle in miles, or convert its mileages %(%-%-convert", out)
    H.expect(bin .. " import " .. miles .. " --vehicle vito --convert" .. as, true,
      "converted mileages from mi to km %(x 1%.60934%)", "2 records, 2 imported")
    out = H.run(bin .. " export --vehicle Vito --format fuelly --from 2025-04-01" .. as)
    assert.matches(",2735%.9,", out) -- 1700 mi
    assert.matches(",3138%.2,", out) -- 1950 mi
    os.remove(miles)
    -- a second member, promoted; the last owner cannot step down
    assert(H.run(bin .. " user add bo@example.com" .. s))
    out = H.run(bin .. " user list --json" .. s)
    assert.matches('"display_name":"Ada","email":"ada@example.com"', out)
    assert.matches('"email":"bo@example.com"', out)
    assert(H.run(bin .. " member add bo@example.com viewer" .. as))
    H.expect(bin .. " member role bo@example.com manager" .. as, true, "bo@example.com is now a manager")
    H.expect(bin .. " member role ada@example.com viewer" .. as, false, "a tenant keeps at least one owner")
    H.expect(bin .. " member role ada@example.com owner" .. (" --tenant %s --user bo@example.com"):format(tenant) .. s, false,
      "not yours to change %(owners change roles%)")
    out = H.run(bin .. " member list" .. as)
    assert.matches("ada@example.com  owner\n%S+  bo@example.com  manager\n", out)
    os.remove(csv) os.remove(empty)
  end)
end)

