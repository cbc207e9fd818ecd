local H = require "spec.helper"

-- The README's Lua example must run as written and print what it says.
describe("README", function()
  local f = assert(io.open(H.root .. "/README.md"))
  local text = f:read("*a")
  f:close()

  local blocks = {}
  for code in text:gmatch("```lua\n(.-)```") do blocks[#blocks + 1] = code end

  it("has Lua examples", function() assert.is_true(#blocks >= 2) end)

  for n, code in ipairs(blocks) do
  it("example " .. n .. " runs and prints what its comments promise", function()
    local printed = {}
    local env = setmetatable({ print = function(...)
      local parts = {}
      for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
      printed[#printed + 1] = table.concat(parts, "  ")
    end }, { __index = _G })
    local chunk = assert((loadstring or load)(code, "README", "t", env))
    if setfenv then setfenv(chunk, env) end
    chunk()
    local expected = {}
    for line in code:gmatch("%-%-> ([^\n]*)") do expected[#expected + 1] = line end
    assert.equal(#expected, #printed)
    for i, want in ipairs(expected) do assert.equal(want, printed[i]) end
  end)
  end

  it("shows a CSV layout that imports the line it describes", function()
    local json = assert(text:match("```json\n(.-)```"), "no JSON layout example")
    local line = assert(text:match("with `([^`]+)`:\n\n%s*```json"), "no sample line before the layout")
    local header = assert(text:match("a fuel log\n?%s*`([^`]+)` with `"), "no sample header before the layout")
    local motomind = require "motomind"
    local layout = require("motomind.layout").check(assert(motomind.json.decode(json)))
    local db, tenant, car, user = H.fresh_tenant()
    local path = H.write_temp(header .. "\n" .. line .. "\n")
    local report = assert(db:import(path, { tenant = tenant, user = user, vehicle = car, format = layout }))
    os.remove(path)
    assert.same({ 1, 1 }, { report.records, report.inserted })
    local e = assert(db:row("SELECT mileage::float8 AS km, payload FROM vehicle_events WHERE vehicle_id = $1", car))
    assert.same({ 2000, 38.5, 70.1, "EUR", true }, { e.km, e.payload.volume, e.payload.total, e.payload.currency,
      e.payload.full })
    H.drop(db)
  end)

  it("documents every field of every event type", function()
    local schemas = dofile(H.root .. "/tools/payload_sql.lua").load(H.root .. "/sql/payloads.json")
    local function walk(fields)
      for name, spec in pairs(fields) do
        assert.is_truthy(text:find("`" .. name .. "`", 1, true), "README does not mention " .. name)
        if spec.fields then walk(spec.fields) end
        if spec.items and spec.items.fields then walk(spec.items.fields) end
        for _, v in ipairs(spec.enum or {}) do
          assert.is_truthy(text:find("`" .. v .. "`", 1, true), "README does not mention " .. v)
        end
      end
    end
    for t, spec in pairs(schemas) do
      assert.is_truthy(text:find("| `" .. t .. "` |", 1, true), "README has no row for " .. t)
      walk(spec.fields)
    end
  end)
end)
