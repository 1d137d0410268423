/* forward.c — see forward.h. */
#include "forward.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "forward_int.h"
#include "gemm.h"
#include "kernels.h"
#include "threadpool.h"

/* OpenBLAS extension (declared in its cblas.h on Debian; repeated for others) */
void openblas_set_num_threads(int);

void diffu_model_opts_default(diffu_model_opts *o) {
    memset(o, 0, sizeof *o);
    o->max_tokens = 2048;
    o->tp_size = 1;
}

static float *plan_alloc(diffu_model *m, size_t floats) {
    m->plan_bytes += floats * 4;
    float *p = diffu_xaligned(floats * 4);
    memset(p, 0, floats * 4); /* the padding rows of matmul inputs must be finite */
    return p;
}

/* The GEMM engine of o.precision, and every matrix converted once into its layout. */
static int load_gemm(diffu_model *m, int max_k, diffu_err *err) {
    diffu_precision p = (diffu_precision)m->o.precision; /* resolved by diffu_model_load */
    int rows = m->act_rows > m->logit_rows ? m->act_rows : m->logit_rows;
    if (diffu_gemm_create(p, m->o.threads, rows, max_k, &m->gemm, err)) return -1;
    diffu_weights *w = m->w;
    int nl = w->shard.layer_end - w->shard.layer_begin, sgemm = p == DIFFU_PREC_FP32;
    size_t ks0 = diffu_kscratch_bytes(&m->ks);
    for (int l = 0; l < nl; l++) {
        diffu_layer_weights *lw = &w->layers[l];
        diffu_mat *mats[7] = {&lw->q, &lw->k, &lw->v, &lw->o, &lw->gate, &lw->up, &lw->down};
        for (int i = 0; i < 7; i++) {
            if (diffu_gemm_pack(m->gemm, mats[i], err)) return diffu_err_prefix(err, "layer %d", w->shard.layer_begin + l);
            if (sgemm) diffu_kscratch_prepare(&m->ks, mats[i]);
        }
    }
    if (w->shard.head && diffu_gemm_pack(m->gemm, &w->lm_head, err)) return diffu_err_prefix(err, "lm_head");
    if (w->shard.head && sgemm) diffu_kscratch_prepare(&m->ks, &w->lm_head);
    m->plan_bytes += diffu_gemm_scratch_bytes(m->gemm) + (diffu_kscratch_bytes(&m->ks) - ks0);
    return 0;
}

