/* Lua 5.1/LuaJIT vs 5.4 differences, in one place. Shims carry an mm_ prefix
 * so they never clash with what the host (e.g. OpenResty) already defines. */
#ifndef MM_COMPAT_H
#define MM_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
#define mm_absindex(L, i) \
    (((i) > 0 || (i) <= LUA_REGISTRYINDEX) ? (i) : lua_gettop(L) + (i) + 1)
#define mm_rawlen(L, i) lua_objlen((L), (i))
/* 5.2 functions LuaJIT adds but Lua 5.1 lacks: with these shims the module
 * built for LuaJIT also loads into lua5.1 (LuaRocks' 5.1 trees run their
 * commands with it). */
static inline void mm_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
    luaL_checkstack(L, nup, "too many upvalues");
    for (; l->name; l++) {
        int i;
        for (i = 0; i < nup; i++) lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}
static inline void mm_setmetatable(lua_State *L, const char *name) {
    luaL_getmetatable(L, name);
    lua_setmetatable(L, -2);
}
#define mm_newlib(L, l) (lua_createtable((L), 0, (int)(sizeof(l) / sizeof((l)[0]) - 1)), mm_setfuncs((L), (l), 0))
#else
#define mm_absindex(L, i) lua_absindex((L), (i))
#define mm_rawlen(L, i) lua_rawlen((L), (i))
#define mm_setfuncs(L, l, n) luaL_setfuncs((L), (l), (n))
#define mm_setmetatable(L, name) luaL_setmetatable((L), (name))
#define mm_newlib(L, l) luaL_newlib((L), (l))
#endif

/* Largest integer a double holds exactly: 2^53. */
#define MM_MAX_EXACT_DOUBLE 9007199254740992.0

#if LUA_VERSION_NUM >= 503
#define MM_HAS_INTEGERS 1
#define mm_isinteger(L, i) lua_isinteger((L), (i))
#else
#define MM_HAS_INTEGERS 0
/* Without an integer subtype, a number is "integral" when it has no fraction
 * and is exactly representable. */
static inline int mm_isinteger(lua_State *L, int i) {
    if (lua_type(L, i) != LUA_TNUMBER) return 0;
    lua_Number n = lua_tonumber(L, i);
    return n == (lua_Number)(long long)n && n <= MM_MAX_EXACT_DOUBLE &&
           n >= -MM_MAX_EXACT_DOUBLE;
}
#endif

#endif
