/* simd_avx512.c — the AVX-512 table (see simd.h); compiled with
 * -mavx512f -mavx512bw -mavx512vl -mavx512dq -mfma (CMakeLists.txt), called
 * only where diffu_simd_table found those. 16 lanes; tails by masks. */
#include <immintrin.h>

#include "simd_int.h"

#define W 16

static inline __mmask16 tail(int n) { return n >= W ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u); }

static inline __m512 exp16(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(DIFFU_EXP_LO));
    x = _mm512_min_ps(x, _mm512_set1_ps(DIFFU_EXP_HI));
    __m512 rnd = _mm512_set1_ps(DIFFU_EXP_ROUND);
    __m512 fx = _mm512_sub_ps(_mm512_fmadd_ps(x, _mm512_set1_ps(DIFFU_EXP_LOG2E), rnd), rnd);
    __m512 r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(DIFFU_EXP_C1), x);
    r = _mm512_fmadd_ps(fx, _mm512_set1_ps(DIFFU_EXP_C2), r);
    __m512 r2 = _mm512_mul_ps(r, r);
    __m512 y = _mm512_set1_ps(DIFFU_EXP_P0);
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(DIFFU_EXP_P1));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(DIFFU_EXP_P2));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(DIFFU_EXP_P3));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(DIFFU_EXP_P4));
    y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(DIFFU_EXP_P5));
    y = _mm512_add_ps(_mm512_fmadd_ps(y, r2, r), _mm512_set1_ps(1.0f));
    __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvttps_epi32(fx), _mm512_set1_epi32(127)), 23);
    return _mm512_mul_ps(y, _mm512_castsi512_ps(e));
}

/* sum of 4 accumulators in a fixed order, then the lanes pairwise */
static inline float hsum4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

static float sumsq_v(const float *x, int h) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 4 * W <= h; i += 4 * W) {
        __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + W);
        __m512 x2 = _mm512_loadu_ps(x + i + 2 * W), x3 = _mm512_loadu_ps(x + i + 3 * W);
        a0 = _mm512_fmadd_ps(x0, x0, a0);
        a1 = _mm512_fmadd_ps(x1, x1, a1);
        a2 = _mm512_fmadd_ps(x2, x2, a2);
        a3 = _mm512_fmadd_ps(x3, x3, a3);
    }
    for (; i < h; i += W) {
        __m512 v = _mm512_maskz_loadu_ps(tail(h - i), x + i);
        a0 = _mm512_fmadd_ps(v, v, a0);
    }
    return hsum4(a0, a1, a2, a3);
}

static void scale_w(float *y, const float *x, const float *w, int h, float inv) {
    __m512 s = _mm512_set1_ps(inv);
    for (int i = 0; i < h; i += W) {
        __mmask16 m = tail(h - i);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), s);
        _mm512_mask_storeu_ps(y + i, m, _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, w + i)));
    }
}

static void rmsnorm_v(float *y, const float *x, const float *w, int h, float eps) {
    scale_w(y, x, w, h, 1.0f / sqrtf(sumsq_v(x, h) / (float)h + eps));
}

static void add_v(float *x, const float *d, size_t n) {
    size_t i = 0;
    for (; i + W <= n; i += W) _mm512_storeu_ps(x + i, _mm512_add_ps(_mm512_loadu_ps(x + i), _mm512_loadu_ps(d + i)));
    if (i < n) {
        __mmask16 m = tail((int)(n - i));
        _mm512_mask_storeu_ps(x + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, x + i), _mm512_maskz_loadu_ps(m, d + i)));
    }
}

static void add_rmsnorm_v(float *x, const float *d, float *y, const float *w, int h, float eps) {
    add_v(x, d, (size_t)h);
    rmsnorm_v(y, x, w, h, eps);
}

static void rope_v(float *x, const float *cs, const float *sn, int half) {
    for (int j = 0; j < half; j += W) {
        __mmask16 m = tail(half - j);
        __m512 a = _mm512_maskz_loadu_ps(m, x + j), b = _mm512_maskz_loadu_ps(m, x + j + half);
        __m512 c = _mm512_maskz_loadu_ps(m, cs + j), s = _mm512_maskz_loadu_ps(m, sn + j);
        _mm512_mask_storeu_ps(x + j, m, _mm512_fmsub_ps(a, c, _mm512_mul_ps(b, s)));
        _mm512_mask_storeu_ps(x + j + half, m, _mm512_fmadd_ps(b, c, _mm512_mul_ps(a, s)));
    }
}

static void swiglu_v(float *g, const float *u, size_t n) {
    __m512 one = _mm512_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += W) {
        __mmask16 m = tail(n - i > W ? W : (int)(n - i));
        __m512 x = _mm512_maskz_loadu_ps(m, g + i);
        __m512 den = _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), x)));
        _mm512_mask_storeu_ps(g + i, m, _mm512_mul_ps(_mm512_div_ps(x, den), _mm512_maskz_loadu_ps(m, u + i)));
    }
}

