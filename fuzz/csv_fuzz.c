/* libFuzzer target for the CSV importer (src/csv.c: the streaming reader,
 * number and date parsing, the mapping to events): the first byte picks one
 * of the apps' specs from lua/motomind/formats.lua, the rest is the file.
 * Whatever the input: no crash, leak or undefined behaviour, and every event
 * it yields is a JSON object. */
#include "../src/import.h"
#include <lualib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const NAMES[] = {"fuelly", "fuelly-services", "lubelogger-fuel", "lubelogger-service",
                                    "lubelogger-odometer", "fuelio", "spritmonitor"};
#define NSPECS ((int)(sizeof NAMES / sizeof NAMES[0]))

static lua_State *L;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Builds each format's spec once (with its default options) into the registry. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    int i;
    (void)argc;
    (void)argv;
    L = luaL_newstate();
    luaL_openlibs(L);
    mm_open_box(L);
    if (luaL_dofile(L, "lua/motomind/formats.lua")) {
        fprintf(stderr, "%s\n", lua_tostring(L, -1));
        exit(1);
    }
    lua_newtable(L);
    for (i = 0; i < NSPECS; i++) {
        lua_getfield(L, 1, NAMES[i]);
        lua_getfield(L, -1, "spec");
        lua_newtable(L);
        lua_call(L, 1, 1);
        lua_rawseti(L, 2, i + 1);
        lua_pop(L, 1);
    }
    lua_setfield(L, LUA_REGISTRYINDEX, "fuzz.specs");
    lua_settop(L, 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *f;
    mm_source *src;
    mm_item item;
    int r;
    if (size < 2) return 0;
    f = fmemopen((void *)(data + 1), size - 1, "rb");
    if (!f) return 0;
    lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.specs");
    lua_rawgeti(L, -1, data[0] % NSPECS + 1);
    src = mm_csv_source(L, -1, f);
    do {
        memset(&item, 0, sizeof item);
        r = src->next(src, &item);
        if (item.event) {
            if (!cJSON_IsObject(item.event)) abort();
            cJSON_Delete(item.event);
        }
    } while (r > 0);
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT, 0); /* frees the source */
    fclose(f);
    return 0;
}
