/* sampler_math.h — the samplers' full-vocabulary loops, vectorized (internal
 * to sampler.c and sampler_vp.c).
 *
 * Everything stays in double, as sampler.h promises (the confidences match a
 * float64 reference to ~1e-15): exp and log are our own, accurate to ~1 ulp
 * over the range used (exp: 2^n x a degree-13 Taylor polynomial on
 * |r| <= ln2/2, truncation < 4e-18; log: k ln2 + the atanh series to s^23 on
 * m in [sqrt(1/2), sqrt(2))), written branch-free so that 8 doubles go per
 * AVX-512 instruction; sums use 4 x 8 independent accumulators (safe: every
 * term is in [0, 1] after the max is subtracted, and the partial sums are
 * added pairwise). Where the compiler has no AVX-512 (DIFFU_NATIVE off on an
 * older build host) the same formulas run scalar.
 *   vm_load_max   z[v] = x[v] in double (/ T when T > 0: the scalar division, so the
 *                 same bits), returns the max: the widening and the max in one pass
 *   vm_max        max of z[0..n) (NaN-free input)
 *   vm_first_eq   the first v with z[v] == m (-1 if none): the argmax's lowest id
 *   vm_exp_sum    z[v] = exp(z[v] - m) in place; returns the sum (exp(-inf) = 0
 *                 exactly; terms below exp(-708) are flushed to 0)
 *   vm_sum        sum of z[0..n)
 *   vm_max_excl   max of z[0..n) except index skip (-1 if n <= 1)
 *   vm_entropy    sum over z[v] > 0 of p log(p + 1e-10), p = z[v] / Z
 * Not thread-aware; pure functions. */
#ifndef DIFFU_SAMPLER_MATH_H
#define DIFFU_SAMPLER_MATH_H

#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__AVX512F__)
#include <immintrin.h>
#endif

#define VM_LN2_HI 6.93147180369123816490e-01
#define VM_LN2_LO 1.90821492927058770002e-10
#define VM_LOG2E 1.44269504088896338700e+00
#define VM_SHIFT 6755399441055744.0 /* 1.5 x 2^52: adding it rounds to an integer in the low bits */

/* exp(x) for x <= 0 (x - max); 0 below -708 (and for -inf). */
static inline double vm_exp1(double x) {
    double xc = x < -708.0 ? -708.0 : x;
    double t = xc * VM_LOG2E + VM_SHIFT;
    double n = t - VM_SHIFT;
    int64_t ti;
    memcpy(&ti, &t, 8);
    double r = fma(-n, VM_LN2_HI, xc);
    r = fma(-n, VM_LN2_LO, r);
    double p = 1.0 / 6227020800.0;
    p = fma(p, r, 1.0 / 479001600.0);
    p = fma(p, r, 1.0 / 39916800.0);
    p = fma(p, r, 1.0 / 3628800.0);
    p = fma(p, r, 1.0 / 362880.0);
    p = fma(p, r, 1.0 / 40320.0);
    p = fma(p, r, 1.0 / 5040.0);
    p = fma(p, r, 1.0 / 720.0);
    p = fma(p, r, 1.0 / 120.0);
    p = fma(p, r, 1.0 / 24.0);
    p = fma(p, r, 1.0 / 6.0);
    p = fma(p, r, 0.5);
    p = fma(p, r, 1.0);
    p = fma(p, r, 1.0);
    int64_t e = ((ti - (int64_t)0x4338000000000000LL) + 1023) << 52;
    double sc;
    memcpy(&sc, &e, 8);
    return x < -708.0 ? 0.0 : p * sc;
}

