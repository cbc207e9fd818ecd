/* COPY, streamed: copy_in sends chunks a Lua function produces, copy_out
 * hands chunks to a Lua function, and copy_jsonl turns a JSON-lines file of
 * events into COPY rows in C (parse, validate the payload, escape), calling
 * Lua only for rejected lines. Lua callbacks run between libpq calls under
 * lua_pcall; on an error the COPY is ended before the error is re-raised, so
 * the connection stays usable. */
#include "motomind.h"
#include "payload.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#define CHUNK 65536

static void free_pq(void *p) { PQfreemem(p); }
static void free_result(void *p) { PQclear((PGresult *)p); }
static void close_file(void *f) { fclose((FILE *)f); }
static void delete_tree(void *t) { cJSON_Delete((cJSON *)t); }

/* Starts a COPY; returns 1, or pushes nil, message, sqlstate, detail and
 * returns 0 (the caller returns 4). */
static int start(lua_State *L, PGconn *pg, const char *sql, ExecStatusType want) {
    mm_box *box = mm_box_new(L);
    PGresult *res = PQexec(pg, sql);
    mm_box_hold(box, res, free_result);
    if (res && PQresultStatus(res) == want) {
        mm_box_release(box);
        lua_pop(L, 1);
        return 1;
    }
    mm_conn_error(L, pg, res);
    lua_remove(L, -5); /* the box */
    return 0;
}

/* Collects the COPY's final result: pushes the row count, or nil, message,
 * sqlstate, detail. Returns the number of values pushed. */
static int finish(lua_State *L, PGconn *pg) {
    mm_box *box = mm_box_new(L);
    PGresult *res = PQgetResult(pg), *more;
    int n;
    mm_box_hold(box, res, free_result);
    while ((more = PQgetResult(pg)) != NULL) PQclear(more);
    if (res && PQresultStatus(res) == PGRES_COMMAND_OK) {
        lua_pushinteger(L, (lua_Integer)strtoll(PQcmdTuples(res), NULL, 10));
        n = 1;
    } else {
        n = mm_conn_error(L, pg, res);
    }
    mm_box_release(box);
    lua_remove(L, -1 - n);
    return n;
}

/* Ends a COPY IN that a Lua error interrupted, then re-raises the error. */
static int abort_in(lua_State *L, PGconn *pg) {
    PGresult *r;
    PQputCopyEnd(pg, "aborted by the client");
    while ((r = PQgetResult(pg)) != NULL) PQclear(r);
    return lua_error(L);
}

/* db:copy_in(sql, producer) -> rows | nil, message, sqlstate, detail.
 * producer() returns the next chunk of COPY data, or nil at the end. */
static int l_copy_in(lua_State *L) {
    PGconn *pg = mm_check_pg(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    if (!start(L, pg, sql, PGRES_COPY_IN)) return 4;
    for (;;) {
        size_t len;
        const char *chunk;
        lua_pushvalue(L, 3);
        if (lua_pcall(L, 0, 1, 0) != 0) return abort_in(L, pg);
        if (lua_isnil(L, -1)) { lua_pop(L, 1); break; }
        chunk = lua_tolstring(L, -1, &len);
        if (!chunk) {
            lua_pushliteral(L, "copy_in: the producer must return strings (or nil at the end)");
            return abort_in(L, pg);
        }
        if (PQputCopyData(pg, chunk, (int)len) != 1) { lua_pop(L, 1); break; }
        lua_pop(L, 1);
    }
    PQputCopyEnd(pg, NULL);
    return finish(L, pg);
}

/* db:copy_out(sql, consumer) -> rows | nil, message, sqlstate, detail.
 * consumer(chunk) is called with each piece of COPY data (a row, in text
 * formats). */
static int l_copy_out(lua_State *L) {
    PGconn *pg = mm_check_pg(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    mm_box *box;
    char *buf;
    int len;
    luaL_checktype(L, 3, LUA_TFUNCTION);
    if (!start(L, pg, sql, PGRES_COPY_OUT)) return 4;
    box = mm_box_new(L);
    while ((len = PQgetCopyData(pg, &buf, 0)) > 0) {
        mm_box_hold(box, buf, free_pq);
        lua_pushvalue(L, 3);
        lua_pushlstring(L, buf, (size_t)len);
        mm_box_release(box);
        if (lua_pcall(L, 1, 0, 0) != 0) {
            PGresult *r;
            while (PQgetCopyData(pg, &buf, 0) > 0) PQfreemem(buf); /* drain the rest */
            while ((r = PQgetResult(pg)) != NULL) PQclear(r);
            return lua_error(L);
        }
    }
    lua_pop(L, 1);
    return finish(L, pg);
}

/* ---- JSON lines to COPY rows ------------------------------------------- */

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

/* One COPY text field: escaped, or \N for NULL. */
static int put_field(outbuf *b, const char *s, int last) {
    const char *p;
    int ok = 1;
    if (!s) ok = put(b, "\\N", 2);
    for (p = s; ok && p && *p; p++) {
        switch (*p) {
        case '\\': ok = put(b, "\\\\", 2); break;
        case '\t': ok = put(b, "\\t", 2); break;
        case '\n': ok = put(b, "\\n", 2); break;
        case '\r': ok = put(b, "\\r", 2); break;
        default: ok = put(b, p, 1);
        }
    }
    return ok && put(b, last ? "\n" : "\t", 1);
}

/* The text of a string member, NULL when absent or JSON null; *bad is set
 * when it has another type. */
static const char *text_of(const cJSON *obj, const char *key, int *bad) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v || cJSON_IsNull(v)) return NULL;
    if (cJSON_IsString(v)) return v->valuestring;
    *bad = 1;
    return NULL;
}

