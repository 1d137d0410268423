/* denoise.c — see denoise.h. */
#include "denoise.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { MODE_DREAM, MODE_BLOCKS, MODE_THRESHOLD } mode_t_;

struct diffu_denoise {
    diffu_denoise_params p;
    diffu_sampler_params sp;
    mode_t_ mode;
    uint32_t request, sample;
    diffu_philox_key key;
    int L, G, N;           /* prompt, generated, canvas lengths */
    int vocab;             /* ids [0, vocab) */
    int32_t *canvas;       /* [N] */
    int32_t *commit_step;  /* [G] */
    int32_t *order;        /* [G] generated indices in commit order */
    int n_order;
    int n_masked;          /* masked generated positions */
    int first_masked;      /* generated index of the first masked position (G if none) */
    int first_end;         /* generated index of the first committed end token (G if none) */
    int step, n_forward, done, stopped_early, prepared;
    /* schedules */
    float *ts;             /* [steps + 1] Dream timesteps (MODE_DREAM) */
    int n_blocks, block, spb, bstep;
    int *bcount;           /* [spb] LLaDA counts of the current block (MODE_BLOCKS) */
    /* this step */
    int n_want, n_take;
    int32_t *want;         /* [G] canvas positions */
    diffu_sample_job *jobs;/* [G] */
    int32_t *idx;          /* [G] selection scratch */
    double *sortkey;       /* [G] selection scratch */
    uint8_t *scratch;      /* [G] for AR-ness */
};

static const char *ALG_NAMES[] = {"origin", "maskgit_plus", "topk_margin", "entropy"};

int diffu_denoise_alg_parse(const char *s) {
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, ALG_NAMES[i])) return i;
    return -1;
}

const char *diffu_denoise_alg_name(diffu_alg a) { return (unsigned)a < 4 ? ALG_NAMES[a] : "?"; }

void diffu_denoise_params_default(diffu_denoise_params *p) {
    memset(p, 0, sizeof *p);
    p->alg = DIFFU_ALG_ENTROPY;
    p->eps = 1e-3;
    p->mask_id = -1;
}

int diffu_denoise_params_check(const diffu_denoise_params *p, int vocab, diffu_err *err) {
    int thr = p->threshold > 0 || p->factor > 0;
    if (p->max_new_tokens < 1) return diffu_err_set(err, "max_new_tokens: %d, must be >= 1", p->max_new_tokens);
    if ((unsigned)p->alg > 3) return diffu_err_set(err, "alg: unknown algorithm %d", (int)p->alg);
    if (!thr && p->steps < 1) return diffu_err_set(err, "steps: %d, must be >= 1", p->steps);
    if (!(p->eps >= 0 && p->eps < 1)) return diffu_err_set(err, "eps: %g, must be in [0, 1)", p->eps);
    if (!(p->temperature >= 0) || !isfinite(p->temperature))
        return diffu_err_set(err, "temperature: %g, must be >= 0", p->temperature);
    if (!(p->top_p >= 0 && p->top_p <= 1)) return diffu_err_set(err, "top_p: %g, must be in (0, 1]", p->top_p);
    if (p->top_k < 0) return diffu_err_set(err, "top_k: %d, must be >= 0 (0 = off)", p->top_k);
    if (!(p->alg_temp >= 0) || !isfinite(p->alg_temp))
        return diffu_err_set(err, "alg_temp: %g, must be >= 0", p->alg_temp);
    if (p->mask_id < 0 || p->mask_id >= vocab)
        return diffu_err_set(err, "mask_id: %d is outside the vocabulary [0, %d)", p->mask_id, vocab);
    if (p->threshold > 0 && p->factor > 0) return diffu_err_set(err, "threshold and factor are exclusive: give one");
    if (!(p->threshold >= 0 && p->threshold <= 1))
        return diffu_err_set(err, "threshold: %g, must be in (0, 1]", p->threshold);
    if (!(p->factor >= 0) || !isfinite(p->factor)) return diffu_err_set(err, "factor: %g, must be > 0", p->factor);
    if (p->alg == DIFFU_ALG_ORIGIN && (thr || p->block_length > 0))
        return diffu_err_set(err, "alg origin commits at random, not by confidence: it cannot be combined with "
                                  "threshold, factor or block_length");
    if (p->alg == DIFFU_ALG_ORIGIN && p->alg_temp > 0)
        return diffu_err_set(err, "alg_temp: %g has no effect with alg origin", p->alg_temp);
    if (thr && p->alg_temp > 0)
        return diffu_err_set(err, "alg_temp: threshold / factor decoding ranks by confidence; alg_temp does not apply");
    if (p->block_length < 0) return diffu_err_set(err, "block_length: %d, must be >= 0", p->block_length);
    if (p->block_length > 0) {
        if (p->max_new_tokens % p->block_length)
            return diffu_err_set(err, "block_length: %d does not divide max_new_tokens %d", p->block_length,
                                 p->max_new_tokens);
        int nb = p->max_new_tokens / p->block_length;
        if (!thr && p->steps % nb)
            return diffu_err_set(err, "steps: %d is not a multiple of the %d blocks (max_new_tokens %d / block_length %d)",
                                 p->steps, nb, p->max_new_tokens, p->block_length);
    }
    if (p->early_stop) {
        if (p->n_end < 1 || p->n_end > DIFFU_MAX_END_IDS)
            return diffu_err_set(err, "early_stop: needs 1 to %d end token ids, got %d", DIFFU_MAX_END_IDS, p->n_end);
        for (int i = 0; i < p->n_end; i++)
            if (p->end_ids[i] < 0 || p->end_ids[i] >= vocab || p->end_ids[i] == p->mask_id)
                return diffu_err_set(err, "early_stop: end token id %d is outside the vocabulary [0, %d) or the mask",
                                     p->end_ids[i], vocab);
    }
    return 0;
}