int diffu_model_load(const char *dir, const diffu_model_opts *opts, diffu_model **out, diffu_err *err) {
    *out = NULL;
    diffu_ckpt *ck;
    if (diffu_ckpt_open(dir, &ck, err)) return -1;
    diffu_model *m = diffu_xcalloc(1, sizeof *m);
    m->o = *opts;
    m->cfg = *diffu_ckpt_config(ck);
    diffu_model_opts *o = &m->o;
    if (o->max_tokens <= 0) o->max_tokens = 2048;
    if (o->max_seq <= 0 || o->max_seq > o->max_tokens) o->max_seq = o->max_tokens;
    if (o->max_rows <= 0) o->max_rows = o->max_tokens;
    if (o->max_seqs <= 0) o->max_seqs = 64;
    if (o->max_seqs > o->max_tokens) o->max_seqs = o->max_tokens;
    if (o->pool) o->threads = diffu_pool_size(o->pool);
    if (o->threads <= 0) o->threads = diffu_affinity_cpus();
    if (o->tp_size <= 0) o->tp_size = 1;
    if (o->layer_end <= 0) o->layer_end = m->cfg.n_layers;
    diffu_precision prec;
    if (diffu_precision_resolve((diffu_precision)o->precision, &prec, err)) goto fail_ck;
    o->precision = (int)prec;
    if (o->max_seq > m->cfg.max_pos) {
        diffu_err_set(err, "%s: a sequence of %d tokens exceeds max_position_embeddings %d", dir, o->max_seq,
                      m->cfg.max_pos);
        goto fail_ck;
    }
    diffu_shard sh;
    if (diffu_shard_init(&sh, &m->cfg, o->layer_begin, o->layer_end, o->tp_rank, o->tp_size, err)) {
        diffu_err_prefix(err, "%s: layout", dir);
        goto fail_ck;
    }
    if (diffu_weights_load(ck, &sh, o->f32_weights, &m->w, err)) goto fail_ck;
    ck = NULL; /* owned by the weights now */

    const diffu_config *c = &m->cfg;
    int hd = c->head_dim, H = c->hidden;
    m->nq = sh.q_head_end - sh.q_head_begin;
    m->nkv = sh.kv_head_end - sh.kv_head_begin;
    m->nffn = sh.ffn_end - sh.ffn_begin;
    m->nvocab = sh.vocab_end - sh.vocab_begin;
    m->panel = diffu_forward_panel(o->precision);
    m->act_rows = o->max_tokens + o->max_seqs * (m->panel - 1);
    m->logit_rows = o->max_rows + o->max_seqs * (m->panel - 1);
    size_t T = (size_t)m->act_rows;
    m->x = plan_alloc(m, T * H);
    m->xn = plan_alloc(m, T * H);
    m->q = plan_alloc(m, T * m->nq * hd);
    m->k = plan_alloc(m, T * m->nkv * hd);
    m->v = plan_alloc(m, T * m->nkv * hd);
    m->att = plan_alloc(m, T * m->nq * hd);
    m->g = plan_alloc(m, T * m->nffn);
    m->u = plan_alloc(m, T * m->nffn);
    m->hx = plan_alloc(m, (size_t)m->logit_rows * H);
    m->rope_cos = plan_alloc(m, (size_t)o->max_seq * hd / 2);
    m->rope_sin = plan_alloc(m, (size_t)o->max_seq * hd / 2);
    m->pos = diffu_xaligned(T * 4);
    m->row_tok = diffu_xaligned(T * 4);
    m->seq_start = diffu_xaligned((size_t)(o->max_seqs + 1) * sizeof(int));
    m->tok_start = diffu_xaligned((size_t)(o->max_seqs + 1) * sizeof(int));
    m->hslot = diffu_xaligned((size_t)o->max_rows * 4);
    m->plan_bytes += T * 8 + (size_t)(o->max_seqs + 1) * 2 * sizeof(int) + (size_t)o->max_rows * 4;
    diffu_rope_table(m->rope_cos, m->rope_sin, o->max_seq, hd, c->rope_theta);
    int max_k = H > m->nffn ? H : m->nffn;
    if (m->nq * hd > max_k) max_k = m->nq * hd;
    diffu_kscratch_init(&m->ks, o->threads, max_k, o->max_seq, hd);
    m->plan_bytes += diffu_kscratch_bytes(&m->ks);
    openblas_set_num_threads(1); /* the pool owns the parallelism */
    m->pool = o->pool ? o->pool : diffu_pool_create(o->threads);
    if (load_gemm(m, max_k, err)) goto fail_m;
    if (!o->quiet) diffu_model_plan_print(m);
    *out = m;
    return 0;
fail_m:
    diffu_model_free(m);
    return -1;
fail_ck:
    diffu_ckpt_close(ck);
    free(m);
    return -1;
}

void diffu_model_free(diffu_model *m) {
    if (!m) return;
    if (!m->o.pool) diffu_pool_free(m->pool);
    diffu_gemm_free(m->gemm);
    diffu_kscratch_free(&m->ks);
    float *bufs[] = {m->x, m->xn, m->q, m->k, m->v, m->att, m->g, m->u, m->hx, m->rope_cos, m->rope_sin};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(m->pos);
    free(m->row_tok);
    free(m->seq_start);
    free(m->tok_start);
    free(m->hslot);
    diffu_weights_free(m->w);
    free(m);
}

const diffu_config *diffu_model_config(const diffu_model *m) { return &m->cfg; }
const diffu_shard *diffu_model_shard(const diffu_model *m) { return &m->w->shard; }
const diffu_weights *diffu_model_weights(const diffu_model *m) { return m->w; }
const diffu_model_opts *diffu_model_get_opts(const diffu_model *m) { return &m->o; }
diffu_pool *diffu_model_pool(diffu_model *m) { return m->pool; }
int diffu_model_vocab_local(const diffu_model *m) { return m->nvocab; }
diffu_gemm *diffu_model_gemm(diffu_model *m) { return m->gemm; }
size_t diffu_model_plan_bytes(const diffu_model *m) { return m->plan_bytes; }

