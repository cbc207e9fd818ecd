local motomind = require "motomind"
local payload = require "motomind.payload"
local H = require "spec.helper"
local corpus = require "spec.fixtures.payload_corpus"

describe("payload codec", function()
  it("decodes and validates, normalizing key order and duplicate keys", function()
    local p = assert(payload.decode("fuel", '{"volume": 41.5, "unit": "l", "volume": 40}'))
    assert.same({ volume = 40, unit = "l" }, p)
    assert.equal('{"unit":"l","volume":40}', payload.encode("fuel", p))
  end)

  it("keeps money's cents through a round trip", function()
    local text = assert(payload.encode("fuel", { total = 74.33, currency = "EUR", price_per_unit = 1.799 }))
    assert.equal('{"currency":"EUR","price_per_unit":1.799,"total":74.33}', text)
    assert.equal(74.33, payload.decode("fuel", text).total)
  end)

  it("accepts tables and JSON text alike, keeping free-form fields under extra", function()
    local p = assert(payload.decode("maintenance", { service_type = "tyres",
      extra = { shop_ref = "A-17", tags = setmetatable({}, motomind.json.array_mt) } }))
    assert.equal("A-17", p.extra.shop_ref)
    assert.equal('{"extra":{"shop_ref":"A-17","tags":[]},"service_type":"tyres"}',
      payload.encode("maintenance", p))
  end)

  it("names the path and the reason of what is wrong", function()
    local ok, err = payload.check("maintenance",
      { service_type = "x", parts = { { name = "filter", unit_cost = 3 }, { name = "pad", unit_cost = "abc" } } })
    assert.is_nil(ok)
    assert.equal('payload.parts[2].unit_cost: expected number from 0 to 10000000, got "abc"', err)
    assert.equal("payload: invalid JSON at byte 12", select(2, payload.decode("fuel", '{"volume": }')))
    assert.error_matches(function() payload.decode("fuel", 42) end, "JSON text or table expected")
  end)

  it("gives the corpus its expected verdicts", function()
    for i, case in ipairs(corpus) do
      local ok, err = payload.check(case[1], case[2])
      if case[4] then
        assert.is_nil(ok, "case " .. i)
      elseif case[3] then
        assert.is_nil(ok, "case " .. i .. " should fail")
        assert.equal(case[3], err, "case " .. i)
      else
        assert.is_true(ok, ("case %d: %s"):format(i, tostring(err)))
      end
    end
  end)

  it("refuses text that is not valid UTF-8, as PostgreSQL does (found by fuzzing)", function()
    local ok, err = payload.check("fuel", '{"total": 1, "currency": "EUR", "station": "\127\127"}')
    assert.is_true(ok, err)
    ok, err = payload.check("fuel", '{"total": 1, "currency": "EUR", "station": "\xd1' .. ("\x96"):rep(300) .. '"}')
    assert.is_nil(ok)
    assert.equal("payload.station: text is not valid UTF-8", err)
    ok, err = payload.check("fuel", '{"total": 1, "currency": "EUR", "extra": {"k": ["\xed\xa0\x80"]}}')
    assert.equal("payload.extra.k[1]: text is not valid UTF-8", err) -- a surrogate
  end)

  it("renders long escaped values in messages without overrunning (found by fuzzing)", function()
    local ok, err = payload.check("fuel", '"' .. ("\\u0001"):rep(60) .. '"')
    assert.is_nil(ok)
    assert.equal('payload: expected object, got "' .. ("\\u0001"):rep(40) .. '..."', err)
  end)

  -- bench/lua_validator.lua is the peer `make bench` measures the codec
  -- against (lua-cjson's decode, then the rules in Lua): it must give the
  -- codec's verdicts, or the comparison is of unequal work. lua-cjson
  -- decodes {} and [] alike, so texts holding either are left out.
  it("has a faithful peer in the bench's Lua validator (lua-cjson decode + the rules in Lua)", function()
    local ok_cjson, cjson = pcall(require, "cjson")
    if not ok_cjson then return pending("lua-cjson is not installed") end
    local schemas = dofile(H.root .. "/tools/payload_sql.lua").load(
      require("motomind.migrate").sql_directory() .. "/payloads.json")
    local check = dofile(H.root .. "/bench/lua_validator.lua").new(schemas)
    local cases = {}
    for _, case in ipairs(corpus) do cases[#cases + 1] = { case[1], case[2] } end
    for _, case in ipairs(H.generated_payloads(400)) do cases[#cases + 1] = case end
    local disagreements, compared, refused = {}, 0, 0
    for _, case in ipairs(cases) do
      local t, text = case[1], case[2]
      local decoded_ok, decoded = pcall(cjson.decode, text)
      if not text:find("[]", 1, true) and not text:find("{}", 1, true) then
        local c_ok = payload.check(t, text) == true
        local lua_ok = decoded_ok and check(t, decoded) == true
        compared = compared + 1
        if not c_ok then refused = refused + 1 end
        if c_ok ~= lua_ok then disagreements[#disagreements + 1] = ("%s %s: codec %s, Lua %s"):format(t, text,
          tostring(c_ok), tostring(lua_ok)) end
      end
    end
    assert.equal(0, #disagreements, table.concat(disagreements, "\n"))
    assert.is_true(compared > 300 and refused > 50 and refused < compared - 50, "both verdicts compared")
  end)

  it("lists the event types of the schema document", function()
    assert.same({ "damage", "document", "fuel", "inspection", "maintenance", "odometer", "reminder" },
      payload.types())
  end)
end)

describe("payload rules in the database", function()
  local db
  setup(function() db = H.fresh() end)
  teardown(function() H.drop(db) end)

  local function native_declared()
    local declared, err = db:value("SELECT to_regprocedure('payload_problem_native(text,text,jsonb)') IS NOT NULL")
    assert(declared ~= nil, err)
    return declared
  end

  -- The set-based and the row-at-a-time rules must agree with each other,
  -- and with the native ones (the same C in the server) when declared.
  local function db_verdict(type, text)
    local native = native_declared()
    local ok, row = pcall(function()
      return motomind.assert(db:row("SELECT payload_problem($1, $2::jsonb) AS whole, " ..
        "payload_problem_row($1, $2::jsonb) AS one" ..
        (native and ", payload_problem_native(payload_document(), $1, $2::jsonb) AS native" or ""), type, text))
    end)
    if not ok then return "refused by the server: " .. tostring(row) end
    assert.equal(row.whole, row.one, text)
    if native then assert.equal(row.whole, row.native, text) end
    return row.whole ~= motomind.null and row.whole or nil
  end

  it("run in C inside the server when its library is installed", function()
    assert.equal(H.pg_library_installed(), native_declared(), "payload_problem_native declared iff motomind_pg is installed")
  end)

  -- The server reads a payload's numbers from their decimal text as the
  -- client's cJSON does (strtod), the short ones by a fast path that must
  -- give the same double: at the rules' bounds the client, the SQL rules
  -- and the native ones agree. (Not within a double's rounding of a bound:
  -- the SQL rules compare decimals exactly, docs/design.md.)
  it("read numbers at the rules' bounds as the client does", function()
    if not native_declared() then return pending(H.NO_LIBRARY) end
    local cases = {
      { "fuel", '{"volume": %s, "unit": "l"}', { "0", "0.0", "-0.0", "0.1", "1e-300", "0.000000000000000000001",
        "99999.99999999999", "99999.999999999999999", "100000", "100000.0", "100000.00000000001",
        "1e5", "100001", "0.30000000000000004", "123456789012345.6" } },
      { "odometer", '{"source": "manual", "ocr_confidence": %s}', { "50", "50.0", "50.5", "-0", "0.1", "-1",
        "100.00000000000001", "99.99999999999999", "1e2" } },
    }
    local refused = 0
    for _, case in ipairs(cases) do
      for _, n in ipairs(case[3]) do
        local text = case[2]:format(n)
        local _, c_err = payload.check(case[1], text)
        assert.equal(c_err, db_verdict(case[1], text), text)
        refused = refused + (c_err and 1 or 0)
      end
    end
    assert.is_true(refused >= 6, "the bounds refuse some of them")
  end)

  -- The trigger passes the document as a constant, compiled once per
  -- statement; a document that differs from row to row is honoured row by row.
  it("run natively under the document each call passes", function()
    if not native_declared() then return pending(H.NO_LIBRARY) end
    local rows = motomind.assert(db:query("SELECT payload_problem_native(CASE WHEN g % 2 = 0 THEN " ..
      "payload_document() ELSE '{\"fuel\": {\"fields\": {\"volume\": {\"type\": \"string\"}}}}' END, " ..
      "'fuel', '{\"volume\": 3}') AS problem FROM generate_series(1, 4) g ORDER BY g"))
    assert.same({ "payload.volume: expected string, got 3", "payload.volume: needs payload.unit",
      "payload.volume: expected string, got 3", "payload.volume: needs payload.unit" },
      { rows[1].problem, rows[2].problem, rows[3].problem, rows[4].problem })
  end)

  -- requires and any_of are compiled to the fields they name: each still
  -- decides as its list says (an empty any_of refuses every object, as the
  -- generated SQL's ?| of no names does).
  it("run requires and any_of natively by the fields they name", function()
    if not native_declared() then return pending(H.NO_LIBRARY) end
    local doc = '{"t": {"fields": {"a": {"type": "number", "requires": ["c", "b"]}, "b": {"type": "number"}, ' ..
      '"c": {"type": "number"}}, "any_of": ["c", "b"]}, "u": {"fields": {"a": {"type": "number"}}, "any_of": []}}'
    local function problem(type, payload)
      return motomind.assert(db:value("SELECT coalesce(payload_problem_native($1, $2, $3::jsonb), 'ok')", doc, type, payload))
    end
    assert.equal("payload.a: needs payload.c", problem("t", '{"a": 1, "b": 2}'))
    assert.equal("payload.a: needs payload.b", problem("t", '{"a": 1, "c": 2}'))
    assert.equal("ok", problem("t", '{"a": 1, "b": 2, "c": 3}'))
    assert.equal("ok", problem("t", '{"b": 2}'))
    assert.equal("payload: needs one of c, b", problem("t", '{}'))
    assert.equal("payload: needs one of ", problem("u", '{"a": 1}'))
  end)

  -- The native rules allocate each row's tree in a context reset before the
  -- next row: a million checks (valid and refused) leave the server process's
  -- private memory where the first run left it. Read from /proc, so only
  -- when the server runs on this machine (as the suite's own cluster does).
  it("run natively without growing the server's memory", function()
    if not native_declared() then return pending(H.NO_LIBRARY) end
    local pid = motomind.assert(db:value("SELECT pg_backend_pid()"))
    local function private_kb()
      local status = H.read(("/proc/%d/status"):format(pid))
      return status and tonumber(status:match("RssAnon:%s*(%d+)"))
    end
    if not private_kb() then return pending("the server's /proc is not readable here (another machine's server)") end
    local sql = "SELECT count(payload_problem_native(payload_document(), 'fuel', jsonb_build_object(" ..
      "'volume', g % 90 + 1, 'unit', 'l', 'currency', CASE WHEN g % 3 = 0 THEN 'eur' ELSE 'EUR' END, " ..
      "'total', g * 1.5, 'station', repeat('x', g % 50), 'extra', jsonb_build_object('n', g, 'tags', '[1, 2]'::jsonb))))" ..
      "::int FROM generate_series(1, 250000) g"
    assert.equal(math.floor(250000 / 3), motomind.assert(db:value(sql)))
    local before = private_kb()
    for _ = 1, 4 do motomind.assert(db:value(sql)) end
    assert.is_true(private_kb() - before < 4096, ("the server grew by %d kB"):format(private_kb() - before))
  end)

  -- The insert trigger: the native rules while declared, the SQL ones once
  -- they are dropped; the same refusal either way, the good row let in.
  it("refuse a bad payload on insert the same way natively and in SQL", function()
    local t, v = H.tenant_with_vehicle(db)
    local function insert(at, body)
      return db:exec("INSERT INTO vehicle_events (tenant_id, vehicle_id, type, occurred_at, payload) " ..
        "SELECT $1, $2, 'fuel', $3::timestamptz + g * interval '1 day', $4::jsonb FROM generate_series(1, 20) g",
        t, v, at, body)
    end
    local bad = '{"volume": 40, "unit": "l", "currency": "usd", "total": 60}'
    local outcomes = {}
    for round, at in ipairs { "2024-01-01T00:00:00Z", "2024-03-01T00:00:00Z" } do
      if round == 2 and native_declared() then
        motomind.assert(db:exec("DROP FUNCTION payload_problem_native(text, text, jsonb)"))
      end
      local ok, err, code = insert(at, bad)
      outcomes[round] = { ok, err, code }
      motomind.assert(insert(at, '{"volume": 40, "unit": "l", "currency": "USD", "total": 60}'))
    end
    assert.is_nil(outcomes[1][1])
    assert.equal("23514", outcomes[1][3])
    assert.matches("payload.currency: expected ISO 4217 currency code, got \"usd\"", outcomes[1][2], 1, true)
    assert.same(outcomes[1], outcomes[2])
    assert.is_false(native_declared())
    assert.equal(40, motomind.assert(db:value("SELECT count(*)::int FROM vehicle_events WHERE vehicle_id = $1", v)))
  end)

  it("are generated from the same schema document as the codec", function()
    local out, ok = H.run(H.lua .. " " .. H.root .. "/tools/gen-payload-migration --check")
    assert.is_true(ok, out)
  end)

  it("give the same verdict and message as the C codec on the corpus", function()
    for i, case in ipairs(corpus) do
      local _, c_err = payload.check(case[1], case[2])
      local db_err = db_verdict(case[1], case[2])
      if case[4] then
        assert.is_string(c_err)
        assert.matches("refused by the server", db_err, "case " .. i)
      else
        assert.equal(c_err, db_err, "case " .. i .. ": " .. case[2])
      end
    end
  end)

  -- Seeded random payloads built from the schema, mutated in ways that hit
  -- every rule: both sides must agree on each.
  it("give the same verdict and message as the C codec on generated payloads", function()
    local disagreements, checked, valid = {}, 0, 0
    for _, case in ipairs(H.generated_payloads(400)) do
      local t, text = case[1], case[2]
      local _, c_err = payload.check(t, text)
      local db_err = db_verdict(t, text)
      checked = checked + 1
      if not c_err then valid = valid + 1 end
      if c_err ~= db_err then
        disagreements[#disagreements + 1] = ("%s %s\n  C:  %s\n  DB: %s"):format(t, text, tostring(c_err), tostring(db_err))
      end
    end
    assert.equal(0, #disagreements, table.concat(disagreements, "\n"))
    assert.is_true(valid > 20 and valid < checked - 20, "the generator should produce both verdicts")
  end)
end)
