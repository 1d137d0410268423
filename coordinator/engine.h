/* engine.h — the coordinator's loop, the only one: `diffu generate` in one
 * process and rank 0's under mpirun alike. The scheduler (scheduler.h) admits
 * the sequences (denoising policies, denoise.h) and forms microbatches; a
 * backend runs each microbatch's forward + sampler; the results are
 * committed; a finished sequence leaves through the scheduler's callback
 * (diffu_sched_opts.finished) the moment it finishes.
 *
 * Backends (exactly one):
 *   local     a model in this process (local.h): the microbatch's policies
 *             through one forward and the sampler, no messages; M = 1;
 *   pipeline  a diffu_wire_backend (proto/wire.h; node/pipeline.h is the MPI
 *             stages): each microbatch's packed Control per role goes out, up
 *             to M in flight, StepResults come back, the Shutdown at the end.
 * The tokens do not depend on the backend or on the packing: the forward is
 * batch-invariant and the random draws are addressed by (request, sample,
 * step, position) (sampling/philox.h).
 *
 * Stopping (opts.stop, polled every round): 1 admits nothing more and runs
 * the sequences admitted so far to their end (each leaves through the
 * callback); 2 (or a lazy make() that failed) sends nothing more, takes the
 * results in flight and returns, the unfinished sequences abandoned.
 *
 * Memory: the scheduler's and the backend's buffers are allocated at
 * creation; the loop allocates nothing once message buffers have grown.
 * Ownership: the sequences and the backend are borrowed (as the scheduler's).
 * One thread. Not collective (the pipeline backend's messages are). */
#ifndef DIFFU_ENGINE_H
#define DIFFU_ENGINE_H

#include "denoise.h"
#include "forward.h"
#include "log.h"
#include "scheduler.h"
#include "wire.h"

typedef struct diffu_engine_stats {
    diffu_sched_stats sched;  /* microbatches, sequence-steps, rows, tokens, commits, finished */
    double wall;              /* seconds in diffu_engine_run until the last result */
    double coord;             /* the loop's own work: admission, microbatches, messages, commits */
    double wait;              /* blocked for a result with nothing to send (pipeline) */
    double forward, sample;   /* the local backend's forward and sampler */
    double flops;             /* the local backend's forwards' FLOPs */
    long computed;            /* rows through the forward (fewer than sched.tokens with a KV
                                 cache: only the rows the policies chose) */
} diffu_engine_stats;

typedef struct diffu_engine diffu_engine;

typedef struct diffu_engine_opts {
    /* The scheduler's plan and callbacks (make: lazy sequences; finished;
     * stepping). `structured` is set by the engine from the backend. With
     * the local backend, microbatches must be 1. */
    diffu_sched_opts sched;
    diffu_model *model;              /* the local backend (borrowed) */
    const diffu_wire_backend *wire;  /* or the pipeline (borrowed) */
    /* 1: a KV cache of sched.max_active requests of sched.max_seq positions,
     * so requests may ask for an approximate cache (their params' cache
     * mode); 0: every request must use none. The local backend holds it
     * (coordinator/local.h); with a wire backend the stages hold it (the
     * JobPlan said so) and the scheduler names each step's rows
     * (diffu_sched_opts.stage_cache). */
    int kv_cache;
    /* Optional hooks, each given user: */
    int (*stop)(void *user);         /* 0 run; 1 admit nothing more; 2 abandon (above) */
    /* after every round of the loop (something was sent or committed); util:
     * each stage's busy / elapsed when the backend reports it (NULL else),
     * refreshed about 4 times a second */
    void (*tick)(void *user, const diffu_engine *e, int n_util, const double *util);
    void (*stepped)(void *user, const diffu_engine *e); /* after every committed microbatch */
    void *user;
    double log_seconds;              /* > 0: a progress line on stderr this often */
} diffu_engine_opts;

/* seqs[n] as diffu_sched_create (NULL with o->sched.make: lazy). NULL with
 * err on a bad plan or a model too small for it. */
diffu_engine *diffu_engine_create(const diffu_engine_opts *o, diffu_denoise *const *seqs, int n, diffu_err *err);
void diffu_engine_free(diffu_engine **e);

/* Run until every sequence has finished (or a stop, above), then the
 * pipeline's Shutdown. 0, or -1 with err (the local forward failed; a
 * pipeline's failures end the job through its fail()). */
int diffu_engine_run(diffu_engine *e, diffu_err *err);

const diffu_engine_stats *diffu_engine_get_stats(const diffu_engine *e);
/* 1 once a lazy make() has returned NULL (diffu_sched_failed). */
int diffu_engine_failed(const diffu_engine *e);
/* The local backend (tests: diffu_local_set_forward); NULL with a pipeline. */
struct diffu_local *diffu_engine_local(diffu_engine *e);

#endif
