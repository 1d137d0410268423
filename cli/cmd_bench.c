/* cmd_bench.c — `diffu bench forward`: ms per forward and achieved GFLOP/s,
 * printed beside the raw OpenBLAS sgemm rate on the forward's own GEMM shapes
 * measured in the same run (fp32 operands, OpenBLAS threaded over the same
 * number of threads). Results to stdout; progress to stderr. */
#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "bench.h"
#include "commands.h"
#include "cpupeak.h"
#include "forward.h"
#include "gemm.h"
#include "sampler.h"


static void usage(FILE *f) {
    fprintf(f,
            "usage: diffu bench tokenize --model DIR [--runs N] FILE...   (encoder MB/s on one thread)\n"
            "       diffu bench forward --model DIR --tokens N [--seqs S] [--rows R] [--threads T] [--reps K]\n"
            "                            [--f32-weights | --compare-f32] [--no-sgemm] [--precision P[,P...]] [--peak]\n"
            "                            [--save FILE]\n"
            "  Times K forwards (after one warm-up) of S sequences totalling N tokens with lm_head on R rows\n"
            "  (default all), prints the median ms and GFLOP/s, then raw sgemm on the same GEMM shapes.\n"
            "  --compare-f32  also load the model fp32-resident and alternate the two, rep by rep\n"
            "  --precision    GEMM paths to time side by side (fp32,bf16,int8; one model each, reps alternated)\n"
            "  --peak         also measure the core's peak per dtype (diffu bench peak) in the same run\n"
            "  --save FILE    write the per-core rates (forward GFLOP/s per core per precision, peaks) for\n"
            "                 `diffu plan --rates FILE`\n"
            "       diffu bench peak [--threads T] [--seconds S]   (vfmadd231ps / vdpbf16ps / vpdpbusd loops)\n"
            "       diffu bench sampler [--vocab V] [--rows R]     (full-vocabulary softmax vs the scalar libm loop)\n");
}


