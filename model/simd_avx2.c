/* simd_avx2.c — the AVX2 + FMA table (see simd.h); compiled with
 * -mavx2 -mfma -mno-avx512f (CMakeLists.txt) so that it is the real fallback
 * even in a -march=native build on an AVX-512 CPU. 8 lanes; tails by
 * maskload/maskstore. */
#include <immintrin.h>

#include "dtype.h"
#include "simd_int.h"

#define W 8

static inline __m256i tail(int n) {
    static const int32_t ramp[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_loadu_si256((const __m256i *)ramp));
}
static inline __m256 ld(const float *p, int n) { return n >= W ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, tail(n)); }
static inline void st(float *p, int n, __m256 v) {
    if (n >= W) _mm256_storeu_ps(p, v);
    else _mm256_maskstore_ps(p, tail(n), v);
}

static inline __m256 exp8(__m256 x) {
    x = _mm256_max_ps(x, _mm256_set1_ps(DIFFU_EXP_LO));
    x = _mm256_min_ps(x, _mm256_set1_ps(DIFFU_EXP_HI));
    __m256 rnd = _mm256_set1_ps(DIFFU_EXP_ROUND);
    __m256 fx = _mm256_sub_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(DIFFU_EXP_LOG2E), rnd), rnd);
    __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(DIFFU_EXP_C1), x);
    r = _mm256_fmadd_ps(fx, _mm256_set1_ps(DIFFU_EXP_C2), r);
    __m256 r2 = _mm256_mul_ps(r, r);
    __m256 y = _mm256_set1_ps(DIFFU_EXP_P0);
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(DIFFU_EXP_P1));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(DIFFU_EXP_P2));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(DIFFU_EXP_P3));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(DIFFU_EXP_P4));
    y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(DIFFU_EXP_P5));
    y = _mm256_add_ps(_mm256_fmadd_ps(y, r2, r), _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
static inline float hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static float sumsq_v(const float *x, int h) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int i = 0;
    for (; i + 4 * W <= h; i += 4 * W) {
        __m256 x0 = _mm256_loadu_ps(x + i), x1 = _mm256_loadu_ps(x + i + W);
        __m256 x2 = _mm256_loadu_ps(x + i + 2 * W), x3 = _mm256_loadu_ps(x + i + 3 * W);
        a0 = _mm256_fmadd_ps(x0, x0, a0);
        a1 = _mm256_fmadd_ps(x1, x1, a1);
        a2 = _mm256_fmadd_ps(x2, x2, a2);
        a3 = _mm256_fmadd_ps(x3, x3, a3);
    }
    for (; i < h; i += W) {
        __m256 v = ld(x + i, h - i);
        a0 = _mm256_fmadd_ps(v, v, a0);
    }
    return hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
}

static void rmsnorm_v(float *y, const float *x, const float *w, int h, float eps) {
    __m256 s = _mm256_set1_ps(1.0f / sqrtf(sumsq_v(x, h) / (float)h + eps));
    for (int i = 0; i < h; i += W) st(y + i, h - i, _mm256_mul_ps(_mm256_mul_ps(ld(x + i, h - i), s), ld(w + i, h - i)));
}

static void add_v(float *x, const float *d, size_t n) {
    for (size_t i = 0; i < n; i += W) {
        int k = n - i >= W ? W : (int)(n - i);
        st(x + i, k, _mm256_add_ps(ld(x + i, k), ld(d + i, k)));
    }
}

static void add_rmsnorm_v(float *x, const float *d, float *y, const float *w, int h, float eps) {
    add_v(x, d, (size_t)h);
    rmsnorm_v(y, x, w, h, eps);
}

static void rope_v(float *x, const float *cs, const float *sn, int half) {
    for (int j = 0; j < half; j += W) {
        int k = half - j;
        __m256 a = ld(x + j, k), b = ld(x + j + half, k), c = ld(cs + j, k), s = ld(sn + j, k);
        st(x + j, k, _mm256_fmsub_ps(a, c, _mm256_mul_ps(b, s)));
        st(x + j + half, k, _mm256_fmadd_ps(b, c, _mm256_mul_ps(a, s)));
    }
}