/* torch.linspace(1, eps, n) in float32 with the CUDA kernel's formula (as
 * tests/ref/dream_generate_ref.py's linspace_f32). The volatile product keeps
 * the compiler from fusing start + step * i into one FMA. */
static void linspace_f32(float *out, float start, float end, int n) {
    if (n == 1) {
        out[0] = start;
        return;
    }
    float step = (end - start) / (float)(n - 1);
    int half = n / 2;
    for (int i = 0; i < n; i++) {
        volatile float prod = step * (float)(i < half ? i : n - i - 1);
        out[i] = i < half ? start + prod : end - prod;
    }
}

diffu_denoise *diffu_denoise_create(const diffu_denoise_params *p, int vocab, const int32_t *prompt, int prompt_len,
                                    uint32_t request, uint32_t sample, diffu_err *err) {
    if (diffu_denoise_params_check(p, vocab, err)) return NULL;
    if (prompt_len < 0) {
        diffu_err_set(err, "prompt length %d", prompt_len);
        return NULL;
    }
    for (int i = 0; i < prompt_len; i++)
        if (prompt[i] < 0 || prompt[i] >= vocab) {
            diffu_err_set(err, "prompt token %d: id %d is outside the vocabulary [0, %d)", i, prompt[i], vocab);
            return NULL;
        }
    if (sample >= (1u << 24)) {
        diffu_err_set(err, "sample index %u: at most 2^24 samples per request", sample);
        return NULL;
    }
    diffu_denoise *d = diffu_xcalloc(1, sizeof *d);
    d->p = *p;
    d->request = request;
    d->sample = sample;
    d->key = diffu_philox_seed(p->seed);
    d->L = prompt_len;
    d->vocab = vocab;
    d->G = p->max_new_tokens;
    d->N = d->L + d->G;
    int G = d->G;
    d->canvas = diffu_xmalloc((size_t)d->N * sizeof *d->canvas);
    if (prompt_len) memcpy(d->canvas, prompt, (size_t)prompt_len * sizeof *prompt);
    for (int j = 0; j < G; j++) d->canvas[d->L + j] = p->mask_id;
    d->commit_step = diffu_xmalloc((size_t)G * sizeof *d->commit_step);
    for (int j = 0; j < G; j++) d->commit_step[j] = DIFFU_STEP_MASKED;
    d->order = diffu_xmalloc((size_t)G * sizeof *d->order);
    d->want = diffu_xmalloc((size_t)G * sizeof *d->want);
    d->jobs = diffu_xmalloc((size_t)G * sizeof *d->jobs);
    d->idx = diffu_xmalloc((size_t)G * sizeof *d->idx);
    d->sortkey = diffu_xmalloc((size_t)G * sizeof *d->sortkey);
    d->scratch = diffu_xmalloc((size_t)G);
    d->n_masked = G;
    d->first_masked = 0;
    d->first_end = G;

    diffu_sampler_params_default(&d->sp);
    d->sp.temperature = p->temperature;
    d->sp.top_p = p->top_p;
    d->sp.top_k = p->top_k;
    if (p->threshold > 0 || p->factor > 0) {
        d->mode = MODE_THRESHOLD;
        d->sp.conf = DIFFU_CONF_PROB;
        d->sp.ban_token = p->mask_id;
    } else {
        d->mode = p->block_length > 0 ? MODE_BLOCKS : MODE_DREAM;
        d->sp.conf = p->alg == DIFFU_ALG_TOPK_MARGIN ? DIFFU_CONF_MARGIN
                     : p->alg == DIFFU_ALG_ENTROPY   ? DIFFU_CONF_NEG_ENTROPY
                                                     : DIFFU_CONF_PROB;
    }
    d->n_blocks = p->block_length > 0 ? G / p->block_length : 1;
    if (d->mode == MODE_DREAM) {
        d->ts = diffu_xmalloc((size_t)(p->steps + 1) * sizeof *d->ts);
        linspace_f32(d->ts, 1.0f, (float)p->eps, p->steps + 1);
    } else if (d->mode == MODE_BLOCKS) {
        d->spb = p->steps / d->n_blocks;
        d->bcount = diffu_xmalloc((size_t)d->spb * sizeof *d->bcount);
    }
    return d;
}