/* log(x) for normal x > 0. */
static inline double vm_log1(double x) {
    int64_t b;
    memcpy(&b, &x, 8);
    int64_t k = ((b >> 52) & 0x7ff) - 1023;
    int64_t mb = (b & 0x000fffffffffffffLL) | 0x3ff0000000000000LL;
    double m;
    memcpy(&m, &mb, 8);
    if (m > 1.41421356237309504880) {
        m *= 0.5;
        k += 1;
    }
    double f = m - 1.0, s = f / (2.0 + f), s2 = s * s;
    double p = 2.0 / 23;
    p = fma(p, s2, 2.0 / 21);
    p = fma(p, s2, 2.0 / 19);
    p = fma(p, s2, 2.0 / 17);
    p = fma(p, s2, 2.0 / 15);
    p = fma(p, s2, 2.0 / 13);
    p = fma(p, s2, 2.0 / 11);
    p = fma(p, s2, 2.0 / 9);
    p = fma(p, s2, 2.0 / 7);
    p = fma(p, s2, 2.0 / 5);
    p = fma(p, s2, 2.0 / 3);
    p = fma(p, s2, 2.0);
    double kd = (double)k;
    return fma(kd, VM_LN2_HI, fma(kd, VM_LN2_LO, p * s));
}

#if defined(__AVX512F__)
static inline __m512d vm_exp8(__m512d x) {
    const __m512d lo = _mm512_set1_pd(-708.0);
    __mmask8 under = _mm512_cmp_pd_mask(x, lo, _CMP_LT_OQ);
    __m512d xc = _mm512_max_pd(x, lo);
    __m512d t = _mm512_fmadd_pd(xc, _mm512_set1_pd(VM_LOG2E), _mm512_set1_pd(VM_SHIFT));
    __m512d n = _mm512_sub_pd(t, _mm512_set1_pd(VM_SHIFT));
    __m512d r = _mm512_fnmadd_pd(n, _mm512_set1_pd(VM_LN2_HI), xc);
    r = _mm512_fnmadd_pd(n, _mm512_set1_pd(VM_LN2_LO), r);
    __m512d p = _mm512_set1_pd(1.0 / 6227020800.0);
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 479001600.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 39916800.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 3628800.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 362880.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 40320.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 5040.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 720.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 120.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 24.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0 / 6.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0.5));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(1.0));
    __m512i ti = _mm512_castpd_si512(t);
    __m512i e = _mm512_slli_epi64(
        _mm512_add_epi64(_mm512_sub_epi64(ti, _mm512_set1_epi64(0x4338000000000000LL)), _mm512_set1_epi64(1023)), 52);
    __m512d y = _mm512_mul_pd(p, _mm512_castsi512_pd(e));
    return _mm512_mask_mov_pd(y, under, _mm512_setzero_pd());
}
#endif

#if defined(__AVX512F__) && defined(__AVX512DQ__)
#define VM_HAVE_LOG8 1
static inline __m512d vm_log8(__m512d x) {
    __m512i b = _mm512_castpd_si512(x);
    __m512i k = _mm512_sub_epi64(_mm512_and_si512(_mm512_srli_epi64(b, 52), _mm512_set1_epi64(0x7ff)),
                                 _mm512_set1_epi64(1023));
    __m512i mb = _mm512_or_si512(_mm512_and_si512(b, _mm512_set1_epi64(0x000fffffffffffffLL)),
                                 _mm512_set1_epi64(0x3ff0000000000000LL));
    __m512d m = _mm512_castsi512_pd(mb);
    __mmask8 big = _mm512_cmp_pd_mask(m, _mm512_set1_pd(1.41421356237309504880), _CMP_GT_OQ);
    m = _mm512_mask_mul_pd(m, big, m, _mm512_set1_pd(0.5));
    k = _mm512_mask_add_epi64(k, big, k, _mm512_set1_epi64(1));
    __m512d f = _mm512_sub_pd(m, _mm512_set1_pd(1.0));
    __m512d sv = _mm512_div_pd(f, _mm512_add_pd(f, _mm512_set1_pd(2.0)));
    __m512d s2 = _mm512_mul_pd(sv, sv);
    __m512d p = _mm512_set1_pd(2.0 / 23);
    p = _mm512_fmadd_pd(p, s2, _mm512_set1_pd(2.0 / 21));
    p = _mm512_fmadd_pd(p, s2, _mm512_set1_pd(2.0 / 19));
    p = _mm512_fmadd_pd(p, s2, _mm512_set1_pd(2.0 / 17));
    p = _mm512_fmadd_pd(p, s2, _mm512_set1_pd(2.0 / 15));
    p = _mm512_fmadd_pd(p, s2, _mm512_set1_pd(2.0 / 13));
    p = _mm512_fmadd_pd(p, s2, _mm512_set1_pd(2.0 / 11));
    p = _mm512_fmadd_pd(p, s2, _mm512_set1_pd(2.0 / 9));
    p = _mm512_fmadd_pd(p, s2, _mm512_set1_pd(2.0 / 7));
    p = _mm512_fmadd_pd(p, s2, _mm512_set1_pd(2.0 / 5));
    p = _mm512_fmadd_pd(p, s2, _mm512_set1_pd(2.0 / 3));
    p = _mm512_fmadd_pd(p, s2, _mm512_set1_pd(2.0));
    __m512d kd = _mm512_cvtepi64_pd(k);
    return _mm512_fmadd_pd(kd, _mm512_set1_pd(VM_LN2_HI), _mm512_fmadd_pd(kd, _mm512_set1_pd(VM_LN2_LO), _mm512_mul_pd(p, sv)));
}
#endif

