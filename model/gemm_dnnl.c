/* gemm_dnnl.c — the bf16 and int8 engines on oneDNN's matmul (see gemm.h).
 *
 * Shapes: Y[t x N] = X[t x K] . W^T. W is cut into blocks of NB weight rows
 * (the last may be narrower); each block is reordered once into the blocked
 * layout oneDNN's brgemm wants (queried from a primitive created with
 * format "any" at M = MT) and kept in one owned buffer per matrix. X is
 * converted per call (BF16, or s8 with a per-row scale) into a plan buffer
 * [rows x K], rows padded with zeros to the M step. The unit of work is one
 * block: its M tiles run in order on one pool thread, each tile through a
 * primitive created at load for exactly that (M, N block, K); the result goes
 * to a per-thread fp32/s32 tile and is copied out (scaled, + bias) to Y. */
#include "gemm_dnnl.h"

#include <math.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtype.h"
#include "simd.h"

#define MAX_MSTEPS 64

typedef struct prim {
    int M, N, K;
    dnnl_primitive_t p;
    dnnl_memory_t *src, *wei, *dst, *scr; /* [n_threads] */
    char impl[64];
} prim;

typedef struct wlayout { /* blocked weights layout of one (N, K) */
    int N, K;
    dnnl_memory_desc_t md;
    size_t bytes;
    prim *pm[MAX_MSTEPS]; /* by M / mstep - 1 */
} wlayout;

typedef struct packed {
    int rows, cols, nblk;
    wlayout *full, *tail; /* layout of the NB blocks and of the last one (may equal full) */
    size_t *off;          /* [nblk] byte offset of each block in buf */
    uint8_t *buf;
    float *scale;         /* int8: [rows] weight row scales */
} packed;

struct diffu_dnnl {
    diffu_precision prec;
    dnnl_data_type_t sdt, wdt, ddt;
    int es; /* bytes per activation / weight element */
    int nthr, MT, NB, mstep, all_m;
    dnnl_engine_t eng;
    dnnl_stream_t *st;  /* [nthr] */
    wlayout **lay;
    int nlay;
    prim **prims;
    int nprims;
    packed **packs;
    int npacks;
    uint8_t *xq;   /* [xq_rows x max_k] converted activations */
    float *xs;     /* [xq_rows] int8 row scales */
    int xq_rows, max_k;
    void **scr;    /* [nthr] oneDNN scratchpads */
    size_t scr_bytes;
    float **tile;  /* [nthr][MT x NB] fp32 or s32 results */
    size_t wbytes;
    double conv_sec; /* time in the activation conversion (diffu_dnnl_convert_seconds) */
    char impl[64];
    char desc[160];
};

static int dn_err(diffu_err *err, dnnl_status_t s, const char *what) {
    return diffu_err_set(err, "oneDNN %s failed (status %d)", what, (int)s);
}
#define DN(call, what)                                  \
    do {                                                \
        dnnl_status_t s_ = (call);                      \
        if (s_ != dnnl_success) return dn_err(err, s_, what); \
    } while (0)

static void omp_one(void) {
    /* oneDNN's OpenMP runs one thread inside each of our pool threads: the
     * pool owns the cores (the ICV is per thread; set once per thread). */
    static __thread int done;
    if (!done) {
        omp_set_num_threads(1);
        done = 1;
    }
}

static size_t round_up_sz(size_t n, size_t p) { return (n + p - 1) / p * p; }

static void *aligned_zero(size_t n) {
    void *p = diffu_xaligned(round_up_sz(n ? n : 64, 64));
    memset(p, 0, round_up_sz(n ? n : 64, 64));
    return p;
}

