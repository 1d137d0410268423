/* runtime.h — the distributed runtime's start-up, live utilization and
 * statistics, shared by `diffu generate` and `diffu logits` under mpirun
 * (the commands keep only their options and their own step protocol).
 *
 *   diffu_runtime_join     fingerprint -> layout -> handshake -> stage
 *                          communicators: every rank, before anything loads
 *   diffu_runtime_start    a generation run's stages from rank 0's JobPlan:
 *                          join, the memory check, this rank's shard + worker
 *   diffu_runtime_live_*   rank 0's view of each stage's utilization while a
 *                          run goes (the floats node/worker.h sends)
 *   diffu_runtime_report   every rank's RankStats (proto/diffu.proto) to rank
 *                          0, which prints the per-stage summary
 * Which calls are collective is said at each one. MPI through node/comm only. */
#ifndef DIFFU_RUNTIME_H
#define DIFFU_RUNTIME_H

#include <stdint.h>

#include "comm.h"
#include "diffu.pb-c.h"
#include "layout.h"
#include "log.h"
#include "worker.h"

typedef struct diffu_runtime_opts {
    const char *model;     /* checkpoint directory (every rank opens it) */
    int pp, tp;            /* the layout; < 1: the world size did not divide (refused with the reason) */
    int pp_given, tp_given; /* as the user gave them (0: not given), for messages */
    int threads;           /* per rank (the handshake compares them) */
    uint32_t vocab;        /* rank 0's vocab_size (0: not checked) */
    const diffu_layout_opts *layout; /* NULL: defaults */
} diffu_runtime_opts;

/* Collective (world): open the checkpoint (fingerprint, config), make the
 * layout, run the handshake (a local failure travels in it, so every rank
 * refuses together, rank 0 naming the first failing rank) and build the stage
 * communicators. 0 with *out (owned by the caller; diffu_layout_free), or -1
 * on every rank with err. */
int diffu_runtime_join(diffu_comm *c, const diffu_runtime_opts *o, diffu_layout **out, diffu_err *err);

/* A generation run's stages on this rank (diffu_runtime_start). */
typedef struct diffu_runtime_stages {
    diffu_layout *l;
    diffu_stage *st;
    diffu_worker *w;
    double t_load;         /* seconds loading this rank's shard */
} diffu_runtime_stages;

typedef struct diffu_runtime_start_opts {
    const char *model;
    int pp, tp, pp_given, tp_given; /* as diffu_runtime_opts */
    int threads;           /* per rank */
    int f32_weights;       /* widen the weights to fp32 at load (model/forward.h) */
    int verbose;           /* every rank prints its memory plan */
} diffu_runtime_start_opts;

/* Collective (world). plan: the JobPlan rank 0 broadcast (proto/diffu.proto:
 * microbatch capacities, state slots, the balance input, kv_cache), the same
 * on every rank. Makes the layout from it and joins (diffu_runtime_join),
 * refuses a plan that does not fit a rank's memory before loading
 * (diffu_stage_check_memory), loads this rank's shard and creates its worker;
 * every failure is agreed, so every rank returns -1 with the same err, else 0
 * with *out (free with diffu_runtime_stages_free). */
int diffu_runtime_start(diffu_comm *c, const Diffu__JobPlan *plan, const diffu_runtime_start_opts *o,
                        diffu_runtime_stages *out, diffu_err *err);
void diffu_runtime_stages_free(diffu_runtime_stages *s);

/* Rank 0: each stage's busy / elapsed while a run goes. Local (receives
 * posted to each stage's tp-0 rank). */
typedef struct diffu_runtime_live diffu_runtime_live;
diffu_runtime_live *diffu_runtime_live_start(diffu_comm *c, const diffu_layout *l);
/* Take the reports that arrived; stage 0 from rank 0's own worker. Returns
 * util[n_stages] (< 0: not heard yet), valid until the next call. */
const double *diffu_runtime_live_poll(diffu_runtime_live *lu, diffu_worker *w);
/* After the Shutdown went out: every stage's reports up to its last one, so
 * none is left unmatched; frees lu. */
void diffu_runtime_live_stop(diffu_runtime_live **lu);

/* What rank 0 adds to its own statistics. */
typedef struct diffu_runtime_run {
    double wall;          /* the run's wall time on rank 0 */
    double coord;         /* rank 0: coordinator seconds (policy, packing, results) */
    double result_wait;   /* rank 0: waiting for step results with nothing to send */
    long microbatches, seq_steps; /* rank 0: the scheduler's counts */
} diffu_runtime_run;

/* Collective (world): this rank's line (where its time and bytes went), its
 * RankStats to rank 0, and on rank 0 the per-stage summary. run: rank 0's
 * figures (ignored elsewhere). */
void diffu_runtime_report(diffu_comm *c, const diffu_layout *l, diffu_worker *w, const diffu_runtime_run *run);

#endif
