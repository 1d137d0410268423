/* denoise.h — the denoising POLICY of one canvas (one sample of one request).
 *
 * It owns the canvas (prompt + max_new_tokens masks), the masked set, the step
 * counter, the request's parameters and the step at which every position was
 * committed. Each step it says which masked positions need a (token,
 * confidence) pair, and from those pairs decides which positions to commit.
 * It never sees logits and never touches the model: the engine (engine.h: its local
 * backend, or the pipeline) runs the forward and the sampler (sampler.h).
 *
 * Algorithms (default: exact Dream `_sample`, generation_utils.py):
 *   timesteps = linspace(1, eps, steps + 1) in float32 (torch's formula);
 *   step i, t = ts[i], s = ts[i+1]:
 *   origin       each masked position is committed with probability 1 - s/t
 *                (1 on the last step), its token sampled from its distribution;
 *   maskgit_plus / topk_margin / entropy
 *                n = int(masked * (1 - s/t)) (float32), all on the last step;
 *                commit the n most confident positions (ties: lower position)
 *                or, with alg_temp > 0, n positions drawn without replacement
 *                from softmax(confidence / alg_temp) (Gumbel-top-n, which is
 *                the same distribution as torch.multinomial without replacement).
 *   Committed tokens are never re-masked. A committed token equal to
 *   <|mask|> leaves its position masked, exactly like Dream.
 * Beyond the reference (per request, off by default):
 *   threshold tau   (Fast-dLLM, Wu et al. 2025, arXiv 2505.22618): every step,
 *                   sample all eligible masked positions, commit the most
 *                   confident one and every other with p(token) >= tau. The
 *                   confidence is always the chosen token's probability
 *                   (Fast-dLLM's), whatever alg says; <|mask|> is banned so the
 *                   loop, which runs until nothing is masked, always progresses.
 *   factor f        (Fast-dLLM, the factor rule): with confidences sorted
 *                   c1 >= c2 >= ..., rank n passes if c_n >= 1 - f / (n + 1);
 *                   commit the passing prefix, at least one.
 *   block_length B  (semi-autoregressive, LLaDA, Nie et al. 2025, arXiv
 *                   2502.09992; Fast-dLLM block_length): the generated tokens
 *                   (not the prompt) are cut into blocks of B; only the current
 *                   block's positions are eligible. With a step schedule, each
 *                   block gets steps / num_blocks steps and LLaDA's count:
 *                   masked // spb per step, one more in the first masked % spb
 *                   steps (so steps = max_new_tokens commits exactly one token
 *                   per step: top-1 decoding). With threshold/factor the block
 *                   advances when it has no masks left.
 *   early_stop      once an end token is committed and every position left of
 *                   it is filled, the masked positions right of it are filled
 *                   with that end token and the request ends.
 * Random draws are Philox addresses (philox.h) keyed by (seed, request,
 * sample, step, position, purpose): results do not depend on the batch, and
 * the RNG carries no state, so a canvas is fully described by (parameters,
 * canvas, commit steps, step counter, current block) — what a resume has to
 * save: diffu_denoise_save / diffu_denoise_restore below (in-flight
 * checkpoints, coordinator/job_inflight.h).
 *
 * Step protocol (the engine's scheduler calls, per active canvas, once per step):
 *   n = diffu_denoise_prepare(d);          positions needing (token, confidence)
 *   diffu_denoise_positions(d) -> [n] canvas positions, ascending; the row
 *       that predicts position p is row p - 1 of the canvas (row 0 for p = 0:
 *       Dream's logit shift)
 *   diffu_denoise_jobs(d)      -> [n] sampler jobs
 *   [forward the canvas with lm_head on those rows; run the sampler]
 *   diffu_denoise_commit(d, samples[n]);   decide, write, advance the step
 * n = 0 means no forward is needed for this canvas this step (e.g. Dream's
 * first step with steps = max_new_tokens commits nothing; origin steps where
 * no position is drawn): commit(d, NULL) still advances the step.
 *
 * Memory: every buffer is allocated by diffu_denoise_create from the known
 * sizes; prepare/commit allocate nothing. One canvas is used by one thread at
 * a time. Not collective. */
