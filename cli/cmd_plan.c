/* cmd_plan.c — `diffu plan`: parses the options, asks node/plan.h (the
 * placement rules, the ranking, the estimate's assumptions) for the layouts
 * that fit and the wall-time estimate, and prints them. --shell prints the
 * chosen layout as shell assignments (DIFFU_PP=..., one a line, nothing else on
 * stdout) for deploy/slurm/submit.sh. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "config.h"
#include "layout.h"
#include "plan.h"

#define CMD "plan"
#define GIB (1024.0 * 1024.0 * 1024.0)
#define MIB (1024.0 * 1024.0)

static void usage(FILE *f) {
    fprintf(f,
            "usage: diffu plan --model DIR --nodes N --cores-per-node C --mem-per-node G [options]\n"
            "  Lists the pp x tp layouts that fit N nodes of C cores and G GiB each (TP ranks of a stage share a\n"
            "  node, pipeline stages span nodes, spare nodes run further jobs on other input shards), with memory\n"
            "  per rank and per node, and recommends one with its reasons.\n"
            "  --model DIR           checkpoint directory (with --config-only: only DIR/config.json is read)\n"
            "  --nodes N             nodes available\n"
            "  --cores-per-node C    physical cores per node (one compute thread per core)\n"
            "  --mem-per-node G      memory per node in GiB (e.g. 256 or 187.5)\n"
            "  --numa-per-node D     NUMA domains per node (lscpu: \"NUMA node(s)\"; default 1): the preferred ranks per node\n"
            "  --mem-fraction F      share of a node's memory the ranks may use (default 0.9)\n"
            "  --pp P --tp T         place this layout only (refused with the reason when it does not fit)\n"
            "  --max-tokens N        tokens per forward in the memory plan (default 2048); --max-seq N\n"
            "  --head-rows F         lm_head rows per token in the balance rule (default 1)\n"
            "  --f32-weights         weights resident in fp32 (twice the memory of BF16)\n"
            "  --cache-slots N       count a KV cache (--cache prefix|dual|delayed) of N requests in flight per rank\n"
            "  --cache-ctx L         ... of L positions each (prompt + new tokens; default --max-seq)\n"
            "  --all                 list every layout that fits (default: the first 25 by preference)\n"
            "  --shell               print the chosen layout as shell assignments (for deploy/slurm/submit.sh)\n"
            "  wall-time estimate of a dataset on the recommended layout (with its assumptions):\n"
            "  --dataset N --new-tokens L --steps S [--prompt-tokens P (default 128)] --rates FILE [--precision P]\n"
            "                        FILE: per-core rates from `diffu bench forward --precision fp32,bf16,int8 --save FILE`;\n"
            "                        P: fp32|bf16|int8 (default: bf16 when FILE has it, else fp32)\n");
}

typedef struct {
    diffu_plan_workload w;
    const char *rates, *precision;
} est_opts;

/* The wall-time estimate of the dataset on the recommended layout, with its derivation. */
static int estimate(const diffu_config *c, const est_opts *eo, const diffu_plan_row *b, long long C) {
    diffu_plan_rates rt;
    diffu_err err;
    if (diffu_plan_rates_load(eo->rates, &rt, &err)) {
        fprintf(stderr, "diffu " CMD ": error: --rates %s\n", err.msg);
        return -1;
    }
    int pi = diffu_plan_rates_pick(&rt, eo->precision);
    if (pi == -1) {
        fprintf(stderr, "diffu " CMD ": --precision: '%s' is not one of fp32, bf16, int8\n", eo->precision);
        return -1;
    }
    if (pi < 0) {
        fprintf(stderr, "diffu " CMD ": error: --rates %s has no forward rate for %s\n", eo->rates,
                eo->precision ? eo->precision : diffu_plan_prec_names[DIFFU_PLAN_FP32]);
        return -1;
    }
    const diffu_plan_workload *w = &eo->w;
    const char *prec = diffu_plan_prec_names[pi];
    double rate = rt.gflops_per_core[pi];
    diffu_plan_estimate_out e;
    diffu_plan_estimate(c, w, b, (int)C, rate, &e);
    printf("\nestimate: %lld sample(s) x %lld steps, canvas %lld prompt + %lld new tokens, %s GEMMs\n", w->dataset,
           w->steps, w->prompt_tokens, w->new_tokens, prec);
    printf("  per forward: %.1f GFLOP (%d layers x (%.0f tokens x %.3f GFLOP/token/layer + attention %.2f GFLOP) + lm_head on"
           " %.0f rows %.2f GFLOP)\n", e.fwd / 1e9, c->n_layers, e.canvas, e.per_tok / 1e9, e.attn / 1e9, e.rows,
           e.head / 1e9);
    printf("  total: %.3g PFLOP = %lld samples x %lld forwards\n", e.total / 1e15, w->dataset, w->steps);
    printf("  rate: %.2f GFLOP/s per core (%s forward, measured by diffu bench on %s, isa %s, %d thread(s), %d tokens,"
           " model %s) x %.0f cores (%d job(s) x %d node(s) x %lld) x stage balance %.3f = %.1f TFLOP/s\n",
           rate, prec, rt.cpu, rt.isa, rt.threads, rt.tokens, rt.model, e.cores, b->jobs, b->n, C, b->balance, e.flops / 1e12);
    printf("  wall time: %.0f s = %.2f h: %lld sample(s) on the busiest job x %.1f s per sample (%.3f s per step on one"
           " job's %lld cores)\n", e.wall, e.wall / 3600.0, e.per_job, e.sample_s, e.sample_s / (double)w->steps, b->n * C);
    fputs(diffu_plan_estimate_assumptions, stdout);
    return 0;
}

