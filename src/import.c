/* Files of events into a COPY, in C: a source (JSON lines here, CSV in
 * csv.c) yields each record as a cJSON event; the driver validates its
 * payload with the codec's schemas and appends an escaped COPY row, calling
 * Lua only for refused records, non-event records and progress. */
#include "import.h"
#include "event.h"
#include "payload.h"
#include "text.h"
#include "copybin.h"
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sys/types.h>
#include <openssl/evp.h>

#define CHUNK 65536
#define PROGRESS_EVERY 10000

static void close_file(void *f) { fclose((FILE *)f); }
static void delete_tree(void *t) { cJSON_Delete((cJSON *)t); }

/* ---- COPY rows ---------------------------------------------------------- */

typedef struct outbuf {
    char *data;
    size_t len, cap;
} outbuf;

static void free_outbuf(void *p) {
    outbuf *b = (outbuf *)p;
    free(b->data);
    free(b);
}

static int put(outbuf *b, const char *s, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap * 2 > b->len + n ? b->cap * 2 : b->len + n + CHUNK;
        char *d = (char *)realloc(b->data, cap);
        if (!d) return 0;
        b->data = d;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    return 1;
}

/* One COPY text field: escaped, or \N for NULL. Runs of bytes that need
 * no escape go in whole (byte by byte, this was a tenth of an import's
 * client time). */
static int put_field(outbuf *b, const char *s, int last) {
    int ok = 1;
    if (!s) ok = put(b, "\\N", 2);
    while (ok && s && *s) {
        size_t run = strcspn(s, "\\\t\n\r");
        if (run) {
            ok = put(b, s, run);
            s += run;
            continue;
        }
        ok = put(b, *s == '\\' ? "\\\\" : *s == '\t' ? "\\t" : *s == '\n' ? "\\n" : "\\r", 2);
        s++;
    }
    return ok && put(b, last ? "\n" : "\t", 1);
}

/* ---- COPY binary rows ---------------------------------------------------- */

static int put_be(outbuf *b, unsigned long long v, int bytes) {
    unsigned char x[8];
    int i;
    for (i = bytes - 1; i >= 0; i--, v >>= 8) x[i] = (unsigned char)(v & 255);
    return put(b, (const char *)x, (size_t)bytes);
}

/* One binary field of the kind from its text (NULL: a NULL field): 1, 0
 * when out of memory, -1 when C cannot send it (a time or UUID it does not
 * read: PostgreSQL reads the text instead, the file staged as texts). */
static int put_binary(outbuf *b, mm_field_kind kind, const char *v) {
    unsigned char bytes[MM_BIN_NUMERIC_MAX];
    long long us;
    size_t n;
    if (!v) return put_be(b, 0xFFFFFFFFu, 4);
    switch (kind) {
    case MM_F_UUID:
        if (!mm_bin_uuid(v, bytes)) return -1;
        return put_be(b, 16, 4) && put(b, (const char *)bytes, 16);
    case MM_F_TIME:
        if (!mm_utc_micros(v, &us)) return -1;
        return put_be(b, 8, 4) && put_be(b, (unsigned long long)us, 8);
    case MM_F_NUMBER:
        if (!(n = mm_bin_numeric(v, bytes))) return -1;
        return put_be(b, n, 4) && put(b, (const char *)bytes, n);
    case MM_F_JSON: /* jsonb: its version, then the text */
        n = strlen(v);
        return put_be(b, n + 1, 4) && put(b, "\1", 1) && put(b, v, n);
    case MM_F_TEXT:
    default:
        n = strlen(v);
        return put_be(b, n, 4) && put(b, v, n);
    }
}

/* Content ids: an event without an id gets md5 of concat_ws('|', tenant,
 * the content fields' texts), a time as PostgreSQL prints it in UTC, as the
 * staged path's SQL computes it. Direct mode: rows for the events table
 * itself (tenant, import batch, then the fields, the id filled in). Typed
 * staging (ids_only): the staged row as usual, then the content id (NULL
 * for an event with an id). */
