/* Payload validation by interpreting the schema document. The order of the
 * checks, and every message, are mirrored by the SQL generated from the same
 * document (tools/payload_sql.lua): a spec holds them to identical
 * verdicts. Check order for an object: unknown keys (first in byte order),
 * `extra` (top level), then each field in byte order of its name (presence,
 * type and constraints, nested values, `requires`), then `any_of`. */
#include "payload.h"
#include "text.h"
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GOT_MAX_CHARS 40
#define MAX_SCHEMA_DEPTH 8

/* The schema document compiled once at load: kinds as enums, bounds as
 * doubles, an object's fields as an array sorted by name. Names and lists
 * point into the document, which lives as long as the schemas. */
enum kind { K_NUMBER, K_INTEGER, K_STRING, K_BOOLEAN, K_DATE, K_OBJECT, K_ARRAY };
enum format { F_NONE, F_CURRENCY, F_URL };

typedef struct rule rule;
typedef struct field {
    const char *name;
    rule *rule;
    int required;
    int *requires; /* sibling fields (indexes into the object's fields) */
    int nrequires;
} field;

struct rule {
    enum kind kind;
    enum format format;
    int has_min, has_max, exclusive_min, max_length, max_items; /* -1: no limit */
    double min, max;
    const cJSON *enum_list, *any_of;
    field *fields;
    int nfields;
    int *any_of_at, nany_of; /* any_of as indexes into fields */
    rule *items;
    char desc[200]; /* what it expects, for messages */
};

struct mm_schemas {
    cJSON *root;
    rule **types; /* parallel to the root's children */
    int ntypes;
    void **allocs; /* everything compiled, to free */
    int nallocs, capallocs;
};

typedef struct check {
    char *err;
    size_t errlen;
    char path[512];
    size_t plen;
} check;

/* ---- canonical JSON ---------------------------------------------------- */

typedef struct keyed {
    cJSON *item;
    size_t order;
} keyed;

