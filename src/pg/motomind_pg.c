/* motomind_pg: the payload rules inside PostgreSQL, by the same C that
 * checks them in the client (src/payload.c over the schema document
 * sql/payloads.json). Optional: a migration declares
 *   payload_problem_native(doc text, type text, payload jsonb) -> text
 * when this library loads, and check_new_events then uses it in place of
 * the generated SQL rules (same verdicts and messages; spec/payload_spec.lua
 * holds the two to it). A stored payload is read from its jsonb tree into
 * a cJSON tree (no text round trip) and checked: ~0.7 us a row where the
 * SQL expression takes ~5 us (docs/design.md).
 *
 * Memory: cJSON allocates through hooks into the current memory context,
 * never failing by longjmp (MCXT_ALLOC_NO_OOM): a row's tree lives in a
 * context reset before the next row, so nothing leaks and no PostgreSQL
 * error unwinds through cJSON frames. The compiled schemas (calloc'd by
 * src/payload.c) live as long as the call site's context, whose reset
 * callback frees them. */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "mb/pg_wchar.h"

#include <stdlib.h>

#include "../payload.h"

PG_MODULE_MAGIC;

PG_FUNCTION_INFO_V1(motomind_payload_problem);

/* What one call site keeps: the schema document it compiled, the compiled
 * schemas, and the context of the row being checked. */
typedef struct site {
    char *doc;
    int doclen;
    int stable; /* the document is a constant of the call: never compared again */
    mm_schemas *schemas;
    MemoryContext rows;
} site;

static void *hook_alloc(size_t size) {
    return MemoryContextAllocExtended(CurrentMemoryContext, size, MCXT_ALLOC_NO_OOM);
}

static void hook_free(void *p) {
    if (p) pfree(p);
}

void _PG_init(void);
void _PG_init(void) {
    cJSON_Hooks hooks = {hook_alloc, hook_free};
    cJSON_InitHooks(&hooks);
}

static void site_free(void *arg) {
    site *s = (site *)arg;
    mm_schemas_free(s->schemas);
    s->schemas = NULL;
}

/* The call site's compiled schemas for its document, compiled on first use.
 * The trigger passes a constant (payload_document(), inlined), so the site
 * keeps it; a document computed per row is compared on every call and
 * compiled again when it differs. */
static site *site_for(FunctionCallInfo fcinfo) {
    site *s = (site *)fcinfo->flinfo->fn_extra;
    text *doc;
    const char *data;
    int len;
    char err[256];
    MemoryContext old;
    if (s && s->schemas && s->stable) return s;
    doc = PG_GETARG_TEXT_PP(0);
    data = VARDATA_ANY(doc);
    len = VARSIZE_ANY_EXHDR(doc);
    if (s && s->schemas && s->doclen == len && memcmp(s->doc, data, len) == 0) return s;
    old = MemoryContextSwitchTo(fcinfo->flinfo->fn_mcxt);
    if (!s) {
        MemoryContextCallback *cb = palloc(sizeof *cb);
        s = palloc0(sizeof *s);
        s->rows = AllocSetContextCreate(fcinfo->flinfo->fn_mcxt, "motomind payload row", ALLOCSET_SMALL_SIZES);
        cb->func = site_free;
        cb->arg = s;
        MemoryContextRegisterResetCallback(fcinfo->flinfo->fn_mcxt, cb);
        fcinfo->flinfo->fn_extra = s;
    }
    site_free(s);
    if (s->doc) pfree(s->doc);
    s->doc = pnstrdup(data, len);
    s->doclen = len;
    s->stable = get_fn_expr_arg_stable(fcinfo->flinfo, 0);
    s->schemas = mm_schemas_parse(s->doc, (size_t)len, err, sizeof err);
    MemoryContextSwitchTo(old);
    if (!s->schemas)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE), errmsg("%s", err)));
    return s;
}

/* A numeric's decimal text (numeric_out: digits, one point, no exponent)
 * as the double strtod reads. With at most 15 significant digits and 22
 * decimals both the digits as an integer and the power of ten are exact
 * doubles, so one division rounds once, correctly, to the same double
 * (Clinger's fast path); anything longer goes to strtod. */
