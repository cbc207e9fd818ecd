rockspec_format = "3.0"
package = "motomind"
version = "scm-1"
source = {
  url = "git+file:///dev/null", -- built from a checkout: luarocks make rockspec/motomind-scm-1.rockspec
}
description = {
  summary = "Vehicle records on PostgreSQL: schema, rules and fast paths (Lua with a C core)",
  detailed = [[
motomind keeps the timeline of cars, motorcycles and fleets (fill-ups, services,
odometer readings, inspections, documents, damage) in PostgreSQL. Its C core
(libpq + cJSON) does connections, typed results and JSON; the database enforces
the rules for every writer.]],
  license = "MIT",
}
dependencies = {
  "lua >= 5.1, < 5.5",
}
external_dependencies = {
  -- found by the Makefile through pkg-config (Debian: libpq-dev, libcjson-dev, libssl-dev)
}
build = {
  type = "make",
  build_target = "build",
  build_variables = {
    CFLAGS = "$(CFLAGS)",
    LUA_INCDIR = "$(LUA_INCDIR)",
  },
  install_variables = {
    LUADIR = "$(LUADIR)",
    LIBDIR = "$(LIBDIR)",
    LUA_INCDIR = "$(LUA_INCDIR)",
  },
  install = {
    bin = { motomind = "bin/motomind" },
  },
}
