/* test_simd.c — every table of model/simd.h (scalar, avx2, avx512) against a
 * float64 reference written here from the definitions (not from the tables),
 * on random inputs (fixed seed) at sizes with every tail (1 .. 2 x 16 lanes + 1,
 * the small model's 896 / 4864, odd spans), plus the dispatch rules.
 *
 *   test_simd [--expect NAME]
 *
 * A table this CPU (after $DIFFU_ISA) cannot run is skipped with a message
 * naming what it lacks. --expect NAME: diffu_simd_get() must pick NAME, or
 * scalar where the CPU cannot run NAME at all (the
 * ctest variants force $DIFFU_ISA=avx2 / sse and $DIFFU_SIMD=scalar; with avx2
 * forced, the avx512 table must be refused).
 *
 * Tolerances (max |error| over a case; scale = the case's largest |reference|
 * or the product bound named): the rounding of fp32 arithmetic in a fixed order,
 * a few ulp, with margin for the lane count of a sum:
 *   rmsnorm, add_rmsnorm   1e-6 x scale             (sum of squares over h in fp32; 1.5e-7 seen)
 *   rope                   4e-7 x |x|max, |x| <= 2 (two products and a sum; 1.6e-7 seen)
 *   swiglu                 4e-7 x |g u| + 1e-30     (the exp polynomial, ~2 ulp, then a division; 1.6e-7 seen)
 *   softmax                4e-7 absolute            (probabilities; and sum within 2e-6 of 1)
 *   qk                     2e-7 x hd x scale (q, k in [-1, 1]; about a third of it seen)
 *   pv                     2e-7 x L + 1e-7 (p in [0, 1), v in [-1, 1]; about a third of it seen)
 *   add                    bit for bit (one fp32 add per element)
 *   to_bf16, to_s8         bit for bit the definition (round to nearest even; quiet NaN kept)
 * Batch invariance of the attention kernels: a row of qk / pv computed alone
 * equals the same row inside a block of rows bit for bit, in every table. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "simd.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float urand(float lo, float hi) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return lo + (hi - lo) * (float)((rng >> 40) * (1.0 / 16777216.0));
}
static void fill(float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = urand(lo, hi);
}
static double amax(const double *x, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}
static double maxdiff(const float *y, const double *r, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)y[i] - r[i]);
        if (!(d <= m)) m = d; /* NaN propagates */
    }
    return m;
}

static const int SIZES[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 896, 1000, 4864};
#define N_SIZES ((int)(sizeof SIZES / sizeof SIZES[0]))
enum { MAXN = 4864 };

static void ref_rmsnorm(double *y, const float *x, const float *w, int h, float eps) {
    double ss = 0;
    for (int i = 0; i < h; i++) ss += (double)x[i] * x[i];
    double inv = 1.0 / sqrt(ss / h + eps);
    for (int i = 0; i < h; i++) y[i] = x[i] * inv * w[i];
}

static void test_norms(const diffu_simd *t) {
    static float x[MAXN], w[MAXN], y[MAXN], d[MAXN], x2[MAXN];
    static double r[MAXN];
    for (int si = 0; si < N_SIZES; si++) {
        int h = SIZES[si];
        fill(x, h, -3, 3);
        fill(w, h, 0.5f, 1.5f);
        fill(d, h, -1, 1);
        ref_rmsnorm(r, x, w, h, 1e-6f);
        t->rmsnorm(y, x, w, h, 1e-6f);
        double e = maxdiff(y, r, h), s = amax(r, h);
        CHECK(e <= 1e-6 * s, "%s rmsnorm h %d: max error %.3g (scale %.3g)", t->name, h, e, s);
        memcpy(x2, x, h * sizeof(float)); /* in place (y == x) */
        t->rmsnorm(x2, x2, w, h, 1e-6f);
        CHECK(!memcmp(x2, y, h * sizeof(float)), "%s rmsnorm h %d: in place differs from out of place", t->name, h);
        memcpy(x2, x, h * sizeof(float));
        t->add_rmsnorm(x2, d, y, w, h, 1e-6f);
        int exact = 1;
        for (int i = 0; i < h; i++) exact &= x2[i] == x[i] + d[i];
        CHECK(exact, "%s add_rmsnorm h %d: x + d not the fp32 sum", t->name, h);
        ref_rmsnorm(r, x2, w, h, 1e-6f);
        e = maxdiff(y, r, h);
        s = amax(r, h);
        CHECK(e <= 1e-6 * s, "%s add_rmsnorm h %d: max error %.3g (scale %.3g)", t->name, h, e, s);
        memcpy(x2, x, h * sizeof(float));
        t->add(x2, d, (size_t)h);
        exact = 1;
        for (int i = 0; i < h; i++) exact &= x2[i] == x[i] + d[i];
        CHECK(exact, "%s add n %d: not the fp32 sum", t->name, h);
    }
}