static int keyed_cmp(const void *a, const void *b) {
    const keyed *x = (const keyed *)a, *y = (const keyed *)b;
    int c = strcmp(x->item->string, y->item->string);
    if (c) return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

#define SMALL_OBJECT 16

int mm_json_normalize(cJSON *item) {
    cJSON *c;
    size_t n = 0, i, kept = 0;
    int equal = 0; /* whether two keys may be equal: the sort met them (qsort: not known) */
    keyed small[SMALL_OBJECT], *all;
    if (!cJSON_IsObject(item) && !cJSON_IsArray(item)) return 1;
    for (c = item->child; c; c = c->next) {
        if (!mm_json_normalize(c)) return 0;
        n++;
    }
    if (!cJSON_IsObject(item) || n < 2) return 1;
    all = n <= SMALL_OBJECT ? small : (keyed *)malloc(n * sizeof *all);
    if (!all) return 0;
    for (c = item->child, i = 0; c; c = c->next, i++) {
        all[i].item = c;
        all[i].order = i;
    }
    if (n <= SMALL_OBJECT) { /* insertion sort: a payload's few keys, no call per comparison */
        for (i = 1; i < n; i++) {
            keyed k = all[i];
            size_t j = i;
            int cmp = 1;
            for (; j > 0 && (cmp = strcmp(all[j - 1].item->string, k.item->string)) > 0; j--) all[j] = all[j - 1];
            equal |= cmp == 0;
            all[j] = k;
        }
    } else {
        equal = 1;
        qsort(all, n, sizeof *all, keyed_cmp);
    }
    for (i = 0; i < n; i++) {
        if (equal && i + 1 < n && !strcmp(all[i].item->string, all[i + 1].item->string)) {
            all[i].item->next = all[i].item->prev = NULL;
            cJSON_Delete(all[i].item); /* an earlier duplicate: the last wins */
            continue;
        }
        all[kept++] = all[i];
    }
    for (i = 0; i < kept; i++) {
        all[i].item->next = i + 1 < kept ? all[i + 1].item : NULL;
        all[i].item->prev = i > 0 ? all[i - 1].item : all[kept - 1].item;
    }
    item->child = all[0].item; /* cJSON: the head's prev is the tail */
    if (all != small) free(all);
    return 1;
}

/* ---- rendering --------------------------------------------------------- */

/* Numbers as the database renders them: integers below 1e15 in full, other
 * values in their shortest exact form. */
static void format_number(double d, char *out, size_t n) {
    if (d == 0) { snprintf(out, n, "0"); return; }
    if (d == floor(d) && fabs(d) < 1e15) { snprintf(out, n, "%.0f", d); return; }
    mm_shortest_double(d, out, n);
}

/* Appends s JSON-quoted, escaped as PostgreSQL's escape_json does. */
static size_t quote(const char *s, size_t len, char *out, size_t n) {
    size_t o = 0, i;
    const char *esc;
    char buf[8];
#define PUT(ch) do { char put_ = (ch); if (o + 1 < n) out[o++] = put_; } while (0)
    PUT('"');
    for (i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        esc = NULL;
        switch (ch) {
        case '\b': esc = "\\b"; break;
        case '\f': esc = "\\f"; break;
        case '\n': esc = "\\n"; break;
        case '\r': esc = "\\r"; break;
        case '\t': esc = "\\t"; break;
        case '"': esc = "\\\""; break;
        case '\\': esc = "\\\\"; break;
        default:
            if (ch < ' ') { snprintf(buf, sizeof buf, "\\u%04x", ch); esc = buf; }
        }
        if (esc) while (*esc) PUT(*esc++);
        else PUT((char)ch);
    }
    PUT('"');
#undef PUT
    out[o < n ? o : n - 1] = '\0';
    return o;
}

/* Byte length of the first `chars` UTF-8 characters of s (all of s if shorter). */
static size_t utf8_prefix(const char *s, size_t chars) {
    size_t i = 0;
    while (s[i] && chars > 0) {
        i++;
        while (((unsigned char)s[i] & 0xC0) == 0x80) i++;
        chars--;
    }
    return i;
}

static size_t utf8_length(const char *s) {
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

/* A number's value; raw items are integers beyond 2^53 built from Lua. */
static int as_number(const cJSON *v, double *d) {
    char *end;
    if (cJSON_IsNumber(v)) {
        *d = v->valuedouble;
        return 1;
    }
    if (!cJSON_IsRaw(v) || !v->valuestring) return 0;
    *d = strtod(v->valuestring, &end);
    return *end == '\0';
}

/* What a value was, for "got ..." in messages. */
static void describe_got(const cJSON *v, char *out, size_t n) {
    double d;
    if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        size_t cut = utf8_prefix(s, GOT_MAX_CHARS);
        char tmp[GOT_MAX_CHARS * 4 + 8];
        if (cut > sizeof tmp - 4) cut = sizeof tmp - 4; /* valid UTF-8 never needs this */
        memcpy(tmp, s, cut);
        if (s[cut]) memcpy(tmp + cut, "...", 4);
        else tmp[cut] = '\0';
        quote(tmp, strlen(tmp), out, n);
    } else if (as_number(v, &d)) {
        format_number(d, out, n);
    } else if (cJSON_IsObject(v)) {
        snprintf(out, n, "object");
    } else if (cJSON_IsArray(v)) {
        snprintf(out, n, "array");
    } else if (cJSON_IsBool(v)) {
        snprintf(out, n, cJSON_IsTrue(v) ? "true" : "false");
    } else {
        snprintf(out, n, "null");
    }
}

static const char *str_field(const cJSON *spec, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(spec, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* What a spec expects, e.g. "number >= 0", "one of pass, fail". */
static void describe_spec(const cJSON *spec, char *out, size_t n) {
    const char *type = str_field(spec, "type"), *fmt = str_field(spec, "format");
    const cJSON *min = cJSON_GetObjectItemCaseSensitive(spec, "min");
    const cJSON *max = cJSON_GetObjectItemCaseSensitive(spec, "max");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(spec, "enum");
    const cJSON *len = cJSON_GetObjectItemCaseSensitive(spec, "max_length");
    const cJSON *items = cJSON_GetObjectItemCaseSensitive(spec, "max_items");
    int excl = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(spec, "exclusive_min"));
    char a[40], b[40];
    if (!strcmp(type, "number") || !strcmp(type, "integer")) {
        if (min) format_number(min->valuedouble, a, sizeof a);
        if (max) format_number(max->valuedouble, b, sizeof b);
        if (min && max && excl) snprintf(out, n, "%s > %s and <= %s", type, a, b);
        else if (min && max) snprintf(out, n, "%s from %s to %s", type, a, b);
        else if (min) snprintf(out, n, "%s %s %s", type, excl ? ">" : ">=", a);
        else if (max) snprintf(out, n, "%s <= %s", type, b);
        else snprintf(out, n, "%s", type);
    } else if (!strcmp(type, "string") && en) {
        size_t o = (size_t)snprintf(out, n, "one of ");
        const cJSON *e;
        for (e = en->child; e && o < n; e = e->next)
            o += (size_t)snprintf(out + o, n - o, "%s%s", e->valuestring, e->next ? ", " : "");
    } else if (!strcmp(type, "string") && fmt) {
        snprintf(out, n, "%s", !strcmp(fmt, "currency") ? "ISO 4217 currency code" : "URL");
    } else if (!strcmp(type, "string") && len) {
        snprintf(out, n, "string of at most %d characters", len->valueint);
    } else if (!strcmp(type, "date")) {
        snprintf(out, n, "date (YYYY-MM-DD)");
    } else if (!strcmp(type, "array") && items) {
        snprintf(out, n, "array of at most %d items", items->valueint);
    } else {
        snprintf(out, n, "%s", type);
    }
}

/* ---- checks ------------------------------------------------------------ */

static int fail(check *c, const char *fmt, ...) {
    va_list ap;
    int o = snprintf(c->err, c->errlen, "%s", c->path);
    va_start(ap, fmt);
    if (o >= 0 && (size_t)o < c->errlen) vsnprintf(c->err + o, c->errlen - (size_t)o, fmt, ap);
    va_end(ap);
    return 0;
}

static int expected(check *c, const rule *sp, const cJSON *v) {
    char got[GOT_MAX_CHARS * 6 + 16];
    describe_got(v, got, sizeof got);
    return fail(c, ": expected %s, got %s", sp->desc, got);
}

static size_t path_push(check *c, const char *key, int index) {
    size_t old = c->plen, room = sizeof c->path - old - 1, n;
    char digits[16], *d = digits + sizeof digits;
    if (key) {
        n = strlen(key);
        if (room < n + 1) return old;
        c->path[c->plen++] = '.';
        memcpy(c->path + c->plen, key, n);
        c->plen += n;
    } else {
        *--d = ']';
        do { *--d = (char)('0' + index % 10); index /= 10; } while (index > 0);
        *--d = '[';
        n = (size_t)(digits + sizeof digits - d);
        if (room < n) return old;
        memcpy(c->path + c->plen, d, n);
        c->plen += n;
    }
    c->path[c->plen] = '\0';
    return old;
}

static void path_pop(check *c, size_t old) {
    c->plen = old;
    c->path[old] = '\0';
}

static int valid_date(const char *s) {
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int i, y, m, d, dim;
    if (strlen(s) != 10 || s[4] != '-' || s[7] != '-') return 0;
    for (i = 0; i < 10; i++)
        if (i != 4 && i != 7 && (s[i] < '0' || s[i] > '9')) return 0;
    y = atoi(s);
    m = atoi(s + 5);
    d = atoi(s + 8);
    if (y < 1 || m < 1 || m > 12) return 0;
    dim = days[m - 1] + (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0));
    return d >= 1 && d <= dim;
}

static int is_alpha(char ch) { return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z'); }
static int is_digit(char ch) { return ch >= '0' && ch <= '9'; }

/* scheme://rest, the rest non-empty and free of white space. */
static int valid_url(const char *s) {
    if (!is_alpha(*s)) return 0;
    while (is_alpha(*s) || is_digit(*s) || *s == '+' || *s == '.' || *s == '-') s++;
    if (strncmp(s, "://", 3) != 0 || !s[3]) return 0;
    for (s += 3; *s; s++)
        if (strchr(" \t\n\r\f\v", *s)) return 0;
    return 1;
}

static int valid_currency(const char *s) {
    return strlen(s) == 3 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z' &&
           s[2] >= 'A' && s[2] <= 'Z';
}

static int in_list(const cJSON *list, const char *s) {
    const cJSON *e;
    for (e = list ? list->child : NULL; e; e = e->next)
        if (cJSON_IsString(e) && !strcmp(e->valuestring, s)) return 1;
    return 0;
}

static int check_object(check *c, const rule *sp, const cJSON *obj, int top);

static int check_string(check *c, const rule *sp, const cJSON *v) {
    size_t n;
    if (sp->enum_list && !in_list(sp->enum_list, v->valuestring)) return expected(c, sp, v);
    if (sp->format == F_CURRENCY && !valid_currency(v->valuestring)) return expected(c, sp, v);
    if (sp->format == F_URL && !valid_url(v->valuestring)) return expected(c, sp, v);
    if (sp->max_length >= 0 && (n = utf8_length(v->valuestring)) > (size_t)sp->max_length)
        return fail(c, ": expected string of at most %d characters, got %lu characters",
                    sp->max_length, (unsigned long)n);
    return 1;
}

static int check_value(check *c, const rule *sp, const cJSON *v) {
    double d;
    const cJSON *e;
    int i = 0, n;
    switch (sp->kind) {
    case K_NUMBER: case K_INTEGER:
        if (!as_number(v, &d)) return expected(c, sp, v);
        if ((sp->kind == K_INTEGER && d != floor(d)) ||
            (sp->has_min && (sp->exclusive_min ? d <= sp->min : d < sp->min)) ||
            (sp->has_max && d > sp->max))
            return expected(c, sp, v);
        return 1;
    case K_STRING: return cJSON_IsString(v) ? check_string(c, sp, v) : expected(c, sp, v);
    case K_BOOLEAN: return cJSON_IsBool(v) ? 1 : expected(c, sp, v);
    case K_DATE: return cJSON_IsString(v) && valid_date(v->valuestring) ? 1 : expected(c, sp, v);
    case K_OBJECT: return cJSON_IsObject(v) ? check_object(c, sp, v, 0) : expected(c, sp, v);
    case K_ARRAY:
        if (!cJSON_IsArray(v)) return expected(c, sp, v);
        n = cJSON_GetArraySize(v);
        if (sp->max_items >= 0 && n > sp->max_items)
            return fail(c, ": expected array of at most %d items, got %d items", sp->max_items, n);
        for (e = v->child; e; e = e->next) {
            size_t old = path_push(c, NULL, ++i);
            if (!check_value(c, sp->items, e)) return 0;
            path_pop(c, old);
        }
        return 1;
    }
    return 0;
}

/* The fields' values of obj (NULL: absent) in at[], from one merge walk of
 * its keys (normalized) and the spec's fields, both sorted; fails on the
 * first key (in byte order) that names no field. */
static int pair_fields(check *c, const rule *sp, const cJSON *obj, int top, const cJSON **at) {
    const cJSON *k, *extra = NULL;
    int i, cmp;
    for (i = 0; i < sp->nfields; i++) at[i] = NULL;
    for (k = obj->child, i = 0; k;) {
        cmp = i < sp->nfields ? strcmp(k->string, sp->fields[i].name) : -1;
        if (cmp == 0) { at[i++] = k; k = k->next; continue; }
        if (cmp > 0) { i++; continue; }
        if (top && !strcmp(k->string, "extra")) { extra = k; k = k->next; continue; }
        path_push(c, k->string, 0);
        return fail(c, top ? ": unknown field (put free-form fields under payload.extra)" : ": unknown field");
    }
    if (extra && !cJSON_IsObject(extra)) {
        char got[GOT_MAX_CHARS * 6 + 16];
        describe_got(extra, got, sizeof got);
        path_push(c, "extra", 0);
        return fail(c, ": expected object, got %s", got);
    }
    return 1;
}

/* Each field in order (presence, value, requires), then any_of, over the
 * values pair_fields found. */
static int check_fields(check *c, const rule *sp, const cJSON **at) {
    int i, j;
    for (i = 0; i < sp->nfields; i++) {
        const field *f = &sp->fields[i];
        size_t old = path_push(c, f->name, 0);
        if (!at[i]) {
            if (f->required) return fail(c, ": is required");
            path_pop(c, old);
            continue;
        }
        if (!check_value(c, f->rule, at[i])) return 0;
        for (j = 0; j < f->nrequires; j++)
            if (!at[f->requires[j]]) {
                char base[sizeof c->path];
                memcpy(base, c->path, old);
                base[old] = '\0';
                return fail(c, ": needs %s.%s", base, sp->fields[f->requires[j]].name);
            }
        path_pop(c, old);
    }
    if (sp->any_of) { /* (an empty list refuses every object, as in SQL) */
        const cJSON *e;
        char names[256];
        size_t o = 0;
        for (j = 0; j < sp->nany_of; j++)
            if (at[sp->any_of_at[j]]) return 1;
        names[0] = '\0';
        for (e = sp->any_of->child; e && o < sizeof names; e = e->next)
            o += (size_t)snprintf(names + o, sizeof names - o, "%s%s", e->valuestring, e->next ? ", " : "");
        return fail(c, ": needs one of %s", names);
    }
    return 1;
}

#define PAIRED_ON_STACK 32

/* An object against its spec: the pairs on the stack (the heap past 32
 * fields), then the fields' checks over them. */
static int check_object(check *c, const rule *sp, const cJSON *obj, int top) {
    const cJSON *stack[PAIRED_ON_STACK], **at = stack;
    int ok;
    if (sp->nfields > PAIRED_ON_STACK && !(at = (const cJSON **)malloc((size_t)sp->nfields * sizeof *at)))
        return fail(c, ": out of memory");
    ok = pair_fields(c, sp, obj, top, at) && check_fields(c, sp, at);
    if (at != stack) free(at);
    return ok;
}

/* (payload.h; check_text finds the place when not) */
int mm_json_text_valid(const cJSON *item) {
    const cJSON *e;
    if (cJSON_IsString(item)) return mm_utf8_valid((const unsigned char *)item->valuestring);
    for (e = (cJSON_IsObject(item) || cJSON_IsArray(item)) ? item->child : NULL; e; e = e->next)
        if ((e->string && !mm_utf8_valid((const unsigned char *)e->string)) || !mm_json_text_valid(e)) return 0;
    return 1;
}

/* Every key and string of the tree is valid UTF-8; else names the first
 * offending place. */
static int check_text(check *c, const cJSON *item) {
    const cJSON *e;
    int i = 0;
    if (cJSON_IsString(item) && !mm_utf8_valid((const unsigned char *)item->valuestring))
        return fail(c, ": text is not valid UTF-8");
    for (e = (cJSON_IsObject(item) || cJSON_IsArray(item)) ? item->child : NULL; e; e = e->next) {
        size_t old;
        i++;
        if (e->string && !mm_utf8_valid((const unsigned char *)e->string))
            return fail(c, ": a key is not valid UTF-8");
        old = cJSON_IsObject(item) ? path_push(c, e->string, 0) : path_push(c, NULL, i);
        if (!check_text(c, e)) return 0;
        path_pop(c, old);
    }
    return 1;
}

static int payload_check(const mm_schemas *s, const char *type, cJSON *payload, int text_valid,
                         char *err, size_t errlen) {
    check c;
    const rule *sp = NULL;
    const cJSON *t;
    char q[256];
    int i;
    c.err = err;
    c.errlen = errlen;
    strcpy(c.path, "payload");
    c.plen = strlen(c.path);
    if (!mm_utf8_valid((const unsigned char *)type)) {
        snprintf(err, errlen, "type: text is not valid UTF-8");
        return 0;
    }
    for (t = s->root->child, i = 0; t && !sp; t = t->next, i++)
        if (!strcmp(t->string, type)) sp = s->types[i];
    if (!sp) {
        quote(type, utf8_prefix(type, 64), q, sizeof q);
        snprintf(err, errlen, "type: unknown event type %s", q);
        return 0;
    }
    if (!cJSON_IsObject(payload)) {
        char got[GOT_MAX_CHARS * 6 + 16];
        describe_got(payload, got, sizeof got);
        return fail(&c, ": expected object, got %s", got);
    }
    if (!text_valid && !mm_json_text_valid(payload) && !check_text(&c, payload)) return 0;
    if (!mm_json_normalize(payload)) return fail(&c, ": out of memory");
    return check_object(&c, sp, payload, 1);
}

int mm_payload_check(const mm_schemas *s, const char *type, cJSON *payload, char *err, size_t errlen) {
    return payload_check(s, type, payload, 0, err, errlen);
}

int mm_payload_check_valid_text(const mm_schemas *s, const char *type, cJSON *payload, char *err, size_t errlen) {
    return payload_check(s, type, payload, 1, err, errlen);
}

/* ---- the schema document ----------------------------------------------- */

static const char *const TYPES[] = {"number", "integer", "string", "boolean", "date",
                                    "object", "array", NULL};

static int schema_error(char *err, size_t errlen, const char *where, const char *what) {
    snprintf(err, errlen, "payload schema %s: %s", where, what);
    return 0;
}

static int names_fields(const cJSON *list, const cJSON *fields) {
    const cJSON *e;
    if (!list) return 1;
    if (!cJSON_IsArray(list)) return 0;
    for (e = list->child; e; e = e->next)
        if (!cJSON_IsString(e) || !cJSON_GetObjectItemCaseSensitive(fields, e->valuestring)) return 0;
    return 1;
}

static int check_spec(const cJSON *spec, const char *where, int depth, char *err, size_t errlen);

static int check_object_spec(const cJSON *spec, const char *where, int depth, char *err, size_t errlen) {
    const cJSON *fields = cJSON_GetObjectItemCaseSensitive(spec, "fields"), *f;
    char at[256];
    if (!cJSON_IsObject(fields)) return schema_error(err, errlen, where, "needs a \"fields\" object");
    if (!names_fields(cJSON_GetObjectItemCaseSensitive(spec, "required"), fields) ||
        !names_fields(cJSON_GetObjectItemCaseSensitive(spec, "any_of"), fields))
        return schema_error(err, errlen, where, "\"required\" and \"any_of\" must list its fields");
    for (f = fields->child; f; f = f->next) {
        snprintf(at, sizeof at, "%s.%s", where, f->string);
        if (!check_spec(f, at, depth + 1, err, errlen)) return 0;
        if (!names_fields(cJSON_GetObjectItemCaseSensitive(f, "requires"), fields))
            return schema_error(err, errlen, at, "\"requires\" must list sibling fields");
    }
    return 1;
}

static int check_spec(const cJSON *spec, const char *where, int depth, char *err, size_t errlen) {
    const char *type = str_field(spec, "type"), *fmt = str_field(spec, "format");
    int i, known = 0;
    if (depth > MAX_SCHEMA_DEPTH) return schema_error(err, errlen, where, "nested too deeply");
    for (i = 0; type && TYPES[i]; i++) known |= !strcmp(type, TYPES[i]);
    if (!known) return schema_error(err, errlen, where, "unknown or missing \"type\"");
    if (fmt && strcmp(fmt, "currency") && strcmp(fmt, "url"))
        return schema_error(err, errlen, where, "\"format\" must be currency or url");
    if (!strcmp(type, "object")) return check_object_spec(spec, where, depth, err, errlen);
    if (!strcmp(type, "array")) {
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(spec, "items");
        if (!cJSON_IsObject(items)) return schema_error(err, errlen, where, "needs an \"items\" spec");
        return check_spec(items, where, depth + 1, err, errlen);
    }
    return 1;
}

static void *track(mm_schemas *s, size_t size) {
    void *p;
    if (s->nallocs == s->capallocs) {
        int cap = s->capallocs ? s->capallocs * 2 : 64;
        void **a = (void **)realloc(s->allocs, (size_t)cap * sizeof *a);
        if (!a) return NULL;
        s->allocs = a;
        s->capallocs = cap;
    }
    p = calloc(1, size);
    if (p) s->allocs[s->nallocs++] = p;
    return p;
}

static const cJSON *item(const cJSON *node, const char *key) {
    return cJSON_GetObjectItemCaseSensitive(node, key);
}

/* The fields a list names (checked: each names one), as indexes into
 * sp->fields; 0 when out of memory. */
static int field_indexes(mm_schemas *s, const rule *sp, const cJSON *names, int **out, int *n) {
    const cJSON *e;
    int i;
    *n = names ? cJSON_GetArraySize(names) : 0;
    *out = NULL;
    if (!*n) return 1;
    if (!(*out = (int *)track(s, (size_t)*n * sizeof **out))) return 0;
    for (e = names->child, *n = 0; e; e = e->next)
        for (i = 0; i < sp->nfields; i++)
            if (!strcmp(e->valuestring, sp->fields[i].name)) (*out)[(*n)++] = i;
    return 1;
}

/* Compiles a checked spec node (an object spec when is_object). */
static rule *compile(mm_schemas *s, const cJSON *node, int is_object) {
    rule *sp = (rule *)track(s, sizeof *sp);
    const char *type = is_object ? "object" : str_field(node, "type");
    const char *fmt = str_field(node, "format");
    const cJSON *fields = item(node, "fields"), *f;
    int i;
    if (!sp) return NULL;
    sp->kind = !strcmp(type, "number") ? K_NUMBER : !strcmp(type, "integer") ? K_INTEGER
             : !strcmp(type, "string") ? K_STRING : !strcmp(type, "boolean") ? K_BOOLEAN
             : !strcmp(type, "date") ? K_DATE : !strcmp(type, "object") ? K_OBJECT : K_ARRAY;
    sp->format = !fmt ? F_NONE : !strcmp(fmt, "currency") ? F_CURRENCY : F_URL;
    sp->has_min = item(node, "min") != NULL;
    sp->has_max = item(node, "max") != NULL;
    if (sp->has_min) sp->min = item(node, "min")->valuedouble;
    if (sp->has_max) sp->max = item(node, "max")->valuedouble;
    sp->exclusive_min = cJSON_IsTrue(item(node, "exclusive_min"));
    sp->max_length = item(node, "max_length") ? item(node, "max_length")->valueint : -1;
    sp->max_items = item(node, "max_items") ? item(node, "max_items")->valueint : -1;
    sp->enum_list = item(node, "enum");
    sp->any_of = item(node, "any_of");
    if (is_object) snprintf(sp->desc, sizeof sp->desc, "object");
    else describe_spec(node, sp->desc, sizeof sp->desc);
    if (sp->kind == K_ARRAY && !(sp->items = compile(s, item(node, "items"), 0))) return NULL;
    if (sp->kind == K_OBJECT && fields) {
        sp->nfields = cJSON_GetArraySize(fields);
        sp->fields = (field *)track(s, (size_t)(sp->nfields ? sp->nfields : 1) * sizeof *sp->fields);
        if (!sp->fields) return NULL;
        for (f = fields->child, i = 0; f; f = f->next, i++) { /* sorted: the document is normalized */
            sp->fields[i].name = f->string;
            sp->fields[i].required = in_list(item(node, "required"), f->string);
            if (!(sp->fields[i].rule = compile(s, f, 0))) return NULL;
        }
        for (f = fields->child, i = 0; f; f = f->next, i++)
            if (!field_indexes(s, sp, item(f, "requires"), &sp->fields[i].requires, &sp->fields[i].nrequires))
                return NULL;
        if (!field_indexes(s, sp, sp->any_of, &sp->any_of_at, &sp->nany_of)) return NULL;
    }
    return sp;
}

mm_schemas *mm_schemas_parse(const char *json, size_t len, char *err, size_t errlen) {
    mm_schemas *s;
    cJSON *root = cJSON_ParseWithLength(json, len), *t;
    int i;
    if (!cJSON_IsObject(root) || !root->child) {
        cJSON_Delete(root);
        schema_error(err, errlen, "document", "must be a JSON object of event types");
        return NULL;
    }
    for (t = root->child; t; t = t->next) {
        if (!check_object_spec(t, t->string, 0, err, errlen)) {
            cJSON_Delete(root);
            return NULL;
        }
    }
    /* Fields are checked in byte order of their names, on both sides. */
    if (!mm_json_normalize(root)) {
        cJSON_Delete(root);
        schema_error(err, errlen, "document", "out of memory");
        return NULL;
    }
    s = (mm_schemas *)calloc(1, sizeof *s);
    if (!s) {
        cJSON_Delete(root);
        schema_error(err, errlen, "document", "out of memory");
        return NULL;
    }
    s->root = root;
    s->ntypes = cJSON_GetArraySize(root);
    s->types = (rule **)track(s, (size_t)s->ntypes * sizeof *s->types);
    for (t = root->child, i = 0; s->types && t; t = t->next, i++)
        if (!(s->types[i] = compile(s, t, 1))) break;
    if (!s->types || t) {
        mm_schemas_free(s);
        schema_error(err, errlen, "document", "out of memory");
        return NULL;
    }
    return s;
}

void mm_schemas_free(mm_schemas *s) {
    int i;
    if (!s) return;
    for (i = 0; i < s->nallocs; i++) free(s->allocs[i]);
    free(s->allocs);
    cJSON_Delete(s->root);
    free(s);
}

const cJSON *mm_schemas_types(const mm_schemas *s) { return s->root; }
