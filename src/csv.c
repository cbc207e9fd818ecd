/* CSV exports of other apps as events: a streaming CSV reader (quotes, any
 * line ending, stray spaces, a byte-order mark, sections) and a mapping from
 * each row's columns to an event's fields, compiled once per import from a
 * Lua spec (lua/motomind/formats.lua writes them):
 *
 *   { separator = ",", decimal_comma = false, dates = "mdy" | "dmy",
 *     sections = { { name = "## Log", ... } },   -- or one section's fields:
 *     type = "fuel", set = { ["payload.currency"] = "USD" },
 *     columns = { { names = {"odometer", "odo (km)"}, to = "mileage",
 *                   as = "text" | "number" | "datetime" | "date" | "map",
 *                   required = true, set = {...},          -- when present
 *                   empty = { "0" },          -- values that mean "none"
 *                   map = { ["1"] = { ["payload.full"] = true },
 *                           ["template"] = false,      -- false: skip row
 *                           ["*"] = {...} } } } }      -- any other value
 *
 * Targets are dotted paths into the event ("payload.extra.tags"). A section
 * with record = "reminder" (and no type) makes records of that kind, not
 * events: each row becomes a JSON object { record = kind, ... } handed to
 * the import as a record (import.lua restores them). */
#include "import.h"
#include "payload.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CHUNK 65536

/* ---- an arena: the compiled spec is freed in one go ------------------- */

typedef struct block {
    struct block *next;
    size_t used, cap;
    double data[]; /* aligned for any field */
} block;

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

/* ---- the compiled spec ------------------------------------------------- */

enum { AS_TEXT, AS_NUMBER, AS_DATETIME, AS_DATE, AS_MAP };
enum { V_STRING, V_NUMBER, V_BOOL };

typedef struct assign {
    const char *path, *str;
    int kind, boolean;
    double num;
} assign;

typedef struct assigns {
    assign *a;
    int n;
} assigns;

typedef struct choice {
    const char *key;
    int skip;
    assigns sets;
} choice;

typedef struct column {
    const char **names, **empties; /* lower case */
    int nnames, nempties, as, required, index;
    const char *to, *expected; /* expected: the names, or the map's keys */
    assigns sets;
    choice *map;
    int nmap, any; /* any: the index of the "*" entry, or nmap */
} column;

typedef struct section {
    const char *name, *type, *record; /* type: an event's; record: another kind */
    assigns sets;
    column *cols;
    int ncols;
} section;

typedef struct csv {
    mm_source base;
    block *arena;
    FILE *f;
    int sep, decimal_comma, dmy, nsecs, sectioned, need_header;
    section *secs, *cur;
    const mm_schemas *schemas; /* for the header's payload check (NULL: none) */
    /* the reader */
    unsigned char buf[CHUNK];
    size_t pos, len;
    long bytes, line;
    char *text; /* the record's fields, each NUL-terminated */
    char *record; /* the last row made a record: its JSON text */
    size_t tlen, tcap, *starts;
    int nf, fcap;
    char err[512];
} csv;