/* A primitive for (M, N, K); wmd NULL: weights "any" (and *wmd_out gets the chosen layout). */
static int make_prim(diffu_dnnl *d, int M, int N, int K, const dnnl_memory_desc_t *wmd, dnnl_memory_desc_t *wmd_out,
                     prim **out, diffu_err *err) {
    dnnl_memory_desc_t smd, wany, dmd;
    dnnl_dims_t sdim = {M, K}, wdim = {K, N}, ddim = {M, N};
    dnnl_dims_t sstr = {K, 1}, dstr = {N, 1};
    DN(dnnl_memory_desc_init_by_strides(&smd, 2, sdim, d->sdt, sstr), "source descriptor");
    DN(dnnl_memory_desc_init_by_strides(&dmd, 2, ddim, d->ddt, dstr), "destination descriptor");
    if (wmd) wany = *wmd;
    else DN(dnnl_memory_desc_init_by_tag(&wany, 2, wdim, d->wdt, dnnl_format_tag_any), "weights descriptor");
    dnnl_matmul_desc_t mdesc;
    DN(dnnl_matmul_desc_init(&mdesc, &smd, &wany, NULL, &dmd), "matmul descriptor");
    dnnl_primitive_attr_t attr;
    DN(dnnl_primitive_attr_create(&attr), "attribute");
    dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user);
    dnnl_primitive_desc_t pd;
    dnnl_status_t s = dnnl_primitive_desc_create(&pd, &mdesc, attr, d->eng, NULL);
    dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success)
        return diffu_err_set(err, "oneDNN has no %s matmul for M %d x K %d x N %d on this CPU (status %d)",
                             diffu_precision_name(d->prec), M, K, N, (int)s);
    prim *p = diffu_xcalloc(1, sizeof *p);
    p->M = M, p->N = N, p->K = K;
    const char *impl = "?";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl);
    snprintf(p->impl, sizeof p->impl, "%s", impl);
    if (wmd_out) *wmd_out = *dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    const dnnl_memory_desc_t *spmd = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
    size_t spb = spmd ? dnnl_memory_desc_get_size(spmd) : 0;
    const dnnl_memory_desc_t *wq = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    s = dnnl_primitive_create(&p->p, pd);
    if (s != dnnl_success) {
        dnnl_primitive_desc_destroy(pd);
        free(p);
        return dn_err(err, s, "primitive creation");
    }
    p->src = diffu_xcalloc((size_t)d->nthr, sizeof *p->src);
    p->wei = diffu_xcalloc((size_t)d->nthr, sizeof *p->wei);
    p->dst = diffu_xcalloc((size_t)d->nthr, sizeof *p->dst);
    p->scr = diffu_xcalloc((size_t)d->nthr, sizeof *p->scr);
    for (int t = 0; t < d->nthr; t++) {
        dnnl_memory_create(&p->src[t], &smd, d->eng, DNNL_MEMORY_NONE);
        dnnl_memory_create(&p->wei[t], wq, d->eng, DNNL_MEMORY_NONE);
        dnnl_memory_create(&p->dst[t], &dmd, d->eng, DNNL_MEMORY_NONE);
        if (spb) dnnl_memory_create(&p->scr[t], spmd, d->eng, DNNL_MEMORY_NONE);
    }
    dnnl_primitive_desc_destroy(pd);
    if (spb > d->scr_bytes) { /* load time only */
        for (int t = 0; t < d->nthr; t++) {
            free(d->scr[t]);
            d->scr[t] = aligned_zero(spb);
        }
        d->scr_bytes = spb;
    }
    d->prims = diffu_xrealloc(d->prims, (size_t)(d->nprims + 1) * sizeof *d->prims);
    d->prims[d->nprims++] = p;
    *out = p;
    return 0;
}

static void prim_exec(diffu_dnnl *d, prim *p, int tid, const void *src, const void *wei, void *dst) {
    dnnl_memory_set_data_handle(p->src[tid], (void *)src);
    dnnl_memory_set_data_handle(p->wei[tid], (void *)wei);
    dnnl_memory_set_data_handle(p->dst[tid], dst);
    dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, p->src[tid]}, {DNNL_ARG_WEIGHTS, p->wei[tid]}, {DNNL_ARG_DST, p->dst[tid]}};
    int na = 3;
    if (p->scr[tid]) {
        dnnl_memory_set_data_handle(p->scr[tid], d->scr[tid]);
        a[na++] = (dnnl_exec_arg_t){DNNL_ARG_SCRATCHPAD, p->scr[tid]};
    }
    dnnl_status_t s = dnnl_primitive_execute(p->p, d->st[tid], na, a);
    DIFFU_ASSERTF(s == dnnl_success, "oneDNN matmul execute: status %d", (int)s);
    dnnl_stream_wait(d->st[tid]);
}