void diffu_denoise_free(diffu_denoise **dp) {
    if (!dp || !*dp) return;
    diffu_denoise *d = *dp;
    free(d->canvas);
    free(d->commit_step);
    free(d->order);
    free(d->want);
    free(d->jobs);
    free(d->idx);
    free(d->sortkey);
    free(d->scratch);
    free(d->ts);
    free(d->bcount);
    free(d);
    *dp = NULL;
}

/* ------------------------------------------------------------ helpers */

static int block_begin(const diffu_denoise *d) { return d->p.block_length > 0 ? d->block * d->p.block_length : 0; }
static int block_end(const diffu_denoise *d) {
    return d->p.block_length > 0 ? (d->block + 1) * d->p.block_length : d->G;
}

static int is_masked(const diffu_denoise *d, int j) { return d->canvas[d->L + j] == d->p.mask_id; }

static uint32_t philox_draw_u32(const diffu_denoise *d, int pos, uint32_t purpose, uint32_t out[4]) {
    diffu_philox_ctr c = diffu_philox_addr(d->request, d->sample, (uint32_t)d->step, (uint32_t)pos, purpose);
    diffu_philox4x32(&c, &d->key, out);
    return out[0];
}

static float origin_u(const diffu_denoise *d, int pos) {
    uint32_t r[4];
    philox_draw_u32(d, pos, DIFFU_RNG_ORIGIN, r);
    return diffu_philox_u01f(r);
}

/* Dream's number_transfer_tokens: int(masked * (1 - s/t)) in float32. */
static int dream_count(const diffu_denoise *d) {
    if (d->step == d->p.steps - 1) return d->n_masked;
    volatile float t = d->ts[d->step], s = d->ts[d->step + 1];
    volatile float frac = 1.0f - s / t;
    volatile float n = (float)d->n_masked * frac;
    return (int)n;
}

static float origin_p(const diffu_denoise *d) {
    if (d->step == d->p.steps - 1) return 1.0f;
    volatile float t = d->ts[d->step], s = d->ts[d->step + 1];
    return 1.0f - s / t;
}

static void want_masked_in(diffu_denoise *d, int j0, int j1) {
    for (int j = j0 < d->first_masked ? d->first_masked : j0; j < j1; j++)
        if (is_masked(d, j)) d->want[d->n_want++] = d->L + j;
}

/* ------------------------------------------------------------ protocol */

