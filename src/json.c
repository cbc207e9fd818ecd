/* JSON <-> Lua through cJSON. Decoded arrays carry the array metatable, so an
 * empty array stays an array when encoded again; objects are encoded with
 * sorted keys (canonical output); integers are written exactly. */
#include "motomind.h"
#include <errno.h>
#include "text.h"
#include <cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_MT_KEY MM_ARRAY_MT
#define MAX_DEPTH 512
#define PATH_MAX_LEN 480

typedef struct encoder {
    lua_State *L;
    mm_box *box;       /* owns the tree being built */
    const char *error; /* reason of the first failure, static text */
    char path[PATH_MAX_LEN + 32];
    size_t pathlen;
} encoder;

static void delete_tree(void *tree) { cJSON_Delete((cJSON *)tree); }

/* A trusted decode (json_decode, and every jsonb column of a result) parses
 * into an arena: cJSON's nodes and strings come from a few blocks freed at
 * once, instead of a malloc and a free per node (a fifth of the decode's
 * instructions). cJSON's allocator is process-wide, so its hooks read the
 * arena of the calling thread (nginx worker threads decode concurrently),
 * set only while cJSON parses: no Lua call runs while it is set. */
#define ARENA_FIRST 4096
typedef struct arena_block { struct arena_block *next; size_t size, used; } arena_block;
typedef struct arena { arena_block *blocks; } arena;
#define BLOCK_HEADER ((sizeof(arena_block) + 15) & ~(size_t)15)

static __thread arena *parsing_arena;

static void *arena_alloc(arena *a, size_t n) {
    arena_block *b = a->blocks;
    n = (n + 15) & ~(size_t)15;
    if (!b || b->size - b->used < n) {
        size_t size = b ? b->size * 2 : ARENA_FIRST;
        if (size < n) size = n;
        if (!(b = (arena_block *)malloc(BLOCK_HEADER + size))) return NULL;
        b->next = a->blocks;
        b->size = size;
        b->used = 0;
        a->blocks = b;
    }
    b->used += n;
    return (char *)b + BLOCK_HEADER + b->used - n;
}

static int arena_owns(const arena *a, const void *p) {
    const arena_block *b;
    for (b = a->blocks; b; b = b->next)
        if ((const char *)p >= (const char *)b + BLOCK_HEADER && (const char *)p < (const char *)b + BLOCK_HEADER + b->size)
            return 1;
    return 0;
}

static void arena_delete(void *p) {
    arena *a = (arena *)p;
    while (a->blocks) {
        arena_block *next = a->blocks->next;
        free(a->blocks);
        a->blocks = next;
    }
    free(a);
}

static void *hook_malloc(size_t n) { return parsing_arena ? arena_alloc(parsing_arena, n) : malloc(n); }

/* cJSON frees a partial tree when a parse fails: arena memory goes with
 * the arena. */
static void hook_free(void *p) {
    if (parsing_arena && arena_owns(parsing_arena, p)) return;
    free(p);
}

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;
static void install_hooks(void) {
    cJSON_Hooks hooks = { hook_malloc, hook_free };
    cJSON_InitHooks(&hooks);
}

static int encode_value(encoder *e, int idx, cJSON *parent, const char *key,
                        int depth);

static int fail(encoder *e, const char *reason) {
    e->error = reason;
    return 0;
}

/* Appends ".key" or "[i]" to the path; returns the length to restore. */
static size_t path_push(encoder *e, const char *key, long i) {
    size_t old = e->pathlen;
    if (old < PATH_MAX_LEN) {
        char *at = e->path + old;
        size_t room = sizeof e->path - old;
        if (key) snprintf(at, room, ".%s", key);
        else snprintf(at, room, "[%ld]", i);
        e->pathlen = strlen(e->path);
    }
    return old;
}

static void path_pop(encoder *e, size_t old) {
    e->pathlen = old;
    e->path[old] = '\0';
}