/* The layout + primitives for (N, K): created once, shared by every matrix of that shape. */
static int get_layout(diffu_dnnl *d, int N, int K, wlayout **out, diffu_err *err) {
    for (int i = 0; i < d->nlay; i++)
        if (d->lay[i]->N == N && d->lay[i]->K == K) {
            *out = d->lay[i];
            return 0;
        }
    wlayout *L = diffu_xcalloc(1, sizeof *L);
    L->N = N, L->K = K;
    int nm = d->MT / d->mstep;
    if (make_prim(d, d->MT, N, K, NULL, &L->md, &L->pm[nm - 1], err)) {
        free(L);
        return -1;
    }
    L->bytes = dnnl_memory_desc_get_size(&L->md);
    if (d->all_m)
        for (int i = 0; i < nm - 1; i++)
            if (make_prim(d, (i + 1) * d->mstep, N, K, &L->md, NULL, &L->pm[i], err)) return -1;
    if (!d->impl[0]) snprintf(d->impl, sizeof d->impl, "%s", L->pm[nm - 1]->impl);
    d->lay = diffu_xrealloc(d->lay, (size_t)(d->nlay + 1) * sizeof *d->lay);
    d->lay[d->nlay++] = L;
    *out = L;
    return 0;
}

static prim *pick(const diffu_dnnl *d, const wlayout *L, int rows, int *M) {
    int m = d->all_m ? (int)round_up_sz((size_t)rows, (size_t)d->mstep) : d->MT;
    *M = m;
    return L->pm[m / d->mstep - 1];
}

/* Reorder a plain [n x K] block (element (r, k) at src + (r * ld + k) * size of dt) into L's layout at dst. */
static int reorder_block(diffu_dnnl *d, const wlayout *L, const void *src, size_t ld, dnnl_data_type_t dt, void *dst,
                         diffu_err *err) {
    dnnl_memory_desc_t pmd;
    dnnl_dims_t dim = {L->K, L->N}, str = {1, (dnnl_dim_t)ld};
    DN(dnnl_memory_desc_init_by_strides(&pmd, 2, dim, dt, str), "plain weights descriptor");
    dnnl_primitive_desc_t rpd;
    DN(dnnl_reorder_primitive_desc_create(&rpd, &pmd, d->eng, &L->md, d->eng, NULL), "weights reorder");
    dnnl_primitive_t r;
    dnnl_status_t s = dnnl_primitive_create(&r, rpd);
    dnnl_primitive_desc_destroy(rpd);
    if (s != dnnl_success) return dn_err(err, s, "weights reorder");
    dnnl_memory_t a, b;
    dnnl_memory_create(&a, &pmd, d->eng, (void *)src);
    dnnl_memory_create(&b, &L->md, d->eng, dst);
    dnnl_exec_arg_t args[2] = {{DNNL_ARG_FROM, a}, {DNNL_ARG_TO, b}};
    s = dnnl_primitive_execute(r, d->st[0], 2, args);
    dnnl_stream_wait(d->st[0]);
    dnnl_memory_destroy(a);
    dnnl_memory_destroy(b);
    dnnl_primitive_destroy(r);
    if (s != dnnl_success) return dn_err(err, s, "weights reorder");
    return 0;
}

/* Row-major [rows x K] activations -> the engine's input type (simd.h's conversions:
 * the same bits in every table). */
static void quant_rows(const diffu_dnnl *d, const float *x, int ldx, int K, int r0, int r1, uint8_t *xq, float *xs) {
    const diffu_simd *v = diffu_simd_get();
    for (int r = r0; r < r1; r++) {
        const float *xr = x + (size_t)r * ldx;
        if (d->prec == DIFFU_PREC_BF16) v->to_bf16((uint16_t *)xq + (size_t)r * K, xr, (size_t)K);
        else xs[r] = v->to_s8((int8_t *)xq + (size_t)r * K, xr, K);
    }
}

/* ---------------------------------------------------------------- probe */

/* Does every M primitive give a row the same bits as the M = MT one, at any
 * offset of the row inside its tile? (Random data, N = NB, two K sizes.) */
