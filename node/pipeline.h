/* pipeline.h — the MPI stages as a backend of the coordinator's loop
 * (proto/wire.h diffu_wire_backend; coordinator/engine.h runs the loop): what
 * rank 0 does with the step protocol's messages under mpirun.
 *
 *   submit    each other rank gets the Control of its role (one send per
 *             rank, a ring of M + 1 send buffers: the sends of microbatch id
 *             - M - 1 must have reached it first), then rank 0 runs its own
 *             part (stage 0) with node/worker.h;
 *   poll      the StepResult from the last stage's tp-0 rank (MPI), or, when
 *             rank 0 is that rank (one stage), the one its own worker made;
 *   shutdown  the Shutdown to every rank (after every microbatch: the same
 *             tag, so it cannot overtake them), rank 0's worker drained, the
 *             live reports collected;
 *   util      each stage's busy / elapsed (node/runtime.h's live reports);
 *   fail      MPI_Abort through node/comm with the message.
 * Rank 0 only; the other ranks run diffu_worker_loop. The comm, layout and
 * worker are borrowed. MPI through node/comm only. */
#ifndef DIFFU_PIPELINE_H
#define DIFFU_PIPELINE_H

#include "comm.h"
#include "layout.h"
#include "wire.h"
#include "worker.h"

typedef struct diffu_pipeline diffu_pipeline;

/* microbatches: the most in flight (the scheduler's M). */
diffu_pipeline *diffu_pipeline_create(diffu_comm *c, const diffu_layout *l, diffu_worker *w, int microbatches);
/* Waits for every send still in flight. */
void diffu_pipeline_free(diffu_pipeline **p);
/* The backend (valid while p lives). */
const diffu_wire_backend *diffu_pipeline_backend(diffu_pipeline *p);

#endif
