/* kernels.h — the compute kernels of the forward pass, all fp32, threaded on
 * a diffu_pool. The fp32 weight products go to OpenBLAS sgemm (single-threaded
 * inside each pool thread: the pool owns the parallelism). Weights in BF16/F16
 * are widened to fp32 tile by tile into per-thread scratch just before their
 * sgemm, so they stay resident in the checkpoint dtype. Norms, RoPE, SwiGLU,
 * residual adds and attention (QK^T, softmax, PV) run on the vector kernels of
 * simd.h (AVX-512 / AVX2 / scalar, chosen at start-up), not on the BLAS.
 * None of these allocate; scratch comes from diffu_kscratch, sized at load.
 * Not collective. */
#ifndef DIFFU_KERNELS_H
#define DIFFU_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "threadpool.h"
#include "weights.h"

/* The row panel P of this process's BLAS (see kernels.c, batch invariance):
 * the smallest P such that sgemm computes a row bit for bit the same whatever
 * the call's row count and the row's offset, as long as both are multiples of
 * P. Probed once (thread-safe); DIFFU_ROW_PANEL=N in the environment
 * overrides. 1 when the BLAS is invariant anyway; on OpenBLAS 0.3.21's Haswell
 * kernel it is 12. A matmul input X with t rows needs storage for
 * diffu_round_rows(t) rows, the extra rows finite (zeroed at alloc). */
int diffu_row_panel(void);
static inline int diffu_round_rows(int t) {
    int p = diffu_row_panel();
    return (t + p - 1) / p * p;
}

/* Per-thread scratch, sized once from the memory plan. */
typedef struct diffu_kscratch {
    int n_threads;
    size_t tile_floats;   /* widened weight tile per thread */
    float **tile;         /* [n_threads][tile_floats] */
    size_t att_floats;    /* attention scores per thread: att_qblock x max_seq */
    float **att;          /* [n_threads][att_floats] */
    int att_qblock;
    size_t kt_floats;     /* transposed key block per thread: DIFFU_SIMD_KBLOCK x max_hd */
    float **kt;           /* [n_threads][kt_floats] */
    int max_hd;
    const struct diffu_simd *simd; /* simd.h: the element-wise and attention kernels, chosen at init */
    int tile_n;           /* output rows per widened tile: the matmul work unit */
    int tile_k;           /* inputs per widened tile (fixed K split) */
    int panel;            /* diffu_row_panel() */
    /* The fewest rows per sgemm call, per (tile width, K) shape of the model's
     * products (diffu_kscratch_prepare): some BLAS kernels switch to another
     * summation order for small calls (OpenBLAS 0.3.21's SkylakeX/Cooperlake
     * "small matrix" kernel when m x nt <= 1200), so a row's bits would depend
     * on how many rows its call has. Calls below the minimum are padded. */
    int n_shapes;
    struct { int nt, kn, rows; } shape[32];
    int pad_rows;         /* the largest minimum */
    size_t xpad_floats;   /* per thread: the largest minimum x its K */
    float **rowpad;       /* [n_threads][pad_rows x tile_n] padded call's output */
    float **xpad;         /* [n_threads][xpad_floats] padded call's input */
} diffu_kscratch;

void diffu_kscratch_init(diffu_kscratch *s, int n_threads, int max_k, int max_seq, int max_hd);
void diffu_kscratch_free(diffu_kscratch *s);
size_t diffu_kscratch_bytes(const diffu_kscratch *s);

/* Before the first diffu_matmul with fp32 sgemm on w: probe (random data, a
 * few sgemm calls per tile shape) the fewest rows from which a row's result
 * no longer depends on its call's row count, and size the padding scratch.
 * Start-up only (allocates); a product with an unprepared shape asserts. */
void diffu_kscratch_prepare(diffu_kscratch *s, const diffu_mat *w);

/* One product Y[T x W.rows] (row stride ldy) = X[T x W.cols] (stride ldx) . W^T (+ bias).
 * X needs diffu_round_rows(T) rows of storage; Y gets exactly T rows. A row's
 * result depends only on its own values and its offset modulo the row panel:
 * not on T, the other rows or the thread count (bit for bit). */
typedef struct diffu_matmul_job {
    float *y;
    int ldy;
    const float *x;
    int ldx;
    int t;
    const diffu_mat *w;
    const float *bias; /* [W.rows] or NULL */
} diffu_matmul_job;

/* Run several (at most 8) independent products in one parallel region (e.g. q, k, v). */
void diffu_matmul(diffu_pool *pool, diffu_kscratch *s, const diffu_matmul_job *jobs, int n_jobs);

/* y[r] = x[r] * rsqrt(mean(x[r]^2) + eps) * w for n rows of width h; y may equal x. */
void diffu_rmsnorm(diffu_pool *pool, float *y, const float *x, const float *w, int n, int h, float eps);
/* x += d, then y = rmsnorm(x) (the residual add fused with the next norm). */
void diffu_add_rmsnorm(diffu_pool *pool, float *x, const float *d, float *y, const float *w, int n, int h, float eps);
void diffu_add(diffu_pool *pool, float *x, const float *d, size_t n);

/* RoPE table for positions [0, n_pos): cos/sin [n_pos x hd/2], computed in double. */
void diffu_rope_table(float *cosb, float *sinb, int n_pos, int hd, double theta);
/* Rotate heads in place (NeoX / rotate_half layout: j pairs with j + hd/2).
 * x [T x ld], n_heads heads of hd starting at column 0; pos[T]. */
void diffu_rope(diffu_pool *pool, float *x, int ld, int T, int n_heads, int hd, const int32_t *pos,
                const float *cosb, const float *sinb);

/* Bidirectional grouped-query attention over ragged sequences. One task per
 * (sequence, query head, block of att_qblock query rows): S = QK^T / sqrt(hd),
 * softmax by rows, O = SV, on simd.h's kernels, so a row's result depends on
 * its query row and its sequence's keys/values only.
 * q [T x ldq] (nq heads), k, v [T x ldkv] (nkv heads), out [T x ldq].
 * Query head h reads KV head (h + q_head0) / group - kv_head0, where q_head0 /
 * kv_head0 are the shard's first global heads. Sequence i is rows
 * [seq_start[i], seq_start[i] + seq_len[i]) and attends to exactly those rows
 * (rows between sequences, e.g. panel padding, are left untouched). */
void diffu_attention(diffu_pool *pool, diffu_kscratch *s, float *out, const float *q, int ldq, const float *k,
                     const float *v, int ldkv, int n_seq, const int *seq_start, const int *seq_len, int nq,
                     int q_head0, int kv_head0, int group, int hd);

/* The same attention for query rows over a context held elsewhere (the KV
 * cache): sequence i's queries are rows [q_start[i], q_start[i] + q_len[i]) of
 * q; its keys/values are kv_len[i] rows at kbase[i] / vbase[i] (row stride
 * ldkv, nkv heads of hd). One kernel serves both entry points: with every row
 * of a sequence as queries and a context holding the same keys/values,
 * diffu_attention_kv gives diffu_attention's bits. A row's result depends on
 * its sequence only (not on the other sequences or the thread count). */
void diffu_attention_kv(diffu_pool *pool, diffu_kscratch *s, float *out, const float *q, int ldq, int n_seq,
                        const int *q_start, const int *q_len, const float *const *kbase, const float *const *vbase,
                        int ldkv, const int *kv_len, int nq, int q_head0, int kv_head0, int group, int hd);

/* g[i] = silu(g[i]) * u[i] */
void diffu_swiglu(diffu_pool *pool, float *g, const float *u, int rows, int cols);

#endif
