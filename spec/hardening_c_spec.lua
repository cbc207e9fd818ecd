-- Regression specs for the defects of the adversarial review that live in the
-- C core (issue #11): callbacks that close or reuse their connection, the
-- CSV spec compiler, NUL bytes, and bad text in imported records. Runs under
-- valgrind too (tools/run-suite).
local motomind = require "motomind"
local import = require "motomind.import"
local H = require "spec.helper"

local BUSY = "inside its own COPY"

describe("a COPY callback that reaches back into its connection", function()
  local db

  before_each(function()
    db = H.fresh()
    assert(db:exec("CREATE TABLE sink (t text)"))
  end)
  after_each(function() H.drop(db) end)

  -- Runs the callback-driven call, which must raise a clear error, and
  -- checks the connection is still open and usable afterwards.
  local function refused(fn, pattern)
    local ok, err = pcall(fn)
    assert.is_false(ok)
    assert.matches(pattern or BUSY, tostring(err), 1, true)
    assert.equal("ok", db:status())
    assert.equal(1, db:value("SELECT 1"))
  end

  it("refuses close() from a copy_in producer", function()
    refused(function() db:copy_in("COPY sink FROM STDIN", function() db:close() end) end,
      "cannot close a connection inside its own COPY")
  end)

  it("refuses close() from a copy_out consumer", function()
    assert(db:exec("INSERT INTO sink VALUES ('a'), ('b')"))
    refused(function() db:copy_out("COPY sink TO STDOUT", function() db:close() end) end,
      "cannot close a connection inside its own COPY")
  end)

  it("refuses a query from a producer and from a consumer", function()
    refused(function() db:copy_in("COPY sink FROM STDIN", function() db:query("SELECT 1") end) end)
    assert(db:exec("INSERT INTO sink VALUES ('a')"))
    refused(function() db:copy_out("COPY sink TO STDOUT", function() db:exec("SELECT 1") end) end)
  end)

  it("refuses close() and queries from a copy_out_events consumer, and rows not of the event's fields", function()
    local fields = require("motomind.event").columns()
    assert(db:exec("CREATE TABLE events_like AS SELECT * FROM vehicle_events WITH NO DATA"))
    local t, car = H.tenant_with_vehicle(db)
    assert(db:exec("INSERT INTO events_like (tenant_id, id, vehicle_id, type, occurred_at, payload) " ..
      "SELECT $1, gen_random_uuid(), $2, 'odometer', now(), '{}' FROM generate_series(1, 5000)", t, car))
    local sql = "COPY (SELECT " .. fields .. " FROM events_like) TO STDOUT"
    refused(function() db:copy_out_events(sql, function() db:close() end) end,
      "cannot close a connection inside its own COPY")
    refused(function() db:copy_out_events(sql, function() db:exec("SELECT 1") end) end)
    refused(function() db:copy_out_events(sql, function() error("consumer failed") end) end, "consumer failed")
    refused(function() db:copy_out_events("COPY (SELECT id, vehicle_id FROM events_like) TO STDOUT", function() end) end,
      "a COPY row that is not the event's fields in order")
    refused(function() db:copy_out_events("COPY (SELECT " .. fields .. ", 1 FROM events_like) TO STDOUT",
      function() end) end, "a COPY row that is not the event's fields in order")
    local chunks = {}
    assert.equal(5000, db:copy_out_events(sql, function(chunk) chunks[#chunks + 1] = chunk end))
    assert.is_true(#chunks > 1 and #chunks < 5000 / 10, #chunks) -- chunks of many lines, not a call per row
    local _, lines = table.concat(chunks):gsub('{"id": "[^\n]*"payload": {}}\n', "")
    assert.equal(5000, lines)
  end)

  it("ends the COPY when a callback raises or yields", function()
    refused(function() db:copy_in("COPY sink FROM STDIN", function() error("producer failed") end) end,
      "producer failed")
    local co = coroutine.wrap(function()
      return db:copy_in("COPY sink FROM STDIN", function() coroutine.yield("x") end)
    end)
    refused(co, "yield")
    assert.equal(0, db:value("SELECT count(*) FROM sink"))
  end)

  it("refuses close() from the import's progress and reject callbacks", function()
    local t, car = H.tenant_with_vehicle(db)
    local u = H.user(db, t, "owner")
    local lines = {}
    for i = 1, 10001 do
      lines[i] = motomind.json.encode { vehicle_id = car, type = "odometer", mileage = i,
        occurred_at = ("2024-01-01T00:00:%02dZ"):format(i % 60), payload = { source = "manual" } }
    end
    local path = H.write_temp(table.concat(lines, "\n") .. "\n")
    local ok, err = pcall(import.import, db, { tenant = t, user = u }, path,
      { progress = function() db:close() end })
    assert.is_false(ok)
    assert.matches("cannot close a connection inside its own COPY", tostring(err), 1, true)
    assert.equal("ok", db:status())
    local bad = H.write_temp("not json\n")
    ok, err = pcall(db.copy_events, db, "COPY sink FROM STDIN", bad, require("motomind.payload").codec(),
      { on_reject = function() db:close() end })
    assert.is_false(ok)
    assert.matches("cannot close", tostring(err), 1, true)
    assert.equal(1, db:value("SELECT 1"))
    os.remove(path) os.remove(bad)
  end)
end)

describe("NUL bytes", function()
  local db
  setup(function() db = H.connect() end)
  teardown(function() db:close() end)

  it("are refused in SQL text, statement names and identifiers instead of cutting them short", function()
    local ok, err = pcall(db.value, db, "SELECT 1\0 WHERE false")
    assert.is_false(ok)
    assert.matches("SQL text contains a NUL byte", err, 1, true)
    for what, call in pairs {
      ["SQL text"] = function() return db:exec("SELECT 1\0") end,
      identifier = function() return db:escape_identifier("a\0b") end,
      ["statement name"] = function() return db:prepare("x\0y", "SELECT 1") end,
    } do
      local refused, why = pcall(call)
      assert.is_false(refused)
      assert.matches(what .. " contains a NUL byte", why, 1, true)
    end
  end)

  it("are refused inside JSON strings instead of truncating them", function()
    local v, err = motomind.json.decode('"visible\\u0000hidden"')
    assert.is_nil(v)
    assert.matches("\\u0000", err, 1, true)
    assert.same({ a = "b\\u0000" }, motomind.json.decode('{"a": "b\\\\u0000"}')) -- an escaped backslash
  end)
end)

describe("the CSV spec compiler", function()
  local db
  setup(function() db = H.connect() end)
  teardown(function() db:close() end)

  local codec = require("motomind.payload").codec()
  local function compile(spec)
    local path = H.write_temp("Date,Odometer\n2024-01-01,100\n")
    local ok, err = pcall(db.copy_events, db, "COPY pg_temp.nothing FROM STDIN", path, codec,
      { csv = spec, on_reject = function() end })
    os.remove(path)
    return ok, err
  end

  it("refuses number keys in a value map, naming the place, without corrupting memory", function()
    local ok, err = compile { type = "fuel", columns = {
      { names = "date", to = "occurred_at", as = "date" }, { names = "odometer", to = "mileage", as = "number" },
      { names = "full", as = "map", map = { [1.5] = { ["payload.full"] = true }, ["1.5"] = { ["payload.full"] = false } } } } }
    assert.is_false(ok)
    assert.matches("csv spec: columns[3].map: keys must be strings", tostring(err), 1, true)
  end)

  it("refuses number keys in set, and names sections", function()
    local ok, err = compile { type = "fuel", set = { [1] = "x", [2.5] = "y" }, columns = {} }
    assert.is_false(ok)
    assert.matches("csv spec: set: keys must be strings", tostring(err), 1, true)
    ok, err = compile { sections = { { name = "## Log", type = "fuel", columns = { { names = "a" } } } } }
    assert.is_false(ok)
    assert.matches("csv spec: sections[1].columns[1]: needs a target (to)", tostring(err), 1, true)
    -- a key the reader does not take is refused at every level, not ignored
    ok, err = compile { type = "fuel", colums = {} }
    assert.is_false(ok)
    assert.matches('csv spec: spec: unknown key "colums" (valid: columns, dates, decimal_comma', tostring(err), 1, true)
    ok, err = compile { sections = { { name = "## Log", type = "fuel", kind = "x", columns = {} } } }
    assert.matches('csv spec: sections[1]: unknown key "kind"', tostring(err), 1, true)
    ok, err = compile { type = "fuel", columns = { { names = "a", to = "mileage", requried = true } } }
    assert.matches('csv spec: columns[1]: unknown key "requried"', tostring(err), 1, true)
  end)
end)

describe("bad text in imported records", function()
  local db, ctx, car

  before_each(function()
    local t, u
    db, t, car, u = H.fresh_tenant()
    ctx = { tenant = t, user = u }
  end)
  after_each(function() H.drop(db) end)

  local function line(at, mileage, notes)
    return ('{"vehicle_id": "%s", "type": "odometer", "occurred_at": "%s", "mileage": %d, ' ..
      '"payload": {"source": "manual"}%s}'):format(car, at, mileage, notes and (', "notes": ' .. notes) or "")
  end

  it("refuses a record with invalid UTF-8 or \\u0000 by its line and keeps the rest", function()
    local path = H.write_temp(table.concat({
      line("2024-01-01T00:00:00Z", 100),
      line("2024-01-02T00:00:00Z", 200, '"bad \xff byte"'),
      line("2024-01-03T00:00:00Z", 300, '"visible\\u0000hidden"'),
      line("2024-01-04T00:00:00Z", 400, '"fine"'),
    }, "\n") .. "\n")
    local report = assert(import.import(db, ctx, path))
    assert.equal(2, report.inserted)
    assert.equal(2, #report.rejected)
    assert.equal(2, report.rejected[1].line)
    assert.equal("notes: text is not valid UTF-8", report.rejected[1].reason)
    assert.equal(3, report.rejected[2].line)
    assert.matches("\\u0000", report.rejected[2].reason, 1, true)
    os.remove(path)
  end)

  it("refuses a CSV record with invalid UTF-8 by its line", function()
    local path = H.write_temp("Date,Odometer,Notes\n2024-01-01,100,ok\n2024-01-02,200,bad \xfe\n2024-01-03,300,ok\n")
    local spec = { type = "odometer", set = { ["payload.source"] = "manual" }, columns = {
      { names = "date", to = "occurred_at", as = "date", required = true },
      { names = "odometer", to = "mileage", as = "number" }, { names = "notes", to = "notes" } } }
    local report = assert(import.import(db, ctx, path, { format = spec, vehicle = car }))
    assert.equal(2, report.inserted)
    assert.equal(3, report.rejected[1].line)
    assert.equal("notes: text is not valid UTF-8", report.rejected[1].reason)
    os.remove(path)
  end)

  it("refuses a line with text after its JSON value", function()
    local path = H.write_temp(line("2024-01-01T00:00:00Z", 100) .. " NOT JSON\n" .. line("2024-01-02T00:00:00Z", 200) .. "\n")
    local report = assert(import.import(db, ctx, path))
    assert.equal(1, report.inserted)
    assert.equal("invalid JSON: text after the JSON value", report.rejected[1].reason)
    os.remove(path)
  end)

  it("refuses times without a zone, so the session's zone never changes what is stored", function()
    local path = H.write_temp(table.concat({ line("2024-01-01T08:00:00", 100), line("2024-01-02 08:00:00+01:00", 200),
      line("2024-01-03T08:00:00.5Z", 300) }, "\n") .. "\n")
    local ids = {}
    for _, tz in ipairs { "UTC", "America/New_York", "Asia/Tokyo" } do
      assert(db:exec("SELECT set_config('TimeZone', $1, false)", tz))
      local report = assert(import.import(db, ctx, path))
      assert.equal(1, #report.rejected)
      assert.matches("occurred_at: needs a time zone", report.rejected[1].reason, 1, true)
      ids[#ids + 1] = db:value("SELECT string_agg(id::text, ',' ORDER BY id) FROM vehicle_events")
    end
    assert.equal(ids[1], ids[2])
    assert.equal(ids[1], ids[3])
    assert.equal(2, db:value("SELECT count(*) FROM vehicle_events"))
    os.remove(path)
  end)
end)

describe("JSON integers beyond 2^53", function()
  it("decode exactly (integers on Lua 5.4, exact text on LuaJIT), from text and from jsonb columns", function()
    local big = "12345678901234567"
    local function exact(v)
      if math.type then return math.type(v) == "integer" and tostring(v) == big end
      return v == big
    end
    local t = motomind.json.decode('{"a": "12\\"3", "n": ' .. big .. ', "f": 1.5, "small": 42}')
    assert.is_true(exact(t.n), tostring(t.n))
    assert.same({ 1.5, 42, '12"3' }, { t.f, t.small, t.a })
    local db = H.connect()
    local row = db:row("SELECT ('{\"n\": ' || $1 || ', \"huge\": 1' || repeat('0', 25) || '}')::jsonb AS j", big)
    assert.is_true(exact(row.j.n), tostring(row.j.n))
    assert.equal("1" .. ("0"):rep(25), tostring(row.j.huge)) -- beyond 64 bits: exact text
    if math.type then assert.equal(big, motomind.json.encode(t.n)) end
    db:close()
  end)
end)

describe("a connection collected while open", function()
  it("warns on stderr, and a closed one does not", function()
    local function stderr_of(code)
      local err = os.tmpname()
      local _, ok = H.run(H.lua_command(code) .. " 2>" .. err)
      local text = H.read(err)
      os.remove(err)
      assert.is_true(ok)
      return text
    end
    assert.matches("a connection was garbage-collected while open",
      stderr_of('local db = require("motomind").connect(); db = nil; collectgarbage()'), 1, true)
    assert.equal("", stderr_of('local db = require("motomind").connect(); db:close(); db = nil; collectgarbage()'))
    -- a pool's connection (db:set_pooled()) is closed by the collector quietly, and closed
    local code = 'local db = require("motomind").connect(); db:set_pooled(); ' ..
      'local pid = db:backend_pid(); db = nil; collectgarbage(); ' ..
      'local other = require("motomind").connect(); ' ..
      'for _ = 1, 50 do if other:value("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid) == 0 then ' ..
      'other:close(); return end; os.execute("sleep 0.1") end; error("backend " .. pid .. " still there")'
    assert.equal("", stderr_of(code))
    if not jit then -- (<close> is Lua 5.4 syntax)
      assert.equal("", stderr_of('do local db <close> = require("motomind").connect() end collectgarbage()'))
    end
  end)
end)
