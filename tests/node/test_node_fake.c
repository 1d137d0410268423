/* test_node_fake.c — the stages, workers and pipeline backend of node/ in one
 * process, over the fake communicator (fake_comm.h: threads as ranks,
 * rendezvous sends, a deadline on every wait), against the single-process
 * engine (coordinator/local.h) as the reference.
 *
 * A tiny random model (diffu_mkmodel_write: hidden 64, 2 layers, 4 heads /
 * 2 KV heads, vocab 1000, bf16) and five requests of different prompt lengths
 * and parameters: greedy entropy (steps = new tokens), greedy topk_margin
 * (half the steps), maskgit_plus at temperature 0.8 with top-p, origin at
 * temperature 1.0, threshold 0.2 with blocks at temperature 0.7. Each layout
 * (pp x tp = 2 x 1, 1 x 2, 2 x 2) runs exactly what `mpirun ... diffu generate`
 * runs on each rank: rank 0 packs and broadcasts the JobPlan
 * (proto/diffu.proto), every rank joins (fingerprint, layout, handshake),
 * passes the memory check, loads its shard and starts its worker
 * (node/runtime.h diffu_runtime_start); rank 0 runs the engine over the
 * pipeline backend (node/pipeline.h), the others diffu_worker_loop; then
 * the statistics report (a gather) and the final barrier.
 *
 * Asserted, as the mpirun tests do (tests/dist/check_generate.sh):
 *   - pipeline-only layouts (tp 1): every request's canvas and commit steps
 *     are IDENTICAL to the reference's, sampled ones included (the forward is
 *     bit-identical and the draws have the same Philox addresses);
 *   - under tp the logits differ by the all-reduce's summation order (~1e-7),
 *     so only the greedy requests must be identical (sampled ones counted);
 *   - the same with the stages holding a KV cache (JobPlan.kv_cache), each
 *     request in blocks of 8 with a cache mode (prefix, dual, delayed with
 *     refresh 3), against the local backend's cache;
 *   - every rank's run returns and its worker ran as many microbatches as
 *     rank 0's; stage 0 sent exactly the computed rows' activations (rows x
 *     hidden floats: one row per token, protocol 4), every canvas token
 *     without a cache and fewer with one; no message is left unreceived
 *     (fake_world_free asserts it).
 * A deadlock fails the test (the fake's deadline, DIFFU_COMM_TIMEOUT,
 * default 120 s), it does not hang it. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "diffu.pb-c.h"
#include "engine.h"
#include "fake_comm.h"
#include "kvpolicy.h"
#include "mkmodel.h"
#include "tiny_model.h"
#include "pipeline.h"
#include "runtime.h"
#include "worker.h"

enum { NR = 5, VOCAB = 1000, MAXP = 12, MAXC = 64 };

typedef struct {
    diffu_denoise_params p;
    int32_t prompt[MAXP];
    int L;
    int greedy;
} spec;

typedef struct {
    int32_t canvas[MAXC];
    int32_t steps[MAXC];
    int len;
} result;

static spec SPECS[NR];
static char MODEL[256];
static int HIDDEN;

static void make_specs(int mask_id, int cached) {
    static const int lens[NR] = {7, 3, 11, 5, 9};
    for (int i = 0; i < NR; i++) {
        diffu_denoise_params *p = &SPECS[i].p;
        diffu_denoise_params_default(p);
        p->mask_id = mask_id;
        p->max_new_tokens = 24;
        p->steps = 24;
        SPECS[i].L = lens[i];
        for (int k = 0; k < lens[i]; k++) SPECS[i].prompt[k] = (int32_t)((53 * i + 17 * k + 5) % (VOCAB - 8));
    }
    SPECS[0].greedy = 1; /* entropy, greedy */
    SPECS[1].greedy = 1; /* topk_margin, greedy, half the steps */
    SPECS[1].p.alg = DIFFU_ALG_TOPK_MARGIN, SPECS[1].p.steps = 12;
    SPECS[2].p.alg = DIFFU_ALG_MASKGIT_PLUS, SPECS[2].p.temperature = 0.8, SPECS[2].p.top_p = 0.9, SPECS[2].p.seed = 3;
    SPECS[3].p.alg = DIFFU_ALG_ORIGIN, SPECS[3].p.temperature = 1.0, SPECS[3].p.seed = 5;
    SPECS[4].p.threshold = 0.2, SPECS[4].p.block_length = 8, SPECS[4].p.temperature = 0.7, SPECS[4].p.seed = 11;
    if (!cached) return;
    static const int modes[NR] = {DIFFU_CACHE_DUAL, DIFFU_CACHE_PREFIX, DIFFU_CACHE_DELAYED, DIFFU_CACHE_DUAL,
                                  DIFFU_CACHE_PREFIX};
    SPECS[3].p.alg = DIFFU_ALG_ENTROPY; /* (origin commits at random: no blocks) */
    for (int i = 0; i < NR; i++) {
        SPECS[i].p.block_length = 8;
        SPECS[i].p.cache = modes[i];
        SPECS[i].p.cache_refresh = modes[i] == DIFFU_CACHE_DELAYED ? 3 : 0;
    }
}

