/* JSON -> Lua through cJSON; Lua -> JSON text written as the value is walked
 * (or into a cJSON tree, for a codec to check). Decoded arrays carry the
 * array metatable, so an empty array stays an array when encoded again;
 * objects are encoded with sorted keys (canonical output); integers are
 * written exactly. */
#include "motomind.h"
#include <errno.h>
#include "text.h"
#include <cJSON.h>
#include <float.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ARRAY_MT_KEY MM_ARRAY_MT
#define MAX_DEPTH 512
#define PATH_MAX_LEN 480

static void delete_tree(void *tree) { cJSON_Delete((cJSON *)tree); }

/* A trusted decode (json_decode, and every jsonb column of a result) lives
 * in an arena (as do json_encode's lists of members): cJSON's nodes and
 * strings come from a few blocks freed at once, instead of a malloc and a
 * free per node (a fifth of the decode's instructions). cJSON's allocator
 * is process-wide, so its hooks read the arena of the calling thread (nginx
 * worker threads decode concurrently), set only for the duration of cJSON
 * calls: no Lua call runs while it is set, so a Lua error cannot leave it
 * set. */
#define ARENA_FIRST 4096
typedef struct arena_block { struct arena_block *next; size_t size, used; } arena_block;
typedef struct arena {
    arena_block *blocks;
    char *text; /* json_encode's text, grown with realloc */
    size_t cap;
} arena;
#define BLOCK_HEADER ((sizeof(arena_block) + 15) & ~(size_t)15)

static __thread arena *cjson_arena;

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

static void free_blocks(arena_block *b) {
    while (b) {
        arena_block *next = b->next;
        free(b);
        b = next;
    }
}

/* The arena (and text buffer) json_decode and json_encode reuse, one per
 * Lua state: a userdata kept in the registry between calls. A call takes it
 * out of the registry (it stays on the stack), resets it, keeping its newest
 * block (the largest) unless that outgrew ARENA_KEEP, and puts it back when
 * done: a call mallocs nothing once the state has handled a text of that
 * size. A call made while another holds it (from a finalizer that a
 * collection step runs while a decoded value's tables are built) finds none
 * and makes its own; a call that raises leaves its arena to the collector,
 * and the next call makes a new one. */
#define ARENA_KEY "motomind.json_arena"
#define ARENA_MT "motomind.json_arena_mt"
#define ARENA_KEEP (1u << 20)

static int arena_gc(lua_State *L) {
    arena *a = (arena *)lua_touserdata(L, 1);
    free_blocks(a->blocks);
    a->blocks = NULL;
    free(a->text);
    a->text = NULL;
    a->cap = 0;
    return 0;
}

/* Pushes the state's arena, taken out of the registry and reset. */
static arena *take_arena(lua_State *L) {
    arena *a;
    arena_block *keep;
    lua_getfield(L, LUA_REGISTRYINDEX, ARENA_KEY);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        a = (arena *)lua_newuserdata(L, sizeof *a);
        a->blocks = NULL;
        a->text = NULL;
        a->cap = 0;
        luaL_getmetatable(L, ARENA_MT);
        lua_setmetatable(L, -2);
        return a;
    }
    a = (arena *)lua_touserdata(L, -1);
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, ARENA_KEY);
    keep = a->blocks;
    if (keep && keep->size > ARENA_KEEP) {
        free_blocks(keep);
        a->blocks = NULL;
    } else if (keep) {
        free_blocks(keep->next);
        keep->next = NULL;
        keep->used = 0;
    }
    if (a->cap > ARENA_KEEP) {
        free(a->text);
        a->text = NULL;
        a->cap = 0;
    }
    return a;
}

/* Puts the arena at idx (take_arena's) back in the registry, off the stack. */
static void put_arena(lua_State *L, int idx) {
    idx = mm_absindex(L, idx);
    lua_pushvalue(L, idx);
    lua_setfield(L, LUA_REGISTRYINDEX, ARENA_KEY);
    lua_remove(L, idx);
}

static void *hook_malloc(size_t n) { return cjson_arena ? arena_alloc(cjson_arena, n) : malloc(n); }

/* cJSON frees a partial tree when a parse fails: arena memory goes with
 * the arena. */
static void hook_free(void *p) {
    if (cjson_arena && arena_owns(cjson_arena, p)) return;
    free(p);
}

