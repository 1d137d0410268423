/* plan.h — cluster planning (`diffu plan`): which pp x tp layouts fit a
 * cluster of N nodes of C cores and G bytes each, the memory per rank and per
 * node, the ranking that picks the recommended one, and the wall-time
 * estimate of a dataset on it. Pure arithmetic on node/layout.h (no MPI, no
 * weights); run once, before a job, by whoever sizes it.
 *
 * A job is P pipeline stages x T tensor-parallel ranks (layout.h). Placement:
 * the T ranks of a stage always share a node (they all-reduce twice per
 * layer); a node holds k whole stages, so R = k x T ranks per node, each bound
 * to c = C / R cores (c threads: the rank's pool sizes itself from its affinity
 * mask), and the job spans n = P / k nodes. When one job needs fewer nodes
 * than the cluster has, the rest run further jobs on other shards of the input
 * (a Slurm job array: `diffu split`), J = N / n of them.
 *
 * Memory per node = the sum over its R ranks of weights + activations +
 * pipeline buffers, from diffu_layout (conservative: the mmap'd embedding is
 * counted whole, and once per TP rank of stage 0, although those pages are
 * shared page cache and only the rows used become resident). A layout fits
 * when every node's sum is within --mem-fraction (default 0.9) of
 * --mem-per-node; the rest is left to the OS, MPI and the page cache.
 *
 * The recommendation, in order of preference (each key only breaks ties of the
 * ones before it):
 *   1. every node busy (J x n = N, or as close as possible);
 *   2. the fewest nodes per job: independent jobs never talk to each other,
 *      a pipeline across nodes pays a message per stage boundary per forward,
 *      stage imbalance, and needs >= P requests in flight;
 *   3. ranks per node = NUMA domains per node (--numa-per-node): one rank's
 *      threads on one memory controller; fewer ranks span domains (remote
 *      memory), more ranks add all-reduces; ties prefer more ranks;
 *   4. inside a node, tensor parallelism over pipeline stages (larger T):
 *      the all-reduces go through shared memory, and no stage imbalance;
 *   5. the better stage balance (diffu_layout's efficiency), then fewer ranks.
 *
 *
 * Wall-time estimate (diffu_plan_estimate), from per-core forward rates that
 * `diffu bench forward --save FILE` measured (diffu_plan_rates_load). Its
 * assumptions:
 *   - every step is one forward over the whole canvas (prompt + new tokens):
 *     no KV cache, no early stop;
 *   - FLOP of a forward = layers x (canvas x 2 (H nh hd + 2 H nkv hd + nh hd H
 *     + 3 H F) + attention 4 canvas^2 nh hd) + lm_head 2 H V on the masked rows,
 *     L/2 of them on average (L new tokens);
 *   - the measured per-core rate holds on the cluster's cores (same ISA class
 *     and clock; a bigger model's larger GEMMs run at least as close to peak)
 *     and scales linearly with cores (enough samples in flight to fill every
 *     job's pipeline; tensor-parallel all-reduces and stage transfers hidden),
 *     times the stage balance;
 *   - sampler, tokenizer and I/O are not counted;
 *   - the samples split over the jobs as evenly as whole samples allow
 *     (diffu split): the busiest job, ceil(samples / jobs), sets the wall time.
 *
 * Ownership: rows are malloc'd for the caller (free()). Not collective;
 * reentrant. */
#ifndef DIFFU_PLAN_H
#define DIFFU_PLAN_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "layout.h"
#include "log.h"

typedef struct {
    int n;          /* nodes per job */
    int jobs;       /* independent jobs the cluster holds (N / n) */
    int pp, tp;
    int rpn;        /* ranks per node (k stages x tp) */
    int threads;    /* per rank (cores / rpn) */
    double balance; /* diffu_layout balance efficiency, 0..1 */
    double rank_max, node_max; /* bytes: largest rank, fullest node */
    int fits;       /* node_max <= usable */
} diffu_plan_row;

typedef struct {
    int nodes, cores, numa; /* N nodes of C cores and D NUMA domains each */
    double mem_gib;         /* memory per node, GiB */
    double mem_frac;        /* the share of it the ranks may use */
    int pp, tp;             /* both > 0: place this layout only; else enumerate */
} diffu_plan_cluster;

/* Bytes of a node the ranks may use: mem_gib GiB x mem_frac. */
double diffu_plan_usable(double mem_gib, double mem_frac);

/* Every candidate placement, best first (the ones that fit before the ones
 * that do not; the ranking of the header). *rows malloc'd, *nfit >= 1 of
 * them fit. -1 with err: the given pp x tp refused (diffu_layout_check, tp
 * larger than a node's cores, no even split over the nodes), or no layout
 * fits (the one needing the least memory per node named). */
int diffu_plan_rows(const diffu_config *cfg, const diffu_layout_opts *lo, const diffu_plan_cluster *cl,
                    diffu_plan_row **rows, size_t *nrows, size_t *nfit, diffu_err *err);

/* The reasons for recommending b, as "  - ..." lines (the ranking keys of the
 * header that decided it) to f. */
void diffu_plan_print_why(FILE *f, const diffu_config *cfg, const diffu_plan_cluster *cl, const diffu_plan_row *b);

/* ---- the wall-time estimate ---- */

enum { DIFFU_PLAN_FP32 = 0, DIFFU_PLAN_BF16, DIFFU_PLAN_INT8, DIFFU_PLAN_NPREC };
extern const char *const diffu_plan_prec_names[DIFFU_PLAN_NPREC]; /* "fp32", "bf16", "int8" */

typedef struct {
    double gflops_per_core[DIFFU_PLAN_NPREC]; /* forward rates; 0 = not measured */
    char cpu[256], isa[64], model[256];       /* where they were measured ("?" if not said) */
    int threads, tokens;
} diffu_plan_rates;

/* Read a `diffu bench forward --save` file. -1 with err "FILE: cannot open"
 * or "FILE:LINE: unknown line '...'". */
int diffu_plan_rates_load(const char *path, diffu_plan_rates *r, diffu_err *err);
/* The precision to estimate with: name (NULL: bf16 when measured, else fp32).
 * An index, -1 when name is not one of them, -2 when it has no rate. */
int diffu_plan_rates_pick(const diffu_plan_rates *r, const char *name);

typedef struct {
    long long dataset, new_tokens, steps, prompt_tokens;
} diffu_plan_workload;

typedef struct {
    double canvas, rows;      /* tokens per forward; lm_head rows per forward (L/2) */
    double per_tok, attn, head, fwd; /* FLOP: per token per layer, attention per layer, lm_head, one forward */
    double total;             /* FLOP of the dataset */
    double cores, flops;      /* cores of all jobs, their FLOP/s x balance */
    long long per_job;        /* samples on the busiest job */
    double sample_s, wall;    /* seconds per sample (one job), wall time */
} diffu_plan_estimate_out;

/* The estimate on placement b of nodes of `cores` cores at gflops_per_core. */
/* The assumptions above as the text `diffu plan` prints under an estimate. */
extern const char diffu_plan_estimate_assumptions[];

void diffu_plan_estimate(const diffu_config *c, const diffu_plan_workload *w, const diffu_plan_row *b, int cores,
                         double gflops_per_core, diffu_plan_estimate_out *out);

#endif
