/* sampler.h — the per-row sampler: one logits row -> (token, confidence).
 *
 * A pure function of (logits row, the request's sampling parameters, one
 * Philox address). It is Dream's `sample_tokens` (generation_utils.py), in
 * the reference's order:
 *   z = logits / temperature            (only if temperature > 0)
 *   top-p: in descending order (ties: lower id first), cumulative softmax,
 *          drop the tokens after the first one whose cumulative mass exceeds
 *          top_p (the first token past the threshold is kept) (0 < top_p < 1);
 *          found by partitioning, not a full sort: O(V) per row
 *   top-k: drop the tokens whose z is below the k-th largest (ties kept)
 *   p = softmax(z) over the FULL vocabulary (dropped tokens have p = 0)
 *   token: temperature > 0 -> one multinomial draw (inverse CDF over token ids
 *          with one uniform from the Philox address); else argmax (lowest id on
 *          ties)
 *   confidence: PROB        p[token]                 (maskgit_plus, origin, threshold)
 *               MARGIN      p(1st) - p(2nd)          (topk_margin)
 *               NEG_ENTROPY sum_v p_v log(p_v + 1e-10) (entropy)
 * Everything after the float32 logits is computed in double.
 * ban_token (>= 0) is removed before everything else (its p is 0); the policy
 * uses it where a committed <|mask|> would stall a loop (threshold decoding).
 *
 * Where it runs: next to the logits. In one process (the local backend) that is the
 * same process; in the pipeline it is the last stage, so only (token,
 * confidence) per masked position travels back to the coordinator, never a
 * vocabulary-sized row.
 *
 * Vocab-parallel variant: sampling/sampler_vp.h. A rank holding the
 * vocabulary slice [v0, v1) computes slice-local partials and the row is
 * finished after a few small merges, all in global token-id order (max and
 * argmax; the top-p / top-k cuts by a distributed quickselect; sum exp and
 * top-2; the multinomial draw by slice masses, one uniform per row, the slice
 * whose cumulative mass passes u * Z finishing the inverse CDF locally; the
 * entropy partials). The token and confidence are then the same as this
 * sampler's (up to summation order, i.e. ~1e-16 relative); with one slice it
 * calls this sampler.
 *
 * Memory: a diffu_sampler_scratch holds 32 bytes per vocabulary entry; a
 * diffu_sampler holds one per thread of its pool, allocated at creation. No
 * allocation per row. Threads: diffu_sampler_run spreads rows over the pool.
 * Not collective. */
#ifndef DIFFU_SAMPLER_H
#define DIFFU_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "philox.h"

struct diffu_pool;

typedef enum {
    DIFFU_CONF_PROB = 0,        /* probability of the chosen token */
    DIFFU_CONF_MARGIN = 1,      /* top-1 minus top-2 probability */
    DIFFU_CONF_NEG_ENTROPY = 2, /* sum p log(p + 1e-10) (<= 0) */
} diffu_conf_kind;

typedef struct diffu_sampler_params {
    double temperature; /* <= 0: greedy (argmax); > 0: logits / T and a multinomial draw */
    double top_p;       /* nucleus mass in (0, 1); 0 or >= 1: off */
    int top_k;          /* keep the k largest (ties kept); 0: off */
    diffu_conf_kind conf;
    int32_t ban_token;  /* never chosen (probability 0), or -1 */
} diffu_sampler_params;

/* {temperature 0, top_p off, top_k off, PROB, no ban} */
void diffu_sampler_params_default(diffu_sampler_params *p);

/* One row's work order. params is borrowed (lives in the request's state). */
typedef struct diffu_sample_job {
    const diffu_sampler_params *params;
    diffu_philox_key key;
    diffu_philox_ctr ctr; /* the multinomial draw's address (read only when temperature > 0) */
} diffu_sample_job;

typedef struct diffu_sample {
    int32_t token;
    float pad_;  /* keeps the struct 16 bytes */
    double conf;
} diffu_sample;

/* ---- one row, one thread ------------------------------------------------- */

typedef struct diffu_sampler_scratch diffu_sampler_scratch;
diffu_sampler_scratch *diffu_sampler_scratch_create(int vocab);
void diffu_sampler_scratch_free(diffu_sampler_scratch **s);

/* logits: [vocab] float32 (unshifted raw lm_head output of the predicting
 * row). vocab must equal the scratch's. Finite logits are required (a NaN is
 * a bug upstream: asserted). */
void diffu_sampler_row(const float *logits, int vocab, const diffu_sample_job *job, diffu_sampler_scratch *s,
                      diffu_sample *out);

/* ---- many rows, threaded -------------------------------------------------- */

/* Dream's logit shift: the forward row (within a sequence) whose logits
 * predict canvas position p is p - 1; position 0 is predicted by row 0. */
static inline int diffu_sampler_row_of(int p) { return p > 0 ? p - 1 : 0; }

typedef struct diffu_sampler diffu_sampler;

/* pool: borrowed (e.g. diffu_model_pool); NULL runs rows on the caller only. */
diffu_sampler *diffu_sampler_create(int vocab, struct diffu_pool *pool);
void diffu_sampler_free(diffu_sampler **s);

/* out[r] = sample of row r: logits + r * ld (ld >= vocab floats), jobs[r].
 * Rows are independent; the result does not depend on n_rows, the row order or
 * the thread count. */
void diffu_sampler_run(diffu_sampler *s, int n_rows, const float *logits, size_t ld, const diffu_sample_job *jobs,
                       diffu_sample *out);

#endif
