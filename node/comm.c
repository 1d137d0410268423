/* comm.c — see comm.h. The only file of diffu that includes mpi.h. */
#include "comm.h"

#include "signals.h"

#include <errno.h>
#include <limits.h>
#include <mpi.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { TAG_ACT_HDR = 1, TAG_ACT = 2, TAG_FLOATS = 1000 };
#define ACT_MAGIC 0x64696666755f6163ll /* "diffu_ac" */

struct diffu_comm {
    MPI_Comm world;    /* private duplicate of MPI_COMM_WORLD */
    MPI_Comm stage;    /* this rank's stage (its T ranks), MPI_COMM_NULL before set_layout */
    MPI_Errhandler eh;
    int rank, size;
    char host[256];
    double timeout;
    char **hosts;      /* [size] or NULL */
    const diffu_layout *layout;
    const diffu_rank_plan *plan;
    char tp_what[128]; /* "the tp all-reduce of stage s (ranks a-b)", for timeout messages */
    char vocab_what[160];
    diffu_comm_stats st;
};

struct diffu_xfer {
    enum { XF_NONE, XF_SEND_ACT, XF_RECV_ACT, XF_SEND_F, XF_RECV_F, XF_SEND_B } kind;
    MPI_Request req[2];
    int nreq;
    int peer;
    int hidden;
    int tag;
    int64_t hdr[4]; /* magic, id, tokens, hidden */
};

static diffu_comm *g_comm;      /* for the abort hook and the error handler */
static pthread_t g_main_thread; /* the thread that may call MPI */

/* ------------------------------------------------------------ aborts */

static void abort_hook(void) {
    if (g_comm && pthread_equal(pthread_self(), g_main_thread)) MPI_Abort(g_comm->world, 5);
    abort(); /* another thread (FUNNELED: no MPI here): SIGABRT -> handler -> this rank dies -> mpirun ends the job */
}

void diffu_comm_abort(diffu_comm *c, int code, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    DLOG_ERR("fatal (host %s, pid %d): %s; ending the job", c->host, (int)getpid(), msg);
    fflush(stderr);
    MPI_Abort(c->world, code);
    _exit(code); /* not reached */
}

static void on_mpi_error(MPI_Comm *comm, int *code, ...) {
    (void)comm;
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(*code, s, &len);
    DLOG_ERR("fatal: MPI error: %s (host %s); ending the job", s, g_comm ? g_comm->host : "?");
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 4);
}

/* ------------------------------------------------------------ init / finalize */

int diffu_comm_init(diffu_comm **out, diffu_err *err) {
    *out = NULL;
    int provided = 0;
    MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (provided < MPI_THREAD_FUNNELED) {
        MPI_Finalize();
        return diffu_err_set(err, "the MPI library gives thread level %d, diffu needs MPI_THREAD_FUNNELED", provided);
    }
    diffu_comm *c = diffu_xcalloc(1, sizeof *c);
    MPI_Comm_dup(MPI_COMM_WORLD, &c->world);
    MPI_Comm_create_errhandler(on_mpi_error, &c->eh);
    MPI_Comm_set_errhandler(c->world, c->eh);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, c->eh);
    MPI_Comm_rank(c->world, &c->rank);
    MPI_Comm_size(c->world, &c->size);
    c->stage = MPI_COMM_NULL;
    if (gethostname(c->host, sizeof c->host - 1) != 0) snprintf(c->host, sizeof c->host, "?");
    c->timeout = 300.0;
    const char *e = getenv("DIFFU_COMM_TIMEOUT");
    if (e && *e) {
        char *end;
        double v = strtod(e, &end);
        if (*end || !(v > 0)) {
            diffu_err_set(err, "DIFFU_COMM_TIMEOUT='%s' is not a positive number of seconds", e);
            MPI_Finalize();
            free(c);
            return -1;
        }
        c->timeout = v;
    }
    g_comm = c;
    g_main_thread = pthread_self();
    diffu_log_set_rank(c->rank);
    diffu_set_abort_hook(abort_hook);
    diffu_signals_fatal(c->rank, c->host);
    *out = c;
    return 0;
}

static double poll_wait(diffu_comm *c, int n, MPI_Request *reqs, MPI_Status *st, const char *what, int peer);

