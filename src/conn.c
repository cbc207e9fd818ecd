/* motomind.Connection: a libpq connection as Lua userdata. Created closed with
 * its metatable set before the connection is opened; one close serves
 * close(), __gc and __close and is safe to call twice. */
#include "motomind.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void free_result(void *res) { PQclear((PGresult *)res); }
static void free_pq(void *p) { PQfreemem(p); }
#define NOTICES_MAX 65536

/* Keeps the server's notices (up to 64 KiB) for db:notices(); libpq calls
 * it, so it only copies bytes (no Lua). */
static void keep_notice(void *arg, const char *msg) {
    mm_conn *c = (mm_conn *)arg;
    size_t n = strlen(msg);
    char *p;
    while (n > 0 && msg[n - 1] == '\n') n--;
    if (c->notices_len + n + 1 > NOTICES_MAX || !(p = (char *)realloc(c->notices, c->notices_len + n + 1))) {
        c->notices_dropped++;
        return;
    }
    memcpy(p + c->notices_len, msg, n);
    p[c->notices_len + n] = '\0';
    c->notices = p;
    c->notices_len += n + 1;
}

static void clear_notices(mm_conn *c) {
    free(c->notices);
    c->notices = NULL;
    c->notices_len = 0;
    c->notices_dropped = 0;
}

static mm_conn *check_conn(lua_State *L) {
    return (mm_conn *)luaL_checkudata(L, 1, MM_CONN_MT);
}

mm_conn *mm_check_conn(lua_State *L, int idx) {
    mm_conn *c = (mm_conn *)luaL_checkudata(L, idx, MM_CONN_MT);
    if (!c->pg) luaL_error(L, "attempt to use a closed connection");
    if (c->busy) luaL_error(L, "attempt to use a connection inside its own COPY (from a COPY callback)");
    if (c->sent) luaL_error(L, "attempt to use a connection whose statement from db:send() is running (db:result() first)");
    return c;
}

static mm_conn *check_open(lua_State *L) { return mm_check_conn(L, 1); }

/* A string argument without NUL bytes (libpq would silently cut it there). */
static const char *check_text(lua_State *L, int idx, const char *what) {
    size_t len;
    const char *s = luaL_checklstring(L, idx, &len);
    if (strlen(s) != len) luaL_argerror(L, idx, lua_pushfstring(L, "%s contains a NUL byte", what));
    return s;
}

static void conn_close(mm_conn *c) {
    if (c->pg) PQfinish(c->pg);
    c->pg = NULL;
    clear_notices(c);
}

/* Closes and lets go of the read connection c owns (db:set_reader). */
static void drop_reader(lua_State *L, mm_conn *c) {
    mm_conn *r;
    if (c->reader == LUA_NOREF) return;
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->reader);
    r = (mm_conn *)lua_touserdata(L, -1);
    r->owned = 0;
    if (!r->busy && !r->held) conn_close(r);
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, c->reader);
    c->reader = LUA_NOREF;
}

/* connect([conninfo_or_url [, user [, connect_timeout]]]) -> connection |
 * nil, message, "08006". An empty or absent conninfo takes libpq's PG*
 * environment defaults; user and connect_timeout (seconds), when given,
 * override the conninfo's (libpq: later keywords win). */
static int l_connect(lua_State *L) {
    const char *info = lua_isnoneornil(L, 1) ? "" : check_text(L, 1, "conninfo");
    const char *user = lua_isnoneornil(L, 2) ? NULL : check_text(L, 2, "user");
    const char *timeout = lua_isnoneornil(L, 3) ? NULL : luaL_checkstring(L, 3);
    const char *keys[4] = {"dbname", NULL, NULL, NULL};
    const char *values[4] = {info, NULL, NULL, NULL};
    int n = 1;
    mm_conn *c;
    if (user) keys[n] = "user", values[n++] = user;
    if (timeout) keys[n] = "connect_timeout", values[n++] = timeout;
    c = (mm_conn *)lua_newuserdata(L, sizeof *c);
    PGresult *res;
    c->pg = NULL;
    c->busy = c->held = c->sent = 0;
    c->notices = NULL;
    c->notices_len = 0;
    c->notices_dropped = 0;
    c->reader = LUA_NOREF;
    c->owned = 0;
    c->pooled = 0;
    c->spin_us = mm_default_spin();
    mm_setmetatable(L, MM_CONN_MT);
    c->pg = PQconnectdbParams(keys, values, 1);
    if (!c->pg) return luaL_error(L, "out of memory");
    if (PQstatus(c->pg) != CONNECTION_OK) {
        mm_conn_error(L, c->pg, NULL);
        lua_pop(L, 1); /* detail table: nothing server-side to report */
        conn_close(c);
        return 3;
    }
    PQsetNoticeProcessor(c->pg, keep_notice, c);
    PQsetClientEncoding(c->pg, "UTF8");
    res = PQexec(c->pg, "SET DateStyle = 'ISO, YMD'");
    PQclear(res);
    return 1;
}

