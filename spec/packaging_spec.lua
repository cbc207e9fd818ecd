local H = require "spec.helper"

-- Builds and installs the rock into a temporary tree for LuaJIT and Lua 5.4,
-- then loads it from that tree alone (outside the source tree). Run once, in
-- the Lua 5.4 pass: it exercises both interpreters itself.
if not jit then
  describe("the rockspec", function()
    local tree, work

    setup(function()
      tree = os.tmpname() os.remove(tree)
      work = os.tmpname() os.remove(work)
      -- A clean copy of the sources, as a user would build them.
      local out, ok = H.run(("mkdir -p %s && cd %s && cp -r Makefile src lua sql bin rockspec tools %s")
        :format(work, H.shell_quote(H.root), work))
      assert(ok, out)
    end)
    teardown(function() os.execute("rm -rf " .. tree .. " " .. work) end)

    local function install(version, extra)
      local out, ok = H.run(("cd %s && luarocks --lua-version %s make rockspec/motomind-scm-1.rockspec --tree %s %s")
        :format(work, version, tree, extra or ""))
      assert.is_true(ok, out)
    end

    local function load_from_tree(lua, version)
      return H.run(("cd / && unset LUA_PATH LUA_CPATH MOTOMIND_MIGRATIONS MOTOMIND_SQL && eval \"$(luarocks --lua-version %s path --tree %s)\" && " ..
        "LUA_PATH=\"$LUA_PATH\" %s -e 'local m = require \"motomind\"; " ..
        "local mig = require \"motomind.migrate\"; " ..
        "print(m.version, #mig.load() > 0, (package.path .. mig.directory()):find(%q, 1, true) == nil)'")
        :format(version, tree, lua, H.root))
    end

    it("installs the module, its SQL and the command, usable from the tree alone", function()
      install("5.1", "LUA_INCDIR=/usr/include/luajit-2.1")
      -- the 5.1 tree's command (LuaRocks runs it with lua5.1): the module
      -- built for LuaJIT loads there too (no LuaJIT-only C API)
      local cmd, cmd_ok = H.run("cd / && unset LUA_PATH LUA_CPATH MOTOMIND_MIGRATIONS && " .. tree .. "/bin/motomind version")
      assert.is_true(cmd_ok, cmd)
      assert.equal("motomind scm\n", cmd)
      install("5.4")
      local out, ok = load_from_tree("luajit", "5.1")
      assert.is_true(ok, out)
      assert.equal("scm\ttrue\ttrue\n", out)
      out, ok = load_from_tree("lua5.4", "5.4")
      assert.is_true(ok, out)
      assert.equal("scm\ttrue\ttrue\n", out)
      out, ok = H.run(tree .. "/bin/motomind version")
      assert.is_true(ok, out)
      assert.equal("motomind scm\n", out)
    end)
  end)
end

describe("the benchmarks' clock (bench/common.lua)", function()
  local common = require "bench.common"

  it("adds no time of its own to what it measures", function()
    -- (it once spawned `date` per reading: ~3 ms on every timing)
    local lat = {}
    for i = 1, 21 do lat[i] = common.timed(function() end) end
    table.sort(lat)
    assert.is_true(lat[11] < 0.0005, ("an empty function timed at %.3f ms"):format(lat[11] * 1000))
  end)

  it("reads the wall clock, not CPU time", function()
    local elapsed = common.timed(function() os.execute("sleep 0.2") end)
    assert.is_true(elapsed > 0.15 and elapsed < 5, tostring(elapsed))
  end)
end)