typedef struct direct {
    const char *tenant, *batch;
    int ids_only;
    int content[MM_EV_NFIELDS], ncontent; /* field indexes, in order */
    EVP_MD_CTX *md;
    int vehicles;            /* stack index of the set of vehicle ids seen */
    char last_vehicle[64];
    /* Chunks (opts.chunks, typed staging): the set's values are the chunk
     * each vehicle's events are in, chunk_set (a stack index) the set of
     * the current chunk's; full asks that a new vehicle start the next;
     * noted says what the last event's vehicle asks of the chunks (NOTED_*). */
    int chunk, chunk_set, full, noted, apart_below;
    int binary; /* rows in COPY's binary format (copybin.h) */
    int parts;  /* ids_only, times without a zone: the id's texts around the time instead (content_parts) */
} direct;

enum { NOTED_SAME, NOTED_NEXT, NOTED_APART };

static void free_md(void *p) { EVP_MD_CTX_free((EVP_MD_CTX *)p); }

static const char NOT_DIRECT[] = "not for the direct path";

/* The content id of an event (t) into out as a UUID; NOT_DIRECT when a
 * time is not one mm_utc_text normalizes, else NULL. */
static const char *content_id(direct *d, const mm_event_texts *t, char out[37]) {
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len, i, o = 0;
    char utc[40];
    int k, ok = EVP_DigestInit_ex(d->md, EVP_md5(), NULL) &&
                EVP_DigestUpdate(d->md, d->tenant, strlen(d->tenant));
    for (k = 0; ok && k < d->ncontent; k++) {
        const char *v = t->f[d->content[k]];
        if (!v) continue; /* concat_ws skips NULLs */
        if (MM_EVENT_FIELDS[d->content[k]].kind == MM_F_TIME) {
            if (!mm_utc_text(v, utc, sizeof utc)) return NOT_DIRECT;
            v = utc;
        }
        ok = EVP_DigestUpdate(d->md, "|", 1) && EVP_DigestUpdate(d->md, v, strlen(v));
    }
    if (!ok || !EVP_DigestFinal_ex(d->md, md, &len) || len != 16) return "out of memory";
    for (i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
        out[o++] = hex[md[i] >> 4];
        out[o++] = hex[md[i] & 15];
    }
    out[o] = '\0';
    return NULL;
}

/* The content id's texts before and after its time (a time without a
 * zone, which only PostgreSQL places in UTC): into prefix the tenant and
 * "|" with each field before it, into suffix "|" with each after it, NULLs
 * skipped as concat_ws skips them; the SQL hashes prefix, "|", the time in
 * UTC and suffix (CONTENT_ID in import.lua). 0 when out of memory. */
static int content_parts(const direct *d, const mm_event_texts *t, outbuf *prefix, outbuf *suffix) {
    outbuf *o = prefix;
    int k, ok;
    prefix->len = suffix->len = 0;
    ok = put(prefix, d->tenant, strlen(d->tenant));
    for (k = 0; ok && k < d->ncontent; k++) {
        const char *v = t->f[d->content[k]];
        if (MM_EVENT_FIELDS[d->content[k]].kind == MM_F_TIME) {
            o = suffix;
            continue;
        }
        if (v) ok = put(o, "|", 1) && put(o, v, strlen(v));
    }
    return ok && put(prefix, "", 1) && put(suffix, "", 1); /* (as C strings) */
}

/* set[key] = true, for the Lua table at idx. */
static void set_add(lua_State *L, int idx, const char *key) {
    lua_pushstring(L, key);
    lua_pushboolean(L, 1);
    lua_rawset(L, idx);
}

/* Adds the event's vehicle to the set of vehicles (in Lua; consecutive
 * repeats skipped, as files keep a vehicle's events together). Chunked,
 * the set maps each vehicle to its chunk, and the chunk's own set gets it,
 * a new vehicle starting the next chunk when this one is full (NOTED_NEXT:
 * the next chunk's set takes it), and a vehicle of an earlier chunk is
 * NOTED_APART. */
