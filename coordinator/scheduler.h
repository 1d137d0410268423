/* scheduler.h — the coordinator of a distributed generation: continuous
 * admission, microbatch formation and the step protocol's messages.
 *
 * It owns the sequences' schedule, not their compute: the sequences are
 * denoising policies (denoise.h, one per sample of a request, borrowed); the
 * pipeline runs the forward and the sampler. The caller (rank 0) moves bytes:
 *
 *   while (!diffu_sched_done(s)) {
 *       while (a StepResult has arrived) diffu_sched_result(s, bytes);
 *       if (diffu_sched_next(s) >= 0)       // a microbatch may go now
 *           send every rank diffu_sched_control(s, its role), run its own part;
 *       else wait for a StepResult;
 *   }
 *   send every rank diffu_sched_shutdown(...)
 *
 * Scheduling:
 *   - in flight: at most `microbatches` (M) microbatches between dispatch and
 *     result; a microbatch is one denoising step of one or more sequences,
 *     packed ragged. Its size aims at ceil(admitted / M) sequences (capped by
 *     the forward plan), taken from the ready queue in the order the sequences
 *     became ready; a sequence becomes ready again as soon as its result is
 *     committed, so with M >= P (stages) every stage has work.
 *   - admission: sequences enter in request order while fewer than
 *     `max_active` are in flight (each holds a state slot on the stages until
 *     it finishes; then the next one enters).
 *   - phase spread (`spread` W > 1): at most max(M, ceil(max_active / W))
 *     admitted sequences may be in the first 1/W of their decoding (committed
 *     fraction < 1/W). A sequence's lm_head rows, and with them the last
 *     stage's share of the work, shrink as it fills; requests that all start
 *     together keep the last stage overloaded early and idle late. Spreading
 *     their phases evens the stages out (see docs/distributed.md).
 *   - steps needing no forward (Dream's first step at steps = max_new_tokens,
 *     origin steps that draw nothing) are committed on the spot.
 *   Results do not depend on any of this: the forward is batch-invariant and
 *   the random draws are addressed, not sequential (philox.h).
 *
 * Messages (proto/diffu.proto): one Control per microbatch, packed in up to
 * four variants by ROLE — what a stage does with it: stage 0 embeds
 * (DIFFU_ROLE_EMBED: canvas on a slot's first step, the positions committed
 * since its last step afterwards, a canvas hash), the last stage samples
 * (DIFFU_ROLE_HEAD: sampling parameters and RNG key on the first step,
 * positions and step number afterwards), stages in between get lengths only,
 * a single stage both. A microbatch's buffers stay valid until M + 1 further
 * microbatches have been formed (so the sends of one may still be in flight).
 *
 * Memory: everything is allocated at creation from the plan; next/result
 * allocate only when a message outgrows its buffer (early on). One thread.
 * Not collective. */
#ifndef DIFFU_SCHEDULER_H
#define DIFFU_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#include "denoise.h"
#include "log.h"

enum { DIFFU_ROLE_EMBED = 1, DIFFU_ROLE_HEAD = 2 };

typedef struct diffu_sched_opts {
    int microbatches;  /* M >= 1: most microbatches in flight */
    int max_active;    /* most sequences admitted at once (state slots per stage) */
    int spread;        /* phase-spread admission W >= 1 (1: off) */
    int mb_max_seqs;   /* one microbatch at most: sequences, */
    int mb_max_tokens; /* tokens (sum of canvas lengths), */
    int mb_max_rows;   /* lm_head rows */
    int max_seq;       /* longest canvas (0: mb_max_tokens); sizes the per-slot canvas shadows */
    /* Lazy sequences (seqs == NULL at creation): make(user, i) creates
     * sequence i when it is admitted (in order 0, 1, ...); the caller owns it
     * and may free it once it is finished (diffu_sched_result / next no longer
     * touch a finished sequence). NULL from make (the caller reports why):
     * that sequence counts as finished, nothing more is admitted, and
     * diffu_sched_failed() says so. A batch job of any size then holds only
     * max_active policies at a time. */
    diffu_denoise *(*make)(void *user, int i);
    void *make_user;
    /* Optional: sequence i has finished (d, its last commit done) — called
     * once per sequence, as soon as it finishes, from diffu_sched_next or
     * diffu_sched_result. The scheduler no longer touches d: the callback may
     * write its record and free it. */
    void (*finished)(void *user, int i, diffu_denoise *d);
    void *finished_user;
    /* An in-process backend (coordinator/local.h): no Control is packed; the
     * backend reads the microbatch with diffu_sched_members and answers with
     * diffu_sched_commit. (0: the step protocol's messages, for a pipeline.) */
    int structured;
    /* Optional: sequence i (d) is about to take its next step (before its
     * diffu_denoise_prepare; also for steps that need no forward). Tests
     * (--dump-origin-uniforms) read the step's draws here. */
    void (*stepping)(void *user, int i, const diffu_denoise *d);
    void *stepping_user;
    /* 1 (a pipeline, not structured): the stages hold a KV cache (proto
     * JobPlan.kv_cache). Every sequence gets its cache policy (kvpolicy.h,
     * its params' cache mode) at admission; each step names the rows the
     * policy chose (SeqStep.rows; a slot's first step computes every row);
     * the policy learns of the step when its result is committed. */
    int stage_cache;
} diffu_sched_opts;

