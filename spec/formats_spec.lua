-- Importing other apps' exports (fixtures in spec/fixtures/imports, written
-- for these specs in each app's format), tenant backups and LubeLogger CSV.
local motomind = require "motomind"
local H = require "spec.helper"

local FIXTURES = "spec/fixtures/imports/"
local unpack = table.unpack or unpack

local read, write = H.read, H.write_temp

-- line -> column of each refused record
-- A backup restore's counts: every kind, 0 unless given.
local function restored(counts)
  local out = {}
  for _, k in ipairs(require("motomind.backup").KINDS) do out[k[1]] = counts[k[1]] or 0 end
  return out
end

local function refused(report)
  local by_line = {}
  for _, r in ipairs(report.rejected) do by_line[r.line] = r.column or r.reason end
  return by_line
end

describe("importing other apps' exports", function()
  local db, tenant, user, car
  local importer = require "motomind.import"
  local staged_copies, real_copy -- (the staging COPYs' SQL, in order)

  before_each(function()
    db, tenant, car, user = H.fresh_tenant()
    local methods = getmetatable(db).__index
    real_copy, staged_copies = methods.copy_events, {}
    methods.copy_events = function(self, sql, ...)
      if sql:find("motomind_import", 1, true) then staged_copies[#staged_copies + 1] = sql end
      return real_copy(self, sql, ...)
    end
  end)
  after_each(function()
    getmetatable(db).__index.copy_events = real_copy
    importer.typed_staging = true
    H.drop(db)
  end)

  local function vehicle(unit, timezone)
    return db:value("INSERT INTO vehicles (tenant_id, odometer_unit, timezone) VALUES ($1, $2, $3) RETURNING id",
      tenant, unit, timezone)
  end

  local function import(file, opts)
    opts = opts or {}
    opts.tenant, opts.user = tenant, user
    return db:import(FIXTURES .. file, opts)
  end

  local function events(v)
    return assert(db:query("SELECT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS at, " ..
      "type, mileage::float8 AS mileage, payload, notes, location, tags FROM vehicle_events WHERE vehicle_id = $1 ORDER BY occurred_at, mileage", v))
  end

  it("reads Fuelly fuel-ups: CR line endings, newest first, 12-hour and short dates, partial and missed fills", function()
    local truck = vehicle("mi", "America/Chicago")
    local report = assert(import("fuelly-fuelups.csv", { vehicle = truck }))
    assert.equal("fuelly", report.format)
    assert.equal(7, report.records)
    assert.equal(4, report.inserted)
    assert.equal(1, report.duplicates)
    assert.same({ [6] = "odometer", [7] = "fuelup_date" }, refused(report))
    assert.matches('^odometer: expected a number, got "5O4OO.0"$', report.rejected[1].reason)
    local e = events(truck)
    assert.equal(4, #e)
    -- read in the vehicle's timezone (CDT, UTC-5, in March 2013)
    assert.same({ "2013-03-11 20:14", "2013-03-15 13:32", "2013-03-27 21:01", "2013-04-01 05:00" },
      { e[1].at, e[2].at, e[3].at, e[4].at })
    assert.same({ 50252, 50536, 50860, 51191 }, { e[1].mileage, e[2].mileage, e[3].mileage, e[4].mileage })
    local partial = e[2].payload
    assert.same({ volume = 8.5, unit = "us_gal", price_per_unit = 3.86, currency = "USD", full = false,
      missed = false, extra = { city_percentage = 25 } }, partial)
    assert.same({ lat = 41.88, lon = -87.63 }, e[2].location) -- a column of the event, not payload.extra
    assert.equal(motomind.null, e[1].location)
    assert.equal('half tank, "cheap" station', e[2].notes)
    assert.is_true(e[3].payload.missed)
    assert.equal("Shell", e[4].payload.station)
    assert.same({ "road trip" }, e[4].tags)
    local again = assert(import("fuelly-fuelups.csv", { vehicle = truck }))
    assert.equal(0, again.inserted)
    assert.equal(5, again.duplicates)
  end)

  it("takes the volume unit and the currency as options", function()
    local truck = vehicle("mi", "Europe/London")
    assert(import("fuelly-fuelups.csv", { vehicle = truck, unit = "uk_gal", currency = "GBP" }))
    local p = db:value("SELECT payload FROM vehicle_events WHERE vehicle_id = $1 LIMIT 1", truck)
    assert.same({ "uk_gal", "GBP" }, { p.unit, p.currency })
  end)

  -- file, expected format, vehicle (unit, timezone), records, inserted, refused {line = column}, check
  local cases = {
    { "fuelly-services.csv", "fuelly-services", { "mi", "UTC" }, 2, 2, {}, function(e)
      assert.same({ service_type = "Brakes", total = 1234.5, currency = "USD", extra = { sub_service_types = "Front pads" } },
        e[1].payload)
      assert.same({ "warranty" }, e[1].tags)
      assert.equal("synthetic 5W-30", e[2].notes)
    end },
    { "lubelogger-fuel.csv", "lubelogger-fuel", { "mi", "UTC" }, 5, 4, { [5] = "isfilltofull" }, function(e)
      assert.same({ volume = 10.5, unit = "us_gal", total = 36.75, currency = "USD", full = true, missed = false },
        e[1].payload)
      assert.is_false(e[2].payload.full)
      assert.equal("top up, partial", e[2].notes)
      assert.equal(1034.1, e[3].payload.total)
      assert.is_true(e[4].payload.missed)
    end },
    { "lubelogger-service.csv", "lubelogger-service", { "km", "UTC" }, 2, 2, {}, function(e)
      assert.same({ service_type = "Brake Pads", total = 310.49, currency = "USD" }, e[2].payload)
      assert.same({ "brakes", "safety" }, e[2].tags)
    end },
    { "lubelogger-odometer.csv", "lubelogger-odometer", { "mi", "UTC" }, 2, 2, {}, function(e)
      assert.same({ source = "manual" }, e[1].payload)
      assert.same({ 11950, 13650 }, { e[1].mileage, e[2].mileage })
    end },
    { "fuelio.csv", "fuelio", { "km", "Europe/Warsaw" }, 10, 9, { [19] = "cost" }, function(e)
      assert.equal("2020-01-05 07:15", e[1].at) -- CET
      assert.same({ volume = 41.2, unit = "l", full = true, missed = false, total = 57.27, price_per_unit = 1.39,
        currency = "EUR", extra = { city = "Warszawa" } }, e[1].payload)
      assert.same({ lat = 52.23, lon = 21.01 }, e[1].location)
      assert.is_false(e[2].payload.full)
      assert.same({ "maintenance", "Oil change", 249.99 }, { e[3].type, e[3].payload.service_type, e[3].payload.total })
      -- each cost's category from the file's own cost types; an ID it does not list sets none
      assert.same({ "service", "service", "insurance", "parking_tolls" },
        { e[3].payload.category, e[5].payload.category, e[7].payload.category, e[8].payload.category })
      assert.same({ "Sticker", nil }, { e[9].payload.service_type, e[9].payload.category })
      assert.is_nil(e[3].payload.next_service) -- RemindOdo 0 and RemindDate 2011-01-01: no reminder
      -- a cost's reminder: the next one due, and its recurrence
      assert.same({ mileage = 255000, due_on = "2024-02-01", repeat_distance = 90000, repeat_months = 48 },
        e[5].payload.next_service)
      assert.is_true(e[6].payload.missed)
    end },
    { "spritmonitor.csv", "spritmonitor", { "km", "Europe/Berlin" }, 6, 4, { [6] = "date" }, function(e)
      assert.same({ 48120, 48790, 49310, 50020 }, { e[1].mileage, e[2].mileage, e[3].mileage, e[4].mileage })
      assert.same({ volume = 45.1, unit = "l", total = 78.02, currency = "EUR", full = true, missed = true,
        grade = "Diesel", station = "Aral" }, e[1].payload)
      assert.is_false(e[2].payload.full)
      assert.equal("nur halb", e[2].notes)
      assert.equal(1071.9, e[4].payload.total)
      assert.is_true(e[4].payload.missed) -- an invalid fill restarts the economy
    end },
    { "spritmonitor-costs.csv", "spritmonitor-costs", { "km", "Europe/Berlin" }, 5, 4, { [6] = "costs" }, function(e)
      assert.same({ service_type = "Inspektion 60.000", category = "service", total = 389.5, currency = "EUR" },
        e[1].payload)
      assert.same({ 50400, "mit Ölwechsel" }, { e[1].mileage, e[1].notes })
      -- no title: the cost type names the service
      assert.same({ service_type = "Versicherung", category = "insurance", total = 612, currency = "EUR" }, e[2].payload)
      assert.same({ "Parkhaus", "parking_tolls" }, { e[3].payload.service_type, e[3].payload.category })
      assert.same({ "Leasing April", nil }, { e[4].payload.service_type, e[4].payload.category }) -- a type it does not know
    end },
  }
  for _, c in ipairs(cases) do
    local file, format, where, records, inserted, columns, check = unpack(c)
    it("recognises and imports " .. format .. " (" .. file .. "), and adds nothing the second time", function()
      local v = vehicle(where[1], where[2])
      local report = assert(import(file, { vehicle = v }))
      assert.equal(format, report.format)
      assert.equal(records, report.records)
      assert.equal(inserted, report.inserted)
      assert.same(columns, refused(report))
      check(events(v))
      local again = assert(import(file, { vehicle = v }))
      assert.same({ 0, report.staged }, { again.inserted, again.duplicates })
      -- staged typed (C's texts around the time, hashed with it in SQL) and
      -- as texts, the file's events get the same content ids
      assert.matches("content_prefix", staged_copies[1], 1, true)
      importer.typed_staging = false
      local texts = import(file, { vehicle = v })
      importer.typed_staging = true
      assert(texts)
      assert.same({ 0, report.staged }, { texts.inserted, texts.duplicates })
      assert.is_nil(staged_copies[#staged_copies]:find("content_prefix", 1, true))
    end)
  end

  it("makes reminders of Fuelio's cost reminders, recurring as Fuelio says", function()
    local v = vehicle("km", "Europe/Warsaw")
    assert(import("fuelio.csv", { vehicle = v }))
    local r = assert(db:row("SELECT title, service_type, source, due_on::text, due_mileage::float8 AS mi, " ..
      "repeat_months, repeat_distance::float8 AS every FROM reminders WHERE vehicle_id = $1", v))
    assert.same({ title = "Timing Belt", service_type = "Timing belt", source = "next_service", due_on = "2024-02-01",
      mi = 255000, repeat_months = 48, every = 90000 }, r)
    assert.equal(1, db:value("SELECT count(*) FROM reminders WHERE vehicle_id = $1", v))
  end)

  it("imports LubeLogger's reminders CSV as reminders (Metric picks the due), once, refusing a bad date by line", function()
    local v = vehicle("mi", "America/New_York")
    local report = assert(import("lubelogger-reminders.csv", { vehicle = v }))
    assert.equal("lubelogger-reminders", report.format)
    assert.same({ 4, 0, 3 }, { report.records, report.inserted, report.restored.reminder })
    assert.same({ [5] = "duedate" }, refused(report))
    local rows = assert(db:query("SELECT title, description, due_on::text, due_mileage::float8 AS mi, source " ..
      "FROM reminders WHERE vehicle_id = $1 ORDER BY title", v))
    assert.same({
      { title = "Oil Change", description = "every 5k", due_on = "2027-03-15", mi = 45000, source = "import" },
      { title = "Registration", due_on = "2026-12-01", source = "import" }, -- Metric Date: its odometer is not a due
      { title = "Tire Rotation", mi = 30000, source = "import" },            -- Metric Odometer: its date is not
    }, H.without_nulls(rows))
    local again = assert(import("lubelogger-reminders.csv", { vehicle = v }))
    assert.equal(0, again.restored.reminder)
    assert.equal(3, db:value("SELECT count(*) FROM reminders WHERE vehicle_id = $1", v))
  end)

  it("refuses a file without a date column, and a CSV file without a vehicle, importing nothing", function()
    local path = write("odometer,gallons\n1000,10\n")
    local ok, msg = db:import(path, { tenant = tenant, user = user, format = "fuelly", vehicle = car })
    assert.is_nil(ok)
    assert.matches("line 1: header: no fuelup_date column %(expected fuelup_date or date%); nothing imported", msg)
    -- a fill needs a volume or a total (payloads.json): a header with neither is one error, not one per row
    local no_volume = write("fuelup_date,odometer,price\n2025-01-05,1000,1.80\n2025-01-20,1500,1.75\n")
    ok, msg = db:import(no_volume, { tenant = tenant, user = user, format = "fuelly", vehicle = car })
    assert.is_nil(ok)
    assert.equal(no_volume .. ": line 1: header: no column gives the fuel event's volume or total (expected gallons, litres); " ..
      "nothing imported", msg)
    os.remove(no_volume)
    ok, msg = import("lubelogger-fuel.csv")
    assert.is_nil(ok)
    assert.matches("name the vehicle", msg)
    ok, msg = db:import(path, { tenant = tenant, user = user })
    assert.is_nil(ok)
    assert.matches("cannot tell its format", msg)
    assert.equal(0, db:value("SELECT count(*) FROM vehicle_events"))
    os.remove(path)
  end)

  it("imports from a reader function", function()
    local text = read(FIXTURES .. "lubelogger-odometer.csv")
    local done = false
    local report = assert(db:import(function()
      if done then return nil end
      done = true
      return text
    end, { tenant = tenant, user = user, vehicle = car }))
    assert.equal(2, report.inserted)
  end)

  it("exports LubeLogger CSV that imports back to the same file", function()
    local v = vehicle("mi", "America/New_York")
    assert(import("lubelogger-fuel.csv", { vehicle = v }))
    assert(import("lubelogger-service.csv", { vehicle = v }))
    local copy = vehicle("mi", "America/New_York")
    for _, kind in ipairs { "fuel", "service" } do
      local first, second = os.tmpname(), os.tmpname()
      local n = assert(db:export(first, { tenant = tenant, user = user, format = "lubelogger-" .. kind, vehicle = v }))
      assert.equal(kind == "fuel" and 4 or 2, n)
      assert(db:import(first, { tenant = tenant, user = user, vehicle = copy }))
      assert(db:export(second, { tenant = tenant, user = user, format = "lubelogger-" .. kind, vehicle = copy }))
      assert.equal(read(first), read(second))
      if kind == "fuel" then
        assert.matches("^Date,Odometer,FuelConsumed,Cost,FuelEconomy,IsFillToFull,MissedFuelUp,Notes,Tags\n", read(first))
        assert.matches('\n01/12/2024,12300,6.25,21.88,,False,False,"top up, partial",commute\n', read(first))
        -- each full fill's economy: 650 mi on 6.25 + 9.75 gallons
        assert.matches('\n01/20/2024,12650,9.75,1034.1,40.63,True,False,,\n', read(first))
      end
      os.remove(first) os.remove(second)
    end
  end)
end)

describe("exports for other apps", function()
  local db, tenant, user

  before_each(function()
    db = H.fresh()
    tenant = H.tenant_with_vehicle(db)
    user = H.user(db, tenant, "owner")
  end)
  after_each(function() H.drop(db) end)

  local function vehicle(unit, tz)
    return motomind.assert(db:value("INSERT INTO vehicles (tenant_id, odometer_unit, timezone) VALUES ($1, $2, $3) " ..
      "RETURNING id", tenant, unit, tz))
  end

  local function export(v, format)
    local path = os.tmpname()
    assert(db:export(path, { tenant = tenant, user = user, format = format, vehicle = v }))
    local text = read(path)
    os.remove(path)
    return text, path
  end

  it("keeps the source app's cost category (a LubeLogger repair file), and refuses an unknown one", function()
    local v = vehicle("mi", "UTC")
    local report = assert(db:import(FIXTURES .. "lubelogger-service.csv", { tenant = tenant, user = user, vehicle = v,
      category = "repair" }))
    assert.equal(2, report.inserted)
    assert.same({ { category = "repair", n = 2 } }, motomind.assert(db:query("SELECT payload->>'category' AS category, " ..
      "count(*)::integer AS n FROM vehicle_events WHERE vehicle_id = $1 GROUP BY 1", v)))
    local none, err = db:import(FIXTURES .. "lubelogger-service.csv", { tenant = tenant, user = user, vehicle = v,
      category = "bribes" })
    assert.is_nil(none)
    assert.matches("^category: expected one of service, repair, upgrade", err)
    none, err = db:import(FIXTURES .. "fuelly-fuelups.csv", { tenant = tenant, user = user, vehicle = v,
      category = "repair" })
    assert.is_nil(none)
    assert.matches("category: this format holds no maintenance records", err)
  end)

  -- Right after an import the tables have no statistics; the planner then
  -- expected one fill and computed the fills' economy once per event (57 s
  -- for 30,000 fills). The export's statement is read back and run under
  -- EXPLAIN ANALYZE: every window over the fills runs once.
  it("computes a vehicle's fills once in its export, right after an import, before any ANALYZE", function()
    local v = vehicle("mi", "UTC")
    local lines = {}
    for i = 1, 400 do
      lines[i] = ('{"type":"fuel","occurred_at":"%s","mileage":%d,"payload":{"volume":10,"unit":"us_gal",' ..
        '"total":30,"currency":"USD"}}'):format(os.date("!%Y-%m-%dT%H:%M:%SZ", 1735689600 + i * 86400), 1000 + i * 250)
    end
    assert.equal(400, assert(db:import(write(table.concat(lines, "\n") .. "\n"),
      { tenant = tenant, user = user, vehicle = v })).inserted)
    local statement
    local copy_out = getmetatable(db).__index.copy_out
    local ok, err = pcall(function()
      getmetatable(db).__index.copy_out = function(self, sql, sink)
        statement = statement or sql
        return copy_out(self, sql, sink)
      end
      export(v, "fuelly")
    end)
    getmetatable(db).__index.copy_out = copy_out
    assert(ok, err)
    local select = assert(statement:match("^COPY %((.*)%) TO STDOUT"), statement)
    local plan = motomind.assert(db:as({ tenant = tenant, user = user }, function()
      motomind.assert(db:exec("SELECT set_config('motomind.export_vehicle', $1::text, true)", v))
      return db:value("EXPLAIN (ANALYZE, FORMAT JSON) " .. select)
    end))
    local windows, most = 0, 0
    local function walk(node)
      if node["Node Type"] == "WindowAgg" then
        windows, most = windows + 1, math.max(most, node["Actual Loops"])
      end
      for _, child in ipairs(node.Plans or {}) do walk(child) end
    end
    walk(plan[1].Plan)
    assert.is_true(windows > 0, "the plan has the fills' windows")
    assert.equal(1, most, "the fills' windows ran more than once")
  end)

  it("imports with a layout of one's own from a Lua file, run with access to nothing", function()
    local layout = require "motomind.layout"
    local v = vehicle("mi", "UTC")
    local lua_layout = write([[
      local full = { ["payload.full"] = true }
      return { type = "fuel", set = { ["payload.unit"] = "us_gal", ["payload.currency"] = "USD" },
        columns = { { names = { "when", "date" }, to = "occurred_at", as = "datetime" },
                    { names = "miles", to = "mileage", as = "number" },
                    { names = "gal", to = "payload.volume", as = "number" },
                    { names = "fill", as = "map", map = { full = full, part = { ["payload.full"] = false } } },
                    { names = "memo", to = "notes", optional = true } } }]])
    local path = lua_layout .. ".lua"
    assert(os.rename(lua_layout, path))
    local spec = assert(layout.load(path))
    local data = write("When,Miles,Gal,Fill\n2025-04-01,1000,10,full\n2025-04-08,1200,4,part\n2025-04-15,1400,9,full\n")
    local report = assert(db:import(data, { tenant = tenant, user = user, vehicle = v, format = spec }))
    assert.same({ "csv", 3, 3 }, { report.format, report.records, report.inserted })
    local fills = motomind.assert(db:query("SELECT (payload->>'full')::boolean AS f " ..
      "FROM vehicle_events WHERE vehicle_id = $1 ORDER BY occurred_at", v))
    assert.same({ true, false, true }, { fills[1].f, fills[2].f, fills[3].f })
    local evil = write("return os.exit(3)")
    os.rename(evil, evil .. ".lua")
    local none, err = layout.load(evil .. ".lua")
    assert.is_nil(none)
    assert.matches("layout: .*global 'os'", err) -- (Lua 5.4 and LuaJIT word it differently)
    -- a layout the reader cannot compile is an error returned up front, not raised from the import
    local sqlstate
    none, err, sqlstate = db:import(data, { tenant = tenant, user = user, vehicle = v, format = { type = "fuel",
      columns = { { names = "when", to = "occurred_at", as = "when" } } } })
    assert.same({ "layout: columns[1]: as: expected text, number, datetime, date, map or list", "22023" }, { err, sqlstate })
    assert.is_nil(none)
    none, err = layout.load(data) -- not JSON
    assert.is_nil(none)
    assert.matches("layout: .*: not JSON", err)
    os.remove(path) os.remove(evil .. ".lua") os.remove(data)
  end)

  it("names a Fuelio cost's category from its cost type, unless the import names one for all", function()
    local v = vehicle("km", "UTC")
    assert(db:import(FIXTURES .. "fuelio.csv", { tenant = tenant, user = user, vehicle = v, category = "other" }))
    assert.same({ { category = "other", n = 5 } }, motomind.assert(db:query("SELECT payload->>'category' AS category, " ..
      "count(*)::integer AS n FROM vehicle_events WHERE vehicle_id = $1 AND type = 'maintenance' GROUP BY 1", v)))
    -- the cost-type names of Fuelio, Spritmonitor and LubeLogger, in the languages they write
    local formats = require "motomind.formats"
    local enum = {}
    for _, c in ipairs(motomind.json.decode(read("sql/payloads.json")).maintenance.fields.category.enum) do
      enum[c] = true
    end
    local names = { Service = "service", Wartung = "service", ["Oil change"] = "service", Repair = "repair",
      Reparatur = "repair", Tuning = "upgrade", ["Change of tires"] = "tires", Reifen = "tires", Insurance = "insurance",
      Versicherung = "insurance", ["Road tax"] = "tax", ["Kfz-Steuer"] = "tax", Registration = "registration",
      Tolls = "parking_tolls", ["Parkgebühren"] = "parking_tolls", Fine = "fines", ["Car wash"] = "cleaning", Care = "cleaning",
      Pflege = "cleaning", Accessories = "accessories", Financing = "other", Sonstiges = "other" }
    for name, category in pairs(names) do
      assert.equal(category, formats.category_of(name), name)
      assert.is_true(enum[category], category)
    end
  end)

  it("exports Fuelly fuel-ups with each fill's economy that import back to the same file", function()
    for _, case in ipairs { { "mi", "fuelly-fuelups.csv" }, { "km", nil } } do
      local v = vehicle(case[1], "America/Chicago")
      if case[2] then
        assert(db:import(FIXTURES .. case[2], { tenant = tenant, user = user, vehicle = v }))
      else -- a metric car logged in litres, one fill in gallons
        local timeline = require "motomind.timeline"
        local ctx = { tenant = tenant, user = user }
        -- (1650 and 1640 at the same minute, 1650's id first: the file has them by odometer)
        for _, f in ipairs { { "2024-05-01T10:00:00Z", 1000, 40, "l" }, { "2024-05-09T10:00:00Z", 1650, 10, "us_gal", nil, 1 },
                             { "2024-05-09T10:00:00Z", 1640, 2, "l", false, 2 }, { "2024-05-09T18:00:00Z", 1700, 3, "l" } } do
          assert(timeline.append(db, ctx, { vehicle_id = v, type = "fuel", occurred_at = f[1], mileage = f[2],
            id = f[6] and ("00000000-0000-4000-8000-%012d"):format(f[6]) or nil,
            payload = { volume = f[3], unit = f[4], price_per_unit = 1.899, currency = "EUR", station = "Aral",
              full = f[5] } }))
        end
      end
      local first = export(v, "fuelly")
      local copy = vehicle(case[1], "America/Chicago")
      local path = H.write_temp(first)
      local report = assert(db:import(path, { tenant = tenant, user = user, vehicle = copy,
        currency = case[1] == "km" and "EUR" or nil }))
      os.remove(path)
      assert.same({}, report.rejected)
      assert.equal(first, (export(copy, "fuelly")))
      if case[1] == "mi" then
        assert.matches("^car_name,model,mpg,odometer,miles,gallons,price,city_percentage,fuelup_date,tags,notes," ..
          "missed_fuelup,partial_fuelup,latitude,longitude,brand\n", first)
        -- Fuelly's own file says 17.267 (331 mi since the fill after the missed one)
        assert.matches('\n,,17.27,51191,331,19.17,3.88,35,2013%-04%-01 00:00,road trip,,0,0,,,Shell\n$', first)
        assert.matches('\n,,,50536,284,8.5,3.86,25,2013%-03%-15 08:32,,"half tank, ""cheap"" station",0,1,41.88,%-87.63,\n',
          first)
      else
        -- 650 km on 2 l (partial) + 10 US gallons (37.854 l): 6.13 L/100 km; gallons in litres
        assert.matches("\n,,,1640,640,2,1.899,,2024%-05%-09 05:00,,,0,1,,,Aral\n" ..
          ",,6.13,1650,10,37.854,0.502,,2024%-05%-09 05:00,,,0,0,,,Aral\n", first)
      end
    end
  end)
end)

describe("tenant backups", function()
  local db

  before_each(function() db = H.fresh() end)
  after_each(function() H.drop(db) end)

  local function q(sql, ...) return motomind.assert(db:value(sql, ...)) end

  it("round-trip a whole tenant exactly, into another tenant, and add nothing the second time", function()
    local t = H.tenant_with_vehicle(db)
    local user = H.user(db, t, "owner")
    local garage = q("INSERT INTO garages (tenant_id, name, description) VALUES ($1, 'Home', 'the barn') RETURNING id", t)
    local region = q("INSERT INTO fleet_groups (tenant_id, name, kind) VALUES ($1, 'North', 'region') RETURNING id", t)
    local team = q("INSERT INTO fleet_groups (tenant_id, parent_id, name) VALUES ($1, $2, 'Vans') RETURNING id", t, region)
    -- a group whose id sorts before its parent's still comes after it
    q("INSERT INTO fleet_groups (tenant_id, id, parent_id, name) VALUES ($1, '00000000-0000-4000-8000-000000000001', $2, 'Sub') RETURNING id", t, team)
    local van = q("INSERT INTO vehicles (tenant_id, garage_id, group_id, year, make, model, vin, plate, nickname, " ..
      "timezone, odometer_unit) VALUES ($1, $2, $3, 2019, 'Ford', 'Transit', '1FTBW2CM3KKA12345', 'AB 123', 'van', " ..
      "'Europe/Oslo', 'km') RETURNING id", t, garage, team)
    local control = q("INSERT INTO reminders (tenant_id, vehicle_id, title, due_on, due_mileage, repeat_months) " ..
      "VALUES ($1, $2, 'EU control', '2026-05-01', 120000.5, 24) RETURNING id", t, van)
    q("INSERT INTO reminder_completions (tenant_id, reminder_id, completed_on, mileage) VALUES ($1, $2, '2026-04-20', " ..
      "119000) RETURNING id", t, control)
    local gone = q("INSERT INTO vehicles (tenant_id, nickname) VALUES ($1, 'sold') RETURNING id", t)
    local ctx = { tenant = t, user = user }
    local timeline = require "motomind.timeline"
    local first = assert(timeline.append(db, ctx, { vehicle_id = van, type = "odometer", mileage = 1000,
      occurred_at = "2025-01-01T08:00:00Z", payload = { source = "manual" } }))
    assert(timeline.append(db, ctx, { vehicle_id = van, type = "fuel", mileage = 1400, occurred_at = "2025-01-09T08:00:00Z",
      payload = { volume = 50.5, unit = "l", total = 74.33, currency = "NOK" }, notes = "first fill" }))
    assert(timeline.correct(db, ctx, first, { mileage = 1001, payload = { source = "photo_ocr", ocr_confidence = 97 } }))
    assert(timeline.append(db, ctx, { vehicle_id = gone, type = "odometer", mileage = 5, occurred_at = "2025-01-01T00:00:00Z",
      payload = { source = "manual" } }))
    assert(db:as(ctx, require("motomind.records").soft_delete, "vehicles", gone))
    -- a capture: a session, a photo with its metadata, a vision call and its
    -- confirmation, the event they made; a location fix, specs,
    -- preferences and a conversation
    local captures, photos, vision = require "motomind.captures", require "motomind.photos", require "motomind.vision"
    local session = motomind.assert(captures.start(db, ctx, { vehicle_id = van, flow = "odometer",
      started_at = "2025-02-01T08:00:00Z" }))
    local photo = motomind.assert(photos.add(db, ctx, { vehicle_id = van, storage_url = "s3://b/odo.jpg",
      capture_session_id = session.id, checksum = ("%064x"):format(7), metadata = { device_make = "Pixel", exif = { f = 1.8 } } }))
    local call = motomind.assert(vision.record(db, ctx, { image_id = photo.id, model = "m1", task = "odometer",
      latency_ms = 300, fields = { mileage = { value = 2000, confidence = 0.9 } } }))
    motomind.assert(captures.step(db, ctx, session.id, "photo", 1))
    local done = motomind.assert(captures.complete(db, ctx, session.id, { event = { type = "odometer", mileage = 2000,
      occurred_at = "2025-02-01T08:00:00Z", payload = { source = "photo_ocr", ocr_confidence = 90 } },
      photos = { { id = photo.id, role = "odometer" } }, confirmations = { { call = call.id, fields = { mileage = 2000 } } } }))
    motomind.assert(require("motomind.locations").correct(db, ctx, { vehicle_id = van, event_id = done.event.id,
      event_occurred_at = done.event.occurred_at, recorded_latitude = 59.9, recorded_longitude = 10.7, latitude = 59.91,
      longitude = 10.7 }))
    local profiles, conversations = require "motomind.profiles", require "motomind.conversations"
    motomind.assert(profiles.set_spec(db, ctx, { vehicle_id = van, source = "vin_decoder", fuel_types = { "diesel" } }))
    motomind.assert(profiles.set_preferences(db, ctx, { vehicle_id = van, due_soon_days = 14 }))
    local thread = motomind.assert(conversations.start(db, ctx, { vehicle_id = van, title = "Odometer" }))
    motomind.assert(conversations.say(db, ctx, thread.id, { role = "user", content = "Is 2000 right?" }))
    motomind.assert(conversations.say(db, ctx, thread.id, { role = "assistant", content = "Yes.", model = "m2",
      event_ids = { done.event.id } }))

    local path, again = os.tmpname(), os.tmpname()
    local n = assert(db:export(path, { tenant = t, user = user, format = "backup" }))
    -- garage, groups, vehicles (car, van), reminder, completion, 4 events, 12 capture records
    assert.equal(1 + 3 + 2 + 1 + 1 + 4 + 12, n)
    local text = read(path)
    assert.matches('^{"record":"backup","version":1}\n{"id": "[^"]+", "name": "Home", "record": "garage", ', text)
    assert.not_matches("sold", text)

    local t2 = q("INSERT INTO tenants (name) VALUES ('restored') RETURNING id")
    local user2 = H.user(db, t2, "owner")
    local report = assert(db:import(path, { tenant = t2, user = user2 }))
    assert.equal("backup", report.format)
    assert.same(restored { garage = 1, fleet_group = 3, vehicle = 2, reminder = 1, reminder_completion = 1,
      vehicle_spec = 1, maintenance_preference = 1, conversation_thread = 1, capture_session = 1, photo = 1,
      photo_metadata = 1, event_photo = 1, vision_call = 1, vision_result = 1, location_correction = 1,
      conversation_message = 2 }, report.restored)
    assert.same({ 4, 0, 0 }, { report.inserted, report.duplicates, #report.rejected })
    assert(db:export(again, { tenant = t2, user = user2, format = "backup" }))
    assert.equal(text, read(again))
    -- the reminder's chain is rebuilt: done by hand, next due two years on
    assert.equal("2028-04-20", q("SELECT due_on::text FROM reminders WHERE tenant_id = $1", t2))
    assert.equal(2, q("SELECT count(*) FROM reminder_occurrences WHERE tenant_id = $1", t2))
    -- the correction still applies in the restored tenant
    assert.equal(1001, q("SELECT mileage::float8 FROM vehicle_events_effective WHERE tenant_id = $1 AND type = 'odometer'", t2))

    local twice = assert(db:import(path, { tenant = t2, user = user2 }))
    assert.same(restored {}, twice.restored)
    assert.same({ 0, 4 }, { twice.inserted, twice.duplicates })
    os.remove(path) os.remove(again)
  end)

  it("carries every table a user writes, or names why not (from the catalog)", function()
    local backup = require "motomind.backup"
    local listed = {}
    for _, k in ipairs(backup.KINDS) do listed[k[2]] = k[1] end
    local app = db:value("SELECT value FROM settings WHERE key = 'app_role'")
    local missing, tables = {}, 0
    for _, r in ipairs(assert(db:query("SELECT table_name FROM tenant_tables " ..
        "WHERE has_table_privilege($1, rel, 'INSERT') ORDER BY 1", app))) do
      tables = tables + 1
      local carried, why = listed[r.table_name] ~= nil, backup.NOT_CARRIED[r.table_name]
      assert.is_false(carried and why ~= nil, r.table_name .. " is both carried and left out")
      if not carried and not why then missing[#missing + 1] = r.table_name end
      listed[r.table_name] = nil
    end
    assert.same({}, missing)
    assert.same({}, listed) -- (every kind's table exists and is the user's to write)
    assert.is_true(tables >= #backup.KINDS)
  end)

  it("refuses unknown record kinds and fields by line, and a file that is not a backup", function()
    local t, car = H.tenant_with_vehicle(db)
    local user = H.user(db, t, "owner")
    local path = write(table.concat({
      '{"record":"backup","version":1}',
      '{"record":"garage","id":"6f1c2b1e-0000-4000-8000-000000000001","name":"Shed"}',
      '{"record":"garage","id":"6f1c2b1e-0000-4000-8000-000000000002","name":"Loft","colour":"red"}',
      '{"record":"spaceship","id":"6f1c2b1e-0000-4000-8000-000000000003"}',
      '{"record":"vehicle","id":"6f1c2b1e-0000-4000-8000-000000000004","vin":"not a vin","timezone":"UTC",' ..
        '"odometer_unit":"mi"}',
      '{"vehicle_id":"' .. car .. '","type":"odometer","occurred_at":"2025-01-01T00:00:00Z","mileage":10,' ..
        '"payload":{"source":"manual"}}',
    }, "\n") .. "\n")
    local report = assert(db:import(path, { tenant = t, user = user }))
    assert.equal("colour: unknown field", refused(report)[3])
    assert.equal('record: unknown kind "spaceship"', refused(report)[4])
    assert.matches("vehicles_vin_check", refused(report)[5])
    assert.same(restored { garage = 1 }, report.restored)
    assert.equal(1, report.inserted)
    local plain = write('{"record":"garage","id":"6f1c2b1e-0000-4000-8000-000000000009","name":"X"}\n')
    local ok, msg = db:import(plain, { tenant = t, user = user, format = "backup" })
    assert.is_nil(ok)
    assert.matches("not a motomind backup of version 1", msg)
    report = assert(db:import(plain, { tenant = t, user = user, format = "jsonl" }))
    assert.matches("a backup record", report.rejected[1].reason)
    os.remove(path) os.remove(plain)
  end)
end)

describe("the CSV reader", function()
  local db, tenant, user, car

  before_each(function() db, tenant, car, user = H.fresh_tenant() end)
  after_each(function() H.drop(db) end)

  -- Odometer readings: when;mileage;note, with the given reader options.
  local function import(text, opts)
    local spec = { separator = ";", type = "odometer", set = { ["payload.source"] = "manual" }, columns = {
      { names = "when", to = "occurred_at", as = "datetime", required = true },
      { names = "km", to = "mileage", as = "number" },
      { names = "note", to = "notes", optional = true } } }
    for k, v in pairs(opts or {}) do spec[k] = v end
    local path = write(text)
    local report = assert(db:import(path, { tenant = tenant, user = user, vehicle = car, format = spec }))
    os.remove(path)
    local rows = assert(db:query("SELECT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS at, " ..
      "mileage::float8 AS km, notes FROM vehicle_events ORDER BY occurred_at"))
    return report, rows
  end

  it("handles a byte-order mark, CRLF, quoted line breaks, stray spaces, and counts lines right", function()
    local report, rows = import('\239\187\191 When ; KM;note\r\n2024-01-01;10; "a\r\nb"\r\n' ..
      '2024-01-02; 2O ;x\r\n\r\n"2024-01-03" ;30;"say ""hi"""\r\n')
    assert.equal(3, report.records)
    assert.same({ [4] = "km" }, refused(report))
    assert.equal('km: expected a number, got "2O"', report.rejected[1].reason)
    assert.same({ "a\nb", 'say "hi"' }, { rows[1].notes, rows[2].notes })
  end)

  it("reads numbers with currency marks, thousands separators and decimal commas", function()
    local _, rows = import("when;km\n2024-01-01;1.234,5\n2024-01-02;2.000 km\n2024-01-03;3000,25€\n",
      { decimal_comma = true })
    assert.same({ 1234.5, 2000, 3000.3 }, { rows[1].km, rows[2].km, rows[3].km }) -- numeric(10,1)
    local report = import("when;km\n2024-02-01;$4,100.5\n2024-02-02;USD 4200\n2024-02-03;1.2.3\n2024-02-04;-\n" ..
      "2024-02-05;12abc\n")
    assert.same({ [4] = "km", [5] = "km", [6] = "km" }, refused(report))
    assert.equal(2, report.inserted)
  end)

  it("reads the dates people write, and refuses impossible ones", function()
    local report, rows = import(table.concat({ "when;km",
      "2013-03-11 3:14 PM;1", "3/14/14 12:05 AM;2", "14.03.2014 08:00;3", "2021-01-02T08:00:00Z;4",
      "2021-01-03T08:00:00+02:00;5", "2024-02-29;6",
      "2013-02-29;7", "13/14/14;8", "2013-03-11 13:14 PM;9", "2013-03-11 25:00;10", "yesterday;11", "3/4;12" }, "\n"))
    assert.same({ "2013-03-11 15:14", "2014-03-14 00:05", "2014-03-14 08:00", "2021-01-02 08:00", "2021-01-03 06:00",
      "2024-02-29 00:00" }, { rows[1].at, rows[2].at, rows[3].at, rows[4].at, rows[5].at, rows[6].at })
    assert.same({ [8] = "when", [9] = "when", [10] = "when", [11] = "when", [12] = "when", [13] = "when" },
      refused(report))
    assert.matches('^when: expected a date %(MM/DD/YYYY', report.rejected[1].reason)
    local _, dmy = import("when;km\n4/3/2025;20\n", { dates = "dmy" })
    assert.equal("2025-03-04 00:00", dmy[#dmy].at)
  end)
end)
