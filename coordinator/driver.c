/* driver.c — see driver.h. */
#include "driver.h"

#include <stdlib.h>
#include <string.h>

#include "sampler.h"

typedef struct {
    diffu_denoise *d;
    int n_rows, row0; /* this step's rows in the batch */
} slot;

struct diffu_driver {
    diffu_model *m;
    diffu_driver_plan plan;
    int vocab;
    diffu_sampler *sampler;
    slot *slots;              /* [max_canvases] in flight */
    int n_active;
    int used_tokens, used_rows;
    /* per-step buffers */
    int32_t *tokens;          /* [max_tokens] */
    int *seq_len;             /* [max_canvases] */
    int32_t *rows;            /* [max_rows] */
    diffu_sample_job *jobs;   /* [max_rows] */
    diffu_sample *samples;    /* [max_rows] */
    float *logits;            /* [max_rows x vocab] */
    diffu_driver_forward_fn fwd;
    void *fwd_user;
    diffu_driver_stats st;
};

static int model_forward(void *user, const diffu_batch *b, float *logits, diffu_err *err) {
    return diffu_forward((diffu_model *)user, b, logits, err);
}

void diffu_driver_set_forward(diffu_driver *dr, diffu_driver_forward_fn fn, void *user) {
    dr->fwd = fn ? fn : model_forward;
    dr->fwd_user = fn ? user : dr->m;
}

diffu_driver *diffu_driver_create(diffu_model *m, const diffu_driver_plan *plan, diffu_err *err) {
    const diffu_model_opts *mo = diffu_model_get_opts(m);
    const diffu_config *cfg = diffu_model_config(m);
    if (plan->max_canvases < 1 || plan->max_tokens < 1 || plan->max_rows < 1) {
        diffu_err_set(err, "driver plan: canvases %d, tokens %d, rows %d must all be >= 1", plan->max_canvases,
                      plan->max_tokens, plan->max_rows);
        return NULL;
    }
    if (mo->max_tokens < plan->max_tokens || mo->max_rows < plan->max_rows || mo->max_seq < plan->max_seq ||
        mo->max_seqs < plan->max_canvases) {
        diffu_err_set(err, "the model's plan (%d tokens, %d per sequence, %d rows, %d sequences) is smaller than the "
                      "driver's (%d, %d, %d, %d)", mo->max_tokens, mo->max_seq, mo->max_rows, mo->max_seqs,
                      plan->max_tokens, plan->max_seq, plan->max_rows, plan->max_canvases);
        return NULL;
    }
    if (diffu_model_vocab_local(m) != cfg->vocab) {
        diffu_err_set(err, "the single-process driver needs the whole vocabulary (this shard has %d of %d)",
                      diffu_model_vocab_local(m), cfg->vocab);
        return NULL;
    }
    diffu_driver *dr = diffu_xcalloc(1, sizeof *dr);
    dr->m = m;
    dr->plan = *plan;
    dr->vocab = cfg->vocab;
    dr->fwd = model_forward;
    dr->fwd_user = m;
    dr->sampler = diffu_sampler_create(dr->vocab, diffu_model_pool(m));
    dr->slots = diffu_xcalloc((size_t)plan->max_canvases, sizeof *dr->slots);
    dr->tokens = diffu_xmalloc((size_t)plan->max_tokens * sizeof *dr->tokens);
    dr->seq_len = diffu_xmalloc((size_t)plan->max_canvases * sizeof *dr->seq_len);
    dr->rows = diffu_xmalloc((size_t)plan->max_rows * sizeof *dr->rows);
    dr->jobs = diffu_xmalloc((size_t)plan->max_rows * sizeof *dr->jobs);
    dr->samples = diffu_xmalloc((size_t)plan->max_rows * sizeof *dr->samples);
    /* the forward groups each canvas's rows on a row panel: room for the padding (forward.h) */
    dr->logits = diffu_xaligned((size_t)diffu_model_logit_rows(m) * (size_t)dr->vocab * sizeof(float));
    return dr;
}

