/* test_sampler.c — the per-row sampler (sampling/sampler.h) against a naive
 * reference written here from Dream's sample_tokens (full sorts, explicit
 * arrays; no code shared with sampler.c).
 *
 * 1. Greedy (temperature 0): token and confidence (prob / margin / negative
 *    entropy) equal the reference's on 600 random rows (mild and peaked
 *    logits, V = 97 and 3001) for every top-p / top-k combination; confidence
 *    within 1e-12 relative.
 * 2. Statistics at temperature > 0: for five configurations (temperature
 *    alone; with top-p; with top-k; top-p then top-k; with a banned token),
 *    N = 200000 draws at distinct Philox addresses. Filtered tokens must never
 *    appear; the counts must pass Pearson's chi-square against the reference's
 *    softmax(logits / T) after top-p then top-k (cells with expected count < 5
 *    pooled) at significance alpha = 1e-4 (critical value from the
 *    Wilson-Hilferty approximation). The seed is fixed, so a right sampler
 *    passes deterministically.
 *    Power: the same counts are tested against wrong samplers (top-k
 *    before top-p, top-p without keeping the first token past the threshold,
 *    temperature ignored, temperature applied twice) and must be REJECTED at
 *    the same alpha (each differs from the truth by >= 0.02 in total
 *    variation; with N = 200000 a wrong sampler's statistic exceeds the
 *    critical value by orders of magnitude).
 * 3. Ties: argmax goes to the lowest id; a duplicated maximum gives margin 0.
 * 4. Order and thread independence: diffu_sampler_run on a pool of 3 threads
 *    in natural and permuted row order, and on no pool, gives bit-identical
 *    (token, confidence). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "sampler.h"
#include "threadpool.h"

/* ------------------------------------------------------------ reference */

enum { VAR_NONE = 0, VAR_K_BEFORE_P = 1, VAR_NO_KEEP_FIRST = 2, VAR_NO_TEMP = 3, VAR_TEMP_TWICE = 4 };

static const double *g_sort_z;
static int by_z_desc(const void *a, const void *b) {
    int i = *(const int *)a, j = *(const int *)b;
    if (g_sort_z[i] != g_sort_z[j]) return g_sort_z[i] > g_sort_z[j] ? -1 : 1;
    return i - j;
}

static void ref_top_p(double *z, int V, double top_p, int keep_first) {
    int *ord = malloc(V * sizeof *ord);
    for (int v = 0; v < V; v++) ord[v] = v;
    g_sort_z = z;
    qsort(ord, V, sizeof *ord, by_z_desc);
    double m = z[ord[0]], Z = 0;
    for (int v = 0; v < V; v++) Z += exp(z[v] - m);
    double cum = 0;
    int *remove = calloc(V, sizeof *remove);
    for (int r = 0; r < V; r++) {
        cum += exp(z[ord[r]] - m) / Z;
        remove[r] = cum > top_p;
    }
    if (keep_first) { /* shift right by one: keep the first token past the threshold */
        for (int r = V - 1; r > 0; r--) remove[r] = remove[r - 1];
        remove[0] = 0;
    }
    for (int r = 0; r < V; r++)
        if (remove[r]) z[ord[r]] = -INFINITY;
    free(ord);
    free(remove);
}

static void ref_top_k(double *z, int V, int k) {
    double *s = malloc(V * sizeof *s);
    memcpy(s, z, V * sizeof *s);
    int *ord = malloc(V * sizeof *ord);
    for (int v = 0; v < V; v++) ord[v] = v;
    g_sort_z = s;
    qsort(ord, V, sizeof *ord, by_z_desc);
    double kth = s[ord[k - 1]];
    for (int v = 0; v < V; v++)
        if (z[v] < kth) z[v] = -INFINITY;
    free(s);
    free(ord);
}

/* probabilities after Dream's filters (or a deliberately wrong variant) */
static void ref_probs(const float *logits, int V, const diffu_sampler_params *p, int variant, double *prob) {
    double *z = malloc(V * sizeof *z);
    double T = p->temperature;
    for (int v = 0; v < V; v++) {
        z[v] = logits[v];
        if (T > 0 && variant != VAR_NO_TEMP) z[v] /= T;
        if (T > 0 && variant == VAR_TEMP_TWICE) z[v] /= T;
    }
    if (p->ban_token >= 0) z[p->ban_token] = -INFINITY;
    int has_p = p->top_p > 0 && p->top_p < 1, has_k = p->top_k > 0 && p->top_k < V;
    if (variant == VAR_K_BEFORE_P) {
        if (has_k) ref_top_k(z, V, p->top_k);
        if (has_p) ref_top_p(z, V, p->top_p, 1);
    } else {
        if (has_p) ref_top_p(z, V, p->top_p, variant != VAR_NO_KEEP_FIRST);
        if (has_k) ref_top_k(z, V, p->top_k);
    }
    double m = -INFINITY, Z = 0;
    for (int v = 0; v < V; v++) m = z[v] > m ? z[v] : m;
    for (int v = 0; v < V; v++) Z += (prob[v] = exp(z[v] - m));
    for (int v = 0; v < V; v++) prob[v] /= Z;
    free(z);
}

