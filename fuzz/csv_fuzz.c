/* libFuzzer target for the CSV importer (src/csv.c: the spec compiler, the
 * streaming reader, number and date parsing, the mapping to events): the
 * first byte picks one of the apps' specs from lua/motomind/formats.lua;
 * when its high bit is set, the next bytes mutate a copy of that spec
 * (keys and values of any Lua type put anywhere in it) before it is
 * compiled; the rest is the file. The payload schemas (sql/payloads.json)
 * are given, so the header's payload check runs too. Whatever the input: no
 * crash, leak or undefined behaviour, a bad spec is a Lua error, and every
 * event it yields is a JSON object. */
#include "../src/import.h"
#include "schemas.h"
#include <lualib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char *const NAMES[] = {"fuelly", "fuelly-services", "lubelogger-fuel", "lubelogger-service",
                                    "lubelogger-odometer", "fuelio", "spritmonitor"};
#define NSPECS ((int)(sizeof NAMES / sizeof NAMES[0]))

static lua_State *L;
static mm_schemas *schemas;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Builds each format's spec once (with its default options) into the registry. */
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    int i;
    (void)argc;
    (void)argv;
    schemas = fuzz_load_schemas();
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

typedef struct input {
    const uint8_t *p;
    size_t n;
} input;

static int byte(input *in) {
    if (!in->n) return 0;
    in->n--;
    return *in->p++;
}

/* Pushes a value of any kind the bytes say: nil, booleans, integers,
 * fractions, short strings (often a key the compiler knows), small tables. */
static void push_value(input *in, int depth) {
    static const char *const WORDS[] = {"names", "to", "as", "map", "set", "required", "columns", "type",
                                        "name", "sections", "separator", "dates", "1.5", "payload.full"};
    int kind = byte(in) % 8, n, i;
    char text[16];
    switch (kind) {
    case 0: lua_pushnil(L); break;
    case 1: lua_pushboolean(L, byte(in) & 1); break;
    case 2: lua_pushinteger(L, byte(in) - 64); break;
    case 3: lua_pushnumber(L, (byte(in) - 64) / 4.0); break;
    case 4: lua_pushstring(L, WORDS[byte(in) % (sizeof WORDS / sizeof WORDS[0])]); break;
    case 5:
        n = byte(in) % (int)sizeof text;
        for (i = 0; i < n; i++) text[i] = (char)byte(in);
        lua_pushlstring(L, text, (size_t)n);
        break;
    default:
        lua_newtable(L);
        if (depth > 3) break;
        for (n = byte(in) % 4; n > 0; n--) {
            push_value(in, depth + 1);
            if (lua_isnil(L, -1)) { lua_pop(L, 1); continue; }
            push_value(in, depth + 1);
            lua_rawset(L, -3);
        }
    }
}

/* A deep copy of the table at idx (the registry's specs stay intact). */
static void push_copy(int idx, int depth) {
    idx = lua_absindex(L, idx);
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pushvalue(L, -2);
        if (lua_istable(L, -2) && depth < 8) push_copy(-2, depth + 1);
        else lua_pushvalue(L, -2);
        lua_rawset(L, -5);
        lua_pop(L, 1);
    }
}

/* Sets table[key] = value somewhere in the spec at the top: walks down
 * through existing table values as the bytes say, then assigns. */
static void mutate(input *in) {
    int top = lua_gettop(L), steps = byte(in) % 4;
    lua_pushvalue(L, top);
    while (steps-- > 0) {
        int pick = byte(in) % 8, k = 0;
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_istable(L, -1) && k++ == pick) break;
            lua_pop(L, 1);
        }
        if (lua_gettop(L) == top + 1) break; /* no table there */
        lua_remove(L, -2);                    /* the key */
        lua_remove(L, -2);                    /* the parent */
    }
    push_value(in, 1);
    if (lua_isnil(L, -1)) push_value(in, 1), lua_remove(L, -2);
    if (!lua_isnil(L, -1)) {
        push_value(in, 1);
        lua_rawset(L, -3);
    } else {
        lua_pop(L, 1);
    }
    lua_settop(L, top);
}

static int compile(lua_State *S) {
    FILE *f = (FILE *)lua_touserdata(S, 2);
    mm_csv_source(S, 1, f, schemas);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    FILE *f;
    mm_source *src;
    mm_item item;
    input in = {data + 1, size > 0 ? size - 1 : 0};
    int r, m;
    if (size < 2) return 0;
    lua_getfield(L, LUA_REGISTRYINDEX, "fuzz.specs");
    lua_rawgeti(L, -1, data[0] % NSPECS + 1);
    if (data[0] & 0x80) {
        push_copy(-1, 0);
        for (m = byte(&in) % 8; m > 0; m--) mutate(&in);
    }
    /* the spec's mutations may take every byte: an empty file then (a size
     * of 1 here read one byte past the input, which crashed CI once) */
    f = fmemopen((void *)in.p, in.n, "rb");
    if (!f) {
        lua_settop(L, 0);
        return 0;
    }
    lua_pushcfunction(L, compile);
    lua_insert(L, -2);
    lua_pushlightuserdata(L, f);
    if (lua_pcall(L, 2, 1, 0) != 0) { /* a bad spec: refused with a message */
        if (!lua_isstring(L, -1)) abort();
    } else {
        src = (mm_source *)((mm_box *)lua_touserdata(L, -1))->ptr;
        do {
            memset(&item, 0, sizeof item);
            r = src->next(src, &item);
            if (item.event) {
                if (!cJSON_IsObject(item.event)) abort();
                cJSON_Delete(item.event);
            }
        } while (r > 0);
    }
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT, 0); /* frees the source */
    fclose(f);
    return 0;
}