static inline double vm_max(const double *z, int n) {
    int v = 0;
    double m = -INFINITY;
#if defined(__AVX512F__)
    __m512d a0 = _mm512_set1_pd(-INFINITY), a1 = a0, a2 = a0, a3 = a0;
    for (; v + 32 <= n; v += 32) {
        a0 = _mm512_max_pd(a0, _mm512_loadu_pd(z + v));
        a1 = _mm512_max_pd(a1, _mm512_loadu_pd(z + v + 8));
        a2 = _mm512_max_pd(a2, _mm512_loadu_pd(z + v + 16));
        a3 = _mm512_max_pd(a3, _mm512_loadu_pd(z + v + 24));
    }
    m = _mm512_reduce_max_pd(_mm512_max_pd(_mm512_max_pd(a0, a1), _mm512_max_pd(a2, a3)));
#endif
    for (; v < n; v++) m = z[v] > m ? z[v] : m;
    return m;
}

static inline double vm_load_max(double *z, const float *x, int n, double T) {
    int v = 0;
    double m = -INFINITY;
#if defined(__AVX512F__)
    __m512d a0 = _mm512_set1_pd(-INFINITY), a1 = a0, tt = _mm512_set1_pd(T);
    if (T > 0)
        for (; v + 16 <= n; v += 16) {
            __m512d x0 = _mm512_div_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + v)), tt);
            __m512d x1 = _mm512_div_pd(_mm512_cvtps_pd(_mm256_loadu_ps(x + v + 8)), tt);
            _mm512_storeu_pd(z + v, x0), _mm512_storeu_pd(z + v + 8, x1);
            a0 = _mm512_max_pd(a0, x0), a1 = _mm512_max_pd(a1, x1);
        }
    else
        for (; v + 16 <= n; v += 16) {
            __m512d x0 = _mm512_cvtps_pd(_mm256_loadu_ps(x + v)), x1 = _mm512_cvtps_pd(_mm256_loadu_ps(x + v + 8));
            _mm512_storeu_pd(z + v, x0), _mm512_storeu_pd(z + v + 8, x1);
            a0 = _mm512_max_pd(a0, x0), a1 = _mm512_max_pd(a1, x1);
        }
    m = _mm512_reduce_max_pd(_mm512_max_pd(a0, a1));
#endif
    for (; v < n; v++) {
        double d = T > 0 ? (double)x[v] / T : (double)x[v];
        z[v] = d;
        m = d > m ? d : m;
    }
    return m;
}

static inline int vm_first_eq(const double *z, int n, double m) {
    int v = 0;
#if defined(__AVX512F__)
    __m512d mm = _mm512_set1_pd(m);
    for (; v + 8 <= n; v += 8) {
        __mmask8 k = _mm512_cmp_pd_mask(_mm512_loadu_pd(z + v), mm, _CMP_EQ_OQ);
        if (k) return v + __builtin_ctz((unsigned)k);
    }
#endif
    for (; v < n; v++)
        if (z[v] == m) return v;
    return -1;
}

