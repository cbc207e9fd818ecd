local motomind = require "motomind"
local import = require "motomind.import"
local export = require "motomind.export"
local H = require "spec.helper"

local function write(lines) return H.write_temp(table.concat(lines, "\n") .. "\n") end
local read = H.read

describe("JSON-lines import and export", function()
  local db, ctx, car, user

  before_each(function()
    local t
    db, t, car, user = H.fresh_tenant()
    ctx = { tenant = t, user = user }
  end)
  after_each(function() H.drop(db) end)

  local function event(at, mileage, extra)
    local e = { vehicle_id = car, type = "odometer", occurred_at = at, mileage = mileage, payload = { source = "manual" } }
    for k, v in pairs(extra or {}) do e[k] = v end
    return assert(motomind.json.encode(e))
  end

  it("imports valid lines, reports each refused one, and adds nothing the second time", function()
    local path = write {
      event("2025-01-01T00:00:00Z", 1000),
      '{"vehicle_id": "' .. car .. '", "type": "fuel", "occurred_at": "2025-01-02T00:00:00Z", "payload": {"volume": -1, "unit": "l"}}',
      "not json",
      "",
      event("2025-01-03T00:00:00Z", 500), -- below the previous reading: refused by the database
      event("2025-01-04T00:00:00Z", 1200, { notes = "tab\there, and a \\ backslash" }),
      event("2025-01-05T00:00:00Z", 1300, { colour = "red" }),
    }
    local errors = os.tmpname()
    local report = assert(import.import(db, ctx, path, { errors = errors }))
    assert.equal(6, report.records)
    assert.equal(3, report.staged)
    assert.equal(2, report.inserted)
    local reasons = {}
    for _, r in ipairs(report.rejected) do reasons[r.line] = r.reason end
    assert.equal("payload.volume: expected number > 0 and <= 100000, got -1", reasons[2])
    assert.equal("invalid JSON", reasons[3])
    assert.equal("mileage 500 on 2025-01-03 is below 1000 recorded on 2025-01-01", reasons[5])
    assert.equal("colour: unknown field", reasons[7])
    assert.equal(4, #report.rejected)
    local logged = {}
    for line in read(errors):gmatch("[^\n]+") do logged[#logged + 1] = motomind.json.decode(line) end
    assert.equal(4, #logged)
    assert.equal(5, logged[3].line)
    assert.equal("23514", logged[3].sqlstate)
    assert.equal("tab\there, and a \\ backslash",
      db:value("SELECT notes FROM vehicle_events WHERE mileage = 1200"))
    local again = assert(import.import(db, ctx, path))
    assert.equal(0, again.inserted)
    assert.equal(2, again.duplicates)
    assert.equal(2, db:value("SELECT count(*) FROM vehicle_events"))
    os.remove(path) os.remove(errors)
  end)

  it("lands nothing in atomic mode when a line is bad", function()
    local path = write { event("2025-01-01T00:00:00Z", 1000), "{}" }
    local ok, msg, sqlstate, detail = import.import(db, ctx, path, { atomic = true })
    assert.is_nil(ok)
    assert.matches("1 of 2 records refused; nothing imported", msg)
    assert.equal("23514", sqlstate)
    assert.equal(1, #detail.report.rejected)
    assert.equal(0, db:value("SELECT count(*) FROM vehicle_events"))
    os.remove(path)
  end)

  it("leaves nothing behind when the connection dies mid-import, and the rerun completes it", function()
    local lines = {}
    for i = 1, 20000 do lines[i] = event(os.date("!%Y-%m-%dT%H:%M:%SZ", 1735689600 + i * 600), i) end
    local path = write(lines)
    local victim = H.connect { schema = db:schema() }
    local pid = victim:backend_pid()
    -- Another session ends the importer's backend once it is busy importing.
    local killer = H.lua_command(([[
      local db = assert(require("motomind").connect(nil, { maintenance = true }))
      for _ = 1, 400 do
        local busy = db:value("SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'", %d)
        if busy > 0 then db:query("SELECT pg_terminate_backend($1)", %d) break end
        db:query("SELECT pg_sleep(0.01)")
      end
      db:close()]]):format(pid, pid))
    os.execute(killer .. " &")
    local ok, report, msg, sqlstate = pcall(import.import, victim, ctx, path)
    assert.is_true(not ok or report == nil, "the first import should have been cut off")
    if ok then assert.is_truthy(sqlstate == "08006" or sqlstate == "57P01", tostring(msg)) end
    victim:close()
    assert.equal(0, db:value("SELECT count(*) FROM vehicle_events"))
    local seen = {}
    report = assert(import.import(db, ctx, path, { progress = function(lines, bytes)
      seen[#seen + 1] = { lines, bytes }
    end }))
    assert.same({ 10000, 20000 }, { seen[1][1], seen[2][1] }) -- progress every 10,000 lines
    assert.is_true(seen[1][2] > 0 and seen[2][2] > seen[1][2])
    assert.equal(20000, report.inserted)
    assert.equal(20000, db:value("SELECT count(*) FROM vehicle_events"))
    assert.equal(20000, db:value("SELECT count(DISTINCT id) FROM vehicle_events"))
    os.remove(path)
  end)

  it("exports JSON lines that import back exactly", function()
    local path = write {
      event("2025-01-01T00:00:00Z", 1000.5),
      event("2025-02-01T00:00:00Z", 1500, { notes = 'quote " and \\ and tab\t' }),
      '{"vehicle_id": "' .. car .. '", "type": "fuel", "occurred_at": "2025-02-02T10:30:00+02:00", ' ..
        '"payload": {"total": 74.33, "currency": "EUR", "extra": {"tags": [], "z": {"a": null}}}}',
    }
    assert(import.import(db, ctx, path))
    local first = os.tmpname()
    assert.equal(3, export.export(db, ctx, first))
    -- into a second database schema with the same tenant and vehicle
    local other = H.fresh()
    assert(other:exec("INSERT INTO tenants (id, name) VALUES ($1, 'copy')", ctx.tenant))
    assert(other:exec("INSERT INTO vehicles (tenant_id, id) VALUES ($1, $2)", ctx.tenant, car))
    assert(other:exec("INSERT INTO users (id, email) VALUES ($1, 'copy-' || gen_random_uuid() || '@x.example')", user))
    assert(other:exec("INSERT INTO memberships (tenant_id, user_id, role) VALUES ($1, $2, 'owner')", ctx.tenant, user))
    local report = assert(import.import(other, ctx, first))
    assert.equal(3, report.inserted)
    local second = os.tmpname()
    assert.equal(3, export.export(other, ctx, second))
    assert.equal(read(first), read(second))
    assert.matches('"total": 74.33', read(first))
    -- one object a line, fields in the event's column order, NULL columns
    -- left out (a JSON null inside the payload is data, and stays), strings
    -- escaped
    local lines = {}
    for line in read(first):gmatch("[^\n]+") do lines[#lines + 1] = line end
    assert.equal(3, #lines)
    for _, line in ipairs(lines) do
      assert.matches('^{"id": "[^"]+", "vehicle_id": "' .. car:gsub("%-", "%%-") .. '", "type": "%a+", "occurred_at": "', line)
    end
    local noted = motomind.json.decode(lines[2])
    assert.equal('quote " and \\ and tab\t', noted.notes)
    assert.equal(1500, noted.mileage)
    assert.equal(motomind.null, motomind.json.decode(lines[3]).payload.extra.z.a)
    for i = 1, 2 do assert.is_nil(lines[i]:find("null", 1, true), lines[i]) end -- (no correction: absent, not null)
    -- each line is the row's JSON as PostgreSQL writes it (uuids and
    -- numerics are written as their text)
    local fields = {}
    for i, f in ipairs(require("motomind.event").FIELDS) do fields[i] = f.name end
    for _, line in ipairs(lines) do
      assert.is_true(db:value("SELECT $1::jsonb = (SELECT jsonb_object_agg(key, value) FROM vehicle_events e, " ..
        "jsonb_each(to_jsonb(e)) WHERE e.id = ($1::jsonb->>'id')::uuid AND key IN (SELECT jsonb_array_elements_text($2)) " ..
        "AND value <> 'null')", line, setmetatable(fields, motomind.json.array_mt)), line)
    end
    H.drop(other)
    os.remove(path) os.remove(first) os.remove(second)
  end)

  -- The client writes the JSON from the COPY rows (src/event.c): each value
  -- must be the text PostgreSQL's to_json gives the column, whatever the
  -- text holds and whatever the session's time zone.
  it("writes each field as to_json prints it: every control byte, quotes, backslashes, zones with minutes and seconds", function()
    local controls = {}
    for b = 1, 31 do controls[#controls + 1] = ("\\u%04x"):format(b) end
    local tricky = table.concat(controls) .. [[ \" \\ \/ \u007f é ✓ \\N \\t end]]
    local path = write {
      '{"vehicle_id": "' .. car .. '", "type": "odometer", "occurred_at": "1890-06-01T12:00:00Z", "mileage": 0.5, ' ..
        '"payload": {"source": "manual"}, "notes": "' .. tricky .. '"}',
      '{"vehicle_id": "' .. car .. '", "type": "fuel", "occurred_at": "2025-03-30T01:30:00.25Z", "mileage": 123456.7, ' ..
        '"payload": {"total": 10, "currency": "EUR", "station": "' .. tricky .. '"}, ' ..
        '"tags": ["a\\tb", "\\\\"], "location": {"lat": 48.85, "lon": 2.35, "place": "' .. tricky .. '"}}',
      event("2025-07-01T23:59:59.999999+14:00", 123457),
    }
    local report = assert(import.import(db, ctx, path))
    assert.same({ 3, {} }, { report.inserted, report.rejected })
    local amended = db:value("SELECT id FROM vehicle_events WHERE mileage = 123457")
    assert(db:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, mileage, payload, " ..
      "correction, corrects_id, corrects_occurred_at) SELECT tenant_id, vehicle_id, type, occurred_at, 123458, " ..
      "payload, 'amend', id, occurred_at FROM vehicle_events WHERE id = $1", amended))
    local reference = {}
    for _, f in ipairs(require("motomind.event").FIELDS) do
      reference[#reference + 1] = ("', \"%s\": ' || to_json(e.%s)::text"):format(f.name, f.name)
    end
    local expected_sql = "SELECT '{' || substr(concat(" .. table.concat(reference, ", ") .. "), 3) || '}' AS line " ..
      "FROM vehicle_events e ORDER BY e.vehicle_id, e.occurred_at, e.created_at, e.id"
    local written = {}
    for _, zone in ipairs { "UTC", "Asia/Kolkata", "America/St_Johns", "Europe/Paris", "Pacific/Kiritimati" } do
      assert(db:exec("SELECT set_config('TimeZone', $1, false)", zone))
      local chunks = {}
      assert.equal(4, export.export(db, ctx, function(chunk) chunks[#chunks + 1] = chunk end))
      local expected = {}
      for _, row in ipairs(assert(db:query(expected_sql))) do expected[#expected + 1] = row.line .. "\n" end
      written[zone] = table.concat(chunks)
      assert.equal(table.concat(expected), written[zone], zone)
    end
    -- (zones of whole hours, of minutes and of seconds: Paris's mean time in 1890)
    assert.matches('"occurred_at": "2025%-03%-30T01:30:00.25%+00:00"', written.UTC)
    assert.matches('"occurred_at": "2025%-03%-30T07:00:00.25%+05:30"', written["Asia/Kolkata"])
    assert.matches('"occurred_at": "1890%-06%-01T12:09:21%+00:09:21"', written["Europe/Paris"])
    assert.matches('"notes": "\\u0001\\u0002', written.UTC)
    os.remove(path)
  end)
end)