static void ref_conf(const double *prob, int V, int tok, diffu_conf_kind kind, double *conf, int *argmax) {
    int a = 0;
    for (int v = 1; v < V; v++)
        if (prob[v] > prob[a]) a = v;
    *argmax = a;
    if (tok < 0) tok = a;
    if (kind == DIFFU_CONF_PROB) {
        *conf = prob[tok];
    } else if (kind == DIFFU_CONF_MARGIN) {
        double b = -1;
        for (int v = 0; v < V; v++)
            if (v != a && prob[v] > b) b = prob[v];
        *conf = prob[a] - (b < 0 ? 0 : b);
    } else {
        double h = 0;
        for (int v = 0; v < V; v++) h += prob[v] * log(prob[v] + 1e-10);
        *conf = h;
    }
}

/* ------------------------------------------------------------ helpers */

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static double urand(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 9007199254740992.0;
}
static double nrand(void) {
    double u = urand() + 1e-300, v = urand();
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

static double chi2_crit(int dof, double z /* upper normal quantile */) {
    double k = dof, c = 2.0 / (9.0 * k);
    double t = 1 - c + z * sqrt(c);
    return k * t * t * t;
}
#define Z_1E4 3.719016485 /* upper 1e-4 quantile of N(0, 1) */

/* Pearson's statistic of counts against prob (cells with expected < 5
 * pooled); *dof = cells - 1; *impossible = draws of zero-probability tokens. */
static double chi2(const long *count, const double *prob, int V, long N, int *dof, long *impossible) {
    double stat = 0, pool_e = 0;
    long pool_o = 0;
    int cells = 0;
    *impossible = 0;
    for (int v = 0; v < V; v++) {
        double e = prob[v] * N;
        if (prob[v] == 0) {
            *impossible += count[v];
            continue;
        }
        if (e < 5) {
            pool_e += e;
            pool_o += count[v];
            continue;
        }
        stat += (count[v] - e) * (count[v] - e) / e;
        cells++;
    }
    if (pool_e > 0) {
        stat += (pool_o - pool_e) * (pool_o - pool_e) / pool_e;
        cells++;
    }
    *dof = cells - 1;
    return stat;
}

/* ------------------------------------------------------------ tests */

static void test_greedy(void) {
    int Vs[2] = {97, 3001};
    double tps[4] = {0, 0.5, 0.9, 0.999};
    int tks[4] = {0, 1, 5, 40};
    for (int vi = 0; vi < 2; vi++) {
        int V = Vs[vi];
        diffu_sampler_scratch *s = diffu_sampler_scratch_create(V);
        float *row = malloc(V * sizeof *row);
        double *prob = malloc(V * sizeof *prob);
        for (int r = 0; r < 300; r++) {
            double scale = r % 3 == 0 ? 8.0 : r % 3 == 1 ? 1.0 : 0.05; /* peaked, mild, near-uniform */
            for (int v = 0; v < V; v++) row[v] = (float)(scale * nrand());
            if (r % 7 == 0) row[V / 2] = row[V / 3]; /* an exact duplicate somewhere */
            diffu_sampler_params p;
            diffu_sampler_params_default(&p);
            p.top_p = tps[r % 4];
            p.top_k = tks[(r / 4) % 4];
            p.conf = (diffu_conf_kind)((r / 16) % 3);
            diffu_sample_job job = {&p, diffu_philox_seed(1), diffu_philox_addr(0, 0, 0, r, DIFFU_RNG_TOKEN)};
            diffu_sample out;
            diffu_sampler_row(row, V, &job, s, &out);
            ref_probs(row, V, &p, VAR_NONE, prob);
            double conf;
            int am;
            ref_conf(prob, V, -1, p.conf, &conf, &am);
            CHECK(out.token == am, "V %d row %d: token %d, reference %d", V, r, out.token, am);
            /* the margin p1 - p2 cancels: each probability is good to 1e-12 relative, so its
             * difference to 1e-12 x p1 (the exp implementations differ by ~1 ulp) */
            double tol = 1e-12 * (p.conf == DIFFU_CONF_MARGIN ? prob[am] : fabs(conf)) + 1e-300;
            CHECK(fabs(out.conf - conf) <= tol, "V %d row %d (top_p %g top_k %d conf %d): "
                  "confidence %.17g, reference %.17g", V, r, p.top_p, p.top_k, (int)p.conf, out.conf, conf);
            /* temperature > 0: the prob confidence is that of the drawn token */
            p.temperature = 0.7;
            p.conf = DIFFU_CONF_PROB;
            diffu_sampler_row(row, V, &job, s, &out);
            ref_probs(row, V, &p, VAR_NONE, prob);
            CHECK(out.token >= 0 && out.token < V && prob[out.token] > 0, "drawn token %d has probability 0",
                  out.token);
            CHECK(fabs(out.conf - prob[out.token]) <= 1e-12 * prob[out.token], "T>0 confidence %.17g vs %.17g",
                  out.conf, prob[out.token]);
        }
        free(row);
        free(prob);
        diffu_sampler_scratch_free(&s);
    }
}

static void test_stats(void) {
    enum { V = 40 };
    const long N = 200000;
    float row[V];
    for (int v = 0; v < V; v++) row[v] = (float)(2.5 * sin(0.7 * v) + 0.05 * v);
    struct {
        const char *name;
        double T, top_p;
        int top_k, ban_argmax;
    } cfgs[] = {
        {"temperature 0.7", 0.7, 0, 0, 0},
        {"temperature 1.5, top-p 0.8", 1.5, 0.8, 0, 0},
        {"temperature 1.0, top-k 6", 1.0, 0, 6, 0},
        {"temperature 2.0, top-p 0.8, top-k 6", 2.0, 0.8, 6, 0},
        {"temperature 2.0, top-p 0.95, argmax banned", 2.0, 0.95, 0, 1},
    };
    diffu_sampler_scratch *s = diffu_sampler_scratch_create(V);
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        diffu_sampler_params p;
        diffu_sampler_params_default(&p);
        p.temperature = cfgs[c].T;
        p.top_p = cfgs[c].top_p;
        p.top_k = cfgs[c].top_k;
        if (cfgs[c].ban_argmax) {
            int a = 0;
            for (int v = 1; v < V; v++)
                if (row[v] > row[a]) a = v;
            p.ban_token = a;
        }
        long count[V] = {0};
        diffu_philox_key key = diffu_philox_seed(20250101 + c);
        for (long i = 0; i < N; i++) {
            diffu_sample_job job = {&p, key, diffu_philox_addr(3, 0, (uint32_t)(i >> 12), (uint32_t)(i & 4095), DIFFU_RNG_TOKEN)};
            diffu_sample out;
            diffu_sampler_row(row, V, &job, s, &out);
            count[out.token]++;
        }
        double prob[V];
        ref_probs(row, V, &p, VAR_NONE, prob);
        int dof;
        long impossible;
        double stat = chi2(count, prob, V, N, &dof, &impossible);
        double crit = chi2_crit(dof, Z_1E4);
        printf("%-44s chi2 %8.2f  dof %2d  critical(1e-4) %6.2f\n", cfgs[c].name, stat, dof, crit);
        CHECK(impossible == 0, "%s: %ld draws of filtered tokens", cfgs[c].name, impossible);
        CHECK(stat < crit, "%s: chi2 %.2f >= %.2f", cfgs[c].name, stat, crit);
        if (p.ban_token >= 0) CHECK(count[p.ban_token] == 0, "banned token drawn %ld times", count[p.ban_token]);
        /* power: wrong samplers are rejected by the same counts */
        if (c == 3 || c == 1) {
            /* config 1 (top-p alone) shows the boundary rule; config 3 (top-p
             * then top-k, nucleus larger than k) the order of the filters */
            int vars[4] = {VAR_K_BEFORE_P, VAR_NO_KEEP_FIRST, VAR_NO_TEMP, VAR_TEMP_TWICE};
            const char *vn[4] = {"top-k before top-p", "top-p dropping the first token past the threshold",
                                 "temperature ignored", "temperature applied twice"};
            for (int k = 0; k < 4; k++) {
                if (vars[k] == VAR_K_BEFORE_P && c != 3) continue;
                if (vars[k] == VAR_NO_KEEP_FIRST && c != 1) continue;
                double wrong[V], tv = 0;
                ref_probs(row, V, &p, vars[k], wrong);
                for (int v = 0; v < V; v++) tv += 0.5 * fabs(wrong[v] - prob[v]);
                int wd;
                long wi;
                double ws = chi2(count, wrong, V, N, &wd, &wi);
                double wc = chi2_crit(wd > 0 ? wd : 1, Z_1E4);
                printf("   vs wrong sampler (%s): TV %.3f, chi2 %.1f, impossible draws %ld -> %s\n", vn[k], tv, ws, wi,
                       (wi > 0 || ws >= wc) ? "rejected" : "NOT rejected");
                CHECK(tv >= 0.02, "%s: the wrong sampler (%s) is too close to test (TV %.3f)", cfgs[c].name, vn[k], tv);
                CHECK(wi > 0 || ws >= wc, "%s: wrong sampler (%s) not rejected (chi2 %.1f < %.1f)", cfgs[c].name,
                      vn[k], ws, wc);
            }
        }
    }
    diffu_sampler_scratch_free(&s);
}

