/* plan.c — see plan.h. */
#include "plan.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- placements ------------------------------------------------------------ */

/* Work done, in 2% steps of the cluster: nodes busy x stage balance. */
static int work_bucket(const diffu_plan_row *r, int N) { return (int)floor(50.0 * r->jobs * r->n * r->balance / N + 1e-9); }

/* a strictly preferred to b (the recommendation keys, see the header).
 * placing: a given pp x tp, so spreading it over more nodes (more cores per
 * rank) is preferred to packing it. */
static int better(const diffu_plan_row *a, const diffu_plan_row *b, int N, int numa, int placing) {
    int ua = work_bucket(a, N), ub = work_bucket(b, N);
    if (ua != ub) return ua > ub;
    if (a->n != b->n) return placing ? a->n > b->n : a->n < b->n;
    double da = fabs(log2((double)a->rpn / numa)), db = fabs(log2((double)b->rpn / numa));
    if (fabs(da - db) > 1e-9) return da < db;
    if (a->rpn != b->rpn) return a->rpn > b->rpn;
    if (a->tp != b->tp) return a->tp > b->tp;
    if (fabs(a->balance - b->balance) > 1e-9) return a->balance > b->balance;
    return a->pp * a->tp < b->pp * b->tp;
}

static int cmp_rows(const void *x, const void *y, void *ctx) {
    const diffu_plan_row *a = x, *b = y;
    const diffu_plan_cluster *cl = ctx;
    int placing = cl->pp > 0;
    if (a->fits != b->fits) return b->fits - a->fits;
    if (better(a, b, cl->nodes, cl->numa, placing)) return -1;
    if (better(b, a, cl->nodes, cl->numa, placing)) return 1;
    return 0;
}

/* Fill the memory and balance figures of r (n, pp, tp, rpn, threads set). */
static int evaluate(const diffu_config *cfg, const diffu_layout_opts *lo0, double usable, diffu_plan_row *r, diffu_err *err) {
    diffu_layout_opts lo = *lo0;
    lo.threads = r->threads;
    diffu_layout *l;
    if (diffu_layout_init(cfg, r->pp * r->tp, r->pp, r->tp, &lo, &l, err)) return -1;
    double h = diffu_layout_head_cost(cfg, &lo), worst = 0;
    r->rank_max = r->node_max = 0;
    for (int node = 0; node < r->n; node++) {
        double sum = 0;
        for (int i = 0; i < r->rpn; i++) {
            int rank = node * r->rpn + i;
            if (rank >= r->pp * r->tp) break;
            const diffu_rank_plan *p = diffu_layout_rank(l, rank);
            double tot = diffu_layout_rank_bytes(p);
            sum += tot;
            if (tot > r->rank_max) r->rank_max = tot;
            if (p->cost > worst) worst = p->cost;
        }
        if (sum > r->node_max) r->node_max = sum;
    }
    r->balance = (cfg->n_layers + h) / (r->pp * worst);
    r->fits = r->node_max <= usable;
    diffu_layout_free(l);
    return 0;
}

static int tp_allowed(const diffu_config *c, int t) { return t >= 1 && c->n_heads % t == 0 && t <= c->inter && t <= c->vocab; }

typedef struct {
    diffu_plan_row *rows;
    size_t n, cap;
} row_list;

static int add_row(const diffu_config *cfg, const diffu_layout_opts *lo, const diffu_plan_cluster *cl, row_list *rl,
                   int n, int pp, int tp, int rpn, diffu_err *err) {
    diffu_plan_row r = {.n = n, .jobs = cl->nodes / n, .pp = pp, .tp = tp, .rpn = rpn, .threads = cl->cores / rpn};
    if (evaluate(cfg, lo, diffu_plan_usable(cl->mem_gib, cl->mem_frac), &r, err)) return -1;
    if (rl->n == rl->cap) rl->rows = diffu_xrealloc(rl->rows, (rl->cap *= 2) * sizeof *rl->rows);
    rl->rows[rl->n++] = r;
    return 0;
}

double diffu_plan_usable(double mem_gib, double mem_frac) { return mem_gib * (1024.0 * 1024.0 * 1024.0) * mem_frac; }

/* None of rows[0..n) fits: the reason. */
static int none_fits(const diffu_plan_cluster *cl, const diffu_plan_row *rows, size_t n, diffu_err *err) {
    const double GIB = 1024.0 * 1024.0 * 1024.0;
    double least = INFINITY;
    const diffu_plan_row *lr = NULL;
    for (size_t i = 0; i < n; i++)
        if (rows[i].node_max < least) least = rows[i].node_max, lr = &rows[i];
    if (!lr)
        return diffu_err_set(err, "pp %d x tp %d cannot be placed on %d node(s) of %d cores "
                                  "(the stages must split evenly over the nodes, at most %d ranks per node)",
                             cl->pp, cl->tp, cl->nodes, cl->cores, cl->cores);
    return diffu_err_set(err, "no layout fits: the least memory per node is %.2f GiB (pp %d x tp %d on %d node(s)), "
                              "usable %.2f GiB (--mem-per-node %g x --mem-fraction %g); add nodes or memory, or lower --max-tokens",
                         least / GIB, lr->pp, lr->tp, lr->n, diffu_plan_usable(cl->mem_gib, cl->mem_frac) / GIB, cl->mem_gib,
                         cl->mem_frac);
}

