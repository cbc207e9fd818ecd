-- Custom fields, tags and an event's location (migration 0027): the rules
-- hold for every writer (the API, and plain SQL as the application role),
-- with messages that name the field; the SQL interpreter of the payload
-- vocabulary agrees with the C codec.
local H = require "spec.helper"
local motomind = require "motomind"
local core = require "motomind.core"
local vehicles = require "motomind.vehicles"
local fields = require "motomind.custom_fields"
local timeline = require "motomind.timeline"

local array = motomind.json.array_mt

describe("a tenant's records", function()
  local db, t, car, owner, ctx
  before_each(function()
    db, t, car, owner = H.fresh_tenant()
    ctx = { tenant = t, user = owner }
  end)
  after_each(function() H.drop(db) end)

  describe("custom fields", function()

    it("type a vehicle's extended_attributes, for every writer, naming the field", function()
      assert(fields.define(db, ctx, { name = "cost_center", spec = { type = "string", max_length = 10 },
        label = "Cost center" }))
      assert(fields.define(db, ctx, { name = "seats", spec = { type = "integer", min = 1, max = 9 } }))
      assert(fields.define(db, ctx, { name = "region", spec = { type = "string", enum = { "west", "east" } } }))
      local v = assert(vehicles.edit(db, ctx, car, { extended_attributes = { cost_center = "CC-1", seats = 5 } }))
      assert.same({ cost_center = "CC-1", seats = 5 }, v.extended_attributes)
      local cases = {
        { { cost_center = ("x"):rep(12) },
          "extended_attributes.cost_center: expected string of at most 10 characters, got 12 characters" },
        { { seats = 2.5 }, "extended_attributes.seats: expected integer from 1 to 9, got 2.5" },
        { { seats = "5" }, 'extended_attributes.seats: expected integer from 1 to 9, got "5"' },
        { { region = "north" }, 'extended_attributes.region: expected one of west, east, got "north"' },
        { { colour = "red" }, "extended_attributes.colour: unknown field" },
      }
      for _, c in ipairs(cases) do
        local ok, msg, sqlstate = vehicles.edit(db, ctx, car, { extended_attributes = c[1] })
        assert.is_nil(ok)
        assert.same({ c[2], "23514" }, { msg, sqlstate })
      end
      -- plain SQL as the application role meets the same rule
      local app = H.app_connect(db)
      local ok, msg = app:as(ctx, function()
        return app:exec("UPDATE vehicles SET extended_attributes = '{\"seats\": 0}' WHERE tenant_id = $1 AND id = $2",
          t, car)
      end)
      assert.is_nil(ok)
      assert.equal("extended_attributes.seats: expected integer from 1 to 9, got 0", msg)
      app:close()
      -- nothing else changed
      assert.same({ cost_center = "CC-1", seats = 5 }, vehicles.get(db, ctx, car).extended_attributes)
    end)

    it("refuse a definition change a vehicle would break, and a removal while a vehicle holds a value", function()
      assert(fields.define(db, ctx, { name = "asset_tag" }))
      assert(vehicles.edit(db, ctx, car, { extended_attributes = { asset_tag = "TRUCK-047" } }))
      local ok, msg = fields.change(db, ctx, "asset_tag", { spec = { type = "integer" } })
      assert.is_nil(ok)
      assert.equal(('custom field asset_tag: vehicle %s (car) would break it: extended_attributes.asset_tag: ' ..
        'expected integer, got "TRUCK-047"'):format(car), msg)
      -- a new required field: every live vehicle needs a value first
      ok, msg = fields.define(db, ctx, { name = "depot", required = true })
      assert.is_nil(ok)
      assert.matches("extended_attributes.depot: is required$", msg)
      ok, msg = fields.remove(db, ctx, "asset_tag")
      assert.is_nil(ok)
      assert.equal(("custom field asset_tag: vehicle %s (car) still holds a value (clear it before removing the field)")
        :format(car), msg)
      assert(vehicles.edit(db, ctx, car, { extended_attributes = {} }))
      assert.is_true(fields.remove(db, ctx, "asset_tag"))
      assert.same({}, fields.list(db, ctx))
      -- a removed field's name is free again, and values of it are unknown until it is
      ok, msg = vehicles.edit(db, ctx, car, { extended_attributes = { asset_tag = "X" } })
      assert.equal("extended_attributes.asset_tag: unknown field", msg)
      assert(fields.define(db, ctx, { name = "asset_tag", spec = { type = "date" } }))
      assert(vehicles.edit(db, ctx, car, { extended_attributes = { asset_tag = "2025-02-28" } }))
    end)

    it("refuse a spec outside the vocabulary, and are written by owners and managers only", function()
      local bad = {
        { { type = "text" }, 'spec.type: expected one of string, number, integer, boolean, date, got "text"' },
        { { type = "string", min = 1 }, "spec: min and max are rules of a number or integer, not of a string" },
        { { type = "number", min = 5, max = 1 }, "spec: min (5) is above max (1)" },
        { { type = "string", max_length = 0 }, "spec.max_length: expected integer from 1 to 10000, got 0" },
        { { type = "string", pattern = "x" }, "spec.pattern: unknown field" },
      }
      for _, c in ipairs(bad) do
        local ok, msg = fields.define(db, ctx, { name = "f", spec = c[1] })
        assert.is_nil(ok)
        assert.equal(c[2], msg)
      end
      local ok, msg = fields.define(db, ctx, { name = "Bad Name" })
      assert.is_nil(ok)
      assert.matches("custom_fields_name_check", msg)
      local viewer = H.user(db, t, "viewer")
      local app = H.app_connect(db)
      ok, msg = fields.define(app, { tenant = t, user = viewer }, { name = "f" })
      assert.is_nil(ok)
      assert.matches("row%-level security", msg)
      assert(fields.define(app, { tenant = t, user = H.user(db, t, "manager") }, { name = "f" }))
      assert.equal("f", fields.list(app, { tenant = t, user = viewer })[1].name)
      app:close()
    end)

    it("round-trip through a tenant backup before the vehicles that use them", function()
      assert(fields.define(db, ctx, { name = "depot", spec = { type = "string", enum = { "north", "south" } } }))
      assert(vehicles.edit(db, ctx, car, { extended_attributes = { depot = "north" }, tags = { "van", "leased" } }))
      assert(fields.change(db, ctx, "depot", { required = true }))
      local path = os.tmpname()
      assert(db:export(path, { tenant = t, user = owner, format = "backup" }))
      local db2, t2, own_car, owner2 = H.fresh_tenant()
      -- (a live vehicle without a depot would refuse the required field, as it would any definition)
      assert.is_true(db2:as({ tenant = t2, user = owner2 }, function()
        return require("motomind.records").soft_delete(db2, "vehicles", own_car)
      end))
      local report = assert(db2:import(path, { tenant = t2, user = owner2, format = "backup" }))
      os.remove(path)
      assert.same({}, report.rejected)
      local v = db2:row("SELECT extended_attributes, tags FROM vehicles WHERE tenant_id = $1 AND id = $2", t2, car)
      assert.same({ { depot = "north" }, { "van", "leased" } }, { v.extended_attributes, v.tags })
      assert.same({ "north", "south" }, db2:value("SELECT spec->'enum' FROM custom_fields WHERE tenant_id = $1", t2))
      H.drop(db2)
    end)

    it("leave a backup written before them restorable: its vehicles take the new columns' defaults", function()
      local id = "6f1c2b1e-0000-4000-8000-0000000000aa"
      local path = H.write_temp('{"record":"backup","version":1}\n' .. '{"record":"vehicle","id":"' .. id ..
        '","nickname":"old","timezone":"UTC","odometer_unit":"km","currency":"EUR"}\n')
      local report = assert(db:import(path, { tenant = t, user = owner, format = "backup" }))
      os.remove(path)
      assert.same({}, report.rejected)
      local v = assert(vehicles.get(db, ctx, id))
      assert.same({ {}, {} }, { v.tags, v.extended_attributes })
    end)
  end)

  describe("tags", function()
    it("are lists of distinct trimmed strings, on vehicles and events", function()
      local cases = {
        { { "west", "west" }, 'tags[2]: "west" is already a tag' },
        { { "ok", " padded" }, 'tags[2]: expected a tag (not empty, no spaces around it), got " padded"' },
        { { "" }, 'tags[1]: expected a tag (not empty, no spaces around it), got ""' },
        { { ("t"):rep(65) }, "tags[1]: expected string of at most 64 characters, got 65 characters" },
        { { 7 }, "tags[1]: expected string of at most 64 characters, got 7" },
      }
      for _, c in ipairs(cases) do
        local _, msg = vehicles.edit(db, ctx, car, { tags = c[1] })
        assert.equal(c[2], msg)
        _, msg = timeline.append(db, ctx, { vehicle_id = car, type = "odometer", occurred_at = "2025-01-01T00:00:00Z",
          mileage = 1, payload = { source = "manual" }, tags = c[1] })
        assert.equal(c[2], msg)
      end
      local many = {}
      for i = 1, 33 do many[i] = "t" .. i end
      local _, msg = vehicles.edit(db, ctx, car, { tags = many })
      assert.equal("tags: expected array of at most 32 items, got 33 items", msg)
      assert.same({}, vehicles.get(db, ctx, car).tags) -- an empty list by default
      assert.equal(array, getmetatable(vehicles.get(db, ctx, car).tags))
      assert(vehicles.edit(db, ctx, car, { tags = { "a" } }))
      assert.same({}, assert(vehicles.edit(db, ctx, car, { tags = {} })).tags) -- {} clears them: a list, not an object
      assert.equal(motomind.json.list({ 1 })[1], 1)
      assert.equal(array, getmetatable(motomind.json.list({})))
    end)

    it("filter vehicles and timeline pages (every tag given)", function()
      local other = assert(vehicles.add(db, ctx, { nickname = "van", odometer_unit = "km", tags = { "delivery" } })).id
      assert(vehicles.edit(db, ctx, car, { tags = { "delivery", "west" } }))
      local function nicknames(list)
        local out = {}
        for i, v in ipairs(list) do out[i] = v.nickname end
        return out
      end
      assert.same({ "car", "van" }, nicknames(vehicles.list(db, ctx, { tags = { "delivery" } })))
      assert.same({ "car" }, nicknames(vehicles.list(db, ctx, { tags = { "west", "delivery" } })))
      assert.same({}, nicknames(vehicles.list(db, ctx, { tags = { "east" } })))
      for day, tags in ipairs { { "business" }, { "business", "trip" }, {}, { "trip" } } do
        assert(timeline.append(db, ctx, { vehicle_id = day % 2 == 0 and other or car, type = "odometer",
          occurred_at = ("2025-01-%02dT00:00:00Z"):format(day), mileage = day, payload = { source = "manual" },
          tags = tags }))
      end
      local function days(page)
        local out = {}
        for i, e in ipairs(page.events) do out[i] = tonumber(e.occurred_at:sub(9, 10)) end
        return out
      end
      assert.same({ 2, 1 }, days(timeline.page(db, ctx, { tags = { "business" } })))
      assert.same({ 2 }, days(timeline.page(db, ctx, { tags = { "trip", "business" } })))
      assert.same({ 1 }, days(timeline.page(db, ctx, { tags = { "business" }, vehicle = car })))
      assert.same({ 4, 3, 2, 1 }, days(timeline.page(db, ctx, {})))
      assert.same({}, timeline.page(db, ctx, {}).events[2].tags) -- given as {}: no tags, a list
    end)
  end)

  describe("an event's location", function()
    local function odometer(day, extra)
      local e = { vehicle_id = car, type = "odometer", occurred_at = ("2025-03-%02dT08:00:00Z"):format(day),
        mileage = day * 100, payload = { source = "manual" } }
      for k, v in pairs(extra or {}) do e[k] = v end
      return e
    end

    it("is checked by the database, shown in pages and kept by corrections unless changed", function()
      local cases = {
        { { lat = 91, lon = 0 }, "location.lat: expected number from -90 to 90, got 91" },
        { { lat = 10 }, "location.lon: is required" },
        { { lat = 10, lon = 10, accuracy_m = -1 }, "location.accuracy_m: expected number from 0 to 100000, got -1" },
        { { lat = 10, lon = 10, alt = 5 }, "location.alt: unknown field" },
        { "Paris", 'location: expected object, got "Paris"' },
      }
      for _, c in ipairs(cases) do
        local _, msg = timeline.append(db, ctx, odometer(1, { location = c[1] }))
        assert.equal(c[2], msg)
      end
      local paris = { lat = 48.8566, lon = 2.3522, place = "Paris" }
      local e = assert(timeline.append(db, ctx, odometer(2, { location = paris })))
      local shown = timeline.page(db, ctx, { vehicle = car }).events[1]
      assert.same({ lat = 48.8566, lon = 2.3522, place = "Paris" }, shown.location)
      assert(timeline.correct(db, ctx, e, { mileage = 250 }))
      shown = timeline.page(db, ctx, { vehicle = car }).events[1]
      assert.same({ 250, "Paris" }, { tonumber(shown.mileage), shown.location.place })
      local history = timeline.history(db, ctx, e)
      assert.equal("Paris", history[2].location.place)
      assert(timeline.correct(db, ctx, e, { location = motomind.null }))
      assert.equal(motomind.null, timeline.page(db, ctx, { vehicle = car }).events[1].location)
    end)

    it("and tags are imported from JSON lines, refused by line, and exported", function()
      local lines = {
        motomind.json.encode(odometer(1, { location = { lat = 1, lon = 2 }, tags = { "a" } })),
        motomind.json.encode(odometer(2, { location = { lat = 100, lon = 2 } })),
        motomind.json.encode(odometer(3, { tags = { "b", "b" } })),
        '{"vehicle_id":"' .. car .. '","type":"odometer","occurred_at":"2025-03-04T08:00:00Z","mileage":400,' ..
          '"payload":{"source":"manual"},"tags":["\255"]}',
      }
      local report = assert(db:import(H.write_temp(table.concat(lines, "\n") .. "\n"), { tenant = t, user = owner }))
      assert.equal(1, report.inserted)
      local reasons = {}
      for _, r in ipairs(report.rejected) do reasons[r.line] = r.reason end
      assert.same({ [2] = "location.lat: expected number from -90 to 90, got 100", [3] = 'tags[2]: "b" is already a tag',
        [4] = "tags: text is not valid UTF-8" }, reasons)
      -- the same file again adds nothing (the content id covers the new fields)
      assert.equal(0, assert(db:import(H.write_temp(lines[1] .. "\n"), { tenant = t, user = owner })).inserted)
      local out = os.tmpname()
      assert(db:export(out, { tenant = t, user = owner, format = "jsonl" }))
      local exported = motomind.json.decode(H.read(out):match("^[^\n]+"))
      os.remove(out)
      assert.same({ { lat = 1, lon = 2 }, { "a" } }, { exported.location, exported.tags })
    end)
  end)

end)

