/* engine.c — see engine.h. */
#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "local.h"

struct diffu_engine {
    diffu_engine_opts o;
    diffu_sched *sc;
    diffu_local *local;      /* the local backend, or */
    const diffu_wire_backend *wire; /* the pipeline */
    diffu_sample *samples;   /* [mb_max_rows] the local backend's results */
    int n_seqs;
    diffu_engine_stats st;
};

/* The scheduler's finished callback: the local backend's cache slot first, then the caller's. */
static void seq_finished(void *user, int i, diffu_denoise *d) {
    diffu_engine *e = user;
    if (e->local) diffu_local_release(e->local, d);
    if (e->o.sched.finished) e->o.sched.finished(e->o.sched.finished_user, i, d);
}

diffu_engine *diffu_engine_create(const diffu_engine_opts *o, diffu_denoise *const *seqs, int n, diffu_err *err) {
    if (!o->model == !o->wire) {
        diffu_err_set(err, "engine: exactly one backend (a model or a wire backend)");
        return NULL;
    }
    if (o->model && o->sched.microbatches != 1) {
        diffu_err_set(err, "engine: the local backend runs one microbatch at a time (%d asked)", o->sched.microbatches);
        return NULL;
    }
    diffu_engine *e = diffu_xcalloc(1, sizeof *e);
    e->o = *o;
    e->n_seqs = n;
    diffu_sched_opts so = o->sched;
    so.structured = o->model != NULL;
    so.stage_cache = o->wire && o->kv_cache; /* the pipeline's stages hold it; the scheduler picks the rows */
    so.finished = seq_finished;
    so.finished_user = e;
    if (o->model) {
        diffu_local_plan lp = {so.mb_max_seqs, so.mb_max_tokens, so.max_seq > 0 ? so.max_seq : so.mb_max_tokens,
                               so.mb_max_rows, o->kv_cache ? so.max_active : 0};
        if (!(e->local = diffu_local_create(o->model, &lp, err))) {
            diffu_engine_free(&e);
            return NULL;
        }
        e->samples = diffu_xmalloc((size_t)(so.mb_max_rows > 0 ? so.mb_max_rows : 1) * sizeof *e->samples);
    }
    e->wire = o->wire;
    if (!(e->sc = diffu_sched_create(&so, seqs, n, err))) {
        diffu_engine_free(&e);
        return NULL;
    }
    return e;
}

void diffu_engine_free(diffu_engine **ep) {
    if (!ep || !*ep) return;
    diffu_engine *e = *ep;
    diffu_sched_free(&e->sc);
    diffu_local_free(&e->local);
    free(e->samples);
    free(e);
    *ep = NULL;
}

const diffu_engine_stats *diffu_engine_get_stats(const diffu_engine *e) { return &e->st; }
int diffu_engine_failed(const diffu_engine *e) { return diffu_sched_failed(e->sc); }
struct diffu_local *diffu_engine_local(diffu_engine *e) { return e->local; }

static void sync_stats(diffu_engine *e) {
    e->st.sched = *diffu_sched_get_stats(e->sc);
    if (e->local) {
        e->st.forward = diffu_local_get_stats(e->local)->t_forward;
        e->st.sample = diffu_local_get_stats(e->local)->t_sample;
        e->st.flops = diffu_local_get_stats(e->local)->flops;
        e->st.computed = diffu_local_get_stats(e->local)->tokens;
    } else {
        e->st.computed = e->st.sched.computed;
    }
    if (e->wire && e->wire->waited) e->st.wait = e->wire->waited(e->wire->self);
}

/* Commit one packed StepResult (pipeline); a refused one ends the job. */
static void take_result(diffu_engine *e, const uint8_t *msg, size_t len) {
    diffu_err err;
    if (diffu_sched_result(e->sc, msg, len, &err)) e->wire->fail(e->wire->self, 5, err.msg);
    if (e->o.stepped) e->o.stepped(e->o.user, e);
}

/* Microbatch id (just formed) through the backend: the local one runs it and
 * commits at once; the pipeline gets its Controls. */
