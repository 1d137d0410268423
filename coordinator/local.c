/* local.c — see local.h. */
#include "local.h"

#include <stdlib.h>
#include <string.h>

#include "kvcache.h"
#include "kvpolicy.h"
#include "sampler.h"

/* A sequence holding a cache slot: from its first step to diffu_local_release. */
typedef struct kv_seq {
    const diffu_denoise *d; /* NULL: free entry */
    int slot;
    diffu_kvpolicy *kp;
} kv_seq;

struct diffu_local {
    diffu_model *m;
    diffu_local_plan plan;
    int vocab;
    diffu_sampler *sampler;
    int32_t *tokens;          /* [max_tokens] */
    int *seq_len;             /* [max_seqs] */
    int32_t *rows;            /* [max_rows] */
    diffu_sample_job *jobs;   /* [max_rows] */
    float *logits;            /* [logit rows x vocab] */
    diffu_local_forward_fn fwd;
    void *fwd_user;
    diffu_local_stats st;
    /* the KV cache (plan.cache_slots > 0) */
    diffu_kvcache *kv;
    kv_seq *kvs;              /* [cache_slots] */
    int32_t *pos;             /* [max_tokens] the computed rows' canvas positions */
    int *slot, *ctx;          /* [max_seqs] */
    kv_seq **cur;             /* [max_seqs] the microbatch's entries */
    int32_t *crows;           /* [max_seq] one sequence's computed rows */
    int *where;               /* [max_seq] canvas position -> index among them, or -1 */
};

static int model_forward(void *user, const diffu_batch *b, float *logits, diffu_err *err) {
    return diffu_forward((diffu_model *)user, b, logits, err);
}

void diffu_local_set_forward(diffu_local *l, diffu_local_forward_fn fn, void *user) {
    l->fwd = fn ? fn : model_forward;
    l->fwd_user = fn ? user : l->m;
}

diffu_local *diffu_local_create(diffu_model *m, const diffu_local_plan *plan, diffu_err *err) {
    const diffu_model_opts *mo = diffu_model_get_opts(m);
    const diffu_config *cfg = diffu_model_config(m);
    if (plan->max_seqs < 1 || plan->max_tokens < 1 || plan->max_rows < 1) {
        diffu_err_set(err, "local plan: sequences %d, tokens %d, rows %d must all be >= 1", plan->max_seqs,
                      plan->max_tokens, plan->max_rows);
        return NULL;
    }
    if (mo->max_tokens < plan->max_tokens || mo->max_rows < plan->max_rows || mo->max_seq < plan->max_seq ||
        mo->max_seqs < plan->max_seqs) {
        diffu_err_set(err, "the model's plan (%d tokens, %d per sequence, %d rows, %d sequences) is smaller than the "
                      "microbatch's (%d, %d, %d, %d)", mo->max_tokens, mo->max_seq, mo->max_rows, mo->max_seqs,
                      plan->max_tokens, plan->max_seq, plan->max_rows, plan->max_seqs);
        return NULL;
    }
    if (diffu_model_vocab_local(m) != cfg->vocab) {
        diffu_err_set(err, "the local backend needs the whole vocabulary (this shard has %d of %d)",
                      diffu_model_vocab_local(m), cfg->vocab);
        return NULL;
    }
    diffu_local *l = diffu_xcalloc(1, sizeof *l);
    l->m = m;
    l->plan = *plan;
    l->vocab = cfg->vocab;
    l->fwd = model_forward;
    l->fwd_user = m;
    l->sampler = diffu_sampler_create(l->vocab, diffu_model_pool(m));
    l->tokens = diffu_xmalloc((size_t)plan->max_tokens * sizeof *l->tokens);
    l->seq_len = diffu_xmalloc((size_t)plan->max_seqs * sizeof *l->seq_len);
    l->rows = diffu_xmalloc((size_t)plan->max_rows * sizeof *l->rows);
    l->jobs = diffu_xmalloc((size_t)plan->max_rows * sizeof *l->jobs);
    /* the forward groups each canvas's rows on a row panel: room for the padding (forward.h) */
    l->logits = diffu_xaligned((size_t)diffu_model_logit_rows(m) * (size_t)l->vocab * sizeof(float));
    if (plan->cache_slots > 0) {
        if (diffu_kvcache_create(m, plan->cache_slots, plan->max_seq, &l->kv, err)) {
            diffu_local_free(&l);
            return NULL;
        }
        diffu_kvcache_plan_print(l->kv); /* (the model may be quiet: the cache is the run's choice, say it) */
        l->kvs = diffu_xcalloc((size_t)plan->cache_slots, sizeof *l->kvs);
        l->pos = diffu_xmalloc((size_t)plan->max_tokens * sizeof *l->pos);
        l->slot = diffu_xmalloc((size_t)plan->max_seqs * sizeof *l->slot);
        l->ctx = diffu_xmalloc((size_t)plan->max_seqs * sizeof *l->ctx);
        l->cur = diffu_xmalloc((size_t)plan->max_seqs * sizeof *l->cur);
        l->crows = diffu_xmalloc((size_t)plan->max_seq * sizeof *l->crows);
        l->where = diffu_xmalloc((size_t)plan->max_seq * sizeof *l->where);
    }
    return l;
}