void diffu_model_set_allreduce(diffu_model *m, diffu_allreduce_fn fn, void *user) {
    m->allreduce = fn;
    m->allreduce_user = user;
}

static double mib(size_t b) { return (double)b / (1024.0 * 1024.0); }

void diffu_model_plan_print(const diffu_model *m) {
    const diffu_model_opts *o = &m->o;
    const diffu_shard *s = &m->w->shard;
    size_t T = (size_t)m->act_rows, H = (size_t)m->cfg.hidden, hd = (size_t)m->cfg.head_dim;
    DLOG_INFO("memory plan: layers [%d,%d) tp %d/%d heads [%d,%d) kv [%d,%d) ffn [%d,%d) vocab [%d,%d)%s%s",
              s->layer_begin, s->layer_end, s->tp_rank, s->tp_size, s->q_head_begin, s->q_head_end, s->kv_head_begin,
              s->kv_head_end, s->ffn_begin, s->ffn_end, s->vocab_begin, s->vocab_end, s->embed ? " +embed" : "",
              s->head ? " +head" : "");
    DLOG_INFO("memory plan: weights %.1f MiB mapped from the checkpoint + %.1f MiB owned (%s)",
              mib(m->w->bytes_mapped), mib(m->w->bytes_owned), o->f32_weights ? "fp32-resident" : "checkpoint dtype");
    DLOG_INFO("memory plan: gemm %s, packed weights %.1f MiB owned, scratch %.1f MiB", diffu_gemm_describe(m->gemm),
              mib(diffu_gemm_weight_bytes(m->gemm)), mib(diffu_gemm_scratch_bytes(m->gemm)));
    DLOG_INFO("memory plan: max %d tokens/forward in %d sequences (%d rows with each sequence padded to the row panel %d), "
              "%d per sequence, %d lm_head rows, %d threads",
              o->max_tokens, o->max_seqs, m->act_rows, m->panel, o->max_seq, o->max_rows, o->threads);
    DLOG_INFO("memory plan: x %.1f + xn %.1f + q %.1f + k %.1f + v %.1f + attn %.1f + gate %.1f + up %.1f + head rows %.1f MiB",
              mib(T * H * 4), mib(T * H * 4), mib(T * m->nq * hd * 4), mib(T * m->nkv * hd * 4),
              mib(T * m->nkv * hd * 4), mib(T * m->nq * hd * 4), mib(T * m->nffn * 4), mib(T * m->nffn * 4),
              mib((size_t)m->logit_rows * H * 4));
    DLOG_INFO("memory plan: rope %.1f MiB, per-thread scratch %d x (weight tile %.1f + attention %.1f) MiB; total activations %.1f MiB",
              mib((size_t)o->max_seq * hd * 4), m->ks.n_threads, mib(m->ks.tile_floats * 4), mib(m->ks.att_floats * 4),
              mib(m->plan_bytes));
}

int diffu_batch_tokens(const diffu_batch *b) {
    int n = 0;
    for (int i = 0; i < b->n_seq; i++) n += b->seq_len[i];
    return n;
}

static int round_up(int n, int p) { return (n + p - 1) / p * p; }

int diffu_forward_panel(int precision) {
    diffu_precision p;
    diffu_err e;
    if (diffu_precision_resolve((diffu_precision)precision, &p, &e)) p = DIFFU_PREC_FP32;
    /* oneDNN's fixed-shape primitives give a row the same bits at every offset (gemm.h, probed at create) */
    return p == DIFFU_PREC_FP32 ? diffu_row_panel() : 1;
}

int diffu_model_panel(const diffu_model *m) { return m->panel; }

/* Sequence i's rows sit at its token offset when compact and at its panel-padded
 * offset (never lower) when expanded: rows only move down (compact) or up
 * (expand), so both run in place, in opposite orders. */
int diffu_batch_compact(const diffu_model *m, const diffu_batch *b, float *x) {
    size_t H = (size_t)m->cfg.hidden;
    int row = 0, tok = 0;
    for (int i = 0; i < b->n_seq; i++) {
        int L = b->seq_len[i];
        if (row != tok) memmove(x + (size_t)tok * H, x + (size_t)row * H, (size_t)L * H * 4);
        row += round_up(L, m->panel);
        tok += L;
    }
    return tok;
}

