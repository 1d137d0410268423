/* test_sampler_vp.c — sampling/sampler_vp.h under mpirun (-np T, one
 * stage of T tensor-parallel ranks) against the whole-row sampler
 * (sampler.h, itself tested against a naive reference in tests/denoise).
 *
 * Every rank builds the same random logits rows and sampling jobs and keeps
 * its vocabulary slice: the layout's even split, then deliberately uneven
 * splits (a slice of one token, a slice holding only the banned token, the
 * maximum on a slice boundary). Rows: smooth (scale 1), peaked (scale 8),
 * with the maximum duplicated across slices, with runs of equal values, the
 * maximum banned. Jobs: temperature 0 / 0.7 / 1.3 x top-p off / 0.5 / 0.9 /
 * 0.999 x top-k off / 1 / 3 / 40 / V-1 x the three confidences x ban, each
 * with its own Philox address.
 * Asserted on every rank, for every row: the token equals the whole-row
 * sampler's (at every temperature: a draw could only differ within ~1e-16 of
 * a CDF boundary, which these seeds do not hit), and the confidence agrees to
 * 1e-12 (relative to max(1, |conf|)): the sums are added slice by slice, so
 * they may differ in the last bits. Also: all ranks return identical results.
 * Prints "N passed, M failed"; exit 1 on any failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "layout.h"
#include "mkmodel.h"
#include "sampler.h"
#include "sampler_vp.h"

static int n_pass, n_fail, g_rank;
#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (cond) n_pass++;                                                     \
        else {                                                                  \
            if (n_fail++ < 20) {                                                \
                printf("FAIL r%d %s:%d: %s: ", g_rank, __FILE__, __LINE__, #cond); \
                printf(__VA_ARGS__);                                            \
                printf("\n");                                                   \
            }                                                                   \
        }                                                                       \
    } while (0)

static uint64_t g_seed = 0x9e3779b97f4a7c15ull;
static double urand(void) {
    g_seed ^= g_seed << 13;
    g_seed ^= g_seed >> 7;
    g_seed ^= g_seed << 17;
    return (double)(g_seed >> 11) * (1.0 / 9007199254740992.0);
}
static double nrand(void) {
    double u = urand() + 1e-300, v = urand();
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

/* Row kinds. */
static void make_row(float *row, int V, int kind, int boundary) {
    switch (kind % 5) {
    case 0: for (int v = 0; v < V; v++) row[v] = (float)nrand(); break;
    case 1: for (int v = 0; v < V; v++) row[v] = (float)(8 * nrand()); break;
    case 2: { /* the maximum twice, on both sides of a slice boundary */
        for (int v = 0; v < V; v++) row[v] = (float)nrand();
        int a = boundary > 0 ? boundary - 1 : 0, b = boundary < V ? boundary : V - 1;
        row[a] = row[b] = 9.0f;
        break;
    }
    case 3: /* runs of equal values */
        for (int v = 0; v < V; v++) row[v] = (float)((int)(urand() * 6)) * 0.5f;
        break;
    default: /* a sharp maximum (banned in some jobs) */
        for (int v = 0; v < V; v++) row[v] = (float)(2 * nrand());
        row[(int)(urand() * V)] = 12.0f;
        break;
    }
}

static int argmax(const float *row, int V) {
    int a = 0;
    for (int v = 1; v < V; v++)
        if (row[v] > row[a]) a = v;
    return a;
}

typedef struct { int v0, v1; } slice;