static int submit(diffu_engine *e, long id, diffu_err *err) {
    if (e->local) {
        diffu_denoise *const *ds;
        const int *n_want;
        int n = diffu_sched_members(e->sc, &ds, &n_want), rows = 0;
        for (int k = 0; k < n; k++) rows += n_want[k];
        if (diffu_local_step(e->local, ds, n_want, n, e->samples, err)) return -1;
        double t = diffu_now();
        diffu_sched_commit(e->sc, e->samples, rows);
        if (e->o.stepped) e->o.stepped(e->o.user, e);
        e->st.coord += diffu_now() - t;
        return 0;
    }
    const uint8_t *ctl[4];
    size_t len[4];
    for (int r = 0; r < 4; r++) ctl[r] = diffu_sched_control(e->sc, r, &len[r]);
    e->wire->submit(e->wire->self, id, ctl, len);
    return 0;
}

static void log_progress(diffu_engine *e, double t0, int n_util, const double *util) {
    const diffu_sched_stats *ss = diffu_sched_get_stats(e->sc);
    char ubuf[256] = "";
    size_t n = 0;
    if (util) {
        n = (size_t)snprintf(ubuf, sizeof ubuf, "; stages busy");
        for (int s = 0; s < n_util && n < sizeof ubuf; s++)
            n += (size_t)snprintf(ubuf + n, sizeof ubuf - n, util[s] < 0 ? " ?" : " %.0f%%", 100.0 * util[s]);
    }
    double el = diffu_now() - t0;
    DLOG_INFO("progress: %ld/%d sequences done, %ld microbatches, %ld positions committed, %.1f tokens/s; %d"
              " microbatch(es) in flight, %d sequence(s) active%s", ss->finished, e->n_seqs, ss->microbatches,
              ss->committed, el > 0 ? (double)ss->committed / el : 0.0, diffu_sched_inflight(e->sc),
              diffu_sched_active(e->sc), ubuf);
}

int diffu_engine_run(diffu_engine *e, diffu_err *err) {
    diffu_sched *sc = e->sc;
    const diffu_wire_backend *w = e->wire;
    double t0 = diffu_now(), next_log = t0 + e->o.log_seconds, next_util = t0;
    const double *util = NULL;
    int n_util = 0, closed = 0, rc = 0;
    while (!diffu_sched_done(sc)) {
        double ta = diffu_now();
        const uint8_t *msg;
        size_t len;
        if (w)
            while (diffu_sched_inflight(sc) > 0 && w->poll(w->self, 0, &msg, &len)) take_result(e, msg, len);
        int stop = e->o.stop ? e->o.stop(e->o.user) : 0;
        if (stop >= 1 && !closed) {
            diffu_sched_close(sc); /* admit nothing more; those admitted run to their end */
            closed = 1;
            if (diffu_sched_done(sc)) break;
        }
        int abandon = stop >= 2 || diffu_sched_failed(sc);
        long id = abandon ? -1 : diffu_sched_next(sc);
        abandon = abandon || diffu_sched_failed(sc); /* (diffu_sched_next may have just failed to make one) */
        e->st.coord += diffu_now() - ta;
        if (id >= 0) {
            if (submit(e, id, err)) {
                rc = -1;
                break;
            }
        } else if (abandon && diffu_sched_inflight(sc) == 0) {
            break; /* a stop or a failed make: nothing more goes out; what was in flight is in */
        } else if (!diffu_sched_done(sc)) { /* (the results just taken, or a skipped step, may have been the last) */
            DIFFU_ASSERTF(diffu_sched_inflight(sc) > 0 && w, "the coordinator has nothing in flight and nothing to send,"
                          " but %d of %d sequences are not finished",
                          e->n_seqs - (int)diffu_sched_get_stats(sc)->finished, e->n_seqs);
            w->poll(w->self, 1, &msg, &len);
            double tr = diffu_now();
            take_result(e, msg, len);
            e->st.coord += diffu_now() - tr;
        }
        double now = diffu_now();
        if (w && w->util && now >= next_util) { /* ~4 times a second */
            util = w->util(w->self, &n_util);
            next_util = now + 0.25;
        }
        sync_stats(e);
        if (e->o.tick) e->o.tick(e->o.user, e, util ? n_util : 0, util);
        if (e->o.log_seconds > 0 && now >= next_log) {
            log_progress(e, t0, n_util, util);
            next_log = now + e->o.log_seconds;
        }
    }
    e->st.wall = diffu_now() - t0;
    if (w) { /* the Shutdown, after every microbatch */
        size_t len;
        const uint8_t *sd = diffu_sched_shutdown(sc, "done", 0, &len);
        w->shutdown(w->self, sd, len);
    }
    sync_stats(e);
    return rc;
}
