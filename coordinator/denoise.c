/* denoise.c — see denoise.h. */
#include "denoise.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kvpolicy.h"

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
    if (diffu_kvpolicy_check(p->cache, p->cache_refresh, p->block_length, err)) return -1;
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
        d->bcount = diffu_xcalloc((size_t)d->spb, sizeof *d->bcount); /* zeros: a saved state is defined at step 0 */
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

/* ------------------------------------------------------------ in-flight state */

#define STATE_MAGIC 0x31534e44u /* "DNS1" little-endian */
enum { ST_MAGIC, ST_G, ST_STEP, ST_FWD, ST_NORDER, ST_BLOCK, ST_BSTEP, ST_SPB, ST_DONE, ST_STOPPED, ST_HEAD };

static int state_spb(const diffu_denoise *d) { return d->mode == MODE_BLOCKS ? d->spb : 0; }

size_t diffu_denoise_state_bytes(const diffu_denoise *d) {
    return 4 * ((size_t)ST_HEAD + 2 * (size_t)d->G + (size_t)d->n_order + (size_t)state_spb(d));
}

static void put32(uint8_t *b, size_t i, int32_t v) {
    uint32_t u = (uint32_t)v;
    b[4 * i] = (uint8_t)u;
    b[4 * i + 1] = (uint8_t)(u >> 8);
    b[4 * i + 2] = (uint8_t)(u >> 16);
    b[4 * i + 3] = (uint8_t)(u >> 24);
}

