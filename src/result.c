/* PGresult -> Lua, converted by column type, and server errors -> the
 * nil, message, sqlstate, detail convention. */
#include "motomind.h"
#include <stdlib.h>
#include <string.h>

/* Type OIDs from pg_type.h (stable across server versions). */
enum {
    OID_BOOL = 16, OID_INT8 = 20, OID_INT2 = 21, OID_INT4 = 23, OID_OID = 26,
    OID_JSON = 114, OID_FLOAT4 = 700, OID_FLOAT8 = 701,
    OID_TIMESTAMP = 1114, OID_TIMESTAMPTZ = 1184, OID_JSONB = 3802,
    OID_TEXT_ARRAY = 1009, OID_VARCHAR_ARRAY = 1015, OID_UUID_ARRAY = 2951
};

/* A one-dimensional array of text-like elements, "{a,"b c",NULL}" -> a Lua
 * array of strings (motomind.null for NULL). Anything else (nested, with
 * explicit bounds) stays text. */
static void push_text_array(lua_State *L, const char *s, int len) {
    int i = 1, n = 0, t;
    if (len < 2 || s[0] != '{' || s[len - 1] != '}' || memchr(s + 1, '{', (size_t)(len - 2))) {
        lua_pushlstring(L, s, len);
        return;
    }
    lua_newtable(L);
    t = lua_gettop(L);
    if (len == 2) goto done;
    while (i < len) {
        luaL_Buffer b;
        if (s[i] == '"') {
            luaL_buffinit(L, &b);
            for (i++; i < len - 1 && s[i] != '"'; i++) {
                if (s[i] == '\\' && i + 1 < len - 1) i++;
                luaL_addchar(&b, s[i]);
            }
            luaL_pushresult(&b);
            i++; /* the closing quote */
        } else {
            int start = i;
            while (i < len - 1 && s[i] != ',') i++;
            if (i - start == 4 && memcmp(s + start, "NULL", 4) == 0) mm_push_null(L);
            else lua_pushlstring(L, s + start, (size_t)(i - start));
        }
        lua_rawseti(L, t, ++n);
        i++; /* the comma, or the closing brace */
    }
done:
    lua_getfield(L, LUA_REGISTRYINDEX, MM_ARRAY_MT);
    lua_setmetatable(L, t);
}

static void push_int8(lua_State *L, const char *s) {
#if MM_HAS_INTEGERS
    lua_pushinteger(L, (lua_Integer)strtoll(s, NULL, 10));
#else
    long long v = strtoll(s, NULL, 10);
    if (v <= (long long)MM_MAX_EXACT_DOUBLE && v >= -(long long)MM_MAX_EXACT_DOUBLE)
        lua_pushnumber(L, (lua_Number)v);
    else
        lua_pushstring(L, s); /* beyond 2^53: exact as text */
#endif
}

/* ISO-style "2025-01-20 10:00:00+00" -> ISO 8601 "2025-01-20T10:00:00+00:00". */
static void push_timestamp(lua_State *L, const char *s, int len, int with_tz) {
    char buf[64];
    int sign;
    if (len < 19 || len > 50 || s[10] != ' ') { lua_pushlstring(L, s, len); return; }
    memcpy(buf, s, len);
    buf[10] = 'T';
    sign = len - 3;
    if (with_tz && sign >= 19 && (buf[sign] == '+' || buf[sign] == '-')) {
        memcpy(buf + len, ":00", 3);
        len += 3;
    }
    lua_pushlstring(L, buf, len);
}

