/* weights.c — see weights.h. */
#include "weights.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tensor_names.h"

static void split_even(int n, int parts, int idx, int *b, int *e) {
    int base = n / parts, rem = n % parts;
    *b = idx * base + (idx < rem ? idx : rem);
    *e = *b + base + (idx < rem ? 1 : 0);
}

int diffu_shard_init(diffu_shard *s, const diffu_config *c, int lb, int le, int tp_rank, int tp_size, diffu_err *err) {
    memset(s, 0, sizeof *s);
    if (lb < 0 || le > c->n_layers || lb >= le)
        return diffu_err_set(err, "layer range [%d, %d) is empty or outside the model's %d layers", lb, le, c->n_layers);
    if (tp_size < 1 || tp_rank < 0 || tp_rank >= tp_size)
        return diffu_err_set(err, "tensor-parallel rank %d of %d is invalid", tp_rank, tp_size);
    if (c->n_heads % tp_size)
        return diffu_err_set(err, "tp=%d does not divide num_attention_heads=%d", tp_size, c->n_heads);
    if (tp_size > c->inter) return diffu_err_set(err, "tp=%d exceeds intermediate_size=%d", tp_size, c->inter);
    s->layer_begin = lb;
    s->layer_end = le;
    s->embed = lb == 0;
    s->head = le == c->n_layers;
    s->tp_rank = tp_rank;
    s->tp_size = tp_size;
    int per = c->n_heads / tp_size, group = c->n_heads / c->n_kv_heads;
    s->q_head_begin = tp_rank * per;
    s->q_head_end = s->q_head_begin + per;
    /* the KV heads these query heads read (replicated when tp > n_kv_heads) */
    s->kv_head_begin = s->q_head_begin / group;
    s->kv_head_end = (s->q_head_end - 1) / group + 1;
    split_even(c->inter, tp_size, tp_rank, &s->ffn_begin, &s->ffn_end);
    split_even(c->vocab, tp_size, tp_rank, &s->vocab_begin, &s->vocab_end);
    return 0;
}

static void *own(diffu_weights *w, size_t bytes) {
    void *p = diffu_xaligned(bytes);
    w->owned = diffu_xrealloc(w->owned, (size_t)(w->n_owned + 1) * sizeof *w->owned);
    w->owned[w->n_owned++] = p;
    w->bytes_owned += bytes;
    return p;
}

static const diffu_st_tensor *tensor(diffu_weights *w, diffu_tensor_role role, int layer) {
    char name[96];
    diffu_tensor_name(role, layer, name, sizeof name);
    const diffu_st_tensor *t = diffu_ckpt_tensor(w->ckpt, name, NULL);
    DIFFU_ASSERTF(t, "tensor %s vanished after validation", name); /* checked by diffu_ckpt_open */
    return t;
}

/* Sub-block rows [r0, r1) x cols [c0, c1) of a 2-D tensor, as a view when the
 * columns are whole (and f32 is not asked), else copied (widened if f32). */
/* Drop the mapped pages of [p, p + len) from this process once copied, so a
 * copied (fp32 or column-sliced) tensor is not resident twice. Only whole
 * pages inside the range are released. */
static void release_pages(const void *p, size_t len) {
    size_t pg = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)p + pg - 1) & ~(uintptr_t)(pg - 1), b = ((uintptr_t)p + len) & ~(uintptr_t)(pg - 1);
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

static diffu_mat load_mat(diffu_weights *w, diffu_tensor_role role, int layer, int r0, int r1, int c0, int c1, int f32) {
    const diffu_st_tensor *t = tensor(w, role, layer);
    size_t cols = (size_t)t->shape[1], es = diffu_dtype_size(t->dtype);
    diffu_mat m = {t->dtype, r1 - r0, c1 - c0, cols, NULL, NULL};
    int release_after_copy = 0;
    const uint8_t *base = (const uint8_t *)t->data + ((size_t)r0 * cols + (size_t)c0) * es;
    int aligned = ((uintptr_t)base % es) == 0;
    if (!f32 && aligned && c0 == 0 && (size_t)c1 == cols) {
        m.data = base;
        w->bytes_mapped += (size_t)m.rows * cols * es;
        return m;
    }
    size_t n = (size_t)m.cols;
    if (f32 || c0 != 0 || (size_t)c1 != cols) release_after_copy = 1;
    if (f32) {
        float *dst = own(w, (size_t)m.rows * n * 4);
        for (int r = 0; r < m.rows; r++) {
            if (aligned) {
                diffu_widen(dst + (size_t)r * n, base + (size_t)r * cols * es, t->dtype, n);
            } else {
                void *tmp = diffu_xmalloc(n * es);
                memcpy(tmp, base + (size_t)r * cols * es, n * es);
                diffu_widen(dst + (size_t)r * n, tmp, t->dtype, n);
                free(tmp);
            }
        }
        m.dtype = DIFFU_F32;
        m.data = dst;
    } else {
        uint8_t *dst = own(w, (size_t)m.rows * n * es);
        for (int r = 0; r < m.rows; r++) memcpy(dst + (size_t)r * n * es, base + (size_t)r * cols * es, n * es);
        m.data = dst;
    }
    if (release_after_copy) release_pages(t->data, (size_t)(t->end - t->begin));
    m.ld = n;
    return m;
}