/* Shortest decimal text that reads back as the same double. */
static void number_text(double d, char *out, size_t n) {
    int p;
    for (p = 15; p <= 17; p++) {
        snprintf(out, n, "%.*g", p, d);
        if (strtod(out, NULL) == d) return;
    }
}

static const char *const FIELDS[] = {"id", "vehicle_id", "type", "occurred_at", "mileage", "payload",
                                     "notes", "correction", "corrects_id", "corrects_occurred_at", NULL};

/* Checks one event object and appends its COPY row (line number first).
 * Returns NULL, or the reason the line is rejected (in err). */
static const char *event_row(const mm_schemas *schemas, cJSON *ev, long line, const char *vehicle,
                             outbuf *b, char *err, size_t errlen) {
    char num[40], linebuf[24], *payload_text;
    const char *f[10];
    const cJSON *k;
    cJSON *payload;
    int i, bad = 0;
    f[5] = NULL;
    if (!cJSON_IsObject(ev)) return "expected a JSON object (one event per line)";
    for (k = ev->child; k; k = k->next) {
        for (i = 0; FIELDS[i] && strcmp(FIELDS[i], k->string); i++) {}
        if (!FIELDS[i]) {
            snprintf(err, errlen, "%s: unknown field", k->string);
            return err;
        }
    }
    for (i = 0; i < 10; i++) {
        f[i] = NULL;
        if (i == 4 || i == 5) continue; /* mileage and payload: below */
        f[i] = text_of(ev, FIELDS[i], &bad);
        if (bad) {
            snprintf(err, errlen, "%s: expected a string", FIELDS[i]);
            return err;
        }
    }
    k = cJSON_GetObjectItemCaseSensitive(ev, "mileage");
    if (k && !cJSON_IsNull(k)) {
        if (!cJSON_IsNumber(k) || k->valuedouble < 0) return "mileage: expected number >= 0";
        number_text(k->valuedouble, num, sizeof num);
        f[4] = num;
    }
    if (vehicle) f[1] = vehicle;
    if (!f[1]) return "vehicle_id: is required";
    if (!f[2]) return "type: is required";
    if (!f[3]) return "occurred_at: is required";
    payload = cJSON_GetObjectItemCaseSensitive(ev, "payload");
    if (!payload) {
        payload = cJSON_CreateObject();
        if (!payload) return "out of memory";
        cJSON_AddItemToObject(ev, "payload", payload);
    }
    if (!(f[7] && !strcmp(f[7], "void")) && !mm_payload_check(schemas, f[2], payload, err, errlen))
        return err;
    payload_text = cJSON_PrintUnformatted(payload);
    if (!payload_text) return "out of memory";
    snprintf(linebuf, sizeof linebuf, "%ld", line);
    bad = !put_field(b, linebuf, 0);
    for (i = 0; i < 10 && !bad; i++) bad = !put_field(b, i == 5 ? payload_text : f[i], i == 9);
    cJSON_free(payload_text);
    return bad ? "out of memory" : NULL;
}

