/* The little file-system access Lua lacks: listing a directory, isatty. */
#include "motomind.h"
#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

static void close_dir(void *d) { closedir((DIR *)d); }

/* listdir(path) -> { names... } (unsorted, without . and ..) | nil, message */
static int l_listdir(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    mm_box *box = mm_box_new(L);
    DIR *d = opendir(path);
    struct dirent *ent;
    int n = 0;
    if (!d) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, strerror(errno));
        return 2;
    }
    mm_box_hold(box, d, close_dir);
    lua_newtable(L);
    while ((ent = readdir(d)) != NULL) {
        if (!strcmp(ent->d_name, ".") || !strcmp(ent->d_name, "..")) continue;
        lua_pushstring(L, ent->d_name);
        lua_rawseti(L, -2, ++n);
    }
    mm_box_release(box);
    return 1;
}

/* isatty(fd) -> boolean: is the file descriptor a terminal? */
static int l_isatty(lua_State *L) {
    lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
    return 1;
}

int mm_open_fs(lua_State *L) {
    lua_pushcfunction(L, l_listdir);
    lua_setfield(L, -2, "listdir");
    lua_pushcfunction(L, l_isatty);
    lua_setfield(L, -2, "isatty");
    return 0;
}
