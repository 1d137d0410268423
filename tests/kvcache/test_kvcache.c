/* test_kvcache.c — block decoding with each KV cache mode, in one process,
 * through the model-level API (model/kvcache.h) and the existing policy and
 * sampler (coordinator/denoise.h, sampler.h).
 *
 * usage: test_kvcache --model DIR --prompts "1,2,3;4,5" --gen G --block B
 *            (--steps S | --threshold TAU) [--alg entropy|maskgit_plus|topk_margin]
 *            --cache none|prefix|dual|delayed [--refresh N] [--stagger] [--timing] --out OUT.json
 * --timing skips the per-step comparisons (no re-runs) and prints the decode
 * loop's wall time, forwards and rows to stderr (indicative only: nothing is
 * asserted about speed).
 *
 * Every request of the list decodes in ONE ragged microbatch per step (with
 * --stagger request i is admitted at step i, so requests at a block start,
 * doing a full pass, share microbatches with requests computing a few rows).
 * Which rows a step computes per mode is coordinator/kvpolicy.h (the library's
 * rule; tests/ref/dream_cache_ref.py's, its header and docs/kvcache.md): none = all; prefix = [s-1, N) and dual =
 * [s-1, e) after the block's first forward (a full pass), a full pass also
 * every --refresh forwards inside a block when given; delayed = full pass
 * every --refresh forwards, else the rows dKV-Cache-Decode has not cached.
 *
 * Asserted here (printed "N passed, M failed", exit 1 on a failure):
 *   - at every full pass, the request's logits rows equal diffu_forward of its
 *     canvas alone (no cache) bit for bit (0 ulp);
 *   - batch invariance: after each step, every request run again alone
 *     through the cached forward gives bit-identical logits rows (on every
 *     other step on a second instance of the model with ONE thread instead of
 *     two, sharing the same cache: thread-count invariance too);
 *   - a two-stage pipeline (layers split in two shards, each with its own
 *     cache for its own layers; only the computed rows' activations go from
 *     one stage to the next) gives the single process's logits bit for bit,
 *     every step;
 *   - tensor parallelism 2 (two shards of the whole model, each with its own
 *     query/KV heads, FFN columns and vocabulary slice and its own cache of
 *     its own KV heads, run on two threads with an in-process all-reduce):
 *     its logits equal the single process's to 1e-4 (the partial sums of the
 *     row-parallel products are added in another order), every step;
 *   - the cache's allocation: bytes = 2 x slots x ctx x layers x kv heads x
 *     head_dim x 4 (+ 1 byte per position and per slot of bookkeeping), and a
 *     cache of >= 8 MiB raises the resident set by at least 90% of its storage
 *     (the plan is resident, fp32);
 *   - a slot of an exhausted cache is refused (-1), a row never computed is
 *     refused by the batch check with a message;
 *   - the plan estimate for DiffuCoder-7B (28 layers, 4 KV heads of 128), 32
 *     requests x 1024 positions, on every rank of pp 4 x tp 2 (7 layers, 2 KV
 *     heads): 2 x 32 x 1024 x 7 x 2 x 128 x 4 = 469,762,048 bytes (448 MiB)
 *     + 32,800 bytes of bookkeeping (docs/kvcache.md).
 * OUT.json {"seqs": [...], "forwards": [...], "rows": [...]} is compared with
 * the NumPy reference by check_kvcache.py (tokens equal at temperature 0). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "denoise.h"
#include "forward.h"
#include "kvcache.h"
#include "kvpolicy.h"
#include "mkmodel.h"
#include "sampler.h"

enum { NONE, PREFIX, DUAL, DELAYED };

/* ---- in-process tensor parallelism: two shards on two threads, an all-reduce by barrier */
typedef struct {
    pthread_barrier_t bar;
    float *buf[2];
} tp_group;
typedef struct {
    tp_group *g;
    int rank;
    diffu_model *m;
    diffu_kvcache *kv;
    const diffu_kv_batch *kb;
    float *logits;
    int rc;
} tp_rank;

static void tp_allreduce(float *buf, size_t n, void *user) {
    tp_rank *r = user;
    r->g->buf[r->rank] = buf;
    pthread_barrier_wait(&r->g->bar);
    if (r->rank == 0)
        for (size_t i = 0; i < n; i++) r->g->buf[0][i] = r->g->buf[1][i] = r->g->buf[0][i] + r->g->buf[1][i];
    pthread_barrier_wait(&r->g->bar);
}