void diffu_comm_finalize(diffu_comm *c) {
    if (!c) return;
    MPI_Request r;
    MPI_Ibarrier(c->world, &r);
    poll_wait(c, 1, &r, NULL, "the final barrier (another rank has not finished)", -1);
    diffu_set_abort_hook(NULL);
    g_comm = NULL;
    if (c->stage != MPI_COMM_NULL) MPI_Comm_free(&c->stage);
    MPI_Comm_free(&c->world);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    MPI_Errhandler_free(&c->eh);
    if (c->hosts)
        for (int i = 0; i < c->size; i++) free(c->hosts[i]);
    free(c->hosts);
    free(c);
    diffu_signals_restore();
    MPI_Finalize();
}

int diffu_comm_rank(const diffu_comm *c) { return c->rank; }
int diffu_comm_size(const diffu_comm *c) { return c->size; }
const char *diffu_comm_hostname(const diffu_comm *c) { return c->host; }
void diffu_comm_set_timeout(diffu_comm *c, double s) { c->timeout = s > 0 ? s : c->timeout; }

void diffu_comm_set_hosts(diffu_comm *c, const char *const *hosts) {
    if (!c->hosts) c->hosts = diffu_xcalloc((size_t)c->size, sizeof *c->hosts);
    for (int i = 0; i < c->size; i++) {
        free(c->hosts[i]);
        c->hosts[i] = diffu_xstrdup(hosts[i] ? hosts[i] : "?");
    }
}

const char *diffu_comm_host_of(const diffu_comm *c, int rank) {
    if (rank == c->rank) return c->host;
    if (!c->hosts || rank < 0 || rank >= c->size) return "?";
    return c->hosts[rank];
}

/* ------------------------------------------------------------ polling wait */

/* " rank P (stage s, tp t, host h)" */
static void describe_peer(const diffu_comm *c, int peer, char *buf, size_t n) {
    buf[0] = 0;
    if (peer < 0) return;
    if (c->layout) {
        const diffu_rank_plan *p = diffu_layout_rank(c->layout, peer);
        snprintf(buf, n, " rank %d (stage %d, tp %d, host %s)", peer, p->stage, p->tp_rank, diffu_comm_host_of(c, peer));
    } else {
        snprintf(buf, n, " rank %d (host %s)", peer, diffu_comm_host_of(c, peer));
    }
}

static void timed_out(diffu_comm *c, double waited, const char *what, int peer) {
    char pd[384];
    describe_peer(c, peer, pd, sizeof pd);
    diffu_comm_abort(c, 3, "waited %.1f s (the communication timeout, --comm-timeout / DIFFU_COMM_TIMEOUT) for %s%s",
                     waited, what, pd);
}

/* The pacing of every polling loop: tight for the first 100 us (a peer that is
 * about to arrive: the TP all-reduce, the sampler's small reductions), then
 * yielding the CPU between tests up to 2 ms (oversubscribed hosts: let the
 * peer run), then sleeping with a back-off from 20 us to 1 ms. */
static void pace(double waited, long *ns) {
    if (waited < 100e-6) return;
    if (waited < 2e-3) {
        sched_yield();
        return;
    }
    struct timespec ts = {0, *ns};
    nanosleep(&ts, NULL);
    if (*ns < 1000000) *ns *= 2;
}

/* Wait for n requests: MPI_Testall in a loop (paced as above) until done or
 * the timeout (then abort naming what and whom: `what` ends with "from" /
 * "to" when peer >= 0). Returns the seconds waited. */
static double poll_wait(diffu_comm *c, int n, MPI_Request *reqs, MPI_Status *st, const char *what, int peer) {
    double t0 = diffu_now();
    long ns = 20000;
    for (int it = 0;; it++) {
        int done = 0;
        MPI_Testall(n, reqs, &done, st ? st : MPI_STATUSES_IGNORE);
        if (done) return it ? diffu_now() - t0 : 0.0;
        double waited = diffu_now() - t0;
        if (waited > c->timeout) timed_out(c, waited, what, peer);
        pace(waited, &ns);
    }
}

/* ------------------------------------------------------------ world collectives */

void diffu_comm_bcast_bytes(diffu_comm *c, uint8_t **buf, size_t *len) {
    uint64_t n = c->rank == 0 ? (uint64_t)*len : 0;
    MPI_Request r;
    MPI_Ibcast(&n, 1, MPI_UINT64_T, 0, c->world, &r);
    poll_wait(c, 1, &r, NULL, c->rank == 0 ? "every rank to take a broadcast" : "a broadcast from", c->rank == 0 ? -1 : 0);
    DIFFU_ASSERTF(n <= INT_MAX, "control message of %llu bytes", (unsigned long long)n);
    if (c->rank != 0) {
        *buf = diffu_xmalloc(n ? n : 1);
        *len = n;
    }
    if (n == 0) return;
    MPI_Ibcast(*buf, (int)n, MPI_BYTE, 0, c->world, &r);
    poll_wait(c, 1, &r, NULL, c->rank == 0 ? "every rank to take a broadcast" : "a broadcast from", c->rank == 0 ? -1 : 0);
}

