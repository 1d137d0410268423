/* simd.h — the forward's element-wise and attention kernels outside the weight
 * GEMMs, one row (or one span) at a time, in three implementations chosen once
 * at start-up from what the CPU has:
 *
 *   avx512  AVX-512 F/BW/VL/DQ (16 lanes)            model/simd_avx512.c
 *   avx2    AVX2 + FMA (8 lanes)                      model/simd_avx2.c
 *   scalar  portable C, the reference for the tests   model/simd.c
 *
 * diffu_simd_get() follows diffu_cpu_get() (gemm.h), so $DIFFU_ISA=avx2 (or
 * sse) caps it like the GEMM layer's ISA; $DIFFU_SIMD=scalar|avx2|avx512 picks
 * one table below the detected level (tests, benchmarks). The avx2 file is
 * compiled without AVX-512 so that the capped path is the real fallback even in
 * a -march=native build.
 *
 * Numerics: fp32 throughout. Every function computes each output element in an
 * order fixed by its own row (or span position) and the sizes alone — never by
 * the rows beside it, the thread count, or how the caller blocks the work — so
 * the forward's batch invariance holds in every table. The tables differ from
 * each other by rounding only (FMA vs separate multiply-add, the lane count of
 * a sum, the exp polynomial evaluated in lanes): a few ulp, stated per
 * function in tests/kernels/test_simd.c. The BF16 and int8 conversions are bit
 * for bit the scalar ones in every table.
 * None of them allocate, none are collective; the caller threads them. */
#ifndef DIFFU_SIMD_H
#define DIFFU_SIMD_H

#include <stddef.h>
#include <stdint.h>

/* Keys per block of the attention kernels: qk's kt scratch holds hd x this many floats. */
enum { DIFFU_SIMD_KBLOCK = 64 };

typedef struct diffu_simd {
    const char *name; /* "avx512", "avx2", "scalar" */
    /* y = x * rsqrt(mean(x^2) + eps) * w over h values; y may equal x */
    void (*rmsnorm)(float *y, const float *x, const float *w, int h, float eps);
    /* x += d, then y = rmsnorm(x) */
    void (*add_rmsnorm)(float *x, const float *d, float *y, const float *w, int h, float eps);
    /* x += d */
    void (*add)(float *x, const float *d, size_t n);
    /* one head of 2*half values, NeoX layout: (x[j], x[j+half]) rotated by (cs[j], sn[j]) */
    void (*rope)(float *x, const float *cs, const float *sn, int half);
    /* g = silu(g) * u */
    void (*swiglu)(float *g, const float *u, size_t n);
    /* row = softmax(row) over n >= 1 values */
    void (*softmax)(float *row, int n);
    /* o = BF16(x), round to nearest even, NaN kept quiet (diffu_f32_to_bf16) */
    void (*to_bf16)(uint16_t *o, const float *x, size_t n);
    /* symmetric int8: o = round(x * 127 / max|x|) (nearest even), returns max|x|/127 (0 for a zero row) */
    float (*to_s8)(int8_t *o, const float *x, int n);
    /* S[rn x L] (row stride lds) = scale * Q[rn x hd] (stride ldq) . K[L x hd]^T (stride ldk).
     * kt: scratch of hd * DIFFU_SIMD_KBLOCK floats. */
    void (*qk)(float *S, int lds, const float *Q, int ldq, const float *K, int ldk, int rn, int L, int hd, float scale,
               float *kt);
    /* O[rn x hd] (stride ldo) = P[rn x L] (stride ldp) . V[L x hd] (stride ldv) */
    void (*pv)(float *O, int ldo, const float *P, int ldp, const float *V, int ldv, int rn, int L, int hd);
} diffu_simd;

/* The table for this process (once, thread-safe): the best the CPU (after
 * $DIFFU_ISA) runs, or $DIFFU_SIMD when it names one the CPU runs (else a
 * warning and the best). */
const diffu_simd *diffu_simd_get(void);

/* The table called name ("scalar", "avx2", "avx512"), or NULL when this CPU
 * (after $DIFFU_ISA) cannot run it; *why (if non-NULL) then says what is missing. */
const diffu_simd *diffu_simd_table(const char *name, const char **why);

#endif