typedef struct diffu_sched_stats {
    long microbatches;   /* dispatched */
    long seq_steps;      /* sequence-steps dispatched */
    long skipped_steps;  /* steps committed without a forward */
    long rows;           /* positions sampled */
    long tokens;         /* canvas tokens of the sequence-steps dispatched */
    long computed;       /* rows the forwards computed: tokens, or fewer with a stage cache */
    long committed;      /* positions unmasked */
    long finished;       /* sequences done */
    uint64_t ctrl_bytes[4]; /* packed Control bytes per role (one copy each) */
} diffu_sched_stats;

typedef struct diffu_sched diffu_sched;

/* seqs[n]: the sequences in admission order (borrowed; none finished), or
 * NULL with o->make (lazy). Their canvases must fit one microbatch and
 * max_seq (lazy ones: asserted at admission). NULL with err on a bad plan. */
diffu_sched *diffu_sched_create(const diffu_sched_opts *o, diffu_denoise *const *seqs, int n, diffu_err *err);
void diffu_sched_free(diffu_sched **s);
/* 1 once a lazy make() has returned NULL. */
int diffu_sched_failed(const diffu_sched *s);

/* Form the next microbatch if one may go now. Returns its id (0, 1, ...) and
 * packs its Control variants; -1 when none may go (M in flight, or no
 * sequence ready). */
long diffu_sched_next(diffu_sched *s);
/* The packed Control of the last formed microbatch for a role mask (0..3)
 * (not with o->structured). */
const uint8_t *diffu_sched_control(diffu_sched *s, int role, size_t *len);
/* The sequences of the last formed microbatch, in their order in it (each
 * prepared: diffu_denoise_positions / diffu_denoise_jobs are this step's,
 * n_want[k] of them); returns their count. Valid until the next
 * diffu_sched_next. */
int diffu_sched_members(const diffu_sched *s, diffu_denoise *const **seqs, const int **n_want);
/* Commit a packed StepResult; it must answer the oldest microbatch in flight.
 * 0, or -1 with err when it does not parse or does not match (a bug or a
 * foreign peer: the caller ends the job). */
int diffu_sched_result(diffu_sched *s, const uint8_t *msg, size_t len, diffu_err *err);
/* The same from (token, confidence) rows in the microbatch's order (an
 * in-process backend); n_rows must be the microbatch's (asserted). */
void diffu_sched_commit(diffu_sched *s, const diffu_sample *samples, int n_rows);
/* Admit nothing more (a stop request): done once the sequences admitted so
 * far have finished. */
void diffu_sched_close(diffu_sched *s);
/* A packed Shutdown Control (valid until the next call). */
const uint8_t *diffu_sched_shutdown(diffu_sched *s, const char *reason, int exit_code, size_t *len);

int diffu_sched_done(const diffu_sched *s);     /* every sequence (admitted, once closed) finished, nothing in flight */
int diffu_sched_inflight(const diffu_sched *s); /* microbatches */
int diffu_sched_active(const diffu_sched *s);   /* sequences admitted and not finished */
const diffu_sched_stats *diffu_sched_get_stats(const diffu_sched *s);

#endif