/* Pushes field of lua-cjson's module when it is loaded (OpenResty), else nil. */
static void push_cjson_field(lua_State *L, const char *field) {
    lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
    lua_getfield(L, -1, "cjson");
    if (lua_istable(L, -1)) lua_getfield(L, -1, field);
    else lua_pushnil(L);
    lua_replace(L, -3);
    lua_pop(L, 1);
}

/* An empty table encodes as [] with motomind.json.array_mt or lua-cjson's
 * empty_array_mt as its metatable. */
static int has_array_mt(lua_State *L, int idx) {
    int is = 0;
    if (lua_getmetatable(L, idx)) {
        lua_getfield(L, LUA_REGISTRYINDEX, ARRAY_MT_KEY);
        is = lua_rawequal(L, -1, -2);
        lua_pop(L, 1);
        if (!is) {
            push_cjson_field(L, "empty_array_mt");
            is = lua_rawequal(L, -1, -2);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    return is;
}

/* lua-cjson's empty_array marker (a light userdata), when cjson is loaded. */
static int is_cjson_empty_array(lua_State *L, int idx) {
    int is;
    push_cjson_field(L, "empty_array");
    is = lua_rawequal(L, idx, -1);
    lua_pop(L, 1);
    return is;
}

/* Classifies a table: 1 array (keys 1..n), 0 object (string keys), -1 mixed.
 * Sets *count to the number of keys. */
static int table_kind(lua_State *L, int idx, size_t *count) {
    size_t n = 0, strings = 0;
    lua_Number max = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        n++;
        if (lua_type(L, -1) == LUA_TSTRING) {
            strings++;
        } else if (mm_isinteger(L, -1) && lua_tonumber(L, -1) >= 1) {
            if (lua_tonumber(L, -1) > max) max = lua_tonumber(L, -1);
        }
    }
    *count = n;
    if (strings == n) return n == 0 && has_array_mt(L, idx) ? 1 : 0;
    if (strings == 0 && max == (lua_Number)n) return 1;
    return -1;
}

static int key_cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int encode_object(encoder *e, int idx, cJSON *obj, size_t n, int depth) {
    lua_State *L = e->L;
    const char **keys = (const char **)lua_newuserdata(L, (n ? n : 1) * sizeof *keys);
    size_t i = 0, len;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        keys[i] = lua_tolstring(L, -1, &len); /* kept alive by the table */
        if (strlen(keys[i]) != len) return fail(e, "object key contains a NUL byte");
        i++;
    }
    qsort(keys, n, sizeof *keys, key_cmp);
    for (i = 0; i < n; i++) {
        size_t old = path_push(e, keys[i], 0);
        lua_getfield(L, idx, keys[i]);
        if (!encode_value(e, lua_gettop(L), obj, keys[i], depth + 1)) return 0;
        lua_pop(L, 1);
        path_pop(e, old);
    }
    lua_pop(L, 1); /* keys */
    return 1;
}

static int encode_array(encoder *e, int idx, cJSON *arr, size_t n, int depth) {
    size_t i;
    for (i = 1; i <= n; i++) {
        size_t old = path_push(e, NULL, (long)i);
        lua_rawgeti(e->L, idx, (int)i);
        if (!encode_value(e, lua_gettop(e->L), arr, NULL, depth + 1)) return 0;
        lua_pop(e->L, 1);
        path_pop(e, old);
    }
    return 1;
}

/* Numbers become cJSON numbers (doubles); only Lua 5.4 integers beyond 2^53
 * are written as raw digits, to stay exact. */
static cJSON *number_item(lua_State *L, int idx) {
#if MM_HAS_INTEGERS
    if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        if (i > (lua_Integer)MM_MAX_EXACT_DOUBLE || i < -(lua_Integer)MM_MAX_EXACT_DOUBLE) {
            char buf[32];
            snprintf(buf, sizeof buf, LUA_INTEGER_FMT, (LUAI_UACINT)i);
            return cJSON_CreateRaw(buf);
        }
    }
#endif
    return cJSON_CreateNumber((double)lua_tonumber(L, idx));
}

/* Creates the item for the value at idx, links it into parent (or into the
 * caller's box when parent is NULL) before filling it, so that a Lua error at
 * any depth leaves the whole tree owned by the box. */
