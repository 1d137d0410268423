/* test_policy.c — the denoising policy (coordinator/denoise.h) driven by a
 * fake sampler (no model): (token, confidence) per position are chosen here,
 * so every decision has a closed form.
 *
 *  - Dream's schedule: 256 tokens / 256 steps commit 0, then 1 per step, then
 *    2 at the last step; no forward is asked for at the step that commits 0.
 *  - Top-n order and ties (lower position first); left-to-right decoding has
 *    AR-ness 1; right-to-left has local 0 and global@k = k/G (one per step)
 *    or the closed form of Dream's 0,1,..,1,2 schedule.
 *  - AR-ness of hand-built orders against values worked out by hand.
 *  - alg_temp: positions drawn without replacement from softmax(conf /
 *    alg_temp): chi-square at alpha = 1e-4 for n = 1 (5 cells) and n = 2 (the
 *    10 unordered pairs, Plackett-Luce probabilities), 40000 canvases each
 *    (fixed seeds); power: the same counts reject top-n, uniform choice and
 *    pairs drawn with replacement.
 *  - origin: the step-0 commit frequency is 1 - t1/t0 (z-test, |z| < 5), only
 *    the drawn positions ask for logits, and the uniforms exposed for the
 *    reference are the ones that decide.
 *  - threshold tau and the factor rule; blocks (LLaDA counts, block-local
 *    eligibility); early stop (fill, and waiting for the left side); a
 *    committed <|mask|> leaves its position masked; threshold bans <|mask|>.
 *  - parameter errors are one-line user errors. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "denoise.h"

enum { VOCAB = 1000, MASK = 999, END = 998 };

typedef double (*conf_fn)(int j, int step, void *u);
typedef int32_t (*tok_fn)(int j, int step, void *u);

static int32_t tok_default(int j, int step, void *u) { return 100 + j; }
static double conf_l2r(int j, int step, void *u) { return -j; }
static double conf_r2l(int j, int step, void *u) { return j; }
static double conf_flat(int j, int step, void *u) { return 0.5; }
static double conf_table(int j, int step, void *u) { return ((const double *)u)[j]; }

/* Run a canvas to the end with the fake sampler; returns the forwards used. */
static int run(diffu_denoise *d, conf_fn cf, tok_fn tf, void *u) {
    diffu_sample smp[4096];
    int L = diffu_denoise_prompt_len(d);
    while (!diffu_denoise_done(d)) {
        int n = diffu_denoise_prepare(d);
        const int32_t *pos = diffu_denoise_positions(d);
        int step = diffu_denoise_steps_taken(d);
        for (int i = 0; i < n; i++) {
            smp[i].token = tf(pos[i] - L, step, u);
            smp[i].conf = cf(pos[i] - L, step, u);
        }
        diffu_denoise_commit(d, n ? smp : NULL);
    }
    return diffu_denoise_forwards(d);
}

static diffu_denoise_params params(int G, int steps, diffu_alg alg) {
    diffu_denoise_params p;
    diffu_denoise_params_default(&p);
    p.max_new_tokens = G;
    p.steps = steps;
    p.alg = alg;
    p.mask_id = MASK;
    return p;
}

static diffu_denoise *make(const diffu_denoise_params *p, uint32_t req) {
    static const int32_t prompt[3] = {5, 6, 7};
    diffu_err err;
    diffu_denoise *d = diffu_denoise_create(p, VOCAB, prompt, 3, req, 0, &err);
    if (!d) fprintf(stderr, "create: %s\n", err.msg);
    return d;
}

static int close_to(double a, double b) { return fabs(a - b) < 1e-12; }

