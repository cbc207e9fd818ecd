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

  it("lists the event types of the schema document", function()
    assert.same({ "damage", "document", "fuel", "inspection", "maintenance", "odometer", "reminder" },
      payload.types())
  end)
end)

describe("payload rules in the database", function()
  local db
  setup(function() db = H.fresh() end)
  teardown(function() H.drop(db) end)

  -- The set-based and the row-at-a-time rules must agree with each other too.
  local function db_verdict(type, text)
    local ok, row = pcall(function()
      return motomind.assert(db:row("SELECT payload_problem($1, $2::jsonb) AS whole, " ..
        "payload_problem_row($1, $2::jsonb) AS one", type, text))
    end)
    if not ok then return "refused by the server: " .. tostring(row) end
    assert.equal(row.whole, row.one, text)
    return row.whole ~= motomind.null and row.whole or nil
  end

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
    local schemas = dofile(H.root .. "/tools/payload_sql.lua").load(
      require("motomind.migrate").sql_directory() .. "/payloads.json")
    local seed = 12345
    local function rand(n) seed = seed * 48271 % 2147483647 return seed % n + 1 end
    local samples = { 0, -1, 0.5, 1e7, 12.25, 101, "", "USD", "usd", "pass", "2024-02-29", "2023-02-29",
      "s3://b/k", "no url", true, false, motomind.null, { a = 1 }, setmetatable({}, motomind.json.array_mt),
      ("z"):rep(210) }
    local function value(spec, depth)
      if depth > 0 and (rand(6) == 1 or depth > 3) then return samples[rand(#samples)] end
      local t = spec.type
      if t == "number" or t == "integer" then return (spec.min or 0) + rand(100) end
      if t == "string" then
        if spec.enum then return spec.enum[rand(#spec.enum)] end
        if spec.format == "currency" then return "EUR" end
        if spec.format == "url" then return "https://x.example/" .. rand(99) end
        return ("s"):rep(rand(8))
      end
      if t == "boolean" then return rand(2) == 1 end
      if t == "date" then return ("20%02d-%02d-%02d"):format(rand(30), rand(12), rand(28)) end
      if t == "array" then
        local a = setmetatable({}, motomind.json.array_mt)
        for k = 1, rand(3) - 1 do a[k] = value(spec.items, depth + 1) end
        return a
      end
      local o = {}
      for name, f in pairs(spec.fields) do
        if rand(3) > 1 then o[name] = value(f, depth + 1) end
      end
      if rand(10) == 1 then o["unknown_" .. rand(3)] = 1 end
      return o
    end
    local types = payload.types()
    local disagreements, checked, valid = {}, 0, 0
    for _ = 1, 400 do
      local t = types[rand(#types)]
      local p = value({ type = "object", fields = schemas[t].fields }, 0)
      if rand(8) == 1 then p.extra = samples[rand(#samples)] end
      local text = assert(motomind.json.encode(p))
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
