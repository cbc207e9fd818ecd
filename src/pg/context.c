/* motomind_pg: the tenant context's membership check, once per statement.
 *
 * Row-level security evaluates current_tenant_id() once per policy in a
 * statement (an InitPlan each: ten in a timeline page read by the
 * application role), and each ran the membership lookup, the SECURITY
 * DEFINER PL/pgSQL current_tenant_role(): ~9 us each, a third of what the
 * policies add to a page (docs/design.md). Migration 0042 declares
 *   tenant_role_cached(verifier regprocedure) -> text
 * over this function when the library loads, and current_tenant_id() calls
 * it with its schema's current_tenant_role(): the verifier runs once, and
 * its answer is reused while nothing that could change it has changed.
 *
 * The answer is kept with everything it depends on: the verifier (a
 * SECURITY DEFINER function: whoever calls it, it answers the same), the
 * claimed tenant and user (the settings), the
 * transaction (its local id) and what the statement's snapshot sees: its
 * command id and the transactions it counts as running (xmin, xmax and the
 * in-progress lists), which is all an MVCC snapshot's visibility depends
 * on. A commit anywhere (a membership revoked, say) changes what a new
 * snapshot holds, and so does a write of the transaction itself (its
 * command id): a statement sees the membership its own snapshot sees, as
 * when the verifier ran for every policy. */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

#include <string.h>

PG_FUNCTION_INFO_V1(motomind_tenant_role_cached);

#define SETTING_MAX 64 /* a uuid's text is 36; longer claims are not kept */
#define RUNNING_MAX 64 /* in-progress transactions a kept snapshot may list */

/* What a snapshot sees, for comparison (memcmp: zeroed before filled). */
typedef struct seen {
    LocalTransactionId lxid;
    CommandId curcid;
    TransactionId xmin, xmax;
    uint32 xcnt;
    int32 subxcnt;
    bool suboverflowed;
    TransactionId running[RUNNING_MAX];
} seen;

static struct {
    bool valid, isnull;
    Oid verifier;
    seen snap;
    char tenant[SETTING_MAX], user[SETTING_MAX], role[NAMEDATALEN];
} kept;

/* What the active snapshot sees into out; false when there is none, it is
 * not an MVCC snapshot, or it lists too many running transactions. */
static bool snapshot_seen(seen *out) {
    Snapshot s;
    memset(out, 0, sizeof *out);
    if (!ActiveSnapshotSet()) return false;
    s = GetActiveSnapshot();
    if (s->snapshot_type != SNAPSHOT_MVCC || s->subxcnt < 0 || s->xcnt + (uint32)s->subxcnt > RUNNING_MAX)
        return false;
    out->lxid = MyProc->lxid;
    out->curcid = s->curcid;
    out->xmin = s->xmin;
    out->xmax = s->xmax;
    out->xcnt = s->xcnt;
    out->subxcnt = s->subxcnt;
    out->suboverflowed = s->suboverflowed;
    if (s->xcnt) memcpy(out->running, s->xip, s->xcnt * sizeof(TransactionId));
    if (s->subxcnt) memcpy(out->running + s->xcnt, s->subxip, (size_t)s->subxcnt * sizeof(TransactionId));
    return true;
}

/* The setting's value into buf (empty when unset); false when too long. */
static bool setting(const char *name, char *buf) {
    const char *v = GetConfigOption(name, true, false);
    size_t n = v ? strlen(v) : 0;
    if (n >= SETTING_MAX) return false;
    memcpy(buf, v ? v : "", n + 1);
    return true;
}

/* tenant_role_cached(verifier) -> the verifier's answer (its role text or
 * NULL), run at most once for the same statement snapshot and context.
 * The caller must be allowed to execute the verifier, which takes no
 * arguments and returns text: this runs nothing the caller could not. */
Datum motomind_tenant_role_cached(PG_FUNCTION_ARGS) {
    Oid verifier = PG_GETARG_OID(0);
    seen snap;
    char tenant[SETTING_MAX], user[SETTING_MAX];
    bool keep = snapshot_seen(&snap) && setting("motomind.tenant_id", tenant) && setting("motomind.user_id", user);
    Datum role;
    LOCAL_FCINFO(call, 0);
    FmgrInfo flinfo;

    if (pg_proc_aclcheck(verifier, GetUserId(), ACL_EXECUTE) != ACLCHECK_OK)
        aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_FUNCTION, get_func_name(verifier));
    if (keep && kept.valid && kept.verifier == verifier && memcmp(&kept.snap, &snap, sizeof snap) == 0 &&
        strcmp(kept.tenant, tenant) == 0 && strcmp(kept.user, user) == 0) {
        if (kept.isnull) PG_RETURN_NULL();
        PG_RETURN_TEXT_P(cstring_to_text(kept.role));
    }
    if (get_func_nargs(verifier) != 0 || get_func_rettype(verifier) != TEXTOID)
        ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
                        errmsg("tenant_role_cached: the verifier must take no arguments and return text")));

    kept.valid = false; /* (the verifier may raise: nothing half-kept) */
    fmgr_info(verifier, &flinfo);
    InitFunctionCallInfoData(*call, &flinfo, 0, InvalidOid, NULL, NULL);
    role = FunctionCallInvoke(call);
    if (keep) {
        char *got = call->isnull ? NULL : text_to_cstring(DatumGetTextPP(role));
        if (!got || strlen(got) < NAMEDATALEN) {
            kept.isnull = got == NULL;
            if (got) strcpy(kept.role, got);
            kept.verifier = verifier;
            kept.snap = snap;
            strcpy(kept.tenant, tenant);
            strcpy(kept.user, user);
            kept.valid = true;
        }
    }
    if (call->isnull) PG_RETURN_NULL();
    PG_RETURN_DATUM(role);
}