static void *tp_run(void *arg) {
    tp_rank *r = arg;
    diffu_err e;
    r->rc = diffu_forward_kv(r->m, r->kv, r->kb, r->logits, &e);
    if (r->rc) fprintf(stderr, "tp rank %d: %s\n", r->rank, e.msg);
    return NULL;
}

typedef struct {
    diffu_denoise *d;
    int slot, L, N, admitted;
    int forwards, rows_total;
    diffu_kvpolicy *kp; /* the rows each forward computes (coordinator/kvpolicy.h) */
    /* this step */
    int n_rows, n_want, row0, want0, full;
    int32_t *rows, *tmp_canvas;
    int32_t *where; /* [N] index of a canvas row among the computed rows, -1 if not computed */
} req;

static long rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, res = 0;
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &pages, &res) != 2) res = -1;
    fclose(f);
    return res * sysconf(_SC_PAGESIZE);
}

static int parse_prompts(const char *s, int32_t **ids, int *lens, int max) {
    int n = 0, total = 0, cap = 4096;
    *ids = malloc(cap * sizeof **ids);
    while (*s && n < max) {
        lens[n] = 0;
        while (*s && *s != ';') {
            char *end;
            long v = strtol(s, &end, 10);
            if (end == s) return -1;
            (*ids)[total++] = (int32_t)v;
            lens[n]++;
            s = end;
            if (*s == ',') s++;
        }
        if (*s == ';') s++;
        n++;
    }
    return n;
}

/* Rows to compute for a request about to forward: the library's rule (coordinator/kvpolicy.h). */
static void choose_rows(req *r, int32_t mask_id) {
    int full;
    r->n_rows = diffu_kvpolicy_rows(r->kp, mask_id, diffu_denoise_positions(r->d), r->n_want, r->rows,
                                    &full);
    r->full = full;
    for (int p = 0; p < r->N; p++) r->where[p] = -1;
    for (int k = 0; k < r->n_rows; k++) r->where[r->rows[k]] = k;
}