/* Elements [b, e) of a 1-D tensor, widened to owned fp32. */
static float *load_vec(diffu_weights *w, diffu_tensor_role role, int layer, int b, int e) {
    const diffu_st_tensor *t = tensor(w, role, layer);
    size_t es = diffu_dtype_size(t->dtype), n = (size_t)(e - b);
    float *dst = own(w, n * 4);
    void *tmp = diffu_xmalloc(n * es);
    memcpy(tmp, (const uint8_t *)t->data + (size_t)b * es, n * es); /* may be unaligned in the file */
    diffu_widen(dst, tmp, t->dtype, n);
    free(tmp);
    return dst;
}

int diffu_weights_load(diffu_ckpt *ckpt, const diffu_shard *shard, int f32, diffu_weights **out, diffu_err *err) {
    diffu_weights *w = diffu_xcalloc(1, sizeof *w);
    w->ckpt = ckpt;
    w->cfg = *diffu_ckpt_config(ckpt);
    w->shard = *shard;
    const diffu_config *c = &w->cfg;
    const diffu_shard *s = shard;
    int H = c->hidden, hd = c->head_dim;
    int q0 = s->q_head_begin * hd, q1 = s->q_head_end * hd;
    int k0 = s->kv_head_begin * hd, k1 = s->kv_head_end * hd;
    if (s->embed) w->embed = load_mat(w, DT_EMBED, -1, 0, c->vocab, 0, H, 0); /* rows are gathered: keep as is */
    int nl = s->layer_end - s->layer_begin;
    w->layers = diffu_xcalloc((size_t)nl, sizeof *w->layers);
    for (int i = 0; i < nl; i++) {
        int L = s->layer_begin + i;
        diffu_layer_weights *lw = &w->layers[i];
        lw->attn_norm = load_vec(w, DT_ATTN_NORM, L, 0, H);
        lw->q = load_mat(w, DT_Q, L, q0, q1, 0, H, f32);
        lw->q_bias = load_vec(w, DT_Q_B, L, q0, q1);
        lw->k = load_mat(w, DT_K, L, k0, k1, 0, H, f32);
        lw->k_bias = load_vec(w, DT_K_B, L, k0, k1);
        lw->v = load_mat(w, DT_V, L, k0, k1, 0, H, f32);
        lw->v_bias = load_vec(w, DT_V_B, L, k0, k1);
        lw->o = load_mat(w, DT_O, L, 0, H, q0, q1, f32);
        lw->ffn_norm = load_vec(w, DT_FFN_NORM, L, 0, H);
        lw->gate = load_mat(w, DT_GATE, L, s->ffn_begin, s->ffn_end, 0, H, f32);
        lw->up = load_mat(w, DT_UP, L, s->ffn_begin, s->ffn_end, 0, H, f32);
        lw->down = load_mat(w, DT_DOWN, L, 0, H, s->ffn_begin, s->ffn_end, f32);
    }
    if (s->head) {
        w->out_norm = load_vec(w, DT_OUT_NORM, -1, 0, H);
        w->lm_head = load_mat(w, c->tie_embed ? DT_EMBED : DT_LM_HEAD, -1, s->vocab_begin, s->vocab_end, 0, H, f32);
    }
    *out = w;
    (void)err;
    return 0;
}

void diffu_weights_free(diffu_weights *w) {
    if (!w) return;
    for (int i = 0; i < w->n_owned; i++) free(w->owned[i]);
    free(w->owned);
    free(w->layers);
    diffu_ckpt_close(w->ckpt);
    free(w);
}
