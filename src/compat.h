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
#else
#define mm_absindex(L, i) lua_absindex((L), (i))
#define mm_rawlen(L, i) lua_rawlen((L), (i))
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
