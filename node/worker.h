/* worker.h — a rank's side of the step protocol of `diffu generate` under
 * mpirun (proto/diffu.proto, coordinator/scheduler.h): it executes the
 * coordinator's Control messages on this rank's stage.
 *
 * Per StepCommand (one microbatch):
 *   1. free the released slots; take each sequence's step into its slot:
 *      stage 0 (embedding) keeps every slot's canvas: the whole canvas on the
 *      slot's first step, then only the positions committed since its last
 *      step (checked against the coordinator's canvas hash); the last stage
 *      keeps every slot's sampling parameters and Philox key from its first
 *      step and gets the step number and the positions to sample;
 *   2. diffu_stage_step: embed or receive, this stage's layers, send or head;
 *   3. last stage: the lm_head rows (row p - 1 predicts position p, Dream's
 *      shift), the vocabulary-parallel sampler over the stage's TP ranks
 *      (sampling/sampler_vp.h), and the tp-0 rank packs (token, confidence)
 *      per position into a StepResult for rank 0.
 * A Shutdown ends the loop with its exit code.
 *
 * Errors: a command that does not parse, names a slot outside the plan, does
 * not match the stage's canvas (hash), or exceeds the forward plan is a bug of
 * the coordinator or a foreign peer: asserted (the job ends, naming this rank).
 *
 * Memory: slots (stage 0: max_active x max_seq tokens), batch buffers and the
 * sampler's are allocated at creation; executing a command allocates nothing
 * once the message buffers have grown to the largest message.
 * Threads: the model's pool; MPI from the calling thread only. */
#ifndef DIFFU_WORKER_H
#define DIFFU_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "comm.h"
#include "log.h"
#include "stage.h"

typedef struct diffu_worker_plan {
    int max_active;    /* state slots */
    int max_seq;       /* longest canvas */
    int mb_max_seqs, mb_max_tokens, mb_max_rows; /* one microbatch at most */
    int kv_cache;      /* 1: the stage holds a KV cache of max_active x max_seq (made by create);
                          the steps name their rows (proto SeqStep.rows) */
} diffu_worker_plan;

/* Where this rank's time went (seconds since creation) and what it did. */
typedef struct diffu_worker_stats {
    long microbatches, seq_steps, rows;
    double busy;       /* stage compute (tp all-reduce included) + sampler + message work */
    double idle;       /* waiting: for commands, activations, send buffers */
    double sample;     /* inside busy: the sampler (vocab reductions included) */
    double t_first, t_last; /* wall clock of the first command and of the shutdown */
} diffu_worker_stats;

typedef struct diffu_worker diffu_worker;

/* Live utilization: every DIFFU_LIVE_SECONDS (after a microbatch) the tp-0
 * rank of each stage but rank 0's sends rank 0 two floats, [busy seconds,
 * seconds since its first command] (diffu_comm_send_floats, tag
 * DIFFU_LIVE_TAG); rank 0 keeps a receive posted per stage (the job's
 * progress shows busy / elapsed per stage). On the Shutdown each of those
 * ranks sends a last report with elapsed -1, and rank 0 receives until it
 * has every stage's last one, so no report is left unmatched. */
#define DIFFU_LIVE_SECONDS 2.0
enum { DIFFU_LIVE_TAG = 20000 }; /* a float tag (comm.h); the logits command's are microbatch indices */

/* Local. The stage, comm and plan are borrowed. */
diffu_worker *diffu_worker_create(diffu_comm *c, diffu_stage *st, const diffu_worker_plan *plan, diffu_err *err);
void diffu_worker_free(diffu_worker *w);

/* Rank 0, when it is also the last stage's tp-0 rank (one stage): results go
 * to fn instead of to itself through MPI. msg is valid during the call. */
typedef void (*diffu_worker_result_fn)(void *user, const uint8_t *msg, size_t len);
void diffu_worker_set_local_result(diffu_worker *w, diffu_worker_result_fn fn, void *user);

/* Execute one packed Control (collective with the other ranks executing the
 * same microbatch). Returns 0 after a step, 1 after a Shutdown (*exit_code
 * set). */
int diffu_worker_exec(diffu_worker *w, const uint8_t *msg, size_t len, int *exit_code);

/* Ranks other than 0: receive (polling, with the communication deadline)
 * and execute Controls from rank 0 until the Shutdown; its exit code. Also
 * drains the stage. */
int diffu_worker_loop(diffu_worker *w);

/* Rank 0 after its last command: cancel pending receives, wait for sends. */
void diffu_worker_drain(diffu_worker *w);

const diffu_worker_stats *diffu_worker_get_stats(diffu_worker *w);

#endif