#define PROGRESS_EVERY 10000

/* db:copy_jsonl(copy_sql, path, codec, on_reject [, vehicle_id [, on_progress]])
 * -> rows_sent, lines | nil, message, sqlstate, detail.
 * Streams a JSON-lines file of events into a COPY whose rows are: line
 * number, then the fields of FIELDS in order (text format). Blank lines are
 * skipped; each rejected line calls on_reject(line_number, reason), and every
 * PROGRESS_EVERY lines on_progress(lines, bytes_read) is called. */
static int l_copy_jsonl(lua_State *L) {
    PGconn *pg = mm_check_pg(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    const char *path = luaL_checkstring(L, 3);
    const mm_schemas *schemas = mm_codec_schemas(L, 4);
    const char *vehicle = luaL_optstring(L, 6, NULL);
    int progress = !lua_isnoneornil(L, 7);
    mm_box *fbox, *lbox, *obox, *tbox;
    outbuf *out;
    FILE *f;
    char *linep = NULL, err[1024];
    size_t cap = 0;
    long line = 0, sent = 0;
    ssize_t n;
    luaL_checktype(L, 5, LUA_TFUNCTION);
    fbox = mm_box_new(L);
    f = fopen(path, "rb");
    if (!f) {
        lua_pushnil(L);
        lua_pushfstring(L, "%s: cannot open", path);
        return 2;
    }
    mm_box_hold(fbox, f, close_file);
    lbox = mm_box_new(L);
    obox = mm_box_new(L);
    tbox = mm_box_new(L);
    out = (outbuf *)calloc(1, sizeof *out);
    if (!out) return luaL_error(L, "out of memory");
    mm_box_hold(obox, out, free_outbuf);
    if (!start(L, pg, sql, PGRES_COPY_IN)) return 4;
    while ((n = getline(&linep, &cap, f)) >= 0) {
        const char *reason;
        cJSON *ev;
        mm_box_hold(lbox, linep, free);
        line++;
        if (progress && line % PROGRESS_EVERY == 0) {
            lua_pushvalue(L, 7);
            lua_pushinteger(L, line);
            lua_pushinteger(L, (lua_Integer)ftell(f));
            if (lua_pcall(L, 2, 0, 0) != 0) return abort_in(L, pg);
        }
        while (n > 0 && (linep[n - 1] == '\n' || linep[n - 1] == '\r')) linep[--n] = '\0';
        if (n == 0) continue;
        ev = cJSON_ParseWithLength(linep, (size_t)n);
        mm_box_hold(tbox, ev, delete_tree);
        reason = ev ? event_row(schemas, ev, line, vehicle, out, err, sizeof err) : "invalid JSON";
        mm_box_release(tbox);
        if (reason) {
            lua_pushvalue(L, 5);
            lua_pushinteger(L, line);
            lua_pushstring(L, reason);
            if (lua_pcall(L, 2, 0, 0) != 0) return abort_in(L, pg);
            continue;
        }
        sent++;
        if (out->len >= CHUNK) {
            if (PQputCopyData(pg, out->data, (int)out->len) != 1) break;
            out->len = 0;
        }
    }
    mm_box_hold(lbox, linep, free); /* getline may have moved it at the end */
    mm_box_release(lbox);
    mm_box_release(fbox);
    if (out->len) PQputCopyData(pg, out->data, (int)out->len);
    mm_box_release(obox);
    PQputCopyEnd(pg, NULL);
    n = finish(L, pg);
    if (n != 1) return (int)n;
    lua_pop(L, 1);
    lua_pushinteger(L, sent);
    lua_pushinteger(L, line);
    return 2;
}

static const luaL_Reg methods[] = {
    {"copy_in", l_copy_in},
    {"copy_out", l_copy_out},
    {"copy_jsonl", l_copy_jsonl},
    {NULL, NULL}
};

/* Adds the COPY methods to the connection's method table (at -1). */
int mm_open_copy(lua_State *L) {
    luaL_setfuncs(L, methods, 0);
    return 0;
}
