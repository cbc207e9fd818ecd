/* CSV exports of other apps as events: a streaming CSV reader (quotes, any
 * line ending, stray spaces, a byte-order mark, sections) and a mapping from
 * each row's columns to an event's fields, compiled once per import from a
 * Lua spec (lua/motomind/formats.lua writes them; csv_spec.c compiles them):
 *
 *   { separator = ",", decimal_comma = false, dates = "mdy" | "dmy",
 *     sections = { { name = "## Log", ... } },   -- or one section's fields:
 *     type = "fuel", set = { ["payload.currency"] = "USD" },
 *     columns = { { names = {"odometer", "odo (km)"}, to = "mileage",
 *                   as = "text" | "number" | "datetime" | "date" | "map" | "list",
 *                   split = ",",  -- a list's separators: items trimmed, empty
 *                                 -- and repeated ones dropped
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
#include "csv.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static void free_csv(void *p) {
    csv *s = (csv *)p;
    mm_csv_release(s);
    free(s->text);
    free(s->record);
    free(s->starts);
    free(s);
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

/* "a, b,,a" -> ["a", "b"]: the items between separators, trimmed, without
 * empty or repeated ones. NULL when out of memory. */
static cJSON *split_list(const char *v, const char *separators) {
    cJSON *list = cJSON_CreateArray();
    while (list && *v) {
        size_t n = strcspn(v, separators), a = 0, b = n;
        while (a < b && isspace((unsigned char)v[a])) a++;
        while (b > a && isspace((unsigned char)v[b - 1])) b--;
        if (b > a) {
            const cJSON *e;
            char *item = (char *)malloc(b - a + 1);
            if (!item) goto oom;
            memcpy(item, v + a, b - a);
            item[b - a] = '\0';
            for (e = list->child; e && strcmp(e->valuestring, item); e = e->next) {}
            if (!e && !cJSON_AddItemToArray(list, cJSON_CreateString(item))) {
                free(item);
                goto oom;
            }
            free(item);
        }
        v += n + (v[n] != '\0');
    }
    return list;
oom:
    cJSON_Delete(list);
    return NULL;
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
        case AS_LIST:
            if (!(val = split_list(v, c->split))) goto oom;
            if (!cJSON_GetArraySize(val)) {
                cJSON_Delete(val);
                continue;
            }
            break;
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
    mm_csv_compile(L, s, spec_idx);
    if (!f) return &s->base; /* (compiled only: csv_check) */
    s->len = fread(s->buf, 1, sizeof s->buf, f);
    if (s->len >= 3 && !memcmp(s->buf, "\xEF\xBB\xBF", 3)) s->pos = 3;
    return &s->base;
}