void diffu_batch_expand(const diffu_model *m, const diffu_batch *b, float *x) {
    size_t H = (size_t)m->cfg.hidden;
    int rows = diffu_batch_rows(m, b), tok = diffu_batch_tokens(b);
    for (int i = b->n_seq - 1; i >= 0; i--) {
        int L = b->seq_len[i], R = round_up(L, m->panel);
        rows -= R;
        tok -= L;
        if (rows != tok) memmove(x + (size_t)rows * H, x + (size_t)tok * H, (size_t)L * H * 4);
        memset(x + (size_t)(rows + L) * H, 0, (size_t)(R - L) * H * 4); /* padding rows: finite */
    }
}

int diffu_batch_rows(const diffu_model *m, const diffu_batch *b) {
    int r = 0;
    for (int i = 0; i < b->n_seq; i++) r += round_up(b->seq_len[i], m->panel);
    return r;
}

/* Walk the asked rows (ascending) sequence by sequence; returns the padded
 * slot count and, if slot != NULL, each row's slot. */
static int head_slots(const diffu_model *m, const diffu_batch *b, int32_t *slot) {
    int seq = 0, tok_end = b->n_seq ? b->seq_len[0] : 0, base = 0, in_group = 0;
    for (int r = 0; r < b->n_rows; r++) {
        while (b->rows[r] >= tok_end && seq + 1 < b->n_seq) {
            base += round_up(in_group, m->panel);
            in_group = 0;
            tok_end += b->seq_len[++seq];
        }
        if (slot) slot[r] = base + in_group;
        in_group++;
    }
    return base + round_up(in_group, m->panel);
}

int diffu_batch_logit_rows(const diffu_model *m, const diffu_batch *b) { return head_slots(m, b, NULL); }
int diffu_model_act_rows(const diffu_model *m) { return m->act_rows; }
int diffu_model_logit_rows(const diffu_model *m) { return m->logit_rows; }

int diffu_batch_check(const diffu_model *m, const diffu_batch *b, diffu_err *err) {
    if (b->n_seq < 1) return diffu_err_set(err, "batch has no sequences");
    if (b->n_seq > m->o.max_seqs)
        return diffu_err_set(err, "batch has %d sequences, more than the plan's %d", b->n_seq, m->o.max_seqs);
    long long n = 0;
    for (int i = 0; i < b->n_seq; i++) {
        if (b->seq_len[i] < 1) return diffu_err_set(err, "sequence %d is empty", i);
        if (b->seq_len[i] > m->o.max_seq)
            return diffu_err_set(err, "sequence %d has %d tokens, more than the plan's %d per sequence", i,
                                 b->seq_len[i], m->o.max_seq);
        n += b->seq_len[i];
    }
    if (n > m->o.max_tokens)
        return diffu_err_set(err, "batch has %lld tokens, more than the plan's %d", n, m->o.max_tokens);
    if (b->n_rows > m->o.max_rows)
        return diffu_err_set(err, "%d lm_head rows asked, more than the plan's %d", b->n_rows, m->o.max_rows);
    if (m->w->shard.embed && b->tokens)
        for (long long i = 0; i < n; i++)
            if (b->tokens[i] < 0 || b->tokens[i] >= m->cfg.vocab)
                return diffu_err_set(err, "token %lld: id %d is outside the vocabulary [0, %d)", i, b->tokens[i],
                                     m->cfg.vocab);
    if (b->pos) {
        for (long long i = 0; i < n; i++)
            if (b->pos[i] < 0 || b->pos[i] >= m->o.max_seq)
                return diffu_err_set(err, "token %lld: position %d outside [0, %d)", i, b->pos[i], m->o.max_seq);
    }
    for (int r = 0; r < b->n_rows; r++) {
        if (b->rows[r] < 0 || b->rows[r] >= n)
            return diffu_err_set(err, "lm_head row %d: index %d outside the batch's %lld tokens", r, b->rows[r], n);
        if (r && b->rows[r] < b->rows[r - 1]) /* repeats are fine: Dream's shift reads row 0 twice */
            return diffu_err_set(err, "lm_head rows must be in increasing order (row %d: %d after %d)", r, b->rows[r],
                                 b->rows[r - 1]);
    }
    if (diffu_batch_rows(m, b) > m->act_rows)
        return diffu_err_set(err, "batch needs %d padded rows, more than the plan's %d", diffu_batch_rows(m, b),
                             m->act_rows);
    if (diffu_batch_logit_rows(m, b) > m->logit_rows)
        return diffu_err_set(err, "batch needs %d padded lm_head rows, more than the plan's %d",
                             diffu_batch_logit_rows(m, b), m->logit_rows);
    return 0;
}

