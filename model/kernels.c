/* kernels.c — see kernels.h. */
#include "kernels.h"

#include <cblas.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "dtype.h"
#include "log.h"
#include "simd.h"

/* ---------------------------------------------------------------- scratch */

static size_t env_size(const char *name, size_t dflt) {
    const char *v = getenv(name);
    if (!v || !*v) return dflt;
    long long x = atoll(v);
    return x > 0 ? (size_t)x : dflt;
}

static float *zeroed(size_t floats) {
    float *p = diffu_xaligned((floats ? floats : 1) * 4);
    memset(p, 0, (floats ? floats : 1) * 4); /* padding rows stay finite */
    return p;
}

void diffu_kscratch_init(diffu_kscratch *s, int n_threads, int max_k, int max_seq, int max_hd) {
    memset(s, 0, sizeof *s);
    s->n_threads = n_threads;
    /* Widened tile: tile_n output rows x up to tile_k inputs. Larger tile_n
     * amortizes sgemm's packing of the activations; the tile should stay
     * cache-resident (a few MB). Tunable for benchmarks. */
    s->tile_n = (int)env_size("DIFFU_TILE_N", 256);
    s->tile_k = (int)env_size("DIFFU_TILE_K", 4096);
    size_t tile_k = (size_t)(s->tile_k < max_k ? s->tile_k : max_k);
    s->tile_floats = (size_t)s->tile_n * tile_k;
    s->att_qblock = 128;
    s->att_floats = (size_t)s->att_qblock * (size_t)max_seq;
    s->kt_floats = (size_t)DIFFU_SIMD_KBLOCK * (size_t)(max_hd > 0 ? max_hd : 1);
    s->max_hd = max_hd;
    s->simd = diffu_simd_get();
    s->tile = diffu_xcalloc((size_t)n_threads, sizeof *s->tile);
    s->kt = diffu_xcalloc((size_t)n_threads, sizeof *s->kt);
    s->att = diffu_xcalloc((size_t)n_threads, sizeof *s->att);
    s->rowpad = diffu_xcalloc((size_t)n_threads, sizeof *s->rowpad);
    s->xpad = diffu_xcalloc((size_t)n_threads, sizeof *s->xpad);
    s->panel = diffu_row_panel();
    s->pad_rows = s->panel;
    for (int t = 0; t < n_threads; t++) {
        s->tile[t] = diffu_xaligned(s->tile_floats * 4);
        s->att[t] = diffu_xaligned(s->att_floats * 4);
        s->kt[t] = diffu_xaligned(s->kt_floats * 4);
        s->rowpad[t] = zeroed((size_t)s->pad_rows * s->tile_n);
    }
}

void diffu_kscratch_free(diffu_kscratch *s) {
    for (int t = 0; t < s->n_threads; t++) {
        free(s->tile[t]);
        free(s->att[t]);
        free(s->kt[t]);
        free(s->rowpad[t]);
        free(s->xpad[t]);
    }
    free(s->tile);
    free(s->att);
    free(s->kt);
    free(s->rowpad);
    free(s->xpad);
    memset(s, 0, sizeof *s);
}

size_t diffu_kscratch_bytes(const diffu_kscratch *s) {
    return (size_t)s->n_threads *
           (s->tile_floats + s->att_floats + s->kt_floats + (size_t)s->pad_rows * s->tile_n + s->xpad_floats) * 4;
}

/* ---------------------------------------------------------------- matmul */

/* Batch invariance: a row's result must not depend on what else is in the
 * batch or on the thread count, so that a request decodes the same tokens
 * alone, batched, pipelined or resumed. OpenBLAS's sgemm is not invariant by
 * itself: its micro-kernel walks the rows in blocks (12 on Haswell) and the
 * leftover rows go through narrower kernels that sum in another order, so a
 * row's bits depend on the call's row count and the row's offset. Hence
 * (1) the work unit is a fixed tile of tile_n weight rows with a fixed K split
 * (tile_k), handed out dynamically, never a per-thread share; (2) sgemm only
 * ever sees row counts that are multiples of the probed row panel P: a last
 * partial panel is computed from the padded input into per-thread scratch and
 * only its real rows are copied out; and (3) the forward places every
 * sequence at a multiple of P (forward.c), so a row's offset modulo P is its
 * position in its own sequence modulo P. */

