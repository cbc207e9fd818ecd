/* motomind_pg: the mileage walk's fast path for new vehicles.
 *
 * The insert trigger walks every touched vehicle's readings in time order
 * (a window over an index scan) to refuse a decrease and flag a jump over
 * one day's maximum: at a million new readings that walk was the rules'
 * largest cost. For a vehicle whose head the statement created (nothing of
 * it existed before) and none of whose events it corrects, its readings
 * are exactly the statement's: mileage_chain(occurred_at, mileage) over
 * them gives the largest step between neighbours in the walk's order (time,
 * then mileage), or NULL when mileage goes down anywhere along it. A
 * vehicle whose largest step is at most its daily maximum has nothing to
 * refuse or flag, and the trigger leaves it out of the walk; every other
 * vehicle is walked as before, so the walk stays the one definition of the
 * verdicts and flags, and this only proves that some vehicles need none.
 *
 * The readings are collected (time, mileage) and sorted in the final
 * function unless they arrived in order already (an import writes each
 * vehicle's readings in time order; a COPY of a table's rows need not). A
 * mileage is kept as its numeric, compared and subtracted exactly: a
 * numeric(10,1) takes at most 14 bytes, and a wider one (a later change of
 * the column) makes the answer NULL, never a wrong one. */
#include "postgres.h"

#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"

#include <string.h>

PG_FUNCTION_INFO_V1(motomind_chain_step);
PG_FUNCTION_INFO_V1(motomind_chain_final);

#define NUM_MAX 24 /* bytes of a kept numeric (numeric(10,1): at most 14) */

typedef struct reading {
    TimestampTz at;
    union { char bytes[NUM_MAX]; int32 align; } mileage;
} reading;

/* One vehicle's readings so far; failed: one could not be kept. */
typedef struct chain {
    reading *r;
    int n, cap;
    bool sorted, failed;
} chain;

static int cmp_numeric(const void *a, const void *b) {
    return DatumGetInt32(DirectFunctionCall2(numeric_cmp, PointerGetDatum(a), PointerGetDatum(b)));
}

/* The walk's order: time, then mileage. */
static int cmp_reading(const void *a, const void *b) {
    const reading *x = a, *y = b;
    if (x->at != y->at) return x->at < y->at ? -1 : 1;
    return cmp_numeric(x->mileage.bytes, y->mileage.bytes);
}

/* mileage_chain's step: (state, occurred_at, mileage) -> state. */
Datum motomind_chain_step(PG_FUNCTION_ARGS) {
    MemoryContext agg;
    chain *c;
    reading *r;
    Numeric m;
    if (!AggCheckCallContext(fcinfo, &agg)) elog(ERROR, "mileage_chain called outside an aggregate");
    if (PG_ARGISNULL(0)) {
        c = MemoryContextAllocZero(agg, sizeof *c);
        c->sorted = true;
    } else {
        c = (chain *)PG_GETARG_POINTER(0);
    }
    if (c->failed || PG_ARGISNULL(1) || PG_ARGISNULL(2)) PG_RETURN_POINTER(c);
    m = PG_GETARG_NUMERIC(2);
    if (VARSIZE(m) > NUM_MAX || numeric_is_nan(m) || numeric_is_inf(m)) {
        c->failed = true; /* (the CHECKs refuse NaN and infinities) */
        PG_RETURN_POINTER(c);
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->r = c->r ? repalloc_huge(c->r, (Size)c->cap * sizeof *c->r)
                    : MemoryContextAllocHuge(agg, (Size)c->cap * sizeof *c->r);
    }
    r = &c->r[c->n];
    r->at = PG_GETARG_TIMESTAMPTZ(1);
    memcpy(r->mileage.bytes, m, VARSIZE(m));
    if (c->n > 0 && c->sorted && cmp_reading(&c->r[c->n - 1], r) > 0) c->sorted = false;
    c->n++;
    PG_RETURN_POINTER(c);
}

/* mileage_chain's result: the largest step between neighbouring readings
 * in the walk's order (0 for one reading), NULL when mileage goes down
 * somewhere along it (or a reading could not be kept). */
Datum motomind_chain_final(PG_FUNCTION_ARGS) {
    chain *c = PG_ARGISNULL(0) ? NULL : (chain *)PG_GETARG_POINTER(0);
    Numeric zero, most;
    int i;
    if (!c || c->failed || c->n == 0) PG_RETURN_NULL();
    if (!c->sorted) qsort(c->r, (size_t)c->n, sizeof *c->r, cmp_reading); /* (FINALFUNC_MODIFY = READ_WRITE) */
    most = zero = int64_to_numeric(0);
    for (i = 1; i < c->n; i++) {
        Numeric step = numeric_sub_opt_error((Numeric)c->r[i].mileage.bytes, (Numeric)c->r[i - 1].mileage.bytes, NULL);
        if (cmp_numeric(step, zero) < 0) PG_RETURN_NULL();
        if (cmp_numeric(step, most) > 0) most = step;
    }
    PG_RETURN_NUMERIC(most);
}