void diffu_comm_gather_bytes(diffu_comm *c, const uint8_t *buf, size_t len, uint8_t ***all, size_t **lens) {
    uint64_t n = len, *ns = NULL;
    *all = NULL;
    *lens = NULL;
    if (c->rank == 0) ns = diffu_xcalloc((size_t)c->size, sizeof *ns);
    MPI_Request r;
    MPI_Igather(&n, 1, MPI_UINT64_T, ns, 1, MPI_UINT64_T, 0, c->world, &r);
    poll_wait(c, 1, &r, NULL, c->rank == 0 ? "every rank to join a gather (start-up or status)" : "a gather to", c->rank == 0 ? -1 : 0);
    int *counts = NULL, *displs = NULL;
    uint8_t *flat = NULL;
    if (c->rank == 0) {
        counts = diffu_xmalloc((size_t)c->size * sizeof *counts);
        displs = diffu_xmalloc((size_t)c->size * sizeof *displs);
        long long tot = 0;
        for (int i = 0; i < c->size; i++) {
            DIFFU_ASSERT(ns[i] <= INT_MAX && tot + (long long)ns[i] <= INT_MAX);
            counts[i] = (int)ns[i];
            displs[i] = (int)tot;
            tot += (long long)ns[i];
        }
        flat = diffu_xmalloc((size_t)tot + 1);
    }
    DIFFU_ASSERT(len <= INT_MAX);
    MPI_Igatherv(buf, (int)len, MPI_BYTE, flat, counts, displs, MPI_BYTE, 0, c->world, &r);
    poll_wait(c, 1, &r, NULL, c->rank == 0 ? "every rank to join a gather (start-up or status)" : "a gather to", c->rank == 0 ? -1 : 0);
    if (c->rank == 0) {
        *all = diffu_xmalloc((size_t)c->size * sizeof **all);
        *lens = diffu_xmalloc((size_t)c->size * sizeof **lens);
        for (int i = 0; i < c->size; i++) {
            (*all)[i] = diffu_xmalloc((size_t)counts[i] + 1);
            memcpy((*all)[i], flat + displs[i], (size_t)counts[i]);
            (*lens)[i] = (size_t)counts[i];
        }
    }
    free(ns);
    free(counts);
    free(displs);
    free(flat);
}

int diffu_comm_agree(diffu_comm *c, int local_rc, const char *local_msg, diffu_err *err) {
    char mine[900];
    snprintf(mine, sizeof mine, "%d %s", local_rc ? 1 : 0, local_rc ? (local_msg ? local_msg : "failed") : "");
    uint8_t **all;
    size_t *lens;
    diffu_comm_gather_bytes(c, (const uint8_t *)mine, strlen(mine), &all, &lens);
    uint8_t *verdict = NULL;
    size_t vlen = 0;
    if (c->rank == 0) {
        char v[1024] = "";
        for (int i = 0; i < c->size; i++) {
            all[i][lens[i]] = 0;
            if (!v[0] && all[i][0] == '1')
                snprintf(v, sizeof v, "rank %d (host %s): %s", i, diffu_comm_host_of(c, i), (char *)all[i] + 2);
            free(all[i]);
        }
        free(all);
        free(lens);
        verdict = (uint8_t *)diffu_xstrdup(v);
        vlen = strlen(v);
    }
    diffu_comm_bcast_bytes(c, &verdict, &vlen);
    int rc = 0;
    if (vlen) {
        char tmp[1024];
        size_t k = vlen < sizeof tmp - 1 ? vlen : sizeof tmp - 1;
        memcpy(tmp, verdict, k);
        tmp[k] = 0;
        rc = diffu_err_set(err, "%s", tmp);
    }
    free(verdict);
    return rc;
}

/* ------------------------------------------------------------ layout */