void diffu_driver_free(diffu_driver **drp) {
    if (!drp || !*drp) return;
    diffu_driver *dr = *drp;
    diffu_sampler_free(&dr->sampler);
    free(dr->slots);
    free(dr->tokens);
    free(dr->seq_len);
    free(dr->rows);
    free(dr->jobs);
    free(dr->samples);
    free(dr->logits);
    free(dr);
    *drp = NULL;
}

int diffu_driver_add(diffu_driver *dr, diffu_denoise *d, diffu_err *err) {
    DIFFU_ASSERT(!diffu_denoise_done(d));
    int len;
    diffu_denoise_canvas(d, &len);
    int G = diffu_denoise_get_params(d)->max_new_tokens;
    if (dr->n_active >= dr->plan.max_canvases || dr->used_tokens + len > dr->plan.max_tokens ||
        dr->used_rows + G > dr->plan.max_rows || len > dr->plan.max_seq)
        return diffu_err_set(err, "canvas of %d tokens (%d generated) does not fit the driver's plan next to the %d "
                             "in flight (%d/%d tokens, %d/%d rows)", len, G, dr->n_active, dr->used_tokens,
                             dr->plan.max_tokens, dr->used_rows, dr->plan.max_rows);
    dr->slots[dr->n_active++].d = d;
    dr->used_tokens += len;
    dr->used_rows += G;
    return 0;
}

int diffu_driver_active(const diffu_driver *dr) { return dr->n_active; }
const diffu_driver_stats *diffu_driver_get_stats(const diffu_driver *dr) { return &dr->st; }

int diffu_driver_step(diffu_driver *dr, diffu_err *err) {
    double t0 = diffu_now();
    int n_seq = 0, n_tok = 0, n_rows = 0;
    for (int i = 0; i < dr->n_active; i++) {
        slot *s = &dr->slots[i];
        int n = diffu_denoise_prepare(s->d);
        s->n_rows = n;
        s->row0 = n_rows;
        if (n == 0) continue;
        int len;
        const int32_t *canvas = diffu_denoise_canvas(s->d, &len);
        const int32_t *pos = diffu_denoise_positions(s->d);
        const diffu_sample_job *jobs = diffu_denoise_jobs(s->d);
        DIFFU_ASSERT(n_tok + len <= dr->plan.max_tokens && n_rows + n <= dr->plan.max_rows);
        memcpy(dr->tokens + n_tok, canvas, (size_t)len * sizeof *canvas);
        dr->seq_len[n_seq++] = len;
        for (int k = 0; k < n; k++) {
            dr->rows[n_rows + k] = n_tok + diffu_sampler_row_of(pos[k]);
            dr->jobs[n_rows + k] = jobs[k];
        }
        n_rows += n;
        n_tok += len;
    }
    double t1 = diffu_now();
    dr->st.t_policy += t1 - t0;
    if (n_rows > 0) {
        diffu_batch b = {n_seq, dr->seq_len, dr->tokens, NULL, n_rows, dr->rows};
        if (dr->fwd(dr->fwd_user, &b, dr->logits, err)) return -1;
        double t2 = diffu_now();
        diffu_sampler_run(dr->sampler, n_rows, dr->logits, (size_t)dr->vocab, dr->jobs, dr->samples);
        double t3 = diffu_now();
        dr->st.t_forward += t2 - t1;
        dr->st.t_sample += t3 - t2;
        dr->st.forwards++;
        dr->st.rows += n_rows;
        dr->st.tokens += n_tok;
        t1 = t3;
    }
    int kept = 0;
    for (int i = 0; i < dr->n_active; i++) {
        slot *s = &dr->slots[i];
        int before = diffu_denoise_masked(s->d);
        diffu_denoise_commit(s->d, s->n_rows ? dr->samples + s->row0 : NULL);
        dr->st.committed += before - diffu_denoise_masked(s->d);
        if (diffu_denoise_done(s->d)) {
            int len;
            diffu_denoise_canvas(s->d, &len);
            dr->used_tokens -= len;
            dr->used_rows -= diffu_denoise_get_params(s->d)->max_new_tokens;
        } else {
            dr->slots[kept++] = *s;
        }
    }
    dr->n_active = kept;
    dr->st.steps++;
    dr->st.t_policy += diffu_now() - t1;
    return 0;
}