static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;
static void install_hooks(void) {
    cJSON_Hooks hooks = { hook_malloc, hook_free };
    cJSON_InitHooks(&hooks);
}

/* The key or index of each level of the walk: formatted into a path
 * ("<root>.key[2]") only when something fails. */
typedef struct frame { const char *key; long i; } frame;

/* A walk of a Lua value: into a cJSON tree held by box (mm_json_build, for
 * a codec to check), or straight into JSON text in the arena's buffer
 * (json_encode: no tree). */
typedef struct encoder {
    lua_State *L;
    mm_box *box;       /* holds the tree (mm_json_build) */
    arena *arena;      /* json_encode's: the members' lists and the text */
    size_t len;        /* of the text so far */
    const void *null;  /* motomind.null of this Lua state */
    const void *array_mt;          /* motomind.json.array_mt */
    int cjson_looked;              /* lua-cjson's markers looked up, once a walk */
    const void *cjson_array_mt;    /* lua-cjson's empty_array_mt, if loaded */
    const void *cjson_empty_array; /* lua-cjson's empty_array, if loaded */
    const char *error; /* reason of the first failure, static text */
    int error_depth;   /* frames[0 .. error_depth) lead to the failing value */
    frame frames[MAX_DEPTH + 1];
} encoder;

static int encode_value(encoder *e, int idx, cJSON *parent, const char *key, int depth);

static int fail(encoder *e, const char *reason, int depth) {
    e->error = reason;
    e->error_depth = depth;
    return 0;
}

/* Writes the failing value's path (".key[2]") into path. */
static void format_path(const encoder *e, char *path, size_t size) {
    size_t len = 0;
    int d;
    path[0] = '\0';
    for (d = 0; d < e->error_depth && len < PATH_MAX_LEN; d++) {
        const frame *f = &e->frames[d];
        if (f->key) snprintf(path + len, size - len, ".%s", f->key);
        else snprintf(path + len, size - len, "[%ld]", f->i);
        len = strlen(path);
    }
}

/* A new cJSON item of type (text: a string's or a raw item's; d: a number). */
static cJSON *new_item(int type, const char *text, double d) {
    switch (type) {
    case cJSON_False: return cJSON_CreateFalse();
    case cJSON_True: return cJSON_CreateTrue();
    case cJSON_NULL: return cJSON_CreateNull();
    case cJSON_Number: return cJSON_CreateNumber(d);
    case cJSON_String: return cJSON_CreateString(text);
    case cJSON_Raw: return cJSON_CreateRaw(text);
    case cJSON_Array: return cJSON_CreateArray();
    default: return cJSON_CreateObject();
    }
}

/* Makes room for n more bytes of text in the arena's buffer. */
static int reserve(encoder *e, size_t n) {
    arena *a = e->arena;
    if (a->cap - e->len < n) {
        size_t cap = a->cap ? a->cap * 2 : ARENA_FIRST;
        char *text;
        if (cap - e->len < n) cap = e->len + n;
        if (!(text = (char *)realloc(a->text, cap))) return 0;
        a->text = text; /* (at once: an error raised later frees it) */
        a->cap = cap;
    }
    return 1;
}

static inline int put(encoder *e, const char *s, size_t n) {
    if (e->arena->cap - e->len < n && !reserve(e, n)) return 0;
    memcpy(e->arena->text + e->len, s, n);
    e->len += n;
    return 1;
}

/* Writes s as a JSON string (mm_json_string): 1, 0 out of memory, -1
 * when s holds a NUL byte. */
static int put_string(encoder *e, const char *s, size_t len) {
    char *end;
    if (len > ((size_t)-1 - 2) / 6 - e->len || !reserve(e, 6 * len + 2)) return 0;
    if (!(end = mm_json_string(e->arena->text + e->len, s, len))) return -1;
    e->len = (size_t)(end - e->arena->text);
    return 1;
}

/* Looks up lua-cjson's empty_array_mt and empty_array (OpenResty), when
 * cjson is loaded: once a walk, at the first empty table or light userdata. */