static int encode_value(encoder *e, int idx, cJSON *parent, const char *key,
                        int depth) {
    lua_State *L = e->L;
    cJSON *item = NULL;
    size_t len, n = 0;
    int kind = 0;
    const char *s;
    if (depth > MAX_DEPTH) return fail(e, "nested too deeply");
    luaL_checkstack(L, 6, "JSON nested too deeply");
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN: item = cJSON_CreateBool(lua_toboolean(L, idx)); break;
    case LUA_TNUMBER:
        if (!isfinite((double)lua_tonumber(L, idx)))
            return fail(e, "cannot encode NaN or infinity");
        item = number_item(L, idx);
        break;
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        if (strlen(s) != len) return fail(e, "string contains a NUL byte");
        item = cJSON_CreateString(s);
        break;
    case LUA_TTABLE:
        kind = table_kind(L, idx, &n);
        if (kind < 0) return fail(e, "table mixes array and object keys (or is a sparse array)");
        item = kind ? cJSON_CreateArray() : cJSON_CreateObject();
        break;
    case LUA_TUSERDATA:
        if (mm_isnull(L, idx)) { item = cJSON_CreateNull(); break; }
        return fail(e, "cannot encode a userdata");
    case LUA_TLIGHTUSERDATA: /* ngx.null and cjson.null are NULL; cjson.empty_array */
        if (mm_isnull(L, idx)) { item = cJSON_CreateNull(); break; }
        if (is_cjson_empty_array(L, idx)) { item = cJSON_CreateArray(); break; }
        return fail(e, "cannot encode a light userdata");
    case LUA_TNIL: return fail(e, "cannot encode nil");
    case LUA_TFUNCTION: return fail(e, "cannot encode a function");
    default: return fail(e, "cannot encode a thread");
    }
    if (!item) return fail(e, "out of memory");
    if (!parent) {
        mm_box_hold(e->box, item, delete_tree);
    } else if (!(key ? cJSON_AddItemToObject(parent, key, item) : cJSON_AddItemToArray(parent, item))) {
        cJSON_Delete(item);
        return fail(e, "out of memory");
    }
    if (lua_type(L, idx) != LUA_TTABLE) return 1;
    return kind ? encode_array(e, idx, item, n, depth)
                : encode_object(e, idx, item, n, depth);
}

/* Builds the cJSON tree of the value at idx into box and returns 1, or
 * pushes "<root><path>: <reason>" and returns 0. */
int mm_json_build(lua_State *L, int idx, const char *root, mm_box *box) {
    encoder e;
    int ok, top = lua_gettop(L);
    idx = mm_absindex(L, idx);
    e.L = L;
    e.error = NULL;
    e.path[0] = '\0';
    e.pathlen = 0;
    e.box = box;
    ok = encode_value(&e, idx, NULL, NULL, 0);
    lua_settop(L, top); /* drop what a failed walk left */
    if (!ok) {
        mm_box_release(box);
        lua_pushfstring(L, "%s%s: %s", root, e.path, e.error);
    }
    return ok;
}

/* Pushes the unformatted JSON text of a tree. */
void mm_json_push_text(lua_State *L, const cJSON *tree) {
    mm_box *box = mm_box_new(L);
    char *text = cJSON_PrintUnformatted(tree);
    if (!text) luaL_error(L, "out of memory");
    mm_box_hold(box, text, cJSON_free);
    lua_pushstring(L, text);
    mm_box_release(box);
    lua_remove(L, -2);
}

/* Pushes the JSON text of the value at idx and returns 1, or pushes
 * "<root><path>: <reason>" and returns 0. */
int mm_json_encode(lua_State *L, int idx, const char *root) {
    mm_box *box;
    idx = mm_absindex(L, idx);
    box = mm_box_new(L);
    if (!mm_json_build(L, idx, root, box)) {
        lua_remove(L, -2);
        return 0;
    }
    mm_json_push_text(L, (cJSON *)box->ptr);
    mm_box_release(box);
    lua_remove(L, -2);
    return 1;
}

