/* test_matmul.c — the fp32 matrix product of model/kernels.h (diffu_matmul on
 * OpenBLAS sgemm) against a float64 reference written here, and its batch
 * invariance: a row's result must be bit for bit the same whatever the call's
 * row count, at any row offset that is a multiple of the row panel, on 1 and
 * 2 threads. The shapes are the narrow ones of small models (a 16-wide K/V
 * projection, an 8-wide one, a 256-wide tile plus a 16-wide remainder, a
 * 1000-wide head, odd widths) and a BF16 matrix whose K is split into a 4096
 * tile and a remainder: on OpenBLAS 0.3.21's SkylakeX/Cooperlake kernel
 * (what it picks on AMD Zen 4 and Intel AVX-512 CPUs when $OPENBLAS_CORETYPE is
 * unset) calls of m rows x nt columns with m x nt <= 1200 run another kernel
 * whose sums differ in the last bits, which broke the KV cache's
 * alone-vs-batched equality (tests/kvcache gqa7) until diffu_kscratch_prepare
 * padded such calls.
 *
 * Tolerance against float64: |y - ref| <= 1e-5 x sum_k |x_k w_k| per entry
 * (fp32 sums of up to 5000 products; a few 1e-7 seen). Invariance: memcmp.
 * Prints "N passed, M failed"; exit 1 on a failure. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "dtype.h"
#include "kernels.h"
#include "threadpool.h"

static uint64_t rng = 0x2545F4914F6CDD1Dull;
static float urand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng >> 40) * (1.0 / 16777216.0)) - 0.5f;
}

enum { TMAX = 130 };

typedef struct {
    int n, k;
    diffu_dtype dt;
    int bias;
} shape;

static const shape SHAPES[] = {
    {16, 112, DIFFU_F32, 0},  {8, 64, DIFFU_F32, 0},    {40, 96, DIFFU_F32, 1},   {272, 112, DIFFU_F32, 0},
    {1000, 112, DIFFU_F32, 0}, {37, 33, DIFFU_F32, 0},   {16, 896, DIFFU_F32, 0},  {300, 5000, DIFFU_BF16, 0},
    {24, 100, DIFFU_BF16, 1},
};

/* Y[t x n] for the first t rows of x (row stride k) at row offset off */
static void run(diffu_pool *pool, diffu_kscratch *ks, const diffu_mat *w, const float *bias, const float *x, int off,
                int t, float *y) {
    diffu_matmul_job j = {y, w->rows, x + (size_t)off * w->cols, w->cols, t, w, bias};
    diffu_matmul(pool, ks, &j, 1);
}

static void one_shape(const shape *sh, int threads) {
    int N = sh->n, K = sh->k, P = diffu_row_panel();
    int rows = diffu_round_rows(TMAX + 2 * P) + P;
    float *wf = malloc((size_t)N * K * 4), *x = calloc((size_t)rows * K, 4), *bias = malloc((size_t)N * 4);
    uint16_t *wb = malloc((size_t)N * K * 2);
    for (size_t i = 0; i < (size_t)N * K; i++) {
        wf[i] = urand();
        if (sh->dt == DIFFU_BF16) {
            wb[i] = diffu_f32_to_bf16(wf[i]);
            diffu_widen(&wf[i], &wb[i], DIFFU_BF16, 1); /* the reference uses the BF16 values */
        }
    }
    for (size_t i = 0; i < (size_t)(TMAX + 2 * P) * K; i++) x[i] = urand();
    for (int i = 0; i < N; i++) bias[i] = urand();
    diffu_mat w = {sh->dt, N, K, (size_t)K, sh->dt == DIFFU_BF16 ? (const void *)wb : (const void *)wf, NULL};
    diffu_pool *pool = diffu_pool_create(threads);
    diffu_kscratch ks;
    diffu_kscratch_init(&ks, threads, K, 1, 16);
    diffu_kscratch_prepare(&ks, &w);
    const float *b = sh->bias ? bias : NULL;
    float *ref = malloc((size_t)(TMAX + 2 * P) * N * 4), *y = malloc((size_t)(TMAX + 2 * P) * N * 4);
    run(pool, &ks, &w, b, x, 0, TMAX + 2 * P, ref);

    double worst = 0;
    int bad = 0;
    for (int t = 0; t < TMAX + 2 * P && !bad; t++)
        for (int n = 0; n < N; n++) {
            double s = b ? b[n] : 0, a = b ? fabs(b[n]) : 0;
            for (int k = 0; k < K; k++) {
                double p = (double)x[(size_t)t * K + k] * wf[(size_t)n * K + k];
                s += p;
                a += fabs(p);
            }
            double e = fabs(ref[(size_t)t * N + n] - s) / (a > 0 ? a : 1);
            if (e > worst) worst = e;
            if (!(e <= 1e-5)) {
                bad = 1;
                break;
            }
        }
    CHECK(!bad && worst <= 1e-5, "%d x %d %s, %d threads: error %.3g of sum |x w| against float64 (bound 1e-5)", N, K,
          diffu_dtype_name(sh->dt), threads, worst);

    int mism = 0, first_t = -1, first_off = -1;
    for (int off = 0; off <= 2 * P; off += P)
        for (int t = 1; t <= TMAX; t++) {
            run(pool, &ks, &w, b, x, off, t, y);
            if (memcmp(y, ref + (size_t)off * N, (size_t)t * N * 4)) {
                if (!mism) first_t = t, first_off = off;
                mism++;
            }
        }
    CHECK(!mism, "%d x %d %s, %d threads: %d of %d calls (first: %d rows at offset %d) give rows other bits than "
          "the %d-row call (row panel %d)", N, K, diffu_dtype_name(sh->dt), threads, mism, 3 * TMAX, first_t,
          first_off, TMAX + 2 * P, P);
    printf("%s %d x %d %s, %d threads: max error %.2g of sum |x w|; rows of 1..%d-row calls at offsets 0, %d, %d "
           "bit-identical to one %d-row call\n", mism || bad ? "FAIL" : "ok  ", N, K, diffu_dtype_name(sh->dt), threads,
           worst, TMAX, P, 2 * P, TMAX + 2 * P);
    diffu_kscratch_free(&ks);
    diffu_pool_free(pool);
    free(wf);
    free(wb);
    free(x);
    free(bias);
    free(ref);
    free(y);
}

int main(void) {
    printf("row panel %d\n", diffu_row_panel());
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++)
        for (int th = 1; th <= 2; th++) one_shape(&SHAPES[i], th);
    return check_report();
}