static void test_rope_swiglu(const diffu_simd *t) {
    static float x[2 * MAXN], x0[2 * MAXN], cs[MAXN], sn[MAXN], g[MAXN], u[MAXN];
    static double r[2 * MAXN];
    for (int si = 0; si < N_SIZES; si++) {
        int n = SIZES[si], half = n > 128 ? 64 : n;
        fill(x0, 2 * half, -2, 2);
        for (int j = 0; j < half; j++) {
            float a = urand(-50, 50);
            cs[j] = cosf(a);
            sn[j] = sinf(a);
        }
        for (int j = 0; j < half; j++) {
            r[j] = (double)x0[j] * cs[j] - (double)x0[j + half] * sn[j];
            r[j + half] = (double)x0[j + half] * cs[j] + (double)x0[j] * sn[j];
        }
        memcpy(x, x0, 2 * half * sizeof(float));
        t->rope(x, cs, sn, half);
        double e = maxdiff(x, r, 2 * half);
        CHECK(e <= 4e-7 * 2, "%s rope half %d: max error %.3g", t->name, half, e);

        fill(g, n, -20, 20);
        fill(u, n, -3, 3);
        g[0] = -100.0f; /* exp's clamp */
        if (n > 1) g[1] = 100.0f;
        double worst = 0;
        for (int i = 0; i < n; i++) r[i] = (double)g[i] / (1.0 + exp(-(double)g[i])) * u[i];
        t->swiglu(g, u, (size_t)n);
        for (int i = 0; i < n; i++) {
            double err = fabs((double)g[i] - r[i]), bound = 4e-7 * fabs(r[i]) + 1e-30;
            double q = err / bound;
            if (!(q <= worst)) worst = q;
        }
        CHECK(worst <= 1.0, "%s swiglu n %d: error %.3g x its bound (4e-7 relative)", t->name, n, worst);
    }
}

static void test_softmax(const diffu_simd *t) {
    static float p[MAXN];
    static double r[MAXN];
    for (int si = 0; si < N_SIZES; si++) {
        for (int spread = 0; spread < 3; spread++) {
            int n = SIZES[si];
            float lim = spread == 0 ? 1.0f : spread == 1 ? 30.0f : 200.0f; /* 200: far below exp's range */
            fill(p, n, -lim, lim);
            double m = -INFINITY, z = 0;
            for (int i = 0; i < n; i++) m = p[i] > m ? p[i] : m;
            for (int i = 0; i < n; i++) z += exp((double)p[i] - m);
            for (int i = 0; i < n; i++) r[i] = exp((double)p[i] - m) / z;
            t->softmax(p, n);
            double e = maxdiff(p, r, n), sum = 0;
            for (int i = 0; i < n; i++) sum += p[i];
            CHECK(e <= 4e-7 && fabs(sum - 1) <= 2e-6, "%s softmax n %d range %g: max error %.3g, sum - 1 = %.3g",
                  t->name, n, lim, e, sum - 1);
        }
    }
}

/* round to nearest even from the definition: the 16 high bits, plus one when the low 16 are above half,
 * or exactly half with the kept part odd; NaN stays NaN (quiet) */
static uint16_t def_bf16(float f) {
    uint32_t b;
    memcpy(&b, &f, 4);
    if ((b & 0x7F800000u) == 0x7F800000u && (b & 0x7FFFFFu)) return (uint16_t)((b >> 16) | 0x40);
    uint32_t hi = b >> 16, lo = b & 0xFFFFu;
    if (lo > 0x8000u || (lo == 0x8000u && (hi & 1))) hi++;
    return (uint16_t)hi;
}