/* How many members an object or array has (to size its Lua table once). */
static int members(const cJSON *item) {
    const cJSON *child;
    int n = 0;
    for (child = item->child; child; child = child->next) n++;
    return n;
}

void mm_json_push(lua_State *L, const cJSON *item) {
    const cJSON *child;
    int i = 0;
    luaL_checkstack(L, 4, "JSON nested too deeply");
    if (cJSON_IsObject(item)) {
        lua_createtable(L, 0, members(item));
        for (child = item->child; child; child = child->next) {
            mm_json_push(L, child);
            lua_setfield(L, -2, child->string);
        }
    } else if (cJSON_IsArray(item)) {
        lua_createtable(L, members(item), 0);
        for (child = item->child; child; child = child->next) {
            mm_json_push(L, child);
            lua_rawseti(L, -2, ++i);
        }
        lua_getfield(L, LUA_REGISTRYINDEX, ARRAY_MT_KEY);
        lua_setmetatable(L, -2);
    } else if (cJSON_IsString(item)) {
        lua_pushstring(L, item->valuestring);
    } else if (cJSON_IsNumber(item)) {
        double d = item->valuedouble;
#if MM_HAS_INTEGERS
        if (d == floor(d) && fabs(d) < MM_MAX_EXACT_DOUBLE) {
            lua_pushinteger(L, (lua_Integer)d);
            return;
        }
#endif
        lua_pushnumber(L, (lua_Number)d);
    } else if (cJSON_IsBool(item)) {
        lua_pushboolean(L, cJSON_IsTrue(item));
    } else if (cJSON_IsRaw(item)) { /* an integer beyond 2^53: exact */
#if MM_HAS_INTEGERS
        long long v;
        errno = 0;
        v = strtoll(item->valuestring, NULL, 10);
        if (errno == ERANGE) lua_pushstring(L, item->valuestring); /* beyond 64 bits: as text */
        else lua_pushinteger(L, (lua_Integer)v);
#else
        lua_pushstring(L, item->valuestring); /* as int8 columns: exact as text */
#endif
    } else {
        mm_push_null(L);
    }
}

/* parse_whole's *at for a text holding \u0000 (NUL), which no text column
 * can store. */
#define AT_NUL ((size_t)-1)

/* Parses a whole JSON text: the tree, or NULL with *at the byte (from 0)
 * where it goes wrong (AT_NUL: it holds a NUL). Calls no Lua function. */
static cJSON *parse_whole(const char *text, size_t len, size_t *at) {
    const char *end = NULL;
    cJSON *tree;
    if (mm_json_has_nul(text, len)) {
        *at = AT_NUL;
        return NULL;
    }
    tree = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    *at = end ? (size_t)(end - text) : 0;
    while (tree && *at < len && strchr(" \t\r\n", text[*at]) && text[*at]) (*at)++;
    if (tree && *at < len) {
        cJSON_Delete(tree);
        return NULL;
    }
    return tree;
}

/* Pushes "<root>: invalid JSON at byte N" (or "...: a string holds \u0000")
 * for a text parse_whole refused at *at. */
static void push_parse_error(lua_State *L, const char *root, size_t at) {
    if (at == AT_NUL) lua_pushfstring(L, "%s%sa string holds \\u0000 (NUL), which text cannot store", root, *root ? ": " : "");
    else lua_pushfstring(L, "%s%sinvalid JSON at byte %d", root, *root ? ": " : "", (int)at + 1);
}

/* Parses a whole JSON text into box and returns 1, or pushes
 * "<root>: invalid JSON at byte N" (or "...: a string holds \u0000", which
 * no text column can store) and returns 0. */
int mm_json_parse(lua_State *L, const char *text, size_t len, const char *root, mm_box *box) {
    size_t at = 0;
    cJSON *tree = parse_whole(text, len, &at);
    if (!tree) {
        push_parse_error(L, root, at);
        return 0;
    }
    mm_box_hold(box, tree, delete_tree);
    return 1;
}

/* Pushes the Lua value of a JSON text and returns 1, or pushes an error
 * message with the byte offset and returns 0. */