static void swiglu_v(float *g, const float *u, size_t n) {
    __m256 one = _mm256_set1_ps(1.0f);
    for (size_t i = 0; i < n; i += W) {
        int k = n - i >= W ? W : (int)(n - i);
        __m256 x = ld(g + i, k);
        __m256 den = _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), x)));
        st(g + i, k, _mm256_mul_ps(_mm256_div_ps(x, den), ld(u + i, k)));
    }
}

static void softmax_v(float *row, int n) {
    __m256 mx = _mm256_set1_ps(-INFINITY);
    int j = 0;
    for (; j + W <= n; j += W) mx = _mm256_max_ps(mx, _mm256_loadu_ps(row + j));
    float m1 = hmax(mx);
    for (; j < n; j++) m1 = row[j] > m1 ? row[j] : m1;
    __m256 m = _mm256_set1_ps(m1);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0;
    for (j = 0; j + 2 * W <= n; j += 2 * W) {
        __m256 e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + j), m));
        __m256 e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(row + j + W), m));
        _mm256_storeu_ps(row + j, e0), _mm256_storeu_ps(row + j + W, e1);
        a0 = _mm256_add_ps(a0, e0), a1 = _mm256_add_ps(a1, e1);
    }
    for (; j < n; j += W) {
        int k = n - j;
        __m256 e = _mm256_and_ps(exp8(_mm256_sub_ps(ld(row + j, k), m)),
                                 _mm256_castsi256_ps(k >= W ? _mm256_set1_epi32(-1) : tail(k)));
        st(row + j, k, e);
        a0 = _mm256_add_ps(a0, e);
    }
    __m256 inv = _mm256_set1_ps(1.0f / hsum(_mm256_add_ps(a0, a1)));
    for (j = 0; j < n; j += W) st(row + j, n - j, _mm256_mul_ps(ld(row + j, n - j), inv));
}

static void to_bf16_v(uint16_t *o, const float *x, size_t n) {
    size_t i = 0;
    const __m256i absm = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
    const __m256i one = _mm256_set1_epi32(1), half = _mm256_set1_epi32(0x7fff), qbit = _mm256_set1_epi32(0x40);
    for (; i + W <= n; i += W) {
        __m256i u = _mm256_castps_si256(_mm256_loadu_ps(x + i));
        /* |u| > inf as signed ints is the unsigned compare: both are below 2^31 */
        __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, absm), inf);
        __m256i hi = _mm256_srli_epi32(u, 16);
        __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_and_si256(hi, one), half)), 16);
        r = _mm256_blendv_epi8(r, _mm256_or_si256(hi, qbit), nan);
        /* 8 x 32 -> 8 x 16 (values < 2^16: packus is exact) */
        __m128i p = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
        _mm_storeu_si128((__m128i *)(o + i), p);
    }
    for (; i < n; i++) o[i] = diffu_f32_to_bf16(x[i]);
}

static float to_s8_v(int8_t *o, const float *x, int n) {
    const __m256 absm = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    __m256 am = _mm256_setzero_ps();
    for (int i = 0; i < n; i += W) am = _mm256_max_ps(am, _mm256_and_ps(ld(x + i, n - i), absm));
    float amax = hmax(am);
    float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    __m256 s = _mm256_set1_ps(inv);
    int i = 0;
    for (; i + W <= n; i += W) {
        __m256i q = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i), s)); /* nearest even, as lrintf */
        __m128i p16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
        __m128i p8 = _mm_packs_epi16(p16, p16);
        _mm_storel_epi64((__m128i *)(o + i), p8);
    }
    for (; i < n; i++) o[i] = (int8_t)lrintf(x[i] * inv);
    return amax / 127.0f;
}

/* ---------------------------------------------------------------- attention */

enum { KB = DIFFU_SIMD_KBLOCK, NV = 2 }; /* register block: R rows x 16 columns */

