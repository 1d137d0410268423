/* kvcache.c — see kvcache.h. */
#include "kvcache.h"

#include <stdlib.h>
#include <string.h>

#include "forward_int.h"
#include "kernels.h"

struct diffu_kvcache {
    int n_layers, n_kv, hd, ld; /* this shard's layers, KV heads; ld = n_kv * hd */
    int slots, max_ctx, max_seqs, quiet;
    size_t slot_floats;         /* max_ctx * ld */
    float *k, *v;               /* [n_layers][slots][max_ctx][ld] */
    uint8_t *valid;             /* [slots][max_ctx]: row computed since acquire */
    uint8_t *used;              /* [slots] */
    int n_used;
    const float **kb, **vb;     /* [max_seqs] per-sequence context pointers of one layer */
    size_t bytes;
};

static size_t storage_bytes(size_t layers, size_t kv, size_t hd, size_t slots, size_t ctx) {
    return 2 * layers * slots * ctx * kv * hd * sizeof(float);
}

size_t diffu_kvcache_plan_bytes(const diffu_config *c, const diffu_shard *s, int slots, int max_ctx) {
    size_t nl = (size_t)(s->layer_end - s->layer_begin), nkv = (size_t)(s->kv_head_end - s->kv_head_begin);
    return storage_bytes(nl, nkv, (size_t)c->head_dim, (size_t)slots, (size_t)max_ctx) +
           (size_t)slots * (size_t)max_ctx + (size_t)slots;
}

int diffu_kvcache_create(const diffu_model *m, int slots, int max_ctx, diffu_kvcache **out, diffu_err *err) {
    *out = NULL;
    const diffu_shard *s = diffu_model_shard(m);
    const diffu_model_opts *o = diffu_model_get_opts(m);
    if (slots < 1) return diffu_err_set(err, "kv cache: %d request slots, must be >= 1", slots);
    if (max_ctx < 1 || max_ctx > o->max_seq)
        return diffu_err_set(err, "kv cache: context of %d positions outside [1, %d] (the model plan's longest sequence)",
                             max_ctx, o->max_seq);
    diffu_kvcache *kv = diffu_xcalloc(1, sizeof *kv);
    kv->n_layers = s->layer_end - s->layer_begin;
    kv->n_kv = s->kv_head_end - s->kv_head_begin;
    kv->hd = m->cfg.head_dim;
    kv->ld = kv->n_kv * kv->hd;
    kv->slots = slots;
    kv->max_ctx = max_ctx;
    kv->max_seqs = o->max_seqs;
    kv->quiet = o->quiet;
    kv->slot_floats = (size_t)max_ctx * (size_t)kv->ld;
    size_t n = (size_t)kv->n_layers * (size_t)slots * kv->slot_floats;
    kv->k = diffu_xaligned(n * sizeof(float));
    kv->v = diffu_xaligned(n * sizeof(float));
    memset(kv->k, 0, n * sizeof(float)); /* touch the pages now: the plan is resident */
    memset(kv->v, 0, n * sizeof(float));
    kv->valid = diffu_xcalloc((size_t)slots * (size_t)max_ctx, 1);
    kv->used = diffu_xcalloc((size_t)slots, 1);
    kv->kb = diffu_xcalloc((size_t)kv->max_seqs, sizeof *kv->kb);
    kv->vb = diffu_xcalloc((size_t)kv->max_seqs, sizeof *kv->vb);
    kv->bytes = 2 * n * sizeof(float) + (size_t)slots * (size_t)max_ctx + (size_t)slots;
    DIFFU_ASSERT(kv->bytes == diffu_kvcache_plan_bytes(&m->cfg, s, slots, max_ctx));
    if (!kv->quiet) diffu_kvcache_plan_print(kv);
    *out = kv;
    return 0;
}

void diffu_kvcache_free(diffu_kvcache *kv) {
    if (!kv) return;
    free(kv->k);
    free(kv->v);
    free(kv->valid);
    free(kv->used);
    free(kv->kb);
    free(kv->vb);
    free(kv);
}

