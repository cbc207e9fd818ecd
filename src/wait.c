/* Waiting for the server: a short spin before libpq blocks.
 *
 * On a virtual machine a blocked client's idle vCPU halts, and waking it
 * when the answer arrives can cost more than a short query: on the
 * machines this was measured on, a SELECT 1 round trip took 0.31-0.38 ms
 * when libpq blocked in poll() and 0.04 ms when the client kept reading its
 * socket (docs/design.md). So after sending, the client reads without
 * blocking for up to the connection's spin budget (db:set_spin), then lets
 * libpq block as usual: a short statement's answer is caught while the
 * vCPU is still awake, a long one costs the budget's CPU time once. */
#include "motomind.h"
#include <time.h>
#include <unistd.h>

static long elapsed_us(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long)(t.tv_sec - t0->tv_sec) * 1000000L + (t.tv_nsec - t0->tv_nsec) / 1000;
}

/* Reads what has arrived, without blocking, until libpq has a whole result
 * (or the connection failed: PQgetResult reports that) or the budget is
 * spent. (Yielding the CPU between reads, sched_yield, was measured: the
 * round trip took 1.2-1.4 ms. Not done.) */
void mm_spin(mm_conn *c) {
    struct timespec t0;
    if (c->spin_us <= 0 || !PQisBusy(c->pg)) return;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        if (!PQconsumeInput(c->pg) || !PQisBusy(c->pg)) return;
    } while (elapsed_us(&t0) < c->spin_us);
}

/* The spin budget of a new connection, in microseconds: none on a single
 * CPU, where the spinning client would keep a local server off it. */
long mm_default_spin(void) {
    return sysconf(_SC_NPROCESSORS_ONLN) > 1 ? MM_SPIN_US : 0;
}

/* What PQexec does after sending (libpq's PQexecFinish), spinning before
 * each result: the last result, stopping at a COPY's. */
PGresult *mm_finish(mm_conn *c) {
    PGresult *res, *last = NULL;
    for (;;) {
        mm_spin(c);
        if (!(res = PQgetResult(c->pg))) break;
        PQclear(last);
        last = res;
        if (PQresultStatus(res) == PGRES_COPY_IN || PQresultStatus(res) == PGRES_COPY_OUT ||
            PQresultStatus(res) == PGRES_COPY_BOTH || PQstatus(c->pg) == CONNECTION_BAD)
            break;
    }
    return last;
}