static diffu_denoise *make(int i) {
    diffu_err err;
    diffu_denoise *d = diffu_denoise_create(&SPECS[i].p, VOCAB, SPECS[i].prompt, SPECS[i].L, (uint32_t)i, 0, &err);
    if (!d) {
        fprintf(stderr, "request %d: %s\n", i, err.msg);
        exit(1);
    }
    return d;
}

static void save(diffu_denoise *d, result *r) {
    const int32_t *c = diffu_denoise_canvas(d, &r->len);
    memcpy(r->canvas, c, (size_t)r->len * sizeof *c);
    memcpy(r->steps, diffu_denoise_commit_steps(d), (size_t)diffu_denoise_get_params(d)->max_new_tokens * 4);
}

static int same(const result *a, const result *b, int G) {
    return a->len == b->len && !memcmp(a->canvas, b->canvas, (size_t)a->len * 4) &&
           !memcmp(a->steps, b->steps, (size_t)G * 4);
}

/* The plan of one run: every request at once, in M microbatches. */
typedef struct {
    int M, per, max_seq, max_new, active, kv;
} plan;

static plan plan_for(int M, int kv) {
    plan pl = {M, (NR + M - 1) / M, 0, 0, NR, kv};
    for (int i = 0; i < NR; i++) {
        int len = SPECS[i].L + SPECS[i].p.max_new_tokens;
        if (len > pl.max_seq) pl.max_seq = len;
        if (SPECS[i].p.max_new_tokens > pl.max_new) pl.max_new = SPECS[i].p.max_new_tokens;
    }
    return pl;
}

static diffu_sched_opts sched_of(const plan *pl, int spread) {
    return (diffu_sched_opts){.microbatches = pl->M, .max_active = pl->active, .spread = spread,
                              .mb_max_seqs = pl->per, .mb_max_tokens = pl->per * pl->max_seq,
                              .mb_max_rows = pl->per * pl->max_new, .max_seq = pl->max_seq};
}

/* ---------------------------------------------------------------- the reference: one process */

static void run_local(int kv, result *res) {
    plan pl = plan_for(1, kv);
    diffu_model_opts mo;
    diffu_model_opts_default(&mo);
    mo.max_tokens = pl.per * pl.max_seq;
    mo.max_seq = pl.max_seq;
    mo.max_rows = pl.per * pl.max_new;
    mo.max_seqs = pl.per;
    mo.threads = 1;
    mo.quiet = 1;
    diffu_model *m;
    diffu_err err;
    if (diffu_model_load(MODEL, &mo, &m, &err)) {
        fprintf(stderr, "load: %s\n", err.msg);
        exit(1);
    }
    diffu_engine_opts eo = {.sched = sched_of(&pl, 1), .model = m, .kv_cache = kv};
    diffu_denoise *ds[NR];
    for (int i = 0; i < NR; i++) ds[i] = make(i);
    diffu_engine *e = diffu_engine_create(&eo, ds, NR, &err);
    if (!e || diffu_engine_run(e, &err)) {
        fprintf(stderr, "local engine: %s\n", err.msg);
        exit(1);
    }
    for (int i = 0; i < NR; i++) {
        save(ds[i], &res[i]);
        diffu_denoise_free(&ds[i]);
    }
    diffu_engine_free(&e);
    diffu_model_free(m);
}

/* ---------------------------------------------------------------- one rank of the pipeline */