/* x[n] uniform in [-0.5, 0.5) from the LCG state *st (the probes' random data). */
static void fill_uniform(float *x, size_t n, uint32_t *st) {
    for (size_t i = 0; i < n; i++) x[i] = (float)((*st = *st * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
}

/* Rows r of an m-row call at row offset off, against the same rows of the
 * reference call C0 (all at the row stride N). */
static int rows_same(int m, int off, int N, int K, const float *X, const float *W, const float *C0, float *C1) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, N, K, 1.0f, X + (size_t)off * K, K, W, K, 0.0f, C1, N);
    return !memcmp(C1, C0 + (size_t)off * N, (size_t)m * N * 4);
}

/* Does sgemm give row r the same bits for calls of m rows at offset off, for
 * multiples m, off of P, as inside one big call? (Random data; the reference
 * call has 192 rows, a multiple of every candidate; two K sizes; a K split
 * accumulated with beta 1, as the widened tiles do.) */
static int panel_ok(int P) {
    enum { MREF = 192 };
    /* N = 37 too: OpenBLAS 0.3.21's Prescott kernel (what it runs on CPUs it does
     * not know) sums the rows of a call with an odd N tail by their offset modulo 4,
     * which N = 40 alone does not show (the last gate/up tile of a 4500-wide FFN) */
    int Ks[3] = {96, 1000, 64}, Ns[3] = {40, 40, 37}, ok = 1;
    for (int kk = 0; kk < 3 && ok; kk++) {
        int K = Ks[kk], N = Ns[kk], h = K / 2;
        float *W = diffu_xmalloc((size_t)N * K * 4), *X = diffu_xmalloc((size_t)MREF * K * 4);
        float *C0 = diffu_xcalloc((size_t)MREF * N, 4), *C1 = diffu_xcalloc((size_t)MREF * N, 4);
        float *S0 = diffu_xcalloc((size_t)MREF * N, 4);
        uint32_t st = 12345u + (uint32_t)K;
        fill_uniform(W, (size_t)N * K, &st);
        fill_uniform(X, (size_t)MREF * K, &st);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, MREF, N, K, 1.0f, X, K, W, K, 0.0f, C0, N);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, MREF, N, h, 1.0f, X, K, W, K, 0.0f, S0, N);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, MREF, N, K - h, 1.0f, X + h, K, W + h, K, 1.0f, S0, N);
        int offs[4] = {0, P, P, 2 * P}, ms[4] = {P, P, 2 * P, P};
        for (int t = 0; t < 4 && ok; t++) {
            if (offs[t] + ms[t] > MREF) continue;
            const float *Xo = X + (size_t)offs[t] * K;
            if (!(ok = rows_same(ms[t], offs[t], N, K, X, W, C0, C1))) break;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ms[t], N, h, 1.0f, Xo, K, W, K, 0.0f, C1, N);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, ms[t], N, K - h, 1.0f, Xo + h, K, W + h, K, 1.0f, C1, N);
            ok = !memcmp(C1, S0 + (size_t)offs[t] * N, (size_t)ms[t] * N * 4);
        }
        free(W);
        free(X);
        free(C0);
        free(C1);
        free(S0);
    }
    return ok;
}

void openblas_set_num_threads(int);
static int g_panel = 0;
static pthread_once_t g_panel_once = PTHREAD_ONCE_INIT;

static void probe_panel(void) {
    const char *e = getenv("DIFFU_ROW_PANEL");
    if (e && atoi(e) > 0) {
        g_panel = atoi(e);
        return;
    }
    static const int cand[] = {1, 2, 4, 8, 12, 16, 24, 32, 48, 64};
    openblas_set_num_threads(1); /* as the pool threads run it */
    for (size_t i = 0; i < sizeof cand / sizeof cand[0]; i++)
        if (panel_ok(cand[i])) {
            g_panel = cand[i];
            return;
        }
    g_panel = 1;
    DLOG_WARN("this BLAS's sgemm rows depend on the batch for every row panel tried: results may vary with batch composition");
}

int diffu_row_panel(void) {
    pthread_once(&g_panel_once, probe_panel);
    return g_panel;
}

/* The fewest rows R (a multiple of P) such that calls of R, R + P and 2R rows,
 * at offsets 0 and P, give each row the bits it gets in a call of MREF rows:
 * below R the BLAS runs another kernel for this shape (random data). */