static void note_vehicle(lua_State *L, direct *d, const char *vehicle) {
    int was;
    d->noted = NOTED_SAME;
    if (!strcmp(vehicle, d->last_vehicle)) return;
    snprintf(d->last_vehicle, sizeof d->last_vehicle, "%s", vehicle);
    if (!d->chunk) {
        set_add(L, d->vehicles, vehicle);
        return;
    }
    lua_pushstring(L, vehicle);
    lua_pushvalue(L, -1);
    lua_rawget(L, d->vehicles);
    was = (int)lua_tointeger(L, -1); /* (0: not in the set) */
    lua_pop(L, 1);
    if (was) {
        lua_pop(L, 1);
        d->noted = was < d->apart_below ? NOTED_APART : NOTED_SAME;
        return;
    }
    d->noted = d->full ? NOTED_NEXT : NOTED_SAME;
    lua_pushinteger(L, d->chunk + (d->full ? 1 : 0));
    lua_rawset(L, d->vehicles);
    if (!d->full) set_add(L, d->chunk_set, vehicle);
}

/* One field of a row, in the COPY's format (binary: as put_binary says;
 * text: escaped, last ending the row): 1, 0 when out of memory, -1 when C
 * cannot send it. */
static int put_value(outbuf *b, int binary, mm_field_kind kind, const char *v, int last) {
    return binary ? put_binary(b, kind, v) : put_field(b, v, last);
}

/* The COPY row of a checked event (t; its content id cid, or its parts
 * prefix and suffix, or NULLs), in either format: the line (staged rows)
 * or the tenant and batch (direct, the id filled in), the fields of
 * MM_EVENT_FIELDS in order (with parts, times as texts), then, ids_only,
 * the content id or its parts. NULL, NOT_DIRECT (a value C does not send:
 * the file is staged as texts) or "out of memory". */
static const char *put_row(const direct *d, mm_event_texts *t, long line, const char *cid, const char *prefix,
                           const char *suffix, outbuf *b) {
    int binary = d && d->binary, parts = d && d->parts, staged = !d || d->ids_only, ids = d && d->ids_only;
    int i, ok = !binary || put_be(b, MM_EV_NFIELDS + (staged ? 1 : 2) + (ids ? 1 + parts : 0), 2);
    char linebuf[24];
    if (ok && staged && binary) ok = put_be(b, 8, 4) && put_be(b, (unsigned long long)line, 8);
    else if (ok && staged) {
        snprintf(linebuf, sizeof linebuf, "%ld", line);
        ok = put_field(b, linebuf, 0);
    } else if (ok) {
        if (cid) t->f[MM_EV_ID] = cid;
        ok = put_value(b, binary, MM_F_UUID, d->tenant, 0);
        if (ok > 0) ok = put_value(b, binary, MM_F_UUID, d->batch, 0);
    }
    for (i = 0; i < MM_EV_NFIELDS && ok > 0; i++) {
        mm_field_kind kind = MM_EVENT_FIELDS[i].kind;
        ok = put_value(b, binary, parts && kind == MM_F_TIME ? MM_F_TEXT : kind, t->f[i],
                       i == MM_EV_NFIELDS - 1 && !ids);
    }
    if (ok > 0 && parts) {
        ok = put_value(b, binary, MM_F_TEXT, prefix, 0);
        if (ok > 0) ok = put_value(b, binary, MM_F_TEXT, suffix, 1);
    } else if (ok > 0 && ids) ok = put_value(b, binary, MM_F_UUID, cid, 1);
    return ok > 0 ? NULL : ok < 0 ? NOT_DIRECT : "out of memory";
}

/* Checks one event object (event.c) and appends its COPY row (line number
 * first, then the fields of MM_EVENT_FIELDS in order, then with d ids_only
 * the content id; in direct mode the tenant and batch, then the fields, the
 * id filled in). Returns NULL, or the reason the record is refused (in err;
 * NOT_DIRECT: the file must be staged as texts).
 * Every text field is checked, so a bad record is refused by its line
 * instead of failing the whole COPY. */
