/* cpupeak.c — see cpupeak.h. */
#include "cpupeak.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdint.h>

#define NACC 12 /* independent accumulators: covers 2 pipes x 4-6 cycles of latency */

__attribute__((target("avx512f"))) static double loop_fp32_512(long iters) {
    __m512 a[NACC], x = _mm512_set1_ps(1.0000001f), y = _mm512_set1_ps(0.9999999f);
    for (int i = 0; i < NACC; i++) a[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < NACC; i++) a[i] = _mm512_fmadd_ps(a[i], x, y);
    __m512 s = a[0];
    for (int i = 1; i < NACC; i++) s = _mm512_add_ps(s, a[i]);
    return (double)_mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"))) static double loop_fp32_256(long iters) {
    __m256 a[NACC], x = _mm256_set1_ps(1.0000001f), y = _mm256_set1_ps(0.9999999f);
    for (int i = 0; i < NACC; i++) a[i] = _mm256_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < NACC; i++) a[i] = _mm256_fmadd_ps(a[i], x, y);
    __m256 s = a[0];
    for (int i = 1; i < NACC; i++) s = _mm256_add_ps(s, a[i]);
    float f[8];
    _mm256_storeu_ps(f, s);
    return (double)(f[0] + f[7]);
}

__attribute__((target("avx512f,avx512bf16"))) static double loop_bf16(long iters) {
    __m512 a[NACC];
    __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x3f80); /* 1.0 */
    for (int i = 0; i < NACC; i++) a[i] = _mm512_set1_ps((float)i);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < NACC; i++) a[i] = _mm512_dpbf16_ps(a[i], x, y);
    __m512 s = a[0];
    for (int i = 1; i < NACC; i++) s = _mm512_add_ps(s, a[i]);
    return (double)_mm512_reduce_add_ps(s);
}

__attribute__((target("avx512f,avx512vnni"))) static double loop_int8(long iters) {
    __m512i a[NACC], x = _mm512_set1_epi8(1), y = _mm512_set1_epi8(1);
    for (int i = 0; i < NACC; i++) a[i] = _mm512_set1_epi32(i);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < NACC; i++) a[i] = _mm512_dpbusd_epi32(a[i], x, y);
    __m512i s = a[0];
    for (int i = 1; i < NACC; i++) s = _mm512_add_epi32(s, a[i]);
    return (double)_mm512_reduce_add_epi32(s);
}

typedef struct { diffu_precision p; long iters; double sink; } job_t;
static volatile double g_sink; /* the loops' results go here, so the compiler keeps them */

static int use512(void) { const diffu_cpu *c = diffu_cpu_get(); return c->avx512f; }

static double ops_per_iter(diffu_precision p) {
    switch (p) {
    case DIFFU_PREC_BF16: return NACC * 64.0;
    case DIFFU_PREC_INT8: return NACC * 128.0;
    default: return NACC * (use512() ? 32.0 : 16.0);
    }
}

static void *run(void *arg) {
    job_t *j = arg;
    switch (j->p) {
    case DIFFU_PREC_BF16: j->sink = loop_bf16(j->iters); break;
    case DIFFU_PREC_INT8: j->sink = loop_int8(j->iters); break;
    default: j->sink = use512() ? loop_fp32_512(j->iters) : loop_fp32_256(j->iters); break;
    }
    g_sink += j->sink;
    return NULL;
}

const char *diffu_cpu_peak_insn(diffu_precision p) {
    const diffu_cpu *c = diffu_cpu_get();
    switch (p) {
    case DIFFU_PREC_BF16: return c->avx512_bf16 ? "vdpbf16ps zmm" : "n/a";
    case DIFFU_PREC_INT8: return c->avx512_vnni ? "vpdpbusd zmm" : "n/a";
    default: return c->avx512f ? "vfmadd231ps zmm" : c->avx2 ? "vfmadd231ps ymm" : "n/a";
    }
}

double diffu_cpu_peak(diffu_precision p, int n_threads, double seconds) {
    if (p == DIFFU_PREC_AUTO) p = DIFFU_PREC_FP32;
    if (!__builtin_strcmp(diffu_cpu_peak_insn(p), "n/a")) return 0;
    if (n_threads < 1) n_threads = 1;
    /* calibrate on one thread: double the iterations until a run takes >= 20 ms */
    job_t cal = {p, 1 << 14, 0};
    double t0, dt;
    for (;;) {
        t0 = diffu_now();
        run(&cal);
        dt = diffu_now() - t0;
        if (dt >= 0.02 || cal.iters > (1L << 40)) break;
        cal.iters *= 2;
    }
    long iters = (long)((double)cal.iters * seconds / dt);
    if (iters < cal.iters / 4) iters = cal.iters / 4;
    pthread_t th[256];
    job_t jobs[256];
    if (n_threads > 256) n_threads = 256;
    t0 = diffu_now();
    for (int t = 1; t < n_threads; t++) {
        jobs[t] = (job_t){p, iters, 0};
        pthread_create(&th[t], NULL, run, &jobs[t]);
    }
    jobs[0] = (job_t){p, iters, 0};
    run(&jobs[0]);
    for (int t = 1; t < n_threads; t++) pthread_join(th[t], NULL);
    dt = diffu_now() - t0;
    return ops_per_iter(p) * (double)iters * n_threads / dt / 1e9;
}
