/* fake_comm.c — see fake_comm.h. No MPI: threads, one mutex, one condition
 * variable. */
#include "fake_comm.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { MAX_RANKS = 64, TAG_ACT = 2, TAG_FLOATS = 1000 };

/* A message on its way: the sender's buffer, until the receiver takes it. */
typedef struct msg {
    int from, to, tag;
    const void *data;
    size_t len;                /* bytes */
    int64_t id, n_tokens, hidden; /* activations */
    int taken;                 /* the receiver has copied it: the send is complete */
    struct msg *next;          /* the world's queue, in send order */
} msg;

/* A barrier with one contribution slot per member, for the collectives. */
typedef struct group {
    int n, arrived;
    unsigned gen;
    const void *ptr[MAX_RANKS];
    size_t len[MAX_RANKS];
} group;

struct fake_world {
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* broadcast on every change */
    int size;
    msg *queue;                /* unmatched messages */
    diffu_xfer *posted;        /* posted receives, in post order */
    group world;
    group stage[MAX_RANKS];    /* by the stage's first rank */
    diffu_comm *comms[MAX_RANKS];
};

struct diffu_comm {
    fake_world *w;
    int rank, size;
    char host[256];
    double timeout;
    char **hosts;
    const diffu_layout *layout;
    const diffu_rank_plan *plan;
    group *sg;                 /* the stage's group, after set_layout */
    int tp;                    /* this rank's index in sg */
    diffu_comm_stats st;
};

struct diffu_xfer {
    enum { XF_NONE, XF_SEND, XF_RECV_ACT, XF_RECV_F } kind;
    int kind_send_act;         /* XF_SEND of activations (wait reports its header) */
    diffu_comm *owner;
    int peer, tag;
    msg *m;                    /* XF_SEND: the message in flight */
    void *buf;                 /* receives: where the data goes, cap bytes */
    size_t cap;
    int hidden;
    int done;                  /* receives: matched and copied */
    int64_t id, n_tokens, got_hidden;
    size_t got;
    diffu_xfer *next_posted;
};

/* ------------------------------------------------------------ the world */

fake_world *fake_world_create(int size) {
    DIFFU_ASSERT(size >= 1 && size <= MAX_RANKS);
    fake_world *w = diffu_xcalloc(1, sizeof *w);
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->size = size;
    w->world.n = size;
    double timeout = 120.0;
    const char *e = getenv("DIFFU_COMM_TIMEOUT");
    if (e && atof(e) > 0) timeout = atof(e);
    for (int r = 0; r < size; r++) {
        diffu_comm *c = diffu_xcalloc(1, sizeof *c);
        c->w = w;
        c->rank = r;
        c->size = size;
        if (gethostname(c->host, sizeof c->host - 1) != 0) snprintf(c->host, sizeof c->host, "?");
        c->timeout = timeout;
        w->comms[r] = c;
    }
    return w;
}

void fake_world_free(fake_world *w) {
    if (!w) return;
    DIFFU_ASSERTF(!w->queue, "fake comm: a message from rank %d to rank %d (tag %d) was never received", w->queue->from,
                  w->queue->to, w->queue->tag);
    for (int r = 0; r < w->size; r++) {
        diffu_comm *c = w->comms[r];
        if (c->hosts)
            for (int i = 0; i < c->size; i++) free(c->hosts[i]);
        free(c->hosts);
        free(c);
    }
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}

diffu_comm *fake_world_comm(fake_world *w, int rank) {
    DIFFU_ASSERT(rank >= 0 && rank < w->size);
    return w->comms[rank];
}

int diffu_comm_init(diffu_comm **out, diffu_err *err) {
    *out = NULL;
    return diffu_err_set(err, "the fake communicator has no MPI start-up (tests: fake_world_create)");
}