static int bench_peak(int argc, char **argv) {
    static const struct option opts[] = {{"threads", 1, 0, 't'}, {"seconds", 1, 0, 's'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    long long threads = 0;
    double secs = 0.5;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't': if (arg_int("bench peak", "--threads", optarg, 1, 256, &threads)) return 2; break;
        case 's': if (arg_double("bench peak", "--seconds", optarg, 0.01, 60, &secs)) return 2; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (threads <= 0) threads = diffu_affinity_cpus();
    char cpu[256];
    diffu_bench_cpu_name(cpu, sizeof cpu);
    printf("peak: %s (isa %s)\n", cpu, diffu_cpu_get()->isa);
    diffu_precision ps[3] = {DIFFU_PREC_FP32, DIFFU_PREC_BF16, DIFFU_PREC_INT8};
    for (int i = 0; i < 3; i++) {
        double one = diffu_cpu_peak(ps[i], 1, secs), all = threads > 1 ? diffu_cpu_peak(ps[i], (int)threads, secs) : one;
        printf("peak: %-5s %-16s 1 thread %7.1f G%s/s, %lld threads %7.1f G%s/s\n", diffu_precision_name(ps[i]),
               diffu_cpu_peak_insn(ps[i]), one, ps[i] == DIFFU_PREC_INT8 ? "OP" : "FLOP", threads, all,
               ps[i] == DIFFU_PREC_INT8 ? "OP" : "FLOP");
    }
    return 0;
}

/* The scalar libm softmax the sampler used before it was vectorized (max, exp,
 * sum and the confidence in double), timed beside it in the same run. */
static double ref_row(const float *L, int V, const diffu_sampler_params *p, double *z) {
    double T = p->temperature, m = -INFINITY;
    for (int v = 0; v < V; v++) z[v] = T > 0 ? (double)L[v] / T : (double)L[v];
    for (int v = 0; v < V; v++) m = z[v] > m ? z[v] : m;
    double Z = 0;
    for (int v = 0; v < V; v++) Z += (z[v] = exp(z[v] - m));
    if (p->conf == DIFFU_CONF_NEG_ENTROPY) {
        double h = 0;
        for (int v = 0; v < V; v++)
            if (z[v] > 0) h += z[v] / Z * log(z[v] / Z + 1e-10);
        return h;
    }
    return 1.0 / Z;
}

static int bench_sampler(int argc, char **argv) {
    static const struct option opts[] = {{"vocab", 1, 0, 'v'}, {"rows", 1, 0, 'r'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    long long V = 151936, R = 64;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'v': if (arg_int("bench sampler", "--vocab", optarg, 2, 1 << 24, &V)) return 2; break;
        case 'r': if (arg_int("bench sampler", "--rows", optarg, 1, 100000, &R)) return 2; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    float *L = diffu_xaligned((size_t)V * 4);
    double *z = diffu_xaligned((size_t)V * 8);
    uint32_t s = 7;
    for (long long v = 0; v < V; v++) { /* logits like a real row: most mass on a few tokens */
        s = s * 1664525u + 1013904223u;
        L[v] = (float)((int32_t)(s >> 8) - (1 << 23)) / (float)(1 << 23) * 6.0f;
    }
    diffu_sampler_scratch *sc = diffu_sampler_scratch_create((int)V);
    static const char *names[] = {"greedy, conf prob", "T 0.3, conf prob", "greedy, conf margin", "greedy, conf entropy",
                                  "T 0.3, top-p 0.95"};
    printf("sampler: vocab %lld, %lld rows per config, one thread, median of 5 (alternating reference and sampler)\n", V, R);
    for (int k = 0; k < 5; k++) {
        diffu_sampler_params p;
        diffu_sampler_params_default(&p);
        if (k == 1 || k == 4) p.temperature = 0.3;
        if (k == 2) p.conf = DIFFU_CONF_MARGIN;
        if (k == 3) p.conf = DIFFU_CONF_NEG_ENTROPY;
        if (k == 4) p.top_p = 0.95;
        double tr[5], ts[5], sink = 0;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = diffu_now();
            for (int r = 0; r < R; r++) sink += ref_row(L, (int)V, &p, z);
            tr[rep] = (diffu_now() - t0) / (double)R;
            t0 = diffu_now();
            for (int r = 0; r < R; r++) {
                diffu_sample_job j = {&p, diffu_philox_seed(1), diffu_philox_addr(0, 0, 0, (uint32_t)r, DIFFU_RNG_TOKEN)};
                diffu_sample o;
                diffu_sampler_row(L, (int)V, &j, sc, &o);
                sink += o.conf;
            }
            ts[rep] = (diffu_now() - t0) / (double)R;
        }
        double a = diffu_bench_median(tr, 5), b = diffu_bench_median(ts, 5);
        printf("sampler: %-22s scalar libm softmax %.3f ms/row, diffu_sampler_row %.3f ms/row: %.2fx%s\n", names[k],
               1e3 * a, 1e3 * b, a / b, k == 4 ? " (reference without the top-p cut)" : "");
        if (sink == 12345.678) printf(" ");
    }
    diffu_sampler_scratch_free(&sc);
    free(L);
    free(z);
    return 0;
}

static int bench_forward(int argc, char **argv) {
    static const struct option opts[] = {{"model", 1, 0, 'm'},       {"tokens", 1, 0, 'n'},  {"seqs", 1, 0, 's'},
                                         {"rows", 1, 0, 'r'},        {"threads", 1, 0, 't'}, {"reps", 1, 0, 'k'},
                                         {"f32-weights", 0, 0, 'f'}, {"no-sgemm", 0, 0, 'x'}, {"compare-f32", 0, 0, 'c'},
                                         {"precision", 1, 0, 'P'},   {"peak", 0, 0, 'K'},    {"save", 1, 0, 'S'},
                                         {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *model = NULL, *save = NULL, *plist = NULL;
    long long tokens = 256, seqs = 1, rows = -1, threads = 0, reps = 5;
    int f32 = 0, no_sgemm = 0, compare = 0, peak = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'n': if (arg_int("bench forward", "--tokens", optarg, 1, 1 << 20, &tokens)) return 2; break;
        case 's': if (arg_int("bench forward", "--seqs", optarg, 1, 1 << 20, &seqs)) return 2; break;
        case 'r': if (arg_int("bench forward", "--rows", optarg, 0, 1 << 20, &rows)) return 2; break;
        case 't': if (arg_int("bench forward", "--threads", optarg, 1, 1024, &threads)) return 2; break;
        case 'k': if (arg_int("bench forward", "--reps", optarg, 1, 1000, &reps)) return 2; break;
        case 'f': f32 = 1; break;
        case 'x': no_sgemm = 1; break;
        case 'c': compare = 1; break;
        case 'P': plist = optarg; break;
        case 'K': peak = 1; break;
        case 'S': save = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!model) {
        usage(stderr);
        return 2;
    }
    diffu_bench_forward_opts bo = {.model = model, .tokens = tokens, .seqs = seqs, .rows = rows, .threads = threads,
                                   .reps = reps, .peak = peak, .sgemm = !no_sgemm, .save = save};
    if (plist) {
        char buf[128];
        snprintf(buf, sizeof buf, "%s", plist);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            if (bo.n_paths == DIFFU_BENCH_MAX_PATHS) {
                fprintf(stderr, "diffu bench forward: --precision: at most %d paths\n", DIFFU_BENCH_MAX_PATHS);
                return 2;
            }
            if (diffu_precision_parse(tok, &bo.paths[bo.n_paths].prec)) {
                fprintf(stderr, "diffu bench forward: --precision: '%s' is not one of fp32, bf16, int8, auto\n", tok);
                return 2;
            }
            bo.paths[bo.n_paths++].f32 = f32;
        }
    } else {
        bo.paths[bo.n_paths++] = (diffu_bench_path){DIFFU_PREC_AUTO, f32};
    }
    if (compare && bo.n_paths < DIFFU_BENCH_MAX_PATHS) bo.paths[bo.n_paths++] = (diffu_bench_path){DIFFU_PREC_FP32, 1};
    diffu_err err;
    if (diffu_bench_forward(&bo, stdout, &err)) {
        fprintf(stderr, "diffu bench forward: error: %s\n", err.msg);
        return 1;
    }
    return 0;
}


int cmd_bench(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "forward")) return bench_forward(argc - 1, argv + 1);
    if (!strcmp(argv[1], "tokenize")) return bench_tokenize(argc - 1, argv + 1);
    if (!strcmp(argv[1], "peak")) return bench_peak(argc - 1, argv + 1);
    if (!strcmp(argv[1], "sampler")) return bench_sampler(argc - 1, argv + 1);
    fprintf(stderr, "diffu bench: unknown benchmark '%s' (forward, peak, sampler, tokenize)\n", argv[1]);
    return 2;
}
