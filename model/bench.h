/* bench.h — `diffu bench forward`: the forward's speed on this CPU, measured
 * and printed (the CLI parses the options; benchmarks/bench_gemm.sh reads
 * the lines).
 *
 * diffu_bench_forward loads the model once per GEMM path (sharing one thread
 * pool), runs one warm-up forward each, then `reps` forwards of `seqs`
 * sequences totalling `tokens` tokens with lm_head on `rows` rows, the paths
 * alternated rep by rep so that machine noise hits all alike, and prints per
 * path: the median ms, GFLOP/s (diffu_forward_flops), the GEMMs' share and
 * rate, the per-phase times, optionally the core's peak per dtype
 * (cpupeak.h) and the raw OpenBLAS sgemm rate on the forward's own GEMM
 * shapes; `save` writes the per-core rates `diffu plan --rates` reads.
 * Results to `out`, progress to stderr. Memory: allocated at the start and
 * freed at the end. Not collective; the caller's only thread. */
#ifndef DIFFU_BENCH_H
#define DIFFU_BENCH_H

#include <stddef.h>
#include <stdio.h>

#include "gemm.h"
#include "log.h"

enum { DIFFU_BENCH_MAX_PATHS = 4 };

typedef struct diffu_bench_path {
    diffu_precision prec; /* DIFFU_PREC_AUTO: what the load picks */
    int f32;              /* weights widened to fp32 at load (fp32-resident) */
} diffu_bench_path;

typedef struct diffu_bench_forward_opts {
    const char *model;                          /* checkpoint directory */
    long long tokens, seqs, rows;               /* rows < 0 or > tokens: every row */
    long long threads;                          /* 0: the CPUs of the affinity mask */
    long long reps;                             /* >= 1 */
    int n_paths;                                /* 1 .. DIFFU_BENCH_MAX_PATHS */
    diffu_bench_path paths[DIFFU_BENCH_MAX_PATHS];
    int peak;                                   /* also the core's peak per dtype */
    int sgemm;                                  /* also raw sgemm on the forward's shapes */
    const char *save;                           /* NULL, or the per-core rates file to write */
} diffu_bench_forward_opts;

/* 0, or -1 with err (the model does not load, a forward fails, save cannot be written). */
int diffu_bench_forward(const diffu_bench_forward_opts *o, FILE *out, diffu_err *err);

/* The CPU's model name from /proc/cpuinfo ("unknown CPU" otherwise). */
void diffu_bench_cpu_name(char *buf, size_t n);
/* The median of v[n] (sorts v). */
double diffu_bench_median(double *v, int n);

#endif
