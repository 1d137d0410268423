/* pipeline.c — see pipeline.h. */
#include "pipeline.h"

#include <stdlib.h>
#include <string.h>

#include "runtime.h"

struct diffu_pipeline {
    diffu_comm *c;
    const diffu_layout *l;
    diffu_worker *w;
    int world, n_stages, last_tp0, n_ring;
    int *role;             /* [world] role mask of each rank */
    diffu_xfer **tx;       /* [n_ring x world] Control sends */
    diffu_bytes inbox;     /* the last StepResult (from MPI, or rank 0's own worker) */
    int local_pending;     /* rank 0 is the last stage's tp-0 rank: a result of its own worker waits */
    diffu_runtime_live *lu;
    double waited;
    diffu_wire_backend be;
};

/* Rank 0 is the last stage's tp-0 rank (one stage): its worker's result. */
static void local_result(void *user, const uint8_t *msg, size_t len) {
    diffu_pipeline *p = user;
    DIFFU_ASSERTF(!p->local_pending, "a step result of rank 0's own worker was not taken");
    if (p->inbox.cap < len) {
        p->inbox.data = diffu_xrealloc(p->inbox.data, len);
        p->inbox.cap = len;
    }
    if (len) memcpy(p->inbox.data, msg, len);
    p->inbox.len = len;
    p->local_pending = 1;
}

static void pl_submit(void *self, long id, const uint8_t *const control[4], const size_t control_len[4]) {
    diffu_pipeline *p = self;
    int k = (int)(id % p->n_ring), code;
    for (int r = 1; r < p->world; r++) {
        diffu_xfer *x = p->tx[k * p->world + r];
        diffu_comm_wait(p->c, x, NULL, NULL); /* microbatch id - M - 1 reached that rank */
        diffu_comm_send_bytes(p->c, x, r, control[p->role[r]], control_len[p->role[r]], DIFFU_TAG_CONTROL);
    }
    diffu_worker_exec(p->w, control[p->role[0]], control_len[p->role[0]], &code);
}

static int pl_poll(void *self, int wait, const uint8_t **msg, size_t *len) {
    diffu_pipeline *p = self;
    if (p->last_tp0 == 0) {
        DIFFU_ASSERTF(p->local_pending || !wait, "waiting for a step result with none in flight on rank 0");
        if (!p->local_pending) return 0;
        p->local_pending = 0;
    } else if (wait) {
        double t = diffu_now();
        diffu_comm_recv_bytes(p->c, p->last_tp0, DIFFU_TAG_RESULT, &p->inbox, "a step result from");
        p->waited += diffu_now() - t;
    } else if (!diffu_comm_try_recv_bytes(p->c, p->last_tp0, DIFFU_TAG_RESULT, &p->inbox)) {
        return 0;
    }
    *msg = p->inbox.data;
    *len = p->inbox.len;
    return 1;
}

static void pl_shutdown(void *self, const uint8_t *msg, size_t len) {
    diffu_pipeline *p = self;
    diffu_xfer **sx = diffu_xcalloc((size_t)p->world, sizeof *sx);
    for (int r = 1; r < p->world; r++) {
        sx[r] = diffu_xfer_new();
        diffu_comm_send_bytes(p->c, sx[r], r, msg, len, DIFFU_TAG_CONTROL);
    }
    int code;
    diffu_worker_exec(p->w, msg, len, &code);
    diffu_worker_drain(p->w);
    for (int r = 1; r < p->world; r++) {
        diffu_comm_wait(p->c, sx[r], NULL, NULL);
        diffu_xfer_free(sx[r]);
    }
    free(sx);
    diffu_runtime_live_stop(&p->lu);
}

static const double *pl_util(void *self, int *n) {
    diffu_pipeline *p = self;
    *n = p->n_stages;
    return p->lu ? diffu_runtime_live_poll(p->lu, p->w) : NULL;
}

static void pl_fail(void *self, int code, const char *msg) {
    diffu_pipeline *p = self;
    diffu_comm_abort(p->c, code, "%s", msg);
}

static double pl_waited(void *self) { return ((diffu_pipeline *)self)->waited; }

diffu_pipeline *diffu_pipeline_create(diffu_comm *c, const diffu_layout *l, diffu_worker *w, int microbatches) {
    DIFFU_ASSERT(microbatches >= 1 && diffu_comm_rank(c) == 0);
    diffu_pipeline *p = diffu_xcalloc(1, sizeof *p);
    p->c = c;
    p->l = l;
    p->w = w;
    p->world = diffu_comm_size(c);
    p->n_stages = diffu_layout_pp(l);
    p->last_tp0 = (p->n_stages - 1) * diffu_layout_tp(l);
    p->n_ring = microbatches + 1;
    p->tx = diffu_xcalloc((size_t)p->n_ring * (size_t)p->world, sizeof *p->tx);
    for (int i = 0; i < p->n_ring * p->world; i++) p->tx[i] = diffu_xfer_new();
    p->role = diffu_xcalloc((size_t)p->world, sizeof *p->role);
    for (int r = 0; r < p->world; r++) {
        const diffu_rank_plan *rp = diffu_layout_rank(l, r);
        p->role[r] = (rp->shard.embed ? 1 : 0) | (rp->shard.head ? 2 : 0); /* scheduler.h's role masks */
    }
    if (p->last_tp0 == 0) diffu_worker_set_local_result(w, local_result, p);
    p->lu = diffu_runtime_live_start(c, l);
    p->be = (diffu_wire_backend){p, pl_submit, pl_poll, pl_shutdown, pl_util, pl_fail, pl_waited};
    return p;
}

const diffu_wire_backend *diffu_pipeline_backend(diffu_pipeline *p) { return &p->be; }

void diffu_pipeline_free(diffu_pipeline **pp) {
    if (!pp || !*pp) return;
    diffu_pipeline *p = *pp;
    /* (the live reports are collected by the shutdown; without one the job is being aborted) */
    for (int i = 0; i < p->n_ring * p->world; i++) {
        diffu_comm_wait(p->c, p->tx[i], NULL, NULL);
        diffu_xfer_free(p->tx[i]);
    }
    free(p->tx);
    free(p->role);
    diffu_bytes_free(&p->inbox);
    free(p);
    *pp = NULL;
}
