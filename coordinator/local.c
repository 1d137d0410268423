/* local.c — see local.h. */
#include "local.h"

#include <stdlib.h>
#include <string.h>

#include "sampler.h"

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
    free(l);
    *lp = NULL;
}

const diffu_local_stats *diffu_local_get_stats(const diffu_local *l) { return &l->st; }

int diffu_local_step(diffu_local *l, diffu_denoise *const *ds, const int *n_want, int n, diffu_sample *out,
                     diffu_err *err) {
    DIFFU_ASSERT(n >= 1 && n <= l->plan.max_seqs);
    int n_tok = 0, n_rows = 0;
    for (int i = 0; i < n; i++) {
        int len, w = n_want[i];
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
    double t1 = diffu_now();
    diffu_batch b = {n, l->seq_len, l->tokens, NULL, n_rows, l->rows};
    if (l->fwd(l->fwd_user, &b, l->logits, err)) return -1;
    double t2 = diffu_now();
    diffu_sampler_run(l->sampler, n_rows, l->logits, (size_t)l->vocab, l->jobs, out);
    l->st.t_forward += t2 - t1;
    l->st.t_sample += diffu_now() - t2;
    l->st.forwards++;
    l->st.rows += n_rows;
    l->st.tokens += n_tok;
    return 0;
}
