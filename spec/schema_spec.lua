local motomind = require "motomind"
local H = require "spec.helper"

-- Tables whose rows belong to a tenant (every table but the tenants and users roots).
local TENANT_TABLES = { "memberships", "garages", "vehicles", "vehicle_events",
                        "vehicle_images", "reminders" }

describe("core schema", function()
  local db
  setup(function() db = H.fresh() end)
  teardown(function() H.drop(db) end)

  local function fails(sqlstate, constraint, ...)
    local ok, msg, state, detail = db:exec(...)
    assert.is_nil(ok, "expected a failure")
    assert.equal(sqlstate, state, msg)
    if constraint then assert.equal(constraint, detail.constraint, msg) end
  end

  it("matches the distribution plan in docs/design.md (make distribution-plan rewrites it)", function()
    local plan = dofile(H.root .. "/tools/distribution_plan.lua")
    local doc = H.read(H.root .. "/docs/design.md")
    local want = plan.splice(doc, plan.plan(db))
    assert.equal(want, doc)
  end)

  it("matches docs/schema.md, the current schema in one file (make schema rewrites it)", function()
    local dump = dofile(H.root .. "/tools/schema_dump.lua")
    local want = assert(dump.dump(os.getenv("DATABASE_URL") or "", db:schema()))
    assert.is_true(want == H.read(H.root .. "/docs/schema.md"), "docs/schema.md is stale: run make schema")
  end)

  it("leads every key of a tenant table with tenant_id", function()
    local rows = motomind.assert(db:query([[
      SELECT c.conrelid::regclass::text AS tbl, c.conname, c.contype,
             (SELECT attname FROM pg_attribute
               WHERE attrelid = c.conrelid AND attnum = c.conkey[1]) AS first_col
        FROM pg_constraint c
        JOIN pg_class r ON r.oid = c.conrelid
       WHERE r.relnamespace = $1::regnamespace AND c.contype IN ('p', 'u', 'f')
         AND r.relname IN (SELECT jsonb_array_elements_text($2)) AND NOT r.relispartition
         -- users is shared by tenants (a reference table), so keys to it are exempt
         AND (c.contype <> 'f' OR c.confrelid <> to_regclass($1 || '.users'))]], db:schema(), TENANT_TABLES))
    assert.is_true(#rows >= 10)
    for _, r in ipairs(rows) do
      assert.equal("tenant_id", r.first_col, r.tbl .. " " .. r.conname)
    end
    local uniques = motomind.assert(db:query([[
      SELECT indexrelid::regclass::text AS idx,
             (SELECT attname FROM pg_attribute WHERE attrelid = i.indrelid AND attnum = i.indkey[0]) AS first_col
        FROM pg_index i JOIN pg_class r ON r.oid = i.indrelid
       WHERE i.indisunique AND r.relnamespace = $1::regnamespace AND r.relname IN (SELECT jsonb_array_elements_text($2))
         AND NOT r.relispartition]], db:schema(), TENANT_TABLES))
    for _, u in ipairs(uniques) do assert.equal("tenant_id", u.first_col, u.idx) end
  end)

  it("partitions events by occurred_at with a default partition", function()
    assert.equal("RANGE (occurred_at)",
      db:value("SELECT pg_get_partkeydef(to_regclass($1))", db:schema() .. ".vehicle_events"))
    assert.equal("vehicle_events_default", db:value(
      "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid " ..
      "WHERE i.inhparent = to_regclass($1) AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'",
      db:schema() .. ".vehicle_events"))
  end)

  it("lets other rows reference an event by its key", function()
    local t, v = H.tenant_with_vehicle(db)
    local e = db:row("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
      "VALUES ($1, $2, 'damage', '2025-03-01T10:00:00Z', 1000, '{\"severity\": \"minor\"}') RETURNING id, occurred_at", t, v)
    assert.is_table(e)
    assert.equal(1, db:exec("INSERT INTO vehicle_images (tenant_id, vehicle_id, event_id, " ..
      "event_occurred_at, storage_url) VALUES ($1, $2, $3, $4, 's3://b/dent.jpg')", t, v, e.id, e.occurred_at))
    fails("23503", "vehicle_images_tenant_id_event_id_event_occurred_at_fkey",
      "INSERT INTO vehicle_images (tenant_id, vehicle_id, event_id, event_occurred_at, storage_url) " ..
      "VALUES ($1, $2, $3, '2025-03-02T10:00:00Z', 's3://b/x.jpg')", t, v, e.id)
  end)

  -- numeric takes 'NaN' and orders it above every number: CHECK (mileage
  -- >= 0) let a NaN mileage in, which an export wrote as NaN (not JSON).
  it("holds every numeric column to a finite number (migration 0034)", function()
    local t, v = H.tenant_with_vehicle(db)
    fails("23514", "vehicle_events_mileage_finite", "INSERT INTO vehicle_events (tenant_id, vehicle_id, type, " ..
      "occurred_at, mileage, payload) VALUES ($1, $2, 'odometer', '2025-03-01T10:00:00Z', 'NaN', " ..
      "'{\"source\": \"manual\"}')", t, v)
    fails("23514", "vehicles_purchase_price_finite",
      "UPDATE vehicles SET purchase_price = 'Infinity' WHERE tenant_id = $1 AND id = $2", t, v)
    -- every numeric column of the schema's tables and of its private schema's
    local unchecked = motomind.assert(db:query([[
      SELECT t.oid::regclass::text || '.' || a.attname AS col
        FROM pg_class t JOIN pg_attribute a ON a.attrelid = t.oid
       WHERE t.relnamespace IN (to_regnamespace($1), to_regnamespace($1 || '_private'))
         AND t.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
         AND a.atttypid = 'numeric'::regtype
         AND NOT EXISTS (SELECT 1 FROM pg_constraint c
                          WHERE c.conrelid = t.oid AND c.contype = 'c' AND c.conkey = ARRAY[a.attnum]
                            AND pg_get_constraintdef(c.oid) LIKE '%''Infinity''::numeric)%')]], db:schema()))
    assert.same({}, unchecked)
  end)

  it("plans no query of the events again on every call of a function (migration 0035)", function()
    -- A SQL function with a SET clause is never inlined, and its queries are
    -- planned again at every call: over the events' partitions and policies
    -- that took 19 ms for vehicle_odometer, which every write of a reading
    -- called (a one-event append took 10 ms, 3 ms since). Such functions
    -- are PL/pgSQL, whose plans a session keeps.
    local replanned = motomind.assert(db:query([[
      SELECT p.proname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
       WHERE p.pronamespace IN (to_regnamespace($1), to_regnamespace($1 || '_private'))
         AND l.lanname = 'sql' AND p.proconfig IS NOT NULL AND p.prosrc ~ 'vehicle_events']], db:schema()))
    assert.same({}, replanned)
    local t, v = H.tenant_with_vehicle(db)
    motomind.assert(db:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
      "VALUES ($1, $2, 'odometer', '2025-03-01T10:00:00Z', 1200, '{\"source\": \"manual\"}')", t, v))
    assert.equal(1200, tonumber(motomind.assert(db:value("SELECT mileage FROM vehicle_odometer($1, $2)", t, v))))
  end)

  it("scopes VIN and plate uniqueness to the tenant and to live rows", function()
    local vin = "1HGCM82633A004352"
    local t1 = H.tenant_with_vehicle(db, { vin = vin, plate = "AB-123" })
    H.tenant_with_vehicle(db, { vin = vin, plate = "AB-123" }) -- another tenant: allowed
    fails("23505", "vehicles_vin_key",
      "INSERT INTO vehicles (tenant_id, vin) VALUES ($1, $2)", t1, vin)
    fails("23505", "vehicles_plate_key",
      "INSERT INTO vehicles (tenant_id, plate) VALUES ($1, 'ab-123')", t1)
    db:exec("UPDATE vehicles SET deleted_at = now() WHERE tenant_id = $1 AND vin = $2", t1, vin)
    assert.equal(1, db:exec("INSERT INTO vehicles (tenant_id, vin) VALUES ($1, $2)", t1, vin))
  end)

  it("refuses a vehicle of one tenant in another tenant's garage", function()
    local t1 = H.tenant_with_vehicle(db)
    local t2 = H.tenant_with_vehicle(db)
    local g = db:value("INSERT INTO garages (tenant_id, name) VALUES ($1, 'Home') RETURNING id", t1)
    fails("23503", "vehicles_tenant_id_garage_id_fkey",
      "INSERT INTO vehicles (tenant_id, garage_id) VALUES ($1, $2)", t2, g)
  end)

  -- The reference events -> vehicles is checked per vehicle and statement
  -- (migration 0018), not per row: as strong as the foreign key it replaced.
  it("keeps every event's vehicle, checked once per vehicle and statement", function()
    local t1, v1 = H.tenant_with_vehicle(db)
    local t2, v2 = H.tenant_with_vehicle(db)
    local insert = "INSERT INTO %s (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
      "SELECT $1, v::uuid, 'odometer', '2025-01-01T00:00:00Z'::timestamptz + n * interval '1 day', n, " ..
      "'{\"source\": \"manual\"}' " ..
      "FROM jsonb_array_elements_text($2) v, generate_series(1, 3) n"
    local function events(vs) return setmetatable(vs, motomind.json.array_mt) end
    -- another tenant's vehicle, an unknown one, among good rows; into the
    -- table or straight into a partition
    for _, rel in ipairs { "vehicle_events", "vehicle_events_default" } do
      local ok, msg, state, detail = db:exec(insert:format(rel), t1, events { v1, v2 })
      assert.is_nil(ok)
      assert.same({ "23503", "vehicle_id: no vehicle " .. v2 .. " in this tenant",
                    "vehicle_events_tenant_id_vehicle_id_fkey", "vehicle_id" },
                  { state, msg, detail.constraint, detail.column })
    end
    assert.equal(0, db:value("SELECT count(*) FROM vehicle_events WHERE tenant_id IN ($1, $2)", t1, t2))
    assert.equal(3, motomind.assert(db:exec(insert:format("vehicle_events"), t1, events { v1 })))
    assert.equal(3, motomind.assert(db:exec(insert:format("vehicle_events"), t2, events { v2 })))
    -- no vehicle deleted under its events, even by the owner in maintenance
    fails("23503", "vehicle_event_heads_tenant_id_vehicle_id_fkey", "DELETE FROM vehicles WHERE id = $1", v1)
    fails("23503", nil, "UPDATE vehicles SET id = gen_random_uuid() WHERE id = $1", v1)
    -- and no per-row foreign key left: the reference is recorded for what
    -- orders tables by their references (purge, the isolation matrix)
    assert.equal(0, db:value("SELECT count(*) FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'f'",
      db:qualify("vehicle_events")))
    assert.is_true(db:value("SELECT (SELECT depth FROM tenant_tables WHERE table_name = 'vehicle_events') > " ..
      "(SELECT depth FROM tenant_tables WHERE table_name = 'vehicles')"))
  end)

  it("validates values at the column level", function()
    local t, v = H.tenant_with_vehicle(db)
    fails("23514", "vehicles_timezone_check",
      "INSERT INTO vehicles (tenant_id, timezone) VALUES ($1, 'Mars/Olympus')", t)
    fails("23514", "vehicles_vin_check", "INSERT INTO vehicles (tenant_id, vin) VALUES ($1, 'IOQ12')", t)
    -- a North American VIN's check digit (position 9): a typo is caught, naming both digits
    local ok, msg, state, detail = db:exec("INSERT INTO vehicles (tenant_id, vin) VALUES ($1, '1HGCM82643A004352')", t)
    assert.same({ "23514", "vehicles_vin_check_digit" }, { state, detail and detail.constraint }, msg)
    assert.matches("^vin: check digit %(9th character%) is 4, this VIN's is 3", msg)
    assert.equal("X", db:value("SELECT vin_check_digit('1M8GDM9AXKP042788')"))
    local ok_vin = assert(db:value("INSERT INTO vehicles (tenant_id, vin) VALUES ($1, '1M8GDM9AXKP042788') RETURNING id", t))
    -- other regions' VINs need no check digit; a VIN written before the rule still lets the rest of its row change
    assert(db:exec("INSERT INTO vehicles (tenant_id, vin) VALUES ($1, 'WVWZZZ1JZ3W386752')", t))
    assert(db:exec("ALTER TABLE vehicles DISABLE TRIGGER vehicles_vin_check_digit"))
    assert(db:exec("UPDATE vehicles SET vin = '1M8GDM9A0KP042788' WHERE id = $1", ok_vin))
    assert(db:exec("ALTER TABLE vehicles ENABLE TRIGGER vehicles_vin_check_digit"))
    assert(db:exec("UPDATE vehicles SET nickname = 'old', vin = vin WHERE id = $1", ok_vin))
    fails("23514", "vehicles_vin_check_digit", "UPDATE vehicles SET vin = '1M8GDM9A1KP042788' WHERE id = $1", ok_vin)
    -- the odometer unit is fixed once the vehicle has a reading
    assert(db:exec("UPDATE vehicles SET odometer_unit = 'km' WHERE id = $1", ok_vin))
    assert(db:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
      "VALUES ($1, $2, 'odometer', '2025-01-01', 100, '{\"source\": \"manual\"}')", t, ok_vin))
    fails("23514", "vehicles_unit_fixed", "UPDATE vehicles SET odometer_unit = 'mi' WHERE id = $1", ok_vin)
    assert(db:exec("UPDATE vehicles SET odometer_unit = 'km', nickname = 'same unit' WHERE id = $1", ok_vin))
    fails("23514", "vehicles_odometer_unit_check",
      "INSERT INTO vehicles (tenant_id, odometer_unit) VALUES ($1, 'furlongs')", t)
    fails("23514", "vehicle_events_type_check", "INSERT INTO vehicle_events " ..
      "(tenant_id, vehicle_id, type, occurred_at) VALUES ($1, $2, 'teleport', now())", t, v)
    fails("23514", "vehicle_events_mileage_check", "INSERT INTO vehicle_events " ..
      "(tenant_id, vehicle_id, type, occurred_at, mileage) VALUES ($1, $2, 'odometer', now(), -1)", t, v)
    -- a reading below an earlier one is another rule, with a name of its own
    assert(db:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
      "VALUES ($1, $2, 'odometer', '2025-06-01', 500, '{\"source\": \"manual\"}')", t, v))
    fails("23514", "vehicle_events_mileage_order", "INSERT INTO vehicle_events (tenant_id, vehicle_id, type, " ..
      "occurred_at, mileage, payload) VALUES ($1, $2, 'odometer', '2025-06-02', 400, '{\"source\": \"manual\"}')", t, v)
    fails("23514", "reminders_due_check",
      "INSERT INTO reminders (tenant_id, vehicle_id, title) VALUES ($1, $2, 'oil')", t, v)
    fails("23514", "memberships_role_check",
      "INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, gen_random_uuid(), 'admin')", t)
  end)

  it("renders local dates in the vehicle's timezone", function()
    local t = db:value("INSERT INTO tenants (name) VALUES ('tz') RETURNING id")
    local v = db:value("INSERT INTO vehicles (tenant_id, timezone) VALUES ($1, 'Pacific/Auckland') " ..
      "RETURNING id", t)
    assert(db:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, payload) " ..
      "VALUES ($1, $2, 'odometer', '2025-01-20T20:00:00Z', '{\"source\": \"manual\"}')", t, v))
    assert.equal("2025-01-21", db:value("SELECT (e.occurred_at AT TIME ZONE v.timezone)::date::text " ..
      "FROM vehicle_events e JOIN vehicles v ON (v.tenant_id, v.id) = (e.tenant_id, e.vehicle_id) " ..
      "WHERE e.vehicle_id = $1", v))
  end)
end)
