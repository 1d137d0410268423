/* runtime.c — see runtime.h. */
#include "runtime.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "diffu.pb-c.h"
#include "handshake.h"

int diffu_runtime_join(diffu_comm *c, const diffu_runtime_opts *o, diffu_layout **out, diffu_err *err) {
    int world = diffu_comm_size(c);
    char local[1280] = "";
    uint64_t fp = 0;
    diffu_layout *l = NULL;
    diffu_ckpt *ck;
    *out = NULL;
    if (diffu_ckpt_open(o->model, &ck, err)) {
        snprintf(local, sizeof local, "%s", err->msg);
    } else {
        fp = diffu_ckpt_fingerprint(ck);
        diffu_config cfg = *diffu_ckpt_config(ck);
        diffu_ckpt_close(ck);
        if (o->vocab && (uint32_t)cfg.vocab != o->vocab)
            snprintf(local, sizeof local, "%s: vocab_size %d, rank 0's checkpoint has %u", o->model, cfg.vocab, o->vocab);
        else if (o->pp < 1 || o->tp < 1 || diffu_layout_init(&cfg, world, o->pp, o->tp, o->layout, &l, err))
            snprintf(local, sizeof local, "layout (mpirun -np %d, --pp %d --tp %d): %s", world, o->pp_given, o->tp_given,
                     o->pp < 1 || o->tp < 1 ? "the world size is not a multiple of the one given" : err->msg);
    }
    if (diffu_handshake(c, fp, l, local, o->threads, err)) {
        diffu_layout_free(l);
        return -1;
    }
    if (diffu_comm_set_layout(c, l, err)) DIFFU_ASSERTF(0, "%s", err->msg); /* the handshake checked the world size */
    *out = l;
    return 0;
}

int diffu_runtime_start(diffu_comm *c, const Diffu__JobPlan *plan, const diffu_runtime_start_opts *o,
                        diffu_runtime_stages *out, diffu_err *err) {
    memset(out, 0, sizeof *out);
    diffu_layout_opts lo;
    diffu_layout_opts_default(&lo);
    lo.max_tokens = (int)plan->mb_max_tokens;
    lo.max_seq = (int)plan->max_seq;
    lo.max_rows = (int)plan->mb_max_rows;
    lo.threads = o->threads;
    lo.head_row_frac = plan->head_row_frac;
    lo.cache_slots = plan->kv_cache ? (int)plan->max_active : 0; /* counted in the memory check below */
    lo.cache_ctx = (int)plan->max_seq;
    diffu_runtime_opts ro = {o->model, o->pp, o->tp, o->pp_given, o->tp_given, o->threads, plan->vocab, &lo};
    if (diffu_runtime_join(c, &ro, &out->l, err)) return -1;
    int rc = diffu_stage_check_memory(c, out->l, err); /* before loading: refused with the numbers */
    if (diffu_comm_agree(c, rc, err->msg, err)) goto fail;
    double t = diffu_now();
    diffu_model_opts mo;
    diffu_model_opts_default(&mo);
    mo.max_tokens = (int)plan->mb_max_tokens;
    mo.max_seq = (int)plan->max_seq;
    mo.max_rows = (int)plan->mb_max_rows;
    mo.max_seqs = (int)plan->mb_max_seqs;
    mo.threads = o->threads;
    mo.f32_weights = o->f32_weights;
    mo.quiet = !o->verbose;
    rc = diffu_stage_init(c, out->l, o->model, &mo, &out->st, err);
    if (!rc) {
        diffu_worker_plan wp = {(int)plan->max_active, (int)plan->max_seq, (int)plan->mb_max_seqs,
                                (int)plan->mb_max_tokens, (int)plan->mb_max_rows, plan->kv_cache};
        rc = (out->w = diffu_worker_create(c, out->st, &wp, err)) ? 0 : -1;
    }
    if (diffu_comm_agree(c, rc, err->msg, err)) goto fail;
    out->t_load = diffu_now() - t;
    diffu_stage_log_memory(out->st);
    return 0;
fail:
    diffu_runtime_stages_free(out);
    return -1;
}

void diffu_runtime_stages_free(diffu_runtime_stages *s) {
    diffu_worker_free(s->w);
    diffu_stage_free(s->st);
    diffu_layout_free(s->l);
    memset(s, 0, sizeof *s);
}

/* ------------------------------------------------------------ live utilization */

/* Rank 0: each stage's utilization while the run goes (node/worker.h, live
 * utilization): stage 0 from its own worker, the others from the floats
 * their tp-0 ranks send now and then. */
struct diffu_runtime_live {
    diffu_comm *c;
    int P, T;
    diffu_xfer **rx; /* [P] (0 unused) */
    float *buf;      /* [P x 2] busy, elapsed */
    double *util;    /* [P] busy / elapsed, -1 not heard yet */
};

