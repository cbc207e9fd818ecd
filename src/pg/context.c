/* motomind_pg: the tenant context's lookups, once per statement.
 *
 * Row-level security evaluates current_tenant_id() and
 * deleted_vehicle_ids() once per policy in a statement (an InitPlan each:
 * ten in a timeline page read by the application role), and each ran a
 * SECURITY DEFINER PL/pgSQL lookup: the membership check
 * (current_tenant_role(), ~9 us a call) or the tenant's deleted vehicles
 * (~20 us). Migration 0042 declares
 *   cached_text(fn regprocedure) -> text, cached_uuids(fn regprocedure) -> uuid[]
 * over this function when the library loads, and those two go through
 * them: the lookup runs once, and its answer is reused while nothing that
 * could change it has changed.
 *
 * An answer is kept with everything it depends on: the function (SECURITY
 * DEFINER: whoever calls it, it answers the same), the claimed tenant and
 * user (the settings it reads), the transaction and subtransaction (ids
 * never reused within it) and what the statement's snapshot sees: its
 * command id and the transactions it counts as running (xmin, xmax and the
 * in-progress lists), which with the (sub)transaction is all an MVCC
 * snapshot's visibility depends on. A commit anywhere (a membership
 * revoked, say) changes what a new snapshot holds, a write of the
 * transaction itself its command id, and a rollback to a savepoint the
 * subtransaction (the snapshot may not change: a spec rolls back a revoke
 * after a later transaction completed): a statement sees what its own
 * snapshot sees, as when the lookups ran for every policy. */
#include "postgres.h"

#include "access/xact.h"
#include "fmgr.h"
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

#define SETTING_MAX 64 /* a uuid's text is 36; longer claims are not kept */
#define RUNNING_MAX 64 /* in-progress transactions a kept snapshot may list */
#define SLOTS 4        /* functions kept at once (two are used) */

/* What a statement's context is, for comparison (memcmp: zeroed before
 * filled): the snapshot's visibility and the claimed tenant and user. */
typedef struct context {
    LocalTransactionId lxid;
    SubTransactionId subxid;
    CommandId curcid;
    TransactionId xmin, xmax;
    uint32 xcnt;
    int32 subxcnt;
    bool suboverflowed;
    TransactionId running[RUNNING_MAX];
    char tenant[SETTING_MAX], user[SETTING_MAX];
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

/* The setting's value into buf (empty when unset); false when too long. */
static bool setting(const char *name, char *buf) {
    const char *v = GetConfigOption(name, true, false);
    size_t n = v ? strlen(v) : 0;
    if (n >= SETTING_MAX) return false;
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
    out->lxid = MyProc->lxid;
    out->subxid = GetCurrentSubTransactionId();
    out->curcid = s->curcid;
    out->xmin = s->xmin;
    out->xmax = s->xmax;
    out->xcnt = s->xcnt;
    out->subxcnt = s->subxcnt;
    out->suboverflowed = s->suboverflowed;
    if (s->xcnt) memcpy(out->running, s->xip, s->xcnt * sizeof(TransactionId));
    if (s->subxcnt) memcpy(out->running + s->xcnt, s->subxip, (size_t)s->subxcnt * sizeof(TransactionId));
    return setting("motomind.tenant_id", out->tenant) && setting("motomind.user_id", out->user);
}

static void slot_clear(slot *s) {
    if (s->valid && !s->isnull && !s->byval) pfree(DatumGetPointer(s->value));
    s->valid = false;
}

/* cached_text(fn) / cached_uuids(fn) -> fn() (which takes no arguments and
 * returns the caller's declared type), run at most once for the same
 * statement context. The caller must be allowed to execute fn: this runs
 * nothing the caller could not. */
Datum motomind_cached(PG_FUNCTION_ARGS) {
    Oid fn = PG_GETARG_OID(0), type = get_func_rettype(fcinfo->flinfo->fn_oid); /* this declaration's */
    context ctx;
    bool keep = current_context(&ctx), byval;
    int16 len;
    slot *s = NULL;
    Datum value;
    LOCAL_FCINFO(call, 0);
    FmgrInfo flinfo;
    int i;

    if (pg_proc_aclcheck(fn, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
        aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_FUNCTION, get_func_name(fn));
    get_typlenbyval(type, &len, &byval);
    for (i = 0; i < SLOTS; i++)
        if (slots[i].valid && slots[i].fn == fn) s = &slots[i];
    if (keep && s && memcmp(&s->ctx, &ctx, sizeof ctx) == 0) {
        if (s->isnull) PG_RETURN_NULL();
        PG_RETURN_DATUM(datumCopy(s->value, byval, len));
    }
    if (get_func_nargs(fn) != 0 || get_func_rettype(fn) != type)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("%s: the function must take no arguments and return %s",
                               get_func_name(fcinfo->flinfo->fn_oid), format_type_be(type))));
    if (keep && !s) {
        for (i = 0; i < SLOTS && slots[i].valid; i++) continue;
        s = &slots[i < SLOTS ? i : (next_victim++ % SLOTS)];
    }
    if (s) slot_clear(s); /* (fn may raise: nothing half-kept) */
    fmgr_info(fn, &flinfo);
    InitFunctionCallInfoData(*call, &flinfo, 0, InvalidOid, NULL, NULL);
    value = FunctionCallInvoke(call);
    if (keep) {
        s->fn = fn;
        s->isnull = call->isnull;
        s->byval = byval;
        if (!call->isnull) {
            MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);
            s->value = datumCopy(len == -1 ? PointerGetDatum(PG_DETOAST_DATUM(value)) : value, byval, len);
            MemoryContextSwitchTo(old);
        }
        s->ctx = ctx;
        s->valid = true;
    }
    if (call->isnull) PG_RETURN_NULL();
    PG_RETURN_DATUM(value);
}