int diffu_plan_rows(const diffu_config *cfg, const diffu_layout_opts *lo, const diffu_plan_cluster *cl,
                    diffu_plan_row **rows, size_t *nrows, size_t *nfit, diffu_err *err) {
    const int N = cl->nodes, C = cl->cores, pp = cl->pp, tp = cl->tp;
    if (pp > 0) { /* validate the requested layout first: one line with the reason */
        if (diffu_layout_check(cfg, pp * tp, pp, tp, err)) return -1;
        if (tp > C)
            return diffu_err_set(err, "tp %d exceeds --cores-per-node %d (the tp ranks of a stage share a node, one core each at least)",
                                 tp, C);
    }
    row_list rl = {diffu_xmalloc(64 * sizeof *rl.rows), 0, 64};
    int maxn = N < cfg->n_layers ? N : cfg->n_layers;
    for (int n = 1; n <= maxn; n++) {
        if (pp > 0) { /* given P x T: n must divide P; k = P / n stages per node */
            if (pp % n) continue;
            int rpn = pp / n * tp;
            if (rpn > C) continue;
            if (add_row(cfg, lo, cl, &rl, n, pp, tp, rpn, err)) goto refused;
            continue;
        }
        for (int rpn = 1; rpn <= C; rpn++) {
            if (C % rpn) continue; /* every core of a node busy, the same count per rank */
            for (int t = 1; t <= rpn; t++) {
                if (rpn % t || !tp_allowed(cfg, t)) continue;
                int P = rpn / t * n;
                if (P > cfg->n_layers) continue;
                if (add_row(cfg, lo, cl, &rl, n, P, t, rpn, err)) goto refused;
            }
        }
    }
    qsort_r(rl.rows, rl.n, sizeof *rl.rows, cmp_rows, (void *)cl);
    size_t k = 0;
    while (k < rl.n && rl.rows[k].fits) k++;
    if (!k) {
        none_fits(cl, rl.rows, rl.n, err);
        goto refused;
    }
    *rows = rl.rows;
    *nrows = rl.n;
    *nfit = k;
    return 0;
refused:
    free(rl.rows);
    return -1;
}

/* ---- the wall-time estimate ---------------------------------------------------- */

const char diffu_plan_estimate_assumptions[] =
    "  assumptions: every step is one forward over the whole canvas (no KV cache, no early stop); lm_head on the\n"
    "  masked rows, L/2 on average; the per-core forward rate measured here holds on the cluster's cores (same ISA\n"
    "  class and clock; a bigger model's larger GEMMs run at least as close to peak) and scales linearly with\n"
    "  cores (enough samples in flight to fill every job's pipeline; tensor-parallel all-reduces and stage\n"
    "  transfers hidden); sampler, tokenizer and I/O not counted; the samples split over the jobs as evenly as whole\n"
    "  samples allow (diffu split).\n";


const char *const diffu_plan_prec_names[DIFFU_PLAN_NPREC] = {"fp32", "bf16", "int8"};