int diffu_comm_set_layout(diffu_comm *c, const diffu_layout *l, diffu_err *err) {
    if (diffu_layout_world(l) != c->size)
        return diffu_err_set(err, "the layout is for %d ranks, the job has %d", diffu_layout_world(l), c->size);
    c->layout = l;
    c->plan = diffu_layout_rank(l, c->rank);
    if (c->stage != MPI_COMM_NULL) MPI_Comm_free(&c->stage);
    MPI_Comm_split(c->world, c->plan->stage, c->plan->tp_rank, &c->stage);
    MPI_Comm_set_errhandler(c->stage, c->eh);
    int sr, ss;
    MPI_Comm_rank(c->stage, &sr);
    MPI_Comm_size(c->stage, &ss);
    DIFFU_ASSERT(sr == c->plan->tp_rank && ss == diffu_layout_tp(l));
    snprintf(c->tp_what, sizeof c->tp_what, "the tp all-reduce of stage %d (ranks %d-%d)", c->plan->stage,
             c->plan->stage_first_rank, c->plan->stage_first_rank + ss - 1);
    snprintf(c->vocab_what, sizeof c->vocab_what, "the vocab-parallel sampler's reduction on stage %d (ranks %d-%d)",
             c->plan->stage, c->plan->stage_first_rank, c->plan->stage_first_rank + ss - 1);
    return 0;
}

const diffu_rank_plan *diffu_comm_plan(const diffu_comm *c) { return c->plan; }

void diffu_comm_tp_allreduce(float *buf, size_t n, void *user) {
    diffu_comm *c = user;
    DIFFU_ASSERT(c->stage != MPI_COMM_NULL);
    DIFFU_ASSERT(n <= INT_MAX);
    MPI_Request r;
    MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, c->stage, &r);
    c->st.wait_tp += poll_wait(c, 1, &r, NULL, c->tp_what, -1);
    c->st.tp_bytes += (uint64_t)n * 4;
    c->st.tp_calls++;
}

void diffu_comm_stage_allgather(void *user, const double *send, size_t n, double *recv) {
    diffu_comm *c = user;
    DIFFU_ASSERT(c->stage != MPI_COMM_NULL);
    DIFFU_ASSERT(n <= INT_MAX);
    MPI_Request r;
    MPI_Iallgather(send, (int)n, MPI_DOUBLE, recv, (int)n, MPI_DOUBLE, c->stage, &r);
    c->st.wait_vocab += poll_wait(c, 1, &r, NULL, c->vocab_what, -1);
    c->st.vocab_bytes += (uint64_t)n * 8;
    c->st.vocab_calls++;
}

const diffu_comm_stats *diffu_comm_get_stats(const diffu_comm *c) { return &c->st; }
void diffu_comm_reset_stats(diffu_comm *c) { memset(&c->st, 0, sizeof c->st); }

/* ------------------------------------------------------------ point to point */

diffu_xfer *diffu_xfer_new(void) {
    diffu_xfer *x = diffu_xcalloc(1, sizeof *x);
    x->kind = XF_NONE;
    return x;
}

void diffu_xfer_free(diffu_xfer *x) {
    if (!x) return;
    DIFFU_ASSERTF(x->kind == XF_NONE, "freeing a pending transfer");
    free(x);
}

int diffu_xfer_pending(const diffu_xfer *x) { return x->kind != XF_NONE; }

void diffu_comm_send_act(diffu_comm *c, diffu_xfer *t, int to, const float *x, int n_tokens, int hidden, uint64_t id) {
    DIFFU_ASSERT(t->kind == XF_NONE);
    DIFFU_ASSERT(to >= 0 && to < c->size && n_tokens >= 0 && (size_t)n_tokens * (size_t)hidden <= INT_MAX);
    t->kind = XF_SEND_ACT;
    t->peer = to;
    t->hidden = hidden;
    t->hdr[0] = ACT_MAGIC;
    t->hdr[1] = (int64_t)id;
    t->hdr[2] = n_tokens;
    t->hdr[3] = hidden;
    MPI_Isend(t->hdr, 4, MPI_INT64_T, to, TAG_ACT_HDR, c->world, &t->req[0]);
    MPI_Isend(x, n_tokens * hidden, MPI_FLOAT, to, TAG_ACT, c->world, &t->req[1]);
    t->nreq = 2;
    c->st.act_bytes += (uint64_t)n_tokens * (uint64_t)hidden * 4;
}

