/* The CSV spec compiler: a Lua spec (see csv.c) checked key by key and
 * compiled into an arena, freed in one go with the reader. */
#include "csv.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

static void *arena_alloc(block **head, size_t n) {
    void *p;
    n = (n + sizeof(double) - 1) / sizeof(double) * sizeof(double);
    if (!*head || (*head)->used + n > (*head)->cap) {
        size_t cap = n > 4096 ? n : 4096;
        block *b = (block *)malloc(sizeof *b + cap);
        if (!b) return NULL;
        b->next = *head;
        b->used = 0;
        b->cap = cap;
        *head = b;
    }
    p = (char *)(*head)->data + (*head)->used;
    (*head)->used += n;
    memset(p, 0, n);
    return p;
}

static void arena_free(block *b) {
    while (b) {
        block *next = b->next;
        free(b);
        b = next;
    }
}

static void *need(lua_State *L, csv *s, size_t n) {
    void *p = arena_alloc(&s->arena, n);
    if (!p) luaL_error(L, "out of memory");
    return p;
}

static const char *copy_text(lua_State *L, csv *s, const char *t, int lower) {
    size_t n = strlen(t), i;
    char *p = (char *)need(L, s, n + 1);
    for (i = 0; i < n; i++) p[i] = lower ? (char)tolower((unsigned char)t[i]) : t[i];
    return p;
}

/* Spec errors name the place in the spec: "csv spec: columns[3].map: ...". */
static int spec_error(lua_State *L, const char *where, const char *what) {
    return luaL_error(L, "csv spec: %s: %s", where, what);
}

/* The keys each level of a spec takes (optional: a user's layout says a
 * column may be absent from the header; motomind.layout reads it). */
static const char *const SPEC_KEYS[] = {"columns", "dates", "decimal_comma", "name", "record", "sections",
                                        "separator", "set", "type", NULL};
static const char *const SECTION_KEYS[] = {"columns", "name", "record", "set", "type", NULL};
static const char *const COLUMN_KEYS[] = {"as", "empty", "map", "names", "optional", "required", "set", "split", "to",
                                          NULL};

/* Refuses a key of the table at idx that is not one of keys, naming the
 * place and the keys it takes. */
static void only_keys(lua_State *L, int idx, const char *where, const char *const keys[]) {
    idx = mm_absindex(L, idx);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int i = 0;
        if (lua_type(L, -2) == LUA_TSTRING)
            for (; keys[i] && strcmp(keys[i], lua_tostring(L, -2)); i++) {}
        if (lua_type(L, -2) != LUA_TSTRING || !keys[i]) {
            char valid[256] = "";
            for (i = 0; keys[i]; i++) {
                if (i) strcat(valid, ", ");
                strcat(valid, keys[i]); /* (the lists above fit) */
            }
            luaL_error(L, "csv spec: %s: unknown key \"%s\" (valid: %s)", where,
                       lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : luaL_typename(L, -2), valid);
        }
        lua_pop(L, 1);
    }
}

/* The string at idx, never converted in place (a number key converted
 * during lua_next would break the traversal). */
static const char *spec_string(lua_State *L, int idx, const char *where, const char *what) {
    if (lua_type(L, idx) != LUA_TSTRING) spec_error(L, where, what);
    return lua_tostring(L, idx);
}

/* Entries of the table at idx, checking that every key is a string. */
static int count_string_keys(lua_State *L, int idx, const char *where) {
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING) spec_error(L, where, "keys must be strings");
        n++;
        lua_pop(L, 1);
    }
    return n;
}

/* The assignments of the table at idx (path = string | number | boolean). */
static void compile_assigns(lua_State *L, csv *s, int idx, assigns *out, const char *where) {
    int n;
    idx = mm_absindex(L, idx);
    if (lua_isnil(L, idx)) return;
    if (!lua_istable(L, idx)) spec_error(L, where, "expected a table of path = value");
    luaL_checkstack(L, 4, "csv spec nested too deeply");
    n = count_string_keys(L, idx, where);
    out->a = (assign *)need(L, s, sizeof(assign) * (size_t)(n ? n : 1));
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        assign *a = &out->a[out->n++];
        a->path = copy_text(L, s, lua_tostring(L, -2), 0);
        if (lua_type(L, -1) == LUA_TBOOLEAN) a->kind = V_BOOL, a->boolean = lua_toboolean(L, -1);
        else if (lua_type(L, -1) == LUA_TNUMBER) a->kind = V_NUMBER, a->num = lua_tonumber(L, -1);
        else a->kind = V_STRING, a->str = copy_text(L, s, spec_string(L, -1, where,
                                                     "values must be strings, numbers or booleans"), 0);
        lua_pop(L, 1);
    }
}

