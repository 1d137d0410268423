/* simd_int.h — private to model/simd*.c: the per-ISA tables and the shared
 * scalar pieces (see simd.h). Nothing else includes it. */
#ifndef DIFFU_SIMD_INT_H
#define DIFFU_SIMD_INT_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "simd.h"

extern const diffu_simd diffu_simd_scalar_table;
extern const diffu_simd diffu_simd_avx2_table;
extern const diffu_simd diffu_simd_avx512_table;

/* The exp polynomial every table evaluates (Cephes-style range reduction +
 * degree-6 polynomial, ~2 ulp on [-87.3, 88.7], clamped outside), as constants. */
#define DIFFU_EXP_LO (-87.3f)
#define DIFFU_EXP_HI 88.7f
#define DIFFU_EXP_LOG2E 1.44269504088896341f
#define DIFFU_EXP_ROUND 12582912.0f /* 1.5 * 2^23: adding and subtracting it rounds to an integer */
#define DIFFU_EXP_C1 0.693359375f
#define DIFFU_EXP_C2 2.12194440e-4f
#define DIFFU_EXP_P0 1.9875691500e-4f
#define DIFFU_EXP_P1 1.3981999507e-3f
#define DIFFU_EXP_P2 8.3334519073e-3f
#define DIFFU_EXP_P3 4.1665795894e-2f
#define DIFFU_EXP_P4 1.6666665459e-1f
#define DIFFU_EXP_P5 5.0000001201e-1f

static inline float diffu_simd_exp1(float x) {
    x = x < DIFFU_EXP_LO ? DIFFU_EXP_LO : x;
    x = x > DIFFU_EXP_HI ? DIFFU_EXP_HI : x;
    float fx = (x * DIFFU_EXP_LOG2E + DIFFU_EXP_ROUND) - DIFFU_EXP_ROUND;
    float r = x - fx * DIFFU_EXP_C1;
    r = r + fx * DIFFU_EXP_C2;
    float r2 = r * r;
    float y = DIFFU_EXP_P0;
    y = y * r + DIFFU_EXP_P1;
    y = y * r + DIFFU_EXP_P2;
    y = y * r + DIFFU_EXP_P3;
    y = y * r + DIFFU_EXP_P4;
    y = y * r + DIFFU_EXP_P5;
    y = y * r2 + r + 1.0f;
    int32_t e = ((int32_t)fx + 127) << 23;
    float scale;
    memcpy(&scale, &e, 4);
    return y * scale;
}

/* The key block [kb, kb + nk) transposed for the vector qk kernels:
 * kt[d * DIFFU_SIMD_KBLOCK + j] = K[kb + j][d], zero for nk <= j < DIFFU_SIMD_KBLOCK. */
static inline void diffu_simd_kt(float *kt, const float *K, int ldk, int kb, int nk, int hd) {
    for (int d = 0; d < hd; d++) memset(kt + (size_t)d * DIFFU_SIMD_KBLOCK + nk, 0, (size_t)(DIFFU_SIMD_KBLOCK - nk) * 4);
    for (int j = 0; j < nk; j++) {
        const float *k = K + (size_t)(kb + j) * ldk;
        for (int d = 0; d < hd; d++) kt[(size_t)d * DIFFU_SIMD_KBLOCK + j] = k[d];
    }
}

/* The vector tables' attention drivers: rows by nr (the table's register
 * block: 4 for avx2, 6 for avx512), then one at a time, through the table's
 * register-blocked kernels (each element computed in the same order by both, so
 * the blocking never shows in the bits). */
typedef void (*diffu_simd_qk_rows)(float *S, int lds, const float *Q, int ldq, const float *kt, int hd, int nk,
                                   float scale);
typedef void (*diffu_simd_pv_rows)(float *O, int ldo, const float *P, int ldp, const float *V, int ldv, int L, int nd);

static inline void diffu_simd_qk_drive(float *S, int lds, const float *Q, int ldq, const float *K, int ldk, int rn, int L,
                                       int hd, float scale, float *kt, int nr, diffu_simd_qk_rows rowsn,
                                       diffu_simd_qk_rows rows1) {
    for (int kb = 0; kb < L; kb += DIFFU_SIMD_KBLOCK) {
        int nk = L - kb < DIFFU_SIMD_KBLOCK ? L - kb : DIFFU_SIMD_KBLOCK;
        diffu_simd_kt(kt, K, ldk, kb, nk, hd);
        int i = 0;
        for (; i + nr <= rn; i += nr) rowsn(S + (size_t)i * lds + kb, lds, Q + (size_t)i * ldq, ldq, kt, hd, nk, scale);
        for (; i < rn; i++) rows1(S + (size_t)i * lds + kb, lds, Q + (size_t)i * ldq, ldq, kt, hd, nk, scale);
    }
}

/* O in column blocks of width cb (the kernels' register block). */
static inline void diffu_simd_pv_drive(float *O, int ldo, const float *P, int ldp, const float *V, int ldv, int rn, int L,
                                       int hd, int cb, int nr, diffu_simd_pv_rows rowsn, diffu_simd_pv_rows rows1) {
    for (int d0 = 0; d0 < hd; d0 += cb) {
        int nd = hd - d0 < cb ? hd - d0 : cb;
        int i = 0;
        for (; i + nr <= rn; i += nr) rowsn(O + (size_t)i * ldo + d0, ldo, P + (size_t)i * ldp, ldp, V + d0, ldv, L, nd);
        for (; i < rn; i++) rows1(O + (size_t)i * ldo + d0, ldo, P + (size_t)i * ldp, ldp, V + d0, ldv, L, nd);
    }
}

#endif
