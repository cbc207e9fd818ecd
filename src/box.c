/* Owned C allocations as Lua userdata: created empty, then filled, freed by
 * an explicit release or by __gc, whichever comes first. */
#include "motomind.h"

mm_box *mm_box_new(lua_State *L) {
    mm_box *box = (mm_box *)lua_newuserdata(L, sizeof *box);
    box->ptr = NULL;
    box->free = NULL;
    mm_setmetatable(L, MM_BOX_MT);
    return box;
}

void mm_box_hold(mm_box *box, void *ptr, mm_free_fn free) {
    box->ptr = ptr;
    box->free = free;
}

void mm_box_release(mm_box *box) {
    if (box->ptr && box->free) box->free(box->ptr);
    box->ptr = NULL;
    box->free = NULL;
}

static int box_gc(lua_State *L) {
    mm_box_release((mm_box *)luaL_checkudata(L, 1, MM_BOX_MT));
    return 0;
}

int mm_open_box(lua_State *L) {
    if (luaL_newmetatable(L, MM_BOX_MT)) {
        lua_pushcfunction(L, box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    return 0;
}
