local motomind = require "motomind"
local import = require "motomind.import"
local timeline = require "motomind.timeline"
local core = require "motomind.core"
local H = require "spec.helper"

-- The events INSERT statements and mileage screens fn's import sends
-- through db (exec, or send for a chunk), and its COPYs straight into the
-- events table and into the staging table (the connection's methods, spied
-- on while fn runs).
local function counting(db, fn)
  local methods = getmetatable(db).__index
  local real, real_send, real_copy, inserts, screens, copies = methods.exec, methods.send, methods.copy_events, 0, 0,
    { direct = 0, staged = 0, typed = 0 }
  methods.exec = function(self, sql, ...)
    if sql:find("^INSERT INTO %S*vehicle_events") then inserts = inserts + 1 end
    if sql == "SAVEPOINT motomind_screen" then screens = screens + 1 end
    return real(self, sql, ...)
  end
  methods.send = function(self, sql, ...)
    if sql:find("^INSERT INTO %S*vehicle_events") then inserts = inserts + 1 end
    return real_send(self, sql, ...)
  end
  methods.copy_events = function(self, sql, ...)
    local into = sql:find("^COPY %S*vehicle_events") and "direct" or "staged"
    copies[into] = copies[into] + 1
    if sql:find("content_id) FROM STDIN", 1, true) then copies.typed = copies.typed + 1 end
    return real_copy(self, sql, ...)
  end
  local ok, report = pcall(fn)
  methods.exec, methods.send, methods.copy_events = real, real_send, real_copy
  assert(ok, report)
  return inserts, screens, report, copies
end

local function odometer(car, day, mileage)
  return motomind.json.encode { vehicle_id = car, type = "odometer", mileage = mileage,
    occurred_at = ("2025-01-01T00:00:00Z"):gsub("01T", ("%02dT"):format(day)), payload = { source = "manual" } }
end

