/* local.h — the in-process backend of the coordinator's loop
 * (coordinator/engine.h): a microbatch of denoising policies (denoise.h),
 * each prepared for its next step, through one forward and the sampler in
 * this process. What a pipeline does with the step protocol's messages, done
 * here on the policies themselves:
 *   1. the canvases back to back (ragged, no padding), lm_head only on the
 *      rows that predict the wanted positions (Dream's logit shift: position
 *      p is predicted by row p - 1, position 0 by row 0;
 *      sampling/sampler.h diffu_sampler_row_of);
 *   2. the sampler on those rows (threaded on the model's pool), each row with
 *      its policy's job (parameters, Philox key and address);
 *   3. out: one (token, confidence) per wanted position, in the microbatch's
 *      order (what diffu_sched_commit takes).
 *
 * Memory: every buffer (and the KV cache) is allocated by diffu_local_create
 * from the plan; a step allocates nothing, except a cache policy's [canvas]
 * scratch once per request, at its first step. The model must have been loaded with max_tokens,
 * max_seq, max_rows and max_seqs at least the plan's (checked at creation)
 * and hold the whole vocabulary. The model is borrowed. One thread (the
 * forward and the sampler use the model's pool). Not collective. */
#ifndef DIFFU_LOCAL_H
#define DIFFU_LOCAL_H

#include "denoise.h"
#include "forward.h"
#include "log.h"

typedef struct diffu_local_plan {
    int max_seqs;   /* sequences in one microbatch */
    int max_tokens; /* sum of their canvas lengths */
    int max_seq;    /* longest canvas */
    int max_rows;   /* wanted positions in one microbatch */
    /* > 0: hold a KV cache (model/kvcache.h) of this many requests (the
     * scheduler's max_active: every sequence in flight has a slot from its
     * first step to diffu_local_release) of max_seq positions each, and run
     * every forward through it, each sequence's rows chosen by its params'
     * cache mode (coordinator/kvpolicy.h; mode none: every row, a full pass,
     * the same logits as without a cache). 0: no cache; a sequence asking
     * for one is refused by diffu_local_step. */
    int cache_slots;
} diffu_local_plan;

typedef struct diffu_local_stats {
    long forwards;             /* microbatches run */
    long rows, tokens;         /* lm_head rows, tokens (rows) through the forward */
    double flops;              /* of the forwards run (diffu_forward_flops / diffu_forward_kv_flops) */
    double t_forward, t_sample; /* seconds */
} diffu_local_stats;

typedef struct diffu_local diffu_local;

/* NULL with err when the model's plan is smaller than this one or the model
 * holds a vocabulary slice. */
diffu_local *diffu_local_create(diffu_model *m, const diffu_local_plan *plan, diffu_err *err);
void diffu_local_free(diffu_local **l);

/* Sequence d has finished (or is abandoned): its cache slot and policy are
 * freed (no-op without a cache, or for a sequence that never stepped).
 * Must be called before d is freed (the engine does, from the scheduler's
 * finished callback). */
void diffu_local_release(diffu_local *l, const diffu_denoise *d);

/* Replace the forward (tests; not with a KV cache): fn gets the batch built here and fills logits
 * [b->n_rows x vocab]; 0 or -1 with err. NULL restores diffu_forward. */
typedef int (*diffu_local_forward_fn)(void *user, const diffu_batch *b, float *logits, diffu_err *err);
void diffu_local_set_forward(diffu_local *l, diffu_local_forward_fn fn, void *user);

/* One step of the n prepared policies ds[], n_want[k] wanted positions each
 * (diffu_sched_members): out receives their samples, each policy's rows in
 * turn. 0, or -1 with err (forward). */
int diffu_local_step(diffu_local *l, diffu_denoise *const *ds, const int *n_want, int n, diffu_sample *out,
                     diffu_err *err);
const diffu_local_stats *diffu_local_get_stats(const diffu_local *l);

#endif