/* close() and __close: refused while a COPY of this connection runs. */
static int l_close(lua_State *L) {
    mm_conn *c = check_conn(L);
    if (c->busy) return luaL_error(L, "cannot close a connection inside its own COPY (from a COPY callback)");
    if (c->held) return luaL_error(L, "cannot close a connection inside its own import (from an import's callback)");
    drop_reader(L, c);
    conn_close(c);
    lua_pushboolean(L, 1);
    return 1;
}

/* __close: closes quietly (a busy or held connection is on its COPY's or
 * import's stack, so never leaves its scope meanwhile). */
static int l_close_scope(lua_State *L) {
    mm_conn *c = check_conn(L);
    if (!c->busy && !c->held) drop_reader(L, c), conn_close(c);
    return 0;
}

/* __gc: a connection still open here held a server backend until now; say
 * so on stderr (the fix is close() or a <close> variable), then close it.
 * A reader is its owner's to close, a pooled one its pool's: the pool lets
 * the collector close what it still holds when its Lua state ends. */
static int l_gc(lua_State *L) {
    mm_conn *c = check_conn(L);
    if (c->pg && !c->busy && !c->held && !c->owned && !c->pooled) {
        fputs("motomind: warning: a connection was garbage-collected while open; "
              "close it with db:close() or a <close> variable\n", stderr);
    }
    if (!c->busy && !c->held) drop_reader(L, c), conn_close(c);
    return 0;
}

/* db:set_reader(other | nil): db owns other from now on (closing db closes
 * it; a reader set before is closed); db:reader() in Lua sends the reads
 * that tolerate lag there. A reader has no reader of its own. */
static int l_set_reader(lua_State *L) {
    mm_conn *c = check_open(L), *r = NULL;
    if (c->owned) return luaL_error(L, "set_reader: this connection is another one's reader");
    if (!lua_isnoneornil(L, 2)) {
        r = mm_check_conn(L, 2);
        if (r == c) return luaL_argerror(L, 2, "a connection cannot be its own reader");
        if (r->reader != LUA_NOREF) return luaL_argerror(L, 2, "a reader cannot have a reader");
        if (r->owned) return luaL_argerror(L, 2, "already another connection's reader");
    }
    drop_reader(L, c);
    if (r) {
        lua_pushvalue(L, 2);
        c->reader = luaL_ref(L, LUA_REGISTRYINDEX);
        r->owned = 1;
    }
    return 0;
}

/* db:set_pooled(): db belongs to a pool that keeps it open until its Lua
 * state ends (an nginx thread VM's), so __gc closes it without a warning. */
static int l_set_pooled(lua_State *L) {
    check_open(L)->pooled = 1;
    return 0;
}

/* db:get_reader() -> the connection set by set_reader, or nil */
static int l_get_reader(lua_State *L) {
    mm_conn *c = check_conn(L);
    if (c->reader == LUA_NOREF) lua_pushnil(L);
    else lua_rawgeti(L, LUA_REGISTRYINDEX, c->reader);
    return 1;
}

/* Ends a COPY that a plain query started, so the connection stays usable. */
static void abandon_copy(PGconn *pg, ExecStatusType st) {
    PGresult *r;
    char *buf;
    if (st == PGRES_COPY_IN) PQputCopyEnd(pg, "COPY is not supported by query()");
    if (st == PGRES_COPY_OUT)
        while (PQgetCopyData(pg, &buf, 0) > 0) PQfreemem(buf);
    while ((r = PQgetResult(pg)) != NULL) PQclear(r);
}