diffu_runtime_live *diffu_runtime_live_start(diffu_comm *c, const diffu_layout *l) {
    diffu_runtime_live *lu = diffu_xcalloc(1, sizeof *lu);
    int P = diffu_layout_pp(l), T = diffu_layout_tp(l);
    lu->c = c;
    lu->P = P;
    lu->T = T;
    lu->rx = diffu_xcalloc((size_t)P, sizeof *lu->rx);
    lu->buf = diffu_xcalloc((size_t)P * 2, sizeof *lu->buf);
    lu->util = diffu_xcalloc((size_t)P, sizeof *lu->util);
    for (int s = 1; s < P; s++) {
        lu->util[s] = -1;
        lu->rx[s] = diffu_xfer_new();
        diffu_comm_recv_floats(c, lu->rx[s], s * T, lu->buf + 2 * s, 2, DIFFU_LIVE_TAG);
    }
    return lu;
}

const double *diffu_runtime_live_poll(diffu_runtime_live *lu, diffu_worker *w) {
    const diffu_worker_stats *ws = diffu_worker_get_stats(w);
    double el = ws->t_first > 0 ? diffu_now() - ws->t_first : 0;
    lu->util[0] = el > 0 ? ws->busy / el : 0;
    for (int s = 1; s < lu->P; s++)
        if (diffu_comm_test(lu->c, lu->rx[s])) {
            float *b = lu->buf + 2 * s;
            lu->util[s] = b[1] > 0 ? b[0] / b[1] : 0;
            diffu_comm_recv_floats(lu->c, lu->rx[s], s * lu->T, b, 2, DIFFU_LIVE_TAG);
        }
    return lu->util;
}

void diffu_runtime_live_stop(diffu_runtime_live **plu) {
    diffu_runtime_live *lu = *plu;
    if (!lu) return;
    for (int s = 1; s < lu->P; s++) {
        for (;;) {
            diffu_comm_wait(lu->c, lu->rx[s], NULL, NULL);
            if (lu->buf[2 * s + 1] < 0) break;
            diffu_comm_recv_floats(lu->c, lu->rx[s], s * lu->T, lu->buf + 2 * s, 2, DIFFU_LIVE_TAG);
        }
        diffu_xfer_free(lu->rx[s]);
    }
    free(lu->rx);
    free(lu->buf);
    free(lu->util);
    free(lu);
    *plu = NULL;
}

/* ------------------------------------------------------------ statistics */

/* "1.23 MB" / "4.5 KB" / "12 B" */
static const char *human(char *buf, size_t n, double b) {
    if (b >= 1e6) snprintf(buf, n, "%.2f MB", b / 1e6);
    else if (b >= 1e3) snprintf(buf, n, "%.1f KB", b / 1e3);
    else snprintf(buf, n, "%.0f B", b);
    return buf;
}

/* Rank 0: every rank's RankStats -> the per-stage summary. */
static void print_summary(Diffu__RankStats **rs, int world, int P, int T, long microbatches, long seq_steps,
                          double wall) {
    DLOG_INFO("summary: %d stage(s) x %d tp rank(s); %ld microbatch(es), %ld sequence-step(s) (%.2f per microbatch);"
              " generate wall %.2f s", P, T, microbatches, seq_steps,
              microbatches ? (double)seq_steps / (double)microbatches : 0.0, wall);
    double tot_bytes = 0;
    for (int s = 0; s < P; s++) {
        double busy = 0, idle = 0, w = 0, tpw = 0, coord = 0, act = 0, ctrl = 0, tpb = 0, vb = 0;
        for (int t = 0; t < T; t++) {
            const Diffu__RankStats *r = rs[s * T + t];
            busy += r->busy_seconds;
            idle += r->idle_seconds;
            w += r->wall_seconds;
            tpw += r->tp_wait_seconds;
            coord += r->coord_seconds;
            act += (double)r->act_bytes_sent;
            ctrl += (double)r->ctrl_bytes_sent;
            tpb += (double)r->tp_bytes;
            vb += (double)r->vocab_bytes;
        }
        busy /= T;
        idle /= T;
        w /= T;
        tpw /= T;
        tot_bytes += act + ctrl;
        char b1[32], b2[32], b3[32], b4[32];
        double per = microbatches ? 1.0 / (double)microbatches : 0;
        DLOG_INFO("  stage %d (ranks %d-%d): busy %.2f s (%.1f%%), idle %.2f s (%.1f%%: the bubble); %.2f s of busy in"
                  " tp/vocab reductions; sent per microbatch: activations %s, control/results %s, tp all-reduce %s,"
                  " vocab reductions %s", s, s * T, s * T + T - 1, busy, w > 0 ? 100.0 * busy / w : 0.0, idle,
                  w > 0 ? 100.0 * idle / w : 0.0, tpw, human(b1, sizeof b1, act * per), human(b2, sizeof b2, ctrl * per),
                  human(b3, sizeof b3, tpb * per), human(b4, sizeof b4, vb * per));
        if (s == 0 && coord > 0) DLOG_INFO("  coordinator (rank 0): %.2f s (policy, packing, results)", coord);
    }
    if (microbatches && seq_steps) {
        char b1[32], b2[32];
        DLOG_INFO("  point-to-point bytes (activations + control + results) per microbatch %s, per sequence-step %s",
                  human(b1, sizeof b1, tot_bytes / (double)microbatches), human(b2, sizeof b2, tot_bytes / (double)seq_steps));
    }
}