static void run_case(diffu_comm *c, int V, int R, const slice *sl, const char *label) {
    int T = diffu_comm_size(c), t = diffu_comm_rank(c);
    float *rows = malloc((size_t)R * V * sizeof *rows);
    diffu_sampler_params *params = calloc((size_t)R, sizeof *params);
    diffu_sample_job *jobs = calloc((size_t)R, sizeof *jobs);
    static const double temps[] = {0, 0.7, 1.3};
    static const double tps[] = {0, 0.5, 0.9, 0.999};
    int tks[] = {0, 1, 3, 40, V - 1};
    g_seed = 0x9e3779b97f4a7c15ull ^ (uint64_t)V * 7919u;
    for (int r = 0; r < R; r++) {
        make_row(rows + (size_t)r * V, V, r, sl[1 % T].v0);
        diffu_sampler_params *p = &params[r];
        diffu_sampler_params_default(p);
        p->temperature = temps[r % 3];
        p->top_p = tps[(r / 3) % 4];
        p->top_k = tks[(r / 12) % 5];
        if (p->top_k >= V) p->top_k = 0;
        p->conf = (diffu_conf_kind)((r / 60) % 3);
        if (r % 5 == 4 && r % 2) p->ban_token = argmax(rows + (size_t)r * V, V);
        if (r % 7 == 6) p->ban_token = sl[0].v0; /* maybe the only token of a one-token slice */
        jobs[r].params = p;
        jobs[r].key = diffu_philox_seed(1234 + (uint64_t)r);
        jobs[r].ctr = diffu_philox_addr((uint32_t)r, 0, (uint32_t)(r * 3), (uint32_t)r, DIFFU_RNG_TOKEN);
    }
    /* the whole-row reference */
    diffu_sampler_scratch *sc = diffu_sampler_scratch_create(V);
    diffu_sample *ref = calloc((size_t)R, sizeof *ref), *got = calloc((size_t)R, sizeof *got);
    for (int r = 0; r < R; r++) diffu_sampler_row(rows + (size_t)r * V, V, &jobs[r], sc, &ref[r]);
    /* this rank's slice, packed [R x (v1 - v0)] as the lm_head leaves it */
    int nl = sl[t].v1 - sl[t].v0;
    float *mine = malloc((size_t)R * (nl ? nl : 1) * sizeof *mine);
    for (int r = 0; r < R; r++) memcpy(mine + (size_t)r * nl, rows + (size_t)r * V + sl[t].v0, (size_t)nl * sizeof *mine);
    diffu_sampler_vp *vp = diffu_sampler_vp_create(V, sl[t].v0, sl[t].v1, t, T, diffu_comm_stage_allgather, c, NULL, R);
    diffu_sampler_vp_run(vp, R, mine, (size_t)nl, jobs, got);
    int bad_tok = 0;
    double worst = 0;
    for (int r = 0; r < R; r++) {
        double d = fabs(got[r].conf - ref[r].conf) / fmax(1.0, fabs(ref[r].conf));
        worst = d > worst ? d : worst;
        if (got[r].token != ref[r].token) bad_tok++;
        CHECK(got[r].token == ref[r].token, "%s row %d (T %.1f top-p %g top-k %d conf %d ban %d): token %d, whole row %d",
              label, r, params[r].temperature, params[r].top_p, params[r].top_k, (int)params[r].conf,
              params[r].ban_token, got[r].token, ref[r].token);
        CHECK(d <= 1e-12, "%s row %d (T %.1f top-p %g top-k %d conf %d): confidence %.17g, whole row %.17g", label, r,
              params[r].temperature, params[r].top_p, params[r].top_k, (int)params[r].conf, got[r].conf, ref[r].conf);
    }
    /* every rank the same: gather rank 0's and compare */
    double *mine_res = malloc((size_t)R * 2 * sizeof *mine_res), *all = malloc((size_t)R * 2 * T * sizeof *all);
    for (int r = 0; r < R; r++) {
        mine_res[2 * r] = got[r].token;
        mine_res[2 * r + 1] = got[r].conf;
    }
    diffu_comm_stage_allgather(c, mine_res, (size_t)R * 2, all);
    for (int q = 1; q < T; q++) CHECK(!memcmp(all, all + (size_t)q * R * 2, (size_t)R * 2 * sizeof *all), "%s: rank %d's results differ from rank 0's", label, q);
    long ag, nd;
    diffu_sampler_vp_counts(vp, &ag, &nd);
    if (t == 0)
        printf("%-44s V %4d, %d rows over %d slices: %d token mismatches, max relative confidence difference %.2e;"
               " %ld allgathers, %ld doubles sent\n", label, V, R, T, bad_tok, worst, ag, nd);
    diffu_sampler_vp_free(&vp);
    diffu_sampler_scratch_free(&sc);
    free(rows);
    free(params);
    free(jobs);
    free(ref);
    free(got);
    free(mine);
    free(mine_res);
    free(all);
}

int main(void) {
    diffu_comm *c;
    diffu_err err;
    if (diffu_comm_init(&c, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int T = diffu_comm_size(c);
    g_rank = diffu_comm_rank(c);
    /* a one-stage layout of T tp ranks, only for the stage communicator */
    diffu_config cfg;
    if (diffu_mkmodel_preset("tiny", &cfg, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    cfg.n_heads = cfg.n_kv_heads = 12;
    cfg.head_dim = cfg.hidden / 12;
    cfg.hidden = cfg.head_dim * 12;
    cfg.inter = 96;
    cfg.vocab = 1000;
    diffu_layout *l;
    if (diffu_layout_init(&cfg, T, 1, T, NULL, &l, &err) || diffu_comm_set_layout(c, l, &err)) {
        fprintf(stderr, "layout: %s\n", err.msg);
        return 1;
    }
    slice sl[16];
    for (int V = 1000, k = 0; k < 2; k++, V = 37) {
        char label[96];
        for (int q = 0; q < T; q++) sl[q] = (slice){(int)((long)V * q / T), (int)((long)V * (q + 1) / T)};
        snprintf(label, sizeof label, "even split");
        run_case(c, V, 360, sl, label);
        /* uneven: rank 0 one token, the rest split the remainder */
        sl[0] = (slice){0, 1};
        for (int q = 1; q < T; q++) sl[q] = (slice){1 + (int)((long)(V - 1) * (q - 1) / (T - 1)), 1 + (int)((long)(V - 1) * q / (T - 1))};
        snprintf(label, sizeof label, "uneven split (rank 0: one token)");
        run_case(c, V, 360, sl, label);
        /* uneven: the last rank one token */
        for (int q = 0; q < T - 1; q++) sl[q] = (slice){(int)((long)(V - 1) * q / (T - 1)), (int)((long)(V - 1) * (q + 1) / (T - 1))};
        sl[T - 1] = (slice){V - 1, V};
        snprintf(label, sizeof label, "uneven split (last rank: one token)");
        run_case(c, V, 360, sl, label);
    }
    /* the totals of every rank */
    double mine[2] = {n_pass, n_fail}, all[32];
    diffu_comm_stage_allgather(c, mine, 2, all);
    int fails = 0, passes = 0;
    for (int q = 0; q < T; q++) {
        passes += (int)all[2 * q];
        fails += (int)all[2 * q + 1];
    }
    if (g_rank == 0) printf("%d passed, %d failed (all ranks)\n", passes, fails);
    diffu_layout_free(l);
    diffu_comm_finalize(c);
    return fails ? 1 : 0;
}