static int is_copy(const PGresult *res) {
    return res && (PQresultStatus(res) == PGRES_COPY_IN || PQresultStatus(res) == PGRES_COPY_OUT);
}

static int copy_refused(lua_State *L, const char *method) {
    lua_pushnil(L);
    lua_pushfstring(L, "%s() does not run COPY; use the copy API", method);
    lua_pushliteral(L, "0A000"); /* feature_not_supported */
    return 3;
}

/* Runs sql with the parameters at 3..top; leaves a box owning the result on
 * the stack and returns the result (or NULL when libpq returned none). */
static PGresult *run(lua_State *L, mm_conn *c) {
    const char *sql = check_text(L, 2, "SQL text");
    int top = lua_gettop(L);
    mm_box *box;
    const char **values = mm_params(L, 3, top);
    PGresult *res;
    box = mm_box_new(L);
    res = PQsendQueryParams(c->pg, sql, top - 2, NULL, values, NULL, NULL, 0) ? mm_finish(c) : NULL;
    mm_box_hold(box, res, free_result);
    if (is_copy(res)) abandon_copy(c->pg, PQresultStatus(res));
    return res;
}

static long affected(PGresult *res) {
    const char *n = PQcmdTuples(res);
    return *n ? strtol(n, NULL, 10) : 0;
}

static int ok_status(PGresult *res) {
    ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
    return st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK || st == PGRES_EMPTY_QUERY;
}

/* db:prepare(name, sql) -> true | nil, message, sqlstate, detail.
 * The statement is parsed and planned once per connection. */
static int l_prepare(lua_State *L) {
    mm_conn *c = check_open(L);
    const char *name = check_text(L, 2, "statement name");
    const char *sql = check_text(L, 3, "SQL text");
    mm_box *box = mm_box_new(L);
    PGresult *res = PQsendPrepare(c->pg, name, sql, 0, NULL) ? mm_finish(c) : NULL;
    mm_box_hold(box, res, free_result);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) return mm_conn_error(L, c->pg, res);
    lua_pushboolean(L, 1);
    return 1;
}

/* db:query_prepared(name, ...) -> rows, affected | nil, message, sqlstate, detail */
static int l_query_prepared(lua_State *L) {
    mm_conn *c = check_open(L);
    const char *name = check_text(L, 2, "statement name");
    int top = lua_gettop(L);
    const char **values = mm_params(L, 3, top);
    mm_box *box = mm_box_new(L);
    PGresult *res = PQsendQueryPrepared(c->pg, name, top - 2, values, NULL, NULL, 0) ? mm_finish(c) : NULL;
    mm_box_hold(box, res, free_result);
    if (!ok_status(res)) return mm_conn_error(L, c->pg, res);
    mm_push_rows(L, res);
    lua_pushinteger(L, (lua_Integer)affected(res));
    return 2;
}

/* db:query(sql, ...) -> rows, affected | nil, message, sqlstate, detail */
static int l_query(lua_State *L) {
    mm_conn *c = check_open(L);
    PGresult *res = run(L, c);
    if (is_copy(res)) return copy_refused(L, "query");
    if (!ok_status(res)) return mm_conn_error(L, c->pg, res);
    mm_push_rows(L, res);
    lua_pushinteger(L, (lua_Integer)affected(res));
    return 2;
}

/* db:exec(sql, ...) -> affected | nil, message, sqlstate, detail */
/* What exec (or send's result) returns for res: the rows affected, or the
 * error (method names the call a COPY is refused by). */
static int affected_or_error(lua_State *L, mm_conn *c, PGresult *res, const char *method) {
    if (is_copy(res)) return copy_refused(L, method);
    if (!ok_status(res)) return mm_conn_error(L, c->pg, res);
    lua_pushinteger(L, (lua_Integer)affected(res));
    return 1;
}

static int l_exec(lua_State *L) {
    mm_conn *c = check_open(L);
    return affected_or_error(L, c, run(L, c), "exec");
}

/* db:send(sql, ...) -> true | nil, message, sqlstate: sends a statement
 * (its parameters bound) and returns without waiting, so the client can
 * work while the server runs it; db:result() reads what it did. The
 * connection takes no other statement meanwhile. */
