/* Internal interfaces shared by the C core's parts. */
#ifndef MOTOMIND_H
#define MOTOMIND_H

#include "compat.h"
#include <libpq-fe.h>

#define MM_CONN_MT "motomind.Connection"
#define MM_BOX_MT "motomind.Box"
#define MM_NULL_KEY "motomind.null"
#define MM_ARRAY_MT "motomind.json.array" /* registry: the metatable of JSON arrays */

/* box.c: a userdata that owns one C allocation, so a Lua error raised while
 * that allocation is alive (out of memory, bad input) cannot leak it. */
typedef void (*mm_free_fn)(void *);
typedef struct mm_box {
    void *ptr;
    mm_free_fn free;
} mm_box;
mm_box *mm_box_new(lua_State *L);
void mm_box_hold(mm_box *box, void *ptr, mm_free_fn free);
void mm_box_release(mm_box *box);
int mm_open_box(lua_State *L);

/* null.c: the sentinel for SQL NULL and JSON null. */
void mm_push_null(lua_State *L);
int mm_isnull(lua_State *L, int idx);
int mm_open_null(lua_State *L);

/* json.c: cJSON <-> Lua. Encoding a value at idx pushes the JSON text, or
 * returns 0 and pushes an error message naming the path. */
struct cJSON;
int mm_json_encode(lua_State *L, int idx, const char *root);
int mm_json_decode(lua_State *L, const char *text, size_t len);
int mm_json_build(lua_State *L, int idx, const char *root, mm_box *box);
int mm_json_parse(lua_State *L, const char *text, size_t len, const char *root, mm_box *box);
void mm_json_push(lua_State *L, const struct cJSON *item);
void mm_json_push_text(lua_State *L, const struct cJSON *tree);
int mm_open_json(lua_State *L);

/* params.c: Lua values -> text parameters for PQexecParams. */
const char **mm_params(lua_State *L, int first, int last);

/* result.c: PGresult rows -> Lua tables, converted by column type. */
void mm_push_rows(lua_State *L, const PGresult *res);

/* core.c */
LUALIB_API int luaopen_motomind_core(lua_State *L);

/* conn.c: the connection. busy is set while a COPY runs Lua callbacks: the
 * connection then refuses close() and every statement, so no libpq call is
 * ever made on a handle a callback closed; held is set while an import
 * runs its chunks' callbacks, which use the connection but may not close
 * it. sent: a statement went out by db:send, its result not yet read. */
typedef struct mm_conn {
    PGconn *pg;
    int busy, held, sent;
    char *notices;       /* the server's notices since db:notices(), NUL-separated */
    size_t notices_len;
    long notices_dropped; /* past the buffer's limit */
    int reader;           /* registry ref of the read connection it owns, or LUA_NOREF */
    int owned;            /* it is another connection's reader */
    int pooled;           /* a pool's (db:set_pooled): __gc closes it without a warning */
    long spin_us;         /* how long to read without blocking before libpq blocks (wait.c) */
} mm_conn;
int mm_open_conn(lua_State *L);
/* wait.c: spin before blocking on a result; PQexec's finish with the spin. */
#define MM_SPIN_US 1000
#define MM_SPIN_MAX 1000000 /* the largest budget db:set_spin takes */
void mm_spin(mm_conn *c);
long mm_default_spin(void);
PGresult *mm_finish(mm_conn *c);
/* The open, idle connection at idx (raises when closed or busy). */
mm_conn *mm_check_conn(lua_State *L, int idx);
/* The connection's method table, for copy.c and import.c to add to. */
void mm_push_conn_methods(lua_State *L);
int mm_open_codec(lua_State *L);
struct mm_schemas;
const struct mm_schemas *mm_codec_schemas(lua_State *L, int idx);
int mm_open_copy(lua_State *L);
int mm_open_import(lua_State *L);
/* copy.c: start a COPY (1 and the connection busy, or 0 with nil, message,
 * sqlstate, detail pushed), collect its result (pushes rows or the error;
 * returns the count pushed), end a COPY IN without keeping its rows, and end
 * one a Lua error interrupted and re-raise that error. All but start leave
 * the connection idle. */
int mm_copy_start(lua_State *L, mm_conn *c, const char *sql, ExecStatusType want);
int mm_copy_finish(lua_State *L, mm_conn *c);
void mm_copy_cancel(mm_conn *c, const char *why);
int mm_copy_abort(lua_State *L, mm_conn *c);
int mm_conn_error(lua_State *L, PGconn *pg, const PGresult *res);
int mm_open_fs(lua_State *L);
int mm_open_notify(lua_State *L);
int mm_open_hmac(lua_State *L);

#endif