static const char *event_row(lua_State *L, const mm_schemas *schemas, cJSON *ev, long line, const char *vehicle,
                             int zoned, direct *d, outbuf *b, char *err, size_t errlen) {
    char id[37], *json[MM_EV_NFIELDS] = {NULL};
    const char *cid = NULL, *prefix = NULL, *suffix = NULL;
    outbuf pre = {NULL, 0, 0}, suf = {NULL, 0, 0};
    mm_event_texts t;
    int i, bad = 0;
    size_t start = b->len; /* (a row left half written is taken back) */
    const char *why = mm_event_check(schemas, ev, vehicle, zoned, &t, err, errlen);
    if (why) return why;
    for (i = 0; i < MM_EV_NFIELDS && !bad; i++) {
        const cJSON *v;
        if (MM_EVENT_FIELDS[i].kind != MM_F_JSON) continue;
        v = cJSON_GetObjectItemCaseSensitive(ev, MM_EVENT_FIELDS[i].name);
        if (!v || cJSON_IsNull(v)) continue;
        bad = !(t.f[i] = json[i] = cJSON_PrintUnformatted(v));
    }
    if (!bad && d && d->parts && !t.f[MM_EV_ID]) { /* (before the row) */
        bad = !content_parts(d, &t, &pre, &suf);
        prefix = pre.data, suffix = suf.data;
    } else if (!bad && d && !t.f[MM_EV_ID] && (why = content_id(d, &t, id)) == NULL) cid = id;
    if (!bad && !why && d && d->vehicles) note_vehicle(L, d, t.f[MM_EV_VEHICLE]);
    if (!bad && !why) why = put_row(d, &t, line, cid, prefix, suffix, b);
    for (i = 0; i < MM_EV_NFIELDS; i++) cJSON_free(json[i]);
    free(pre.data);
    free(suf.data);
    if (bad || why) b->len = start;
    return bad ? "out of memory" : why;
}

/* opts.direct = { tenant, batch, content = { field names }, vehicles = {} }
 * or, ids_only, opts.content_ids = { tenant, content, vehicles = {} or nil }
 * (at idx) read into d
 * (its tenant, batch and vehicles left on the stack), or 0 without it. */
static int read_direct(lua_State *L, int idx, direct *d, int ids_only) {
    int k;
    if (lua_isnil(L, idx)) return 0;
    luaL_checktype(L, idx, LUA_TTABLE);
    memset(d, 0, sizeof *d);
    d->ids_only = ids_only;
    lua_getfield(L, idx, "tenant");
    lua_getfield(L, idx, "batch");
    lua_getfield(L, idx, "vehicles");
    lua_getfield(L, idx, "content");
    d->tenant = luaL_checkstring(L, -4);
    if (!ids_only) {
        d->batch = luaL_checkstring(L, -3);
        luaL_checktype(L, -2, LUA_TTABLE);
    }
    luaL_checktype(L, -1, LUA_TTABLE);
    d->vehicles = lua_istable(L, -2) ? lua_gettop(L) - 1 : 0; /* (optional when ids_only) */
    d->ncontent = (int)mm_rawlen(L, -1);
    luaL_argcheck(L, d->ncontent <= MM_EV_NFIELDS, 5, "direct.content: too many fields");
    for (k = 0; k < d->ncontent; k++) {
        const char *name;
        int i;
        lua_rawgeti(L, -1, k + 1);
        name = luaL_checkstring(L, -1);
        for (i = 0; i < MM_EV_NFIELDS && strcmp(MM_EVENT_FIELDS[i].name, name); i++) {}
        if (i == MM_EV_NFIELDS) return luaL_error(L, "direct.content: no event field %s", name);
        d->content[k] = i;
        lua_pop(L, 1);
    }
    lua_pop(L, 1); /* content: the strings stay referenced by opts */
    lua_getfield(L, idx, "parts");
    d->parts = ids_only && lua_toboolean(L, -1);
    lua_pop(L, 1);
    return 1;
}

/* ---- JSON lines --------------------------------------------------------- */

typedef struct jsonl {
    mm_source base;
    FILE *f;
    char *text;
    size_t cap;
    long line;
} jsonl;

static void free_jsonl(void *p) {
    free(((jsonl *)p)->text);
    free(p);
}

static long jsonl_offset(mm_source *s) { return ftell(((jsonl *)s)->f); }