static void softmax_v(float *row, int n) {
    __m512 mx = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < n; j += W) mx = _mm512_max_ps(mx, _mm512_mask_loadu_ps(mx, tail(n - j), row + j));
    __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int j = 0;
    for (; j + 4 * W <= n; j += 4 * W) {
        __m512 e0 = exp16(_mm512_sub_ps(_mm512_loadu_ps(row + j), m));
        __m512 e1 = exp16(_mm512_sub_ps(_mm512_loadu_ps(row + j + W), m));
        __m512 e2 = exp16(_mm512_sub_ps(_mm512_loadu_ps(row + j + 2 * W), m));
        __m512 e3 = exp16(_mm512_sub_ps(_mm512_loadu_ps(row + j + 3 * W), m));
        _mm512_storeu_ps(row + j, e0), _mm512_storeu_ps(row + j + W, e1);
        _mm512_storeu_ps(row + j + 2 * W, e2), _mm512_storeu_ps(row + j + 3 * W, e3);
        a0 = _mm512_add_ps(a0, e0), a1 = _mm512_add_ps(a1, e1), a2 = _mm512_add_ps(a2, e2), a3 = _mm512_add_ps(a3, e3);
    }
    for (; j < n; j += W) {
        __mmask16 k = tail(n - j);
        __m512 e = _mm512_maskz_mov_ps(k, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, row + j), m)));
        _mm512_mask_storeu_ps(row + j, k, e);
        a0 = _mm512_add_ps(a0, e);
    }
    __m512 inv = _mm512_set1_ps(1.0f / hsum4(a0, a1, a2, a3));
    for (j = 0; j < n; j += W) {
        __mmask16 k = tail(n - j);
        _mm512_mask_storeu_ps(row + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, row + j), inv));
    }
}

/* as diffu_f32_to_bf16: NaN -> quiet NaN of the same sign and payload top, else round to nearest even */
static inline __m256i bf16_16(__m512 x) {
    __m512i u = _mm512_castps_si512(x);
    __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                            _mm512_set1_epi32(0x7f800000));
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    __m512i q = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
    return _mm512_cvtepi32_epi16(_mm512_mask_mov_epi32(r, nan, q));
}

static void to_bf16_v(uint16_t *o, const float *x, size_t n) {
    size_t i = 0;
    for (; i + W <= n; i += W) _mm256_storeu_si256((__m256i *)(o + i), bf16_16(_mm512_loadu_ps(x + i)));
    if (i < n) {
        __mmask16 m = tail((int)(n - i));
        _mm256_mask_storeu_epi16(o + i, m, bf16_16(_mm512_maskz_loadu_ps(m, x + i)));
    }
}

static float to_s8_v(int8_t *o, const float *x, int n) {
    __m512 am = _mm512_setzero_ps();
    for (int i = 0; i < n; i += W) am = _mm512_max_ps(am, _mm512_abs_ps(_mm512_maskz_loadu_ps(tail(n - i), x + i)));
    float amax = _mm512_reduce_max_ps(am);
    float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    __m512 s = _mm512_set1_ps(inv);
    for (int i = 0; i < n; i += W) {
        __mmask16 m = tail(n - i);
        __m512i q = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + i), s)); /* nearest even, as lrintf */
        _mm_mask_storeu_epi8(o + i, m, _mm512_cvtsepi32_epi8(q));
    }
    return amax / 127.0f;
}

/* ---------------------------------------------------------------- attention */

enum { KB = DIFFU_SIMD_KBLOCK, NV = KB / W };

/* The row kernels keep their accumulators in named variables, not arrays: GCC
 * 12 kept an array's copy on the stack in step with the registers (a store per
 * accumulator per key in pv). 6 rows x 4 vectors = 24 accumulators, + 4
 * operands + 1 broadcast = 29 of the 32 zmm registers. */
#define ACC_DECL(r) __m512 a##r##0 = _mm512_setzero_ps(), a##r##1 = a##r##0, a##r##2 = a##r##0, a##r##3 = a##r##0
#define ACC_FMA(r, x)                                                                                                \
    do {                                                                                                             \
        __m512 b_ = _mm512_set1_ps(x);                                                                               \
        a##r##0 = _mm512_fmadd_ps(b_, v0, a##r##0), a##r##1 = _mm512_fmadd_ps(b_, v1, a##r##1);                     \
        a##r##2 = _mm512_fmadd_ps(b_, v2, a##r##2), a##r##3 = _mm512_fmadd_ps(b_, v3, a##r##3);                     \
    } while (0)