static void look_up_cjson(encoder *e) {
    lua_State *L = e->L;
    if (e->cjson_looked) return;
    e->cjson_looked = 1;
    lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
    lua_getfield(L, -1, "cjson");
    if (lua_istable(L, -1)) {
        lua_getfield(L, -1, "empty_array_mt");
        e->cjson_array_mt = lua_istable(L, -1) ? lua_topointer(L, -1) : NULL;
        lua_getfield(L, -2, "empty_array");
        e->cjson_empty_array = lua_islightuserdata(L, -1) ? lua_touserdata(L, -1) : NULL;
        lua_pop(L, 2);
    }
    lua_pop(L, 2);
}

/* An empty table encodes as [] with motomind.json.array_mt or lua-cjson's
 * empty_array_mt as its metatable. */
static int has_array_mt(encoder *e, int idx) {
    const void *mt;
    if (!lua_getmetatable(e->L, idx)) return 0;
    mt = lua_topointer(e->L, -1);
    lua_pop(e->L, 1);
    if (mt == e->array_mt) return 1;
    look_up_cjson(e);
    return e->cjson_array_mt && mt == e->cjson_array_mt;
}

/* lua-cjson's empty_array marker (a light userdata), when cjson is loaded. */
static int is_cjson_empty_array(encoder *e, int idx) {
    look_up_cjson(e);
    return e->cjson_empty_array && lua_touserdata(e->L, idx) == e->cjson_empty_array;
}

/* Classifies a table: 1 array (keys 1..n), 0 object (string keys), -1 mixed.
 * Sets *count to the number of keys. */
static int table_kind(encoder *e, int idx, size_t *count) {
    lua_State *L = e->L;
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
    if (strings == n) return n == 0 && has_array_mt(e, idx) ? 1 : 0;
    if (strings == 0 && max == (lua_Number)n) return 1;
    return -1;
}

/* An object's member: its key and the stack slot of its value (0: not on
 * the stack, fetched again by key). */
typedef struct member { const char *key; size_t len; int value; } member;

/* Byte order of keys, as strcmp orders them (keys hold no NUL). */
static int member_cmp(const member *a, const member *b) {
    int c;
    if (a->key[0] != b->key[0]) return (unsigned char)a->key[0] - (unsigned char)b->key[0]; /* ("" ends in NUL) */
    c = memcmp(a->key, b->key, a->len < b->len ? a->len : b->len);
    return c ? c : (a->len > b->len) - (a->len < b->len);
}

static int member_qcmp(const void *a, const void *b) { return member_cmp((const member *)a, (const member *)b); }

/* Sorts members by key: insertion sort for the dozen members of an event,
 * qsort beyond. */
static void sort_members(member *m, size_t n) {
    size_t i, j;
    if (n > 16) {
        qsort(m, n, sizeof *m, member_qcmp);
        return;
    }
    for (i = 1; i < n; i++) {
        member x = m[i];
        for (j = i; j > 0 && member_cmp(&m[j - 1], &x) > 0; j--) m[j] = m[j - 1];
        m[j] = x;
    }
}

/* Objects with up to this many members keep their values on the stack
 * while they are encoded (each read once, by lua_next); larger ones read
 * each value again by its key. */
#define STACK_MEMBERS 1024

/* Encodes an object's members in key order: into obj, or as text. */
static int encode_object(encoder *e, int idx, cJSON *obj, size_t n, int depth) {
    lua_State *L = e->L;
    size_t i = 0;
    member *m;
    int top, on_stack;
    if (e->arena) {
        if (!(m = (member *)arena_alloc(e->arena, (n ? n : 1) * sizeof *m))) return fail(e, "out of memory", depth);
    } else {
        m = (member *)lua_newuserdata(L, (n ? n : 1) * sizeof *m);
    }
    top = lua_gettop(L);
    on_stack = n <= STACK_MEMBERS && lua_checkstack(L, (int)(2 * n) + 8);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        m[i].key = lua_tolstring(L, -2, &m[i].len); /* kept alive by the table */
        if (memchr(m[i].key, '\0', m[i].len)) return fail(e, "object key contains a NUL byte", depth);
        if (on_stack) {
            m[i].value = lua_gettop(L); /* the value stays; its key goes on */
            lua_pushvalue(L, -2);
        } else {
            m[i].value = 0;
            lua_pop(L, 1);
        }
        i++;
    }
    sort_members(m, n);
    if (e->arena && !put(e, "{", 1)) return fail(e, "out of memory", depth);
    for (i = 0; i < n; i++) {
        int at = m[i].value;
        e->frames[depth].key = m[i].key;
        if (e->arena && (!put(e, ",", i > 0) || put_string(e, m[i].key, m[i].len) != 1 || !put(e, ":", 1)))
            return fail(e, "out of memory", depth);
        if (!at) {
            lua_pushlstring(L, m[i].key, m[i].len);
            lua_rawget(L, idx);
            at = lua_gettop(L);
        }
        if (!encode_value(e, at, obj, m[i].key, depth + 1)) return 0;
        if (!m[i].value) lua_pop(L, 1);
    }
    lua_settop(L, top - (e->arena ? 0 : 1)); /* (and the members' userdata) */
    return !e->arena || put(e, "}", 1) || fail(e, "out of memory", depth);
}