static int probe_min_rows(int P, int nt, int kn) {
    int mref = (384 + P - 1) / P * P;
    float *W = diffu_xmalloc((size_t)nt * kn * 4), *X = diffu_xmalloc((size_t)mref * kn * 4);
    float *C0 = diffu_xmalloc((size_t)mref * nt * 4), *C1 = diffu_xmalloc((size_t)mref * nt * 4);
    uint32_t st = 777u + (uint32_t)nt * 31u + (uint32_t)kn;
    fill_uniform(W, (size_t)nt * kn, &st);
    fill_uniform(X, (size_t)mref * kn, &st);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, mref, nt, kn, 1.0f, X, kn, W, kn, 0.0f, C0, nt);
    int R = P;
    for (; R + P <= mref / 2; R += P)
        if (rows_same(R, 0, nt, kn, X, W, C0, C1) && rows_same(R, P, nt, kn, X, W, C0, C1) &&
            rows_same(R + P, 0, nt, kn, X, W, C0, C1) && rows_same(2 * R, 0, nt, kn, X, W, C0, C1))
            break;
    free(W);
    free(X);
    free(C0);
    free(C1);
    return R;
}

/* The index of shape (nt, kn) in s->shape, or -1. */
static int find_shape(const diffu_kscratch *s, int nt, int kn) {
    for (int i = 0; i < s->n_shapes; i++)
        if (s->shape[i].nt == nt && s->shape[i].kn == kn) return i;
    return -1;
}

static int shape_rows(const diffu_kscratch *s, int nt, int kn) {
    int i = find_shape(s, nt, kn);
    DIFFU_ASSERTF(i >= 0, "matmul shape %d x %d was not prepared (diffu_kscratch_prepare)", nt, kn);
    return s->shape[i].rows;
}

static void prepare_shape(diffu_kscratch *s, int nt, int kn) {
    if (find_shape(s, nt, kn) >= 0) return;
    DIFFU_ASSERT(s->n_shapes < (int)(sizeof s->shape / sizeof s->shape[0]));
    openblas_set_num_threads(1); /* as the pool threads run it */
    int R = probe_min_rows(s->panel, nt, kn);
    s->shape[s->n_shapes].nt = nt;
    s->shape[s->n_shapes].kn = kn;
    s->shape[s->n_shapes++].rows = R;
    if (R > s->panel) DLOG_DEBUG("sgemm: calls of %d x %d need at least %d rows (padded below)", nt, kn, R);
    if (R > s->pad_rows) {
        s->pad_rows = R;
        for (int t = 0; t < s->n_threads; t++) {
            free(s->rowpad[t]);
            s->rowpad[t] = zeroed((size_t)R * s->tile_n);
        }
    }
    if ((size_t)R * kn > s->xpad_floats) {
        s->xpad_floats = (size_t)R * kn;
        for (int t = 0; t < s->n_threads; t++) {
            free(s->xpad[t]);
            s->xpad[t] = zeroed(s->xpad_floats);
        }
    }
}

void diffu_kscratch_prepare(diffu_kscratch *s, const diffu_mat *w) {
    int N = w->rows, K = w->cols;
    if (N <= 0 || K <= 0) return;
    int nts[2] = {N < s->tile_n ? N : s->tile_n, N > s->tile_n ? N % s->tile_n : 0};
    int kt = w->dtype == DIFFU_F32 ? K : s->tile_k; /* as mm_tile splits K */
    int kns[2] = {K < kt ? K : kt, K > kt ? K % kt : 0};
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 2; b++)
            if (nts[a] > 0 && kns[b] > 0) prepare_shape(s, nts[a], kns[b]);
}

typedef struct {
    diffu_kscratch *s;
    const diffu_matmul_job *jobs;
    int n_jobs;
    int *first_task; /* [n_jobs + 1] task index where each job starts */
} mm_ctx;

/* Y[rows 0..T) cols [nb, nb+nt) (+)= X[0..T, kb..kb+kn) . Wt^T, Wt [nt x kn] with row stride ldw.
 * Every sgemm call has a multiple of P rows at an offset that is a multiple of
 * P, and at least R (shape_rows) of them. The whole panels go in one call when
 * there are at least R of them; the rows left (a last partial panel, or every
 * row) go through one R-row call into scratch: a window of X that ends on the
 * storage's last padded row when that holds R rows (the window's other rows
 * are computed again and dropped), else a zero-padded copy of the rows. */