typedef struct {
    fake_world *w;
    int rank, pp, tp, kv;
    plan pl;
    /* out */
    int rc;
    char err[1100];
    result res[NR];     /* rank 0 */
    long microbatches;  /* this rank's worker */
    uint64_t act_bytes; /* this rank's sends */
    long computed, tokens; /* rank 0's engine: rows through the forward, canvas tokens of the steps */
} rank_ctx;

static void *rank_main(void *arg) {
    rank_ctx *x = arg;
    diffu_comm *c = fake_world_comm(x->w, x->rank);
    diffu_err err = {{0}};
    /* rank 0's JobPlan, broadcast as `diffu generate` does */
    uint8_t *buf = NULL;
    size_t len = 0;
    if (x->rank == 0) {
        Diffu__JobPlan jp = DIFFU__JOB_PLAN__INIT;
        jp.max_seq = (uint32_t)x->pl.max_seq;
        jp.mb_max_seqs = (uint32_t)x->pl.per;
        jp.mb_max_tokens = (uint32_t)(x->pl.per * x->pl.max_seq);
        jp.mb_max_rows = (uint32_t)(x->pl.per * x->pl.max_new);
        jp.max_active = (uint32_t)x->pl.active;
        jp.microbatches = (uint32_t)x->pl.M;
        jp.head_row_frac = 0.5;
        jp.vocab = VOCAB;
        jp.kv_cache = x->kv;
        len = diffu__job_plan__get_packed_size(&jp);
        buf = diffu_xmalloc(len + 1);
        diffu__job_plan__pack(&jp, buf);
    }
    diffu_comm_bcast_bytes(c, &buf, &len);
    Diffu__JobPlan *jp = diffu__job_plan__unpack(NULL, len, buf);
    free(buf);
    DIFFU_ASSERT(jp);
    diffu_runtime_start_opts so = {MODEL, x->pp, x->tp, x->pp, x->tp, 1, 0, 0};
    diffu_runtime_stages rt;
    if (diffu_runtime_start(c, jp, &so, &rt, &err)) {
        x->rc = -1;
        snprintf(x->err, sizeof x->err, "start: %s", err.msg);
        diffu__job_plan__free_unpacked(jp, NULL);
        diffu_comm_finalize(c);
        return NULL;
    }
    diffu_engine *e = NULL;
    diffu_pipeline *pl = NULL;
    diffu_denoise *ds[NR];
    if (x->rank == 0) {
        pl = diffu_pipeline_create(c, rt.l, rt.w, x->pl.M);
        diffu_engine_opts eo = {.sched = sched_of(&x->pl, x->pp > 1 ? 2 : 1), .wire = diffu_pipeline_backend(pl),
                                .kv_cache = x->kv};
        for (int i = 0; i < NR; i++) ds[i] = make(i);
        e = diffu_engine_create(&eo, ds, NR, &err);
        DIFFU_ASSERTF(e, "%s", err.msg);
        x->rc = diffu_engine_run(e, &err);
        if (x->rc) snprintf(x->err, sizeof x->err, "engine: %s", err.msg);
        for (int i = 0; i < NR; i++) {
            if (diffu_denoise_done(ds[i])) save(ds[i], &x->res[i]);
            else x->rc = -1, snprintf(x->err, sizeof x->err, "request %d did not finish", i);
        }
    } else {
        x->rc = diffu_worker_loop(rt.w);
        if (x->rc) snprintf(x->err, sizeof x->err, "worker loop: exit code %d", x->rc);
    }
    x->microbatches = diffu_worker_get_stats(rt.w)->microbatches;
    x->act_bytes = diffu_comm_get_stats(c)->act_bytes;
    diffu_runtime_run run = {0, 0, 0, 0, 0};
    if (e) {
        const diffu_engine_stats *es = diffu_engine_get_stats(e);
        run = (diffu_runtime_run){es->wall, es->coord, es->wait, es->sched.microbatches, es->sched.seq_steps};
        x->computed = es->computed;
        x->tokens = es->sched.tokens;
    }
    diffu_runtime_report(c, rt.l, rt.w, &run);
    diffu_engine_free(&e);
    if (x->rank == 0)
        for (int i = 0; i < NR; i++) diffu_denoise_free(&ds[i]);
    diffu_pipeline_free(&pl);
    diffu_runtime_stages_free(&rt);
    diffu__job_plan__free_unpacked(jp, NULL);
    diffu_comm_finalize(c);
    return NULL;
}