/* stores of row r under the masks m0..m3 (a zero mask stores nothing and cannot fault), after f */
#define ACC_STORE(r, base, f)                                                                                        \
    do {                                                                                                             \
        float *o_ = (base);                                                                                          \
        _mm512_mask_storeu_ps(o_, m0, f(a##r##0)), _mm512_mask_storeu_ps(o_ + W, m1, f(a##r##1));                   \
        _mm512_mask_storeu_ps(o_ + 2 * W, m2, f(a##r##2)), _mm512_mask_storeu_ps(o_ + 3 * W, m3, f(a##r##3));       \
    } while (0)
#define ACC_MASKS(n)                                                                                                 \
    __mmask16 m0 = tail(n), m1 = (n) > W ? tail((n) - W) : 0, m2 = (n) > 2 * W ? tail((n) - 2 * W) : 0;             \
    __mmask16 m3 = (n) > 3 * W ? tail((n) - 3 * W) : 0
#define LOAD4(p, m)                                                                                                  \
    __m512 v0 = _mm512_maskz_loadu_ps(m##0, (p)), v1 = _mm512_maskz_loadu_ps(m##1, (p) + W);                        \
    __m512 v2 = _mm512_maskz_loadu_ps(m##2, (p) + 2 * W), v3 = _mm512_maskz_loadu_ps(m##3, (p) + 3 * W)
#define FULL(x) (x)
/* the 6-row block: accumulators, one step's FMAs (x: row 0's operand, ld: the row stride), stores */
#define ACC_DECL6 ACC_DECL(0); ACC_DECL(1); ACC_DECL(2); ACC_DECL(3); ACC_DECL(4); ACC_DECL(5)
#define ACC_FMA6(x, ld)                                                                                              \
    ACC_FMA(0, (x)[0]); ACC_FMA(1, (x)[(size_t)(ld)]); ACC_FMA(2, (x)[(size_t)2 * (ld)]);                           \
    ACC_FMA(3, (x)[(size_t)3 * (ld)]); ACC_FMA(4, (x)[(size_t)4 * (ld)]); ACC_FMA(5, (x)[(size_t)5 * (ld)])
#define ACC_STORE6(base, ld, f)                                                                                      \
    ACC_STORE(0, (base), f); ACC_STORE(1, (base) + (size_t)(ld), f); ACC_STORE(2, (base) + (size_t)2 * (ld), f);    \
    ACC_STORE(3, (base) + (size_t)3 * (ld), f); ACC_STORE(4, (base) + (size_t)4 * (ld), f);                         \
    ACC_STORE(5, (base) + (size_t)5 * (ld), f)

/* S rows of one key block: every element a chain of FMAs over d = 0..hd-1 in order, then * scale. */
static inline void qk_rows6(float *S, int lds, const float *Q, int ldq, const float *kt, int hd, int nk, float scale) {
    __mmask16 f0 = 0xffff, f1 = f0, f2 = f0, f3 = f0; /* kt is KB wide, zero past nk */
    ACC_DECL6;
    for (int d = 0; d < hd; d++) {
        LOAD4(kt + (size_t)d * KB, f);
        ACC_FMA6(Q + d, ldq);
    }
    __m512 sc = _mm512_set1_ps(scale);
    ACC_MASKS(nk);
#define SCALE(x) _mm512_mul_ps((x), sc)
    ACC_STORE6(S, lds, SCALE);
}

static inline void qk_rows1(float *S, int lds, const float *Q, int ldq, const float *kt, int hd, int nk, float scale) {
    (void)lds, (void)ldq;
    __mmask16 f0 = 0xffff, f1 = f0, f2 = f0, f3 = f0;
    ACC_DECL(0);
    for (int d = 0; d < hd; d++) {
        LOAD4(kt + (size_t)d * KB, f);
        ACC_FMA(0, Q[d]);
    }
    __m512 sc = _mm512_set1_ps(scale);
    ACC_MASKS(nk);
    ACC_STORE(0, S, SCALE);
#undef SCALE
}

static void qk_v(float *S, int lds, const float *Q, int ldq, const float *K, int ldk, int rn, int L, int hd, float scale,
                 float *kt) {
    diffu_simd_qk_drive(S, lds, Q, ldq, K, ldk, rn, L, hd, scale, kt, 6, qk_rows6, qk_rows1);
}

/* O rows of one 64-column block [d0, d0 + nd): every element a chain of FMAs over j = 0..L-1 in order. */
static inline void pv_rows6(float *O, int ldo, const float *P, int ldp, const float *V, int ldv, int L, int nd) {
    ACC_MASKS(nd);
    ACC_DECL6;
    for (int j = 0; j < L; j++) {
        LOAD4(V + (size_t)j * ldv, m);
        ACC_FMA6(P + j, ldp);
    }
    ACC_STORE6(O, ldo, FULL);
}

static inline void pv_rows1(float *O, int ldo, const float *P, int ldp, const float *V, int ldv, int L, int nd) {
    (void)ldo, (void)ldp;
    ACC_MASKS(nd);
    ACC_DECL(0);
    for (int j = 0; j < L; j++) {
        LOAD4(V + (size_t)j * ldv, m);
        ACC_FMA(0, P[j]);
    }
    ACC_STORE(0, O, FULL);
}

static void pv_v(float *O, int ldo, const float *P, int ldp, const float *V, int ldv, int rn, int L, int hd) {
    diffu_simd_pv_drive(O, ldo, P, ldp, V, ldv, rn, L, hd, KB, 6, pv_rows6, pv_rows1);
}

const diffu_simd diffu_simd_avx512_table = {
    "avx512", rmsnorm_v, add_rmsnorm_v, add_v, rope_v, swiglu_v, softmax_v, to_bf16_v, to_s8_v, qk_v, pv_v,
};