int diffu_denoise_prepare(diffu_denoise *d) {
    DIFFU_ASSERT(!d->done && !d->prepared);
    d->prepared = 1;
    d->n_want = 0;
    d->n_take = 0;
    switch (d->mode) {
    case MODE_DREAM:
        if (d->p.alg == DIFFU_ALG_ORIGIN) {
            /* the commit decision does not depend on the logits: draw it first
             * and ask only for the rows that will be committed */
            float pt = origin_p(d);
            for (int j = d->first_masked; j < d->G; j++)
                if (is_masked(d, j) && origin_u(d, d->L + j) < pt) d->want[d->n_want++] = d->L + j;
            d->n_take = d->n_want;
        } else {
            d->n_take = dream_count(d);
            if (d->n_take > 0) want_masked_in(d, 0, d->G);
        }
        break;
    case MODE_BLOCKS: {
        int j0 = block_begin(d), j1 = block_end(d);
        if (d->bstep == 0) {
            int mb = 0;
            for (int j = j0; j < j1; j++) mb += is_masked(d, j);
            for (int k = 0; k < d->spb; k++) d->bcount[k] = mb / d->spb + (k < mb % d->spb);
        }
        d->n_take = d->bcount[d->bstep];
        if (d->n_take > 0) want_masked_in(d, j0, j1);
        if (d->n_take > d->n_want) d->n_take = d->n_want;
        break;
    }
    case MODE_THRESHOLD:
        for (;;) {
            want_masked_in(d, block_begin(d), block_end(d));
            if (d->n_want > 0) break;
            DIFFU_ASSERT(d->p.block_length > 0 && d->block + 1 < d->n_blocks);
            d->block++;
        }
        break;
    }
    if (d->n_take == 0 && d->mode != MODE_THRESHOLD) d->n_want = 0;
    for (int i = 0; i < d->n_want; i++) {
        d->jobs[i].params = &d->sp;
        d->jobs[i].key = d->key;
        d->jobs[i].ctr = diffu_philox_addr(d->request, d->sample, (uint32_t)d->step, (uint32_t)d->want[i],
                                           DIFFU_RNG_TOKEN);
    }
    return d->n_want;
}

const int32_t *diffu_denoise_positions(const diffu_denoise *d) { return d->want; }
const diffu_sample_job *diffu_denoise_jobs(const diffu_denoise *d) { return d->jobs; }

/* Sort d->idx[0..n) by sortkey descending, ties to the lower index (the
 * wanted positions are ascending, so lower index = lower position).
 * The (key, index) order is total, so the unstable shell sort is exact; n is
 * at most max_new_tokens and this runs once per step. */
static void sort_by_key_desc(int32_t *idx, const double *key, int n) {
    for (int gap = n / 2; gap > 0; gap /= 2)
        for (int i = gap; i < n; i++) {
            int32_t x = idx[i];
            int k = i;
            while (k >= gap) {
                int32_t y = idx[k - gap];
                if (key[y] > key[x] || (key[y] == key[x] && y < x)) break;
                idx[k] = y;
                k -= gap;
            }
            idx[k] = x;
        }
}

static void sort_asc(int32_t *a, int n) {
    for (int gap = n / 2; gap > 0; gap /= 2)
        for (int i = gap; i < n; i++) {
            int32_t x = a[i];
            int k = i;
            while (k >= gap && a[k - gap] > x) {
                a[k] = a[k - gap];
                k -= gap;
            }
            a[k] = x;
        }
}

static int is_end(const diffu_denoise *d, int32_t tok) {
    for (int i = 0; i < d->p.n_end; i++)
        if (tok == d->p.end_ids[i]) return 1;
    return 0;
}

/* Write the chosen wanted-indices sel[0..n) (any order). */
static void write_commits(diffu_denoise *d, int32_t *sel, int n, const diffu_sample *smp) {
    sort_asc(sel, n); /* left to right within a step (the AR-ness flattening) */
    for (int k = 0; k < n; k++) {
        int i = sel[k];
        int pos = d->want[i], j = pos - d->L;
        DIFFU_ASSERT(j >= 0 && j < d->G && is_masked(d, j));
        int32_t tok = smp[i].token;
        if (tok == d->p.mask_id) continue; /* Dream: the position simply stays masked */
        d->canvas[pos] = tok;
        d->commit_step[j] = d->step;
        d->order[d->n_order++] = j;
        d->n_masked--;
        if (d->p.early_stop && j < d->first_end && is_end(d, tok)) d->first_end = j;
    }
    while (d->first_masked < d->G && !is_masked(d, d->first_masked)) d->first_masked++;
}