static void test_convert(const diffu_simd *t, const diffu_simd *scalar) {
    static float x[MAXN];
    static uint16_t o[MAXN];
    static int8_t q[MAXN], qs[MAXN];
    /* hand-checked: 1 + 2^-8 is a tie to even (0x3F80), 1 + 3 x 2^-8 a tie up (0x3F82) */
    float hand[] = {1.0f, 1.00390625f, 1.01171875f, -2.5f, 0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-40f,
                    3.4028235e38f};
    uint16_t want[] = {0x3F80, 0x3F80, 0x3F82, 0xC020, 0x0000, 0x8000, 0x7F80, 0xFF80, 0, 0, 0x7F80};
    t->to_bf16(o, hand, 11);
    for (int i = 0; i < 11; i++) {
        if (i == 8)
            CHECK((o[i] & 0x7F80) == 0x7F80 && (o[i] & 0x7F) && (o[i] & 0x40), "%s to_bf16(NaN) = %#x", t->name,
                  o[i]);
        else if (i != 9)
            CHECK(o[i] == want[i], "%s to_bf16(%g) = %#x, want %#x", t->name, hand[i], o[i], want[i]);
        else
            CHECK(o[i] == def_bf16(hand[i]), "%s to_bf16(subnormal) = %#x", t->name, o[i]);
    }
    for (int si = 0; si < N_SIZES; si++) {
        int n = SIZES[si];
        fill(x, n, -1000, 1000);
        for (int i = 0; i < n; i += 3) { /* exact ties at random magnitudes */
            uint32_t b;
            memcpy(&b, &x[i], 4);
            b = (b & 0xFFFF0000u) | 0x8000u;
            memcpy(&x[i], &b, 4);
        }
        t->to_bf16(o, x, (size_t)n);
        int bad = -1;
        for (int i = 0; i < n && bad < 0; i++)
            if (o[i] != def_bf16(x[i])) bad = i;
        CHECK(bad < 0, "%s to_bf16 n %d: element %d (%a) -> %#x, want %#x", t->name, n, bad, bad >= 0 ? x[bad] : 0,
              bad >= 0 ? o[bad] : 0, bad >= 0 ? def_bf16(x[bad]) : 0);

        fill(x, n, -5, 5);
        float s = t->to_s8(q, x, n), ss = scalar->to_s8(qs, x, n);
        double mx = 0;
        for (int i = 0; i < n; i++) mx = fabs(x[i]) > mx ? fabs(x[i]) : mx;
        CHECK(s == ss && !memcmp(q, qs, (size_t)n), "%s to_s8 n %d: differs from the scalar table's", t->name, n);
        CHECK(fabs(s - mx / 127) <= 1e-7 * mx, "%s to_s8 n %d: scale %.9g, want max|x|/127 = %.9g", t->name, n, s,
              mx / 127);
        int off = 0;
        for (int i = 0; i < n; i++) off |= fabs((double)q[i] - x[i] * 127.0 / mx) > 0.5 + 1e-5 || q[i] < -127;
        CHECK(!off, "%s to_s8 n %d: a value is not the nearest of x x 127 / max|x|", t->name, n);
    }
    memset(x, 0, sizeof(float) * 17);
    CHECK(t->to_s8(q, x, 17) == 0.0f, "%s to_s8 of a zero row: scale not 0", t->name);
}