void diffu_kvcache_plan_print(const diffu_kvcache *kv) {
    DLOG_INFO("memory plan: kv cache %d requests x %d positions x %d layers x %d kv heads x %d head_dim x K,V fp32 = %.1f MiB",
              kv->slots, kv->max_ctx, kv->n_layers, kv->n_kv, kv->hd, (double)kv->bytes / (1024.0 * 1024.0));
}

size_t diffu_kvcache_bytes(const diffu_kvcache *kv) { return kv->bytes; }
int diffu_kvcache_slots(const diffu_kvcache *kv) { return kv->slots; }
int diffu_kvcache_max_ctx(const diffu_kvcache *kv) { return kv->max_ctx; }
const char *diffu_kvcache_dtype_name(const diffu_kvcache *kv) { return "fp32"; }
int diffu_kvcache_in_use(const diffu_kvcache *kv) { return kv->n_used; }
int diffu_kvcache_ld(const diffu_kvcache *kv) { return kv->ld; }

int diffu_kvcache_acquire(diffu_kvcache *kv) {
    for (int i = 0; i < kv->slots; i++)
        if (!kv->used[i]) {
            kv->used[i] = 1;
            kv->n_used++;
            memset(kv->valid + (size_t)i * kv->max_ctx, 0, (size_t)kv->max_ctx);
            return i;
        }
    return -1;
}

void diffu_kvcache_release(diffu_kvcache *kv, int slot) {
    DIFFU_ASSERT(slot >= 0 && slot < kv->slots && kv->used[slot]);
    kv->used[slot] = 0;
    kv->n_used--;
}

static size_t slot_off(const diffu_kvcache *kv, int l, int slot) {
    return ((size_t)l * (size_t)kv->slots + (size_t)slot) * kv->slot_floats;
}
float *diffu_kvcache_k(diffu_kvcache *kv, int l, int slot) { return kv->k + slot_off(kv, l, slot); }
float *diffu_kvcache_v(diffu_kvcache *kv, int l, int slot) { return kv->v + slot_off(kv, l, slot); }

/* ------------------------------------------------------------ the forward */

int diffu_kv_batch_check(const diffu_model *m, const diffu_kvcache *kv, const diffu_kv_batch *kb, diffu_err *err) {
    const diffu_batch *b = &kb->b;
    if (!b->pos) return diffu_err_set(err, "cached forward: the computed rows' canvas positions (pos) are required");
    if (diffu_batch_check(m, b, err)) return -1;
    if (kv->n_layers != m->w->shard.layer_end - m->w->shard.layer_begin ||
        kv->n_kv != m->w->shard.kv_head_end - m->w->shard.kv_head_begin)
        return diffu_err_set(err, "cached forward: the kv cache was made for another shard");
    int tok = 0;
    for (int i = 0; i < b->n_seq; i++) {
        int sl = kb->slot[i], n = kb->ctx_len[i];
        if (sl < 0 || sl >= kv->slots || !kv->used[sl])
            return diffu_err_set(err, "sequence %d: kv cache slot %d is not acquired", i, sl);
        for (int j = 0; j < i; j++)
            if (kb->slot[j] == sl) return diffu_err_set(err, "sequences %d and %d share kv cache slot %d", j, i, sl);
        if (n < 1 || n > kv->max_ctx)
            return diffu_err_set(err, "sequence %d: context of %d positions outside [1, %d]", i, n, kv->max_ctx);
        const uint8_t *valid = kv->valid + (size_t)sl * kv->max_ctx;
        int next = 0; /* walks the context: computed rows and cached rows must cover [0, n) */
        for (int r = 0; r < b->seq_len[i]; r++) {
            int p = b->pos[tok + r];
            if (p < 0 || p >= n || (r && p <= b->pos[tok + r - 1]))
                return diffu_err_set(err, "sequence %d: computed row %d at position %d is outside [0, %d) or not "
                                     "increasing", i, r, p, n);
            for (; next < p; next++)
                if (!valid[next])
                    return diffu_err_set(err, "sequence %d: context position %d was never computed (run a full pass "
                                         "first)", i, next);
            next = p + 1;
        }
        for (; next < n; next++)
            if (!valid[next])
                return diffu_err_set(err, "sequence %d: context position %d was never computed (run a full pass first)",
                                     i, next);
        tok += b->seq_len[i];
    }
    return 0;
}