/* What the display needs of the command line. */
typedef struct {
    const char *model;
    int config_only, all;
    long long N, C, numa, pp, tp;
    double G, frac, usable;
} plan_args;

/* The model, the cluster and the table of layouts. */
static void print_table(const plan_args *a, const diffu_config *cfg, const diffu_layout_opts *lo, const diffu_plan_row *rows,
                        size_t nrows, size_t nfit) {
    long long N = a->N, numa = a->numa;
    printf("model: %s%s: %.2f B parameters, %d layers, %d heads (%d KV), hidden %d, weights %zu bytes/element\n", a->model,
           a->config_only ? " (config.json only)" : "", (double)diffu_config_params(cfg) / 1e9, cfg->n_layers, cfg->n_heads,
           cfg->n_kv_heads, cfg->hidden, lo->weight_elem_size);
    printf("cluster: %lld node(s) x %lld core(s), %g GiB per node (usable %.2f GiB = x %g), %lld NUMA domain(s) per node%s\n",
           N, a->C, a->G, a->usable / GIB, a->frac, numa, numa == 1 ? " (assumed: --numa-per-node)" : "");
    printf("memory plan: %d tokens per forward (--max-tokens); weights + activations + pipeline buffers", lo->max_tokens);
    if (lo->cache_slots)
        printf(" + a KV cache of %d request(s) x %d positions (fp32 K/V of the rank's layers and KV heads)", lo->cache_slots,
               lo->cache_ctx ? lo->cache_ctx : (lo->max_seq ? lo->max_seq : lo->max_tokens));
    printf(" per rank\n");
    printf("\n%s (TP ranks of a stage share a node; stages span nodes; * = recommended):\n",
           a->pp > 0 ? "placements of the requested layout" : "layouts that fit, best first");
    printf("  %6s %5s %4s %4s %10s %12s %9s %8s %13s %13s\n", "nodes", "jobs", "pp", "tp", "ranks/node", "threads/rank",
           "cores/node", "balance", "max rank GiB", "max node GiB");
    size_t show = a->all ? nfit : (nfit < 25 ? nfit : 25);
    for (size_t i = 0; i < show; i++) {
        const diffu_plan_row *r = &rows[i];
        printf("%c %6d %5d %4d %4d %10d %12d %9d %7.1f%% %13.2f %13.2f\n", i == 0 ? '*' : ' ', r->n, r->jobs, r->pp,
               r->tp, r->rpn, r->threads, r->rpn * r->threads, 100.0 * r->balance, r->rank_max / GIB, r->node_max / GIB);
    }
    if (show < nfit) printf("  ... %zu more that fit (--all)\n", nfit - show);
    if (nrows > nfit) {
        double least = INFINITY;
        for (size_t i = nfit; i < nrows; i++) least = rows[i].node_max < least ? rows[i].node_max : least;
        printf("  %zu more do not fit in memory (the least of them needs %.2f GiB on a node)\n", nrows - nfit, least / GIB);
    }
    printf("  (nodes = per job; jobs = independent jobs on the %lld node(s), each on its own input shard;\n"
           "   balance = stage balance; the ranking weighs nodes busy x balance first)\n", N);
}