static int probe_all_m(diffu_dnnl *d, diffu_err *err) {
    int Ks[2] = {320, 1000};
    int N = d->NB, ok = 1;
    for (int kk = 0; kk < 2 && ok; kk++) {
        int K = Ks[kk];
        wlayout *L;
        if (get_layout(d, N, K, &L, err)) return -1;
        size_t rows = (size_t)d->MT + d->mstep;
        float *w = diffu_xmalloc((size_t)N * K * 4), *x = diffu_xmalloc(rows * K * 4);
        uint32_t s = 777u + (uint32_t)K;
        for (size_t i = 0; i < (size_t)N * K; i++) w[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
        for (size_t i = 0; i < rows * K; i++) x[i] = (float)((s = s * 1664525u + 1013904223u) >> 8) / 16777216.0f - 0.5f;
        uint8_t *wb = aligned_zero(L->bytes), *xq = aligned_zero(rows * K * d->es);
        float *xs = diffu_xcalloc(rows, 4);
        int8_t *wq = NULL;
        if (d->prec == DIFFU_PREC_INT8) {
            wq = diffu_xmalloc((size_t)N * K);
            for (size_t i = 0; i < (size_t)N * K; i++) wq[i] = (int8_t)lrintf(w[i] * 250.0f);
            if (reorder_block(d, L, wq, (size_t)K, dnnl_s8, wb, err)) return -1;
        } else if (reorder_block(d, L, w, (size_t)K, dnnl_f32, wb, err)) return -1;
        quant_rows(d, x, K, K, 0, (int)rows, xq, xs);
        float *ref = aligned_zero((size_t)d->MT * N * 4), *got = aligned_zero((size_t)d->MT * N * 4);
        prim_exec(d, L->pm[d->MT / d->mstep - 1], 0, xq, wb, ref);
        for (int mi = 0; mi < d->MT / d->mstep && ok; mi++) {
            int M = (mi + 1) * d->mstep;
            int offs[3] = {0, 5, d->MT - M};
            for (int oi = 0; oi < 3 && ok; oi++) {
                int o = offs[oi];
                if (o < 0 || o + M > d->MT) continue;
                prim_exec(d, L->pm[mi], 0, xq + (size_t)o * K * d->es, wb, got);
                ok = !memcmp(got, ref + (size_t)o * N, (size_t)M * N * 4);
            }
        }
        free(w), free(x), free(wb), free(xq), free(xs), free(wq), free(ref), free(got);
    }
    return ok;
}

/* ---------------------------------------------------------------- engine */

static int env_int(const char *n, int dflt) {
    const char *v = getenv(n);
    return v && atoi(v) > 0 ? atoi(v) : dflt;
}

static void set_max_isa(void) {
    static int done;
    if (done) return;
    done = 1;
    const diffu_cpu *c = diffu_cpu_get();
    if (!c->capped) return;
    dnnl_cpu_isa_t isa = dnnl_cpu_isa_all;
    if (!strcmp(c->isa, "avx2")) isa = dnnl_cpu_isa_avx2;
    else if (!strcmp(c->isa, "avx512")) isa = dnnl_cpu_isa_avx512_core;
    else if (!strcmp(c->isa, "avx512_vnni")) isa = dnnl_cpu_isa_avx512_core_vnni;
    else if (!strcmp(c->isa, "avx512_bf16")) isa = dnnl_cpu_isa_avx512_core_bf16;
    else if (!strcmp(c->isa, "sse")) isa = dnnl_cpu_isa_sse41;
    dnnl_set_max_cpu_isa(isa);
}

int diffu_dnnl_create(diffu_precision p, int n_threads, int max_rows, int max_k, diffu_dnnl **out, diffu_err *err) {
    *out = NULL;
    set_max_isa();
    omp_one();
    diffu_dnnl *d = diffu_xcalloc(1, sizeof *d);
    d->prec = p;
    if (p == DIFFU_PREC_BF16) d->sdt = d->wdt = dnnl_bf16, d->ddt = dnnl_f32, d->es = 2;
    else d->sdt = d->wdt = dnnl_s8, d->ddt = dnnl_s32, d->es = 1;
    d->nthr = n_threads < 1 ? 1 : n_threads;
    d->mstep = env_int("DIFFU_GEMM_MSTEP", 16);
    d->MT = (int)round_up_sz((size_t)env_int("DIFFU_GEMM_MT", 128), (size_t)d->mstep);
    if (d->MT / d->mstep > MAX_MSTEPS) d->MT = d->mstep * MAX_MSTEPS;
    d->NB = env_int("DIFFU_GEMM_NB", 128);
    d->all_m = 1;
    if (dnnl_engine_create(&d->eng, dnnl_cpu, 0) != dnnl_success) {
        free(d);
        return diffu_err_set(err, "oneDNN: no CPU engine");
    }
    d->st = diffu_xcalloc((size_t)d->nthr, sizeof *d->st);
    for (int t = 0; t < d->nthr; t++) dnnl_stream_create(&d->st[t], d->eng, dnnl_stream_default_flags);
    d->scr = diffu_xcalloc((size_t)d->nthr, sizeof *d->scr);
    d->tile = diffu_xcalloc((size_t)d->nthr, sizeof *d->tile);
    for (int t = 0; t < d->nthr; t++) d->tile[t] = aligned_zero((size_t)d->MT * d->NB * 4);
    int ok = probe_all_m(d, err);
    if (ok < 0) {
        diffu_dnnl_free(d);
        return -1;
    }
    if (!ok) {
        DLOG_WARN("gemm %s: oneDNN's rows differ between M primitives; every tile runs at M = %d (padded)",
                  diffu_precision_name(p), d->MT);
        d->all_m = 0; /* the probe's layouts keep their M = MT primitive, which is all pick() uses now */
    }
    d->max_k = max_k;
    d->xq_rows = (int)round_up_sz((size_t)(max_rows > 0 ? max_rows : 1), (size_t)d->MT);
    d->xq = aligned_zero((size_t)d->xq_rows * max_k * d->es);
    d->xs = aligned_zero((size_t)d->xq_rows * 4);
    snprintf(d->desc, sizeof d->desc, "%s, M tile %d%s%d, N block %d", d->impl, d->MT, d->all_m ? " step " : " fixed, probe failed at step ",
             d->mstep, d->NB);
    *out = d;
    return 0;
}

void diffu_dnnl_free(diffu_dnnl *d) {
    if (!d) return;
    for (int i = 0; i < d->nprims; i++) {
        prim *p = d->prims[i];
        for (int t = 0; t < d->nthr; t++) {
            dnnl_memory_destroy(p->src[t]);
            dnnl_memory_destroy(p->wei[t]);
            dnnl_memory_destroy(p->dst[t]);
            if (p->scr[t]) dnnl_memory_destroy(p->scr[t]);
        }
        free(p->src), free(p->wei), free(p->dst), free(p->scr);
        dnnl_primitive_destroy(p->p);
        free(p);
    }
    free(d->prims);
    for (int i = 0; i < d->nlay; i++) free(d->lay[i]);
    free(d->lay);
    for (int i = 0; i < d->npacks; i++) {
        free(d->packs[i]->off), free(d->packs[i]->buf), free(d->packs[i]->scale);
        free(d->packs[i]);
    }
    free(d->packs);
    for (int t = 0; t < d->nthr; t++) {
        if (d->st) dnnl_stream_destroy(d->st[t]);
        if (d->scr) free(d->scr[t]);
        if (d->tile) free(d->tile[t]);
    }
    free(d->st), free(d->scr), free(d->tile);
    free(d->xq), free(d->xs);
    if (d->eng) dnnl_engine_destroy(d->eng);
    free(d);
}

int diffu_dnnl_pack(diffu_dnnl *d, diffu_mat *w, diffu_err *err) {
    int N = w->rows, K = w->cols;
    if (K > d->max_k) return diffu_err_set(err, "gemm: a matrix with %d inputs exceeds the plan's %d", K, d->max_k);
    packed *pk = diffu_xcalloc(1, sizeof *pk);
    pk->rows = N, pk->cols = K;
    pk->nblk = (N + d->NB - 1) / d->NB;
    int nb_full = N < d->NB ? N : d->NB, nb_tail = N - (pk->nblk - 1) * d->NB;
    if (get_layout(d, nb_full, K, &pk->full, err) || get_layout(d, nb_tail, K, &pk->tail, err)) {
        free(pk);
        return -1;
    }
    pk->off = diffu_xcalloc((size_t)pk->nblk, sizeof *pk->off);
    size_t total = 0;
    for (int b = 0; b < pk->nblk; b++) {
        pk->off[b] = total;
        total += round_up_sz((b == pk->nblk - 1 ? pk->tail : pk->full)->bytes, 64);
    }
    pk->buf = aligned_zero(total);
    d->wbytes += total;
    size_t es = diffu_dtype_size(w->dtype);
    float *tmp = NULL;
    int8_t *tq = NULL;
    if (d->prec == DIFFU_PREC_INT8) {
        pk->scale = diffu_xcalloc((size_t)N, sizeof(float));
        d->wbytes += (size_t)N * 4;
        tmp = diffu_xmalloc((size_t)d->NB * K * 4);
        tq = diffu_xmalloc((size_t)d->NB * K);
    } else if (w->dtype == DIFFU_F16) {
        tmp = diffu_xmalloc((size_t)d->NB * K * 4);
    }
    int rc = 0;
    for (int b = 0; b < pk->nblk && !rc; b++) {
        const wlayout *L = b == pk->nblk - 1 ? pk->tail : pk->full;
        int n0 = b * d->NB, nn = L->N;
        const uint8_t *src = (const uint8_t *)w->data + (size_t)n0 * w->ld * es;
        if (d->prec == DIFFU_PREC_INT8) {
            for (int r = 0; r < nn; r++) diffu_widen(tmp + (size_t)r * K, src + (size_t)r * w->ld * es, w->dtype, (size_t)K);
            for (int r = 0; r < nn; r++) {
                const float *wr = tmp + (size_t)r * K;
                float amax = 0.0f;
                for (int k = 0; k < K; k++) amax = fmaxf(amax, fabsf(wr[k]));
                float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
                for (int k = 0; k < K; k++) tq[(size_t)r * K + k] = (int8_t)lrintf(wr[k] * inv);
                pk->scale[n0 + r] = amax / 127.0f;
            }
            rc = reorder_block(d, L, tq, (size_t)K, dnnl_s8, pk->buf + pk->off[b], err);
        } else if (w->dtype == DIFFU_F16) {
            for (int r = 0; r < nn; r++) diffu_widen(tmp + (size_t)r * K, src + (size_t)r * w->ld * es, w->dtype, (size_t)K);
            rc = reorder_block(d, L, tmp, (size_t)K, dnnl_f32, pk->buf + pk->off[b], err);
        } else { /* BF16 straight from the checkpoint; F32 rounded by the reorder */
            rc = reorder_block(d, L, src, w->ld, w->dtype == DIFFU_BF16 ? dnnl_bf16 : dnnl_f32, pk->buf + pk->off[b], err);
        }
    }
    free(tmp);
    free(tq);
    d->packs = diffu_xrealloc(d->packs, (size_t)(d->npacks + 1) * sizeof *d->packs);
    d->packs[d->npacks++] = pk;
    if (rc) return -1;
    w->packed = pk;
    return 0;
}

/* ---------------------------------------------------------------- run */

typedef struct {
    diffu_dnnl *d;
    const diffu_matmul_job *jobs;
    int n_jobs;
    int first[9];
    int t, K, ldx;
    const float *x;
    int per; /* quantization rows per task */
} run_ctx;

static void quant_task(void *arg, int i, int tid) {
    run_ctx *c = arg;
    int rp = (int)round_up_sz((size_t)c->t, (size_t)c->d->MT);
    int r0 = i * c->per, r1 = r0 + c->per < rp ? r0 + c->per : rp;
    int q1 = r1 < c->t ? r1 : c->t;
    if (q1 > r0) quant_rows(c->d, c->x, c->ldx, c->K, r0, q1, c->d->xq, c->d->xs);
    if (r1 > (q1 > r0 ? q1 : r0)) { /* padding rows: zero */
        int z0 = q1 > r0 ? q1 : r0;
        memset(c->d->xq + (size_t)z0 * c->K * c->d->es, 0, (size_t)(r1 - z0) * c->K * c->d->es);
        if (c->d->xs) memset(c->d->xs + z0, 0, (size_t)(r1 - z0) * 4);
    }
}

static void block_task(void *arg, int i, int tid) {
    run_ctx *c = arg;
    diffu_dnnl *d = c->d;
    omp_one();
    int k = 0;
    while (i >= c->first[k + 1]) k++;
    const diffu_matmul_job *j = &c->jobs[k];
    const packed *pk = j->w->packed;
    int b = i - c->first[k];
    const wlayout *L = b == pk->nblk - 1 ? pk->tail : pk->full;
    int nb = b * d->NB, nn = L->N, K = c->K;
    const uint8_t *wb = pk->buf + pk->off[b];
    float *tile = d->tile[tid];
    for (int m0 = 0; m0 < j->t; m0 += d->MT) {
        int rows = j->t - m0 < d->MT ? j->t - m0 : d->MT, M;
        prim *p = pick(d, L, rows, &M);
        prim_exec(d, p, tid, d->xq + (size_t)m0 * K * d->es, wb, tile);
        for (int r = 0; r < rows; r++) {
            float *y = j->y + (size_t)(m0 + r) * j->ldy + nb;
            if (d->prec == DIFFU_PREC_INT8) {
                const int32_t *acc = (const int32_t *)tile + (size_t)r * nn;
                float sx = d->xs[m0 + r];
                const float *sw = pk->scale + nb;
                if (j->bias)
                    for (int n = 0; n < nn; n++) y[n] = (float)acc[n] * sx * sw[n] + j->bias[nb + n];
                else
                    for (int n = 0; n < nn; n++) y[n] = (float)acc[n] * sx * sw[n];
            } else {
                const float *acc = tile + (size_t)r * nn;
                if (j->bias)
                    for (int n = 0; n < nn; n++) y[n] = acc[n] + j->bias[nb + n];
                else
                    memcpy(y, acc, (size_t)nn * 4);
            }
        }
    }
}

void diffu_dnnl_run(diffu_dnnl *d, diffu_pool *pool, const diffu_matmul_job *jobs, int n_jobs) {
    DIFFU_ASSERT(n_jobs >= 1 && n_jobs <= 8);
    for (int g0 = 0; g0 < n_jobs;) {
        /* a group: consecutive jobs reading the same input (q/k/v, gate/up) */
        int g1 = g0 + 1;
        while (g1 < n_jobs && jobs[g1].x == jobs[g0].x && jobs[g1].ldx == jobs[g0].ldx && jobs[g1].t == jobs[g0].t &&
               jobs[g1].w->cols == jobs[g0].w->cols)
            g1++;
        run_ctx c = {.d = d, .jobs = jobs + g0, .n_jobs = g1 - g0, .t = jobs[g0].t, .K = jobs[g0].w->cols,
                     .ldx = jobs[g0].ldx, .x = jobs[g0].x};
        if (c.t > 0) {
            DIFFU_ASSERTF((int)round_up_sz((size_t)c.t, (size_t)d->MT) <= d->xq_rows && c.K <= d->max_k,
                          "gemm: %d rows x %d inputs exceed the plan", c.t, c.K);
            int rp = (int)round_up_sz((size_t)c.t, (size_t)d->MT);
            int tasks = diffu_pool_size(pool) * 4;
            c.per = (rp + tasks - 1) / tasks;
            if (c.per < 1) c.per = 1;
            double t0 = diffu_now();
            diffu_pool_run(pool, quant_task, &c, (rp + c.per - 1) / c.per);
            d->conv_sec += diffu_now() - t0;
            c.first[0] = 0;
            for (int k = 0; k < c.n_jobs; k++) {
                const packed *pk = c.jobs[k].w->packed;
                DIFFU_ASSERTF(pk, "gemm: weight matrix not packed for %s", diffu_precision_name(d->prec));
                c.first[k + 1] = c.first[k] + pk->nblk;
            }
            diffu_pool_run(pool, block_task, &c, c.first[c.n_jobs]);
        }
        g0 = g1;
    }
}

double diffu_dnnl_convert_seconds(diffu_dnnl *d, int reset) {
    double s = d->conv_sec;
    if (reset) d->conv_sec = 0;
    return s;
}

const char *diffu_dnnl_describe(const diffu_dnnl *d) { return d->desc; }
size_t diffu_dnnl_weight_bytes(const diffu_dnnl *d) { return d->wbytes; }
size_t diffu_dnnl_scratch_bytes(const diffu_dnnl *d) {
    return (size_t)d->xq_rows * d->max_k * d->es + (size_t)d->xq_rows * 4 +
           (size_t)d->nthr * (d->scr_bytes + (size_t)d->MT * d->NB * 4);
}