#ifndef DIFFU_DENOISE_H
#define DIFFU_DENOISE_H

#include <stdint.h>

#include "arness.h"
#include "log.h"
#include "sampler.h"

typedef enum {
    DIFFU_ALG_ORIGIN = 0,
    DIFFU_ALG_MASKGIT_PLUS = 1,
    DIFFU_ALG_TOPK_MARGIN = 2,
    DIFFU_ALG_ENTROPY = 3,
} diffu_alg;

/* "origin", "maskgit_plus", "topk_margin", "entropy"; -1 if unknown. */
int diffu_denoise_alg_parse(const char *s);
const char *diffu_denoise_alg_name(diffu_alg a);

#define DIFFU_MAX_END_IDS 4

typedef struct diffu_denoise_params {
    int max_new_tokens;  /* generated positions */
    int steps;           /* Dream steps (unused by threshold / factor decoding) */
    diffu_alg alg;
    double eps;          /* timesteps end; Dream default 1e-3 */
    double temperature;  /* 0: greedy */
    double top_p;        /* 0 or 1: off */
    int top_k;           /* 0: off */
    double alg_temp;     /* 0: top-n by confidence */
    uint64_t seed;
    double threshold;    /* > 0: Fast-dLLM confidence threshold tau in (0, 1] */
    double factor;       /* > 0: Fast-dLLM factor rule */
    int block_length;    /* > 0: semi-autoregressive blocks over the generated tokens */
    int early_stop;      /* 1: stop at a committed end token (see above) */
    int n_end;           /* end tokens for early_stop */
    int32_t end_ids[DIFFU_MAX_END_IDS];
    int32_t mask_id;     /* <|mask|> */
    /* Approximate KV cache (coordinator/kvpolicy.h: which rows each forward
     * computes; the backend runs them): a diffu_cache_mode (0: none, exact)
     * and its refresh period. The policy here ignores both: they are the
     * request's, carried to the backend and into the record. */
    int cache;
    int cache_refresh;
} diffu_denoise_params;

/* Dream's defaults: steps = max_new_tokens = 0 (caller sets), alg entropy,
 * eps 1e-3, temperature 0, everything beyond the reference off, mask_id -1. */
void diffu_denoise_params_default(diffu_denoise_params *p);

/* 0, or -1 with one line naming the parameter (user errors: bad values,
 * incompatible combinations, ids outside the vocabulary). */
int diffu_denoise_params_check(const diffu_denoise_params *p, int vocab, diffu_err *err);

typedef struct diffu_denoise diffu_denoise;

/* prompt: [prompt_len] ids (copied; prompt_len may be 0). request/sample
 * address the random draws (sample < 2^24). Returns NULL with err on a user
 * error (params or prompt ids out of range). */
diffu_denoise *diffu_denoise_create(const diffu_denoise_params *p, int vocab, const int32_t *prompt, int prompt_len,
                                    uint32_t request, uint32_t sample, diffu_err *err);
/* Frees and sets *d to NULL; NULL is a no-op. */
void diffu_denoise_free(diffu_denoise **d);

/* ---- the step protocol ---- */
int diffu_denoise_prepare(diffu_denoise *d);
const int32_t *diffu_denoise_positions(const diffu_denoise *d);
const diffu_sample_job *diffu_denoise_jobs(const diffu_denoise *d);
void diffu_denoise_commit(diffu_denoise *d, const diffu_sample *samples);
int diffu_denoise_done(const diffu_denoise *d);

/* For tests: the float32 uniforms origin compares with 1 - s/t at the next
 * step, one per masked position in ascending order (what Dream's
 * torch.rand(*x0.shape) supplies); returns their count (0 unless origin). */