static void free_csv(void *p) {
    csv *s = (csv *)p;
    arena_free(s->arena);
    free(s->text);
    free(s->record);
    free(s->starts);
    free(s);
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
static const char *const COLUMN_KEYS[] = {"as", "empty", "map", "names", "optional", "required", "set", "to", NULL};

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

static const char *const AS[] = {"text", "number", "datetime", "date", "map", NULL};

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
    if (!AS[i]) spec_error(L, where, "as: expected text, number, datetime, date or map");
    c->as = i;
    lua_getfield(L, idx, "to");
    c->to = lua_isnil(L, -1) ? NULL : copy_text(L, s, spec_string(L, -1, where, "to: expected a string"), 0);
    if (!c->to && c->as != AS_MAP) spec_error(L, where, "needs a target (to)");
    lua_getfield(L, idx, "required");
    c->required = lua_toboolean(L, -1);
    lua_getfield(L, idx, "set");
    snprintf(inner, sizeof inner, "%.200s.set", where);
    compile_assigns(L, s, -1, &c->sets, inner);
    lua_pop(L, 5);
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

/* ---- the reader -------------------------------------------------------- */

static int getch(csv *s) {
    if (s->pos == s->len) {
        s->len = fread(s->buf, 1, sizeof s->buf, s->f);
        s->pos = 0;
        if (s->len == 0) return EOF;
    }
    s->bytes++;
    return s->buf[s->pos++];
}

static int peekch(csv *s) {
    int c = getch(s);
    if (c != EOF) s->pos--, s->bytes--;
    return c;
}

static int addc(csv *s, int c) {
    if (s->tlen + 1 >= s->tcap) {
        size_t cap = s->tcap ? s->tcap * 2 : 1024;
        char *t = (char *)realloc(s->text, cap);
        if (!t) return 0;
        s->text = t;
        s->tcap = cap;
    }
    s->text[s->tlen++] = (char)c;
    return 1;
}

/* Ends the field that started at `start` (unquoted: trailing spaces trimmed). */
static int end_field(csv *s, size_t start, int quoted) {
    if (!quoted)
        while (s->tlen > start && (s->text[s->tlen - 1] == ' ' || s->text[s->tlen - 1] == '\t')) s->tlen--;
    if (!addc(s, '\0')) return 0;
    if (s->nf == s->fcap) {
        int cap = s->fcap ? s->fcap * 2 : 32;
        size_t *st = (size_t *)realloc(s->starts, sizeof *st * (size_t)cap);
        if (!st) return 0;
        s->starts = st;
        s->fcap = cap;
    }
    s->starts[s->nf++] = start;
    return 1;
}

/* Reads one record: 1, 0 at the end of the file, -1 out of memory. Counts
 * lines (\n, \r\n or a lone \r), also inside quoted fields, whose line
 * breaks become \n. */
static int read_record(csv *s) {
    int c = getch(s);
    s->nf = 0;
    s->tlen = 0;
    if (c == EOF) return 0;
    for (;;) {
        size_t start = s->tlen;
        int quoted = 0;
        while (c == ' ' || (c == '\t' && s->sep != '\t')) c = getch(s);
        if (c == '"') {
            quoted = 1;
            for (;;) {
                c = getch(s);
                if (c == EOF) break;
                if (c == '"' && (c = getch(s)) != '"') break;
                if (c == '\r') {
                    if (peekch(s) == '\n') getch(s);
                    c = '\n';
                }
                if (c == '\n') s->line++;
                if (!addc(s, c)) return -1;
            }
            while (c == ' ') c = getch(s);
        }
        while (c != EOF && c != s->sep && c != '\n' && c != '\r') {
            if (!addc(s, c)) return -1;
            c = getch(s);
        }
        if (!end_field(s, start, quoted)) return -1;
        if (c == s->sep) {
            c = getch(s);
            continue;
        }
        if (c == '\r' && peekch(s) == '\n') getch(s);
        if (c != EOF) s->line++;
        return 1;
    }
}

static const char *field(const csv *s, int i) { return s->text + s->starts[i]; }

/* ---- values ------------------------------------------------------------ */

/* A number, with a currency symbol or code around it, thousands separators,
 * a decimal point or (decimal_comma) comma. */
static int parse_number(const char *v, int decimal_comma, double *out) {
    char tmp[64], *end;
    const unsigned char *p = (const unsigned char *)v;
    size_t n = 0;
    int point = decimal_comma ? ',' : '.', thousands = decimal_comma ? '.' : ',';
    while (*p && (isalpha(*p) || *p >= 0x80 || *p == '$' || *p == ' ')) p++;
    if (*p == '-' || *p == '+') tmp[n++] = (char)*p++;
    for (; *p && n < sizeof tmp - 1; p++) {
        if (isdigit(*p)) tmp[n++] = (char)*p;
        else if (*p == point) tmp[n++] = '.';
        else if (*p != thousands && *p != '\'') break;
    }
    tmp[n] = '\0';
    /* after it: a symbol, or a code after a space ("12,50€", "45.10 EUR"),
     * not letters stuck to the digits ("3O" is a typo, not 3) */
    while (*p && (*p >= 0x80 || *p == '$')) p++;
    if (*p == ' ')
        while (*p && (isalpha(*p) || *p >= 0x80 || *p == '$' || *p == ' ')) p++;
    if (*p || n == 0 || !isdigit((unsigned char)tmp[n - 1])) return 0;
    *out = strtod(tmp, &end);
    return *end == '\0';
}

/* Digits at *p into *v; returns how many (at most 4). */
static int digits(const char **p, int *v) {
    int n = 0;
    *v = 0;
    while (n < 4 && isdigit((unsigned char)**p)) *v = *v * 10 + (*(*p)++ - '0'), n++;
    return n;
}

static int days_in(int m, int y) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0) ? 29 : days[m - 1];
}