/* Encodes an array's elements: into arr, or as text. */
static int encode_array(encoder *e, int idx, cJSON *arr, size_t n, int depth) {
    size_t i;
    e->frames[depth].key = NULL;
    if (e->arena && !put(e, "[", 1)) return fail(e, "out of memory", depth);
    for (i = 1; i <= n; i++) {
        e->frames[depth].i = (long)i;
        if (e->arena && !put(e, ",", i > 1)) return fail(e, "out of memory", depth);
        lua_rawgeti(e->L, idx, (int)i);
        if (!encode_value(e, lua_gettop(e->L), arr, NULL, depth + 1)) return 0;
        lua_pop(e->L, 1);
    }
    return !e->arena || put(e, "]", 1) || fail(e, "out of memory", depth);
}

/* The decimal digits of i into buf (24 bytes). */
static void format_integer(long long i, char *buf) {
    char digits[24];
    int n = 0;
    unsigned long long u = i < 0 ? 0ULL - (unsigned long long)i : (unsigned long long)i;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (i < 0) *buf++ = '-';
    while (n) *buf++ = digits[--n];
    *buf = '\0';
}

/* A double that is a decimal of up to 6 places (41.37, money and volumes)
 * within 1e-4 <= |d| < 1e9, written as that decimal: what "%.15g" prints
 * for it (at most 15 digits, which read back as d), without printf and
 * strtod. m / 10^k == d means d is the double nearest m * 10^-k; the
 * smallest such k leaves no trailing zero. Returns 0 for other numbers. */
static int format_short_decimal(double d, char *buf) {
    static const double scale[] = { 1e1, 1e2, 1e3, 1e4, 1e5, 1e6 };
    double a = fabs(d), m = 0;
    char digits[24];
    int k, n = 0, places;
    unsigned long long u;
    if (!(a >= 1e-4 && a < 1e9)) return 0;
    for (k = 0; k < 6; k++) {
        m = nearbyint(a * scale[k]);
        if (m / scale[k] == a) break;
    }
    if (k == 6) return 0;
    places = k + 1;
    for (u = (unsigned long long)m; u || n <= places; u /= 10) digits[n++] = (char)('0' + u % 10);
    if (d < 0) *buf++ = '-';
    while (n > places) *buf++ = digits[--n];
    *buf++ = '.';
    while (n) *buf++ = digits[--n];
    *buf = '\0';
    return 1;
}

/* The JSON text of the finite number at idx into buf (32 bytes): an integer
 * (or a double holding one within 2^53) as its exact digits; other doubles
 * as cJSON prints them, 15 significant digits when they read back as the
 * same number by cJSON's comparison, else 17. */
static void format_number(lua_State *L, int idx, char *buf) {
    double d, back;
    char point, *at;
#if MM_HAS_INTEGERS
    if (lua_isinteger(L, idx)) {
        format_integer((long long)lua_tointeger(L, idx), buf);
        return;
    }
#endif
    d = (double)lua_tonumber(L, idx);
    if (d == floor(d) && fabs(d) <= MM_MAX_EXACT_DOUBLE && !(d == 0 && signbit(d))) {
        format_integer((long long)d, buf);
        return;
    }
    if (format_short_decimal(d, buf)) return;
    snprintf(buf, 32, "%1.15g", d);
    back = strtod(buf, NULL);
    if (fabs(back - d) > fmax(fabs(back), fabs(d)) * DBL_EPSILON) snprintf(buf, 32, "%1.17g", d);
    point = *localeconv()->decimal_point;
    if (point != '.' && (at = strchr(buf, point))) *at = '.';
}

