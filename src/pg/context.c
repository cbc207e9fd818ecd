/* motomind_pg: the tenant context's lookups, once per statement.
 *
 * Row-level security evaluates current_tenant_id() and
 * deleted_vehicle_ids() once per policy in a statement (an InitPlan each:
 * ten in a timeline page read by the application role), and each ran a
 * SECURITY DEFINER PL/pgSQL lookup: the membership check
 * (current_tenant_role(), ~9 us a call) or the tenant's deleted vehicles
 * (~20 us). When this library loads, migration 0042 moves each of the two
 * to <name>_lookup() and declares <name>() in C over motomind_cached: the
 * lookup runs once, and its answer is reused while nothing that could
 * change it has changed. (The functions keep their OIDs, which the policies
 * hold; a SQL wrapper passing the lookup as a regprocedure literal was
 * tried first and cost more than it saved in statements planned each time:
 * the literal is parsed and the function inlined at every planning.)
 *
 * An answer is kept with everything it depends on: the lookup (SECURITY
 * DEFINER: whoever calls it, it answers the same), the claimed tenant and
 * user (the settings the claim readers read, a JWT's claims included), the transaction and subtransaction (ids
 * never reused within it) and what the statement's snapshot sees: its
 * command id and the transactions it counts as running (xmin, xmax and the
 * in-progress lists), which with the (sub)transaction is all an MVCC
 * snapshot's visibility depends on. A transaction that has written nothing
 * (no transaction id, command id 0) sees only what its snapshot says, so
 * its answers are kept without the transaction: the next transaction's
 * page, with the same snapshot (nothing committed in between), reuses
 * them; one that wrote keys them to itself. A commit anywhere (a membership
 * revoked, say) changes what a new snapshot holds, a write of the
 * transaction itself its command id, and a rollback to a savepoint the
 * subtransaction (the snapshot may not change: a spec rolls back a revoke
 * after a later transaction completed): a statement sees what its own
 * snapshot sees, as when the lookups ran for every policy. */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
#include "nodes/value.h"
#include "parser/parse_func.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include <string.h>

PG_FUNCTION_INFO_V1(motomind_cached);

#define SETTING_MAX 64  /* a uuid's text is 36; longer claims are not kept */
#define CLAIMS_MAX 2048 /* a JWT's claims (the Supabase set); longer are not kept */
#define RUNNING_MAX 64 /* in-progress transactions a kept snapshot may list */
#define SLOTS 4        /* functions kept at once (two are used) */

/* What a statement's context is, for comparison (memcmp: zeroed before
 * filled): the (sub)transaction, the snapshot's visibility and the claims. */
typedef struct context {
    LocalTransactionId lxid;
    SubTransactionId subxid;
    CommandId curcid;
    TransactionId xmin, xmax;
    uint32 xcnt;
    int32 subxcnt;
    bool suboverflowed;
    TransactionId running[RUNNING_MAX];
    char tenant[SETTING_MAX], user[SETTING_MAX], claims[CLAIMS_MAX];
} context;

/* One function's last answer (value in TopMemoryContext unless by value). */
typedef struct slot {
    Oid fn;
    bool valid, isnull, byval;
    Datum value;
    context ctx;
} slot;

static slot slots[SLOTS];
static int next_victim;

/* The setting's value into buf of size max (empty when unset); false when
 * too long. */
static bool setting(const char *name, char *buf, size_t max) {
    const char *v = GetConfigOption(name, true, false);
    size_t n = v ? strlen(v) : 0;
    if (n >= max) return false;
    memcpy(buf, v ? v : "", n + 1);
    return true;
}

/* The current context into out; false when it cannot be kept: no active
 * snapshot, not an MVCC one, too many running transactions listed, or a
 * setting too long. */