/* This rank's RankStats and its line on stderr. */
static void own_stats(diffu_comm *c, diffu_worker *w, const diffu_runtime_run *run, char *host, size_t host_cap,
                      Diffu__RankStats *rs) {
    int rank = diffu_comm_rank(c);
    const diffu_worker_stats *ws = diffu_worker_get_stats(w);
    const diffu_comm_stats *cs = diffu_comm_get_stats(c);
    const diffu_rank_plan *rp = diffu_comm_plan(c);
    double rwait = rank == 0 ? run->result_wait : 0;
    snprintf(host, host_cap, "%s", diffu_comm_hostname(c));
    rs->rank = (uint32_t)rank;
    rs->stage = (uint32_t)rp->stage;
    rs->tp_rank = (uint32_t)rp->tp_rank;
    rs->microbatches = (uint64_t)ws->microbatches;
    rs->wall_seconds = rank == 0 ? run->wall : ws->t_last - ws->t_first;
    rs->busy_seconds = ws->busy;
    rs->idle_seconds = ws->idle + rwait; /* rank 0: + waiting for step results with nothing to send */
    rs->tp_wait_seconds = cs->wait_tp + cs->wait_vocab;
    rs->coord_seconds = rank == 0 ? run->coord : 0;
    rs->act_bytes_sent = cs->act_bytes;
    rs->ctrl_bytes_sent = cs->ctrl_bytes + cs->result_bytes;
    rs->tp_bytes = cs->tp_bytes;
    rs->vocab_bytes = cs->vocab_bytes;
    rs->seq_steps = (uint64_t)ws->seq_steps;
    rs->rows = (uint64_t)ws->rows;
    rs->host = host;
    char b1[32], b2[32];
    double per = ws->microbatches ? 1.0 / (double)ws->microbatches : 0;
    DLOG_INFO("stage %d tp %d: %ld microbatch(es), busy %.2f s (sampler %.2f s), idle %.2f s (commands %.2f, activations"
              " %.2f, send buffers %.2f%s), tp/vocab reductions %.2f s; sent per microbatch: activations %s, control"
              " %s", rp->stage, rp->tp_rank, ws->microbatches, ws->busy, ws->sample, rs->idle_seconds,
              rank == 0 ? 0.0 : cs->wait_ctrl, cs->wait_act, cs->wait_send, rank == 0 ? " + results below" : "",
              rs->tp_wait_seconds, human(b1, sizeof b1, (double)cs->act_bytes * per),
              human(b2, sizeof b2, (double)(cs->ctrl_bytes + cs->result_bytes) * per));
    if (rank == 0) DLOG_INFO("stage 0 tp 0: %.2f s waiting for step results with nothing to send", rwait);
}

void diffu_runtime_report(diffu_comm *c, const diffu_layout *l, diffu_worker *w, const diffu_runtime_run *run) {
    int rank = diffu_comm_rank(c), world = diffu_comm_size(c);
    Diffu__RankStats rs = DIFFU__RANK_STATS__INIT;
    char host[256];
    own_stats(c, w, run, host, sizeof host, &rs);
    size_t slen = diffu__rank_stats__get_packed_size(&rs);
    uint8_t *sbuf = diffu_xmalloc(slen + 1);
    diffu__rank_stats__pack(&rs, sbuf);
    uint8_t **all;
    size_t *lens;
    diffu_comm_gather_bytes(c, sbuf, slen, &all, &lens);
    free(sbuf);
    if (rank != 0) return;
    Diffu__RankStats **rsa = diffu_xcalloc((size_t)world, sizeof *rsa);
    for (int r = 0; r < world; r++) {
        rsa[r] = diffu__rank_stats__unpack(NULL, lens[r], all[r]);
        DIFFU_ASSERTF(rsa[r], "rank %d's statistics do not parse", r);
    }
    print_summary(rsa, world, diffu_layout_pp(l), diffu_layout_tp(l), run->microbatches, run->seq_steps, run->wall);
    for (int r = 0; r < world; r++) {
        diffu__rank_stats__free_unpacked(rsa[r], NULL);
        free(all[r]);
    }
    free(rsa);
    free(all);
    free(lens);
}