/* The next number literal of a JSON text from *at (strings skipped); its
 * length in *n, or NULL when there is none. */
static const char *next_number(const char *text, size_t len, size_t *at, size_t *n) {
    size_t i = *at;
    while (i < len) {
        if (text[i] == '"') {
            for (i++; i < len && text[i] != '"'; i++)
                if (text[i] == '\\') i++;
            i++;
        } else if (text[i] == '-' || (text[i] >= '0' && text[i] <= '9')) {
            size_t start = i;
            while (i < len && strchr("+-0123456789.eE", text[i])) i++;
            *at = i;
            *n = i - start;
            return text + start;
        } else {
            i++;
        }
    }
    return NULL;
}

/* Integers beyond 2^53 become raw nodes holding their exact digits (cJSON
 * parses numbers as doubles): the tree's numbers are the text's number
 * literals, in document order. Returns 0 when out of memory. */
static int exact_integers(cJSON *item, const char *text, size_t len, size_t *at) {
    cJSON *child;
    if (cJSON_IsNumber(item)) {
        size_t n = 0;
        const char *lit = next_number(text, len, at, &n);
        if (lit && fabs(item->valuedouble) >= MM_MAX_EXACT_DOUBLE && strspn(lit + (*lit == '-'), "0123456789") + (*lit == '-') == n) {
            char *digits = (char *)cJSON_malloc(n + 1);
            if (!digits) return 0;
            memcpy(digits, lit, n);
            digits[n] = '\0';
            item->type = cJSON_Raw;
            item->valuestring = digits;
        }
        return 1;
    }
    for (child = item->child; child; child = child->next)
        if (!exact_integers(child, text, len, at)) return 0;
    return 1;
}

/* Whether the tree holds a number at or beyond 2^53 (then its literal is
 * read again from the text: exact_integers; most texts have none). */
static int has_big_number(const cJSON *item) {
    const cJSON *child;
    if (cJSON_IsNumber(item)) return fabs(item->valuedouble) >= MM_MAX_EXACT_DOUBLE;
    for (child = item->child; child; child = child->next)
        if (has_big_number(child)) return 1;
    return 0;
}

int mm_json_decode(lua_State *L, const char *text, size_t len) {
    mm_box *box = mm_box_new(L);
    arena *a;
    cJSON *tree;
    size_t at = 0;
    int exact = 1;
    if (!(a = (arena *)malloc(sizeof *a))) return luaL_error(L, "out of memory");
    a->blocks = NULL;
    mm_box_hold(box, a, arena_delete);
    parsing_arena = a; /* (the hooks that read it: installed by mm_open_json) */
    tree = parse_whole(text, len, &at);
    if (tree && has_big_number(tree)) {
        size_t from = 0;
        exact = exact_integers(tree, text, len, &from);
    }
    parsing_arena = NULL;
    if (!tree) {
        push_parse_error(L, "", at);
        lua_remove(L, -2);
        return 0;
    }
    if (!exact) return luaL_error(L, "out of memory");
    mm_json_push(L, tree);
    mm_box_release(box);
    lua_remove(L, -2);
    return 1;
}

static int l_encode(lua_State *L) {
    luaL_checkany(L, 1);
    if (mm_json_encode(L, 1, "value")) return 1;
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}

static int l_decode(lua_State *L) {
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    if (mm_json_decode(L, text, len)) return 1;
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}

/* Adds json_encode, json_decode and json_array_mt to the module table. */
int mm_open_json(lua_State *L) {
    pthread_once(&hooks_once, install_hooks); /* once per process, whichever thread opens first */
    lua_getfield(L, LUA_REGISTRYINDEX, ARRAY_MT_KEY);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 1);
        lua_pushliteral(L, "array");
        lua_setfield(L, -2, "__jsontype");
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, ARRAY_MT_KEY);
    }
    lua_setfield(L, -2, "json_array_mt");
    lua_pushcfunction(L, l_encode);
    lua_setfield(L, -2, "json_encode");
    lua_pushcfunction(L, l_decode);
    lua_setfield(L, -2, "json_decode");
    return 0;
}
