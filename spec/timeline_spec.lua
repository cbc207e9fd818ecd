local motomind = require "motomind"
local timeline = require "motomind.timeline"
local internal = require "motomind.internal"
local H = require "spec.helper"

local null = motomind.null

describe("timeline rules", function()
  local db, ctx, car

  local function add(at, mileage, type, p)
    return timeline.append(db, ctx, { vehicle_id = car, type = type or "odometer", occurred_at = at,
      mileage = mileage, payload = p or { source = "manual" } })
  end

  setup(function() db = H.fresh() end)
  teardown(function() H.drop(db) end)
  before_each(function()
    local t, v = H.tenant_with_vehicle(db)
    db:exec("UPDATE vehicles SET timezone = 'America/New_York' WHERE id = $1", v)
    ctx, car = { tenant = t }, v
  end)

  describe("immutability", function()
    it("refuses UPDATE, DELETE and TRUNCATE, on the table and on its partitions", function()
      local e = assert(add("2025-01-20T12:00:00Z", 54120))
      for _, sql in ipairs {
        "UPDATE vehicle_events SET mileage = 1 WHERE id = $1",
        "DELETE FROM vehicle_events WHERE id = $1",
        "UPDATE vehicle_events_default SET notes = 'x' WHERE id = $1",
        "DELETE FROM vehicle_events_default WHERE id = $1",
      } do
        local ok, msg, sqlstate = db:exec(sql, e.id)
        assert.is_nil(ok, sql)
        assert.equal("42501", sqlstate)
        assert.matches("are immutable: .* is not allowed; record a correction instead", msg)
      end
      for _, t in ipairs { "vehicle_events CASCADE", "vehicle_events_default" } do
        local ok, msg = db:exec("TRUNCATE " .. t)
        assert.is_nil(ok, t)
        assert.is_truthy(msg:find("TRUNCATE is not allowed", 1, true) or
          msg:find("referenced in a foreign key", 1, true), msg)
      end
      assert.equal(1, db:value("SELECT count(*) FROM vehicle_events WHERE id = $1", e.id))
    end)
  end)

  describe("mileage", function()
    it("refuses a reading below the previous one, saying what clashed", function()
      assert(add("2025-01-20T12:00:00Z", 54120))
      local ok, msg, sqlstate, detail = add("2025-01-28T12:00:00Z", 50000)
      assert.is_nil(ok)
      assert.equal("mileage 50000 on 2025-01-28 is below 54120 recorded on 2025-01-20", msg)
      assert.equal("23514", sqlstate)
      assert.equal("vehicle_events_mileage_order", detail.constraint)
    end)

    it("judges back-dated readings against both neighbours", function()
      assert(add("2025-01-10T12:00:00Z", 1000))
      assert(add("2025-01-30T12:00:00Z", 3000))
      assert(add("2025-01-20T12:00:00Z", 2000)) -- between its neighbours: fine
      local ok, msg = add("2025-01-25T12:00:00Z", 3500)
      assert.is_nil(ok)
      assert.equal("mileage 3500 on 2025-01-25 is above 3000 recorded on 2025-01-30", msg)
      ok, msg = add("2025-01-15T12:00:00Z", 900)
      assert.is_nil(ok)
      assert.equal("mileage 900 on 2025-01-15 is below 1000 recorded on 2025-01-10", msg)
      assert(add("2025-01-30T12:00:00Z", 3000)) -- equal readings are fine
    end)

    it("dates the message in the vehicle's timezone", function()
      assert(add("2025-01-21T03:00:00Z", 100)) -- 2025-01-20 22:00 in New York
      local _, msg = add("2025-01-21T06:00:00Z", 50)
      assert.equal("mileage 50 on 2025-01-21 is below 100 recorded on 2025-01-20", msg)
    end)

    it("checks a batch against itself and the stored history, all or nothing", function()
      assert(add("2025-03-01T00:00:00Z", 500))
      local ok, msg = timeline.append_batch(db, ctx, {
        { vehicle_id = car, type = "odometer", occurred_at = "2025-03-02T00:00:00Z", mileage = 600, payload = { source = "manual" } },
        { vehicle_id = car, type = "odometer", occurred_at = "2025-03-03T00:00:00Z", mileage = 550, payload = { source = "manual" } },
      })
      assert.is_nil(ok)
      assert.equal("mileage 550 on 2025-03-02 is below 600 recorded on 2025-03-01", msg)
      assert.equal(1, db:value("SELECT count(*) FROM vehicle_events WHERE vehicle_id = $1", car))
    end)

    it("serializes concurrent writers to one vehicle, so a clash cannot slip through", function()
      assert(add("2025-05-01T00:00:00Z", 1000))
      -- This connection writes 2000 on 05-10 and holds its transaction open...
      db:exec("BEGIN")
      assert(add("2025-05-10T00:00:00Z", 2000))
      -- ...while another process writes 1500 on 05-20, which is fine alone.
      local out = os.tmpname()
      local script = ([[
        local motomind = require "motomind"
        local timeline = require "motomind.timeline"
        local db = assert(motomind.connect(nil, { schema = %q }))
        local ok, msg = timeline.append(db, { tenant = %q }, { vehicle_id = %q, type = "odometer",
          occurred_at = "2025-05-20T00:00:00Z", mileage = 1500, payload = { source = "manual" } })
        local f = io.open(%q, "w")
        f:write(ok and "inserted" or msg)
        f:close()
        db:close()
      ]]):format(db:schema(), ctx.tenant, car, out)
      os.execute(H.lua_command(script) .. " &")
      local waiting = 0
      local probe = H.connect() -- inside a transaction, pg_stat_activity is a frozen snapshot
      for _ = 1, 100 do
        waiting = probe:value("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' " ..
          "AND datname = current_database() AND pid <> pg_backend_pid()")
        if waiting > 0 then break end
        os.execute("sleep 0.05")
      end
      probe:close()
      db:exec("COMMIT")
      assert.equal(1, waiting, "the other writer should wait for this transaction")
      local result
      for _ = 1, 100 do
        local f = io.open(out)
        result = f and f:read("*a")
        if f then f:close() end
        if result and result ~= "" then break end
        os.execute("sleep 0.05")
      end
      os.remove(out)
      assert.equal("mileage 1500 on 2025-05-19 is below 2000 recorded on 2025-05-09", result)
    end)

    it("flags implausible jumps but keeps the event", function()
      assert(add("2025-06-01T00:00:00Z", 10000))
      local e = assert(add("2025-06-02T00:00:00Z", 100000)) -- a typo: one zero too many
      assert.equal(1, #e.flags)
      assert.equal("implausible_jump", e.flags[1].flag)
      assert.equal(10000, e.flags[1].detail.previous_mileage)
      local normal = assert(add("2025-06-10T00:00:00Z", 100500))
      assert.equal(0, #normal.flags)
      local page = assert(timeline.page(db, ctx, { vehicle = car }))
      local flagged = 0
      for _, ev in ipairs(page.events) do flagged = flagged + #ev.flags end
      assert.equal(1, flagged)
    end)

    -- The walk judges a reading by the one after it too: in one statement of
    -- thirty back-dated readings, only the last is flagged, by its jump to
    -- the reading that was already there.
    it("flags a back-dated reading by its jump to the next one, in a statement of many", function()
      assert(add("2025-09-30T00:00:00Z", 90000))
      assert(db:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
        "SELECT $1, $2, 'odometer', '2025-09-01T00:00:00Z'::timestamptz + g * interval '12 hours', 1000 + g * 100, " ..
        "'{\"source\": \"manual\"}' FROM generate_series(1, 30) g", ctx.tenant, car))
      local flags = assert(db:query("SELECT e.mileage::int AS mileage, f.detail FROM vehicle_event_flags f " ..
        "JOIN vehicle_events e ON e.tenant_id = f.tenant_id AND e.id = f.event_id AND e.occurred_at = f.occurred_at " ..
        "WHERE f.vehicle_id = $1", car))
      assert.equal(1, #flags)
      assert.equal(4000, flags[1].mileage)
      assert.equal(3900, flags[1].detail.previous_mileage)
      assert.equal(90000, flags[1].detail.next_mileage)
    end)

    it("walks each vehicle of a statement apart, across partitions, with equal times ordered by mileage", function()
      local van = assert(db:value("INSERT INTO vehicles (tenant_id, nickname) VALUES ($1, 'van') RETURNING id", ctx.tenant))
      for y = 2011, 2012 do
        assert(db:query("SELECT create_event_partition($1, $2)", y .. "-01-01T00:00:00Z", (y + 1) .. "-01-01T00:00:00Z"))
      end
      local insert = "INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
        "SELECT $1, (r->>'v')::uuid, 'odometer', (r->>'at')::timestamptz, (r->>'km')::numeric, '{\"source\": \"manual\"}' " ..
        "FROM jsonb_array_elements($2::jsonb) r"
      local function rows(list) return motomind.json.encode(setmetatable(list, motomind.json.array_mt)) end
      -- Interleaved in time, far apart in mileage, over a year's end, two
      -- readings at one instant in reverse order: none clashes.
      assert(db:exec(insert, ctx.tenant, rows {
        { v = car, at = "2011-12-31T20:00:00Z", km = 1000 }, { v = van, at = "2011-12-31T21:00:00Z", km = 50000 },
        { v = car, at = "2012-01-01T08:00:00Z", km = 1100 }, { v = car, at = "2012-01-01T08:00:00Z", km = 1050 },
        { v = van, at = "2012-01-01T09:00:00Z", km = 50100 } }))
      -- One decrease, in the second vehicle, among the first's readings: its
      -- vehicle is named.
      local ok, msg, _, detail = db:exec(insert, ctx.tenant, rows {
        { v = car, at = "2012-01-02T08:00:00Z", km = 1200 }, { v = van, at = "2012-01-02T09:00:00Z", km = 50050 },
        { v = car, at = "2012-01-03T08:00:00Z", km = 1300 } })
      assert.is_nil(ok)
      assert.equal("mileage 50050 on 2012-01-02 is below 50100 recorded on 2012-01-01", msg)
      assert.truthy(detail.detail:find(van, 1, true), detail.detail)
    end)

    it("takes the threshold from motomind.max_daily_distance", function()
      db:exec("SET motomind.max_daily_distance = '100'")
      assert(add("2025-07-01T00:00:00Z", 1000))
      local e = assert(add("2025-07-03T00:00:00Z", 1250)) -- 125 a day
      assert.equal(1, #e.flags)
      db:exec("RESET motomind.max_daily_distance")
      e = assert(add("2025-07-05T00:00:00Z", 1500))
      assert.equal(0, #e.flags)
    end)
  end)

  -- Migration 0043: a vehicle whose head the statement created and none of
  -- whose events it corrects is left out of the walk when mileage_chain
  -- (the server library) proves it has nothing to refuse or flag.
  describe("the walk's fast path for new vehicles", function()
    local function chain_declared()
      return motomind.assert(db:value("SELECT to_regprocedure('mileage_chain(timestamptz,numeric)') IS NOT NULL"))
    end
    local function chain(rows)
      return motomind.assert(db:value("SELECT mileage_chain((r->>0)::timestamptz, (r->>1)::numeric)::text " ..
        "FROM jsonb_array_elements($1::jsonb) r", motomind.json.encode(setmetatable(rows, motomind.json.array_mt))))
    end

    after_each(function() db:exec("ROLLBACK") end) -- (a failed case's transaction)

    it("is declared iff the server library is installed", function()
      assert.equal(H.pg_library_installed(), chain_declared())
    end)

    it("answers the largest step in the walk's order, or NULL where mileage goes down", function()
      if not chain_declared() then return pending("the motomind_pg library is not installed") end
      local d1, d2, d3 = "2025-01-01T00:00:00Z", "2025-01-02T00:00:00Z", "2025-01-03T00:00:00Z"
      assert.equal("400", chain { { d1, 100 }, { d2, 500 }, { d3, 520 } })
      assert.equal("400", chain { { d3, 520 }, { d1, 100 }, { d2, 500 } }) -- any arrival order
      assert.equal("20", chain { { d1, 100 }, { d1, 130 }, { d1, 110 } }) -- one instant: by mileage
      assert.equal("0", chain { { d2, 7 } })
      assert.equal("0", chain { { d1, 5 }, { d2, 5 } })
      assert.equal(null, chain { { d1, 100 }, { d2, 99.9 }, { d3, 500 } })
      assert.equal(null, chain { { d3, 100 }, { d1, 200 } })
      assert.equal(null, chain {})
      assert.equal("2.5", motomind.assert(db:value("SELECT mileage_chain(t, m)::text FROM (VALUES " ..
        "('2025-01-01'::timestamptz, 1.5::numeric), ('2025-01-02', NULL), (NULL, 0), ('2025-01-03', 4)) v(t, m)")))
    end)

    -- Each case runs in one statement on a new vehicle, with the aggregate
    -- and after it is dropped (every vehicle walked): the same refusals and
    -- the same flags.
    it("refuses and flags exactly what the walk does", function()
      local cases = {
        clean_out_of_order = { { 0, 3000 }, { -48, 1000 }, { -24, 2000 }, { 24, 3100 } },
        jump = { { 0, 1000 }, { 24, 1200 }, { 48, 9000 }, { 72, 9100 } },
        decrease = { { 0, 1000 }, { 24, 1200 }, { 48, 1100 } },
        tie_by_mileage = { { 0, 1000 }, { 24, 1300 }, { 24, 1200 } },
        -- the middle reading voided in the same statement: 1000 -> 3800 in a
        -- day is a jump the statement's own readings do not show
        voided = { { 0, 1000 }, { 12, 2400 }, { 24, 3800 }, void = 2 },
        -- not a new vehicle (a reading written before, above the
        -- statement's), beside a new one
        existing = { { 24, 1000 }, { 48, 1100 }, before = 5000, beside_new = true },
      }
      local insert = "INSERT INTO vehicle_events (tenant_id, id, vehicle_id, type, occurred_at, mileage, payload, " ..
        "correction, corrects_id, corrects_occurred_at) " ..
        "SELECT $1, coalesce((r->>'id')::uuid, gen_random_uuid()), coalesce((r->>'v')::uuid, $2), 'odometer', (r->>'at')::timestamptz, (r->>'km')::numeric, " ..
        "CASE WHEN r ? 'void' THEN '{}' ELSE '{\"source\": \"manual\"}' END::jsonb, " ..
        "r->>'void', (r->>'of')::uuid, (r->>'of_at')::timestamptz FROM jsonb_array_elements($3::jsonb) r"
      local runs = 0
      local function run(name)
        runs = runs + 1
        local v = assert(db:value("INSERT INTO vehicles (tenant_id, nickname) VALUES ($1, $2) RETURNING id", ctx.tenant, name))
        local rows, at = {}, {}
        for i, r in ipairs(cases[name]) do
          at[i] = os.date("!%Y-%m-%dT%H:%M:%SZ", 1735689600 + r[1] * 3600)
          rows[i] = { id = ("00000000-0000-4000-8000-%06d%06d"):format(runs, i), at = at[i], km = r[2] }
        end
        if cases[name].before then
          motomind.assert(db:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
            "VALUES ($1, $2, 'odometer', '2024-12-31T00:00:00Z', $3, '{\"source\": \"manual\"}')", ctx.tenant, v,
            cases[name].before))
        end
        if cases[name].beside_new then
          local other = assert(db:value("INSERT INTO vehicles (tenant_id) VALUES ($1) RETURNING id", ctx.tenant))
          rows[#rows + 1] = { v = other, at = at[1], km = 10 }
        end
        local void = cases[name].void
        if void then rows[#rows + 1] = { void = "void", at = at[void], of = rows[void].id, of_at = at[void] } end
        motomind.assert(db:exec("SAVEPOINT walk_case"))
        local ok, msg = db:exec(insert, ctx.tenant, v, motomind.json.encode(setmetatable(rows, motomind.json.array_mt)))
        motomind.assert(db:exec(ok and "RELEASE walk_case" or "ROLLBACK TO walk_case"))
        local flagged = assert(db:query("SELECT e.mileage::int AS km FROM vehicle_event_flags f JOIN vehicle_events e " ..
          "ON e.tenant_id = f.tenant_id AND e.id = f.event_id AND e.occurred_at = f.occurred_at " ..
          "WHERE f.vehicle_id = $1 ORDER BY 1", v))
        local kms = {}
        for i, f in ipairs(flagged) do kms[i] = f.km end
        return { ok = ok ~= nil, message = msg, flagged = kms }
      end
      local fast = {}
      motomind.assert(db:exec("BEGIN"))
      for name in pairs(cases) do fast[name] = run(name) end
      motomind.assert(db:exec("COMMIT"))
      assert.same({ ok = true, flagged = {} }, fast.clean_out_of_order)
      assert.same({ ok = true, flagged = { 1200, 9000 } }, fast.jump)
      assert.same({ ok = false, flagged = {},
        message = "mileage 1100 on 2025-01-03 is below 1200 recorded on 2025-01-02" }, fast.decrease)
      assert.same({ ok = true, flagged = {} }, fast.tie_by_mileage)
      assert.same({ ok = true, flagged = { 1000, 3800 } }, fast.voided)
      assert.same({ ok = false, flagged = {},
        message = "mileage 1000 on 2025-01-02 is below 5000 recorded on 2024-12-31" }, fast.existing)
      motomind.assert(db:exec("BEGIN")) -- (the aggregate comes back with the rollback)
      if chain_declared() then motomind.assert(db:exec("DROP AGGREGATE mileage_chain(timestamptz, numeric)")) end
      local walked = {}
      for name in pairs(cases) do walked[name] = run(name) end
      motomind.assert(db:exec("ROLLBACK"))
      for name in pairs(cases) do assert.same(fast[name], walked[name], name) end
    end)

    -- The walk reads a vehicle's readings back through an index; a new
    -- vehicle's clean readings are not read back at all.
    it("does not read a new vehicle's clean readings back", function()
      if not chain_declared() then return pending("the motomind_pg library is not installed") end
      -- rows read through indexes by a statement of 300 clean readings of a new vehicle
      local function tuples_read(nickname)
        local v = assert(db:value("INSERT INTO vehicles (tenant_id, nickname) VALUES ($1, $2) RETURNING id", ctx.tenant, nickname))
        local sql = "SELECT coalesce(sum(idx_tup_fetch), 0)::int FROM pg_stat_xact_user_tables " ..
          "WHERE schemaname = current_schema() AND relname LIKE 'vehicle_events%'"
        local before = motomind.assert(db:value(sql))
        motomind.assert(db:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload) " ..
          "SELECT $1, $2, 'odometer', '2024-03-01'::timestamptz + g * interval '1 day', 1000 + g * 50, " ..
          "'{\"source\": \"manual\"}' FROM generate_series(1, 300) g", ctx.tenant, v))
        return motomind.assert(db:value(sql)) - before
      end
      motomind.assert(db:exec("BEGIN"))
      local fast = tuples_read("fast")
      motomind.assert(db:exec("DROP AGGREGATE mileage_chain(timestamptz, numeric)"))
      local walked = tuples_read("walked")
      motomind.assert(db:exec("ROLLBACK"))
      assert.is_true(walked >= 300, ("walked: %d rows read through indexes"):format(walked))
      assert.is_true(fast < 30, ("fast path: %d rows read through indexes"):format(fast))
    end)
  end)

  describe("payloads", function()
    it("are refused by the database with the codec's message, for any writer", function()
      local ok, msg, sqlstate, detail = db:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, " ..
        "occurred_at, payload) VALUES ($1, $2, 'fuel', now(), $3)", ctx.tenant, car,
        '{"volume": 3, "unit": "gallons"}')
      assert.is_nil(ok)
      assert.equal('payload.unit: expected one of us_gal, uk_gal, l, kwh, got "gallons"', msg)
      assert.equal("23514", sqlstate)
      assert.equal("vehicle_events_payload_check", detail.constraint)
      local _, c_msg, c_state = timeline.append(db, ctx, { vehicle_id = car, type = "fuel",
        occurred_at = "2025-01-01T00:00:00Z", payload = { volume = 3, unit = "gallons" } })
      assert.equal(msg, c_msg)
      assert.equal("22023", c_state) -- refused in C, before any round trip
    end)

    it("are checked on direct inserts into a partition too", function()
      db:ensure_partitions { ahead = 0 }
      local part = db:value("SELECT partition FROM partition_coverage WHERE kind = 'partition' " ..
        "AND range_from <= now() AND range_to > now()")
      local ok, msg = db:exec("INSERT INTO " .. db:escape_identifier(part) ..
        " (tenant_id, vehicle_id, type, occurred_at, payload) VALUES ($1, $2, 'odometer', now(), '{}')",
        ctx.tenant, car)
      assert.is_nil(ok)
      assert.equal("payload.source: is required", msg)
    end)

    it("name the event in a batch", function()
      local ok, msg = timeline.append_batch(db, ctx, {
        { vehicle_id = car, type = "odometer", occurred_at = "2025-01-01T00:00:00Z", payload = { source = "manual" } },
        { vehicle_id = car, type = "fuel", occurred_at = "2025-01-02T00:00:00Z", payload = { volume = -1, unit = "l" } },
      })
      assert.is_nil(ok)
      assert.equal("events[2].payload.volume: expected number > 0 and <= 100000, got -1", msg)
    end)
  end)

  describe("corrections", function()
    it("amend an event: the latest correction shows, the history stays readable", function()
      local e = assert(add("2025-02-01T10:00:00Z", 20000, "fuel", { volume = 40, unit = "l", total = 70, currency = "EUR" }))
      assert(timeline.correct(db, ctx, e, { payload = { volume = 41, unit = "l", total = 71.5, currency = "EUR" } }))
      local last = assert(timeline.correct(db, ctx, e, { mileage = 20010,
        payload = { volume = 42, unit = "l", total = 73, currency = "EUR" } }))
      local page = assert(timeline.page(db, ctx, { vehicle = car }))
      assert.equal(1, #page.events)
      assert.equal(last.id, page.events[1].id)
      assert.equal(42, page.events[1].payload.volume)
      assert.equal("20010.0", page.events[1].mileage)
      local history = assert(timeline.history(db, ctx, e))
      assert.equal(3, #history)
      assert.same({ false, false, true }, { history[1].effective, history[2].effective, history[3].effective })
      assert.equal(motomind.null, history[1].correction)
      assert.equal("amend", history[3].correction)
    end)

    it("void an event: hidden from the timeline and from the mileage rule", function()
      local typo = assert(add("2025-03-01T10:00:00Z", 90000))
      local ok, msg = add("2025-03-05T10:00:00Z", 30000)
      assert.is_nil(ok)
      assert.matches("below 90000", msg)
      assert(timeline.void(db, ctx, typo, "typo: extra zero"))
      assert.is_nil(timeline.current_mileage(db, ctx, car)) -- its only reading is void
      assert(add("2025-03-05T10:00:00Z", 30000))
      local page = assert(timeline.page(db, ctx, { vehicle = car }))
      assert.equal(1, #page.events)
      assert.equal("30000.0", page.events[1].mileage)
      assert.equal("30000.0", timeline.current_mileage(db, ctx, car).mileage)
    end)

    it("refuse corrections of a missing event, of a correction, or that change the type", function()
      local e = assert(add("2025-04-01T10:00:00Z", 100))
      local amend = assert(timeline.correct(db, ctx, e, { mileage = 110 }))
      local ok, msg = timeline.correct(db, ctx, { id = amend.id, occurred_at = amend.occurred_at }, { mileage = 120 })
      assert.is_nil(ok)
      assert.matches("is itself a correction; correct the original event", msg)
      ok, msg = db:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, payload, " ..
        "correction, corrects_id, corrects_occurred_at) VALUES ($1, $2, 'damage', now(), " ..
        "'{\"severity\": \"minor\"}', 'amend', $3, $4)", ctx.tenant, car, e.id, e.occurred_at)
      assert.is_nil(ok)
      assert.equal("type: an amendment keeps the type of the event it corrects (odometer, not damage)", msg)
      ok, msg = timeline.void(db, ctx, { id = "00000000-0000-4000-8000-000000000000", occurred_at = e.occurred_at })
      assert.is_nil(ok)
      assert.matches("no event 00000000%-0000%-4000%-8000%-000000000000", msg)
    end)
  end)
end)

describe("partitions", function()
  local db, ctx, car
  before_each(function()
    db = H.fresh()
    local t, v = H.tenant_with_vehicle(db)
    ctx, car = { tenant = t }, v
  end)
  after_each(function() H.drop(db) end)

  local function add(at, mileage)
    return timeline.append(db, ctx, { vehicle_id = car, type = "odometer", occurred_at = at,
      mileage = mileage, payload = { source = "manual" } })
  end

  local function coverage()
    local out = {}
    for _, r in ipairs(assert(db:partition_coverage())) do
      out[#out + 1] = ("%s %s %s"):format(r.kind, r.range_from ~= null and r.range_from:sub(1, 4) or "-", r.row_count)
    end
    return out
  end

  it("are created ahead, idempotently", function()
    local year = tonumber(os.date("!%Y"))
    local made = assert(db:ensure_partitions { ahead = 2 })
    assert.same({ "vehicle_events_" .. year, "vehicle_events_" .. (year + 1), "vehicle_events_" .. (year + 2) }, made)
    assert.same({}, db:ensure_partitions { ahead = 2 })
  end)

  it("take rows out of the DEFAULT partition, but not for a far-future clock error", function()
    assert(add("2015-06-01T00:00:00Z", 100))
    assert(add("2017-06-01T00:00:00Z", 200))
    assert(add("2999-01-01T00:00:00Z", 300)) -- a device clock error
    assert.same({ "default - 3" }, coverage())
    db:ensure_partitions { ahead = 0 }
    local year = os.date("!%Y")
    assert.same({ "partition 2015 1", "gap 2016 0", "partition 2017 1", "gap 2018 0",
                  "partition " .. year .. " 0", "default - 1" }, coverage())
    -- the rows are intact and the table still refuses edits
    assert.equal(3, db:value("SELECT count(*) FROM vehicle_events"))
    assert.is_nil((db:exec("DELETE FROM vehicle_events_2015")))
    -- and new partitions check their inserts
    local _, msg = add("2015-07-01T00:00:00Z", 50)
    assert.equal("mileage 50 on 2015-07-01 is below 100 recorded on 2015-06-01", msg)
  end)

  it("are safe when two callers race", function()
    local cmd = H.lua_command(([[
      local db = assert(require("motomind").connect(nil, { schema = %q }))
      print(#assert(db:ensure_partitions { ahead = 3 }))]]):format(db:schema()))
    local out, ok = H.run(("(%s & %s & wait)"):format(cmd, cmd))
    assert.is_true(ok, out)
    local counts = {}
    for n in out:gmatch("(%d+)\n") do counts[#counts + 1] = tonumber(n) end
    table.sort(counts)
    assert.same({ 0, 4 }, counts)
  end)
end)

describe("timeline pages", function()
  local db, ctx, cars, garage
  setup(function()
    db = H.fresh()
    local t = H.tenant_with_vehicle(db)
    garage = db:value("INSERT INTO garages (tenant_id, name) VALUES ($1, 'Depot') RETURNING id", t)
    cars = {}
    for i = 1, 2 do
      cars[i] = db:value("INSERT INTO vehicles (tenant_id, garage_id) VALUES ($1, $2) RETURNING id",
        t, i == 1 and garage or null)
    end
    ctx = { tenant = t }
    local events = {}
    for i = 1, 30 do
      for c = 1, 2 do
        events[#events + 1] = { vehicle_id = cars[c], occurred_at = ("2024-%02d-%02dT08:00:00Z"):format((i - 1) % 12 + 1, i % 28 + 1),
          type = i % 3 == 0 and "fuel" or "odometer", mileage = nil,
          payload = i % 3 == 0 and { total = i, currency = "EUR" } or { source = "manual" } }
      end
    end
    assert(timeline.append_batch(db, ctx, events))
    db:ensure_partitions { ahead = 0 } -- moves the 2024 rows out of DEFAULT
  end)
  teardown(function() H.drop(db) end)

  local function all_pages(opts)
    local seen, cursor, pages = {}, nil, 0
    repeat
      opts.cursor = cursor
      local page = assert(timeline.page(db, ctx, opts))
      for _, e in ipairs(page.events) do seen[#seen + 1] = e end
      cursor = page.cursor
      pages = pages + 1
    until not cursor
    return seen, pages
  end

  it("walk a vehicle's timeline newest first with a cursor, each event once", function()
    local seen, pages = all_pages { vehicle = cars[1], limit = 7 }
    assert.equal(30, #seen)
    assert.equal(5, pages)
    local ids = {}
    for i, e in ipairs(seen) do
      assert.is_nil(ids[e.id])
      ids[e.id] = true
      if i > 1 then assert.is_true(seen[i - 1].occurred_at >= e.occurred_at) end
    end
  end)

  it("filter by type, time range, garage and tenant", function()
    assert.equal(10, #all_pages { vehicle = cars[1], types = { "fuel" } })
    assert.equal(30, #all_pages { garage = garage, limit = 100 })
    assert.equal(60, #all_pages { limit = 100 })
    local march = all_pages { from = "2024-03-01T00:00:00Z", to = "2024-04-01T00:00:00Z" }
    assert.is_true(#march > 0)
    for _, e in ipairs(march) do assert.matches("^2024%-03", e.occurred_at) end
  end)

  it("decode each payload as stored, readable even when a later rule would refuse it", function()
    local page = assert(timeline.page(db, ctx, { vehicle = cars[2], types = { "fuel" }, limit = 1 }))
    assert.equal("EUR", page.events[1].payload.currency)
    assert.is_number(page.events[1].payload.total)
    -- history written before a rule existed: the rules are bypassed for this
    -- one row (as a replica's apply would), then read back
    local at = "2023-06-01T08:00:00Z"
    db:transaction(function()
      assert(db:exec("SET LOCAL session_replication_role = replica"))
      assert(db:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, payload) " ..
        "VALUES ($1, $2, 'fuel', $3, '{\"total\": 9, \"currency\": \"EUR\", \"retired_field\": 1}')",
        ctx.tenant, cars[2], at))
    end)
    local old = assert(timeline.page(db, ctx, { vehicle = cars[2], to = "2024-01-01T00:00:00Z" }))
    assert.equal(1, #old.events)
    assert.equal(1, old.events[1].payload.retired_field)
  end)

  -- Flags and photos are joined to the page's rows after its LIMIT, once
  -- for the page: an amendment shows its own photos and its original's.
  it("carry each event's local time, flags and photos (an amendment's and its original's)", function()
    local photos = require "motomind.photos"
    local t, v = H.tenant_with_vehicle(db)
    db:exec("UPDATE vehicles SET timezone = 'Asia/Kolkata' WHERE id = $1", v)
    local mine = { tenant = t, user = H.user(db, t, "owner") }
    local function reading(at, mileage)
      return assert(timeline.append(db, mine, { vehicle_id = v, type = "odometer", occurred_at = at,
        mileage = mileage, payload = { source = "manual" } }))
    end
    local first = reading("2024-05-01T08:59:59.900Z", 1000)
    local jump = reading("2024-05-02T08:00:00Z", 9000)
    reading("2024-05-03T08:00:00Z", 9100)
    local a = assert(photos.add(db, mine, { vehicle_id = v, storage_url = "s3://b/a.jpg", checksum = ("%064x"):format(1) }))
    local b = assert(photos.add(db, mine, { vehicle_id = v, storage_url = "s3://b/b.jpg", checksum = ("%064x"):format(2) }))
    assert(photos.attach(db, mine, first, a.id, { role = "odometer", position = 2 }))
    local amended = assert(timeline.correct(db, mine, first, { notes = "read again" }))
    assert(photos.attach(db, mine, amended, b.id, { position = 1 }))
    local page = assert(timeline.page(db, mine, { vehicle = v }))
    local by_id = {}
    for _, e in ipairs(page.events) do by_id[e.id] = e end
    assert.equal(3, #page.events) -- the original is superseded
    local shown = by_id[amended.id]
    assert.equal("2024-05-01 14:29", shown.local_time) -- +05:30, minutes truncated
    assert.equal(2, #shown.photos)
    assert.same({ b.id, a.id }, { shown.photos[1].image_id, shown.photos[2].image_id }) -- by position
    assert.equal("odometer", shown.photos[2].role)
    assert.is_nil(shown.photos[1].tenant_id)
    assert.equal(1, #by_id[jump.id].flags)
    assert.equal("implausible_jump", by_id[jump.id].flags[1].flag)
    assert.equal(1000, by_id[jump.id].flags[1].detail.previous_mileage)
    assert.equal(0, #by_id[jump.id].photos)
    for _, e in ipairs(page.events) do
      assert.equal(motomind.json.array_mt, getmetatable(e.flags))
      assert.equal(motomind.json.array_mt, getmetatable(e.photos))
    end
  end)

  it("plan each shape of filters on its own: index scans, partitions outside the range pruned", function()
    local q = internal.page_query(db, ctx, { vehicle = cars[1], from = "2024-03-01T00:00:00Z",
      to = "2024-04-01T00:00:00Z", limit = 20 })
    assert.not_matches("IS NULL OR", q.sql)
    assert.not_equal(q.name, internal.page_query(db, ctx, { vehicle = cars[1] }).name)
    assert.equal(q.name, internal.page_query(db, ctx, { vehicle = cars[2], from = "2020-01-01T00:00:00Z",
      to = "2021-01-01T00:00:00Z" }).name)
    local plan = {}
    db:exec("SET enable_seqscan = off") -- the table is tiny; ask what it would do at scale
    for _, r in ipairs(assert(db:query("EXPLAIN " .. q.sql, (table.unpack or unpack)(q.params, 1, q.params.n)))) do
      plan[#plan + 1] = r["QUERY PLAN"]
    end
    db:exec("RESET enable_seqscan")
    local text = table.concat(plan, "\n")
    assert.matches("Index Scan[%w ]* using vehicle_events_2024_tenant_id_vehicle_id_occurred_at_id_idx", text)
    assert.not_matches("vehicle_events_default", text)
    assert.not_matches("vehicle_events_20[^2]", text)
  end)

  -- Planning a custom plan per call cost more than running the page (1.4
  -- of 2.1 ms at 200,000 events): pages run one generic plan, and pruning
  -- the partitions moves to the start of each execution.
  it("plans a page statement once per connection, pruning partitions when it runs", function()
    local opts = { vehicle = cars[1], from = "2024-03-01T00:00:00Z", to = "2024-04-01T00:00:00Z", limit = 20 }
    local q = internal.page_query(db, ctx, opts)
    for _ = 1, 7 do assert(timeline.page(db, ctx, opts)) end
    local plans = assert(db:row("SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = $1", q.name))
    assert.same({ generic_plans = 7, custom_plans = 0 }, plans)
    local text = db:read_as_generic(ctx, function(reader)
      local out, args = {}, {}
      for i = 1, q.params.n do args[i] = tostring(q.params[i]) end
      local literals = assert(reader:value("SELECT string_agg(quote_literal(a), ', ' ORDER BY i) " ..
        "FROM jsonb_array_elements_text($1) WITH ORDINALITY x (a, i)", setmetatable(args, motomind.json.array_mt)))
      local sql = ("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE %s(%s)"):format(q.name, literals)
      for _, r in ipairs(assert(reader:query(sql))) do
        out[#out + 1] = r["QUERY PLAN"]
      end
      return table.concat(out, "\n")
    end)
    assert.matches("Subplans Removed: %d", text)
    assert.matches("vehicle_events_2024", text)
    assert.not_matches("vehicle_events_default", text)
  end)

  -- A page is one statement: its context, the statement and the end of its
  -- transaction go in one round trip (read_prepared_as), which must apply
  -- the context as db:as does and leave nothing behind.
  it("reads a page as the context user in one statement, and inside db:as sees the transaction's own writes", function()
    local app = H.app_connect(db)
    local reader = { tenant = ctx.tenant, user = H.user(db, ctx.tenant, "viewer") }
    local mine = assert(timeline.page(app, reader, { vehicle = cars[1], limit = 100 }))
    assert.equal(30, #mine.events)
    assert.equal("idle", app:transaction_status())
    assert.equal("", app:value("SELECT current_setting('motomind.tenant_id', true)"))
    -- the same user in another tenant's context sees nothing (row-level security)
    local other = H.tenant_with_vehicle(db)
    local none = assert(timeline.page(app, { tenant = other, user = reader.user }, { vehicle = cars[1] }))
    assert.equal(0, #none.events)
    -- inside an open db:as: the page is part of that transaction
    local writer = { tenant = ctx.tenant, user = H.user(db, ctx.tenant, "owner") }
    local ok, seen = pcall(app.as, app, writer, function()
      assert(timeline.append(app, writer, { vehicle_id = cars[1], occurred_at = "2024-12-31T08:00:00Z",
        type = "odometer", mileage = 99999, payload = { source = "manual" } }))
      local page = assert(timeline.page(app, writer, { vehicle = cars[1], limit = 1 }))
      error({ newest = tonumber(page.events[1].mileage) }, 0) -- (rolls the append back)
    end)
    assert.is_false(ok)
    assert.same({ newest = 99999 }, seen)
    assert.equal(30, #assert(timeline.page(app, reader, { vehicle = cars[1], limit = 100 })).events)
    app:close()
  end)
end)
