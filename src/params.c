/* Lua values -> text-format query parameters. Values are only ever bound,
 * never spliced into SQL. */
#include "motomind.h"
#include "text.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A float parameter: its shortest exact text (or PostgreSQL's NaN/Infinity). */
static void push_float(lua_State *L, double d) {
    char buf[40];
    if (isnan(d)) { lua_pushliteral(L, "NaN"); return; }
    if (isinf(d)) { lua_pushstring(L, d > 0 ? "Infinity" : "-Infinity"); return; }
    mm_shortest_double(d, buf, sizeof buf);
    lua_pushstring(L, buf);
}

static void push_number(lua_State *L, int i) {
#if MM_HAS_INTEGERS
    if (lua_isinteger(L, i)) {
        lua_pushfstring(L, "%I", lua_tointeger(L, i));
        return;
    }
#endif
    push_float(L, (double)lua_tonumber(L, i));
}

/* Replaces each value first..last on the stack by its text (or leaves a nil
 * for SQL NULL) and pushes a userdata holding the pointer array, which the
 * caller passes to libpq and pops afterwards. Misuse raises, naming $N. */
const char **mm_params(lua_State *L, int first, int last) {
    int i, n = last - first + 1;
    const char **values;
    size_t len;
    if (n > 65535) luaL_error(L, "too many parameters (%d, at most 65535)", n);
    for (i = first; i <= last; i++) {
        int t = lua_type(L, i);
        if (t == LUA_TNIL || mm_isnull(L, i)) {
            lua_pushnil(L);
        } else if (t == LUA_TBOOLEAN) {
            lua_pushstring(L, lua_toboolean(L, i) ? "true" : "false");
        } else if (t == LUA_TNUMBER) {
            push_number(L, i);
        } else if (t == LUA_TSTRING) {
            const char *s = lua_tolstring(L, i, &len);
            if (strlen(s) != len) {
                lua_pushfstring(L, "parameter $%d contains a NUL byte", i - first + 1);
                luaL_argerror(L, i, lua_tostring(L, -1));
            }
            lua_pushvalue(L, i);
        } else if (t == LUA_TTABLE) {
            lua_pushfstring(L, "parameter $%d", i - first + 1);
            if (!mm_json_encode(L, i, lua_tostring(L, -1)))
                luaL_argerror(L, i, lua_tostring(L, -1));
            lua_remove(L, -2);
        } else {
            lua_pushfstring(L, "cannot bind a %s as parameter $%d",
                            luaL_typename(L, i), i - first + 1);
            luaL_argerror(L, i, lua_tostring(L, -1));
        }
        lua_replace(L, i);
    }
    values = (const char **)lua_newuserdata(L, (n > 0 ? n : 1) * sizeof *values);
    for (i = 0; i < n; i++) values[i] = lua_tostring(L, first + i);
    return values;
}
