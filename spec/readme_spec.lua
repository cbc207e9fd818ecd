local H = require "spec.helper"

-- The README's Lua example must run as written and print what it says.
describe("README", function()
  it("has a Lua example that runs and prints what its comments promise", function()
    local f = assert(io.open(H.root .. "/README.md"))
    local text = f:read("*a")
    f:close()
    local code = text:match("```lua\n(.-)```")
    assert.is_string(code)
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
end)