/* ------------------------------------------------------------- the passes */

/* Phases of diffu_model_phases, in forward order. */
enum { PH_EMBED, PH_NORM, PH_QKV, PH_ROPE, PH_ATTN, PH_O, PH_ADDNORM, PH_GATEUP, PH_SWIGLU, PH_DOWN, PH_ADD, PH_HEAD };
static const char *const phase_names[DIFFU_PHASES] = {"embed", "rmsnorm", "gemm qkv", "rope", "attention", "gemm o",
                                                      "add+rmsnorm", "gemm gate/up", "silu*up", "gemm down",
                                                      "residual add", "head (norm+gemm+copy)"};

/* Close the running phase: add the time since *t to phase ph, restart *t. */
static inline void phase(diffu_model *m, int ph, double *t) {
    double now = diffu_now();
    m->phase_sec[ph] += now - *t;
    *t = now;
}

int diffu_model_phases(diffu_model *m, const char **names, double *seconds, int reset) {
    for (int i = 0; i < DIFFU_PHASES; i++) {
        if (names) names[i] = phase_names[i];
        if (seconds) seconds[i] = m->phase_sec[i];
    }
    if (reset) memset(m->phase_sec, 0, sizeof m->phase_sec);
    return DIFFU_PHASES;
}


/* The padded row layout of a batch: seq_start, row_tok, pos. Returns the rows. */
static int prepare_layout(diffu_model *m, const diffu_batch *b) {
    int row = 0, tok = 0;
    for (int i = 0; i < b->n_seq; i++) {
        int L = b->seq_len[i], R = round_up(L, m->panel);
        m->seq_start[i] = row;
        m->tok_start[i] = tok;
        for (int p = 0; p < R; p++) {
            m->row_tok[row + p] = p < L ? tok + p : -1;
            m->pos[row + p] = p < L ? (b->pos ? b->pos[tok + p] : p) : 0;
        }
        row += R;
        tok += L;
    }
    m->seq_start[b->n_seq] = row;
    m->tok_start[b->n_seq] = tok;
    return row;
}

typedef struct { diffu_model *m; const int32_t *tok; float *x; int per, n; } embed_ctx;
static void embed_task(void *arg, int i, int tid) {
    embed_ctx *c = arg;
    const diffu_mat *e = &c->m->w->embed;
    size_t es = diffu_dtype_size(e->dtype);
    int H = c->m->cfg.hidden;
    int r0 = i * c->per, r1 = r0 + c->per < c->n ? r0 + c->per : c->n;
    for (int t = r0; t < r1; t++) {
        int k = c->m->row_tok[t];
        if (k < 0) memset(c->x + (size_t)t * H, 0, (size_t)H * 4); /* padding row */
        else diffu_widen(c->x + (size_t)t * H, (const uint8_t *)e->data + (size_t)c->tok[k] * e->ld * es, e->dtype, (size_t)H);
    }
}

void diffu_forward_embed(diffu_model *m, const diffu_batch *b, float *x) {
    DIFFU_ASSERT(m->w->shard.embed);
    double t = diffu_now();
    int n = prepare_layout(m, b);
    embed_ctx c = {m, b->tokens, x, (n + 4 * m->o.threads - 1) / (4 * m->o.threads), n};
    if (c.per < 1) c.per = 1;
    diffu_pool_run(m->pool, embed_task, &c, (n + c.per - 1) / c.per);
    phase(m, PH_EMBED, &t);
}

void diffu_forward_layers(diffu_model *m, const diffu_batch *b, float *x) { diffu_model_layers(m, b, x, NULL); }

/* kv: NULL, or the cached forward's step (kvcache.c): attention then stores the
 * rows' K/V in the requests' cache slots and reads the context from there. */