static void test_dream_schedule(void) {
    diffu_denoise_params p = params(256, 256, DIFFU_ALG_ENTROPY);
    diffu_denoise *d = make(&p, 0);
    int fw = run(d, conf_l2r, tok_default, NULL);
    const int32_t *cs = diffu_denoise_commit_steps(d);
    int per_step[256] = {0};
    for (int j = 0; j < 256; j++) per_step[cs[j]]++;
    int ok = per_step[0] == 0 && per_step[255] == 2;
    for (int s = 1; s < 255; s++) ok &= per_step[s] == 1;
    CHECK(ok, "256/256 schedule: step0 %d step1 %d step254 %d step255 %d", per_step[0], per_step[1], per_step[254],
          per_step[255]);
    CHECK(fw == 255, "forwards %d (step 0 commits nothing and needs none)", fw);
    diffu_arness a;
    diffu_denoise_arness(d, &a);
    CHECK(a.n == 256 && a.local[0] == 1 && a.local[3] == 1 && a.global[0] == 1 && a.global[3] == 1,
          "left-to-right AR-ness: n %d local %g..%g global %g..%g", a.n, a.local[0], a.local[3], a.global[0], a.global[3]);
    int len;
    const int32_t *c = diffu_denoise_canvas(d, &len);
    CHECK(len == 259 && c[0] == 5 && c[3] == 100 && c[258] == 355, "canvas");
    diffu_denoise_free(&d);

    /* right to left with Dream's schedule: commits 255, 254, ..., 2, then {0, 1} together */
    d = make(&p, 0);
    run(d, conf_r2l, tok_default, NULL);
    diffu_denoise_arness(d, &a);
    double G = 256;
    CHECK(close_to(a.local[0], 1 / G) && a.local[1] == 0 && a.global[0] == 2 / G && a.global[1] == 2 / G &&
              close_to(a.global[2], 3 / G) && close_to(a.global[3], 4 / G),
          "R2L Dream: local %g %g global %g %g %g %g", a.local[0], a.local[1], a.global[0], a.global[1], a.global[2],
          a.global[3]);
    diffu_denoise_free(&d);

    /* all equal confidences: ties go to the lower position -> left to right */
    d = make(&p, 0);
    run(d, conf_flat, tok_default, NULL);
    diffu_denoise_arness(d, &a);
    CHECK(a.local[3] == 1 && a.global[0] == 1, "ties: local@4 %g global@1 %g", a.local[3], a.global[0]);
    diffu_denoise_free(&d);

    /* one block, steps = G: exactly one per step (top-1); right to left */
    p = params(64, 64, DIFFU_ALG_MASKGIT_PLUS);
    p.block_length = 64;
    d = make(&p, 0);
    fw = run(d, conf_r2l, tok_default, NULL);
    diffu_denoise_arness(d, &a);
    CHECK(fw == 64 && a.local[0] == 0 && close_to(a.global[0], 1 / 64.0) && close_to(a.global[1], 2 / 64.0) &&
              close_to(a.global[3], 4 / 64.0),
          "R2L top-1: fw %d local %g global %g %g %g", fw, a.local[0], a.global[0], a.global[1], a.global[3]);
    diffu_denoise_free(&d);
}