/* A number item of the tree a codec checks (numbers stay cJSON numbers):
 * only Lua 5.4 integers beyond 2^53 are raw digits, to stay exact. */
static cJSON *number_item(lua_State *L, int idx) {
#if MM_HAS_INTEGERS
    char buf[32];
    if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        if (i > (lua_Integer)MM_MAX_EXACT_DOUBLE || i < -(lua_Integer)MM_MAX_EXACT_DOUBLE) {
            format_integer((long long)i, buf);
            return new_item(cJSON_Raw, buf, 0);
        }
    }
#endif
    return new_item(cJSON_Number, NULL, (double)lua_tonumber(L, idx));
}

/* Why the value at idx, which is not a JSON value, cannot be encoded. */
static int refuse(encoder *e, int idx, int depth) {
    switch (lua_type(e->L, idx)) {
    case LUA_TNUMBER: return fail(e, "cannot encode NaN or infinity", depth);
    case LUA_TTABLE: return fail(e, "table mixes array and object keys (or is a sparse array)", depth);
    case LUA_TUSERDATA: return fail(e, "cannot encode a userdata", depth);
    case LUA_TLIGHTUSERDATA: return fail(e, "cannot encode a light userdata", depth);
    case LUA_TNIL: return fail(e, "cannot encode nil", depth);
    case LUA_TFUNCTION: return fail(e, "cannot encode a function", depth);
    default: return fail(e, "cannot encode a thread", depth);
    }
}

/* The JSON type of the value at idx (cJSON_String ...; cJSON_Invalid for
 * a value that has none); *n: a table's count of keys. ngx.null and
 * cjson.null (NULL light userdata) are null, cjson.empty_array []. */
static int json_type(encoder *e, int idx, size_t *n) {
    lua_State *L = e->L;
    int kind;
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN: return lua_toboolean(L, idx) ? cJSON_True : cJSON_False;
    case LUA_TNUMBER: return isfinite((double)lua_tonumber(L, idx)) ? cJSON_Number : cJSON_Invalid;
    case LUA_TSTRING: return cJSON_String;
    case LUA_TTABLE:
        kind = table_kind(e, idx, n);
        return kind < 0 ? cJSON_Invalid : kind ? cJSON_Array : cJSON_Object;
    case LUA_TUSERDATA: return lua_touserdata(L, idx) == e->null ? cJSON_NULL : cJSON_Invalid;
    case LUA_TLIGHTUSERDATA:
        if (mm_isnull(L, idx)) return cJSON_NULL; /* ngx.null, cjson.null */
        *n = 0;
        return is_cjson_empty_array(e, idx) ? cJSON_Array : cJSON_Invalid;
    default: return cJSON_Invalid;
    }
}

/* Writes the JSON text of the scalar at idx of type (json_type's). */
static int write_scalar(encoder *e, int idx, int type, int depth) {
    char buf[32];
    const char *s;
    size_t len;
    int ok;
    switch (type) {
    case cJSON_True: ok = put(e, "true", 4); break;
    case cJSON_False: ok = put(e, "false", 5); break;
    case cJSON_NULL: ok = put(e, "null", 4); break;
    case cJSON_Number:
        format_number(e->L, idx, buf);
        ok = put(e, buf, strlen(buf));
        break;
    default:
        s = lua_tolstring(e->L, idx, &len);
        if ((ok = put_string(e, s, len)) < 0) return fail(e, "string contains a NUL byte", depth);
    }
    return ok || fail(e, "out of memory", depth);
}

/* Encodes the value at idx: as text (json_encode), or as an item linked
 * into parent under key (or into the box when parent is NULL) before it is
 * filled, so that a Lua error at any depth leaves the whole tree owned by
 * the box. */