void diffu_model_layers(diffu_model *m, const diffu_batch *b, float *x, diffu_kv_step *kv) {
    const diffu_config *c = &m->cfg;
    const diffu_shard *s = &m->w->shard;
    int H = c->hidden, hd = c->head_dim;
    int ldq = m->nq * hd, ldkv = m->nkv * hd;
    float eps = (float)c->rms_eps;
    int T = prepare_layout(m, b); /* padded rows */
    DIFFU_ASSERT(T <= m->act_rows);
    int nl = s->layer_end - s->layer_begin;
    double t = diffu_now();
    for (int l = 0; l < nl; l++) {
        const diffu_layer_weights *lw = &m->w->layers[l];
        diffu_rmsnorm(m->pool, m->xn, x, lw->attn_norm, T, H, eps);
        phase(m, PH_NORM, &t);
        diffu_matmul_job qkv[3] = {
            {m->q, ldq, m->xn, H, T, &lw->q, lw->q_bias},
            {m->k, ldkv, m->xn, H, T, &lw->k, lw->k_bias},
            {m->v, ldkv, m->xn, H, T, &lw->v, lw->v_bias},
        };
        diffu_gemm_run(m->gemm, m->pool, &m->ks, qkv, 3);
        phase(m, PH_QKV, &t);
        diffu_rope(m->pool, m->q, ldq, T, m->nq, hd, m->pos, m->rope_cos, m->rope_sin);
        diffu_rope(m->pool, m->k, ldkv, T, m->nkv, hd, m->pos, m->rope_cos, m->rope_sin);
        phase(m, PH_ROPE, &t);
        if (kv) diffu_kv_attend(m, kv, l);
        else diffu_attention(m->pool, &m->ks, m->att, m->q, ldq, m->k, m->v, ldkv, b->n_seq, m->seq_start, b->seq_len, m->nq,
                        s->q_head_begin, s->kv_head_begin, c->n_heads / c->n_kv_heads, hd);
        phase(m, PH_ATTN, &t);
        diffu_matmul_job o = {m->xn, H, m->att, ldq, T, &lw->o, NULL};
        diffu_gemm_run(m->gemm, m->pool, &m->ks, &o, 1);
        if (m->allreduce) m->allreduce(m->xn, (size_t)T * H, m->allreduce_user);
        phase(m, PH_O, &t);
        /* x += o; xn = rmsnorm(x) */
        diffu_add_rmsnorm(m->pool, x, m->xn, m->xn, lw->ffn_norm, T, H, eps);
        phase(m, PH_ADDNORM, &t);
        diffu_matmul_job gu[2] = {
            {m->g, m->nffn, m->xn, H, T, &lw->gate, NULL},
            {m->u, m->nffn, m->xn, H, T, &lw->up, NULL},
        };
        diffu_gemm_run(m->gemm, m->pool, &m->ks, gu, 2);
        phase(m, PH_GATEUP, &t);
        diffu_swiglu(m->pool, m->g, m->u, T, m->nffn);
        phase(m, PH_SWIGLU, &t);
        diffu_matmul_job d = {m->xn, H, m->g, m->nffn, T, &lw->down, NULL};
        diffu_gemm_run(m->gemm, m->pool, &m->ks, &d, 1);
        if (m->allreduce) m->allreduce(m->xn, (size_t)T * H, m->allreduce_user);
        phase(m, PH_DOWN, &t);
        diffu_add(m->pool, x, m->xn, (size_t)T * H);
        phase(m, PH_ADD, &t);
    }
}

void diffu_forward_head(diffu_model *m, const diffu_batch *b, const float *x, float *logits) {
    DIFFU_ASSERT(m->w->shard.head);
    int H = m->cfg.hidden, R = b->n_rows, V = m->nvocab;
    if (R == 0) return;
    DIFFU_ASSERT(R <= m->o.max_rows);
    double t = diffu_now();
    prepare_layout(m, b);
    /* each sequence's asked rows start on a row panel in hx (batch invariance) */
    int slots = head_slots(m, b, m->hslot);
    DIFFU_ASSERT(slots <= m->logit_rows);
    int seq = 0;
    for (int r = 0; r < R; r++) {
        while (b->rows[r] >= m->tok_start[seq + 1]) seq++;
        int row = m->seq_start[seq] + (b->rows[r] - m->tok_start[seq]);
        memcpy(m->hx + (size_t)m->hslot[r] * H, x + (size_t)row * H, (size_t)H * 4);
    }
    diffu_rmsnorm(m->pool, m->hx, m->hx, m->w->out_norm, slots, H, (float)m->cfg.rms_eps);
    diffu_matmul_job j = {logits, V, m->hx, H, slots, &m->w->lm_head, NULL};
    diffu_gemm_run(m->gemm, m->pool, &m->ks, &j, 1);
    /* compact to [R x V]: slots only ever move down */
    for (int r = 0; r < R; r++)
        if (m->hslot[r] != r) memmove(logits + (size_t)r * V, logits + (size_t)m->hslot[r] * V, (size_t)V * 4);
    phase(m, PH_HEAD, &t);
}

