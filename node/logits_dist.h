/* logits_dist.h — `diffu logits --pp P --tp T` under mpirun: the same output
 * file as the single-process `diffu logits`, computed by the pipeline
 * (node/stage.h), for testing the distributed forward.
 *
 *   1. every rank opens the checkpoint (headers only) for its fingerprint and
 *      config, makes the layout, and joins the handshake (runtime.h);
 *   2. rank 0 reads the ids and broadcasts them as a diffu.StepCommand (one
 *      SeqStep per sequence: length + tokens; rows empty = every row, unshifted);
 *   3. every rank loads only its own slices, logs its memory, and the
 *      sequences go through the pipeline in `microbatches` groups;
 *   4. the last stage's TP ranks send their vocabulary slices of the logits to
 *      rank 0, which assembles [N x vocab] float32 and writes it to `out`.
 *      Moving full logits is for this debug command only: generation samples
 *      on the last stage.
 * Collective (world): MPI is initialized and finalized inside. Memory: the
 * ids, the microbatches and (rank 0) the logits, for this one call. */
#ifndef DIFFU_LOGITS_DIST_H
#define DIFFU_LOGITS_DIST_H

#include "log.h"

typedef struct diffu_logits_dist_opts {
    const char *model, *ids, *out; /* checkpoint dir; int32 ids file (rank 0 reads it); output file (rank 0) */
    const int *lengths;            /* [n_lengths] sequence lengths summing to the ids (borrowed), or NULL: one */
    int n_lengths;
    int pp, tp, microbatches, threads, f32, verbose;
    double timeout;                /* > 0: the communication timeout (else DIFFU_COMM_TIMEOUT or 300 s) */
} diffu_logits_dist_opts;

/* 0, or -1 with err on every rank (the same message), which rank 0 has
 * printed as "diffu logits: error: ..." before MPI ended (every rank when MPI
 * did not start). */
int diffu_logits_dist_run(const diffu_logits_dist_opts *o, diffu_err *err);

#endif