describe("the SQL interpreter of the payload vocabulary (rule_problem)", function()
  it("gives the C codec's verdict and message on every rule of sql/payloads.json", function()
    local db = H.fresh()
    -- every field rule of every type, as the fields of one object type (no
    -- requires/any_of, which are the payload's, not the vocabulary's)
    local doc = motomind.json.decode(H.read(require("motomind.migrate").sql_directory() .. "/payloads.json"))
    local probe = {}
    for type_name, spec in pairs(doc) do
      for name, rule in pairs(spec.fields) do
        rule.requires = nil
        probe[type_name .. "_" .. name] = rule
      end
    end
    local codec = assert(core.payload_codec(motomind.json.encode { probe = { fields = probe } }))
    local object_rule = { type = "object", fields = probe }
    local samples = { 0, -1, 0.5, 2.5, 1e7, 12.25, 101, "", "USD", "usd", "pass", "2024-02-29", "2023-02-29",
      "s3://b/k", "no url", true, false, { a = 1 }, setmetatable({}, array), ("z"):rep(210),
      setmetatable({ { name = "filter" } }, array), setmetatable({ { name = 5 } }, array),
      setmetatable({ "x", 1 }, array), { value = 1, confidence = 2 } }
    local names = {}
    for name in pairs(probe) do names[#names + 1] = name end
    table.sort(names)
    local compared, refused = 0, 0
    for _, name in ipairs(names) do
      for _, v in ipairs(samples) do
        local value = { [name] = v }
        local _, c_message = codec:check("probe", value)
        local sql_message = db:value("SELECT rule_problem('payload', $1::jsonb, $2::jsonb)", object_rule, value)
        assert.equal(c_message or motomind.null, sql_message, name .. " = " .. motomind.json.encode(v))
        compared = compared + 1
        if c_message then refused = refused + 1 end
      end
    end
    assert.is_true(refused > compared / 3 and refused < compared) -- both verdicts are exercised
    H.drop(db)
  end)
end)