void diffu_denoise_commit(diffu_denoise *d, const diffu_sample *smp) {
    DIFFU_ASSERT(d->prepared);
    int n = d->n_want;
    DIFFU_ASSERT(n == 0 || smp);
    if (n > 0) {
        d->n_forward++;
        for (int i = 0; i < n; i++) d->idx[i] = i;
        if (d->mode == MODE_DREAM && d->p.alg == DIFFU_ALG_ORIGIN) {
            write_commits(d, d->idx, n, smp);
        } else if (d->mode == MODE_THRESHOLD) {
            for (int i = 0; i < n; i++) d->sortkey[i] = smp[i].conf;
            sort_by_key_desc(d->idx, d->sortkey, n);
            int take = 1;
            if (d->p.threshold > 0) {
                for (int r = 1; r < n; r++)
                    if (d->sortkey[d->idx[r]] >= d->p.threshold) take = r + 1;
                    else break; /* sorted: no later one passes */
            } else {
                for (int r = 1; r < n; r++) {
                    if (d->sortkey[d->idx[r]] >= 1.0 - d->p.factor / (double)(r + 2)) take = r + 1; /* rank r+1 */
                    else break;
                }
            }
            write_commits(d, d->idx, take, smp);
        } else {
            int take = d->n_take;
            DIFFU_ASSERT(take >= 1 && take <= n);
            if (d->p.alg_temp > 0) {
                /* Gumbel-top-n: top n of conf / alg_temp + Gumbel noise is a draw of n
                 * positions without replacement from softmax(conf / alg_temp) */
                for (int i = 0; i < n; i++) {
                    uint32_t r[4];
                    philox_draw_u32(d, d->want[i], DIFFU_RNG_POSITION, r);
                    double u = diffu_philox_u01_open(r);
                    d->sortkey[i] = smp[i].conf / d->p.alg_temp - log(-log(u));
                }
            } else {
                for (int i = 0; i < n; i++) d->sortkey[i] = smp[i].conf;
            }
            sort_by_key_desc(d->idx, d->sortkey, n);
            write_commits(d, d->idx, take, smp);
        }
    }
    d->prepared = 0;
    d->step++;
    if (d->mode == MODE_BLOCKS && ++d->bstep == d->spb) {
        d->bstep = 0;
        d->block++;
    }
    /* early stop: an end token with nothing masked to its left */
    if (d->p.early_stop && d->first_end < d->G && d->first_end < d->first_masked && d->n_masked > 0) {
        int32_t fill = d->canvas[d->L + d->first_end];
        for (int j = d->first_end + 1; j < d->G; j++)
            if (is_masked(d, j)) {
                d->canvas[d->L + j] = fill;
                d->commit_step[j] = DIFFU_STEP_FILLED;
                d->n_masked--;
            }
        DIFFU_ASSERT(d->n_masked == 0);
        d->first_masked = d->G;
        d->stopped_early = 1;
    }
    if (d->n_masked == 0) d->done = 1;
    else if (d->mode == MODE_DREAM && d->step >= d->p.steps) d->done = 1;
    else if (d->mode == MODE_BLOCKS && d->block >= d->n_blocks) d->done = 1;
    else if (d->mode == MODE_THRESHOLD) DIFFU_ASSERT(d->step <= d->G); /* >= 1 commit per step */
}

int diffu_denoise_done(const diffu_denoise *d) { return d->done; }

int diffu_denoise_origin_uniforms(const diffu_denoise *d, float *u) {
    if (d->done || d->mode != MODE_DREAM || d->p.alg != DIFFU_ALG_ORIGIN) return 0;
    int n = 0;
    for (int j = 0; j < d->G; j++)
        if (is_masked(d, j)) u[n++] = origin_u(d, d->L + j);
    return n;
}

/* ------------------------------------------------------------ results */

const diffu_denoise_params *diffu_denoise_get_params(const diffu_denoise *d) { return &d->p; }
const int32_t *diffu_denoise_canvas(const diffu_denoise *d, int *len) {
    if (len) *len = d->N;
    return d->canvas;
}
int diffu_denoise_prompt_len(const diffu_denoise *d) { return d->L; }
int diffu_denoise_vocab(const diffu_denoise *d) { return d->vocab; }
const int32_t *diffu_denoise_commit_steps(const diffu_denoise *d) { return d->commit_step; }
const int32_t *diffu_denoise_order(const diffu_denoise *d, int *n) {
    if (n) *n = d->n_order;
    return d->order;
}
int diffu_denoise_steps_taken(const diffu_denoise *d) { return d->step; }
int diffu_denoise_forwards(const diffu_denoise *d) { return d->n_forward; }
int diffu_denoise_masked(const diffu_denoise *d) { return d->n_masked; }
int diffu_denoise_stopped_early(const diffu_denoise *d) { return d->stopped_early; }
uint32_t diffu_denoise_request(const diffu_denoise *d) { return d->request; }
uint32_t diffu_denoise_sample(const diffu_denoise *d) { return d->sample; }

int diffu_denoise_answer_len(const diffu_denoise *d) {
    for (int j = 0; j < d->G; j++)
        if (is_end(d, d->canvas[d->L + j])) return j + 1;
    return d->G;
}

void diffu_denoise_arness(const diffu_denoise *d, diffu_arness *out) {
    diffu_arness_compute(d->G, d->order, d->n_order, d->scratch, out);
}