static int32_t get32(const uint8_t *b, size_t i) {
    return (int32_t)((uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 | (uint32_t)b[4 * i + 2] << 16 |
                     (uint32_t)b[4 * i + 3] << 24);
}

void diffu_denoise_save(const diffu_denoise *d, uint8_t *buf) {
    /* prepared (a step in flight): prepare changed nothing saved but what it redoes itself (the threshold
     * mode's move past a filled block, the block schedule at a block's first step), so this is the state
     * before that step */
    int G = d->G, S = state_spb(d);
    put32(buf, ST_MAGIC, (int32_t)STATE_MAGIC);
    put32(buf, ST_G, G);
    put32(buf, ST_STEP, d->step);
    put32(buf, ST_FWD, d->n_forward);
    put32(buf, ST_NORDER, d->n_order);
    put32(buf, ST_BLOCK, d->block);
    put32(buf, ST_BSTEP, d->bstep);
    put32(buf, ST_SPB, S);
    put32(buf, ST_DONE, d->done);
    put32(buf, ST_STOPPED, d->stopped_early);
    size_t w = ST_HEAD;
    for (int j = 0; j < G; j++) put32(buf, w++, d->canvas[d->L + j]);
    for (int j = 0; j < G; j++) put32(buf, w++, d->commit_step[j]);
    for (int k = 0; k < d->n_order; k++) put32(buf, w++, d->order[k]);
    for (int k = 0; k < S; k++) put32(buf, w++, d->bcount[k]);
}

int diffu_denoise_restore(diffu_denoise *d, const uint8_t *buf, size_t n, diffu_err *err) {
    DIFFU_ASSERT(d->step == 0 && !d->prepared && d->n_order == 0);
    int G = d->G, S = state_spb(d);
    if (n < 4 * (size_t)ST_HEAD || n % 4) return diffu_err_set(err, "canvas state: %zu bytes, not a state", n);
    if ((uint32_t)get32(buf, ST_MAGIC) != STATE_MAGIC) return diffu_err_set(err, "canvas state: bad magic");
    if (get32(buf, ST_G) != G)
        return diffu_err_set(err, "canvas state: %d generated positions, this request has %d", get32(buf, ST_G), G);
    if (get32(buf, ST_SPB) != S)
        return diffu_err_set(err, "canvas state: block schedule of %d steps, this request's is %d", get32(buf, ST_SPB), S);
    int32_t step = get32(buf, ST_STEP), fwd = get32(buf, ST_FWD), no = get32(buf, ST_NORDER);
    int32_t block = get32(buf, ST_BLOCK), bstep = get32(buf, ST_BSTEP), done = get32(buf, ST_DONE);
    int32_t stopped = get32(buf, ST_STOPPED);
    if (no < 0 || no > G) return diffu_err_set(err, "canvas state: %d commits of %d positions", no, G);
    if (n != 4 * ((size_t)ST_HEAD + 2 * (size_t)G + (size_t)no + (size_t)S))
        return diffu_err_set(err, "canvas state: %zu bytes, %d commits need %zu", n, no,
                             4 * ((size_t)ST_HEAD + 2 * (size_t)G + (size_t)no + (size_t)S));
    int max_step = d->mode == MODE_THRESHOLD ? G : d->p.steps;
    if (step < 0 || step > max_step) return diffu_err_set(err, "canvas state: step %d outside [0, %d]", step, max_step);
    if (fwd < 0 || fwd > step) return diffu_err_set(err, "canvas state: %d forwards in %d steps", fwd, step);
    if ((done | stopped) & ~1) return diffu_err_set(err, "canvas state: done/stopped flags %d/%d", done, stopped);
    if (done) return diffu_err_set(err, "canvas state: a finished canvas (nothing to continue)");
    if (block < 0 || block > d->n_blocks || (!done && block == d->n_blocks))
        return diffu_err_set(err, "canvas state: block %d of %d", block, d->n_blocks);
    if (d->mode == MODE_BLOCKS ? bstep < 0 || bstep >= d->spb || step != block * d->spb + bstep : bstep != 0)
        return diffu_err_set(err, "canvas state: block step %d does not match step %d of block %d", bstep, step, block);
    if (!done && d->mode == MODE_DREAM && step >= d->p.steps)
        return diffu_err_set(err, "canvas state: step %d of %d but not done", step, d->p.steps);
    const size_t tok0 = ST_HEAD, cs0 = tok0 + (size_t)G, ord0 = cs0 + (size_t)G, sch0 = ord0 + (size_t)no;
    int masked = 0, committed = 0, filled = 0, first_masked = G, first_end = G;
    for (int j = 0; j < G; j++) {
        int32_t t = get32(buf, tok0 + (size_t)j), c = get32(buf, cs0 + (size_t)j);
        if (t < 0 || t >= d->vocab)
            return diffu_err_set(err, "canvas state: position %d: token %d outside the vocabulary [0, %d)", j, t,
                                 d->vocab);
        int m = t == d->p.mask_id;
        if (m != (c == DIFFU_STEP_MASKED) || (c != DIFFU_STEP_MASKED && c != DIFFU_STEP_FILLED && (c < 0 || c >= step)))
            return diffu_err_set(err, "canvas state: position %d: token %d with commit step %d (step %d)", j, t, c, step);
        if (c == DIFFU_STEP_FILLED && !(stopped && d->p.early_stop))
            return diffu_err_set(err, "canvas state: position %d filled by an early stop that did not happen", j);
        masked += m;
        committed += c >= 0;
        filled += c == DIFFU_STEP_FILLED;
        if (m && first_masked == G) first_masked = j;
        if (c >= 0 && d->p.early_stop && first_end == G && is_end(d, t)) first_end = j;
    }
    if (committed != no)
        return diffu_err_set(err, "canvas state: %d committed positions but %d in the commit order", committed, no);
    if (d->mode == MODE_THRESHOLD && first_masked < (d->p.block_length > 0 ? block * d->p.block_length : 0))
        return diffu_err_set(err, "canvas state: position %d still masked before block %d", first_masked, block);
    if (d->mode == MODE_THRESHOLD && committed < step) /* every threshold step commits at least one */
        return diffu_err_set(err, "canvas state: %d commits in %d threshold steps", committed, step);
    if (!done && masked == 0) return diffu_err_set(err, "canvas state: nothing masked but not done");
    if (stopped && (!done || masked || !filled)) return diffu_err_set(err, "canvas state: an inconsistent early stop");
    uint8_t *seen = d->scratch; /* [G], unused between steps */
    memset(seen, 0, (size_t)G);
    for (int k = 0; k < no; k++) {
        int32_t j = get32(buf, ord0 + (size_t)k);
        if (j < 0 || j >= G || seen[j] || get32(buf, cs0 + (size_t)j) < 0)
            return diffu_err_set(err, "canvas state: commit order entry %d (%d) is not a committed position", k, j);
        if (k > 0 && get32(buf, cs0 + (size_t)j) < get32(buf, cs0 + (size_t)get32(buf, ord0 + (size_t)k - 1)))
            return diffu_err_set(err, "canvas state: commit order entry %d goes back in steps", k);
        seen[j] = 1;
    }
    for (int k = 0; k < S; k++) {
        int32_t c = get32(buf, sch0 + (size_t)k);
        if (c < 0 || c > d->p.block_length)
            return diffu_err_set(err, "canvas state: block schedule entry %d: %d of %d positions", k, c,
                                 d->p.block_length);
    }
    /* valid: apply */
    for (int j = 0; j < G; j++) {
        d->canvas[d->L + j] = get32(buf, tok0 + (size_t)j);
        d->commit_step[j] = get32(buf, cs0 + (size_t)j);
    }
    for (int k = 0; k < no; k++) d->order[k] = get32(buf, ord0 + (size_t)k);
    for (int k = 0; k < S; k++) d->bcount[k] = get32(buf, sch0 + (size_t)k);
    d->n_order = no;
    d->n_masked = masked;
    d->first_masked = first_masked;
    d->first_end = first_end;
    d->step = step;
    d->n_forward = fwd;
    d->block = block;
    d->bstep = bstep;
    d->done = done;
    d->stopped_early = stopped;
    return 0;
}

/* Dream's schedules ask for every masked position (the count falls about
 * linearly: G/2 on average), blocks for the current block's (B/2), origin
 * only for the positions it commits (G/steps). The sampler on the same rows
 * costs about as much as 390 more hidden dimensions of lm_head (measured on
 * the Qwen2.5-0.5B shape, one thread: 1.06 ms vs 2.45 ms per row at hidden
 * 896, i.e. 0.43 of lm_head; at DiffuCoder's hidden 3584 it is ~0.1). */
double diffu_denoise_head_rows(const diffu_denoise_params *p, double mean_tokens, int hidden) {
    double G = p->max_new_tokens, rows;
    if (p->block_length > 0) rows = p->block_length / 2.0;
    else if (p->alg == DIFFU_ALG_ORIGIN && p->threshold <= 0 && p->factor <= 0) rows = G / (p->steps > 0 ? p->steps : 1);
    else rows = G / 2.0;
    double f = rows / (mean_tokens > 0 ? mean_tokens : 1) * (1.0 + 390.0 / (hidden > 0 ? hidden : 896));
    return f > 1.0 ? 1.0 : f < 1e-3 ? 1e-3 : f;
}
