/* LISTEN/NOTIFY: db:wait_notification(timeout) waits on the connection's
 * socket for a notification, so consumers need not poll the database. */
#include "motomind.h"
#include <errno.h>
#include <poll.h>

/* Pushes the first queued notification (channel, payload, sender pid) and
 * returns 3, or returns 0 when none is queued. */
static int push_notification(lua_State *L, PGconn *pg) {
    PGnotify *n = PQnotifies(pg);
    if (!n) return 0;
    lua_pushstring(L, n->relname);
    lua_pushstring(L, n->extra);
    lua_pushinteger(L, n->be_pid);
    PQfreemem(n);
    return 3;
}

static int lost(lua_State *L, PGconn *pg) {
    lua_pushnil(L);
    lua_pushstring(L, PQerrorMessage(pg));
    lua_pushliteral(L, "08006"); /* connection_failure */
    return 3;
}

/* db:wait_notification([timeout_seconds]) -> channel, payload, pid
 *   | nil, "timeout" | nil, message, "08006". Waits forever without a
 * timeout; a notification that arrived earlier is returned at once. The
 * connection must LISTEN first (db:exec("LISTEN ...")). */
static int l_wait_notification(lua_State *L) {
    mm_conn *c = mm_check_conn(L, 1);
    double timeout = luaL_optnumber(L, 2, -1);
    struct pollfd p;
    int r;
    if (!PQconsumeInput(c->pg)) return lost(L, c->pg);
    if ((r = push_notification(L, c->pg))) return r;
    p.fd = PQsocket(c->pg);
    p.events = POLLIN;
    if (p.fd < 0) return lost(L, c->pg);
    do {
        r = poll(&p, 1, timeout < 0 ? -1 : (int)(timeout * 1000));
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "timeout");
        return 2;
    }
    if (r < 0 || !PQconsumeInput(c->pg)) return lost(L, c->pg);
    if ((r = push_notification(L, c->pg))) return r;
    lua_pushnil(L);
    lua_pushliteral(L, "timeout"); /* woken by other traffic: nothing for us yet */
    return 2;
}

int mm_open_notify(lua_State *L) {
    mm_push_conn_methods(L);
    lua_pushcfunction(L, l_wait_notification);
    lua_setfield(L, -2, "wait_notification");
    lua_pop(L, 1);
    return 0;
}