/* "a, b or c" */
static const char *join(lua_State *L, csv *s, const char **texts, int n) {
    luaL_Buffer b;
    int i;
    luaL_buffinit(L, &b);
    for (i = 0; i < n; i++) {
        if (i) luaL_addstring(&b, i == n - 1 ? " or " : ", ");
        luaL_addstring(&b, texts[i]);
    }
    luaL_pushresult(&b);
    return copy_text(L, s, lua_tostring(L, -1), 0);
}

/* A string or a non-empty array of them at idx, lower-cased (what: the
 * option's name, for errors); pops it. */
static const char **compile_strings(lua_State *L, csv *s, int idx, int *n, const char *where, const char *what) {
    char msg[80];
    const char **out;
    int i;
    idx = mm_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TSTRING) {
        *n = 1;
        out = (const char **)need(L, s, sizeof(char *));
        out[0] = copy_text(L, s, lua_tostring(L, idx), 1);
    } else {
        snprintf(msg, sizeof msg, "%s: expected a string or an array of strings", what);
        if (!lua_istable(L, idx)) spec_error(L, where, msg);
        *n = (int)mm_rawlen(L, idx);
        snprintf(msg, sizeof msg, "%s is empty", what);
        if (*n <= 0) spec_error(L, where, msg);
        out = (const char **)need(L, s, sizeof(char *) * (size_t)*n);
        snprintf(msg, sizeof msg, "%s: expected strings", what);
        for (i = 1; i <= *n; i++) {
            lua_rawgeti(L, idx, i);
            out[i - 1] = copy_text(L, s, spec_string(L, -1, where, msg), 1);
            lua_pop(L, 1);
        }
    }
    lua_pop(L, 1);
    return out;
}

/* The column's names, and the list of them errors show. */
static void compile_names(lua_State *L, csv *s, int idx, column *c, const char *where) {
    c->names = compile_strings(L, s, idx, &c->nnames, where, "names");
    c->expected = join(L, s, c->names, c->nnames);
}

static int by_key(const void *a, const void *b) {
    return strcmp(((const choice *)a)->key, ((const choice *)b)->key);
}

/* The map at idx: value (lower-cased) -> assignments, or false (skip row). */
static void compile_map(lua_State *L, csv *s, int idx, column *c, const char *where) {
    const char **keys;
    char inner[300];
    int i = 0;
    idx = mm_absindex(L, idx);
    if (!lua_istable(L, idx)) spec_error(L, where, "expected a table (value = { path = value } or false)");
    luaL_checkstack(L, 4, "csv spec nested too deeply");
    c->nmap = count_string_keys(L, idx, where);
    c->map = (choice *)need(L, s, sizeof(choice) * (size_t)(c->nmap ? c->nmap : 1));
    keys = (const char **)need(L, s, sizeof(char *) * (size_t)(c->nmap ? c->nmap : 1));
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        choice *ch = &c->map[i++];
        ch->key = copy_text(L, s, lua_tostring(L, -2), 1);
        snprintf(inner, sizeof inner, "%.200s[\"%.40s\"]", where, ch->key);
        if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) ch->skip = 1;
        else compile_assigns(L, s, -1, &ch->sets, inner);
        lua_pop(L, 1);
    }
    qsort(c->map, (size_t)c->nmap, sizeof(choice), by_key);
    c->any = c->nmap;
    for (i = 0; i < c->nmap; i++) {
        keys[i] = c->map[i].key;
        if (!strcmp(keys[i], "*")) c->any = i;
    }
    c->expected = join(L, s, keys, c->nmap);
    lua_pop(L, 1);
}

static const char *const AS[] = {"text", "number", "datetime", "date", "map", "list", NULL};

static void compile_column(lua_State *L, csv *s, int idx, column *c, const char *where) {
    char inner[300];
    const char *as;
    int i;
    only_keys(L, idx, where, COLUMN_KEYS);
    lua_getfield(L, idx, "names");
    compile_names(L, s, -1, c, where);
    lua_getfield(L, idx, "empty");
    if (lua_isnil(L, -1)) lua_pop(L, 1);
    else c->empties = compile_strings(L, s, -1, &c->nempties, where, "empty");
    lua_getfield(L, idx, "as");
    as = lua_isnil(L, -1) ? "text" : spec_string(L, -1, where, "as: expected a string");
    for (i = 0; AS[i] && strcmp(AS[i], as); i++) {}
    if (!AS[i]) spec_error(L, where, "as: expected text, number, datetime, date, map or list");
    c->as = i;
    lua_getfield(L, idx, "to");
    c->to = lua_isnil(L, -1) ? NULL : copy_text(L, s, spec_string(L, -1, where, "to: expected a string"), 0);
    if (!c->to && c->as != AS_MAP) spec_error(L, where, "needs a target (to)");
    lua_getfield(L, idx, "required");
    c->required = lua_toboolean(L, -1);
    lua_getfield(L, idx, "set");
    snprintf(inner, sizeof inner, "%.200s.set", where);
    compile_assigns(L, s, -1, &c->sets, inner);
    lua_getfield(L, idx, "split");
    c->split = lua_isnil(L, -1) ? "," : copy_text(L, s, spec_string(L, -1, where, "split: expected a string"), 0);
    if (!*c->split) spec_error(L, where, "split: name at least one separator");
    lua_pop(L, 6);
    if (c->as == AS_MAP) {
        lua_getfield(L, idx, "map");
        snprintf(inner, sizeof inner, "%.200s.map", where);
        compile_map(L, s, -1, c, inner);
        lua_pop(L, 1);
    }
}