void diffu_comm_recv_act(diffu_comm *c, diffu_xfer *t, int from, float *x, int max_tokens, int hidden) {
    DIFFU_ASSERT(t->kind == XF_NONE);
    DIFFU_ASSERT(from >= 0 && from < c->size && (size_t)max_tokens * (size_t)hidden <= INT_MAX);
    t->kind = XF_RECV_ACT;
    t->peer = from;
    t->hidden = hidden;
    MPI_Irecv(t->hdr, 4, MPI_INT64_T, from, TAG_ACT_HDR, c->world, &t->req[0]);
    MPI_Irecv(x, max_tokens * hidden, MPI_FLOAT, from, TAG_ACT, c->world, &t->req[1]);
    t->nreq = 2;
}

void diffu_comm_send_floats(diffu_comm *c, diffu_xfer *t, int to, const float *buf, size_t n, int tag) {
    DIFFU_ASSERT(t->kind == XF_NONE && n <= INT_MAX && tag >= 0 && tag < DIFFU_FLOAT_TAG_MAX);
    t->kind = XF_SEND_F;
    t->peer = to;
    MPI_Isend(buf, (int)n, MPI_FLOAT, to, TAG_FLOATS + tag, c->world, &t->req[0]);
    t->nreq = 1;
}

void diffu_comm_recv_floats(diffu_comm *c, diffu_xfer *t, int from, float *buf, size_t n, int tag) {
    DIFFU_ASSERT(t->kind == XF_NONE && n <= INT_MAX && tag >= 0 && tag < DIFFU_FLOAT_TAG_MAX);
    t->kind = XF_RECV_F;
    t->peer = from;
    MPI_Irecv(buf, (int)n, MPI_FLOAT, from, TAG_FLOATS + tag, c->world, &t->req[0]);
    t->nreq = 1;
}

static void finish(diffu_comm *c, diffu_xfer *t, MPI_Status *st, int *n_tokens, uint64_t *id) {
    (void)c;
    if (t->kind == XF_RECV_ACT) {
        DIFFU_ASSERTF(t->hdr[0] == ACT_MAGIC, "activation header from rank %d has a bad magic", t->peer);
        DIFFU_ASSERTF(t->hdr[3] == t->hidden, "rank %d sent hidden %lld, expected %d", t->peer, (long long)t->hdr[3],
                      t->hidden);
        int count = 0;
        MPI_Get_count(&st[1], MPI_FLOAT, &count);
        DIFFU_ASSERTF((long long)count == t->hdr[2] * t->hdr[3], "rank %d sent %d floats, its header says %lld x %lld",
                      t->peer, count, (long long)t->hdr[2], (long long)t->hdr[3]);
        if (n_tokens) *n_tokens = (int)t->hdr[2];
        if (id) *id = (uint64_t)t->hdr[1];
    } else if (t->kind == XF_SEND_ACT) {
        if (n_tokens) *n_tokens = (int)t->hdr[2];
        if (id) *id = (uint64_t)t->hdr[1];
    }
    t->kind = XF_NONE;
    t->nreq = 0;
}

void diffu_comm_send_bytes(diffu_comm *c, diffu_xfer *t, int to, const uint8_t *buf, size_t len, int tag) {
    DIFFU_ASSERT(t->kind == XF_NONE && len <= INT_MAX && to >= 0 && to < c->size);
    t->kind = XF_SEND_B;
    t->peer = to;
    t->tag = tag;
    MPI_Isend(buf, (int)len, MPI_BYTE, to, tag, c->world, &t->req[0]);
    t->nreq = 1;
    if (tag == DIFFU_TAG_RESULT) c->st.result_bytes += len;
    else c->st.ctrl_bytes += len;
}

void diffu_bytes_free(diffu_bytes *b) {
    if (!b) return;
    free(b->data);
    memset(b, 0, sizeof *b);
}

static const char *tag_what(int tag) {
    return tag == DIFFU_TAG_CONTROL ? "the next step command from" : tag == DIFFU_TAG_RESULT ? "a step result from" : "a message from";
}

/* A matched message: receive it into b (a few microseconds: it has arrived). */
static void take(diffu_comm *c, MPI_Message *msg, MPI_Status *st, int tag, diffu_bytes *b) {
    int n = 0;
    MPI_Get_count(st, MPI_BYTE, &n);
    DIFFU_ASSERT(n >= 0);
    if ((size_t)n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < (size_t)n + 1) cap *= 2;
        free(b->data);
        b->data = diffu_xmalloc(cap);
        b->cap = cap;
    }
    MPI_Request r;
    MPI_Imrecv(b->data, n, MPI_BYTE, msg, &r);
    double w = poll_wait(c, 1, &r, NULL, tag_what(tag), st->MPI_SOURCE);
    if (tag == DIFFU_TAG_RESULT) c->st.wait_result += w;
    else c->st.wait_ctrl += w;
    b->len = (size_t)n;
}