void diffu_comm_abort(diffu_comm *c, int code, const char *fmt, ...) {
    char m[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    fprintf(stderr, "fake comm: rank %d: fatal (code %d): %s\n", c->rank, code, m);
    fflush(stderr);
    abort();
}

/* ------------------------------------------------------------ matching and waiting (world lock held) */

/* Copy message m into receive x and complete both. */
static void deliver(fake_world *w, msg *m, diffu_xfer *x) {
    DIFFU_ASSERTF(m->len <= x->cap, "fake comm: rank %d sent %zu bytes (tag %d) to a receive of %zu on rank %d", m->from,
                  m->len, m->tag, x->cap, m->to);
    if (m->len) memcpy(x->buf, m->data, m->len);
    x->got = m->len;
    x->id = m->id;
    x->n_tokens = m->n_tokens;
    x->got_hidden = m->hidden;
    x->done = 1;
    m->taken = 1;
    msg **pp = &w->queue;
    while (*pp != m) pp = &(*pp)->next;
    *pp = m->next;
    pthread_cond_broadcast(&w->cv);
}

/* Match the posted receives, in post order, to the queue, in send order. */
static void progress(fake_world *w) {
    diffu_xfer **px = &w->posted;
    while (*px) {
        diffu_xfer *x = *px;
        msg *m = w->queue;
        while (m && !(m->to == x->owner->rank && m->from == x->peer && m->tag == x->tag)) m = m->next;
        if (m) {
            *px = x->next_posted;
            deliver(w, m, x);
        } else {
            px = &x->next_posted;
        }
    }
}

/* Wait on the world's condition until done(arg) or the rank's deadline. */
static double wait_until(diffu_comm *c, int (*done)(void *), void *arg, const char *what, int peer) {
    fake_world *w = c->w;
    double t0 = diffu_now();
    for (;;) {
        progress(w);
        if (done(arg)) return diffu_now() - t0;
        double waited = diffu_now() - t0;
        if (waited > c->timeout) {
            char who[32] = "";
            if (peer >= 0) snprintf(who, sizeof who, " rank %d", peer);
            fprintf(stderr, "fake comm: rank %d waited %.1f s for %s%s: a deadlock\n", c->rank, waited, what, who);
            fflush(stderr);
            abort();
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&w->cv, &w->mu, &ts);
    }
}

static int xfer_done(void *arg) {
    diffu_xfer *x = arg;
    return x->kind == XF_SEND ? x->m->taken : x->done;
}

typedef struct {
    group *g;
    unsigned gen;
} gen_wait;
static int gen_passed(void *arg) {
    gen_wait *gw = arg;
    return gw->g->gen != gw->gen;
}

/* Wait for the group's other members (lock held). */
static double sync_all(diffu_comm *c, group *g, const char *what) {
    gen_wait gw = {g, g->gen};
    if (++g->arrived == g->n) {
        g->arrived = 0;
        g->gen++;
        pthread_cond_broadcast(&c->w->cv);
        return 0;
    }
    return wait_until(c, gen_passed, &gw, what, -1);
}

/* Deposit this member's contribution, then wait for the others: after it the
 * slots hold every member's, until the next sync_all (lock held). */
static double collect(diffu_comm *c, group *g, int me, const void *p, size_t len, const char *what) {
    g->ptr[me] = p;
    g->len[me] = len;
    return sync_all(c, g, what);
}

/* ------------------------------------------------------------ basics */

void diffu_comm_finalize(diffu_comm *c) {
    if (!c) return;
    pthread_mutex_lock(&c->w->mu);
    sync_all(c, &c->w->world, "the final barrier");
    pthread_mutex_unlock(&c->w->mu);
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

/* ------------------------------------------------------------ world collectives */

void diffu_comm_bcast_bytes(diffu_comm *c, uint8_t **buf, size_t *len) {
    fake_world *w = c->w;
    pthread_mutex_lock(&w->mu);
    collect(c, &w->world, c->rank, c->rank == 0 ? *buf : NULL, c->rank == 0 ? *len : 0, "a broadcast");
    if (c->rank != 0) {
        size_t n = w->world.len[0];
        *buf = diffu_xmalloc(n ? n : 1);
        if (n) memcpy(*buf, w->world.ptr[0], n);
        *len = n;
    }
    sync_all(c, &w->world, "a broadcast to be taken");
    pthread_mutex_unlock(&w->mu);
}

void diffu_comm_gather_bytes(diffu_comm *c, const uint8_t *buf, size_t len, uint8_t ***all, size_t **lens) {
    fake_world *w = c->w;
    *all = NULL;
    *lens = NULL;
    pthread_mutex_lock(&w->mu);
    collect(c, &w->world, c->rank, buf, len, "a gather");
    if (c->rank == 0) {
        *all = diffu_xmalloc((size_t)c->size * sizeof **all);
        *lens = diffu_xmalloc((size_t)c->size * sizeof **lens);
        for (int i = 0; i < c->size; i++) {
            (*lens)[i] = w->world.len[i];
            (*all)[i] = diffu_xmalloc(w->world.len[i] + 1);
            if (w->world.len[i]) memcpy((*all)[i], w->world.ptr[i], w->world.len[i]);
        }
    }
    sync_all(c, &w->world, "a gather to be taken");
    pthread_mutex_unlock(&w->mu);
}

/* Every rank sees every rank's (rc, message): the lowest failing rank's, as the real one's verdict. */
int diffu_comm_agree(diffu_comm *c, int local_rc, const char *local_msg, diffu_err *err) {
    fake_world *w = c->w;
    char v[1024] = "";
    pthread_mutex_lock(&w->mu);
    collect(c, &w->world, c->rank, local_rc ? (local_msg ? local_msg : "failed") : NULL, 0, "an agreement");
    for (int i = 0; i < c->size && !v[0]; i++)
        if (w->world.ptr[i])
            snprintf(v, sizeof v, "rank %d (host %s): %s", i, diffu_comm_host_of(c, i), (const char *)w->world.ptr[i]);
    sync_all(c, &w->world, "an agreement to be read");
    pthread_mutex_unlock(&w->mu);
    return v[0] ? diffu_err_set(err, "%s", v) : 0;
}

/* ------------------------------------------------------------ the stage */

int diffu_comm_set_layout(diffu_comm *c, const diffu_layout *l, diffu_err *err) {
    if (diffu_layout_world(l) != c->size)
        return diffu_err_set(err, "the layout is for %d ranks, the job has %d", diffu_layout_world(l), c->size);
    c->layout = l;
    c->plan = diffu_layout_rank(l, c->rank);
    pthread_mutex_lock(&c->w->mu);
    c->sg = &c->w->stage[c->plan->stage_first_rank];
    c->sg->n = diffu_layout_tp(l);
    c->tp = c->plan->tp_rank;
    DIFFU_ASSERT(c->rank == c->plan->stage_first_rank + c->tp);
    pthread_mutex_unlock(&c->w->mu);
    return 0;
}

const diffu_rank_plan *diffu_comm_plan(const diffu_comm *c) { return c->plan; }

void diffu_comm_tp_allreduce(float *buf, size_t n, void *user) {
    diffu_comm *c = user;
    DIFFU_ASSERT(c->sg);
    float *sum = diffu_xmalloc((n ? n : 1) * sizeof *sum);
    pthread_mutex_lock(&c->w->mu);
    double t = collect(c, c->sg, c->tp, buf, n, "the tp all-reduce");
    for (size_t i = 0; i < n; i++) {
        float s = 0;
        for (int k = 0; k < c->sg->n; k++) s += ((const float *)c->sg->ptr[k])[i];
        sum[i] = s;
    }
    t += sync_all(c, c->sg, "the tp all-reduce to be read");
    pthread_mutex_unlock(&c->w->mu);
    memcpy(buf, sum, n * sizeof *sum);
    free(sum);
    c->st.wait_tp += t;
    c->st.tp_bytes += (uint64_t)n * 4;
    c->st.tp_calls++;
}

void diffu_comm_stage_allgather(void *user, const double *send, size_t n, double *recv) {
    diffu_comm *c = user;
    DIFFU_ASSERT(c->sg);
    pthread_mutex_lock(&c->w->mu);
    double t = collect(c, c->sg, c->tp, send, n, "the vocab-parallel allgather");
    for (int k = 0; k < c->sg->n; k++) {
        DIFFU_ASSERTF(c->sg->len[k] == n, "fake comm: allgather of %zu doubles by tp %d, %zu here", c->sg->len[k], k, n);
        memcpy(recv + (size_t)k * n, c->sg->ptr[k], n * sizeof *recv);
    }
    t += sync_all(c, c->sg, "the vocab-parallel allgather to be read");
    pthread_mutex_unlock(&c->w->mu);
    c->st.wait_vocab += t;
    c->st.vocab_bytes += (uint64_t)n * 8;
    c->st.vocab_calls++;
}

const diffu_comm_stats *diffu_comm_get_stats(const diffu_comm *c) { return &c->st; }
void diffu_comm_reset_stats(diffu_comm *c) { memset(&c->st, 0, sizeof c->st); }

/* ------------------------------------------------------------ point to point */

diffu_xfer *diffu_xfer_new(void) { return diffu_xcalloc(1, sizeof(diffu_xfer)); }

void diffu_xfer_free(diffu_xfer *x) {
    if (!x) return;
    DIFFU_ASSERTF(x->kind == XF_NONE, "freeing a pending transfer");
    free(x);
}

int diffu_xfer_pending(const diffu_xfer *x) { return x->kind != XF_NONE; }

static void post_send(diffu_comm *c, diffu_xfer *t, int to, int tag, const void *data, size_t len, int64_t id,
                      int64_t n_tokens, int64_t hidden) {
    DIFFU_ASSERT(t->kind == XF_NONE && to >= 0 && to < c->size);
    msg *m = diffu_xcalloc(1, sizeof *m);
    *m = (msg){c->rank, to, tag, data, len, id, n_tokens, hidden, 0, NULL};
    t->kind = XF_SEND;
    t->owner = c;
    t->peer = to;
    t->tag = tag;
    t->m = m;
    pthread_mutex_lock(&c->w->mu);
    msg **pp = &c->w->queue;
    while (*pp) pp = &(*pp)->next;
    *pp = m;
    progress(c->w);
    pthread_cond_broadcast(&c->w->cv);
    pthread_mutex_unlock(&c->w->mu);
}

static void post_recv(diffu_comm *c, diffu_xfer *t, int kind, int from, int tag, void *buf, size_t cap, int hidden) {
    DIFFU_ASSERT(t->kind == XF_NONE && from >= 0 && from < c->size);
    t->kind = kind;
    t->owner = c;
    t->peer = from;
    t->tag = tag;
    t->buf = buf;
    t->cap = cap;
    t->hidden = hidden;
    t->done = 0;
    t->next_posted = NULL;
    pthread_mutex_lock(&c->w->mu);
    diffu_xfer **px = &c->w->posted;
    while (*px) px = &(*px)->next_posted;
    *px = t;
    progress(c->w);
    pthread_mutex_unlock(&c->w->mu);
}

void diffu_comm_send_act(diffu_comm *c, diffu_xfer *t, int to, const float *x, int n_tokens, int hidden, uint64_t id) {
    DIFFU_ASSERT(n_tokens >= 0);
    post_send(c, t, to, TAG_ACT, x, (size_t)n_tokens * (size_t)hidden * sizeof *x, (int64_t)id, n_tokens, hidden);
    t->kind_send_act = 1;
    c->st.act_bytes += (uint64_t)n_tokens * (uint64_t)hidden * 4;
}

void diffu_comm_recv_act(diffu_comm *c, diffu_xfer *t, int from, float *x, int max_tokens, int hidden) {
    post_recv(c, t, XF_RECV_ACT, from, TAG_ACT, x, (size_t)max_tokens * (size_t)hidden * sizeof *x, hidden);
}

void diffu_comm_send_floats(diffu_comm *c, diffu_xfer *t, int to, const float *buf, size_t n, int tag) {
    DIFFU_ASSERT(tag >= 0 && tag < DIFFU_FLOAT_TAG_MAX);
    post_send(c, t, to, TAG_FLOATS + tag, buf, n * sizeof *buf, 0, 0, 0);
    t->kind_send_act = 0;
}

void diffu_comm_recv_floats(diffu_comm *c, diffu_xfer *t, int from, float *buf, size_t n, int tag) {
    DIFFU_ASSERT(tag >= 0 && tag < DIFFU_FLOAT_TAG_MAX);
    post_recv(c, t, XF_RECV_F, from, TAG_FLOATS + tag, buf, n * sizeof *buf, 0);
}

void diffu_comm_send_bytes(diffu_comm *c, diffu_xfer *t, int to, const uint8_t *buf, size_t len, int tag) {
    post_send(c, t, to, tag, buf, len, 0, 0, 0);
    t->kind_send_act = 0;
    if (tag == DIFFU_TAG_RESULT) c->st.result_bytes += len;
    else c->st.ctrl_bytes += len;
}

/* A completed transfer (lock held): check a received activation, free a sent message. */
static void complete(diffu_xfer *t, int *n_tokens, uint64_t *id) {
    if (t->kind == XF_RECV_ACT) {
        DIFFU_ASSERTF(t->got_hidden == t->hidden, "rank %d sent hidden %lld, expected %d", t->peer,
                      (long long)t->got_hidden, t->hidden);
        DIFFU_ASSERTF(t->got == (size_t)(t->n_tokens * t->got_hidden) * sizeof(float),
                      "rank %d sent %zu bytes, its header says %lld x %lld", t->peer, t->got, (long long)t->n_tokens,
                      (long long)t->got_hidden);
        if (n_tokens) *n_tokens = (int)t->n_tokens;
        if (id) *id = (uint64_t)t->id;
    } else if (t->kind == XF_SEND) {
        if (t->kind_send_act) {
            if (n_tokens) *n_tokens = (int)t->m->n_tokens;
            if (id) *id = (uint64_t)t->m->id;
        }
        free(t->m);
        t->m = NULL;
    }
    t->kind = XF_NONE;
}

int diffu_comm_test(diffu_comm *c, diffu_xfer *t) {
    if (t->kind == XF_NONE) return 1;
    pthread_mutex_lock(&c->w->mu);
    progress(c->w);
    int done = xfer_done(t);
    if (done) complete(t, NULL, NULL);
    pthread_mutex_unlock(&c->w->mu);
    return done;
}

void diffu_comm_wait(diffu_comm *c, diffu_xfer *t, int *n_tokens, uint64_t *id) {
    if (t->kind == XF_NONE) return;
    const char *what = t->kind == XF_RECV_ACT ? "activations from"
                       : t->kind == XF_RECV_F ? "a float buffer from"
                       : t->kind_send_act     ? "the next stage to take activations: sending to"
                                              : "a message to be taken by";
    pthread_mutex_lock(&c->w->mu);
    double waited = wait_until(c, xfer_done, t, what, t->peer);
    if (t->kind == XF_RECV_ACT) c->st.wait_act += waited;
    else if (t->kind_send_act) c->st.wait_send += waited;
    complete(t, n_tokens, id);
    pthread_mutex_unlock(&c->w->mu);
}

void diffu_comm_progress(diffu_comm *c) {
    pthread_mutex_lock(&c->w->mu);
    progress(c->w);
    pthread_mutex_unlock(&c->w->mu);
}

void diffu_comm_cancel(diffu_comm *c, diffu_xfer *t) {
    if (t->kind == XF_NONE) return;
    if (t->kind == XF_SEND) {
        diffu_comm_wait(c, t, NULL, NULL);
        return;
    }
    pthread_mutex_lock(&c->w->mu);
    progress(c->w);
    if (!t->done) { /* still posted: withdraw it */
        diffu_xfer **px = &c->w->posted;
        while (*px && *px != t) px = &(*px)->next_posted;
        DIFFU_ASSERT(*px == t);
        *px = t->next_posted;
    }
    t->kind = XF_NONE;
    pthread_mutex_unlock(&c->w->mu);
}

/* ------------------------------------------------------------ control messages */

void diffu_bytes_free(diffu_bytes *b) {
    if (!b) return;
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* The first unmatched message for this rank from `from` (< 0: any) with tag, taken into b (lock held). */
static int probe_take(diffu_comm *c, int from, int tag, diffu_bytes *b) {
    progress(c->w);
    msg *m = c->w->queue;
    while (m && !(m->to == c->rank && (from < 0 || m->from == from) && m->tag == tag)) m = m->next;
    if (!m) return 0;
    if (m->len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < m->len + 1) cap *= 2;
        free(b->data);
        b->data = diffu_xmalloc(cap);
        b->cap = cap;
    }
    diffu_xfer x = {.kind = XF_RECV_F, .owner = c, .buf = b->data, .cap = b->cap};
    deliver(c->w, m, &x);
    b->len = m->len;
    return 1;
}

int diffu_comm_try_recv_bytes(diffu_comm *c, int from, int tag, diffu_bytes *b) {
    pthread_mutex_lock(&c->w->mu);
    int got = probe_take(c, from, tag, b);
    pthread_mutex_unlock(&c->w->mu);
    return got;
}

typedef struct {
    diffu_comm *c;
    int from, tag;
    diffu_bytes *b;
} probe_arg;
static int probe_done(void *arg) {
    probe_arg *p = arg;
    return probe_take(p->c, p->from, p->tag, p->b);
}

void diffu_comm_recv_bytes(diffu_comm *c, int from, int tag, diffu_bytes *b, const char *what) {
    probe_arg p = {c, from, tag, b};
    pthread_mutex_lock(&c->w->mu);
    double waited = wait_until(c, probe_done, &p, what ? what : "a message from", from);
    if (tag == DIFFU_TAG_RESULT) c->st.wait_result += waited;
    else c->st.wait_ctrl += waited;
    pthread_mutex_unlock(&c->w->mu);
}

void diffu_comm_debug_stall(diffu_comm *c, long mb, const char *where) {
    (void)c;
    (void)mb;
    (void)where;
}