/* A date, and a time unless date_only: 2013-03-11 3:14 PM, 3/14/14 (dmy
 * when s->dmy), 11.03.2013 14:05, 2021-01-02T08:00:00Z. Writes ISO text. */
static int parse_when(const csv *s, const char *v, int date_only, char *out, size_t outlen) {
    const char *p = v, *zone = "";
    int a, b, c, na, nc, y, m, d, hh = 0, mi = 0, ss = 0, ampm = 0;
    char sep;
    na = digits(&p, &a);
    sep = *p;
    if (!na || (sep != '-' && sep != '/' && sep != '.')) return 0;
    p++;
    if (!digits(&p, &b) || *p++ != sep || !(nc = digits(&p, &c))) return 0;
    if (na == 4) y = a, m = b, d = c;
    else if (sep == '.' || s->dmy) d = a, m = b, y = c;
    else m = a, d = b, y = c;
    if (na != 4 && nc == 2) y += y < 70 ? 2000 : 1900;
    else if (na != 4 && nc != 4) return 0;
    if (m < 1 || m > 12 || d < 1 || d > days_in(m, y)) return 0;
    while (*p == ' ') p++;
    if (*p == 'T') p++;
    if (isdigit((unsigned char)*p)) {
        if (!digits(&p, &hh) || *p++ != ':' || digits(&p, &mi) != 2) return 0;
        if (*p == ':' && (p++, digits(&p, &ss) != 2)) return 0;
        if (*p == '.') while (isdigit((unsigned char)*++p)) {}
        while (*p == ' ') p++;
        if ((*p == 'a' || *p == 'A' || *p == 'p' || *p == 'P') && (p[1] == 'm' || p[1] == 'M')) {
            ampm = *p == 'p' || *p == 'P' ? 2 : 1;
            p += 2;
            if (hh < 1 || hh > 12) return 0;
            hh = hh % 12 + (ampm == 2 ? 12 : 0);
        }
        if (hh > 23 || mi > 59 || ss > 59) return 0;
        if (*p == 'Z' || *p == '+' || *p == '-') zone = p, p += strlen(p);
    }
    while (*p == ' ') p++;
    if (*p) return 0;
    if (date_only) snprintf(out, outlen, "%04d-%02d-%02d", y, m, d);
    else snprintf(out, outlen, "%04d-%02d-%02d %02d:%02d:%02d%.8s", y, m, d, hh, mi, ss, zone);
    return 1;
}

/* Puts val at a dotted path of obj (making the objects on the way, replacing
 * what was there). Takes val; 0 if out of memory. */
static int set_path(cJSON *obj, const char *path, cJSON *val) {
    char key[64];
    const char *dot;
    if (!val) return 0;
    while ((dot = strchr(path, '.')) != NULL) {
        size_t n = (size_t)(dot - path) < sizeof key ? (size_t)(dot - path) : sizeof key - 1;
        cJSON *child;
        memcpy(key, path, n);
        key[n] = '\0';
        child = cJSON_GetObjectItemCaseSensitive(obj, key);
        if (!child && !(child = cJSON_AddObjectToObject(obj, key))) break;
        obj = child;
        path = dot + 1;
    }
    if (dot) {
        cJSON_Delete(val);
        return 0;
    }
    if (cJSON_GetObjectItemCaseSensitive(obj, path))
        return cJSON_ReplaceItemInObjectCaseSensitive(obj, path, val);
    return cJSON_AddItemToObject(obj, path, val);
}

static int apply(cJSON *ev, const assigns *sets) {
    int i;
    for (i = 0; i < sets->n; i++) {
        const assign *a = &sets->a[i];
        cJSON *v = a->kind == V_BOOL     ? cJSON_CreateBool(a->boolean)
                   : a->kind == V_NUMBER ? cJSON_CreateNumber(a->num)
                                         : cJSON_CreateString(a->str);
        if (!set_path(ev, a->path, v)) return 0;
    }
    return 1;
}

/* ---- records to events ------------------------------------------------- */

static int assigns_path(const assigns *sets, const char *path) {
    int i;
    for (i = 0; i < sets->n; i++)
        if (!strcmp(sets->a[i].path, path)) return 1;
    return 0;
}