int diffu_comm_try_recv_bytes(diffu_comm *c, int from, int tag, diffu_bytes *b) {
    int flag = 0;
    MPI_Message msg;
    MPI_Status st;
    MPI_Improbe(from < 0 ? MPI_ANY_SOURCE : from, tag, c->world, &flag, &msg, &st);
    if (!flag) return 0;
    take(c, &msg, &st, tag, b);
    return 1;
}

void diffu_comm_recv_bytes(diffu_comm *c, int from, int tag, diffu_bytes *b, const char *what) {
    double t0 = diffu_now();
    long ns = 20000;
    for (;;) {
        int flag = 0;
        MPI_Message msg;
        MPI_Status st;
        MPI_Improbe(from < 0 ? MPI_ANY_SOURCE : from, tag, c->world, &flag, &msg, &st);
        if (flag) {
            double w = diffu_now() - t0;
            if (tag == DIFFU_TAG_RESULT) c->st.wait_result += w;
            else c->st.wait_ctrl += w;
            take(c, &msg, &st, tag, b);
            return;
        }
        double waited = diffu_now() - t0;
        if (waited > c->timeout) timed_out(c, waited, what ? what : tag_what(tag), from);
        pace(waited, &ns);
    }
}

void diffu_comm_progress(diffu_comm *c) {
    int flag = 0;
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, c->world, &flag, MPI_STATUS_IGNORE);
}

void diffu_comm_cancel(diffu_comm *c, diffu_xfer *t) {
    if (t->kind == XF_NONE) return;
    if (t->kind != XF_RECV_ACT && t->kind != XF_RECV_F) {
        diffu_comm_wait(c, t, NULL, NULL);
        return;
    }
    for (int i = 0; i < t->nreq; i++) MPI_Cancel(&t->req[i]);
    poll_wait(c, t->nreq, t->req, NULL, "a cancelled receive to be released (from", t->peer);
    t->kind = XF_NONE;
    t->nreq = 0;
}

int diffu_comm_test(diffu_comm *c, diffu_xfer *t) {
    if (t->kind == XF_NONE) return 1;
    MPI_Status st[2];
    int done = 0;
    MPI_Testall(t->nreq, t->req, &done, st);
    if (!done) return 0;
    finish(c, t, st, NULL, NULL);
    return 1;
}

void diffu_comm_wait(diffu_comm *c, diffu_xfer *t, int *n_tokens, uint64_t *id) {
    if (t->kind == XF_NONE) return;
    MPI_Status st[2];
    const char *what = t->kind == XF_RECV_ACT ? "activations from"
                       : t->kind == XF_SEND_ACT ? "the next stage to take activations: sending to"
                       : t->kind == XF_RECV_F ? "a float buffer from"
                       : t->kind == XF_SEND_B ? "a control message to be taken by" : "a float buffer to be taken by";
    double w = poll_wait(c, t->nreq, t->req, st, what, t->peer);
    if (t->kind == XF_RECV_ACT) c->st.wait_act += w;
    else if (t->kind == XF_SEND_ACT) c->st.wait_send += w;
    else if (t->kind == XF_SEND_B) c->st.wait_ctrl += w;
    finish(c, t, st, n_tokens, id);
}

/* ------------------------------------------------------------ test hooks */

void diffu_comm_debug_stall(diffu_comm *c, long mb, const char *where) {
    const char *e = getenv("DIFFU_DEBUG_STALL");
    if (!e || !*e) return;
    char *end;
    long r = strtol(e, &end, 10), at = 0, every = 0, count = 1;
    double secs = 60;
    if (*end == ':') secs = strtod(end + 1, &end);
    if (*end == '@') at = strtol(end + 1, &end, 10);
    if (*end == '+') {
        every = strtol(end + 1, &end, 10);
        count = *end == 'x' ? strtol(end + 1, &end, 10) : 1;
    }
    if (r != c->rank || !(secs > 0) || mb < at) return;
    if (every > 0 ? ((mb - at) % every || (mb - at) / every >= count) : mb != at) return;
    DLOG_WARN("debug: rank %d (pid %d) stalls %.0f s at %s (DIFFU_DEBUG_STALL=%s)", c->rank, (int)getpid(), secs, where, e);
    fflush(stderr);
    double t_end = diffu_now() + secs;
    while (diffu_now() < t_end) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}