/* One line: an event, or (a member "record") a backup's other record. The
 * whole line must be one JSON value. */
static int jsonl_next(mm_source *base, mm_item *item) {
    jsonl *s = (jsonl *)base;
    ssize_t n = getline(&s->text, &s->cap, s->f);
    const char *end = NULL;
    cJSON *tree;
    if (n < 0) {
        if (!ferror(s->f)) return 0;
        item->reason = "cannot read the file";
        return -1;
    }
    item->line = ++s->line;
    while (n > 0 && (s->text[n - 1] == '\n' || s->text[n - 1] == '\r')) s->text[--n] = '\0';
    if (n == 0) return 1;
    if (mm_json_has_nul(s->text, (size_t)n)) {
        item->reason = "a string holds \\u0000 (NUL), which text cannot store";
        return 1;
    }
    tree = cJSON_ParseWithLengthOpts(s->text, (size_t)n, &end, 0);
    while (tree && end < s->text + n && (*end == ' ' || *end == '\t')) end++;
    if (tree && end < s->text + n) {
        cJSON_Delete(tree);
        tree = NULL;
        item->reason = "invalid JSON: text after the JSON value";
    } else if (!tree) item->reason = "invalid JSON";
    else if (cJSON_IsObject(tree) && cJSON_GetObjectItemCaseSensitive(tree, "record")) {
        item->record = s->text;
        cJSON_Delete(tree);
    } else item->event = tree;
    return 1;
}

mm_source *mm_jsonl_source(lua_State *L, FILE *f) {
    mm_box *box = mm_box_new(L);
    jsonl *s = (jsonl *)calloc(1, sizeof *s);
    if (!s) luaL_error(L, "out of memory");
    mm_box_hold(box, s, free_jsonl);
    s->base.next = jsonl_next;
    s->base.offset = jsonl_offset;
    s->base.zoned = 1;
    s->f = f;
    return &s->base;
}

/* ---- the driver --------------------------------------------------------- */

/* Calls the Lua function at fn with an integer and up to two strings
 * (NULL: nil); a Lua error ends the COPY and is re-raised. */
static void call_back(lua_State *L, mm_conn *c, int fn, long n, const char *a, const char *b, int copying) {
    lua_pushvalue(L, fn);
    lua_pushinteger(L, (lua_Integer)n);
    if (a) lua_pushstring(L, a); else lua_pushnil(L);
    if (b) lua_pushstring(L, b); else lua_pushnil(L);
    if (lua_pcall(L, 3, 0, 0) != 0) {
        if (!copying) lua_error(L); /* (no COPY runs between chunks) */
        mm_copy_abort(L, c);
    }
}

/* Ends the COPY with out's first len bytes (and the binary trailer): 1 and
 * the rows it took pushed, or the error's values pushed and their count. */
static int end_copy(lua_State *L, mm_conn *c, outbuf *out, size_t len, int binary) {
    if (len) PQputCopyData(c->pg, out->data, (int)len);
    if (binary) PQputCopyData(c->pg, MM_BIN_TRAILER, MM_BIN_TRAILER_LEN);
    PQputCopyEnd(c->pg, NULL);
    return mm_copy_finish(L, c);
}

/* Chunked: ends the chunk of out's first len bytes and hands it to the
 * Lua function at fn as on_chunk(rows, copied, vehicles): the first chunk
 * went by the COPY that streamed it (*copying: ended here; rows nil, copied
 * the rows it took), the others go as rows, a COPY stream of their own
 * (copied -1); vehicles is the chunk's set of vehicles. What follows the
 * chunk moves to out's start, and the next chunk gets a set of its own.
 * Returns on_chunk's answer: 1 go on, CHUNKS_REST take the rest of the file
 * as one last chunk, 0 stop; or -n when the COPY failed, its n error values
 * pushed. A Lua error is re-raised. */
