/* COPY, streamed: copy_in sends chunks a Lua function produces, copy_out
 * hands chunks to a Lua function (import.c streams files of events). Lua
 * callbacks run between libpq calls under lua_pcall, with the connection
 * marked busy (it refuses close() and statements meanwhile); on an error the
 * COPY is ended before the error is re-raised, so the connection stays
 * usable. */
#include "motomind.h"
#include "event.h"
#include <stdlib.h>

static void free_pq(void *p) { PQfreemem(p); }
static void free_result(void *p) { PQclear((PGresult *)p); }

int mm_copy_start(lua_State *L, mm_conn *c, const char *sql, ExecStatusType want) {
    mm_box *box = mm_box_new(L);
    PGresult *res = PQsendQuery(c->pg, sql) ? mm_finish(c) : NULL;
    mm_box_hold(box, res, free_result);
    if (res && PQresultStatus(res) == want) {
        mm_box_release(box);
        lua_pop(L, 1);
        c->busy = 1;
        return 1;
    }
    mm_conn_error(L, c->pg, res);
    lua_remove(L, -5); /* the box */
    return 0;
}

int mm_copy_finish(lua_State *L, mm_conn *c) {
    mm_box *box = mm_box_new(L);
    PGresult *res, *more;
    int n;
    c->busy = 0;
    mm_spin(c);
    res = PQgetResult(c->pg);
    mm_box_hold(box, res, free_result);
    while ((more = PQgetResult(c->pg)) != NULL) PQclear(more);
    if (res && PQresultStatus(res) == PGRES_COMMAND_OK) {
        lua_pushinteger(L, (lua_Integer)strtoll(PQcmdTuples(res), NULL, 10));
        n = 1;
    } else {
        n = mm_conn_error(L, c->pg, res);
    }
    mm_box_release(box);
    lua_remove(L, -1 - n);
    return n;
}

void mm_copy_cancel(mm_conn *c, const char *why) {
    PGresult *r;
    c->busy = 0;
    PQputCopyEnd(c->pg, why);
    while ((r = PQgetResult(c->pg)) != NULL) PQclear(r);
}

int mm_copy_abort(lua_State *L, mm_conn *c) {
    mm_copy_cancel(c, "aborted by the client");
    return lua_error(L);
}

/* db:copy_in(sql, producer) -> rows | nil, message, sqlstate, detail.
 * producer() returns the next chunk of COPY data, or nil at the end. */
static int l_copy_in(lua_State *L) {
    mm_conn *c = mm_check_conn(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    if (!mm_copy_start(L, c, sql, PGRES_COPY_IN)) return 4;
    for (;;) {
        size_t len;
        const char *chunk;
        lua_pushvalue(L, 3);
        if (lua_pcall(L, 0, 1, 0) != 0) return mm_copy_abort(L, c);
        if (lua_isnil(L, -1)) { lua_pop(L, 1); break; }
        chunk = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
        if (!chunk) {
            lua_pushliteral(L, "copy_in: the producer must return strings (or nil at the end)");
            return mm_copy_abort(L, c);
        }
        if (PQputCopyData(c->pg, chunk, (int)len) != 1) { lua_pop(L, 1); break; }
        lua_pop(L, 1);
    }
    PQputCopyEnd(c->pg, NULL);
    return mm_copy_finish(L, c);
}

/* Ends a COPY TO that a Lua error interrupted (the rest read and dropped,
 * the connection idle again) and re-raises that error. */
static int copy_out_abort(lua_State *L, mm_conn *c) {
    PGresult *r;
    char *buf;
    c->busy = 0;
    while (PQgetCopyData(c->pg, &buf, 0) > 0) PQfreemem(buf);
    while ((r = PQgetResult(c->pg)) != NULL) PQclear(r);
    return lua_error(L);
}

/* db:copy_out(sql, consumer) -> rows | nil, message, sqlstate, detail.
 * consumer(chunk) is called with each piece of COPY data (a row, in text
 * formats). */
static int l_copy_out(lua_State *L) {
    mm_conn *c = mm_check_conn(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    mm_box *box;
    char *buf;
    int len;
    luaL_checktype(L, 3, LUA_TFUNCTION);
    if (!mm_copy_start(L, c, sql, PGRES_COPY_OUT)) return 4;
    box = mm_box_new(L);
    while ((len = PQgetCopyData(c->pg, &buf, 0)) > 0) {
        mm_box_hold(box, buf, free_pq);
        lua_pushvalue(L, 3);
        lua_pushlstring(L, buf, (size_t)len);
        mm_box_release(box);
        if (lua_pcall(L, 1, 0, 0) != 0) return copy_out_abort(L, c);
    }
    lua_pop(L, 1);
    return mm_copy_finish(L, c);
}

#define EVENTS_CHUNK 65536

/* Hands the JSON lines written so far to the consumer (at 3); a Lua error
 * ends the COPY and is re-raised. */
static void events_flush(lua_State *L, mm_conn *c, const char *out, size_t len) {
    lua_pushvalue(L, 3);
    lua_pushlstring(L, out, len);
    if (lua_pcall(L, 1, 0, 0) != 0) copy_out_abort(L, c);
}

/* db:copy_out_events(sql, consumer) -> rows | nil, message, sqlstate, detail.
 * sql: a COPY TO STDOUT, text format, of the event fields in their order
 * (event.h); consumer(chunk) gets the events as JSON lines
 * (mm_event_json_line), in chunks of about 64 KiB. The server only prints
 * the columns; the JSON is written here, beside it. */
static int l_copy_out_events(lua_State *L) {
    mm_conn *c = mm_check_conn(L, 1);
    const char *sql = luaL_checkstring(L, 2);
    mm_box *box;
    char *out = NULL, *buf;
    size_t len = 0, cap = 0;
    int n;
    luaL_checktype(L, 3, LUA_TFUNCTION);
    if (!mm_copy_start(L, c, sql, PGRES_COPY_OUT)) return 4;
    box = mm_box_new(L);
    while ((n = PQgetCopyData(c->pg, &buf, 0)) > 0) {
        size_t need = len + mm_event_json_bound((size_t)n), wrote;
        if (need > cap) {
            size_t grown = need > 2 * EVENTS_CHUNK ? need : 2 * EVENTS_CHUNK;
            char *more = realloc(out, grown);
            if (!more) {
                PQfreemem(buf);
                lua_pushliteral(L, "copy_out_events: out of memory");
                return copy_out_abort(L, c);
            }
            mm_box_hold(box, out = more, free);
            cap = grown;
        }
        wrote = mm_event_json_line(buf, (size_t)n, out + len);
        PQfreemem(buf);
        if (!wrote) {
            lua_pushliteral(L, "copy_out_events: a COPY row that is not the event's fields in order");
            return copy_out_abort(L, c);
        }
        if ((len += wrote) >= EVENTS_CHUNK) {
            events_flush(L, c, out, len);
            len = 0;
        }
    }
    if (len > 0) events_flush(L, c, out, len);
    mm_box_release(box);
    lua_pop(L, 1);
    return mm_copy_finish(L, c);
}

static const luaL_Reg methods[] = {
    {"copy_in", l_copy_in},
    {"copy_out", l_copy_out},
    {"copy_out_events", l_copy_out_events},
    {NULL, NULL}
};

/* Adds the COPY methods to the connection's method table. */
int mm_open_copy(lua_State *L) {
    mm_push_conn_methods(L);
    mm_setfuncs(L, methods, 0);
    lua_pop(L, 1);
    return 0;
}