int diffu_denoise_origin_uniforms(const diffu_denoise *d, float *u /* [max_new_tokens] */);

/* ---- results ---- */
const diffu_denoise_params *diffu_denoise_get_params(const diffu_denoise *d);
/* The whole canvas, [*len = prompt_len + max_new_tokens]. */
const int32_t *diffu_denoise_canvas(const diffu_denoise *d, int *len);
int diffu_denoise_prompt_len(const diffu_denoise *d);
int diffu_denoise_vocab(const diffu_denoise *d); /* the vocab it was created with */
/* [max_new_tokens]: the step (0-based) at which each generated position was
 * committed; DIFFU_STEP_MASKED if still masked, DIFFU_STEP_FILLED if filled by
 * early stop. */
#define DIFFU_STEP_MASKED (-1)
#define DIFFU_STEP_FILLED (-2)
const int32_t *diffu_denoise_commit_steps(const diffu_denoise *d);
/* The decoding order: [*n] generated indices in commit order. */
const int32_t *diffu_denoise_order(const diffu_denoise *d, int *n);
int diffu_denoise_steps_taken(const diffu_denoise *d);
int diffu_denoise_forwards(const diffu_denoise *d); /* steps that needed logits */
int diffu_denoise_masked(const diffu_denoise *d);   /* masked generated positions left */
int diffu_denoise_stopped_early(const diffu_denoise *d);
/* Number of generated positions up to and including the first end token
 * (all of them when there is none). */
int diffu_denoise_answer_len(const diffu_denoise *d);
/* lm_head rows per canvas token, averaged over a sequence's steps, plus the
 * sampler's cost on those rows: what the last stage's head costs relative to
 * a layer (node/layout.h's balance input), for parameters p, canvases of
 * mean_tokens tokens and a model of this hidden size. In (0, 1]. */
double diffu_denoise_head_rows(const diffu_denoise_params *p, double mean_tokens, int hidden);
uint32_t diffu_denoise_request(const diffu_denoise *d);
uint32_t diffu_denoise_sample(const diffu_denoise *d);
void diffu_denoise_arness(const diffu_denoise *d, diffu_arness *out);

/* ---- in-flight checkpoints ----
 * The state of a canvas between two steps: the generated
 * positions' tokens and commit steps, the commit order, the step counter, the
 * current block and the block schedule's counts — everything that is not a
 * function of (params, vocab, prompt, request, sample), which the caller keeps
 * and passes to diffu_denoise_create again before restoring. Because the random
 * draws are addressed, not sequential, a restored canvas continues with exactly
 * the commits the uninterrupted one would make.
 * Format (little-endian int32 words): "DNS1", G, steps taken, forwards,
 * commits, block, block step, schedule length S, done, stopped early;
 * tokens[G]; commit steps[G]; order[commits]; schedule[S]. */
size_t diffu_denoise_state_bytes(const diffu_denoise *d);
/* Writes diffu_denoise_state_bytes(d) bytes into buf. A prepared canvas (its
 * step in flight: asked for samples, not yet committed) saves the state
 * before that step; the restored canvas takes the step again. */
void diffu_denoise_save(const diffu_denoise *d, uint8_t *buf);
/* d: fresh from diffu_denoise_create with the same arguments as the saved
 * canvas (no step taken). 0, or -1 with one line naming the first field that
 * does not describe a reachable state of this canvas in flight (a finished
 * canvas is refused: there is nothing to continue) (sizes, ids outside the
 * vocabulary, a commit step after the step counter, an order that is not the
 * committed positions, a schedule that does not match the mode); then d is
 * unchanged. Everything derived (masked count, first masked, first end token)
 * is recomputed from the canvas, not read. */
int diffu_denoise_restore(diffu_denoise *d, const uint8_t *buf, size_t n, diffu_err *err);

#endif