static double decimal_to_double(const char *s) {
    static const double POW10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    const char *p = s + (*s == '-');
    double m = 0;
    int digits = 0, scale = 0, point = 0;
    for (; *p; p++) {
        if (*p == '.' && !point) { point = 1; continue; }
        if (*p < '0' || *p > '9') return strtod(s, NULL);
        digits += digits > 0 || *p != '0';
        scale += point;
        if (digits > 15 || scale > 22) return strtod(s, NULL);
        m = m * 10 + (*p - '0');
    }
    m /= POW10[scale];
    return *s == '-' ? -m : m;
}

/* A string of the row, NUL-terminated, at *next in the row's buffer of
 * strings, as large as the jsonb (each of its strings has a 4-byte entry
 * besides its bytes: room for the NUL); a pnstrdup each before: 0.75 ->
 * 0.71 s a million payloads. */
static char *copy_string(char **next, const char *s, int len) {
    char *out = *next;
    memcpy(out, s, (size_t)len);
    out[len] = '\0';
    *next += len + 1;
    return out;
}

/* A scalar of the jsonb tree as cJSON: a number through its decimal text,
 * read as cJSON reads a number (strtod), so the client and this agree. */
static cJSON *scalar(const JsonbValue *v, char **strings) {
    switch (v->type) {
    case jbvNull: return cJSON_CreateNull();
    case jbvBool: return cJSON_CreateBool(v->val.boolean);
    case jbvString: return cJSON_CreateStringReference(copy_string(strings, v->val.string.val, v->val.string.len));
    case jbvNumeric: {
        char *digits = DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
        return cJSON_CreateNumber(decimal_to_double(digits));
    }
    default: return NULL;
    }
}

/* The jsonb container as a cJSON tree in the current context; NULL when
 * out of memory. */
static cJSON *to_cjson(Jsonb *jb) {
    JsonbContainer *root = &jb->root;
    char *strings = palloc(VARSIZE(jb));
    JsonbIterator *it;
    JsonbValue v;
    JsonbIteratorToken tok;
    cJSON **stack, *result = NULL;
    int depth = 0, cap = 16;
    const char *key = NULL;
    if (JsonbExtractScalar(root, &v)) return scalar(&v, &strings); /* a bare scalar */
    it = JsonbIteratorInit(root);
    stack = palloc(cap * sizeof *stack);
    while ((tok = JsonbIteratorNext(&it, &v, false)) != WJB_DONE) {
        cJSON *node;
        if (tok == WJB_KEY) {
            key = copy_string(&strings, v.val.string.val, v.val.string.len);
            continue;
        }
        if (tok == WJB_END_OBJECT || tok == WJB_END_ARRAY) {
            depth--;
            continue;
        }
        node = tok == WJB_BEGIN_OBJECT ? cJSON_CreateObject()
             : tok == WJB_BEGIN_ARRAY  ? cJSON_CreateArray() : scalar(&v, &strings);
        if (!node) return NULL;
        if (depth == 0) result = node;
        else if (cJSON_IsObject(stack[depth - 1])) cJSON_AddItemToObjectCS(stack[depth - 1], key, node);
        else cJSON_AddItemToArray(stack[depth - 1], node);
        if (tok == WJB_BEGIN_OBJECT || tok == WJB_BEGIN_ARRAY) {
            if (depth == cap) stack = repalloc(stack, (size_t)(cap *= 2) * sizeof *stack);
            stack[depth++] = node;
        }
    }
    return result;
}

/* payload_problem_native(doc, type, payload) -> NULL when the payload is
 * valid for the type under the schema document, else the message. */
Datum motomind_payload_problem(PG_FUNCTION_ARGS) {
    site *s = site_for(fcinfo);
    char err[1024];
    int ok;
    cJSON *tree;
    char *type;
    MemoryContext old;
    MemoryContextReset(s->rows);
    old = MemoryContextSwitchTo(s->rows);
    type = text_to_cstring(PG_GETARG_TEXT_PP(1));
    tree = to_cjson(PG_GETARG_JSONB_P(2));
    /* (a UTF-8 database's jsonb holds valid UTF-8 only: not checked again) */
    ok = !tree ? -1 : GetDatabaseEncoding() == PG_UTF8 ? mm_payload_check_valid_text(s->schemas, type, tree, err, sizeof err)
                                                         : mm_payload_check(s->schemas, type, tree, err, sizeof err);
    MemoryContextSwitchTo(old);
    if (ok < 0) ereport(ERROR, (errcode(ERRCODE_OUT_OF_MEMORY), errmsg("out of memory")));
    if (ok) PG_RETURN_NULL();
    PG_RETURN_TEXT_P(cstring_to_text(err));
}
