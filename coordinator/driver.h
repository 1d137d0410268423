/* driver.h — the single-process denoising loop: forward -> sampler -> policy
 * for a ragged batch of canvases (denoise.h), each possibly at its own step
 * and with its own parameters.
 *
 * One driver step advances every active canvas by exactly one of its own
 * steps:
 *   1. each canvas says which positions need (token, confidence)
 *      (diffu_denoise_prepare); canvases needing none skip the forward;
 *   2. one forward over the others, back to back (no padding), with lm_head
 *      only on the rows that predict those positions (Dream's logit shift:
 *      position p is predicted by row p - 1, position 0 by row 0);
 *   3. the sampler on those rows (threaded on the model's pool);
 *   4. each canvas commits (diffu_denoise_commit); finished canvases leave.
 * The distributed runtime replaces 2-3 by the pipeline (the sampler runs on
 * the last stage) and keeps 1 and 4 on the coordinator.
 *
 * Memory: every buffer is allocated by diffu_driver_create from the plan;
 * steps allocate nothing. The model must have been loaded with max_tokens,
 * max_seq and max_rows at least the plan's (checked at creation).
 * Ownership: canvases are borrowed (the caller frees them after the driver
 * is done with them); the model is borrowed. One thread. Not collective. */
#ifndef DIFFU_DRIVER_H
#define DIFFU_DRIVER_H

#include "denoise.h"
#include "forward.h"
#include "log.h"

typedef struct diffu_driver_plan {
    int max_canvases; /* canvases in flight at once */
    int max_tokens;   /* sum of their canvas lengths (prompt + max_new_tokens) */
    int max_seq;      /* longest canvas */
    int max_rows;     /* sum of their max_new_tokens: the most rows one step can ask for */
} diffu_driver_plan;

typedef struct diffu_driver_stats {
    long steps;       /* driver steps */
    long forwards;    /* steps that ran a forward */
    long rows;        /* lm_head rows computed */
    long tokens;      /* tokens through the forward */
    long committed;   /* positions unmasked (commits and early-stop fills) */
    double t_forward, t_sample, t_policy; /* seconds */
} diffu_driver_stats;

typedef struct diffu_driver diffu_driver;

/* Returns NULL with err if the model's plan is smaller than this plan. */
diffu_driver *diffu_driver_create(diffu_model *m, const diffu_driver_plan *plan, diffu_err *err);
void diffu_driver_free(diffu_driver **dr);

/* Admit a canvas (not finished). -1 with err when it does not fit the plan
 * next to the canvases already in flight. */
int diffu_driver_add(diffu_driver *dr, diffu_denoise *d, diffu_err *err);
/* Canvases in flight (admitted, not finished). */
int diffu_driver_active(const diffu_driver *dr);
/* Replace the forward (tests; a forward that runs elsewhere). fn gets the
 * batch the driver built and fills logits [b->n_rows x vocab]; returns 0 or
 * -1 with err. NULL restores diffu_forward on the model. */
typedef int (*diffu_driver_forward_fn)(void *user, const diffu_batch *b, float *logits, diffu_err *err);
void diffu_driver_set_forward(diffu_driver *dr, diffu_driver_forward_fn fn, void *user);

/* One step of every canvas in flight. 0, or -1 with err (forward failure). */
int diffu_driver_step(diffu_driver *dr, diffu_err *err);
const diffu_driver_stats *diffu_driver_get_stats(const diffu_driver *dr);

#endif