static int l_send(lua_State *L) {
    mm_conn *c = check_open(L);
    const char *sql = check_text(L, 2, "SQL text");
    int top = lua_gettop(L);
    const char **values = mm_params(L, 3, top);
    if (!PQsendQueryParams(c->pg, sql, top - 2, NULL, values, NULL, NULL, 0)) return mm_conn_error(L, c->pg, NULL);
    c->sent = 1;
    lua_pushboolean(L, 1);
    return 1;
}

/* db:result() -> rows affected | nil, message, sqlstate, detail: waits for
 * the statement db:send sent (as exec, which returns the same). */
static int l_result(lua_State *L) {
    mm_conn *c = check_conn(L);
    mm_box *box;
    PGresult *res;
    if (!c->sent) return luaL_error(L, "db:result(): no statement was sent (db:send)");
    c->sent = 0;
    if (!c->pg) return luaL_error(L, "attempt to use a closed connection");
    box = mm_box_new(L);
    res = mm_finish(c);
    mm_box_hold(box, res, free_result);
    if (is_copy(res)) abandon_copy(c->pg, PQresultStatus(res));
    return affected_or_error(L, c, res, "send");
}

/* Reads a pipeline's results up to its sync. The result of statement `keep`
 * (counted from 0) goes to *kept, held by keep_box (kept NULL: none is
 * kept); the first failure to *failed, held by fail_box. -> 1 when the sync
 * arrived, 0 when the connection failed first. */
static int drain_pipeline(mm_conn *c, int keep, mm_box *keep_box, PGresult **kept,
                          mm_box *fail_box, PGresult **failed) {
    int stmt = 0;
    PGresult *res;
    while (PQstatus(c->pg) == CONNECTION_OK) {
        mm_spin(c);
        if (!(res = PQgetResult(c->pg))) { stmt++; continue; } /* the end of one statement's results */
        if (PQresultStatus(res) == PGRES_PIPELINE_SYNC) {
            PQclear(res);
            return 1;
        }
        if (PQresultStatus(res) == PGRES_FATAL_ERROR && !*failed) {
            *failed = res;
            mm_box_hold(fail_box, res, free_result);
        } else if (kept && stmt == keep && !*kept &&
                   (PQresultStatus(res) == PGRES_TUPLES_OK || PQresultStatus(res) == PGRES_COMMAND_OK)) {
            *kept = res;
            mm_box_hold(keep_box, res, free_result);
        } else {
            PQclear(res);
        }
    }
    return 0;
}

/* The parameters of the list at idx, as mm_params gives them: the list's
 * values are pushed first. -> the values; *n their number. */
static const char **list_params(lua_State *L, int idx, int *n) {
    int i, first = lua_gettop(L) + 1;
    luaL_checktype(L, idx, LUA_TTABLE);
    *n = (int)mm_rawlen(L, idx);
    luaL_checkstack(L, *n + 2, "too many parameters");
    for (i = 1; i <= *n; i++) lua_rawgeti(L, idx, i);
    return mm_params(L, first, first + *n - 1);
}

/* db:begin_with(sql, ...) -> true | nil, message, sqlstate, detail.
 * BEGIN and one statement with bound parameters in one round trip (libpq's
 * pipeline mode): how db:as opens its transaction and sets the context. On
 * failure nothing stays open (the transaction is rolled back). */