int diffu_forward(diffu_model *m, const diffu_batch *b, float *logits, diffu_err *err) {
    if (diffu_batch_check(m, b, err)) return -1;
    const diffu_shard *s = &m->w->shard;
    if (!s->embed || !s->head) return diffu_err_set(err, "diffu_forward needs a shard with the embedding and the head");
    diffu_forward_embed(m, b, m->x);
    diffu_forward_layers(m, b, m->x);
    diffu_forward_head(m, b, m->x, logits);
    return 0;
}

double diffu_forward_flops(const diffu_model *m, const diffu_batch *b) {
    const diffu_config *c = &m->cfg;
    const diffu_shard *s = &m->w->shard;
    double H = c->hidden, hd = c->head_dim, nq = m->nq, nkv = m->nkv, F = m->nffn;
    double per_tok = 2.0 * (H * nq * hd + 2.0 * H * nkv * hd + nq * hd * H + 3.0 * H * F);
    double f = 0;
    for (int i = 0; i < b->n_seq; i++) {
        double L = b->seq_len[i];
        f += L * per_tok + 4.0 * L * L * nq * hd; /* QK^T and PV */
    }
    f *= (double)(s->layer_end - s->layer_begin);
    if (s->head) f += 2.0 * H * m->nvocab * b->n_rows;
    return f;
}

size_t diffu_plan_activation_bytes(const diffu_config *c, const diffu_shard *s, const diffu_model_opts *o) {
    size_t T = (size_t)(o->max_tokens > 0 ? o->max_tokens : 2048);
    size_t S = (size_t)(o->max_seq > 0 && (size_t)o->max_seq < T ? o->max_seq : T);
    size_t R = (size_t)(o->max_rows > 0 ? o->max_rows : (int)T);
    size_t H = (size_t)c->hidden, hd = (size_t)c->head_dim;
    size_t nq = (size_t)(s->q_head_end - s->q_head_begin), nkv = (size_t)(s->kv_head_end - s->kv_head_begin);
    size_t nf = (size_t)(s->ffn_end - s->ffn_begin);
    size_t floats = 2 * T * H + 2 * T * nq * hd + 2 * T * nkv * hd + 2 * T * nf + R * H + S * hd;
    size_t max_k = H > nf ? H : nf;
    if (nq * hd > max_k) max_k = nq * hd;
    size_t tile_k = max_k < 4096 ? max_k : 4096;
    size_t threads = (size_t)(o->threads > 0 ? o->threads : 1);
    floats += threads * (256 * tile_k + 128 * S + 64 * hd);
    return floats * 4 + T * 4 + (T + 1) * sizeof(int);
}

uint64_t diffu_plan_weight_bytes(const diffu_config *c, const diffu_shard *s, size_t es) {
    uint64_t H = (uint64_t)c->hidden, hd = (uint64_t)c->head_dim;
    uint64_t nq = (uint64_t)(s->q_head_end - s->q_head_begin), nkv = (uint64_t)(s->kv_head_end - s->kv_head_begin);
    uint64_t nf = (uint64_t)(s->ffn_end - s->ffn_begin), nv = (uint64_t)(s->vocab_end - s->vocab_begin);
    uint64_t layer = es * (2 * H * nq * hd + 2 * H * nkv * hd + 3 * H * nf) + 4 * (2 * H + nq * hd + 2 * nkv * hd);
    uint64_t b = layer * (uint64_t)(s->layer_end - s->layer_begin);
    if (s->embed) b += es * (uint64_t)c->vocab * H;
    if (s->head) b += es * nv * H + 4 * H;
    return b;
}
