/* gemm.h — the forward's matrix products behind one interface, with the
 * implementation chosen at start-up from what the CPU has.
 *
 *   fp32  OpenBLAS sgemm on fp32 (BF16/F16 weights widened tile by tile,
 *         kernels.c): the exact mode every reference test uses.
 *   bf16  oneDNN matmul (brgemm: AVX512_BF16 / AMX-BF16): activations rounded
 *         to BF16 per call, weights reordered ONCE at load into oneDNN's
 *         blocked layout (straight from a BF16 checkpoint, no widening copy),
 *         fp32 accumulation and output.
 *   int8  oneDNN matmul s8 x s8 -> s32 (VNNI / AMX-INT8): weights quantized
 *         per output row at load (symmetric, scale max|w|/127), activations
 *         per row at every call (max|x|/127); the s32 sums are scaled in fp32
 *         here (oneDNN's runtime output scales fall back to gemm:jit).
 *
 * Batch invariance (as kernels.h): a row's result depends only on its own
 * input row, in every path. The oneDNN paths use fixed shapes only — an M
 * tile of at most DIFFU_GEMM_MT rows (rounded up to a multiple of 16), an N
 * block of DIFFU_GEMM_NB weight rows, the whole K — each created once at load
 * (a primitive made for a runtime M falls back to gemm:jit and its rows
 * differ with M). diffu_gemm_create probes, on random data, that a row gets
 * the same bits from every M primitive at every offset; if not, only full
 * tiles are used (padded), and the plan line says so.
 *
 * Threads: the work unit is one N block (all its M tiles), handed out on the
 * model's diffu_pool; oneDNN's own OpenMP is held at one thread in every pool
 * thread, so the cores are owned once. User scratchpads, one per thread.
 *
 * Selection: diffu_precision_resolve(asked): asked, else $DIFFU_PRECISION,
 * else auto = bf16 where the CPU has native BF16 dot products
 * (AVX512_BF16 or AMX-BF16), fp32 otherwise. $DIFFU_ISA=avx2|avx512|
 * avx512_vnni|avx512_bf16 caps what the detection reports (and oneDNN's ISA),
 * to force and test a fallback on a newer CPU.
 * Not collective. */
#ifndef DIFFU_GEMM_H
#define DIFFU_GEMM_H

#include <stddef.h>

#include "kernels.h"
#include "log.h"
#include "threadpool.h"
#include "weights.h"

typedef enum diffu_precision {
    DIFFU_PREC_AUTO = 0,
    DIFFU_PREC_FP32 = 1,
    DIFFU_PREC_BF16 = 2,
    DIFFU_PREC_INT8 = 3,
} diffu_precision;

/* "auto" | "fp32" | "bf16" | "int8" -> 0, else -1. */
int diffu_precision_parse(const char *s, diffu_precision *out);
const char *diffu_precision_name(diffu_precision p);

typedef struct diffu_cpu {
    int avx2, fma, avx512f, avx512bw, avx512vl, avx512_vnni, avx512_bf16, avx_vnni, amx_bf16, amx_int8;
    char isa[32];   /* best level, after the $DIFFU_ISA cap: "amx", "avx512_bf16", "avx512_vnni", "avx512", "avx2", "sse" */
    int capped;     /* 1 when $DIFFU_ISA lowered it */
} diffu_cpu;

/* cpuid + xgetbv, once (thread-safe). */
const diffu_cpu *diffu_cpu_get(void);

/* Can this CPU (after the cap) run p? 1 yes; 0 no, with why (if non-NULL). */
int diffu_precision_supported(diffu_precision p, const char **why);

/* The precision to use: asked, or $DIFFU_PRECISION, or the default above.
 * -1 with err when it is unknown or the CPU cannot run it. */
int diffu_precision_resolve(diffu_precision asked, diffu_precision *out, diffu_err *err);

typedef struct diffu_gemm diffu_gemm;

/* An engine for precision p (resolved, not AUTO) on n_threads pool threads,
 * for products of up to max_rows input rows and max_k inputs. */
int diffu_gemm_create(diffu_precision p, int n_threads, int max_rows, int max_k, diffu_gemm **out, diffu_err *err);
void diffu_gemm_free(diffu_gemm *g);
diffu_precision diffu_gemm_precision(const diffu_gemm *g);

/* Convert a weight matrix once into the engine's layout (owned by g) and
 * point w->packed at it. fp32 engines leave w as it is. */
int diffu_gemm_pack(diffu_gemm *g, diffu_mat *w, diffu_err *err);

/* Y = X . W^T (+ bias) for each job, as diffu_matmul (kernels.h), in the
 * engine's precision. Every W must have been packed by this engine (bf16/int8). */
void diffu_gemm_run(diffu_gemm *g, diffu_pool *pool, diffu_kscratch *ks, const diffu_matmul_job *jobs, int n_jobs);

/* Time spent in diffu_gemm_run and the FLOPs it did (2 t N K per job, the
 * padding rows not counted), since creation or the last reset (benchmarks). */
void diffu_gemm_stats(diffu_gemm *g, double *seconds, double *flops, int reset);
/* Of those seconds, the time converting the activations (bf16 / int8 engines; 0 for fp32). */
double diffu_gemm_convert_seconds(diffu_gemm *g, int reset);

/* One line: "bf16 oneDNN brg:avx512_core_bf16 (cpu avx512_bf16, M tile 128 by 16, N block 128)". */
const char *diffu_gemm_describe(const diffu_gemm *g);
/* Bytes owned: packed weights, and scratch (activation copy + per-thread tiles). */
size_t diffu_gemm_weight_bytes(const diffu_gemm *g);
size_t diffu_gemm_scratch_bytes(const diffu_gemm *g);

#endif