static void mm_rows(const diffu_matmul_job *j, const float *wt, int ldw, int nb, int nt, int kb, int kn, float beta,
                    diffu_kscratch *s, int tid) {
    int T = j->t, P = s->panel, R = shape_rows(s, nt, kn), full = T - T % P;
    int y0 = 0; /* the first row of Y the scratch call delivers */
    if (full >= R) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, full, nt, kn, 1.0f, j->x + kb, j->ldx, wt, ldw, beta,
                    j->y + nb, j->ldy);
        if (full == T) return;
        y0 = full;
    }
    int avail = diffu_round_rows(T), ws; /* rows of X's storage (kernels.h); the window's first row */
    const float *xin;
    int ldx;
    if (avail >= R) {
        ws = avail - R;
        xin = j->x + (size_t)ws * j->ldx + kb;
        ldx = j->ldx;
    } else {
        float *xp = s->xpad[tid]; /* [R x kn] */
        for (int r = 0; r < T; r++) memcpy(xp + (size_t)r * kn, j->x + (size_t)r * j->ldx + kb, (size_t)kn * 4);
        ws = 0;
        xin = xp;
        ldx = kn;
    }
    float *tmp = s->rowpad[tid] + (size_t)(y0 - ws) * nt, *ybase = j->y + (size_t)y0 * j->ldy + nb; /* [R x nt] */
    int nout = T - y0;
    if (beta != 0.0f)
        for (int r = 0; r < nout; r++) memcpy(tmp + (size_t)r * nt, ybase + (size_t)r * j->ldy, (size_t)nt * 4);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, nt, kn, 1.0f, xin, ldx, wt, ldw, beta,
                s->rowpad[tid], nt);
    for (int r = 0; r < nout; r++) memcpy(ybase + (size_t)r * j->ldy, tmp + (size_t)r * nt, (size_t)nt * 4);
}

static void mm_tile(const diffu_matmul_job *j, int nb, diffu_kscratch *s, int tid) {
    const diffu_mat *w = j->w;
    int K = w->cols, N = w->rows;
    int nt = N - nb < s->tile_n ? N - nb : s->tile_n;
    if (j->t == 0) return;
    if (w->dtype == DIFFU_F32) {
        mm_rows(j, (const float *)w->data + (size_t)nb * w->ld, (int)w->ld, nb, nt, 0, K, 0.0f, s, tid);
    } else {
        float *tile = s->tile[tid];
        size_t es = diffu_dtype_size(w->dtype);
        int kt = s->tile_k; /* fixed: the summation order must not depend on nt */
        for (int kb = 0; kb < K; kb += kt) {
            int kn = K - kb < kt ? K - kb : kt;
            for (int r = 0; r < nt; r++)
                diffu_widen(tile + (size_t)r * kn, (const uint8_t *)w->data + ((size_t)(nb + r) * w->ld + kb) * es,
                            w->dtype, (size_t)kn);
            mm_rows(j, tile, kn, nb, nt, kb, kn, kb ? 1.0f : 0.0f, s, tid);
        }
    }
    if (j->bias)
        for (int t = 0; t < j->t; t++) {
            float *y = j->y + (size_t)t * j->ldy;
            for (int n = nb; n < nb + nt; n++) y[n] += j->bias[n];
        }
}

static void mm_task(void *arg, int i, int tid) {
    mm_ctx *c = arg;
    int k = 0;
    while (i >= c->first_task[k + 1]) k++;
    mm_tile(&c->jobs[k], (i - c->first_task[k]) * c->s->tile_n, c->s, tid);
}

void diffu_matmul(diffu_pool *pool, diffu_kscratch *s, const diffu_matmul_job *jobs, int n_jobs) {
    int first[9];
    DIFFU_ASSERT(n_jobs >= 1 && n_jobs <= 8);
    first[0] = 0;
    for (int k = 0; k < n_jobs; k++) {
        DIFFU_ASSERT(jobs[k].w->cols <= 0 || s->tile_k > 0);
        first[k + 1] = first[k] + (jobs[k].w->rows + s->tile_n - 1) / s->tile_n;
    }
    mm_ctx c = {s, jobs, n_jobs, first};
    diffu_pool_run(pool, mm_task, &c, first[n_jobs]);
}

/* ---------------------------------------------------------------- norms */

typedef struct {
    float *x, *y;
    const float *d, *w;
    int n, h, per;
    float eps;
} norm_ctx;