static int l_begin_with(lua_State *L) {
    mm_conn *c = check_open(L);
    const char *sql = check_text(L, 2, "SQL text");
    int top = lua_gettop(L), synced = 0;
    const char **values;
    mm_box *fail_box;
    PGresult *failed = NULL;
    if (PQtransactionStatus(c->pg) != PQTRANS_IDLE) return luaL_error(L, "begin_with: a transaction is already open");
    values = mm_params(L, 3, top);
    fail_box = mm_box_new(L);
    if (!PQenterPipelineMode(c->pg)) return mm_conn_error(L, c->pg, NULL);
    if (PQsendQueryParams(c->pg, "BEGIN", 0, NULL, NULL, NULL, NULL, 0) &&
        PQsendQueryParams(c->pg, sql, top - 2, NULL, values, NULL, NULL, 0) && PQpipelineSync(c->pg))
        synced = drain_pipeline(c, 0, NULL, NULL, fail_box, &failed);
    PQexitPipelineMode(c->pg);
    if (!synced || failed) {
        if (PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
            PQclear(PQexec(c->pg, "ROLLBACK"));
        return mm_conn_error(L, c->pg, failed);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* db:query_prepared_after(sql, args, name, ...) -> rows, affected | nil,
 * message, sqlstate, detail. The statement sql with the parameters in the
 * list args, then the prepared statement name with the parameters ..., in
 * one round trip and one implicit transaction (libpq's pipeline mode): how
 * a one-statement read sets its context, which set_config(..., true) keeps
 * to the end of that transaction. Nothing stays open, on failure either. */
static int l_query_prepared_after(lua_State *L) {
    mm_conn *c = check_open(L);
    const char *sql = check_text(L, 2, "SQL text");
    const char *name = check_text(L, 4, "statement name");
    int top = lua_gettop(L), n_first, synced = 0;
    const char **first, **values;
    mm_box *fail_box, *rows_box;
    PGresult *failed = NULL, *rows = NULL;
    if (PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        return luaL_error(L, "query_prepared_after: a transaction is open (its context would change)");
    values = mm_params(L, 5, top);
    first = list_params(L, 3, &n_first);
    fail_box = mm_box_new(L);
    rows_box = mm_box_new(L);
    if (!PQenterPipelineMode(c->pg)) return mm_conn_error(L, c->pg, NULL);
    if (PQsendQueryParams(c->pg, sql, n_first, NULL, first, NULL, NULL, 0) &&
        PQsendQueryPrepared(c->pg, name, top - 4, values, NULL, NULL, 0) && PQpipelineSync(c->pg))
        synced = drain_pipeline(c, 1, rows_box, &rows, fail_box, &failed);
    PQexitPipelineMode(c->pg);
    if (!synced || failed || !rows) return mm_conn_error(L, c->pg, failed);
    mm_push_rows(L, rows);
    lua_pushinteger(L, (lua_Integer)affected(rows));
    return 2;
}

/* db:script(sql) runs several statements without parameters (migrations),
 * in one round trip. -> the rows of the last statement when it returns
 * rows, else true | nil, message, sqlstate, detail */
static int l_script(lua_State *L) {
    mm_conn *c = check_open(L);
    const char *sql = check_text(L, 2, "SQL text");
    mm_box *box = mm_box_new(L);
    PGresult *res = PQsendQuery(c->pg, sql) ? mm_finish(c) : NULL;
    mm_box_hold(box, res, free_result);
    if (is_copy(res)) {
        abandon_copy(c->pg, PQresultStatus(res));
        return copy_refused(L, "script");
    }
    if (!ok_status(res)) return mm_conn_error(L, c->pg, res);
    if (PQresultStatus(res) == PGRES_TUPLES_OK) mm_push_rows(L, res);
    else lua_pushboolean(L, 1);
    return 1;
}

/* db:escape_identifier(name) -> "quoted" identifier, by libpq's rules. */
static int l_escape_identifier(lua_State *L) {
    mm_conn *c = check_open(L);
    const char *s = check_text(L, 2, "identifier");
    mm_box *box = mm_box_new(L);
    char *q = PQescapeIdentifier(c->pg, s, strlen(s));
    if (!q) return luaL_error(L, "escape_identifier: %s", PQerrorMessage(c->pg));
    mm_box_hold(box, q, free_pq);
    lua_pushstring(L, q);
    mm_box_release(box);
    return 1;
}

/* db:transaction_status() -> "idle" | "active" | "intrans" | "inerror" | "unknown" */
static int l_transaction_status(lua_State *L) {
    static const char *const names[] = {"idle", "active", "intrans", "inerror", "unknown"};
    PGTransactionStatusType st = PQtransactionStatus(check_open(L)->pg);
    lua_pushstring(L, names[st <= PQTRANS_UNKNOWN ? st : PQTRANS_UNKNOWN]);
    return 1;
}

/* db:notices() -> { "NOTICE:  ...", ... }: the server's notices (RAISE
 * NOTICE, warnings) since the last call, oldest first; then forgotten. */
static int l_notices(lua_State *L) {
    mm_conn *c = check_conn(L);
    size_t at = 0;
    int i = 0;
    lua_newtable(L);
    while (at < c->notices_len) {
        size_t n = strlen(c->notices + at);
        lua_pushlstring(L, c->notices + at, n);
        lua_rawseti(L, -2, ++i);
        at += n + 1;
    }
    if (c->notices_dropped) {
        lua_pushfstring(L, "(%d more notices not kept)", (int)c->notices_dropped);
        lua_rawseti(L, -2, ++i);
    }
    clear_notices(c);
    return 1;
}

/* db:status() -> "ok" | "bad" | "closed" | "busy" (inside its own COPY) */
static int l_status(lua_State *L) {
    mm_conn *c = check_conn(L);
    lua_pushstring(L, !c->pg ? "closed" : c->busy ? "busy" : PQstatus(c->pg) == CONNECTION_OK ? "ok" : "bad");
    return 1;
}

static int l_server_version(lua_State *L) {
    lua_pushinteger(L, PQserverVersion(check_open(L)->pg));
    return 1;
}

static int l_backend_pid(lua_State *L) {
    lua_pushinteger(L, PQbackendPID(check_open(L)->pg));
    return 1;
}

static int l_tostring(lua_State *L) {
    mm_conn *c = check_conn(L);
    if (!c->pg) lua_pushliteral(L, "motomind.Connection (closed)");
    else lua_pushfstring(L, "motomind.Connection (%s@%s:%s/%s)", PQuser(c->pg),
                         PQhost(c->pg), PQport(c->pg), PQdb(c->pg));
    return 1;
}

/* db:set_spin(microseconds) -> the previous budget: how long the client
 * reads its socket without blocking before libpq blocks (src/wait.c); 0
 * blocks at once. */
static int l_set_spin(lua_State *L) {
    mm_conn *c = check_open(L);
    lua_Integer us = luaL_checkinteger(L, 2);
    if (us < 0 || us > MM_SPIN_MAX)
        return luaL_argerror(L, 2, lua_pushfstring(L, "expected 0 to %d microseconds", MM_SPIN_MAX));
    lua_pushinteger(L, (lua_Integer)c->spin_us);
    c->spin_us = (long)us;
    return 1;
}

static const luaL_Reg methods[] = {
    {"query", l_query},
    {"exec", l_exec},
    {"send", l_send},
    {"result", l_result},
    {"prepare", l_prepare},
    {"query_prepared", l_query_prepared},
    {"script", l_script},
    {"escape_identifier", l_escape_identifier},
    {"transaction_status", l_transaction_status},
    {"status", l_status},
    {"begin_with", l_begin_with},
    {"query_prepared_after", l_query_prepared_after},
    {"set_reader", l_set_reader},
    {"set_pooled", l_set_pooled},
    {"set_spin", l_set_spin},
    {"get_reader", l_get_reader},
    {"notices", l_notices},
    {"server_version", l_server_version},
    {"backend_pid", l_backend_pid},
    {"close", l_close},
    {NULL, NULL}
};

static const luaL_Reg metamethods[] = {
    {"__gc", l_gc},
    {"__close", l_close_scope},
    {"__tostring", l_tostring},
    {NULL, NULL}
};

void mm_push_conn_methods(lua_State *L) {
    luaL_getmetatable(L, MM_CONN_MT);
    lua_getfield(L, -1, "__index");
    lua_remove(L, -2);
}

/* Adds connect(), spin_max (db:set_spin's bound, for connect's check) and
 * Connection (the method table, open to Lua-side methods and to copy.c and
 * import.c) to the module table. */
int mm_open_conn(lua_State *L) {
    if (luaL_newmetatable(L, MM_CONN_MT)) {
        mm_setfuncs(L, metamethods, 0);
        mm_newlib(L, methods);
        lua_setfield(L, -2, "__index");
    }
    lua_getfield(L, -1, "__index");
    lua_setfield(L, -3, "Connection");
    lua_pop(L, 1);
    lua_pushcfunction(L, l_connect);
    lua_setfield(L, -2, "connect");
    lua_pushinteger(L, MM_SPIN_MAX);
    lua_setfield(L, -2, "spin_max");
    return 0;
}