static void test_ties(void) {
    enum { V = 16 };
    float row[V];
    for (int v = 0; v < V; v++) row[v] = 1.0f;
    diffu_sampler_scratch *s = diffu_sampler_scratch_create(V);
    diffu_sampler_params p;
    diffu_sampler_params_default(&p);
    p.conf = DIFFU_CONF_MARGIN;
    diffu_sample_job job = {&p, diffu_philox_seed(0), diffu_philox_addr(0, 0, 0, 0, DIFFU_RNG_TOKEN)};
    diffu_sample out;
    diffu_sampler_row(row, V, &job, s, &out);
    CHECK(out.token == 0 && out.conf == 0, "all equal: token %d margin %g", out.token, out.conf);
    row[3] = row[7] = 2.0f;
    diffu_sampler_row(row, V, &job, s, &out);
    CHECK(out.token == 3 && out.conf == 0, "duplicate max: token %d margin %g", out.token, out.conf);
    p.conf = DIFFU_CONF_NEG_ENTROPY;
    for (int v = 0; v < V; v++) row[v] = 0;
    diffu_sampler_row(row, V, &job, s, &out);
    double h = log(1.0 / V + 1e-10);
    CHECK(fabs(out.conf - h) < 1e-12, "uniform entropy %.15g vs %.15g", out.conf, h);
    p.top_k = 1; /* one token left: p = 1, entropy 1 * log(1 + 1e-10) */
    row[5] = 1;
    diffu_sampler_row(row, V, &job, s, &out);
    CHECK(out.token == 5 && fabs(out.conf - log(1 + 1e-10)) < 1e-15, "top-1 entropy %.17g", out.conf);
    diffu_sampler_scratch_free(&s);
}