/* S[r][c0 .. c0+16) of one key block: a chain of FMAs over d = 0..hd-1 in order, then * scale. */
#define QK_ROWS(R)                                                                                                 \
    static inline void qk_rows##R(float *S, int lds, const float *Q, int ldq, const float *kt, int hd, int nk,   \
                                  float scale) {                                                                  \
        for (int c0 = 0; c0 < nk; c0 += NV * W) {                                                                \
            __m256 acc[R][NV];                                                                                   \
            for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();                             \
            for (int d = 0; d < hd; d++) {                                                                       \
                const float *kd = kt + (size_t)d * KB + c0;                                                      \
                __m256 k0 = _mm256_loadu_ps(kd), k1 = _mm256_loadu_ps(kd + W);                                   \
                for (int r = 0; r < R; r++) {                                                                    \
                    __m256 q = _mm256_broadcast_ss(Q + (size_t)r * ldq + d);                                     \
                    acc[r][0] = _mm256_fmadd_ps(q, k0, acc[r][0]);                                               \
                    acc[r][1] = _mm256_fmadd_ps(q, k1, acc[r][1]);                                               \
                }                                                                                                \
            }                                                                                                    \
            for (int r = 0; r < R; r++)                                                                          \
                for (int v = 0; v < NV && c0 + v * W < nk; v++)                                                  \
                    st(S + (size_t)r * lds + c0 + v * W, nk - c0 - v * W, _mm256_mul_ps(acc[r][v], _mm256_set1_ps(scale)));         \
        }                                                                                                        \
    }
QK_ROWS(4)
QK_ROWS(1)

static void qk_v(float *S, int lds, const float *Q, int ldq, const float *K, int ldk, int rn, int L, int hd, float scale,
                 float *kt) {
    diffu_simd_qk_drive(S, lds, Q, ldq, K, ldk, rn, L, hd, scale, kt, 4, qk_rows4, qk_rows1);
}

/* O[r][d0 .. d0+16): a chain of FMAs over j = 0..L-1 in order. */
#define PV_ROWS(R)                                                                                                 \
    static inline void pv_rows##R(float *O, int ldo, const float *P, int ldp, const float *V, int ldv, int L,     \
                                  int nd) {                                                                     \
        __m256i m0 = tail(nd), m1 = tail(nd - W);                                                                \
        __m256 acc[R][NV];                                                                                       \
        for (int r = 0; r < R; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();                                 \
        for (int j = 0; j < L; j++) {                                                                            \
            const float *vj = V + (size_t)j * ldv;                                                               \
            __m256 v0 = nd >= W ? _mm256_loadu_ps(vj) : _mm256_maskload_ps(vj, m0);                              \
            __m256 v1 = nd >= 2 * W ? _mm256_loadu_ps(vj + W) : _mm256_maskload_ps(vj + W, m1);                  \
            for (int r = 0; r < R; r++) {                                                                        \
                __m256 p = _mm256_broadcast_ss(P + (size_t)r * ldp + j);                                         \
                acc[r][0] = _mm256_fmadd_ps(p, v0, acc[r][0]);                                                   \
                acc[r][1] = _mm256_fmadd_ps(p, v1, acc[r][1]);                                                   \
            }                                                                                                    \
        }                                                                                                        \
        for (int r = 0; r < R; r++) {                                                                            \
            st(O + (size_t)r * ldo, nd, acc[r][0]);                                                              \
            if (nd > W) st(O + (size_t)r * ldo + W, nd - W, acc[r][1]);                                          \
        }                                                                                                        \
    }
PV_ROWS(4)
PV_ROWS(1)

static void pv_v(float *O, int ldo, const float *P, int ldp, const float *V, int ldv, int rn, int L, int hd) {
    diffu_simd_pv_drive(O, ldo, P, ldp, V, ldv, rn, L, hd, NV * W, 4, pv_rows4, pv_rows1);
}

const diffu_simd diffu_simd_avx2_table = {
    "avx2", rmsnorm_v, add_rmsnorm_v, add_v, rope_v, swiglu_v, softmax_v, to_bf16_v, to_s8_v, qk_v, pv_v,
};