void diffu_local_free(diffu_local **lp) {
    if (!lp || !*lp) return;
    diffu_local *l = *lp;
    diffu_sampler_free(&l->sampler);
    free(l->tokens);
    free(l->seq_len);
    free(l->rows);
    free(l->jobs);
    free(l->logits);
    if (l->kvs)
        for (int i = 0; i < l->plan.cache_slots; i++) diffu_kvpolicy_free(&l->kvs[i].kp);
    diffu_kvcache_free(l->kv);
    free(l->kvs);
    free(l->pos);
    free(l->slot);
    free(l->ctx);
    free(l->cur);
    free(l->crows);
    free(l->where);
    free(l);
    *lp = NULL;
}

void diffu_local_release(diffu_local *l, const diffu_denoise *d) {
    if (!l->kv) return;
    for (int i = 0; i < l->plan.cache_slots; i++)
        if (l->kvs[i].d == d) {
            diffu_kvcache_release(l->kv, l->kvs[i].slot);
            diffu_kvpolicy_free(&l->kvs[i].kp);
            l->kvs[i].d = NULL;
            return;
        }
}

/* The sequence's cache entry; a slot and a fresh policy on its first step
 * (a policy allocates [canvas] scratch once per request, not per step). */
static kv_seq *kv_entry(diffu_local *l, const diffu_denoise *d, diffu_err *err) {
    kv_seq *free_e = NULL;
    for (int i = 0; i < l->plan.cache_slots; i++) {
        if (l->kvs[i].d == d) return &l->kvs[i];
        if (!l->kvs[i].d && !free_e) free_e = &l->kvs[i];
    }
    DIFFU_ASSERTF(free_e, "more sequences in flight than the %d KV-cache slots (the scheduler's max_active)",
                  l->plan.cache_slots);
    if (!(free_e->kp = diffu_kvpolicy_for(d, err))) return NULL;
    free_e->slot = diffu_kvcache_acquire(l->kv);
    DIFFU_ASSERT(free_e->slot >= 0);
    free_e->d = d;
    return free_e;
}

/* The cached forward: each sequence's rows as its policy chooses (kvpolicy.h),
 * lm_head on the rows predicting its wanted positions. */