/* The recommendation, why, and how to submit it. */
static void print_why(const plan_args *a, const diffu_config *cfg, const diffu_plan_cluster *cl, const diffu_plan_row *b) {
    printf("\nrecommended: --pp %d --tp %d: %d job(s) of %d node(s) each, %d rank(s) per node x %d thread(s) "
           "(sbatch --nodes=%d --ntasks-per-node=%d --cpus-per-task=%d)\n",
           b->pp, b->tp, b->jobs, b->n, b->rpn, b->threads, b->n, b->rpn, b->threads);
    printf("memory: largest rank %.2f GiB, fullest node %.2f GiB of %.2f usable\n", b->rank_max / GIB, b->node_max / GIB,
           a->usable / GIB);
    printf("why:\n");
    diffu_plan_print_why(stdout, cfg, cl, b);
    char numa_opt[48] = "";
    if (a->numa > 1) snprintf(numa_opt, sizeof numa_opt, " --numa-per-node %lld", a->numa);
    printf("\nsubmit: deploy/slurm/submit.sh --model %s --pp %d --tp %d --nodes %d --cores-per-node %lld --mem-per-node %g%s%s \\\n"
           "            --input IN.jsonl.gz --output OUT.jsonl.gz --time HH:MM:SS\n",
           a->model, b->pp, b->tp, b->n, a->C, a->G, numa_opt, b->jobs > 1 ? " --shards K" : "");
}

