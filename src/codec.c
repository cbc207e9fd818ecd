/* motomind.PayloadCodec: the payload schemas as a Lua object (no global
 * state: each Lua state holds its own). decode/encode/check validate a JSON
 * text or a Lua table as an event payload of a type. */
#include "motomind.h"
#include "payload.h"
#include "event.h"

#define MM_CODEC_MT "motomind.PayloadCodec"
#define ERR_MAX 1024

typedef struct mm_codec {
    mm_schemas *schemas;
} mm_codec;

static mm_codec *check_codec(lua_State *L) {
    return (mm_codec *)luaL_checkudata(L, 1, MM_CODEC_MT);
}

/* The schemas of the codec at idx, for the other parts of the core. */
const mm_schemas *mm_codec_schemas(lua_State *L, int idx) {
    mm_codec *c = (mm_codec *)luaL_checkudata(L, idx, MM_CODEC_MT);
    return c->schemas;
}

/* payload_codec(schema_json) -> codec | nil, message */
static int l_new(lua_State *L) {
    size_t len;
    const char *json = luaL_checklstring(L, 1, &len);
    mm_codec *c = (mm_codec *)lua_newuserdata(L, sizeof *c);
    char err[ERR_MAX];
    c->schemas = NULL;
    mm_setmetatable(L, MM_CODEC_MT);
    c->schemas = mm_schemas_parse(json, len, err, sizeof err);
    if (!c->schemas) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

static int l_gc(lua_State *L) {
    mm_codec *c = check_codec(L);
    mm_schemas_free(c->schemas);
    c->schemas = NULL;
    return 0;
}

/* Leaves a box holding the validated, normalized tree of argument 3 on the
 * stack and returns the tree; or pushes the error message and returns NULL. */
static cJSON *checked(lua_State *L) {
    mm_codec *c = check_codec(L);
    const char *type = luaL_checkstring(L, 2);
    int t = lua_type(L, 3);
    size_t len;
    char err[ERR_MAX];
    mm_box *box;
    if (t != LUA_TSTRING && t != LUA_TTABLE) luaL_argerror(L, 3, "JSON text or table expected");
    box = mm_box_new(L);
    if (t == LUA_TSTRING) {
        const char *s = lua_tolstring(L, 3, &len);
        if (!mm_json_parse(L, s, len, "payload", box)) return NULL;
    } else if (!mm_json_build(L, 3, "payload", box)) {
        return NULL;
    }
    if (!mm_payload_check(c->schemas, type, (cJSON *)box->ptr, err, sizeof err)) {
        lua_pushstring(L, err);
        return NULL;
    }
    return (cJSON *)box->ptr;
}

static int failed(lua_State *L) {
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}

/* codec:decode(type, json_or_table) -> normalized table | nil, message */
static int l_decode(lua_State *L) {
    cJSON *tree = checked(L);
    if (!tree) return failed(L);
    mm_json_push(L, tree);
    return 1;
}

/* codec:encode(type, table_or_json) -> canonical JSON text | nil, message */
static int l_encode(lua_State *L) {
    cJSON *tree = checked(L);
    if (!tree) return failed(L);
    mm_json_push_text(L, tree);
    return 1;
}

/* codec:check(type, json_or_table) -> true | nil, message */
static int l_check(lua_State *L) {
    if (!checked(L)) return failed(L);
    lua_pushboolean(L, 1);
    return 1;
}

/* codec:check_event(table_or_json [, vehicle]) -> the event, its payload
 * normalized | nil, message: the importer's check of an event's shape
 * (event.c), times with a zone. */
static int l_check_event(lua_State *L) {
    mm_codec *c = check_codec(L);
    int t = lua_type(L, 2);
    const char *vehicle = luaL_optstring(L, 3, NULL), *why;
    size_t len;
    char err[ERR_MAX];
    mm_event_texts texts;
    mm_box *box;
    if (t != LUA_TSTRING && t != LUA_TTABLE) luaL_argerror(L, 2, "JSON text or table expected");
    box = mm_box_new(L);
    if (t == LUA_TSTRING) {
        const char *s = lua_tolstring(L, 2, &len);
        if (!mm_json_parse(L, s, len, "event", box)) return failed(L);
    } else if (!mm_json_build(L, 2, "event", box)) {
        return failed(L);
    }
    why = mm_event_check(c->schemas, (cJSON *)box->ptr, vehicle, 1, &texts, err, sizeof err);
    if (why) {
        lua_pushstring(L, why);
        return failed(L);
    }
    mm_json_push(L, (cJSON *)box->ptr);
    return 1;
}

/* event_fields() -> { { name = "id", type = "uuid" }, ... }: the event row in
 * column order, for the SQL the Lua layer writes. */
static int l_event_fields(lua_State *L) {
    int i;
    lua_createtable(L, MM_EV_NFIELDS, 0);
    for (i = 0; i < MM_EV_NFIELDS; i++) {
        lua_createtable(L, 0, 3);
        lua_pushstring(L, MM_EVENT_FIELDS[i].name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, MM_EVENT_FIELDS[i].sqltype);
        lua_setfield(L, -2, "type");
        lua_pushboolean(L, MM_EVENT_FIELDS[i].required);
        lua_setfield(L, -2, "required");
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

/* codec:types() -> { "fuel", ... } in the schema document's (sorted) order */
static int l_types(lua_State *L) {
    const cJSON *t;
    int i = 0;
    mm_codec *c = check_codec(L);
    lua_newtable(L);
    for (t = mm_schemas_types(c->schemas)->child; t; t = t->next) {
        lua_pushstring(L, t->string);
        lua_rawseti(L, -2, ++i);
    }
    return 1;
}

static const luaL_Reg methods[] = {
    {"decode", l_decode},
    {"encode", l_encode},
    {"check", l_check},
    {"check_event", l_check_event},
    {"types", l_types},
    {NULL, NULL}
};

static const luaL_Reg metamethods[] = {
    {"__gc", l_gc},
    {NULL, NULL}
};

int mm_open_codec(lua_State *L) {
    if (luaL_newmetatable(L, MM_CODEC_MT)) {
        mm_setfuncs(L, metamethods, 0);
        mm_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, l_new);
    lua_setfield(L, -2, "payload_codec");
    lua_pushcfunction(L, l_event_fields);
    lua_setfield(L, -2, "event_fields");
    return 0;
}