static void test_threads(void) {
    enum { V = 1000, R = 64 };
    float *logits = malloc((size_t)R * V * sizeof *logits), *perm_logits = malloc((size_t)R * V * sizeof *logits);
    diffu_sampler_params ps[4];
    for (int i = 0; i < 4; i++) diffu_sampler_params_default(&ps[i]);
    ps[0].temperature = 0.9;
    ps[1].temperature = 1.3, ps[1].top_p = 0.9, ps[1].conf = DIFFU_CONF_NEG_ENTROPY;
    ps[2].top_k = 50, ps[2].conf = DIFFU_CONF_MARGIN;
    ps[3].temperature = 0.4, ps[3].top_p = 0.95, ps[3].top_k = 20;
    diffu_sample_job jobs[R], pjobs[R];
    int perm[R];
    for (int r = 0; r < R; r++) {
        for (int v = 0; v < V; v++) logits[(size_t)r * V + v] = (float)(2 * nrand());
        jobs[r].params = &ps[r % 4];
        jobs[r].key = diffu_philox_seed(99);
        jobs[r].ctr = diffu_philox_addr(r % 5, r % 3, 7, (uint32_t)r, DIFFU_RNG_TOKEN);
        perm[r] = r;
    }
    for (int r = R - 1; r > 0; r--) {
        int j = (int)(urand() * (r + 1));
        int t = perm[r];
        perm[r] = perm[j];
        perm[j] = t;
    }
    for (int r = 0; r < R; r++) {
        memcpy(perm_logits + (size_t)r * V, logits + (size_t)perm[r] * V, V * sizeof *logits);
        pjobs[r] = jobs[perm[r]];
    }
    diffu_pool *pool = diffu_pool_create(3);
    diffu_sampler *s3 = diffu_sampler_create(V, pool), *s1 = diffu_sampler_create(V, NULL);
    diffu_sample a[R], b[R], c[R];
    diffu_sampler_run(s3, R, logits, V, jobs, a);
    diffu_sampler_run(s3, R, perm_logits, V, pjobs, b);
    diffu_sampler_run(s1, R, logits, V, jobs, c);
    int same_perm = 1, same_single = 1;
    for (int r = 0; r < R; r++) {
        same_perm &= a[perm[r]].token == b[r].token && a[perm[r]].conf == b[r].conf;
        same_single &= a[r].token == c[r].token && a[r].conf == c[r].conf;
    }
    CHECK(same_perm, "permuted rows give other samples");
    CHECK(same_single, "1 thread and 3 threads differ");
    diffu_sampler_free(&s3);
    diffu_sampler_free(&s1);
    diffu_pool_free(pool);
    free(logits);
    free(perm_logits);
}

int main(void) {
    test_greedy();
    test_stats();
    test_ties();
    test_threads();
    return check_report();
}
