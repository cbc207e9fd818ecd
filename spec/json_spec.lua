local motomind = require "motomind"
local json = motomind.json
local H = require "spec.helper"

-- A double's text as the encoder writes it: an integer's digits, else
-- "%.15g" when it reads back within an epsilon (cJSON's rule), else "%.17g".
local function printf_text(x)
  if x == math.floor(x) and math.abs(x) < 2 ^ 53 then return ("%d"):format(x) end
  local s = ("%.15g"):format(x)
  local back = tonumber(s)
  if math.abs(back - x) > math.max(math.abs(back), math.abs(x)) * 2.220446049250313e-16 then
    s = ("%.17g"):format(x)
  end
  return s
end

describe("motomind.json", function()
  it("round-trips nested documents, keeping empty arrays as arrays", function()
    local text = '{"a":[],"b":{},"c":[1,2.5,"x",true,null],"d":{"e":[{"f":[]}]}}'
    local v = assert(json.decode(text))
    assert.equal(getmetatable(v.a), json.array_mt)
    assert.equal(motomind.null, v.c[5])
    assert.equal(text, json.encode(v))
  end)

  it("takes OpenResty's and lua-cjson's null (a NULL light userdata) and cjson's empty-array metatable", function()
    local cjson = require "cjson"
    local loaded = package.loaded.cjson
    package.loaded.cjson = { null = cjson.null, empty_array_mt = {} } -- OpenResty's cjson has empty_array_mt
    local ok, text = pcall(motomind.json.encode,
      { a = cjson.null, b = setmetatable({}, package.loaded.cjson.empty_array_mt), c = {} })
    package.loaded.cjson = loaded
    assert.is_true(ok, text)
    assert.equal('{"a":null,"b":[],"c":{}}', text)
    local db = H.connect()
    assert.same({ { n = true } }, db:query("SELECT $1::int IS NULL AS n", cjson.null))
    db:close()
  end)

  it("writes objects with sorted keys, so output is canonical", function()
    assert.equal('{"a":1,"m":2,"z":3}', json.encode { z = 3, a = 1, m = 2 })
  end)

  it("keeps money's cents and integers exact", function()
    assert.equal('{"total":74.33}', json.encode { total = 74.33 })
    assert.equal(74.33, json.decode('{"total":74.33}').total)
    assert.equal("[0.1,1e+300,-3]", json.encode { 0.1, 1e300, -3 })
    if math.type then
      assert.equal("[9007199254740993]", json.encode { 9007199254740993 })
      assert.equal("integer", math.type(json.decode("[42]")[1]))
      -- literals beyond 2^53 are read again from the text, in order (strings skipped)
      local big = json.decode('{"s": "12 -9007199254740993", "a": [1.5, {"b": 9007199254740993}], "c": -9007199254740995}')
      assert.equal(9007199254740993, big.a[2].b)
      assert.equal(-9007199254740995, big.c)
      assert.equal(1.5, big.a[1])
    end
  end)

  -- cJSON printed 15 significant digits when they read back within an
  -- epsilon: integers from 10^15 to 2^53 lost their last digit (2^53 - 1
  -- came out as 9.00719925474099e+15).
  it("writes every integer a double holds exactly, to 2^53", function()
    assert.equal("[9007199254740991,9007199254740992,1000000000000000,-999999999999999]",
      json.encode { 2 ^ 53 - 1, 2 ^ 53, 1e15, -999999999999999.0 })
    assert.equal(2 ^ 53 - 1, json.decode(json.encode { 2 ^ 53 - 1 })[1])
    assert.equal("[-0,0,0.5,1e+16,123.456]", json.encode { -0.0, 0.0, 0.5, 1e16, 123.456 })
  end)

  -- Decimals of up to 6 places are written without printf (src/json.c,
  -- format_short_decimal): the text must be what "%.15g" gives, or "%.17g"
  -- when 15 digits do not read back within an epsilon, as for any double.
  it("writes each double as printf's shortest of 15 or 17 digits", function()
    math.randomseed(17)
    local values = { 0.1, 0.0001, 0.00012, 999999999.999999, -41.37, 1e-5, 123456.7, 0.30000000000000004 }
    for i = 1, 20000 do
      local k = i % 7
      values[#values + 1] = math.random(-10 ^ 9, 10 ^ 9) / 10 ^ k -- money, volumes: a few places
      values[#values + 1] = (math.random() - 0.5) * 10 ^ math.random(-6, 10) -- any double
    end
    for _, x in ipairs(values) do
      local text = json.encode { x }
      assert.equal("[" .. printf_text(x) .. "]", text, ("%.17g"):format(x))
      assert.equal(tonumber(printf_text(x)), json.decode(text)[1])
    end
  end)

  -- json.encode writes text as it walks, without cJSON's printer: its
  -- output must be what a canonical writer (sorted keys, cJSON's escapes)
  -- gives, for any shape.
  it("writes the canonical text of random documents", function()
    math.randomseed(23)
    local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r",
      ["\t"] = "\\t" }
    local function str(s)
      return '"' .. s:gsub('[%c"\\]', function(c)
        return escapes[c] or (c:byte() < 32 and ("\\u%04x"):format(c:byte()) or c)
      end) .. '"'
    end
    local function canonical(v)
      if v == motomind.null then return "null" end
      local t = type(v)
      if t == "boolean" then return tostring(v) end
      if t == "number" then return printf_text(v) end
      if t == "string" then return str(v) end
      if #v > 0 or getmetatable(v) == json.array_mt then
        local parts = {}
        for i, x in ipairs(v) do parts[i] = canonical(x) end
        return "[" .. table.concat(parts, ",") .. "]"
      end
      local keys, parts = {}, {}
      for k in pairs(v) do keys[#keys + 1] = k end
      table.sort(keys)
      for i, k in ipairs(keys) do parts[i] = str(k) .. ":" .. canonical(v[k]) end
      return "{" .. table.concat(parts, ",") .. "}"
    end
    local function random_string()
      local bytes = {}
      for i = 1, math.random(0, 12) do
        local r = math.random()
        bytes[i] = r < 0.2 and math.random(1, 31) or r < 0.3 and ('"\\/'):byte(math.random(3))
          or r < 0.4 and math.random(128, 255) or math.random(32, 126)
      end
      return string.char((table.unpack or unpack)(bytes))
    end
    local function random_value(depth)
      local r = math.random(depth > 3 and 6 or 8)
      if r == 1 then return motomind.null end
      if r == 2 then return math.random() < 0.5 end
      if r == 3 then return math.random(-10 ^ 6, 10 ^ 6) / 10 ^ math.random(0, 3) end
      if r == 4 then return math.random(-2 ^ 31, 2 ^ 31) * 2 ^ math.random(0, 21) end -- (other doubles: above)
      if r <= 6 then return random_string() end
      local t = setmetatable({}, r == 7 and json.array_mt or nil)
      for i = 1, math.random(0, 18) do
        if r == 7 then t[i] = random_value(depth + 1) else t[random_string()] = random_value(depth + 1) end
      end
      return t
    end
    for _ = 1, 500 do
      local v = random_value(0)
      if type(v) == "table" and v[1] == nil then setmetatable(v, nil) end
      assert.equal(canonical(v), json.encode(v))
    end
  end)

  -- The encoder prints into room it sizes while walking (src/json.c): the
  -- worst case is every byte escaped as \u00XX.
  it("escapes strings and keys whatever their length", function()
    local ctl, quotes = ("\1"):rep(5000), ('"\\'):rep(3000)
    local text = assert(json.encode { [ctl] = quotes, list = { ctl, quotes, "\t\n" } })
    assert.equal(("\\u0001"):rep(5000), text:match('^{"(.-)"'))
    assert.same({ [ctl] = quotes, list = { ctl, quotes, "\t\n" } }, json.decode(text))
  end)

  it("names the path and the reason when a value cannot be encoded", function()
    local ok, err = json.encode { parts = { { name = "filter" }, { cost = function() end } } }
    assert.is_nil(ok)
    assert.equal("value.parts[2].cost: cannot encode a function", err)
    ok, err = json.encode { 1, 2, x = 3 }
    assert.is_nil(ok)
    assert.matches("mixes array and object keys", err)
    assert.matches("NaN or infinity", select(2, json.encode { 0 / 0 }))
    assert.matches("NUL byte", select(2, json.encode { "a\0b" }))
  end)

  it("refuses nesting deeper than its limit instead of overflowing", function()
    local t = {}
    local cur = t
    for _ = 1, 600 do cur.x = {} cur = cur.x end
    local ok, err = json.encode(t)
    assert.is_nil(ok)
    assert.matches("nested too deeply", err)
  end)

  it("reports where invalid JSON breaks, and rejects trailing garbage", function()
    local v, err = json.decode('{"a": 1,, "b": 2}')
    assert.is_nil(v)
    -- cJSON stops just past the stray comma (byte 9).
    local at = tonumber(err:match("^invalid JSON at byte (%d+)$"))
    assert.is_true(at == 9 or at == 10, err)
    assert.is_nil((json.decode('{"a":1} x')))
    assert.same({ a = 1 }, json.decode('  {"a":1}\n '))
    assert.has_error(function() json.decode(nil) end)
  end)

  -- A decode parses into an arena (src/json.c): a tree larger than its first
  -- block, a partial tree cJSON frees when the text breaks half way, and a
  -- whole tree followed by garbage must each be freed once and only once
  -- (the valgrind pass of the suite runs this spec).
  it("decodes texts of any size and frees the trees of texts it refuses", function()
    local items = {}
    for i = 1, 2000 do items[i] = ('{"n":%d,"s":"item %d"}'):format(i, i) end
    local big = "[" .. table.concat(items, ",") .. "]"
    local v = assert(json.decode(big))
    assert.equal(2000, #v)
    assert.same({ n = 1234, s = "item 1234" }, v[1234])
    local v2, err = json.decode(big:sub(1, math.floor(#big / 2)))
    assert.is_nil(v2)
    assert.matches("^invalid JSON at byte %d+$", err)
    assert.is_nil((json.decode(big .. " ]")))
    assert.matches("NUL", select(2, json.decode('[' .. big .. ', "\\u0000"]')))
  end)

  -- Decodes and encodes reuse one arena per Lua state. Building a decoded
  -- value's tables can run a finalizer (a collection step), and one that
  -- decodes or encodes must not overwrite the tree being pushed.
  it("decodes right when finalizers decode and encode in the middle of it", function()
    local items = {}
    for i = 1, 20000 do items[i] = ('{"n":%d,"s":"item %d","a":[%d,true,null]}'):format(i, i, i) end
    local big = "[" .. table.concat(items, ",") .. "]"
    local decoding, during = false, 0
    local function finalizer()
      if decoding then during = during + 1 end
      assert(json.decode('{"inner":["x","y"],"z":0.5}').inner[2] == "y")
      assert(json.encode({ k = { 1, 2, 3 } }) == '{"k":[1,2,3]}')
    end
    local v
    for _ = 1, 20 do -- (until a collection step ran finalizers during the decode)
      for _ = 1, 200 do
        if newproxy then getmetatable(newproxy(true)).__gc = finalizer -- (LuaJIT: tables have no __gc)
        else setmetatable({}, { __gc = finalizer }) end
      end
      decoding = true
      v = assert(json.decode(big))
      decoding = false
      if during > 0 then break end
    end
    assert.is_true(during > 0, "no finalizer ran during a decode")
    assert.equal(20000, #v)
    for i = 1, 20000, 997 do assert.same({ n = i, s = "item " .. i, a = { i, true, motomind.null } }, v[i]) end
    assert.same({ n = 20000, s = "item 20000", a = { 20000, true, motomind.null } }, v[20000])
  end)
end)