#define CHUNKS_REST 2
static int flush_chunk(lua_State *L, mm_conn *c, int fn, direct *d, outbuf *out, size_t len, int *copying) {
    lua_Integer copied = -1;
    int answer;
    if (*copying) {
        *copying = 0;
        if ((answer = end_copy(L, c, out, len, d->binary)) != 1) return -answer;
        copied = lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    lua_pushvalue(L, fn);
    if (copied >= 0) lua_pushnil(L);
    else if (d->binary) {
        luaL_Buffer buf;
        luaL_buffinit(L, &buf);
        luaL_addlstring(&buf, MM_BIN_HEADER, MM_BIN_HEADER_LEN);
        luaL_addlstring(&buf, out->data, len);
        luaL_addlstring(&buf, MM_BIN_TRAILER, MM_BIN_TRAILER_LEN);
        luaL_pushresult(&buf);
    } else lua_pushlstring(L, out->data, len);
    lua_pushinteger(L, copied);
    lua_pushvalue(L, d->chunk_set);
    lua_call(L, 3, 1); /* (no COPY runs: an error goes straight up) */
    answer = lua_type(L, -1) == LUA_TSTRING && !strcmp(lua_tostring(L, -1), "rest") ? CHUNKS_REST
           : lua_toboolean(L, -1);
    lua_pop(L, 1);
    memmove(out->data, out->data + len, out->len - len);
    out->len -= len;
    lua_newtable(L);
    lua_replace(L, d->chunk_set);
    return answer;
}

/* Returns false, the line and why (and with chunks, whether the chunks
 * could not stand for the file: "apart"): the caller stages the file
 * otherwise. */
static int staged_instead(lua_State *L, long line, const char *why, int apart) {
    lua_pushboolean(L, 0);
    lua_pushinteger(L, (lua_Integer)line);
    lua_pushstring(L, why);
    if (!apart) return 3;
    lua_pushliteral(L, "apart");
    return 4;
}

/* db:copy_events(copy_sql, path, codec, opts) -> rows_sent, records
 *   | false, line, reason | nil, message, sqlstate, detail.
 * Streams a file of events into a COPY whose rows are: the record's line,
 * then the fields of MM_EVENT_FIELDS in order (text format). Records are the file's
 * events and refused or non-event records (not blank lines or headers). opts: csv = a spec (see
 * csv.c; JSON lines otherwise), vehicle = the vehicle of every event,
 * on_reject(line, reason, column), on_record(line, json_text) for a backup's
 * non-event records (refused without it), on_progress(records, bytes) every
 * PROGRESS_EVERY records. direct = { tenant, batch, content, vehicles }: rows
 * for the events table itself (see struct direct), each vehicle id added to
 * the set vehicles; the first record that is refused, or that needs
 * PostgreSQL to read its time, cancels the COPY and returns false, its line
 * and why (the caller stages the file instead). content_ids = { tenant,
 * content, vehicles }: each row ends with the event's content id (NULL when
 * it has an id), each vehicle id added to the set vehicles when given; a record whose time only PostgreSQL reads cancels the COPY and
 * returns false, its line and why (the caller stages the file as texts).
 * chunks = { rows = n, on_chunk = fn } (with content_ids and its
 * vehicles): chunks of about n events, each vehicle's events in one chunk
 * (a chunk ends only before a vehicle new to the file), each handed to
 * on_chunk, so the caller can insert a chunk while the next is read: the
 * first goes by this COPY, as it is read (there is nothing to insert yet),
 * the others to on_chunk as rows for the caller to COPY (flush_chunk says
 * what on_chunk gets and answers), the connection held meanwhile (its
 * statements allowed, close refused, in every callback). A vehicle whose
 * events come back after its chunk went returns false, the line, why and
 * "apart". */
static int copy_events(lua_State *L) {
    mm_conn *c = mm_check_conn(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    const char *path = luaL_checkstring(L, 3);
    const mm_schemas *schemas = mm_codec_schemas(L, 4);
    const char *vehicle;
    mm_box *fbox, *obox, *tbox;
    mm_source *src;
    mm_item item;
    outbuf *out;
    FILE *f;
    char err[1024];
    long records = 0, sent = 0;
    direct dm, *d = NULL;
    int r, chunked, copying, rest = 0;
    long chunk_rows = 0, in_chunk = 0;
    size_t row_start;
    luaL_checktype(L, 5, LUA_TTABLE);
    lua_settop(L, 5);
    lua_getfield(L, 5, "on_reject");   /* 6 */
    lua_getfield(L, 5, "on_record");   /* 7 */
    lua_getfield(L, 5, "on_progress"); /* 8 */
    lua_getfield(L, 5, "vehicle");     /* 9 */
    lua_getfield(L, 5, "csv");         /* 10 */
    lua_getfield(L, 5, "direct");      /* 11 */
    lua_getfield(L, 5, "content_ids"); /* 12 */
    lua_getfield(L, 5, "chunks");      /* 13 */
    chunked = !lua_isnil(L, 13);
    if (chunked) {
        luaL_checktype(L, 13, LUA_TTABLE);
        lua_getfield(L, 13, "rows");
        chunk_rows = (long)luaL_checkinteger(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, 13, "on_chunk"); /* 14 */
        luaL_argcheck(L, lua_isfunction(L, 14) && chunk_rows > 0, 5, "chunks: expected rows > 0 and on_chunk");
    } else lua_pushnil(L);
    luaL_argcheck(L, lua_isfunction(L, 6), 5, "on_reject: expected a function");
    vehicle = lua_tostring(L, 9);
    if (read_direct(L, 11, &dm, 0) || read_direct(L, 12, &dm, 1)) { /* 15-17: its tenant, batch and vehicles */
        mm_box *mbox = mm_box_new(L);
        d = &dm;
        if (!(d->md = EVP_MD_CTX_new())) return luaL_error(L, "out of memory");
        mm_box_hold(mbox, d->md, free_md);
    }
    lua_getfield(L, 5, "binary");
    if (lua_toboolean(L, -1)) {
        luaL_argcheck(L, d != NULL, 5, "binary: needs direct or content_ids");
        d->binary = 1;
    }
    lua_pop(L, 1);
    if (chunked) {
        luaL_argcheck(L, d && d->ids_only && d->vehicles, 5, "chunks: needs content_ids with vehicles");
        d->chunk = d->apart_below = 1;
        lua_newtable(L);
        d->chunk_set = lua_gettop(L);
    }
    fbox = mm_box_new(L);
    f = fopen(path, "rb");
    if (!f) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: %s", path, strerror(errno));
        return 2;
    }
    mm_box_hold(fbox, f, close_file);
    src = lua_isnil(L, 10) ? mm_jsonl_source(L, f) : mm_csv_source(L, 10, f, schemas);
    obox = mm_box_new(L);
    tbox = mm_box_new(L);
    out = (outbuf *)calloc(1, sizeof *out);
    if (!out) return luaL_error(L, "out of memory");
    mm_box_hold(obox, out, free_outbuf);
    if (d && d->binary && !put(out, MM_BIN_HEADER, MM_BIN_HEADER_LEN)) return luaL_error(L, "out of memory");
    if (!mm_copy_start(L, c, sql, PGRES_COPY_IN)) return 4;
    copying = 1; /* (chunked: until the first chunk ends) */
    for (;;) {
        const char *reason;
        memset(&item, 0, sizeof item);
        r = src->next(src, &item);
        if (r <= 0) break;
        if (!item.event && !item.reason && !item.record) continue; /* blank, header, skipped */
        mm_box_hold(tbox, item.event, delete_tree); /* owned before any callback may raise */
        if (++records % PROGRESS_EVERY == 0 && !lua_isnil(L, 8)) {
            lua_pushvalue(L, 8);
            lua_pushinteger(L, (lua_Integer)records);
            lua_pushinteger(L, (lua_Integer)src->offset(src));
            if (lua_pcall(L, 2, 0, 0) != 0) return copying ? mm_copy_abort(L, c) : lua_error(L);
        }
        if (item.record && lua_isnil(L, 7)) item.reason = "a backup record (import the file as a backup)";
        else if (item.record) call_back(L, c, 7, item.line, item.record, NULL, copying);
        row_start = out->len;
        reason = item.event ? event_row(L, schemas, item.event, item.line, vehicle, src->zoned, d, out, err, sizeof err)
                            : item.reason;
        mm_box_release(tbox);
        if (reason && d && (!d->ids_only || reason == NOT_DIRECT)) { /* the file is staged (as texts) instead */
            if (copying) mm_copy_cancel(c, "staged instead");
            return staged_instead(L, item.line, reason, 0);
        }
        if (reason) call_back(L, c, 6, item.line, reason, reason == item.reason ? item.column : NULL, copying);
        else if (item.event) sent++;
        if (chunked && !reason && item.event) {
            if (d->noted == NOTED_APART) return staged_instead(L, item.line, "a vehicle's events are apart in the file", 1);
            if (d->noted == NOTED_NEXT) {
                int go = flush_chunk(L, c, 14, d, out, row_start, &copying);
                if (go < 0) return -go;
                if (!go) return staged_instead(L, item.line, "stopped by on_chunk", 0);
                set_add(L, d->chunk_set, d->last_vehicle); /* (the vehicle that starts it) */
                if (go == CHUNKS_REST) { /* the chunk before was refused: it and this one stay staged */
                    rest = 1;
                    d->apart_below = d->chunk > 1 ? d->chunk - 1 : 1;
                } else d->apart_below = d->chunk + 1;
                d->chunk++;
                in_chunk = 0;
            }
            d->full = !rest && ++in_chunk >= chunk_rows;
        }
        if (copying && out->len >= CHUNK) {
            if (PQputCopyData(c->pg, out->data, (int)out->len) != 1) break;
            out->len = 0;
        }
    }
    if (r < 0) { /* the file is unreadable: end the COPY, stage nothing */
        if (copying) mm_copy_cancel(c, "the file cannot be read");
        lua_pushnil(L);
        lua_pushfstring(L, "%s: line %d: %s; nothing imported", path, (int)item.line, item.reason);
        return 2;
    }
    mm_box_release(fbox);
    if (chunked) {
        int go = flush_chunk(L, c, 14, d, out, out->len, &copying);
        if (go < 0) return -go;
        if (!go) return staged_instead(L, item.line, "stopped by on_chunk", 0);
        lua_pushinteger(L, sent);
        lua_pushinteger(L, records);
        return 2;
    }
    if (out->len) PQputCopyData(c->pg, out->data, (int)out->len);
    if (d && d->binary) PQputCopyData(c->pg, MM_BIN_TRAILER, MM_BIN_TRAILER_LEN);
    mm_box_release(obox);
    PQputCopyEnd(c->pg, NULL);
    r = mm_copy_finish(L, c);
    if (r != 1) return r;
    lua_pop(L, 1);
    lua_pushinteger(L, sent);
    lua_pushinteger(L, records);
    return 2;
}

/* db:copy_events: see copy_events; with chunks, run protected, so that
 * the connection is let go however it ends. */
static int l_copy_events(lua_State *L) {
    mm_conn *c = mm_check_conn(L, 1);
    int status;
    luaL_checktype(L, 5, LUA_TTABLE);
    lua_getfield(L, 5, "chunks");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return copy_events(L);
    }
    lua_settop(L, 5);
    lua_pushcfunction(L, copy_events);
    lua_insert(L, 1);
    c->held = 1;
    status = lua_pcall(L, 5, LUA_MULTRET, 0);
    c->held = 0;
    if (status != 0) return lua_error(L);
    return lua_gettop(L);
}

static const luaL_Reg methods[] = {
    {"copy_events", l_copy_events},
    {NULL, NULL}
};

/* Adds copy_events to the connection's method table. */
/* csv_check(spec) -> true: compiles a CSV spec as an import would, raising
 * "csv spec: <place>: <problem>" on a bad one (motomind.layout checks a
 * user's layout with it before any file is read). */
static int l_csv_check(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    mm_csv_source(L, 1, NULL, NULL);
    lua_pushboolean(L, 1);
    return 1;
}

int mm_open_import(lua_State *L) {
    mm_push_conn_methods(L);
    mm_setfuncs(L, methods, 0);
    lua_pop(L, 1);
    lua_pushcfunction(L, l_csv_check);
    lua_setfield(L, -2, "csv_check");
    return 0;
}