struct diffu_kv_step {
    diffu_kvcache *kv;
    const diffu_kv_batch *kb;
};

/* Layer l: the computed rows' (rotated) keys and values into their slots at
 * their canvas positions, then attention of the rows over the slots' contexts. */
void diffu_kv_attend(diffu_model *m, diffu_kv_step *st, int l) {
    diffu_kvcache *kv = st->kv;
    const diffu_kv_batch *kb = st->kb;
    const diffu_batch *b = &kb->b;
    const diffu_config *c = &m->cfg;
    const diffu_shard *s = &m->w->shard;
    int hd = c->head_dim, ldq = m->nq * hd, ldkv = m->nkv * hd;
    for (int i = 0; i < b->n_seq; i++) {
        float *K = diffu_kvcache_k(kv, l, kb->slot[i]), *V = diffu_kvcache_v(kv, l, kb->slot[i]);
        int r0 = m->seq_start[i];
        for (int r = 0; r < b->seq_len[i]; r++) {
            size_t p = (size_t)m->pos[r0 + r];
            memcpy(K + p * ldkv, m->k + (size_t)(r0 + r) * ldkv, (size_t)ldkv * sizeof(float));
            memcpy(V + p * ldkv, m->v + (size_t)(r0 + r) * ldkv, (size_t)ldkv * sizeof(float));
        }
        kv->kb[i] = K;
        kv->vb[i] = V;
    }
    diffu_attention_kv(m->pool, &m->ks, m->att, m->q, ldq, b->n_seq, m->seq_start, b->seq_len, kv->kb, kv->vb, ldkv,
                       kb->ctx_len, m->nq, s->q_head_begin, s->kv_head_begin, c->n_heads / c->n_kv_heads, hd);
}

void diffu_forward_layers_kv(diffu_model *m, diffu_kvcache *kv, const diffu_kv_batch *kb, float *x) {
    const diffu_batch *b = &kb->b;
    DIFFU_ASSERT(b->pos && kv->ld == m->nkv * m->cfg.head_dim && b->n_seq <= kv->max_seqs);
    for (int i = 0, tok = 0; i < b->n_seq; tok += b->seq_len[i++]) {
        uint8_t *valid = kv->valid + (size_t)kb->slot[i] * kv->max_ctx;
        for (int r = 0; r < b->seq_len[i]; r++) valid[b->pos[tok + r]] = 1;
    }
    diffu_kv_step st = {kv, kb};
    diffu_model_layers(m, b, x, &st);
}

int diffu_forward_kv(diffu_model *m, diffu_kvcache *kv, const diffu_kv_batch *kb, float *logits, diffu_err *err) {
    if (diffu_kv_batch_check(m, kv, kb, err)) return -1;
    const diffu_shard *s = &m->w->shard;
    if (!s->embed || !s->head) return diffu_err_set(err, "diffu_forward_kv needs a shard with the embedding and the head");
    diffu_forward_embed(m, &kb->b, m->x);
    diffu_forward_layers_kv(m, kv, kb, m->x);
    diffu_forward_head(m, &kb->b, m->x, logits);
    return 0;
}

double diffu_forward_kv_flops(const diffu_model *m, const diffu_kv_batch *kb) {
    /* diffu_forward_flops counts each sequence's rows attending to themselves
     * (4 R^2 nq hd per layer); here they attend to the whole context (4 R N nq hd) */
    const diffu_shard *s = &m->w->shard;
    double att = 0;
    for (int i = 0; i < kb->b.n_seq; i++) {
        double R = kb->b.seq_len[i], N = kb->ctx_len[i];
        att += 4.0 * R * (N - R) * m->nq * m->cfg.head_dim;
    }
    return diffu_forward_flops(m, &kb->b) + att * (double)(s->layer_end - s->layer_begin);
}
