-- Sealed fields (migration 0029): a tenant that seals stores its VINs,
-- plates and conversation content only as ciphertext under a key the
-- database never keeps; the rules, lookups and uniqueness still hold, for
-- every writer; a session without the key reads NULL and cannot write.
local H = require "spec.helper"
local motomind = require "motomind"
local vehicles = require "motomind.vehicles"
local tenants = require "motomind.tenants"
local conversations = require "motomind.conversations"

local KEY = "correct horse battery staple 42"
local VIN, PLATE = "1HGCM82633A004352", "AB-123-CD"

-- Every stored byte of the tenant's rows of a table, as text (what a dump,
-- a backup of the cluster or a superuser with psql would see).
local function stored(db, tbl, t)
  return db:value(("SELECT string_agg(x::text, E'\\n') FROM %s x WHERE tenant_id = $1"):format(tbl), t)
end

describe("sealed fields", function()
  local db, keyed, t, car, owner, ctx
  before_each(function()
    db, t, car, owner = H.fresh_tenant()
    keyed = H.connect { schema = db:schema(), field_key = KEY }
    ctx = { tenant = t, user = owner }
    assert(vehicles.edit(keyed, ctx, car, { vin = VIN, plate = PLATE }))
  end)
  after_each(function()
    keyed:close()
    H.drop(db)
  end)

  it("are derived from the catalog: every c_sealed column has its trigger", function()
    local cols = db:query("SELECT table_name || '.' || column_name AS c, hashed FROM sealed_columns ORDER BY 1")
    assert.same({ { c = "conversation_messages.content", hashed = false }, { c = "vehicles.plate", hashed = true },
      { c = "vehicles.vin", hashed = true } }, cols)
    assert.equal(0, db:value([[SELECT count(*) FROM sealed_columns s WHERE NOT EXISTS (SELECT 1 FROM pg_trigger g
      WHERE g.tgrelid = s.rel AND g.tgname = 'z_seal_' || s.column_name)]]))
  end)

  it("are switched by an owner with a key, sealing what is stored and the audit log's images", function()
    assert(conversations.say(keyed, ctx, assert(conversations.start(keyed, ctx, { vehicle_id = car })).id,
      { role = "user", content = "my plate is AB-123-CD" }))
    -- without a key, and as a viewer, the switch is refused
    local _, msg, sqlstate = tenants.seal_fields(db, ctx, true)
    assert.same({ "field sealing: this session has no field key (connect with field_key)", "22023" }, { msg, sqlstate })
    local viewer = H.user(db, t, "viewer")
    _, msg, sqlstate = tenants.seal_fields(keyed, { tenant = t, user = viewer }, true)
    assert.same({ "field sealing: the tenant's owners only switch it", "42501" }, { msg, sqlstate })
    assert.matches(VIN, stored(db, "vehicles", t), 1, true)
    assert.equal(3, tenants.seal_fields(keyed, ctx, true))
    assert.equal(0, tenants.seal_fields(keyed, ctx, true))
    for _, tbl in ipairs { "vehicles", "conversation_messages", "audit_log" } do
      local text = stored(db, tbl, t)
      assert.is_nil(text:find(VIN, 1, true), tbl)
      assert.is_nil(text:find(PLATE, 1, true), tbl)
    end
    -- the key opens them
    local v = assert(vehicles.get(keyed, ctx, car))
    assert.same({ VIN, PLATE }, { v.vin, v.plate })
    local thread = conversations.threads(keyed, ctx, car)[1]
    assert.equal("my plate is AB-123-CD", conversations.messages(keyed, ctx, thread.id)[1].content)
    -- and switching back stores plaintext again
    assert.equal(3, tenants.seal_fields(keyed, ctx, false))
    assert.same({ VIN, PLATE }, { db:row("SELECT vin, plate FROM vehicles WHERE id = $1", car).vin,
      db:row("SELECT vin, plate FROM vehicles WHERE id = $1", car).plate })
    assert.equal(0, db:value("SELECT count(*) FROM vehicles WHERE vin_sealed IS NOT NULL OR plate_hash IS NOT NULL"))
  end)

  describe("in a sealing tenant", function()
    before_each(function() assert(tenants.seal_fields(keyed, ctx, true)) end)

    it("keep their rules, lookups and uniqueness, for the API and plain SQL alike", function()
      local ok, msg, sqlstate = vehicles.add(keyed, ctx, { nickname = "twin", odometer_unit = "km", vin = VIN })
      assert.is_nil(ok)
      assert.equal("23505", sqlstate)
      assert.matches("vehicles_vin_hash_key", msg, 1, true)
      _, msg, sqlstate = vehicles.add(keyed, ctx, { nickname = "twin", odometer_unit = "km", plate = "ab-123-cd" })
      assert.same({ "23505", true }, { sqlstate, msg:find("vehicles_plate_hash_key", 1, true) ~= nil })
      _, msg, sqlstate = vehicles.add(keyed, ctx, { nickname = "bad", odometer_unit = "km", vin = "1hg" })
      assert.same({ 'new row for relation "vehicles" violates check constraint "vehicles_vin_check"', "23514" },
        { msg, sqlstate })
      _, msg = vehicles.add(keyed, ctx, { nickname = "bad", odometer_unit = "km", vin = "1HGCM82633A004353" })
      assert.matches("vin: check digit", msg, 1, true)
      -- looked up by plate or VIN (any case), through the keyed hash
      assert.equal(car, vehicles.resolve(keyed, ctx, "ab-123-cd"))
      assert.equal(car, vehicles.resolve(keyed, ctx, VIN:lower()))
      assert.same(VIN, vehicles.list(keyed, ctx)[1].vin)
      -- the application role writing plain SQL is sealed just the same
      local app = motomind.assert(motomind.connect(nil, { schema = db:schema(), user = "motomind_app",
        field_key = KEY }))
      local id = motomind.assert(app:as(ctx, function()
        return app:value("INSERT INTO vehicles (tenant_id, nickname, odometer_unit, plate) VALUES ($1, 'sql', 'mi', " ..
          "'ZZ-9') RETURNING id", t)
      end))
      app:close()
      local raw = db:row("SELECT plate, plate_sealed IS NOT NULL AS sealed FROM vehicles WHERE id = $1", id)
      assert.same({ motomind.null, true }, { raw.plate, raw.sealed })
      assert.equal("ZZ-9", vehicles.get(keyed, ctx, id).plate)
    end)

    -- The companions are the database's to write, from the value: a
    -- caller's own ciphertext or hash would be taken as the tenant's.
    it("refuse a caller's own ciphertext or hash as fields of the API (the catalog's companions)", function()
      for _, field in ipairs { "vin_sealed", "vin_hash", "plate_sealed", "plate_hash", "id" } do
        local _, msg, sqlstate = vehicles.edit(keyed, ctx, car, { [field] = "\\x00" })
        assert.same({ field .. ": unknown field", "22023" }, { msg, sqlstate })
        _, msg = vehicles.add(keyed, ctx, { odometer_unit = "km", [field] = "\\x00" })
        assert.equal(field .. ": unknown field", msg)
      end
      local fields = vehicles.fields(keyed)
      assert.is_truthy(table.concat(fields, " "):find("vin plate", 1, true))
      assert.is_nil(table.concat(fields, " "):find("_sealed", 1, true))
      local thread = assert(conversations.start(keyed, ctx, { vehicle_id = car }))
      local _, msg = conversations.say(keyed, ctx, thread.id, { role = "user", content_sealed = "\\x00" })
      assert.equal("content_sealed: unknown field of conversation_messages", msg)
      assert.equal(VIN, vehicles.get(keyed, ctx, car).vin)
    end)

    it("are cleared by setting NULL, and edited without touching the other", function()
      assert(vehicles.edit(keyed, ctx, car, { plate = motomind.null }))
      local v = assert(vehicles.get(keyed, ctx, car))
      assert.same({ VIN, motomind.null }, { v.vin, v.plate })
      assert.equal(0, db:value("SELECT count(*) FROM vehicles WHERE id = $1 AND (plate_sealed IS NOT NULL " ..
        "OR plate_hash IS NOT NULL)", car))
      assert(vehicles.edit(keyed, ctx, car, { nickname = "renamed" }))
      assert.equal(VIN, vehicles.get(keyed, ctx, car).vin)
    end)

    it("read as NULL without the key, refuse writes without it, and name the field under a wrong key", function()
      local v = assert(vehicles.get(db, ctx, car))
      assert.same({ motomind.null, motomind.null }, { v.vin, v.plate })
      assert.is_string(v.vin_sealed)
      local _, msg, sqlstate = vehicles.edit(db, ctx, car, { vin = "JH4KA7561PC008269" })
      assert.same({ "vin: sealed in this tenant, and this session has no field key (connect with field_key)",
        "22023" }, { msg, sqlstate })
      local wrong = H.connect { schema = db:schema(), field_key = "another key of enough length" }
      _, msg, sqlstate = vehicles.get(wrong, ctx, car)
      wrong:close()
      assert.equal("22023", sqlstate)
      assert.matches("the field key does not open this value", msg, 1, true)
      local short = H.connect { schema = db:schema(), field_key = "short" }
      _, msg = vehicles.edit(short, ctx, car, { plate = "X-1" })
      short:close()
      assert.equal("field key: 5 characters, at least 16 needed (a random secret, not a password)", msg)
      assert.equal(VIN, vehicles.get(keyed, ctx, car).vin)
    end)

    it("round-trip through a backup that holds only ciphertext", function()
      local thread = assert(conversations.start(keyed, ctx, { vehicle_id = car }))
      assert(conversations.say(keyed, ctx, thread.id, { role = "user", content = "service at 60,000 km?" }))
      local path = os.tmpname()
      assert(keyed:export(path, { tenant = t, user = owner, format = "backup" }))
      local text = H.read(path)
      assert.is_nil(text:find(VIN, 1, true))
      assert.is_nil(text:find("60,000", 1, true))
      local db2, t2, own_car, owner2 = H.fresh_tenant()
      local keyed2 = H.connect { schema = db2:schema(), field_key = KEY }
      local ctx2 = { tenant = t2, user = owner2 }
      assert.is_true(keyed2:as(ctx2, function() return require("motomind.records").soft_delete(keyed2, "vehicles",
        own_car) end))
      local report = assert(keyed2:import(path, { tenant = t2, user = owner2, format = "backup" }))
      os.remove(path)
      assert.same({}, report.rejected)
      assert.same({ VIN, PLATE }, { vehicles.get(keyed2, ctx2, car).vin, vehicles.get(keyed2, ctx2, car).plate })
      assert.equal("service at 60,000 km?", conversations.messages(keyed2, ctx2, thread.id)[1].content)
      -- (restored sealed into a tenant that does not seal, then a plate
      -- written plain beside the sealed VIN: the switch keeps both)
      assert(vehicles.edit(keyed2, ctx2, car, { plate = "NEW-1" }))
      assert(tenants.seal_fields(keyed2, ctx2, true))
      assert.same({ VIN, "NEW-1" }, { vehicles.get(keyed2, ctx2, car).vin, vehicles.get(keyed2, ctx2, car).plate })
      assert(tenants.seal_fields(keyed2, ctx2, false))
      assert.equal(VIN, db2:value("SELECT vin FROM vehicles WHERE id = $1", car))
      keyed2:close()
      H.drop(db2)
    end)
  end)
end)