static void run_layout(int pp, int tp, int kv, const result *ref) {
    int n = pp * tp;
    fake_world *w = fake_world_create(n);
    rank_ctx *xs = diffu_xcalloc((size_t)n, sizeof *xs);
    pthread_t *th = diffu_xcalloc((size_t)n, sizeof *th);
    plan pl = plan_for(pp > 1 ? 2 * pp : 1, kv);
    for (int r = 0; r < n; r++) {
        xs[r] = (rank_ctx){.w = w, .rank = r, .pp = pp, .tp = tp, .kv = kv, .pl = pl};
        if (pthread_create(&th[r], NULL, rank_main, &xs[r])) {
            fprintf(stderr, "pthread_create failed\n");
            exit(1);
        }
    }
    for (int r = 0; r < n; r++) pthread_join(th[r], NULL);
    fake_world_free(w);
    const char *what = kv ? "kv cache" : "no cache";
    for (int r = 0; r < n; r++) CHECK(xs[r].rc == 0, "pp %d tp %d (%s) rank %d: %s", pp, tp, what, r, xs[r].err);
    if (xs[0].rc == 0) {
        int n_same = 0, greedy_same = 1;
        for (int i = 0; i < NR; i++) {
            int ok = same(&xs[0].res[i], &ref[i], SPECS[i].p.max_new_tokens);
            n_same += ok;
            if (tp == 1 || SPECS[i].greedy)
                CHECK(ok, "pp %d tp %d (%s): request %d (%s) differs from the single process", pp, tp, what, i,
                      SPECS[i].greedy ? "greedy" : "sampled");
            if (SPECS[i].greedy) greedy_same &= ok;
        }
        printf("pp %d x tp %d, %s: %d of %d requests identical to the single process (greedy %s)\n", pp, tp, what,
               n_same, NR, greedy_same ? "all" : "NOT all");
    }
    /* every rank ran every microbatch; activations crossed between stages */
    for (int r = 0; r < n; r++) CHECK(xs[r].microbatches > 0, "pp %d tp %d rank %d ran no microbatch", pp, tp, r);
    for (int r = 1; r < n; r++)
        CHECK(xs[r].microbatches == xs[0].microbatches, "pp %d tp %d: rank %d ran %ld microbatches, rank 0 %ld", pp,
              tp, r, xs[r].microbatches, xs[0].microbatches);
    /* only the computed rows travel, one row per token (protocol 4); with a cache fewer than the canvases */
    if (pp > 1)
        CHECK(xs[0].act_bytes == (uint64_t)xs[0].computed * (uint64_t)HIDDEN * 4,
              "pp %d tp %d (%s): stage 0 sent %llu bytes of activations for %ld computed rows of %d floats", pp, tp,
              what, (unsigned long long)xs[0].act_bytes, xs[0].computed, HIDDEN);
    if (kv) CHECK(xs[0].computed < xs[0].tokens, "pp %d tp %d: %ld rows computed of %ld tokens with a KV cache", pp,
                  tp, xs[0].computed, xs[0].tokens);
    else CHECK(xs[0].computed == xs[0].tokens, "pp %d tp %d: %ld rows computed of %ld tokens without a cache", pp, tp,
               xs[0].computed, xs[0].tokens);
    free(xs);
    free(th);
}

int main(void) {
    char dir[] = "/tmp/diffu-test-node-fake.XXXXXX";
    if (!mkdtemp(dir)) return 1;
    snprintf(MODEL, sizeof MODEL, "%s/m", dir);
    diffu_config cfg;
    if (tiny_model_write(MODEL, VOCAB, 7, &cfg)) return 1;
    HIDDEN = cfg.hidden;
    static const int layouts[][2] = {{2, 1}, {1, 2}, {2, 2}};
    for (int kv = 0; kv <= 1; kv++) {
        make_specs(cfg.mask_id, kv);
        result ref[NR];
        run_local(kv, ref);
        for (size_t k = 0; k < sizeof layouts / sizeof *layouts; k++) run_layout(layouts[k][0], layouts[k][1], kv, ref);
    }
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "cleanup of %s failed\n", dir);
    return check_report();
}