/* Whether column c writes path: its target, its sets, or one of its map's. */
static int column_writes(const column *c, const char *path) {
    int j;
    if ((c->as != AS_MAP && !strcmp(c->to, path)) || assigns_path(&c->sets, path)) return 1;
    for (j = 0; j < c->nmap; j++)
        if (assigns_path(&c->map[j].sets, path)) return 1;
    return 0;
}

/* Whether a row can carry path: the section sets it, or a column the
 * header has writes it. */
static int header_gives(const section *sec, const char *path) {
    int i;
    if (assigns_path(&sec->sets, path)) return 1;
    for (i = 0; i < sec->ncols; i++)
        if (sec->cols[i].index >= 0 && column_writes(&sec->cols[i], path)) return 1;
    return 0;
}

/* Appends to out the first name of each column of the spec (present or not)
 * that writes path, once each, for the message. */
static void columns_for(const section *sec, const char *path, char *out, size_t n) {
    int i, k, seen;
    for (i = 0; i < sec->ncols; i++) {
        if (!column_writes(&sec->cols[i], path)) continue;
        for (k = 0, seen = 0; k < i && !seen; k++)
            seen = column_writes(&sec->cols[k], path) && !strcmp(sec->cols[k].names[0], sec->cols[i].names[0]);
        if (!seen) snprintf(out + strlen(out), n - strlen(out), "%s%s", *out ? ", " : "", sec->cols[i].names[0]);
    }
}

/* Whether the header gives a field of the list from first (group: each of
 * an any_of group; else first alone); else the header's error, once. */
static int header_has(csv *s, mm_item *item, const cJSON *first, int group) {
    const section *sec = s->cur;
    const cJSON *f;
    char path[128], names[200] = "", cols[200] = "";
    for (f = first; f; f = group ? f->next : NULL) {
        snprintf(path, sizeof path, "payload.%s", f->valuestring);
        if (header_gives(sec, path)) return 1;
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", *names ? " or " : "", f->valuestring);
        columns_for(sec, path, cols, sizeof cols);
    }
    snprintf(s->err, sizeof s->err, "header: no column gives the %s event's %s (expected %s)", sec->type, names,
             *cols ? cols : "a column the layout maps to it");
    item->reason = s->err;
    return -1;
}

/* The payload rules a header decides (sql/payloads.json): a field the
 * section's event type requires, or one of its any_of group, that no column
 * can give is refused once, at the header, not on every row. */
static int payload_needs(csv *s, mm_item *item) {
    const cJSON *type, *list, *e;
    if (!s->schemas || !s->cur->type) return 1;
    type = cJSON_GetObjectItemCaseSensitive(mm_schemas_types(s->schemas), s->cur->type);
    if (!type) return 1; /* an unknown type: each row says so */
    list = cJSON_GetObjectItemCaseSensitive(type, "any_of");
    if (list && list->child && header_has(s, item, list->child, 1) < 0) return -1;
    list = cJSON_GetObjectItemCaseSensitive(type, "required");
    for (e = list ? list->child : NULL; e; e = e->next)
        if (header_has(s, item, e, 0) < 0) return -1;
    return 1;
}

/* The header row: finds each column's index. */
static int read_header(csv *s, mm_item *item) {
    int i, j, k;
    s->need_header = 0;
    for (i = 0; i < s->cur->ncols; i++) {
        column *c = &s->cur->cols[i];
        c->index = -1;
        for (j = 0; j < s->nf && c->index < 0; j++)
            for (k = 0; k < c->nnames; k++)
                if (!strcasecmp(field(s, j), c->names[k])) c->index = j;
        if (c->index < 0 && c->required) {
            snprintf(s->err, sizeof s->err, "header: no %s column (expected %s)", c->names[0], c->expected);
            item->reason = s->err;
            return -1;
        }
    }
    return payload_needs(s, item);
}

/* Refuses the row: "column: expected ..., got \"value\"". */
static int refuse(csv *s, mm_item *item, cJSON *ev, const column *c, const char *what) {
    const char *v = field(s, c->index);
    cJSON_Delete(ev);
    snprintf(s->err, sizeof s->err, "%s: expected %s, got \"%.80s%s\"", c->names[0], what, v,
             strlen(v) > 80 ? "..." : "");
    item->reason = s->err;
    item->column = c->names[0];
    return 1;
}

/* Whether v is one of the column's values that mean "none". */
static int means_none(const column *c, const char *v) {
    int i;
    for (i = 0; i < c->nempties; i++)
        if (!strcasecmp(c->empties[i], v)) return 1;
    return 0;
}