describe("refused import lines are found set-based", function()
  local db, t, car, owner

  before_each(function() db, t, car, owner = H.fresh_tenant() end)
  after_each(function()
    import.typed_staging = true
    H.drop(db)
  end)

  -- direct: { inserts, screens, direct COPYs, staged COPYs } of a clean file
  for direct, counts in pairs { [true] = { 0, 0, 1, 0 }, [false] = { 1, 0, 0, 1 } } do
    it(direct and "inserts a clean file in one COPY straight into the events table: nothing staged, no screen"
      or "stages a clean file and inserts it in one INSERT, without the mileage screen, when the direct path is off",
      function()
        local lines = {}
        for day = 1, 28 do lines[#lines + 1] = odometer(car, day, day * 100) end
        import.direct = direct
        finally(function() import.direct = true end)
        local inserts, screens, report, copies = counting(db, function()
          return assert(import.import(db, { tenant = t, user = owner }, H.write_temp(table.concat(lines, "\n"))))
        end)
        assert.same(counts, { inserts, screens, copies.direct, copies.staged })
        assert.same({ 28, 0 }, { report.inserted, #report.rejected })
      end)
  end

  it("stages a file with duplicates in a plain INSERT refused by the first, then one that skips them: the first line wins",
    function()
      import.direct = false
      finally(function() import.direct = true end)
      local ctx = { tenant = t, user = owner }
      local id = "0b0b0b0b-0000-4000-8000-000000000001"
      local function line(day, notes)
        return motomind.json.encode { id = id, vehicle_id = car, type = "odometer", mileage = 100,
          occurred_at = "2025-03-01T00:00:00Z", notes = notes, payload = { source = "manual" } } .. "\n" ..
          odometer(car, day, day * 10)
      end
      -- the same event twice in one file: two INSERTs, no screen
      local inserts, screens, report = counting(db, function()
        return assert(import.import(db, ctx, H.write_temp(line(1, "first") .. "\n" .. line(2, "second"))))
      end)
      assert.same({ 2, 0 }, { inserts, screens })
      assert.same({ 3, 1, 0 }, { report.inserted, report.duplicates, #report.rejected })
      assert.equal("first", db:value("SELECT notes FROM vehicle_events WHERE id = $1", id))
      -- a clean file: one plain INSERT
      inserts, screens, report = counting(db, function()
        return assert(import.import(db, ctx, H.write_temp(odometer(car, 3, 30) .. "\n" .. odometer(car, 4, 40))))
      end)
      assert.same({ 1, 0, 2, 0 }, { inserts, screens, report.inserted, report.duplicates })
    end)

  it("reports every line below an earlier reading after one refused statement, whatever the file's order", function()
    -- every other line goes backwards; 1..28 days
    local lines = {}
    for day = 1, 28 do lines[#lines + 1] = odometer(car, day, day % 2 == 1 and day * 100 or day * 100 - 150) end
    local reversed = {}
    for i = #lines, 1, -1 do reversed[#reversed + 1] = lines[i] end
    local inserts, screens, report, copies = counting(db, function()
      return assert(import.import(db, { tenant = t, user = owner }, H.write_temp(table.concat(lines, "\n"))))
    end)
    -- the whole file COPYed, refused by the database; the screen; the lines it left
    assert.same({ 1, 1, 1, 1 }, { copies.direct, screens, copies.staged, inserts })
    assert.equal(14, report.inserted)
    assert.equal(14, #report.rejected)
    for _, r in ipairs(report.rejected) do
      assert.equal(0, r.line % 2) -- the even days: below the day before
      assert.equal("23514", r.sqlstate)
    end
    assert.equal(("mileage 50 on 2025-01-02 is below 100 recorded on 2025-01-01"), report.rejected[1].reason)
    -- the same file reversed: the same events land (the earliest reading wins)
    local other = H.fresh()
    local t2, car2 = H.tenant_with_vehicle(other)
    local owner2 = H.user(other, t2, "owner")
    local text = table.concat(reversed, "\n"):gsub(car:gsub("%-", "%%-"), car2)
    local again = assert(import.import(other, { tenant = t2, user = owner2 }, H.write_temp(text)))
    assert.same(db:query("SELECT occurred_at, mileage FROM vehicle_events ORDER BY 1"),
      other:query("SELECT occurred_at, mileage FROM vehicle_events ORDER BY 1"))
    assert.equal(14, #again.rejected)
    H.drop(other)
  end)

  it("refuses a reading above a later one already recorded, and counts a re-import as duplicates", function()
    assert(timeline.append(db, { tenant = t, user = owner }, { vehicle_id = car, type = "odometer",
      occurred_at = "2025-01-20T00:00:00Z", mileage = 1000, payload = { source = "manual" } }))
    local path = H.write_temp(table.concat({ odometer(car, 5, 500), odometer(car, 10, 1500), odometer(car, 25, 1200) }, "\n"))
    local report = assert(import.import(db, { tenant = t, user = owner }, path))
    assert.equal(2, report.inserted)
    assert.equal(1, #report.rejected)
    assert.equal(2, report.rejected[1].line)
    assert.equal("mileage 1500 on 2025-01-10 is above 1000 recorded on 2025-01-20", report.rejected[1].reason)
    local again = assert(import.import(db, { tenant = t, user = owner }, path))
    assert.same({ 0, 2, 1 }, { again.inserted, again.duplicates, #again.rejected })
  end)

  -- Staged typed (the vehicles C noted) and as texts (read from the lines).
  it("refuses a viewer's or a stranger's lines per vehicle, without trying to insert them", function()
    local viewer = H.user(db, t, "viewer")
    local manager = H.user(db, t, "manager")
    local app = H.app_connect(db)
    local lines = {}
    for day = 1, 20 do lines[#lines + 1] = odometer(car, day, day * 10) end
    lines[#lines + 1] = odometer("00000000-0000-4000-8000-000000000001", 21, 1)
    local path = H.write_temp(table.concat(lines, "\n"))
    for _, typed in ipairs { true, false } do
      import.typed_staging = typed
      local inserts, _, report = counting(app, function()
        return assert(import.import(app, { tenant = t, user = viewer }, path))
      end)
      assert.equal(0, inserts)
      assert.equal(21, #report.rejected)
      assert.equal(("vehicle_id: vehicle %s is not writable by this user"):format(car), report.rejected[1].reason)
      assert.equal("42501", report.rejected[1].sqlstate)
      assert.equal("vehicle_id: no vehicle 00000000-0000-4000-8000-000000000001 in this tenant", report.rejected[21].reason)
      assert.equal("23503", report.rejected[21].sqlstate)
    end
    import.typed_staging = true -- (and after_each, should an assertion fail)
    -- a manager writes the same file: every line lands but the unknown vehicle's
    local report = assert(import.import(app, { tenant = t, user = manager }, path))
    assert.same({ 20, 1 }, { report.inserted, #report.rejected })
    app:close()
  end)

  it("refuses a malformed UUID by its line in C", function()
    local path = H.write_temp(odometer(car, 1, 1) .. "\n" .. odometer("not-a-uuid", 2, 2) .. "\n" ..
      odometer("{" .. car:gsub("%-", "") .. "}", 3, 3) .. "\n")
    local report = assert(import.import(db, { tenant = t, user = owner }, path))
    assert.same({ 2, 1 }, { report.inserted, #report.rejected })
    assert.equal("vehicle_id: expected a UUID", report.rejected[1].reason)
  end)
end)

describe("the event row, defined once", function()
  -- (less what the database and the import stamp: tenant, author, time, batch)
  it("is the same in the C core and in the table's columns", function()
    local db = H.fresh()
    local columns = db:query([[
      SELECT attname AS name, format_type(atttypid, atttypmod) AS type FROM pg_attribute
       WHERE attrelid = 'vehicle_events'::regclass AND attnum > 0 AND NOT attisdropped
         AND attname NOT IN ('tenant_id', 'created_by', 'created_at', 'import_batch_id') ORDER BY attnum]])
    local fields = {}
    for i, f in ipairs(core.event_fields()) do
      fields[i] = { name = f.name, type = f.type:gsub("^timestamptz$", "timestamp with time zone") }
    end
    assert.same(columns, fields)
    H.drop(db)
  end)

  it("is checked by C for the timeline API, with the importer's messages", function()
    local db, t, car, u = H.fresh_tenant()
    local ctx = { tenant = t, user = u }
    local _, msg = timeline.append(db, ctx, { type = "odometer", occurred_at = "2025-01-01T00:00:00Z" })
    assert.equal("vehicle_id: is required", msg)
    _, msg = timeline.append(db, ctx, { vehicle_id = "x", type = "odometer", occurred_at = "2025-01-01T00:00:00Z" })
    assert.equal("vehicle_id: expected a UUID", msg)
    _, msg = timeline.append(db, ctx, { vehicle_id = car, type = "odometer", occurred_at = "2025-01-01 00:00" })
    assert.equal("occurred_at: needs a time zone (e.g. 2025-01-20T08:30:00Z or +01:00)", msg)
    -- (the column is numeric(10,1): the database said "numeric field overflow", naming no field)
    for _, mileage in ipairs { 1e10, 999999999.96 } do
      _, msg = timeline.append(db, ctx, { vehicle_id = car, type = "odometer", occurred_at = "2025-01-01T00:00:00Z",
        mileage = mileage, payload = { source = "manual" } })
      assert.equal("mileage: expected a number below 1000000000 (at most 9 digits before the point)", msg)
    end
    _, msg = timeline.append_batch(db, ctx, { { vehicle_id = car, type = "odometer", occurred_at = "2025-01-01T00:00:00Z",
      payload = { source = "manual" } }, { vehicle_id = car, occurred_at = "2025-01-01T00:00:00Z" } })
    assert.equal("events[2].type: is required", msg)
    _, msg = timeline.append(db, ctx, { vehicle_id = car, type = "odometer", occurred_at = "2025-01-01T00:00:00Z",
      corrects_id = car })
    assert.equal("corrects_id: use timeline.correct or timeline.void", msg)
    H.drop(db)
  end)
end)

describe("a soft-deleted vehicle", function()
  it("hides its events, flags, metrics, reminders, images and feed rows from every member until restored", function()
    local db, t, car, owner = H.fresh_tenant()
    local viewer = H.user(db, t, "viewer")
    local app = H.app_connect(db)
    local ctx = { tenant = t, user = owner }
    assert(timeline.append_batch(db, ctx, {
      { vehicle_id = car, type = "odometer", occurred_at = "2025-01-01T00:00:00Z", mileage = 10, payload = { source = "manual" } },
      { vehicle_id = car, type = "odometer", occurred_at = "2025-01-02T00:00:00Z", mileage = 9000, payload = { source = "manual" } },
    }))
    assert(db:exec("INSERT INTO reminders (tenant_id, vehicle_id, title, due_on) VALUES ($1, $2, 'oil', '2026-01-01')", t, car))
    assert(db:exec("INSERT INTO vehicle_images (tenant_id, vehicle_id, storage_url) VALUES ($1, $2, 's3://x')", t, car))
    motomind.assert(db:maintain())
    -- the tables to look at: every table with a vehicle_id, from the catalog
    local tables = db:query("SELECT rel::text AS name FROM vehicle_scoped_tables WHERE rel IN (SELECT rel FROM tenant_tables)")
    local function visible(user)
      return app:as({ tenant = t, user = user }, function()
        local n = {}
        for _, r in ipairs(tables) do
          local ok = app:value("SELECT count(*) FROM " .. r.name)
          if ok then n[r.name] = ok end
        end
        n.feed = #motomind.assert(timeline.feed(app, { tenant = t, user = user })).events
        return n
      end)
    end
    local before = visible(viewer)
    for _, name in ipairs { "vehicle_events", "vehicle_event_flags", "vehicle_metrics_monthly", "reminders",
                            "vehicle_images", "feed" } do
      assert.is_true((before[name] or 0) > 0, name)
    end
    assert.is_true(motomind.assert(app:as({ tenant = t, user = owner }, function()
      return app:value("SELECT set_deleted('vehicles', $1, true)", car)
    end)))
    for _, who in ipairs { viewer, owner } do
      for name, n in pairs(visible(who)) do assert.equal(0, n, name) end
    end
    assert.is_true(motomind.assert(app:as({ tenant = t, user = owner }, function()
      return app:value("SELECT set_deleted('vehicles', $1, false)", car)
    end)))
    assert.same(before, visible(viewer))
    app:close()
    H.drop(db)
  end)

  it("is hidden by a policy that every table with a vehicle_id has, partitions included", function()
    local db = H.fresh()
    assert(db:ensure_partitions())
    local missing = db:query([[
      SELECT c.oid::regclass::text AS rel FROM pg_class c
       WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') AND c.relname <> 'vehicles'
         AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'vehicle_id')
         AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id')
         AND NOT EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid AND p.polname = 'live_vehicle')]])
    assert.same({}, missing)
    H.drop(db)
  end)
end)

describe("the direct path of a JSON-lines import", function()
  local db, t, car, owner

  before_each(function() db, t, car, owner = H.fresh_tenant() end)
  after_each(function()
    import.direct, import.typed_staging = true, true
    H.drop(db)
  end)

  -- Events in increasing time, written in every form of time C reads
  -- ('T' or ' ', seconds or not, 0-6 fraction digits, trailing zeros, Z and
  -- offsets of each kind, across days, months and years), with texts a
  -- content id must take as they are ("|", tab, newline, backslash, UTF-8).
  local function corpus(vehicle, n)
    local offsets = { "Z", "+00:00", "-00:00", "+05:30", "-03:30", "+14:00", "-12:00", "+0545", "-08", "+15:59",
      "-0930", "+01" }
    local notes = { "plain", "a|b", "tab\there", "line\nbreak", "back\\slash", "Müller ✓ 🚗", "" }
    local lines, at = {}, -631152000 -- 1950-01-01
    for i = 1, n do
      at = at + ((i * 7919) % 400 + 1) * 86400 + (i * 104729) % 86400
      local offset = offsets[i % #offsets + 1]
      local sign, h, m = offset:match("^([+-])(%d%d):?(%d?%d?)$")
      local shift = sign and (sign == "-" and -1 or 1) * (tonumber(h) * 3600 + (tonumber(m) or 0) * 60) or 0
      local digits = i % 7
      local fraction = digits > 0 and "." .. (("%06d"):format((i * 37) % 1000000)):sub(1, digits) or ""
      local clock = i % 5 == 0 and "%H:%M" or "%H:%M:%S" .. fraction
      local when = os.date("!%Y-%m-%d" .. (i % 2 == 0 and "T" or " ") .. clock, at + shift) .. offset
      local ev = { vehicle_id = vehicle, type = "odometer", occurred_at = when, payload = { source = "manual" } }
      if i % 3 == 0 then ev.mileage = i * 100.5 end
      if i % 4 == 0 then ev.notes = notes[i % #notes + 1] end
      if i % 6 == 0 then ev.location = { lat = i % 90, lon = -(i % 180) } end
      if i % 8 == 0 then ev.tags = { "t" .. i, "x|y" } end
      if i % 9 == 0 then
        ev.type, ev.payload = "fuel", { volume = 40 + i / 100, unit = "l", total = 61.5, currency = "EUR", full = true }
      end
      lines[#lines + 1] = motomind.json.encode(ev)
    end
    -- times across a leap day, a month and a year, in UTC
    for _, when in ipairs { "2024-02-29T23:30:00-02:00", "2000-02-29 00:15+01:00", "1999-12-31T23:59:59.999999-00:30",
                            "2023-12-31T22:00:00.500000-05:00", "1970-01-01T00:00:00.10+00:01" } do
      lines[#lines + 1] = motomind.json.encode { vehicle_id = vehicle, type = "odometer", occurred_at = when,
        payload = { source = "manual" } }
    end
    -- members in no sorted order, nested, as a file may write them (the
    -- ids hash them as written, by C and by SQL alike)
    for k, json in ipairs {
      '"payload":{"total":50,"provider":{"technician":"Sam","name":"Quick Lube"},"currency":"USD",' ..
        '"service_type":"oil_change","parts":[{"unit_cost":9.5,"quantity":1,"name":"filter"}]}',
      '"payload":{"service_type":"brakes","currency":"EUR","total":120},' ..
        '"location":{"place":"Garage","accuracy_m":5,"lon":2.35,"lat":48.85}',
      '"payload":{"currency":"EUR","total":120,"service_type":"brakes"},' ..
        '"location":{"lat":48.85,"lon":2.35,"accuracy_m":5,"place":"Garage"}' } do
      lines[#lines + 1] = ('{"vehicle_id":"%s","type":"maintenance","occurred_at":"2025-06-0%dT10:00:00Z",%s}')
        :format(vehicle, k, json)
    end
    return table.concat(lines, "\n") .. "\n"
  end

  it("gives each event the content id the staged path gives it (its import again adds nothing)", function()
    local ctx = { tenant = t, user = owner }
    local path = H.write_temp(corpus(car, 400))
    local _, _, first, copies = counting(db, function() return assert(import.import(db, ctx, path)) end)
    assert.same({ 1, 0 }, { copies.direct, copies.staged })
    assert.same({ 408, 0 }, { first.inserted, #first.rejected })
    -- the same file staged as texts (ids computed by SQL): every event is found again
    import.direct, import.typed_staging = false, false
    local again = assert(import.import(db, ctx, path))
    assert.same({ 0, 408, 0 }, { again.inserted, again.duplicates, #again.rejected })
    -- and staged typed (ids computed by C again, for staged rows): found again too
    import.typed_staging = true
    local typed = assert(import.import(db, ctx, path))
    assert.same({ 0, 408, 0 }, { typed.inserted, typed.duplicates, #typed.rejected })
    -- and the events are the ones the staged path inserts in another tenant
    local other = H.fresh()
    local t2, car2 = H.tenant_with_vehicle(other)
    local owner2 = H.user(other, t2, "owner")
    local staged = assert(import.import(other, { tenant = t2, user = owner2 }, H.write_temp(corpus(car2, 400))))
    assert.equal(408, staged.inserted)
    local function events(conn)
      return conn:query("SELECT occurred_at, mileage, notes, location, tags, payload FROM vehicle_events ORDER BY occurred_at")
    end
    assert.same(events(db), events(other))
    -- the texts arrive as written (COPY's escapes undone by the server)
    local stored = {}
    for _, r in ipairs(assert(db:query("SELECT DISTINCT notes FROM vehicle_events WHERE notes IS NOT NULL ORDER BY 1"))) do
      stored[#stored + 1] = r.notes
    end
    local written = { "", "Müller ✓ 🚗", "a|b", "back\\slash", "line\nbreak", "plain", "tab\there" }
    table.sort(written)
    assert.same(written, stored)
    H.drop(other)
  end)

  it("stages a file with a time C leaves to PostgreSQL, or a refused line, and lands what the staged path lands", function()
    local ctx = { tenant = t, user = owner }
    local lines = { odometer(car, 1, 100), odometer(car, 2, 200) }
    lines[3] = motomind.json.encode { vehicle_id = car, type = "odometer", mileage = 300,
      occurred_at = "2025-01-03T10:00:00.1234567+01:00", payload = { source = "manual" } } -- 7 digits: rounded
    local _, _, report, copies = counting(db, function() return assert(import.import(db, ctx, H.write_temp(table.concat(lines, "\n")))) end)
    -- (staged typed first, which that time undoes too: then as texts)
    assert.same({ 1, 2, 1 }, { copies.direct, copies.staged, copies.typed })
    assert.same({ 3, 0 }, { report.inserted, #report.rejected })
    assert.equal("2025-01-03 09:00:00.123457+00",
      db:value("SELECT (occurred_at AT TIME ZONE 'UTC')::text || '+00' FROM vehicle_events WHERE mileage = 300"))
    lines = { odometer(car, 10, 1000), '{"vehicle_id": "' .. car .. '", "type": "odometer"}', odometer(car, 12, 1200) }
    _, _, report, copies = counting(db, function() return assert(import.import(db, ctx, H.write_temp(table.concat(lines, "\n")))) end)
    assert.same({ 1, 1, 1 }, { copies.direct, copies.staged, copies.typed })
    assert.same({ 2, 1 }, { report.inserted, #report.rejected })
    assert.same({ line = 2, reason = "occurred_at: is required" },
      { line = report.rejected[1].line, reason = report.rejected[1].reason })
  end)

  it("sends its rows in COPY's binary format, which stores what the text format stores", function()
    local ctx = { tenant = t, user = owner }
    local mileages = { 0, 1e-05, 7.5e-3, 0.05, 0.25, 0.95, 10, 12.34, 99999.95, 100000, 123456789.94, 999999999.9 }
    local function file(vehicle)
      local lines = {}
      for i, m in ipairs(mileages) do
        lines[i] = motomind.json.encode { vehicle_id = vehicle, type = "odometer", mileage = m,
          occurred_at = ("%04d-02-%02dT%02d:%02d:%02d.%d%s"):format(1900 + i * 9, i, i, i * 4, i * 5 % 60, i * 7,
            ({ "Z", "+05:30", "-09:00", "+14" })[i % 4 + 1]), notes = ("n%02d"):format(i), payload = { source = "manual" } }
      end
      return H.write_temp(table.concat(lines, "\n"))
    end
    local function stored(conn, tenant)
      return conn:query("SELECT id, occurred_at, mileage, notes FROM vehicle_events WHERE tenant_id = $1 ORDER BY notes",
        tenant)
    end
    local _, _, report, copies = counting(db, function() return assert(import.import(db, ctx, file(car))) end)
    assert.same({ 1, 0, #mileages }, { copies.direct, copies.staged, report.inserted })
    local binary = stored(db, t)
    assert.same({ "0.0", "0.1", "100000.0" }, { tostring(binary[2].mileage), tostring(binary[4].mileage),
      tostring(binary[9].mileage) }) -- (numeric(10,1) rounds half away from zero)
    -- the same file as text rows, in another tenant (the ids differ: the tenant is in them)
    import.binary = false
    finally(function() import.binary = true end)
    local t2, car2 = H.tenant_with_vehicle(db)
    assert(import.import(db, { tenant = t2, user = H.user(db, t2, "owner") }, file(car2)))
    local plain = stored(db, t2)
    for i, row in ipairs(binary) do
      assert.same({ row.occurred_at, row.mileage, row.notes }, { plain[i].occurred_at, plain[i].mileage, plain[i].notes })
    end
    -- and staged typed in binary, in a third: the same again
    import.binary, import.direct = true, false
    finally(function() import.direct = true end)
    local t3, car3 = H.tenant_with_vehicle(db)
    assert(import.import(db, { tenant = t3, user = H.user(db, t3, "owner") }, file(car3)))
    for i, row in ipairs(stored(db, t3)) do
      assert.same({ binary[i].occurred_at, binary[i].mileage }, { row.occurred_at, row.mileage })
    end
  end)

  it("puts every event on the vehicle the import names, as the staged paths do", function()
    local ctx = { tenant = t, user = owner }
    local other = db:value("INSERT INTO vehicles (tenant_id, id) VALUES ($1, gen_random_uuid()) RETURNING id", t)
    local path = H.write_temp(odometer(other, 1, 100) .. "\n")
    for _, path_taken in ipairs { { true, true }, { false, true }, { false, false } } do
      import.direct, import.typed_staging = path_taken[1], path_taken[2]
      local report = assert(import.import(db, ctx, path, { vehicle = car }))
      assert.same({ 1, 0 }, { report.staged, #report.rejected })
      assert.same({ 1, 0 }, { db:value("SELECT count(*) FROM vehicle_events WHERE vehicle_id = $1", car),
        db:value("SELECT count(*) FROM vehicle_events WHERE vehicle_id = $1", other) })
    end
  end)

  it("stages a file typed, or as texts when PostgreSQL cannot read a value as its type, and reports that line", function()
    local ctx = { tenant = t, user = owner }
    import.direct = false
    local lines = { odometer(car, 1, 100), odometer(car, 2, 200), odometer(car, 3, 300) }
    local _, _, report, copies = counting(db, function() return assert(import.import(db, ctx, H.write_temp(table.concat(lines, "\n")))) end)
    assert.same({ 0, 1, 1 }, { copies.direct, copies.staged, copies.typed })
    assert.same({ 3, 0 }, { report.inserted, #report.rejected })
    -- (an event with its own id has no content id to compute: C leaves its time to PostgreSQL, which refuses it)
    lines = { odometer(car, 10, 1000), motomind.json.encode { id = "6b9f7a4e-5d0c-4a43-9c2e-2f1d1c0b0a01", vehicle_id = car,
      type = "odometer", mileage = 1100, occurred_at = "2025-02-30T10:00:00Z", payload = { source = "manual" } },
      odometer(car, 12, 1200) }
    _, _, report, copies = counting(db, function() return assert(import.import(db, ctx, H.write_temp(table.concat(lines, "\n")))) end)
    assert.same({ 0, 2, 1 }, { copies.direct, copies.staged, copies.typed })
    assert.same({ 2, 1 }, { report.inserted, #report.rejected })
    assert.same({ line = 2, sqlstate = "22008" }, { line = report.rejected[1].line, sqlstate = report.rejected[1].sqlstate })
    assert.matches("2025%-02%-30", report.rejected[1].reason)
  end)

  it("is not tried by the application role, to which row-level security applies (COPY FROM is refused there)", function()
    local app = H.app_connect(db)
    local manager = H.user(db, t, "manager")
    local _, _, report, copies = counting(app, function()
      return assert(import.import(app, { tenant = t, user = manager }, H.write_temp(odometer(car, 1, 100))))
    end)
    assert.same({ 0, 1, 1 }, { copies.direct, copies.staged, copies.typed })
    assert.equal(1, report.inserted)
    local refused = { app:exec("COPY vehicle_events (tenant_id) FROM STDIN") }
    assert.same({ "0A000", "COPY FROM not supported with row-level security" }, { refused[3], refused[2] })
    app:close()
  end)

  it("stages a viewer's file sent through a connection row-level security does not bind, which the screen refuses",
    function()
      local viewer = H.user(db, t, "viewer")
      local _, _, report, copies = counting(db, function()
        return assert(import.import(db, { tenant = t, user = viewer }, H.write_temp(odometer(car, 1, 100))))
      end)
      assert.same({ 1, 1 }, { copies.direct, copies.staged })
      assert.same({ 0, 1, "42501" }, { report.inserted, #report.rejected, report.rejected[1].sqlstate })
      assert.equal(0, db:value("SELECT count(*) FROM vehicle_events"))
    end)

  it("brings an undone import's events back: new events go straight in, the undone ones are staged", function()
    local imports = require "motomind.imports"
    local ctx = { tenant = t, user = owner }
    local path = H.write_temp(odometer(car, 1, 100) .. "\n" .. odometer(car, 2, 200))
    local first = assert(import.import(db, ctx, path))
    assert.equal(2, motomind.assert(imports.undo(db, ctx, first.batch)).voided)
    local _, _, fresh, copies = counting(db, function()
      return assert(import.import(db, ctx, H.write_temp(odometer(car, 3, 300))))
    end)
    assert.same({ 1, 0, 1 }, { copies.direct, copies.staged, fresh.inserted })
    local back
    _, _, back, copies = counting(db, function() return assert(import.import(db, ctx, path)) end)
    assert.same({ 1, 1 }, { copies.direct, copies.staged })
    assert.same({ 2, 0 }, { back.inserted, back.duplicates })
    assert.equal(3, db:value("SELECT count(*) FROM vehicle_events_effective"))
  end)

  it("stages a file for a soft-deleted vehicle, whose lines the screen refuses", function()
    local ctx = { tenant = t, user = owner }
    assert(db:exec("UPDATE vehicles SET deleted_at = now() WHERE id = $1", car))
    local _, _, report, copies = counting(db, function()
      return assert(import.import(db, ctx, H.write_temp(odometer(car, 1, 100) .. "\n" .. odometer(car, 2, 200))))
    end)
    assert.same({ 1, 1 }, { copies.direct, copies.staged })
    assert.same({ 0, 2 }, { report.inserted, #report.rejected })
    assert.equal(("vehicle_id: no vehicle %s in this tenant"):format(car), report.rejected[1].reason)
    assert.equal(0, db:value("SELECT count(*) FROM vehicle_events"))
  end)
end)

describe("a staged JSON-lines file inserted in chunks (each inserted while the next is read)", function()
  local db, t, car, owner

  before_each(function()
    db, t, car, owner = H.fresh_tenant()
    import.direct = false -- (the owner's file staged, as the application role's is)
  end)
  after_each(function()
    import.direct, import.chunk_rows = true, 20000
    H.drop(db)
  end)

  -- A tenant with n vehicles and an owner: tenant, { vehicle ids }, owner.
  local function fleet(n)
    local tenant, first = H.tenant_with_vehicle(db)
    local cars = { first }
    for i = 2, n do
      cars[i] = db:value("INSERT INTO vehicles (tenant_id, nickname) VALUES ($1, 'car ' || $2) RETURNING id", tenant, i)
    end
    return tenant, cars, H.user(db, tenant, "owner")
  end

  -- Lines { vehicle index, day, mileage [, id] } as a file for the fleet's vehicles.
  local function file(cars, lines)
    local out = {}
    for i, l in ipairs(lines) do
      out[i] = motomind.json.encode { id = l[4], vehicle_id = cars[l[1]], type = "odometer", mileage = l[3],
        occurred_at = ("2025-03-%02dT08:00:00Z"):format(l[2]), payload = { source = "manual" } }
    end
    return H.write_temp(table.concat(out, "\n") .. "\n")
  end

  -- What an import of a fleet's file left: the report's counts and refusals,
  -- the events and flags, each vehicle by its index in cars.
  local function outcome(tenant, cars, report)
    local index, events, flags, rejected = {}, {}, {}, {}
    for i, id in ipairs(cars) do index[id] = i end
    for _, r in ipairs(report.rejected) do rejected[#rejected + 1] = { r.line, r.reason, r.sqlstate } end
    for _, e in ipairs(assert(db:query("SELECT vehicle_id, occurred_at, mileage, id FROM vehicle_events " ..
        "WHERE tenant_id = $1 ORDER BY vehicle_id, occurred_at", tenant))) do
      events[#events + 1] = { index[e.vehicle_id], e.occurred_at, e.mileage, e.id:match("^0b0b") and e.id or nil }
    end
    for _, f in ipairs(assert(db:query("SELECT vehicle_id, occurred_at, flag FROM vehicle_event_flags " ..
        "WHERE tenant_id = $1 ORDER BY vehicle_id, occurred_at", tenant))) do
      flags[#flags + 1] = { index[f.vehicle_id], f.occurred_at, f.flag }
    end
    table.sort(events, function(a, b) return a[1] < b[1] or a[1] == b[1] and a[2] < b[2] end)
    table.sort(flags, function(a, b) return a[1] < b[1] or a[1] == b[1] and a[2] < b[2] end)
    return { report.inserted, report.duplicates, rejected, events, flags }
  end

  local id = "0b0b0b0b-0000-4000-8000-00000000000a"
  -- a jump (flagged), a reading below an earlier one (refused), one event
  -- given to two vehicles at the same time (the first line wins), lines
  -- out of time order
  local LINES = {
    { 1, 1, 100 }, { 1, 2, 200 }, { 1, 3, 90000 }, { 1, 4, 90100 },
    { 2, 2, 300 }, { 2, 1, 250 }, { 2, 3, 200 }, { 2, 4, 400 },
    { 3, 1, 10 }, { 3, 5, 50, id }, { 3, 6, 60 },
    { 4, 5, 70, id }, { 4, 1, 5 }, { 4, 2, 6 },
    { 5, 1, 1 }, { 5, 9, 9 },
  }

  it("lands what one INSERT of the whole file lands, chunk after chunk, in chunks of any size", function()
    local expected
    for _, rows in ipairs { false, 1, 3, 4, 100 } do
      import.chunk_rows = rows
      local tenant, cars, user = fleet(5)
      local inserts, _, report, copies = counting(db, function()
        return assert(import.import(db, { tenant = tenant, user = user }, file(cars, LINES)))
      end)
      local got = outcome(tenant, cars, report)
      if not expected then
        expected = got
        assert.same({ 14, 1, { { 7, "mileage 200 on 2025-03-03 is below 300 recorded on 2025-03-02", "23514" } } },
          { got[1], got[2], got[3] })
        assert.equal(2, #got[5]) -- (the jump into 90000 and out of 200)
      else
        assert.same(expected, got)
        assert.same({ 1, 1 }, { copies.staged, copies.typed })
        -- whole vehicles per chunk: one chunk each with rows = 1 or 3; the
        -- refusal (vehicle 2's chunk) leaves it and the rest to the usual path
        if rows == 100 then assert.equal(1 + 2, inserts) end -- (refused, then the usual path's two)
      end
    end
  end)

  it("inserts each chunk of a clean file as it is read: one INSERT each, the whole vehicles together", function()
    import.chunk_rows = 2
    local tenant, cars, user = fleet(4)
    local lines = {}
    for v = 1, 4 do for day = 1, 3 do lines[#lines + 1] = { v, day, day * 10 } end end
    local inserts, screens, report, copies = counting(db, function()
      return assert(import.import(db, { tenant = tenant, user = user }, file(cars, lines)))
    end)
    assert.same({ 4, 0, 1, 1 }, { inserts, screens, copies.staged, copies.typed })
    assert.same({ 12, 0, 0 }, { report.inserted, report.duplicates, #report.rejected })
    assert.equal(12, db:value("SELECT count(*) FROM vehicle_events WHERE tenant_id = $1", tenant))
  end)

  it("stages the file in one piece when a vehicle's events are apart in it (chunks could not stand for it)", function()
    import.chunk_rows = 1
    local tenant, cars, user = fleet(3)
    local lines = { { 1, 1, 100 }, { 2, 1, 10 }, { 3, 1, 1 }, { 1, 2, 50 }, { 2, 2, 20 } }
    local inserts, _, report, copies = counting(db, function()
      return assert(import.import(db, { tenant = tenant, user = user }, file(cars, lines)))
    end)
    -- the chunked try undone (vehicle 1 came back after its chunk went), then typed in one piece
    assert.same({ 2, 2 }, { copies.staged, copies.typed })
    assert.same({ 4, 0, 1 }, { report.inserted, report.duplicates, #report.rejected })
    assert.same({ 4, "23514" }, { report.rejected[1].line, report.rejected[1].sqlstate })
    assert.equal(4, db:value("SELECT count(*) FROM vehicle_events WHERE tenant_id = $1", tenant))
    -- (the first two chunks' INSERTs, then the file's own, refused by the
    -- decrease, and the lines left after the mileage screen)
    assert.equal(4, inserts)
  end)

  it("brings an undone import's events back through its chunks", function()
    import.chunk_rows = 1
    local tenant, cars, user = fleet(3)
    local path = file(cars, { { 1, 1, 10 }, { 1, 2, 20 }, { 2, 1, 5 }, { 3, 1, 7 } })
    local ctx = { tenant = tenant, user = user }
    local first = assert(import.import(db, ctx, path))
    assert.equal(4, motomind.assert(require("motomind.imports").undo(db, ctx, first.batch)).voided)
    -- (each chunk's rows take their reissued ids before its INSERT: one
    -- INSERT a chunk, none refused by the voided rows' ids)
    local inserts, _, back = counting(db, function() return assert(import.import(db, ctx, path)) end)
    assert.same({ 4, 0, 3 }, { back.inserted, back.duplicates, inserts })
    assert.equal(4, db:value("SELECT count(*) FROM vehicle_events_effective WHERE tenant_id = $1", tenant))
  end)

  it("refuses a file with no records, as the one piece does", function()
    for _, rows in ipairs { 20000, false } do
      import.chunk_rows = rows
      local ok, err, sqlstate = import.import(db, { tenant = t, user = owner }, H.write_temp("\n\n"), { format = "jsonl" })
      assert.is_nil(ok)
      assert.same({ "22023", true }, { sqlstate, err:find("no records (the file is empty", 1, true) ~= nil })
    end
  end)

  it("holds the connection for the chunks: a callback may not close it, and it is usable after", function()
    import.chunk_rows = 1
    local other = db:value("INSERT INTO vehicles (tenant_id) VALUES ($1) RETURNING id", t)
    local lines = { odometer(other, 1, 1) } -- (the first chunk: its COPY runs as it is read)
    for day = 1, 10000 do lines[day + 1] = odometer(car, 1, day) end
    local ok, err = pcall(import.import, db, { tenant = t, user = owner }, H.write_temp(table.concat(lines, "\n")),
      { progress = function() db:close() end })
    assert.is_false(ok)
    assert.matches("cannot close a connection inside its own import", err, 1, true)
    assert.equal(1, db:value("SELECT 1"))
    assert.equal(0, db:value("SELECT count(*) FROM vehicle_events"))
  end)
end)