int cmd_plan(int argc, char **argv) {
    enum { O_MODEL = 1, O_NODES, O_CORES, O_MEM, O_NUMA, O_FRAC, O_PP, O_TP, O_MAXTOK, O_MAXSEQ, O_HEADROWS, O_F32,
           O_ALL, O_SHELL, O_CONFIG, O_DATASET, O_NEWTOK, O_STEPS, O_PROMPTTOK, O_RATES, O_PREC, O_KVSLOTS, O_KVCTX };
    static const struct option opts[] = {
        {"model", 1, 0, O_MODEL},       {"nodes", 1, 0, O_NODES},         {"cores-per-node", 1, 0, O_CORES},
        {"mem-per-node", 1, 0, O_MEM},  {"numa-per-node", 1, 0, O_NUMA},  {"mem-fraction", 1, 0, O_FRAC},
        {"pp", 1, 0, O_PP},             {"tp", 1, 0, O_TP},               {"max-tokens", 1, 0, O_MAXTOK},
        {"max-seq", 1, 0, O_MAXSEQ},    {"head-rows", 1, 0, O_HEADROWS},  {"f32-weights", 0, 0, O_F32},
        {"all", 0, 0, O_ALL},           {"shell", 0, 0, O_SHELL},         {"config-only", 0, 0, O_CONFIG},
        {"dataset", 1, 0, O_DATASET},   {"new-tokens", 1, 0, O_NEWTOK},   {"steps", 1, 0, O_STEPS},
        {"prompt-tokens", 1, 0, O_PROMPTTOK}, {"rates", 1, 0, O_RATES},   {"precision", 1, 0, O_PREC},
        {"cache-slots", 1, 0, O_KVSLOTS}, {"cache-ctx", 1, 0, O_KVCTX},
        {"help", 0, 0, 'h'},            {0, 0, 0, 0}};
    plan_args a = {.numa = 1, .frac = 0.9};
    est_opts eo = {{0, 0, 0, 128}, NULL, NULL};
    long long v;
    double d;
    int shell = 0;
    diffu_layout_opts lo;
    diffu_layout_opts_default(&lo);
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: a.model = optarg; break;
        case O_NODES: if (arg_int(CMD, "--nodes", optarg, 1, 1 << 20, &a.N)) return 2; break;
        case O_CORES: if (arg_int(CMD, "--cores-per-node", optarg, 1, 1 << 16, &a.C)) return 2; break;
        case O_MEM: if (arg_double(CMD, "--mem-per-node", optarg, 1e-3, 1 << 24, &a.G)) return 2; break;
        case O_NUMA: if (arg_int(CMD, "--numa-per-node", optarg, 1, 1024, &a.numa)) return 2; break;
        case O_FRAC: if (arg_double(CMD, "--mem-fraction", optarg, 0.01, 1.0, &a.frac)) return 2; break;
        case O_PP: if (arg_int(CMD, "--pp", optarg, 1, 1 << 20, &a.pp)) return 2; break;
        case O_TP: if (arg_int(CMD, "--tp", optarg, 1, 1 << 20, &a.tp)) return 2; break;
        case O_MAXTOK: if (arg_int(CMD, "--max-tokens", optarg, 1, 1 << 24, &v)) return 2; lo.max_tokens = (int)v; break;
        case O_MAXSEQ: if (arg_int(CMD, "--max-seq", optarg, 1, 1 << 24, &v)) return 2; lo.max_seq = (int)v; break;
        case O_HEADROWS: if (arg_double(CMD, "--head-rows", optarg, 1e-6, 1.0, &d)) return 2; lo.head_row_frac = d; break;
        case O_F32: lo.weight_elem_size = 4; break;
        case O_KVSLOTS: if (arg_int(CMD, "--cache-slots", optarg, 1, 1 << 20, &v)) return 2; lo.cache_slots = (int)v; break;
        case O_KVCTX: if (arg_int(CMD, "--cache-ctx", optarg, 1, 1 << 24, &v)) return 2; lo.cache_ctx = (int)v; break;
        case O_ALL: a.all = 1; break;
        case O_SHELL: shell = 1; break;
        case O_CONFIG: a.config_only = 1; break;
        case O_DATASET: if (arg_int(CMD, "--dataset", optarg, 1, 1LL << 40, &eo.w.dataset)) return 2; break;
        case O_NEWTOK: if (arg_int(CMD, "--new-tokens", optarg, 1, 1 << 24, &eo.w.new_tokens)) return 2; break;
        case O_STEPS: if (arg_int(CMD, "--steps", optarg, 1, 1 << 24, &eo.w.steps)) return 2; break;
        case O_PROMPTTOK: if (arg_int(CMD, "--prompt-tokens", optarg, 0, 1 << 24, &eo.w.prompt_tokens)) return 2; break;
        case O_RATES: eo.rates = optarg; break;
        case O_PREC: eo.precision = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "diffu " CMD ": unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (!a.model || !a.N || !a.C || !(a.G > 0)) {
        fprintf(stderr, "diffu " CMD ": --model, --nodes, --cores-per-node and --mem-per-node are required\n");
        return 2;
    }
    if ((a.pp > 0) != (a.tp > 0)) {
        fprintf(stderr, "diffu " CMD ": give both --pp and --tp, or neither\n");
        return 2;
    }
    if (eo.w.dataset && (!eo.w.new_tokens || !eo.w.steps || !eo.rates)) {
        fprintf(stderr, "diffu " CMD ": --dataset needs --new-tokens, --steps and --rates FILE (from `diffu bench forward"
                        " --precision fp32,bf16,int8 --peak --save FILE`)\n");
        return 2;
    }
    /* the config and the weights' element size, as `diffu layout` reads them */
    diffu_err err;
    diffu_layout *probe;
    if (diffu_layout_from_dir(a.model, a.config_only, 1, 1, 1, &lo, &probe, &err)) {
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        return 1;
    }
    diffu_config cfg = *diffu_layout_config(probe);
    lo.weight_elem_size = diffu_layout_get_opts(probe)->weight_elem_size;
    diffu_layout_free(probe);

    a.usable = diffu_plan_usable(a.G, a.frac);
    diffu_plan_cluster cl = {(int)a.N, (int)a.C, (int)a.numa, a.G, a.frac, (int)a.pp, (int)a.tp};
    diffu_plan_row *rows;
    size_t nrows, nfit;
    if (diffu_plan_rows(&cfg, &lo, &cl, &rows, &nrows, &nfit, &err)) {
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        return 1;
    }
    const diffu_plan_row *best = &rows[0];
    if (shell) {
        printf("DIFFU_PP=%d\nDIFFU_TP=%d\nDIFFU_NODES=%d\nDIFFU_TASKS_PER_NODE=%d\nDIFFU_NTASKS=%d\nDIFFU_CPUS_PER_TASK=%d\n"
               "DIFFU_JOBS=%d\nDIFFU_NODE_MEM_MIB=%.0f\nDIFFU_RANK_MEM_MIB=%.0f\n",
               best->pp, best->tp, best->n, best->rpn, best->pp * best->tp, best->threads, best->jobs,
               ceil(best->node_max / MIB), ceil(best->rank_max / MIB));
        free(rows);
        return 0;
    }
    print_table(&a, &cfg, &lo, rows, nrows, nfit);
    print_why(&a, &cfg, &cl, best);
    int rc = eo.w.dataset && estimate(&cfg, &eo, best, a.C) < 0 ? 1 : 0;
    free(rows);
    return rc;
}