static bool current_context(context *out) {
    Snapshot s;
    memset(out, 0, sizeof *out);
    if (!ActiveSnapshotSet()) return false;
    s = GetActiveSnapshot();
    if (s->snapshot_type != SNAPSHOT_MVCC || s->subxcnt < 0 || s->xcnt + (uint32)s->subxcnt > RUNNING_MAX)
        return false;
    /* (a transaction that wrote nothing yet sees what its snapshot says:
     * the same snapshot in a later transaction sees the same) */
    out->lxid = TransactionIdIsValid(GetTopTransactionIdIfAny()) || s->curcid != FirstCommandId ? MyProc->lxid : 0;
    out->subxid = GetCurrentSubTransactionId();
    out->curcid = s->curcid;
    out->xmin = s->xmin;
    out->xmax = s->xmax;
    out->xcnt = s->xcnt;
    out->subxcnt = s->subxcnt;
    out->suboverflowed = s->suboverflowed;
    if (s->xcnt) memcpy(out->running, s->xip, s->xcnt * sizeof(TransactionId));
    if (s->subxcnt) memcpy(out->running + s->xcnt, s->subxip, (size_t)s->subxcnt * sizeof(TransactionId));
    /* every setting a claim reader reads: claimed_tenant_id() and
     * current_user_id(), and their Supabase versions (sql/supabase) */
    return setting("motomind.tenant_id", out->tenant, SETTING_MAX) &&
           setting("motomind.user_id", out->user, SETTING_MAX) &&
           setting("request.jwt.claims", out->claims, CLAIMS_MAX);
}

static void slot_clear(slot *s) {
    if (s->valid && !s->isnull && !s->byval) pfree(DatumGetPointer(s->value));
    s->valid = false;
}

/* A call site's lookup: <name>_lookup() of the called function's schema,
 * found once per call site (the executor's FmgrInfo), with its type. */
typedef struct site {
    FmgrInfo lookup;
    int16 len;
    bool byval;
} site;

static site *site_for(FunctionCallInfo fcinfo) {
    site *st = (site *)fcinfo->flinfo->fn_extra;
    Oid self = fcinfo->flinfo->fn_oid, fn, type;
    char *name, *schema, *lookup;
    if (st) return st;
    type = get_func_rettype(self);
    name = get_func_name(self);
    schema = get_namespace_name(get_func_namespace(self));
    lookup = psprintf("%s_lookup", name);
    fn = LookupFuncName(list_make2(makeString(schema), makeString(lookup)), 0, NULL, true);
    if (!OidIsValid(fn) || get_func_rettype(fn) != type)
        ereport(ERROR, (errcode(ERRCODE_UNDEFINED_FUNCTION),
                        errmsg("%s: no function %s.%s() returning %s to run", name, schema, lookup,
                               format_type_be(type))));
    st = MemoryContextAllocZero(fcinfo->flinfo->fn_mcxt, sizeof *st);
    fmgr_info_cxt(fn, &st->lookup, fcinfo->flinfo->fn_mcxt);
    get_typlenbyval(type, &st->len, &st->byval);
    fcinfo->flinfo->fn_extra = st;
    return st;
}

/* <name>() -> <name>_lookup() (no arguments, the same type), run at most
 * once for the same statement context. The caller must be allowed to
 * execute the lookup: this runs nothing the caller could not. */
Datum motomind_cached(PG_FUNCTION_ARGS) {
    site *st = site_for(fcinfo);
    Oid fn = st->lookup.fn_oid;
    context ctx;
    bool keep = current_context(&ctx);
    slot *s = NULL;
    Datum value;
    LOCAL_FCINFO(call, 0);
    int i;

    /* (each call: a PL/pgSQL expression keeps its call site across a
     * transaction, whose role may change) */
    if (pg_proc_aclcheck(fn, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
        aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_FUNCTION, get_func_name(fn));
    for (i = 0; i < SLOTS; i++)
        if (slots[i].valid && slots[i].fn == fn) s = &slots[i];
    if (keep && s && memcmp(&s->ctx, &ctx, sizeof ctx) == 0) {
        if (s->isnull) PG_RETURN_NULL();
        PG_RETURN_DATUM(datumCopy(s->value, st->byval, st->len));
    }
    if (keep && !s) {
        for (i = 0; i < SLOTS && slots[i].valid; i++) continue;
        s = &slots[i < SLOTS ? i : (next_victim++ % SLOTS)];
    }
    if (s) slot_clear(s); /* (the lookup may raise: nothing half-kept) */
    InitFunctionCallInfoData(*call, &st->lookup, 0, InvalidOid, NULL, NULL);
    value = FunctionCallInvoke(call);
    if (keep) {
        s->fn = fn;
        s->isnull = call->isnull;
        s->byval = st->byval;
        if (!call->isnull) {
            MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
            s->value = datumCopy(st->len == -1 ? PointerGetDatum(PG_DETOAST_DATUM(value)) : value, st->byval, st->len);
            MemoryContextSwitchTo(old);
        }
        s->ctx = ctx;
        s->valid = true;
    }
    if (call->isnull) PG_RETURN_NULL();
    PG_RETURN_DATUM(value);
}