static void test_arness_orders(void) {
    diffu_arness a;
    int32_t o1[6] = {1, 0, 3, 2, 5, 4};
    diffu_arness_compute(6, o1, 6, NULL, &a);
    CHECK(a.local[0] == 0 && a.local[3] == 0 && a.global[0] == 0.5 && a.global[1] == 1 && a.global[3] == 1,
          "pairs swapped: local %g global %g %g", a.local[0], a.global[0], a.global[1]);
    int32_t o2[6] = {0, 1, 2, 5, 4, 3};
    diffu_arness_compute(6, o2, 6, NULL, &a);
    CHECK(a.local[0] == 0.5 && a.local[3] == 0.5 && close_to(a.global[0], 4 / 6.0) && close_to(a.global[1], 5 / 6.0) &&
              a.global[2] == 1 && a.global[3] == 1,
          "tail reversed: local %g %g global %g %g %g", a.local[0], a.local[3], a.global[0], a.global[1], a.global[2]);
    int32_t o3[6] = {0, 2, 3, 4, 1, 5};
    diffu_arness_compute(6, o3, 6, NULL, &a);
    CHECK(a.local[0] == 0.5 && close_to(a.local[1], 2 / 6.0) && close_to(a.local[2], 1 / 6.0) &&
              close_to(a.local[3], 1 / 6.0) && a.global[0] == 0.5 && a.global[1] == 1,
          "run of 3 after a gap: local %g %g %g %g global %g %g", a.local[0], a.local[1], a.local[2], a.local[3],
          a.global[0], a.global[1]);
    int32_t o4[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    diffu_arness_compute(8, o4, 8, NULL, &a);
    CHECK(a.local[3] == 1 && a.global[0] == 1, "AR order");
    /* an order that commits only part of the canvas (early stop): T = 3 */
    int32_t o5[3] = {0, 1, 2};
    diffu_arness_compute(8, o5, 3, NULL, &a);
    CHECK(a.n == 3 && a.local[3] == 1 && a.global[0] == 1, "partial order");
}

/* ---- alg_temp statistics ---- */

static double chi2_crit(int dof, double z) {
    double k = dof, c = 2.0 / (9.0 * k), t = 1 - c + z * sqrt(c);
    return k * t * t * t;
}
#define Z_1E4 3.719016485

static double chi2(const long *obs, const double *p, int cells, long N) {
    double s = 0;
    for (int i = 0; i < cells; i++) {
        double e = p[i] * N;
        s += e > 0 ? (obs[i] - e) * (obs[i] - e) / e : (obs[i] ? INFINITY : 0);
    }
    return s;
}

static void test_alg_temp(void) {
    const long N = 40000;
    double conf[5] = {0.1, 0.5, 0.9, 0.3, 0.7};
    double at = 0.25, w[5], Z = 0;
    for (int i = 0; i < 5; i++) Z += (w[i] = exp(conf[i] / at));
    for (int i = 0; i < 5; i++) w[i] /= Z;
    /* n = 1: G = 5, one block of 5, 5 steps -> 1 per step; look at step 0 */
    long cnt[5] = {0};
    for (long t = 0; t < N; t++) {
        diffu_denoise_params p = params(5, 5, DIFFU_ALG_MASKGIT_PLUS);
        p.block_length = 5;
        p.alg_temp = at;
        p.seed = 1000 + (uint64_t)t;
        diffu_denoise *d = make(&p, 0);
        run(d, conf_table, tok_default, conf);
        const int32_t *cs = diffu_denoise_commit_steps(d);
        for (int j = 0; j < 5; j++)
            if (cs[j] == 0) cnt[j]++;
        diffu_denoise_free(&d);
    }
    double s = chi2(cnt, w, 5, N), crit = chi2_crit(4, Z_1E4);
    printf("alg_temp n=1: chi2 %.2f (critical %.2f)\n", s, crit);
    CHECK(s < crit, "alg_temp n=1: chi2 %.2f >= %.2f", s, crit);
    double unif[5] = {0.2, 0.2, 0.2, 0.2, 0.2}, top1[5] = {0, 0, 1, 0, 0};
    CHECK(chi2(cnt, unif, 5, N) >= crit && chi2(cnt, top1, 5, N) >= crit, "power n=1: uniform / top-1 not rejected");

    /* n = 2: G = 4, one block of 4 in 2 steps -> 2 per step; the pair at step 0 */
    double c4[4] = {0.1, 0.5, 0.9, 0.3}, w4[4];
    Z = 0;
    for (int i = 0; i < 4; i++) Z += (w4[i] = exp(c4[i] / at));
    for (int i = 0; i < 4; i++) w4[i] /= Z;
    long pc[16] = {0};
    for (long t = 0; t < N; t++) {
        diffu_denoise_params p = params(4, 2, DIFFU_ALG_TOPK_MARGIN);
        p.block_length = 4;
        p.alg_temp = at;
        p.seed = 77;
        diffu_denoise *d = make(&p, (uint32_t)t); /* vary the request id instead of the seed */
        run(d, conf_table, tok_default, c4);
        const int32_t *cs = diffu_denoise_commit_steps(d);
        int a = -1, b = -1;
        for (int j = 0; j < 4; j++)
            if (cs[j] == 0) {
                if (a < 0) a = j;
                else b = j;
            }
        CHECK(a >= 0 && b >= 0, "two positions at step 0");
        if (a >= 0 && b >= 0) pc[a * 4 + b]++;
        diffu_denoise_free(&d);
    }
    long obs[6];
    double pl[6], wr[6], tn[6];
    int k = 0;
    double sq = 0;
    for (int i = 0; i < 4; i++) sq += w4[i] * w4[i];
    for (int i = 0; i < 4; i++)
        for (int j = i + 1; j < 4; j++, k++) {
            obs[k] = pc[i * 4 + j];
            pl[k] = w4[i] * w4[j] / (1 - w4[i]) + w4[j] * w4[i] / (1 - w4[j]); /* Plackett-Luce */
            wr[k] = 2 * w4[i] * w4[j] / (1 - sq);                            /* with replacement, given distinct */
            tn[k] = (i == 1 && j == 2) ? 1 : 0;                               /* top-2 */
        }
    s = chi2(obs, pl, 6, N);
    crit = chi2_crit(5, Z_1E4);
    printf("alg_temp n=2: chi2 %.2f (critical %.2f); with-replacement chi2 %.1f\n", s, crit, chi2(obs, wr, 6, N));
    CHECK(s < crit, "alg_temp n=2: chi2 %.2f >= %.2f", s, crit);
    CHECK(chi2(obs, wr, 6, N) >= crit && chi2(obs, tn, 6, N) >= crit, "power n=2: wrong samplers not rejected");
}

static void test_origin(void) {
    const int G = 64, T = 2000;
    long hits = 0, asked = 0;
    int consistent = 1;
    for (int t = 0; t < T; t++) {
        diffu_denoise_params p = params(G, 4, DIFFU_ALG_ORIGIN);
        p.seed = (uint64_t)t * 7919;
        diffu_denoise *d = make(&p, 0);
        float u[64];
        int nu = diffu_denoise_origin_uniforms(d, u);
        int n = diffu_denoise_prepare(d);
        const int32_t *pos = diffu_denoise_positions(d);
        /* ts[1] = 1 + (eps - 1) / 4 in float32; p = 1 - ts1 */
        float step = (0.001f - 1.0f) / 4.0f;
        volatile float prod = step * 1.0f;
        float ts1 = 1.0f + prod, pt = 1.0f - ts1 / 1.0f;
        int k = 0;
        for (int j = 0; j < nu; j++)
            if (u[j] < pt) consistent &= k < n && pos[k++] == 3 + j;
        consistent &= k == n && nu == G;
        diffu_sample smp[64];
        for (int i = 0; i < n; i++) smp[i].token = 1, smp[i].conf = 0;
        diffu_denoise_commit(d, n ? smp : NULL);
        hits += G - diffu_denoise_masked(d);
        asked += n;
        run(d, conf_flat, tok_default, NULL);
        CHECK(diffu_denoise_masked(d) == 0, "origin: all committed by the last step");
        diffu_denoise_free(&d);
    }
    double pr = 1.0 - (1.0 + (0.001 - 1.0) / 4.0), n = (double)G * T;
    double z = (hits - n * pr) / sqrt(n * pr * (1 - pr));
    printf("origin step 0: %.5f committed, expected %.5f (z = %.2f)\n", hits / n, pr, z);
    CHECK(fabs(z) < 5, "origin commit rate z = %.2f", z);
    CHECK(asked == hits, "origin asked for %ld rows, committed %ld", asked, hits);
    CHECK(consistent, "origin uniforms do not match the decisions");
}

static void test_threshold_factor_blocks(void) {
    double c[4] = {0.95, 0.5, 0.92, 0.3};
    diffu_denoise_params p = params(4, 0, DIFFU_ALG_ENTROPY);
    p.threshold = 0.9;
    diffu_denoise *d = make(&p, 0);
    diffu_denoise_prepare(d);
    const diffu_sample_job *jb = diffu_denoise_jobs(d);
    CHECK(jb[0].params->conf == DIFFU_CONF_PROB && jb[0].params->ban_token == MASK, "threshold: prob conf, mask banned");
    diffu_sample smp[4];
    for (int i = 0; i < 4; i++) smp[i].token = 10 + i, smp[i].conf = c[i];
    diffu_denoise_commit(d, smp);
    run(d, conf_table, tok_default, c);
    const int32_t *cs = diffu_denoise_commit_steps(d);
    CHECK(cs[0] == 0 && cs[2] == 0 && cs[1] == 1 && cs[3] == 2 && diffu_denoise_steps_taken(d) == 3,
          "threshold 0.9: steps %d %d %d %d", cs[0], cs[1], cs[2], cs[3]);
    CHECK(diffu_denoise_forwards(d) == 3, "threshold forwards %d", diffu_denoise_forwards(d));
    diffu_denoise_free(&d);

    double f[4] = {0.99, 0.9, 0.8, 0.5}; /* factor 1: rank 2 needs 0.667, rank 3 0.75, rank 4 0.8 */
    p = params(4, 0, DIFFU_ALG_MASKGIT_PLUS);
    p.factor = 1.0;
    d = make(&p, 0);
    run(d, conf_table, tok_default, f);
    cs = diffu_denoise_commit_steps(d);
    CHECK(cs[0] == 0 && cs[1] == 0 && cs[2] == 0 && cs[3] == 1, "factor: %d %d %d %d", cs[0], cs[1], cs[2], cs[3]);
    diffu_denoise_free(&d);

    /* blocks: 8 tokens, blocks of 4, 4 steps -> 2 per step, right to left inside each block */
    p = params(8, 4, DIFFU_ALG_MASKGIT_PLUS);
    p.block_length = 4;
    d = make(&p, 0);
    run(d, conf_r2l, tok_default, NULL);
    cs = diffu_denoise_commit_steps(d);
    int want[8] = {1, 1, 0, 0, 3, 3, 2, 2}, ok = 1;
    for (int j = 0; j < 8; j++) ok &= cs[j] == want[j];
    CHECK(ok, "blocks: %d %d %d %d %d %d %d %d", cs[0], cs[1], cs[2], cs[3], cs[4], cs[5], cs[6], cs[7]);
    diffu_denoise_free(&d);
    /* LLaDA counts: 10 tokens in one block with 4 steps -> 3, 3, 2, 2 */
    p = params(10, 4, DIFFU_ALG_ENTROPY);
    p.block_length = 10;
    d = make(&p, 0);
    run(d, conf_l2r, tok_default, NULL);
    cs = diffu_denoise_commit_steps(d);
    int per[4] = {0};
    for (int j = 0; j < 10; j++) per[cs[j]]++;
    CHECK(per[0] == 3 && per[1] == 3 && per[2] == 2 && per[3] == 2, "LLaDA counts %d %d %d %d", per[0], per[1], per[2],
          per[3]);
    diffu_denoise_free(&d);
    /* threshold with blocks: everything passes -> one step per block */
    p = params(8, 0, DIFFU_ALG_ENTROPY);
    p.threshold = 0.4;
    p.block_length = 4;
    d = make(&p, 0);
    int fw = run(d, conf_flat, tok_default, NULL);
    cs = diffu_denoise_commit_steps(d);
    CHECK(fw == 2 && cs[3] == 0 && cs[4] == 1, "threshold blocks: forwards %d", fw);
    diffu_denoise_free(&d);
}

static int32_t tok_end4(int j, int step, void *u) { return j == 4 ? END : 100 + j; }
static double conf_end_first(int j, int step, void *u) { return j == 4 ? 10 : -j; }
static int32_t tok_mask2(int j, int step, void *u) { return j == 2 ? MASK : 100 + j; }

static void test_early_stop_and_mask(void) {
    diffu_denoise_params p = params(10, 10, DIFFU_ALG_ENTROPY);
    p.block_length = 10;
    p.early_stop = 1;
    p.n_end = 1;
    p.end_ids[0] = END;
    diffu_denoise *d = make(&p, 0);
    run(d, conf_l2r, tok_end4, NULL);
    const int32_t *cs = diffu_denoise_commit_steps(d);
    int len;
    const int32_t *cv = diffu_denoise_canvas(d, &len);
    int ok = diffu_denoise_stopped_early(d) && diffu_denoise_steps_taken(d) == 5;
    for (int j = 5; j < 10; j++) ok &= cs[j] == DIFFU_STEP_FILLED && cv[3 + j] == END;
    CHECK(ok, "early stop L2R: steps %d", diffu_denoise_steps_taken(d));
    CHECK(diffu_denoise_answer_len(d) == 5, "answer length %d", diffu_denoise_answer_len(d));
    diffu_arness a;
    diffu_denoise_arness(d, &a);
    CHECK(a.n == 5 && a.local[0] == 1, "AR-ness counts decoder commits only: n %d", a.n);
    diffu_denoise_free(&d);
    /* the end token first: wait until positions 0..3 are filled */
    d = make(&p, 0);
    run(d, conf_end_first, tok_end4, NULL);
    cs = diffu_denoise_commit_steps(d);
    CHECK(diffu_denoise_stopped_early(d) && diffu_denoise_steps_taken(d) == 5 && cs[4] == 0 && cs[3] == 4 &&
              cs[5] == DIFFU_STEP_FILLED,
          "early stop waits: steps %d", diffu_denoise_steps_taken(d));
    diffu_denoise_free(&d);
    /* off: runs to the end */
    p.early_stop = 0;
    d = make(&p, 0);
    run(d, conf_l2r, tok_end4, NULL);
    CHECK(!diffu_denoise_stopped_early(d) && diffu_denoise_steps_taken(d) == 10, "no early stop");
    diffu_denoise_free(&d);
    /* a committed <|mask|> leaves the position masked (Dream) */
    p = params(6, 6, DIFFU_ALG_ENTROPY);
    d = make(&p, 0);
    run(d, conf_l2r, tok_mask2, NULL);
    cs = diffu_denoise_commit_steps(d);
    cv = diffu_denoise_canvas(d, &len);
    CHECK(diffu_denoise_done(d) && diffu_denoise_masked(d) == 1 && cs[2] == DIFFU_STEP_MASKED && cv[5] == MASK,
          "mask commit: masked %d", diffu_denoise_masked(d));
    diffu_denoise_free(&d);
}

static void test_param_errors(void) {
#define CASE(w, body)                                            \
    do {                                                         \
        diffu_denoise_params p = params(16, 16, DIFFU_ALG_ENTROPY); \
        body;                                                    \
        diffu_err err;                                           \
        err.msg[0] = 0;                                          \
        int rc = diffu_denoise_params_check(&p, VOCAB, &err);    \
        CHECK(rc == -1 && strlen(err.msg) > 10 && !strchr(err.msg, '\n'), "%s: rc %d msg '%s'", w, rc, err.msg); \
    } while (0)
    CASE("origin + threshold", (p.alg = DIFFU_ALG_ORIGIN, p.threshold = 0.9));
    CASE("threshold + factor", (p.threshold = 0.9, p.factor = 1));
    CASE("block not dividing", (p.block_length = 5));
    CASE("steps not a multiple of blocks", (p.block_length = 4, p.steps = 6));
    CASE("top_p > 1", (p.top_p = 1.5));
    CASE("mask outside vocab", (p.mask_id = VOCAB));
    CASE("early stop without end ids", (p.early_stop = 1));
    CASE("alg_temp with threshold", (p.threshold = 0.9, p.alg_temp = 0.5));
    diffu_denoise_params ok = params(16, 16, DIFFU_ALG_ENTROPY);
    diffu_err err;
    CHECK(diffu_denoise_params_check(&ok, VOCAB, &err) == 0, "defaults rejected: %s", err.msg);
    int32_t bad = VOCAB;
    CHECK(diffu_denoise_create(&ok, VOCAB, &bad, 1, 0, 0, &err) == NULL, "prompt id outside the vocabulary accepted");
}

int main(void) {
    test_dream_schedule();
    test_arness_orders();
    test_alg_temp();
    test_origin();
    test_threshold_factor_blocks();
    test_early_stop_and_mask();
    test_param_errors();
    return check_report();
}