int diffu_plan_rates_load(const char *path, diffu_plan_rates *r, diffu_err *err) {
    memset(r, 0, sizeof *r);
    strcpy(r->cpu, "?");
    strcpy(r->isa, "?");
    strcpy(r->model, "?");
    FILE *f = fopen(path, "r");
    if (!f) return diffu_err_set(err, "%s: cannot open", path);
    char line[512];
    int lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\n")] = 0;
        if (!line[0] || line[0] == '#') continue;
        double x;
        if (!strncmp(line, "cpu ", 4)) snprintf(r->cpu, sizeof r->cpu, "%.200s", line + 4);
        else if (!strncmp(line, "isa ", 4)) snprintf(r->isa, sizeof r->isa, "%.60s", line + 4);
        else if (!strncmp(line, "model ", 6)) snprintf(r->model, sizeof r->model, "%.200s", line + 6);
        else if (sscanf(line, "threads %d", &r->threads) == 1 || sscanf(line, "tokens %d", &r->tokens) == 1) {
        } else if (sscanf(line, "forward_gflops_per_core.fp32 %lf", &x) == 1) r->gflops_per_core[DIFFU_PLAN_FP32] = x;
        else if (sscanf(line, "forward_gflops_per_core.bf16 %lf", &x) == 1) r->gflops_per_core[DIFFU_PLAN_BF16] = x;
        else if (sscanf(line, "forward_gflops_per_core.int8 %lf", &x) == 1) r->gflops_per_core[DIFFU_PLAN_INT8] = x;
        else if (strncmp(line, "peak_gflops_per_core.", 21)) {
            diffu_err_set(err, "%s:%d: unknown line '%s'", path, lineno, line);
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return 0;
}

int diffu_plan_rates_pick(const diffu_plan_rates *r, const char *name) {
    int pi = r->gflops_per_core[DIFFU_PLAN_BF16] > 0 ? DIFFU_PLAN_BF16 : DIFFU_PLAN_FP32;
    if (name) {
        for (pi = 0; pi < DIFFU_PLAN_NPREC && strcmp(name, diffu_plan_prec_names[pi]); pi++) {}
        if (pi == DIFFU_PLAN_NPREC) return -1;
    }
    return r->gflops_per_core[pi] > 0 ? pi : -2;
}

void diffu_plan_estimate(const diffu_config *c, const diffu_plan_workload *w, const diffu_plan_row *b, int cores,
                         double gflops_per_core, diffu_plan_estimate_out *e) {
    double H = c->hidden, hd = c->head_dim, nq = c->n_heads, nkv = c->n_kv_heads, F = c->inter, V = c->vocab;
    double n = (double)(w->prompt_tokens + w->new_tokens), C = (double)cores, rate = gflops_per_core * 1e9;
    e->canvas = n;
    e->rows = 0.5 * (double)w->new_tokens;
    e->per_tok = 2.0 * (H * nq * hd + 2.0 * H * nkv * hd + nq * hd * H + 3.0 * H * F);
    e->attn = 4.0 * n * n * nq * hd;
    e->head = 2.0 * H * V * e->rows;
    e->fwd = c->n_layers * (n * e->per_tok + e->attn) + e->head;
    e->total = e->fwd * (double)w->steps * (double)w->dataset;
    e->cores = (double)b->jobs * b->n * C;
    e->flops = rate * e->cores * b->balance;
    /* each job runs its share of the samples; the busiest one sets the wall time */
    e->per_job = (w->dataset + b->jobs - 1) / b->jobs;
    e->sample_s = e->fwd * (double)w->steps / (rate * b->n * C * b->balance);
    e->wall = e->sample_s * (double)e->per_job;
}

/* ---- the reasons for the recommendation ------------------------------------------ */

void diffu_plan_print_why(FILE *f, const diffu_config *cfg, const diffu_plan_cluster *cl, const diffu_plan_row *b) {
    const int numa = cl->numa;
    if (cl->pp > 0)
        fprintf(f, "  - pp %d x tp %d as asked, spread over %d node(s) (%d stage(s) per node): the most cores per rank that\n"
                "    %s; stages span nodes, the tp ranks of a stage share one",
                b->pp, b->tp, b->n, b->rpn / b->tp, b->fits ? "fit in memory and split evenly" : "split evenly");
    else if (b->n == 1)
        fprintf(f, "  - the model fits in one node's memory, so each node runs its own job on its own shard of the input:\n"
                "    no traffic between nodes, no pipeline bubble, no stage imbalance between nodes");
    else
        fprintf(f, "  - the model needs %d nodes' memory; fewer nodes per job do not fit. Stages span nodes: between\n"
                "    nodes only one [tokens x hidden] message per stage boundary per forward",
                b->n);
    if (b->jobs > 1)
        fprintf(f, "\n  - %d such jobs use the %lld nodes: split the input (diffu split --shards %d, or a multiple of it) and run\n"
                "    a job array (deploy/slurm/submit.sh --shards K), then diffu merge",
                b->jobs, (long long)cl->nodes, b->jobs);
    if (b->jobs * b->n < cl->nodes) fprintf(f, "\n  - %d node(s) stay idle: no layout uses all of them evenly", cl->nodes - b->jobs * b->n);
    fprintf(f, "\n  - %d rank(s) per node for %d NUMA domain(s): %s", b->rpn, numa,
            b->rpn == numa ? "one rank per domain, its threads on local memory"
            : cl->pp > 0    ? (b->rpn < numa ? "a rank spans domains (as the layout asks)" : "several ranks per domain (as the layout asks)")
            : b->rpn < numa ? "a rank spans domains (the heads or stages do not split further)"
                            : "several ranks per domain (the layout needs more ranks to fit)");
    if (b->tp > 1 && b->rpn == b->tp)
        fprintf(f, "\n  - the %d ranks of a node are tensor-parallel (two all-reduces per layer, over shared memory) rather\n"
                "    than pipeline stages (which need >= %d requests in flight and lose to stage imbalance)",
                b->tp, b->rpn);
    else if (b->rpn > b->tp)
        fprintf(f, "\n  - tp %d (tp %d does not divide the %d heads), so a node holds %d stages of %d rank(s)", b->tp, b->rpn,
                cfg->n_heads, b->rpn / b->tp, b->tp);
    if (b->pp > 1) fprintf(f, "\n  - stage balance %.1f%% (diffu layout --pp %d --tp %d shows the stages)", 100.0 * b->balance, b->pp, b->tp);
    fprintf(f, "\n  - %d thread(s) per rank: bind each rank to its cores (mpirun --map-by ppr:%d:node:PE=%d --bind-to core)\n",
            b->threads, b->rpn, b->threads);
}