static int step_kv(diffu_local *l, diffu_denoise *const *ds, const int *n_want, int n, int *n_tok_out,
                   int *n_rows_out, diffu_err *err) {
    int n_tok = 0, n_rows = 0;
    for (int i = 0; i < n; i++) {
        int len, w = n_want[i], full;
        kv_seq *e = l->cur[i] = kv_entry(l, ds[i], err);
        if (!e) return -1;
        const int32_t *canvas = diffu_denoise_canvas(ds[i], &len);
        const int32_t *want = diffu_denoise_positions(ds[i]);
        const diffu_sample_job *jobs = diffu_denoise_jobs(ds[i]);
        int nr = diffu_kvpolicy_rows(e->kp, diffu_denoise_get_params(ds[i])->mask_id, want, w, l->crows, &full);
        DIFFU_ASSERT(nr >= 1 && nr <= len && n_tok + nr <= l->plan.max_tokens && n_rows + w <= l->plan.max_rows);
        for (int k = 0; k < len; k++) l->where[k] = -1;
        for (int k = 0; k < nr; k++) {
            l->tokens[n_tok + k] = canvas[l->crows[k]];
            l->pos[n_tok + k] = l->crows[k];
            l->where[l->crows[k]] = k;
        }
        for (int k = 0; k < w; k++) {
            int src = diffu_sampler_row_of(want[k]); /* the logit shift: row p - 1 predicts p */
            DIFFU_ASSERTF(l->where[src] >= 0, "the cache policy left out row %d, which predicts position %d", src,
                          want[k]);
            l->rows[n_rows + k] = n_tok + l->where[src];
            l->jobs[n_rows + k] = jobs[k];
        }
        l->seq_len[i] = nr;
        l->slot[i] = e->slot;
        l->ctx[i] = len;
        n_tok += nr;
        n_rows += w;
    }
    diffu_kv_batch kb = {{n, l->seq_len, l->tokens, l->pos, n_rows, l->rows}, l->slot, l->ctx};
    l->st.flops += diffu_forward_kv_flops(l->m, &kb);
    if (diffu_forward_kv(l->m, l->kv, &kb, l->logits, err)) return -1;
    for (int i = 0; i < n; i++) /* the canvases are still those the rows were chosen on (commit comes after) */
        diffu_kvpolicy_done(l->cur[i]->kp, diffu_denoise_canvas(ds[i], NULL));
    *n_tok_out = n_tok;
    *n_rows_out = n_rows;
    return 0;
}

const diffu_local_stats *diffu_local_get_stats(const diffu_local *l) { return &l->st; }

/* The no-cache forward: every canvas whole, lm_head on the rows predicting the wanted positions. */
static int step_full(diffu_local *l, diffu_denoise *const *ds, const int *n_want, int n, int *n_tok_out,
                     int *n_rows_out, diffu_err *err) {
    int n_tok = 0, n_rows = 0;
    for (int i = 0; i < n; i++) {
        int len, w = n_want[i];
        if (diffu_denoise_get_params(ds[i])->cache != DIFFU_CACHE_NONE) {
            diffu_err_set(err, "request %u asks for the KV cache '%s', but this run holds none (start it with --cache"
                          " prefix|dual|delayed)", diffu_denoise_request(ds[i]),
                          diffu_cache_mode_name((diffu_cache_mode)diffu_denoise_get_params(ds[i])->cache));
            return -1;
        }
        const int32_t *canvas = diffu_denoise_canvas(ds[i], &len);
        const int32_t *pos = diffu_denoise_positions(ds[i]);
        const diffu_sample_job *jobs = diffu_denoise_jobs(ds[i]);
        DIFFU_ASSERT(w > 0 && len <= l->plan.max_seq && n_tok + len <= l->plan.max_tokens &&
                     n_rows + w <= l->plan.max_rows);
        memcpy(l->tokens + n_tok, canvas, (size_t)len * sizeof *canvas);
        l->seq_len[i] = len;
        for (int k = 0; k < w; k++) {
            l->rows[n_rows + k] = n_tok + diffu_sampler_row_of(pos[k]);
            l->jobs[n_rows + k] = jobs[k];
        }
        n_rows += w;
        n_tok += len;
    }
    diffu_batch b = {n, l->seq_len, l->tokens, NULL, n_rows, l->rows};
    l->st.flops += diffu_forward_flops(l->m, &b);
    if (l->fwd(l->fwd_user, &b, l->logits, err)) return -1;
    *n_tok_out = n_tok;
    *n_rows_out = n_rows;
    return 0;
}

int diffu_local_step(diffu_local *l, diffu_denoise *const *ds, const int *n_want, int n, diffu_sample *out,
                     diffu_err *err) {
    DIFFU_ASSERT(n >= 1 && n <= l->plan.max_seqs);
    int n_tok = 0, n_rows = 0;
    double t1 = diffu_now();
    if ((l->kv ? step_kv : step_full)(l, ds, n_want, n, &n_tok, &n_rows, err)) return -1;
    double t2 = diffu_now();
    diffu_sampler_run(l->sampler, n_rows, l->logits, (size_t)l->vocab, l->jobs, out);
    l->st.t_forward += t2 - t1;
    l->st.t_sample += diffu_now() - t2;
    l->st.forwards++;
    l->st.rows += n_rows;
    l->st.tokens += n_tok;
    return 0;
}
