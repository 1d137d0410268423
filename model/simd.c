/* simd.c — see simd.h: the table choice and the scalar table (portable C,
 * the reference the vector tables are tested against). */
#include "simd.h"

#include <pthread.h>
#include <stdlib.h>

#include "dtype.h"
#include "gemm.h" /* diffu_cpu_get: the one CPU detection, with the $DIFFU_ISA cap */
#include "log.h"
#include "simd_int.h"

/* ---------------------------------------------------------------- scalar */

static float sumsq_s(const float *x, int h) {
    float a[8] = {0};
    int i = 0;
    for (; i + 8 <= h; i += 8)
        for (int k = 0; k < 8; k++) a[k] += x[i + k] * x[i + k];
    float s = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    for (; i < h; i++) s += x[i] * x[i];
    return s;
}

static void rmsnorm_s(float *y, const float *x, const float *w, int h, float eps) {
    float inv = 1.0f / sqrtf(sumsq_s(x, h) / (float)h + eps);
    for (int k = 0; k < h; k++) y[k] = (x[k] * inv) * w[k];
}

static void add_s(float *x, const float *d, size_t n) {
    for (size_t k = 0; k < n; k++) x[k] += d[k];
}

static void add_rmsnorm_s(float *x, const float *d, float *y, const float *w, int h, float eps) {
    add_s(x, d, (size_t)h);
    rmsnorm_s(y, x, w, h, eps);
}

static void rope_s(float *x, const float *cs, const float *sn, int half) {
    for (int j = 0; j < half; j++) {
        float a = x[j], b = x[j + half];
        x[j] = a * cs[j] - b * sn[j];
        x[j + half] = b * cs[j] + a * sn[j];
    }
}

static void swiglu_s(float *g, const float *u, size_t n) {
    for (size_t k = 0; k < n; k++) g[k] = g[k] / (1.0f + diffu_simd_exp1(-g[k])) * u[k];
}

static void softmax_s(float *row, int n) {
    float m = row[0];
    for (int j = 1; j < n; j++) m = row[j] > m ? row[j] : m;
    for (int j = 0; j < n; j++) row[j] = diffu_simd_exp1(row[j] - m);
    float a[8] = {0}, sum;
    int j = 0;
    for (; j + 8 <= n; j += 8)
        for (int k = 0; k < 8; k++) a[k] += row[j + k];
    sum = ((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7]));
    for (; j < n; j++) sum += row[j];
    float inv = 1.0f / sum;
    for (j = 0; j < n; j++) row[j] *= inv;
}

static void to_bf16_s(uint16_t *o, const float *x, size_t n) {
    for (size_t k = 0; k < n; k++) o[k] = diffu_f32_to_bf16(x[k]);
}

static float to_s8_s(int8_t *o, const float *x, int n) {
    float amax = 0.0f;
    for (int k = 0; k < n; k++) amax = fmaxf(amax, fabsf(x[k]));
    float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    for (int k = 0; k < n; k++) o[k] = (int8_t)lrintf(x[k] * inv);
    return amax / 127.0f;
}

static void qk_s(float *S, int lds, const float *Q, int ldq, const float *K, int ldk, int rn, int L, int hd, float scale,
                 float *kt) {
    (void)kt;
    for (int i = 0; i < rn; i++)
        for (int j = 0; j < L; j++) {
            const float *q = Q + (size_t)i * ldq, *k = K + (size_t)j * ldk;
            float s = 0.0f;
            for (int d = 0; d < hd; d++) s += q[d] * k[d];
            S[(size_t)i * lds + j] = s * scale;
        }
}

static void pv_s(float *O, int ldo, const float *P, int ldp, const float *V, int ldv, int rn, int L, int hd) {
    for (int i = 0; i < rn; i++) {
        float *o = O + (size_t)i * ldo;
        const float *p = P + (size_t)i * ldp;
        for (int d = 0; d < hd; d++) o[d] = 0.0f;
        for (int j = 0; j < L; j++) {
            const float *v = V + (size_t)j * ldv;
            float pj = p[j];
            for (int d = 0; d < hd; d++) o[d] += pj * v[d];
        }
    }
}

const diffu_simd diffu_simd_scalar_table = {
    "scalar", rmsnorm_s, add_rmsnorm_s, add_s, rope_s, swiglu_s, softmax_s, to_bf16_s, to_s8_s, qk_s, pv_s,
};

/* ---------------------------------------------------------------- choice */

const diffu_simd *diffu_simd_table(const char *name, const char **why) {
    const diffu_cpu *c = diffu_cpu_get();
    const char *w = NULL;
    const diffu_simd *t = NULL;
    if (!strcmp(name, "scalar")) t = &diffu_simd_scalar_table;
    else if (!strcmp(name, "avx2")) {
        t = &diffu_simd_avx2_table;
        if (!(c->avx2 && c->fma)) w = "the avx2 kernels need AVX2 and FMA";
    } else if (!strcmp(name, "avx512")) {
        t = &diffu_simd_avx512_table;
        if (!(c->avx512f && c->avx512bw && c->avx512vl && c->fma)) w = "the avx512 kernels need AVX-512 F, BW and VL";
    } else
        w = "not one of scalar, avx2, avx512";
    if (why) *why = w;
    return w ? NULL : t;
}

static const diffu_simd *g_simd;
static pthread_once_t g_simd_once = PTHREAD_ONCE_INIT;

static void choose(void) {
    const char *best = "scalar";
    if (diffu_simd_table("avx512", NULL)) best = "avx512";
    else if (diffu_simd_table("avx2", NULL)) best = "avx2";
    g_simd = diffu_simd_table(best, NULL);
    const char *e = getenv("DIFFU_SIMD"), *why;
    if (e && *e) {
        const diffu_simd *t = diffu_simd_table(e, &why);
        if (t) g_simd = t;
        else DLOG_WARN("DIFFU_SIMD=%s: %s (cpu %s): using %s", e, why, diffu_cpu_get()->isa, best);
    }
}

const diffu_simd *diffu_simd_get(void) {
    pthread_once(&g_simd_once, choose);
    return g_simd;
}