static void test_attention(const diffu_simd *t) {
    enum { RN = 9, LMAX = 200, HD = 128, PAD = 8 };
    static float Q[RN * (HD + PAD)], K[LMAX * (HD + PAD)], V[LMAX * (HD + PAD)], S[RN * (LMAX + PAD)], S1[LMAX];
    static float P[RN * (LMAX + PAD)], O[RN * (HD + PAD)], O1[HD], kt[HD * DIFFU_SIMD_KBLOCK];
    const int Ls[] = {1, 5, 63, 64, 65, 130, 200}, hds[] = {16, 64, 80, 128};
    for (int li = 0; li < 7; li++)
        for (int hi = 0; hi < 4; hi++) {
            /* strides beyond the rows (the forward's Q/K/V views of a fused projection are strided) */
            int L = Ls[li], hd = hds[hi], ldq = hd + 3, ldk = hd + 5, lds = L + 2, ldp = L + 1, ldv = hd + 7,
                ldo = hd + 2;
            float scale = 1.0f / sqrtf((float)hd);
            fill(Q, sizeof Q / 4, -1, 1);
            fill(K, sizeof K / 4, -1, 1);
            fill(V, sizeof V / 4, -1, 1);
            fill(P, sizeof P / 4, 0, 1);
            t->qk(S, lds, Q, ldq, K, ldk, RN, L, hd, scale, kt);
            double e = 0;
            for (int i = 0; i < RN; i++)
                for (int j = 0; j < L; j++) {
                    double a = 0;
                    for (int d = 0; d < hd; d++) a += (double)Q[i * ldq + d] * K[j * ldk + d];
                    double df = fabs(S[i * lds + j] - a * scale);
                    if (!(df <= e)) e = df;
                }
            CHECK(e <= 2e-7 * hd * scale, "%s qk L %d hd %d: max error %.3g", t->name, L, hd, e);
            int alone = 1;
            for (int i = 0; i < RN; i++) {
                t->qk(S1, L, Q + i * ldq, ldq, K, ldk, 1, L, hd, scale, kt);
                alone &= !memcmp(S1, S + i * lds, L * sizeof(float));
            }
            CHECK(alone, "%s qk L %d hd %d: a row alone differs from the row in the block", t->name, L, hd);

            t->pv(O, ldo, P, ldp, V, ldv, RN, L, hd);
            e = 0;
            for (int i = 0; i < RN; i++)
                for (int d = 0; d < hd; d++) {
                    double a = 0;
                    for (int j = 0; j < L; j++) a += (double)P[i * ldp + j] * V[j * ldv + d];
                    double df = fabs(O[i * ldo + d] - a);
                    if (!(df <= e)) e = df;
                }
            CHECK(e <= 2e-7 * L + 1e-7, "%s pv L %d hd %d: max error %.3g", t->name, L, hd, e);
            alone = 1;
            for (int i = 0; i < RN; i++) {
                t->pv(O1, hd, P + i * ldp, ldp, V, ldv, 1, L, hd);
                alone &= !memcmp(O1, O + i * ldo, hd * sizeof(float));
            }
            CHECK(alone, "%s pv L %d hd %d: a row alone differs from the row in the block", t->name, L, hd);
        }
}

int main(int argc, char **argv) {
    const char *expect = argc == 3 && !strcmp(argv[1], "--expect") ? argv[2] : NULL;
    const char *names[] = {"scalar", "avx2", "avx512"};
    const diffu_simd *scalar = diffu_simd_table("scalar", NULL);
    CHECK(scalar != NULL, "the scalar table is always available");
    if (!scalar) return check_report();
    int ran = 0;
    for (int k = 0; k < 3; k++) {
        const char *why = NULL;
        const diffu_simd *t = diffu_simd_table(names[k], &why);
        if (!t) {
            printf("skip %s: this CPU (after DIFFU_ISA) cannot run it: %s\n", names[k], why ? why : "?");
            continue;
        }
        CHECK(!strcmp(t->name, names[k]), "table %s is named %s", names[k], t->name);
        int before = n_fail;
        test_norms(t);
        test_rope_swiglu(t);
        test_softmax(t);
        test_convert(t, scalar);
        test_attention(t);
        printf("%s: %s\n", names[k], n_fail == before ? "ok" : "FAILED");
        ran++;
    }
    const diffu_simd *best = diffu_simd_get();
    printf("diffu_simd_get: %s (%d table(s) tested)\n", best->name, ran);
    if (expect) {
        /* a CPU without the expected table: the next one down (avx2 -> scalar) */
        const char *want = diffu_simd_table(expect, NULL) ? expect : "scalar";
        if (strcmp(want, expect)) printf("note: this CPU cannot run %s; expecting %s\n", expect, want);
        CHECK(!strcmp(best->name, want), "diffu_simd_get picked %s, expected %s", best->name, want);
        const char *isa = getenv("DIFFU_ISA");
        if (isa && (!strcmp(isa, "avx2") || !strcmp(isa, "sse"))) {
            const char *why = NULL;
            CHECK(diffu_simd_table("avx512", &why) == NULL && why, "DIFFU_ISA=%s: the avx512 table still offered",
                  isa);
        }
    }
    return check_report();
}
