/* motomind.core: opens the C parts into one module table. */
#include "motomind.h"

#ifndef MOTOMIND_VERSION
#define MOTOMIND_VERSION "scm"
#endif

LUALIB_API int luaopen_motomind_core(lua_State *L) {
    mm_open_box(L);
    mm_open_null(L);
    lua_newtable(L);
    mm_open_conn(L);
    mm_open_copy(L);
    mm_open_import(L);
    mm_open_json(L);
    mm_open_fs(L);
    mm_open_codec(L);
    mm_open_notify(L);
    mm_open_hmac(L);
    mm_push_null(L);
    lua_setfield(L, -2, "null");
    lua_pushliteral(L, MOTOMIND_VERSION);
    lua_setfield(L, -2, "version");
    return 1;
}