static int encode_value(encoder *e, int idx, cJSON *parent, const char *key, int depth) {
    lua_State *L = e->L;
    cJSON *item;
    size_t n = 0, len;
    const char *s = NULL;
    int type;
    if (depth > MAX_DEPTH) return fail(e, "nested too deeply", depth);
    luaL_checkstack(L, 6, "JSON nested too deeply");
    if ((type = json_type(e, idx, &n)) == cJSON_Invalid) return refuse(e, idx, depth);
    if (e->arena) {
        if (type == cJSON_Array) return encode_array(e, idx, NULL, n, depth);
        if (type == cJSON_Object) return encode_object(e, idx, NULL, n, depth);
        return write_scalar(e, idx, type, depth);
    }
    if (type == cJSON_String) {
        s = lua_tolstring(L, idx, &len);
        if (strlen(s) != len) return fail(e, "string contains a NUL byte", depth);
    }
    item = type == cJSON_Number ? number_item(L, idx) : new_item(type, s, 0);
    if (!item) return fail(e, "out of memory", depth);
    if (!parent) {
        mm_box_hold(e->box, item, delete_tree);
    } else if (!(key ? cJSON_AddItemToObject(parent, key, item) : cJSON_AddItemToArray(parent, item))) {
        cJSON_Delete(item);
        return fail(e, "out of memory", depth);
    }
    if (type == cJSON_Array) return encode_array(e, idx, item, n, depth);
    if (type == cJSON_Object) return encode_object(e, idx, item, n, depth);
    return 1;
}

/* Walks the value at idx with an encoder for box (a tree) or a (text):
 * 1, or 0 with "<root><path>: <reason>" pushed. */
static int walk(lua_State *L, int idx, const char *root, mm_box *box, arena *a, size_t *len) {
    encoder e;
    char path[PATH_MAX_LEN + 32];
    int top = lua_gettop(L);
    e.L = L;
    e.box = box;
    e.arena = a;
    e.len = 0;
    mm_push_null(L);
    e.null = lua_touserdata(L, -1);
    lua_getfield(L, LUA_REGISTRYINDEX, ARRAY_MT_KEY);
    e.array_mt = lua_topointer(L, -1);
    lua_pop(L, 2);
    e.cjson_looked = 0;
    e.cjson_array_mt = e.cjson_empty_array = NULL;
    e.error = NULL;
    e.error_depth = 0;
    if (encode_value(&e, mm_absindex(L, idx), NULL, NULL, 0)) {
        lua_settop(L, top);
        if (len) *len = e.len;
        return 1;
    }
    format_path(&e, path, sizeof path); /* (the keys are alive until the settop) */
    lua_settop(L, top); /* drop what the walk left */
    lua_pushfstring(L, "%s%s: %s", root, path, e.error);
    return 0;
}

/* Builds the cJSON tree of the value at idx into box and returns 1, or
 * pushes "<root><path>: <reason>" and returns 0. */
int mm_json_build(lua_State *L, int idx, const char *root, mm_box *box) {
    if (walk(L, idx, root, box, NULL, NULL)) return 1;
    mm_box_release(box);
    return 0;
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
 * "<root><path>: <reason>" and returns 0. The text is written as the value
 * is walked, into the state's reused buffer: no tree, and cJSON's printer
 * (a third of the time when it was used) is not needed. */
int mm_json_encode(lua_State *L, int idx, const char *root) {
    arena *a;
    size_t len = 0;
    int ok;
    idx = mm_absindex(L, idx);
    a = take_arena(L);
    if ((ok = walk(L, idx, root, NULL, a, &len))) lua_pushlstring(L, a->text, len);
    put_arena(L, -2);
    return ok;
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
            lua_pushlstring(L, child->string, strlen(child->string)); /* (lua_pushstring: a cache lookup first) */
            mm_json_push(L, child);
            lua_rawset(L, -3);
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
        lua_pushlstring(L, item->valuestring, strlen(item->valuestring));
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
    cJSON *tree;
    size_t at = 0;
    int exact = 1;
    cjson_arena = take_arena(L); /* (the hooks that read it: installed by mm_open_json) */
    tree = parse_whole(text, len, &at);
    if (tree && has_big_number(tree)) {
        size_t from = 0;
        exact = exact_integers(tree, text, len, &from);
    }
    cjson_arena = NULL;
    if (!tree) {
        push_parse_error(L, "", at);
        put_arena(L, -2);
        return 0;
    }
    if (!exact) return luaL_error(L, "out of memory");
    mm_json_push(L, tree);
    put_arena(L, -2);
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
    if (luaL_newmetatable(L, ARENA_MT)) { /* (the arena itself: made by the first call) */
        lua_pushcfunction(L, arena_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, l_encode);
    lua_setfield(L, -2, "json_encode");
    lua_pushcfunction(L, l_decode);
    lua_setfield(L, -2, "json_decode");
    return 0;
}