/* where: "" for a spec of one section, else "sections[N]". */
static void compile_section(lua_State *L, csv *s, int idx, section *sec, const char *where) {
    char inner[300];
    int i;
    idx = mm_absindex(L, idx);
    luaL_checkstack(L, 8, "csv spec nested too deeply");
    if (*where) only_keys(L, idx, where, SECTION_KEYS); /* (a spec of one section: checked whole) */
    lua_getfield(L, idx, "name");
    snprintf(inner, sizeof inner, "%.200s%sname", where, *where ? "." : "");
    sec->name = lua_isnil(L, -1) ? NULL : copy_text(L, s, spec_string(L, -1, inner, "expected a string"), 1);
    lua_getfield(L, idx, "record");
    snprintf(inner, sizeof inner, "%.200s%srecord", where, *where ? "." : "");
    sec->record = lua_isnil(L, -1) ? NULL : copy_text(L, s, spec_string(L, -1, inner, "expected a record kind"), 0);
    lua_getfield(L, idx, "type");
    snprintf(inner, sizeof inner, "%.200s%stype", where, *where ? "." : "");
    sec->type = sec->record && lua_isnil(L, -1) ? NULL
              : copy_text(L, s, spec_string(L, -1, inner, "expected an event type"), 0);
    lua_getfield(L, idx, "set");
    snprintf(inner, sizeof inner, "%.200s%sset", where, *where ? "." : "");
    compile_assigns(L, s, -1, &sec->sets, inner);
    lua_getfield(L, idx, "columns");
    snprintf(inner, sizeof inner, "%.200s%scolumns", where, *where ? "." : "");
    if (!lua_istable(L, -1)) spec_error(L, inner, "expected an array of columns");
    sec->ncols = (int)mm_rawlen(L, -1);
    sec->cols = (column *)need(L, s, sizeof(column) * (size_t)(sec->ncols ? sec->ncols : 1));
    for (i = 0; i < sec->ncols; i++) {
        snprintf(inner, sizeof inner, "%.200s%scolumns[%d]", where, *where ? "." : "", i + 1);
        lua_rawgeti(L, -1, i + 1);
        if (!lua_istable(L, -1)) spec_error(L, inner, "expected a table");
        compile_column(L, s, mm_absindex(L, -1), &sec->cols[i], inner);
        lua_pop(L, 1);
    }
    lua_pop(L, 5);
}

void mm_csv_compile(lua_State *L, csv *s, int spec_idx) {
    const char *sep;
    int i;
    if (!lua_istable(L, spec_idx)) spec_error(L, "spec", "expected a table");
    only_keys(L, spec_idx, "spec", SPEC_KEYS);
    lua_getfield(L, spec_idx, "separator");
    sep = lua_isnil(L, -1) ? "," : spec_string(L, -1, "separator", "expected one character");
    if (strlen(sep) != 1) spec_error(L, "separator", "expected one character");
    s->sep = (unsigned char)sep[0];
    lua_getfield(L, spec_idx, "decimal_comma");
    s->decimal_comma = lua_toboolean(L, -1);
    lua_getfield(L, spec_idx, "dates");
    s->dmy = !lua_isnil(L, -1) && !strcmp(spec_string(L, -1, "dates", "expected \"mdy\" or \"dmy\""), "dmy");
    lua_getfield(L, spec_idx, "sections");
    s->sectioned = !lua_isnil(L, -1);
    if (s->sectioned) {
        char where[32];
        if (!lua_istable(L, -1)) spec_error(L, "sections", "expected an array of sections");
        s->nsecs = (int)mm_rawlen(L, -1);
        s->secs = (section *)need(L, s, sizeof(section) * (size_t)(s->nsecs ? s->nsecs : 1));
        for (i = 0; i < s->nsecs; i++) {
            snprintf(where, sizeof where, "sections[%d]", i + 1);
            lua_rawgeti(L, -1, i + 1);
            if (!lua_istable(L, -1)) spec_error(L, where, "expected a table");
            compile_section(L, s, -1, &s->secs[i], where);
            if (!s->secs[i].name) spec_error(L, where, "needs a name");
            lua_pop(L, 1);
        }
    } else {
        s->nsecs = 1;
        s->secs = s->cur = (section *)need(L, s, sizeof(section));
        compile_section(L, s, spec_idx, s->cur, "");
        s->need_header = 1;
    }
    lua_pop(L, 4);
}

void mm_csv_release(csv *s) { arena_free(s->arena); }