static int convert_row(csv *s, mm_item *item) {
    const section *sec = s->cur;
    cJSON *ev = cJSON_CreateObject();
    char when[48], what[300];
    int i, j;
    if (!ev || !(sec->record ? set_path(ev, "record", cJSON_CreateString(sec->record))
                             : set_path(ev, "type", cJSON_CreateString(sec->type))) || !apply(ev, &sec->sets))
        goto oom;
    for (i = 0; i < sec->ncols; i++) {
        const column *c = &sec->cols[i];
        const char *v;
        cJSON *val = NULL;
        double d;
        if (c->index < 0 || c->index >= s->nf || !*(v = field(s, c->index)) || means_none(c, v)) continue;
        switch (c->as) {
        case AS_TEXT: val = cJSON_CreateString(v); break;
        case AS_NUMBER:
            if (!parse_number(v, s->decimal_comma, &d)) return refuse(s, item, ev, c, "a number");
            val = cJSON_CreateNumber(d);
            break;
        case AS_DATETIME:
        case AS_DATE:
            if (!parse_when(s, v, c->as == AS_DATE, when, sizeof when))
                return refuse(s, item, ev, c, s->dmy ? "a date (DD/MM/YYYY, DD.MM.YYYY or YYYY-MM-DD, and a time)"
                                                     : "a date (MM/DD/YYYY, DD.MM.YYYY or YYYY-MM-DD, and a time)");
            val = cJSON_CreateString(when);
            break;
        default:
            for (j = 0; j < c->nmap && strcasecmp(c->map[j].key, v); j++) {}
            if (j == c->nmap) j = c->any;
            if (j == c->nmap) {
                snprintf(what, sizeof what, "one of %s", c->expected);
                return refuse(s, item, ev, c, what);
            }
            if (c->map[j].skip) {
                cJSON_Delete(ev);
                return 1;
            }
            if (!apply(ev, &c->map[j].sets)) goto oom;
        }
        if (c->as != AS_MAP && !set_path(ev, c->to, val)) goto oom;
        if (!apply(ev, &c->sets)) goto oom;
    }
    if (sec->record) { /* a record: its text, kept until the next row */
        free(s->record);
        s->record = cJSON_PrintUnformatted(ev);
        cJSON_Delete(ev);
        if (!s->record) goto oom_text;
        item->record = s->record;
        return 1;
    }
    item->event = ev;
    return 1;
oom_text:
    item->reason = "out of memory";
    return -1;
oom:
    cJSON_Delete(ev);
    item->reason = "out of memory";
    return -1;
}

static int row_blank(const csv *s) {
    int i;
    for (i = 0; i < s->nf; i++)
        if (*field(s, i)) return 0;
    return 1;
}

static int csv_next(mm_source *base, mm_item *item) {
    csv *s = (csv *)base;
    int i, r;
    item->line = s->line;
    r = read_record(s);
    if (r <= 0) {
        if (r < 0) item->reason = "out of memory";
        return r;
    }
    if (row_blank(s)) return 1;
    if (s->sectioned && !strncmp(field(s, 0), "##", 2)) {
        s->cur = NULL;
        for (i = 0; i < s->nsecs; i++)
            if (!strcasecmp(field(s, 0), s->secs[i].name)) s->cur = &s->secs[i];
        s->need_header = 1;
        return 1;
    }
    if (!s->cur) return 1; /* a section that holds no events */
    if (s->need_header) return read_header(s, item);
    return convert_row(s, item);
}

static long csv_offset(mm_source *s) { return ((csv *)s)->bytes; }

mm_source *mm_csv_source(lua_State *L, int spec_idx, FILE *f, const mm_schemas *schemas) {
    mm_box *box;
    csv *s;
    const char *sep;
    int i;
    spec_idx = mm_absindex(L, spec_idx); /* before the box goes on the stack */
    box = mm_box_new(L);
    s = (csv *)calloc(1, sizeof *s);
    if (!s) luaL_error(L, "out of memory");
    mm_box_hold(box, s, free_csv);
    s->base.next = csv_next;
    s->base.offset = csv_offset;
    s->f = f;
    s->schemas = schemas;
    s->line = 1;
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
    if (!f) return &s->base; /* (compiled only: csv_check) */
    s->len = fread(s->buf, 1, sizeof s->buf, f);
    if (s->len >= 3 && !memcmp(s->buf, "\xEF\xBB\xBF", 3)) s->pos = 3;
    return &s->base;
}