static inline double vm_exp_sum(double *z, int n, double m) {
    int v = 0;
    double s = 0;
#if defined(__AVX512F__)
    __m512d mm = _mm512_set1_pd(m), s0 = _mm512_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    for (; v + 32 <= n; v += 32) {
        __m512d e0 = vm_exp8(_mm512_sub_pd(_mm512_loadu_pd(z + v), mm));
        __m512d e1 = vm_exp8(_mm512_sub_pd(_mm512_loadu_pd(z + v + 8), mm));
        __m512d e2 = vm_exp8(_mm512_sub_pd(_mm512_loadu_pd(z + v + 16), mm));
        __m512d e3 = vm_exp8(_mm512_sub_pd(_mm512_loadu_pd(z + v + 24), mm));
        _mm512_storeu_pd(z + v, e0);
        _mm512_storeu_pd(z + v + 8, e1);
        _mm512_storeu_pd(z + v + 16, e2);
        _mm512_storeu_pd(z + v + 24, e3);
        s0 = _mm512_add_pd(s0, e0);
        s1 = _mm512_add_pd(s1, e1);
        s2 = _mm512_add_pd(s2, e2);
        s3 = _mm512_add_pd(s3, e3);
    }
    s = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(s0, s1), _mm512_add_pd(s2, s3)));
#endif
    for (; v < n; v++) s += (z[v] = vm_exp1(z[v] - m));
    return s;
}

static inline double vm_sum(const double *z, int n) {
    int v = 0;
    double s = 0;
#if defined(__AVX512F__)
    __m512d s0 = _mm512_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    for (; v + 32 <= n; v += 32) {
        s0 = _mm512_add_pd(s0, _mm512_loadu_pd(z + v));
        s1 = _mm512_add_pd(s1, _mm512_loadu_pd(z + v + 8));
        s2 = _mm512_add_pd(s2, _mm512_loadu_pd(z + v + 16));
        s3 = _mm512_add_pd(s3, _mm512_loadu_pd(z + v + 24));
    }
    s = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(s0, s1), _mm512_add_pd(s2, s3)));
#endif
    for (; v < n; v++) s += z[v];
    return s;
}

static inline double vm_max_excl(const double *z, int n, int skip) {
    double a = skip > 0 ? vm_max(z, skip) : -INFINITY;
    double b = skip + 1 < n ? vm_max(z + skip + 1, n - skip - 1) : -INFINITY;
    double r = a > b ? a : b;
    return r == -INFINITY ? -1.0 : r;
}

static inline double vm_entropy(const double *z, int n, double Z) {
    double h = 0, invZ = 1.0 / Z;
    int v = 0;
#ifdef VM_HAVE_LOG8
    __m512d iz = _mm512_set1_pd(invZ), eps = _mm512_set1_pd(1e-10), h0 = _mm512_setzero_pd(), h1 = h0;
    for (; v + 16 <= n; v += 16) {
        __m512d p0 = _mm512_mul_pd(_mm512_max_pd(_mm512_loadu_pd(z + v), _mm512_setzero_pd()), iz);
        __m512d p1 = _mm512_mul_pd(_mm512_max_pd(_mm512_loadu_pd(z + v + 8), _mm512_setzero_pd()), iz);
        h0 = _mm512_fmadd_pd(p0, vm_log8(_mm512_add_pd(p0, eps)), h0);
        h1 = _mm512_fmadd_pd(p1, vm_log8(_mm512_add_pd(p1, eps)), h1);
    }
    h = _mm512_reduce_add_pd(_mm512_add_pd(h0, h1));
#endif
    for (; v < n; v++) {
        /* branch-free so the compiler can vectorize: p = 0 terms add exactly 0 */
        double pv = z[v] > 0 ? z[v] * invZ : 0.0;
        double l = vm_log1(pv + 1e-10);
        h += pv * l;
    }
    return h;
}

#endif
