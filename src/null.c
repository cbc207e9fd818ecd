/* motomind.null: one userdata per Lua state, distinct from nil, standing for
 * SQL NULL in rows and parameters and for JSON null in documents. */
#include "motomind.h"

void mm_push_null(lua_State *L) {
    lua_getfield(L, LUA_REGISTRYINDEX, MM_NULL_KEY);
}

/* motomind.null, or a NULL light userdata (OpenResty's ngx.null, lua-cjson's
 * cjson.null): both stand for SQL NULL and JSON null. */
int mm_isnull(lua_State *L, int idx) {
    int is;
    idx = mm_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TLIGHTUSERDATA) return lua_touserdata(L, idx) == NULL;
    if (lua_type(L, idx) != LUA_TUSERDATA) return 0;
    mm_push_null(L);
    is = lua_rawequal(L, idx, -1);
    lua_pop(L, 1);
    return is;
}

static int null_tostring(lua_State *L) {
    lua_pushliteral(L, "motomind.null");
    return 1;
}

/* Leaves the sentinel in the registry; creates it only once per state. */
int mm_open_null(lua_State *L) {
    mm_push_null(L);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_newuserdata(L, 1);
        lua_createtable(L, 0, 2);
        lua_pushcfunction(L, null_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_pushliteral(L, "motomind.null");
        lua_setfield(L, -2, "__name");
        lua_setmetatable(L, -2);
        lua_setfield(L, LUA_REGISTRYINDEX, MM_NULL_KEY);
    } else {
        lua_pop(L, 1);
    }
    return 0;
}