static void push_value(lua_State *L, const PGresult *res, int row, int col, Oid type) {
    const char *s = PQgetvalue(res, row, col);
    int len = PQgetlength(res, row, col);
    switch (type) {
    case OID_INT2: case OID_INT4: case OID_OID:
        lua_pushinteger(L, (lua_Integer)strtol(s, NULL, 10)); break;
    case OID_INT8: push_int8(L, s); break;
    case OID_FLOAT4: case OID_FLOAT8: lua_pushnumber(L, (lua_Number)strtod(s, NULL)); break;
    case OID_BOOL: lua_pushboolean(L, s[0] == 't'); break;
    case OID_TIMESTAMP: push_timestamp(L, s, len, 0); break;
    case OID_TIMESTAMPTZ: push_timestamp(L, s, len, 1); break;
    case OID_TEXT_ARRAY: case OID_VARCHAR_ARRAY: case OID_UUID_ARRAY: push_text_array(L, s, len); break;
    case OID_JSON: case OID_JSONB:
        if (mm_json_decode(L, s, (size_t)len)) break;
        lua_pop(L, 1); /* cannot happen with server JSON; keep the text */
        lua_pushlstring(L, s, len); break;
    default: lua_pushlstring(L, s, len); /* numeric, text, uuid, date, ... */
    }
}

/* Pushes an array of rows; each row maps column names to converted values,
 * with SQL NULL as motomind.null so that every column is present. The
 * column names and the null are pushed once and copied into each row
 * (lua_setfield would intern the name again for every cell). */
void mm_push_rows(lua_State *L, const PGresult *res) {
    int nrows = PQntuples(res), ncols = PQnfields(res), r, c, rows, null;
    luaL_checkstack(L, ncols + 4, "too many columns");
    lua_createtable(L, nrows, 0);
    rows = lua_gettop(L);
    mm_push_null(L);
    null = rows + 1;
    for (c = 0; c < ncols; c++) lua_pushstring(L, PQfname(res, c));
    for (r = 0; r < nrows; r++) {
        lua_createtable(L, 0, ncols);
        for (c = 0; c < ncols; c++) {
            lua_pushvalue(L, null + 1 + c);
            if (PQgetisnull(res, r, c)) lua_pushvalue(L, null);
            else push_value(L, res, r, c, PQftype(res, c));
            lua_rawset(L, -3);
        }
        lua_rawseti(L, rows, r + 1);
    }
    lua_settop(L, rows);
}

static void set_field(lua_State *L, const PGresult *res, int code, const char *name) {
    const char *v = res ? PQresultErrorField(res, code) : NULL;
    if (v) {
        lua_pushstring(L, v);
        lua_setfield(L, -2, name);
    }
}

/* Pushes nil, message, sqlstate, detail for a failed command; returns 4.
 * Without a result (connection lost) the message is libpq's and the
 * sqlstate is 08006 (connection_failure) when the connection is gone. */
int mm_conn_error(lua_State *L, PGconn *pg, const PGresult *res) {
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    size_t len;
    lua_pushnil(L);
    if (!msg) msg = res ? PQresultErrorMessage(res) : "";
    if (!*msg) msg = pg ? PQerrorMessage(pg) : "connection is closed";
    len = strlen(msg);
    while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == ' ')) len--;
    lua_pushlstring(L, msg, len);
    if (state) lua_pushstring(L, state);
    else if (!pg || PQstatus(pg) == CONNECTION_BAD) lua_pushliteral(L, "08006");
    else lua_pushnil(L);
    lua_createtable(L, 0, 6);
    set_field(L, res, PG_DIAG_SEVERITY_NONLOCALIZED, "severity");
    set_field(L, res, PG_DIAG_MESSAGE_DETAIL, "detail");
    set_field(L, res, PG_DIAG_MESSAGE_HINT, "hint");
    set_field(L, res, PG_DIAG_SCHEMA_NAME, "schema");
    set_field(L, res, PG_DIAG_TABLE_NAME, "table");
    set_field(L, res, PG_DIAG_COLUMN_NAME, "column");
    set_field(L, res, PG_DIAG_CONSTRAINT_NAME, "constraint");
    set_field(L, res, PG_DIAG_DATATYPE_NAME, "datatype");
    set_field(L, res, PG_DIAG_STATEMENT_POSITION, "position");
    return 4;
}