static void norm_task(void *arg, int i, int tid) {
    norm_ctx *c = arg;
    int r0 = i * c->per, r1 = r0 + c->per < c->n ? r0 + c->per : c->n;
    const diffu_simd *v = diffu_simd_get();
    for (int r = r0; r < r1; r++) {
        float *x = c->x + (size_t)r * c->h, *y = c->y + (size_t)r * c->h;
        if (c->d) v->add_rmsnorm(x, c->d + (size_t)r * c->h, y, c->w, c->h, c->eps);
        else v->rmsnorm(y, x, c->w, c->h, c->eps);
    }
}

static int rows_per_task(diffu_pool *pool, int n) {
    int tasks = diffu_pool_size(pool) * 4;
    int per = (n + tasks - 1) / tasks;
    return per < 1 ? 1 : per;
}

void diffu_rmsnorm(diffu_pool *pool, float *y, const float *x, const float *w, int n, int h, float eps) {
    norm_ctx c = {(float *)x, y, NULL, w, n, h, rows_per_task(pool, n), eps};
    diffu_pool_run(pool, norm_task, &c, (n + c.per - 1) / c.per);
}

void diffu_add_rmsnorm(diffu_pool *pool, float *x, const float *d, float *y, const float *w, int n, int h, float eps) {
    norm_ctx c = {x, y, d, w, n, h, rows_per_task(pool, n), eps};
    diffu_pool_run(pool, norm_task, &c, (n + c.per - 1) / c.per);
}

typedef struct { float *x; const float *d; size_t n, per; } add_ctx;
static void add_task(void *arg, int i, int tid) {
    add_ctx *c = arg;
    size_t a = (size_t)i * c->per, b = a + c->per < c->n ? a + c->per : c->n;
    diffu_simd_get()->add(c->x + a, c->d + a, b - a);
}
void diffu_add(diffu_pool *pool, float *x, const float *d, size_t n) {
    size_t tasks = (size_t)diffu_pool_size(pool) * 4, per = (n + tasks - 1) / tasks;
    if (per < 4096) per = 4096;
    add_ctx c = {x, d, n, per};
    diffu_pool_run(pool, add_task, &c, (int)((n + per - 1) / per));
}

/* ---------------------------------------------------------------- RoPE */

void diffu_rope_table(float *cosb, float *sinb, int n_pos, int hd, double theta) {
    int half = hd / 2;
    for (int j = 0; j < half; j++) {
        /* as the reference: inv_freq = 1 / theta^(2j / hd) */
        double inv = 1.0 / pow(theta, (double)(2 * j) / (double)hd);
        for (int p = 0; p < n_pos; p++) {
            double a = (double)p * inv;
            cosb[(size_t)p * half + j] = (float)cos(a);
            sinb[(size_t)p * half + j] = (float)sin(a);
        }
    }
}

typedef struct {
    float *x;
    int ld, T, n_heads, hd, per;
    const int32_t *pos;
    const float *cosb, *sinb;
} rope_ctx;

static void rope_task(void *arg, int i, int tid) {
    rope_ctx *c = arg;
    int half = c->hd / 2;
    int r0 = i * c->per, r1 = r0 + c->per < c->T ? r0 + c->per : c->T;
    const diffu_simd *v = diffu_simd_get();
    for (int t = r0; t < r1; t++) {
        const float *cs = c->cosb + (size_t)c->pos[t] * half, *sn = c->sinb + (size_t)c->pos[t] * half;
        for (int h = 0; h < c->n_heads; h++) v->rope(c->x + (size_t)t * c->ld + (size_t)h * c->hd, cs, sn, half);
    }
}

void diffu_rope(diffu_pool *pool, float *x, int ld, int T, int n_heads, int hd, const int32_t *pos, const float *cosb,
                const float *sinb) {
    rope_ctx c = {x, ld, T, n_heads, hd, rows_per_task(pool, T), pos, cosb, sinb};
    diffu_pool_run(pool, rope_task, &c, (T + c.per - 1) / c.per);
}

/* ---------------------------------------------------------------- attention */

/* One task = (sequence, query head, block of up to att_qblock query rows).
 * The context of sequence i is kb[i] / vb[i] (the KV cache), or, when kb is
 * NULL, the sequence's own rows k / v + q_start[i] (the plain forward). */
typedef struct {
    diffu_kscratch *s;
    float *out;
    const float *q, *k, *v;
    int ldq, ldkv, n_seq, nq, q_head0, kv_head0, group, hd;
    const int *q_start, *q_len, *kv_len;
    const float *const *kb, *const *vb;
} att_ctx;