int main(int argc, char **argv) {
    const char *model_dir = NULL, *prompts = NULL, *out = NULL, *mode_s = "none", *alg = "entropy";
    int G = 0, B = 0, steps = 0, refresh = 0, stagger = 0, timing = 0;
    double tau = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--stagger")) { stagger = 1; continue; }
        if (!strcmp(a, "--timing")) { timing = 1; continue; }
        if (!v) { fprintf(stderr, "%s needs a value\n", a); return 2; }
        i++;
        if (!strcmp(a, "--model")) model_dir = v;
        else if (!strcmp(a, "--prompts")) prompts = v;
        else if (!strcmp(a, "--out")) out = v;
        else if (!strcmp(a, "--cache")) mode_s = v;
        else if (!strcmp(a, "--alg")) alg = v;
        else if (!strcmp(a, "--gen")) G = atoi(v);
        else if (!strcmp(a, "--block")) B = atoi(v);
        else if (!strcmp(a, "--steps")) steps = atoi(v);
        else if (!strcmp(a, "--threshold")) tau = atof(v);
        else if (!strcmp(a, "--refresh")) refresh = atoi(v);
        else { fprintf(stderr, "unknown option %s\n", a); return 2; }
    }
    const char *modes[] = {"none", "prefix", "dual", "delayed"};
    int mode = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(mode_s, modes[i])) mode = i;
    if (!model_dir || !prompts || !out || mode < 0 || G < 1 || B < 1 || (mode == DELAYED && refresh < 1)) {
        fprintf(stderr, "bad arguments (see the header of test_kvcache.c)\n");
        return 2;
    }
    int lens[64];
    int32_t *ids;
    int n_req = parse_prompts(prompts, &ids, lens, 64);
    if (n_req < 1) { fprintf(stderr, "bad --prompts\n"); return 2; }

    /* plan: every request in flight at once */
    int max_n = 0, sum_n = 0;
    for (int i = 0; i < n_req; i++) {
        sum_n += lens[i] + G;
        if (lens[i] + G > max_n) max_n = lens[i] + G;
    }
    diffu_model_opts mo;
    diffu_model_opts_default(&mo);
    mo.max_tokens = sum_n;
    mo.max_seq = max_n;
    mo.max_rows = n_req * G;
    mo.max_seqs = n_req;
    mo.threads = 2;
    mo.quiet = 1;
    diffu_err err;
    diffu_model *m;
    if (diffu_model_load(model_dir, &mo, &m, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    diffu_model *m1; /* the same model on one thread */
    mo.threads = 1;
    if (diffu_model_load(model_dir, &mo, &m1, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    const diffu_config *cfg = diffu_model_config(m);
    const diffu_shard *sh = diffu_model_shard(m);
    /* a two-stage pipeline of the same model: stage 0 layers [0, h) + embedding, stage 1 [h, L) + head */
    diffu_model *st[2] = {NULL, NULL};
    int half = cfg->n_layers / 2;
    if (half >= 1) {
        mo.threads = 2;
        for (int k = 0; k < 2; k++) {
            mo.layer_begin = k ? half : 0;
            mo.layer_end = k ? cfg->n_layers : half;
            if (diffu_model_load(model_dir, &mo, &st[k], &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        }
        mo.layer_begin = mo.layer_end = 0;
    }
    diffu_model *tpm[2] = {NULL, NULL};
    tp_group tpg;
    tp_rank tpr[2];
    int tp_ok = cfg->n_kv_heads % 2 == 0;
    if (tp_ok) {
        pthread_barrier_init(&tpg.bar, NULL, 2);
        mo.threads = 1;
        mo.tp_size = 2;
        for (int k = 0; k < 2; k++) {
            mo.tp_rank = k;
            if (diffu_model_load(model_dir, &mo, &tpm[k], &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
            tpr[k] = (tp_rank){&tpg, k, tpm[k], NULL, NULL, NULL, 0};
            diffu_model_set_allreduce(tpm[k], tp_allreduce, &tpr[k]);
        }
        mo.tp_rank = 0;
        mo.tp_size = 1;
    }
    int V = cfg->vocab;

    /* ---- the cache's allocation, measured */
    {
        int slots = 8, ctx = max_n;
        size_t want = 2ull * slots * ctx * (sh->layer_end - sh->layer_begin) * (sh->kv_head_end - sh->kv_head_begin) *
                      cfg->head_dim * 4;
        while (want < (8u << 20)) { slots *= 2; want *= 2; }
        long r0 = rss_bytes();
        diffu_kvcache *big;
        CHECK(diffu_kvcache_create(m, slots, ctx, &big, &err) == 0, "%s", err.msg);
        long r1 = rss_bytes();
        CHECK(diffu_kvcache_bytes(big) == want + (size_t)slots * ctx + slots, "bytes %zu, formula %zu",
              diffu_kvcache_bytes(big), want + (size_t)slots * ctx + slots);
        CHECK(diffu_kvcache_plan_bytes(cfg, sh, slots, ctx) == diffu_kvcache_bytes(big), "plan estimate differs");
        CHECK(r1 - r0 >= (long)(want * 9 / 10), "resident set grew %ld bytes for %zu of storage", r1 - r0, want);
        fprintf(stderr, "kv cache of %d x %d positions: %zu bytes (%s), resident set +%ld bytes\n", slots, ctx,
                diffu_kvcache_bytes(big), diffu_kvcache_dtype_name(big), r1 - r0);
        diffu_kvcache_free(big);
        diffu_kvcache *bad;
        CHECK(diffu_kvcache_create(m, 1, mo.max_seq + 1, &bad, &err) == -1, "context above the plan accepted");
    }

    /* the docs' figure: DiffuCoder-7B, 32 requests x 1024 positions, per rank of pp 4 x tp 2 */
    {
        diffu_config c7;
        diffu_shard s7;
        CHECK(diffu_mkmodel_preset("7b", &c7, &err) == 0, "%s", err.msg);
        for (int st = 0; st < 4; st++)
            for (int t = 0; t < 2; t++) {
                CHECK(diffu_shard_init(&s7, &c7, st * 7, st * 7 + 7, t, 2, &err) == 0, "%s", err.msg);
                size_t b7 = diffu_kvcache_plan_bytes(&c7, &s7, 32, 1024);
                CHECK(b7 == 469762048u + 32u * 1024u + 32u, "7B pp4 x tp2 rank (%d,%d): %zu bytes", st, t, b7);
            }
    }

    diffu_kvcache *kv, *kvst[2] = {NULL, NULL};
    if (diffu_kvcache_create(m, n_req, max_n, &kv, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    for (int k = 0; k < 2 && st[k]; k++)
        if (diffu_kvcache_create(st[k], n_req, max_n, &kvst[k], &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
    for (int k = 0; k < 2 && tpm[k]; k++) {
        if (diffu_kvcache_create(tpm[k], n_req, max_n, &tpr[k].kv, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
        tpr[k].logits = malloc((size_t)diffu_model_logit_rows(tpm[k]) * diffu_model_vocab_local(tpm[k]) * sizeof(float));
    }
    float *xs = st[0] ? malloc((size_t)diffu_model_act_rows(st[0]) * cfg->hidden * sizeof(float)) : NULL;

    diffu_denoise_params p;
    diffu_denoise_params_default(&p);
    p.max_new_tokens = G;
    p.steps = steps;
    p.threshold = tau;
    p.block_length = B;
    p.alg = diffu_denoise_alg_parse(alg);
    p.mask_id = cfg->mask_id;
    req *R = calloc(n_req, sizeof *R);
    for (int i = 0, off = 0; i < n_req; off += lens[i++]) {
        R[i].d = diffu_denoise_create(&p, V, ids + off, lens[i], (uint32_t)i, 0, &err);
        if (!R[i].d) { fprintf(stderr, "%s\n", err.msg); return 1; }
        R[i].L = lens[i];
        R[i].N = lens[i] + G;
        R[i].slot = diffu_kvcache_acquire(kv);
        CHECK(R[i].slot >= 0, "no slot for request %d", i);
        for (int k = 0; k < 2 && kvst[k]; k++) CHECK(diffu_kvcache_acquire(kvst[k]) == R[i].slot, "stage slot");
        for (int k = 0; k < 2 && tpm[k]; k++) CHECK(diffu_kvcache_acquire(tpr[k].kv) == R[i].slot, "tp slot");
        R[i].kp = diffu_kvpolicy_create(mode, refresh, B, R[i].L, R[i].N, &err);
        if (!R[i].kp) { fprintf(stderr, "%s\n", err.msg); return 2; }
        R[i].rows = malloc(R[i].N * sizeof(int32_t));
        R[i].where = malloc(R[i].N * sizeof(int32_t));
        R[i].tmp_canvas = malloc(R[i].N * sizeof(int32_t));
        if (mode != NONE && lens[i] < 1) { fprintf(stderr, "cache modes need a prompt\n"); return 2; }
    }
    CHECK(diffu_kvcache_acquire(kv) == -1, "a full cache handed out a slot");
    /* a context row never computed is refused */
    {
        int sl = R[0].slot, len = 1, ctx = R[0].N;
        int32_t tok = 0, pos = ctx - 1, row = 0;
        diffu_kv_batch kb = {{1, &len, &tok, &pos, 1, &row}, &sl, &ctx};
        CHECK(diffu_kv_batch_check(m, kv, &kb, &err) == -1 && strstr(err.msg, "never computed"),
              "a never computed context accepted (%s)", err.msg);
    }

    /* step buffers */
    int *seq_len = malloc(n_req * sizeof(int)), *slots = malloc(n_req * sizeof(int)), *ctx = malloc(n_req * sizeof(int));
    int32_t *tok = malloc(sum_n * sizeof(int32_t)), *pos = malloc(sum_n * sizeof(int32_t));
    int32_t *lrows = malloc(n_req * G * sizeof(int32_t));
    diffu_sample_job *jobs = malloc(n_req * G * sizeof *jobs);
    diffu_sample *smp = malloc(n_req * G * sizeof *smp);
    size_t lr = (size_t)diffu_model_logit_rows(m);
    float *logits = malloc(lr * V * sizeof(float)), *alone = malloc(lr * V * sizeof(float));
    float *ref = malloc(lr * V * sizeof(float));
    diffu_sampler *sampler = diffu_sampler_create(V, diffu_model_pool(m));
    int32_t *lrow1 = malloc(G * sizeof(int32_t));
    long n_full_checked = 0, n_inv_checked = 0;
    double tp_dmax = 0;
    double t_start = diffu_now();

    for (int step = 0;; step++) {
        int active = 0, n_seq = 0, n_tok = 0, n_lr = 0;
        int *idx = malloc(n_req * sizeof(int));
        for (int i = 0; i < n_req; i++) {
            req *r = &R[i];
            r->n_want = 0;
            if (diffu_denoise_done(r->d) || (stagger && i > step)) continue;
            active++;
            int n = diffu_denoise_prepare(r->d);
            r->n_want = n;
            if (!n) continue;
            const int32_t *canvas = diffu_denoise_canvas(r->d, NULL);
            choose_rows(r, p.mask_id);
            const int32_t *want = diffu_denoise_positions(r->d);
            const diffu_sample_job *jb = diffu_denoise_jobs(r->d);
            r->row0 = n_tok;
            r->want0 = n_lr;
            for (int k = 0; k < r->n_rows; k++) {
                tok[n_tok + k] = canvas[r->rows[k]];
                pos[n_tok + k] = r->rows[k];
            }
            for (int k = 0; k < n; k++) {
                int src = want[k] > 0 ? want[k] - 1 : 0; /* the logit shift */
                DIFFU_ASSERT(r->where[src] >= 0);
                lrows[n_lr + k] = n_tok + r->where[src];
                jobs[n_lr + k] = jb[k];
            }
            seq_len[n_seq] = r->n_rows;
            slots[n_seq] = r->slot;
            ctx[n_seq] = r->N;
            idx[n_seq++] = i;
            n_tok += r->n_rows;
            n_lr += n;
        }
        if (!active) { free(idx); break; }
        if (n_seq) {
            diffu_kv_batch kb = {{n_seq, seq_len, tok, pos, n_lr, lrows}, slots, ctx};
            if (diffu_forward_kv(m, kv, &kb, logits, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
            diffu_sampler_run(sampler, n_lr, logits, (size_t)V, jobs, smp);
            if (st[0] && !timing) { /* the same microbatch through the two-stage pipeline */
                CHECK(diffu_kv_batch_check(st[0], kvst[0], &kb, &err) == 0, "%s", err.msg);
                CHECK(diffu_kv_batch_check(st[1], kvst[1], &kb, &err) == 0, "%s", err.msg);
                diffu_forward_embed(st[0], &kb.b, xs);
                diffu_forward_layers_kv(st[0], kvst[0], &kb, xs);
                diffu_forward_layers_kv(st[1], kvst[1], &kb, xs); /* the rows' activations, nothing else */
                diffu_forward_head(st[1], &kb.b, xs, ref);
                CHECK(!memcmp(ref, logits, (size_t)n_lr * V * sizeof(float)),
                      "step %d: the two-stage pipeline's logits differ from the single process's", step);
            }
            if (tp_ok && !timing) { /* the same microbatch on two tensor-parallel ranks */
                pthread_t th[2];
                for (int k = 0; k < 2; k++) {
                    tpr[k].kb = &kb;
                    pthread_create(&th[k], NULL, tp_run, &tpr[k]);
                }
                for (int k = 0; k < 2; k++) pthread_join(th[k], NULL);
                CHECK(!tpr[0].rc && !tpr[1].rc, "step %d: tensor-parallel forward failed", step);
                double dmax = 0;
                for (int k = 0; k < 2; k++) {
                    const diffu_shard *ts = diffu_model_shard(tpm[k]);
                    int vl = diffu_model_vocab_local(tpm[k]);
                    for (int r = 0; r < n_lr; r++)
                        for (int v = 0; v < vl; v++) {
                            double d = fabs((double)tpr[k].logits[(size_t)r * vl + v] -
                                            (double)logits[(size_t)r * V + ts->vocab_begin + v]);
                            if (d > dmax) dmax = d;
                        }
                }
                CHECK(dmax <= 1e-4, "step %d: tensor-parallel logits differ by %g", step, dmax);
                if (dmax > tp_dmax) tp_dmax = dmax;
            }
            for (int q = 0; q < n_seq && !timing; q++) {
                req *r = &R[idx[q]];
                int n = r->n_want;
                /* the same request alone through the cached forward: same bits */
                for (int k = 0; k < n; k++) lrow1[k] = lrows[r->want0 + k] - r->row0;
                diffu_kv_batch k1 = {{1, &r->n_rows, tok + r->row0, pos + r->row0, n, lrow1}, &r->slot, &r->N};
                if (diffu_forward_kv(step % 2 ? m1 : m, kv, &k1, alone, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
                CHECK(!memcmp(alone, logits + (size_t)r->want0 * V, (size_t)n * V * sizeof(float)),
                      "step %d request %d: logits alone (%d threads) differ from the microbatch's", step, idx[q],
                      step % 2 ? 1 : 2);
                n_inv_checked++;
                if (r->full) { /* a full pass equals the no-cache forward */
                    diffu_batch b1 = {1, &r->N, diffu_denoise_canvas(r->d, NULL), NULL, n, lrow1};
                    if (diffu_forward(m, &b1, ref, &err)) { fprintf(stderr, "%s\n", err.msg); return 1; }
                    CHECK(!memcmp(ref, logits + (size_t)r->want0 * V, (size_t)n * V * sizeof(float)),
                          "step %d request %d: full-pass logits differ from the no-cache forward", step, idx[q]);
                    n_full_checked++;
                }
            }
        }
        for (int i = 0; i < n_req; i++) {
            req *r = &R[i];
            if (diffu_denoise_done(r->d) || (stagger && i > step)) continue;
            int q = -1;
            for (int k = 0; k < n_seq; k++)
                if (idx[k] == i) q = k;
            if (q >= 0) {
                memcpy(r->tmp_canvas, diffu_denoise_canvas(r->d, NULL), r->N * sizeof(int32_t));
                diffu_denoise_commit(r->d, smp + r->want0);
                diffu_kvpolicy_done(r->kp, r->tmp_canvas);
                r->forwards++;
                r->rows_total += r->n_rows;
                CHECK(diffu_kvpolicy_forwards(r->kp) == r->forwards && diffu_kvpolicy_rows_total(r->kp) == r->rows_total,
                      "request %d: the policy counts %d forwards / %ld rows", i, diffu_kvpolicy_forwards(r->kp),
                      diffu_kvpolicy_rows_total(r->kp));
            } else {
                diffu_denoise_commit(r->d, NULL);
            }
        }
        free(idx);
    }
    if (timing) {
        long fw = 0, rows = 0;
        for (int i = 0; i < n_req; i++) fw += R[i].forwards, rows += R[i].rows_total;
        fprintf(stderr, "timing %s refresh %d: %.3f s, %ld forwards, %ld rows computed, %d x %d new tokens\n", mode_s,
                refresh, diffu_now() - t_start, fw, rows, n_req, G);
    } else {
        CHECK(n_full_checked >= n_req, "only %ld full passes checked", n_full_checked);
    }
    fprintf(stderr, "%s: %ld full passes equal to the no-cache forward, %ld alone-vs-microbatch comparisons%s; "
            "tensor parallel 2: max |logit difference| %.3g%s\n", mode_s, n_full_checked, n_inv_checked,
            st[0] ? ", two-stage pipeline bit-identical" : "", tp_dmax, tp_ok ? "" : " (skipped: odd KV heads)");

    FILE *f = fopen(out, "w");
    if (!f) { perror(out); return 1; }
    fprintf(f, "{\"seqs\": [");
    for (int i = 0; i < n_req; i++) {
        const int32_t *c = diffu_denoise_canvas(R[i].d, NULL);
        fprintf(f, "%s[", i ? ", " : "");
        for (int j = 0; j < R[i].N; j++) fprintf(f, "%s%d", j ? ", " : "", c[j]);
        fprintf(f, "]");
    }
    fprintf(f, "], \"forwards\": [");
    for (int i = 0; i < n_req; i++) fprintf(f, "%s%d", i ? ", " : "", R[i].forwards);
    fprintf(f, "], \"rows\": [");
    for (int i = 0; i < n_req; i++) fprintf(f, "%s%d", i ? ", " : "", R[i].rows_total);
    fprintf(f, "]}\n");
    fclose(f);

    for (int i = 0; i < n_req; i++) {
        diffu_kvcache_release(kv, R[i].slot);
        diffu_denoise_free(&R[i].d);
        free(R[i].rows);
        free(R[i].where);
        diffu_kvpolicy_free(&R[i].kp);
        free(R[i].tmp_canvas);
    }
    free(R);
    free(seq_len); free(slots); free(ctx); free(tok); free(pos); free(lrows); free(jobs); free(smp);
    free(logits); free(alone); free(ref); free(lrow1); free(ids);
    diffu_sampler_free(&sampler);
    diffu_kvcache_free(kv);
    diffu_model_free(m);
    diffu_model_free(m1);
    for (int k = 0; k < 2; k++) {
        diffu_kvcache_free(kvst[k]);
        diffu_model_free(st[k]);
    }
    free(xs);
    for (int k = 0; k < 2 && tpm[k]; k++) {
        diffu_kvcache_free(tpr[k].kv);
        free(tpr[k].logits);
        diffu_model_free(tpm[k]);
    }
    if (tp_ok) pthread_barrier_destroy(&tpg.bar);
    return check_report();
}