static void att_task(void *arg, int i, int tid) {
    att_ctx *c = arg;
    int qb = c->s->att_qblock;
    /* task i -> (sequence, head, query block) */
    int seq = 0, rem = i;
    for (; seq < c->n_seq; seq++) {
        int per_seq = c->nq * ((c->q_len[seq] + qb - 1) / qb);
        if (rem < per_seq) break;
        rem -= per_seq;
    }
    int s0 = c->q_start[seq], Lq = c->q_len[seq], L = c->kv_len[seq];
    int blocks = (Lq + qb - 1) / qb;
    int h = rem / blocks, b = rem % blocks;
    int r0 = b * qb, rn = Lq - r0 < qb ? Lq - r0 : qb;
    int g = (h + c->q_head0) / c->group - c->kv_head0;
    const float *Q = c->q + (size_t)(s0 + r0) * c->ldq + (size_t)h * c->hd;
    const float *K = (c->kb ? c->kb[seq] : c->k + (size_t)s0 * c->ldkv) + (size_t)g * c->hd;
    const float *V = (c->vb ? c->vb[seq] : c->v + (size_t)s0 * c->ldkv) + (size_t)g * c->hd;
    float *S = c->s->att[tid]; /* [rn x L] */
    float scale = 1.0f / sqrtf((float)c->hd);
    const diffu_simd *v = c->s->simd;
    /* each output row depends on its own query row and the sequence's K/V only
     * (simd.h): not on rn, the block, the other sequences or the thread */
    v->qk(S, L, Q, c->ldq, K, c->ldkv, rn, L, c->hd, scale, c->s->kt[tid]);
    for (int r = 0; r < rn; r++) v->softmax(S + (size_t)r * L, L);
    float *O = c->out + (size_t)(s0 + r0) * c->ldq + (size_t)h * c->hd;
    v->pv(O, c->ldq, S, L, V, c->ldkv, rn, L, c->hd);
}

static void att_run(diffu_pool *pool, diffu_kscratch *s, att_ctx *c) {
    int tasks = 0;
    for (int i = 0; i < c->n_seq; i++) {
        DIFFU_ASSERT((size_t)c->kv_len[i] * (size_t)s->att_qblock <= s->att_floats);
        DIFFU_ASSERT(c->hd <= s->max_hd);
        tasks += c->nq * ((c->q_len[i] + s->att_qblock - 1) / s->att_qblock);
    }
    diffu_pool_run(pool, att_task, c, tasks);
}

void diffu_attention(diffu_pool *pool, diffu_kscratch *s, float *out, const float *q, int ldq, const float *k,
                     const float *v, int ldkv, int n_seq, const int *seq_start, const int *seq_len, int nq,
                     int q_head0, int kv_head0, int group, int hd) {
    att_ctx c = {s, out, q, k, v, ldq, ldkv, n_seq, nq, q_head0, kv_head0, group, hd, seq_start, seq_len, seq_len,
                 NULL, NULL};
    att_run(pool, s, &c);
}

void diffu_attention_kv(diffu_pool *pool, diffu_kscratch *s, float *out, const float *q, int ldq, int n_seq,
                        const int *q_start, const int *q_len, const float *const *kbase, const float *const *vbase,
                        int ldkv, const int *kv_len, int nq, int q_head0, int kv_head0, int group, int hd) {
    att_ctx c = {s, out, q, NULL, NULL, ldq, ldkv, n_seq, nq, q_head0, kv_head0, group, hd, q_start, q_len, kv_len,
                 kbase, vbase};
    att_run(pool, s, &c);
}

/* ---------------------------------------------------------------- SwiGLU */

typedef struct { float *g; const float *u; size_t n, per; } glu_ctx;
static void glu_task(void *arg, int i, int tid) {
    glu_ctx *c = arg;
    size_t a = (size_t)i * c->per, b = a + c->per < c->n ? a + c->per : c->n;
    diffu_simd_get()->swiglu(c->g + a, c->u + a, b - a);
}

void diffu_swiglu(diffu_pool *pool, float *g, const float *u, int rows, int cols) {
    size_t n = (size_t)rows * (size_t)cols;
    size_t tasks = (size_t)diffu_pool_size(pool) * 4, per = (n + tasks - 1) / tasks;
    if (per < 4096) per = 4096;
    glu_ctx c = {g, u, n, per};
    diffu_pool_run(pool, glu_task, &c, (int)((n + per - 1) / per));
}
