/* sampler_vp.h — the vocabulary-parallel sampler of the last pipeline stage:
 * the T tensor-parallel ranks of that stage each hold a vocabulary slice
 * [v0, v1) of every wanted row's logits, and together they produce for each
 * row the (token, confidence) that diffu_sampler_row (sampler.h) gives on the
 * whole row. Only per-row statistics move between them; the logits never do.
 *
 * Why reductions and not an all-to-all: an all-to-all that gives each rank
 * whole rows moves (T-1)/T of the logits, R x V x 4 bytes per microbatch
 * (DiffuCoder: 152,064 floats per row; 500 rows = 300 MB), to save a few
 * reductions of R x 3 doubles. Here every phase below ends in ONE allgather of
 * a few doubles per row (all rows of the call batched together), and every
 * rank then merges the gathered values in tp order, so all ranks take the same
 * decisions without a broadcast:
 *   R1  per slice: max z and its first id          -> m, argmax (lowest id on ties)
 *   top-p (rows with 0 < top_p < 1): per slice sum exp(z - m) -> Z; then the
 *       cut of Dream's top_p_logits by a distributed weighted quickselect over
 *       the slices' candidates (exp(z - m) >= (1 - top_p) Z / 2V, as in
 *       sampler.c): each round, the rank with the most undecided candidates
 *       proposes a pivot (median of 3 at pseudo-random positions), every rank
 *       partitions its candidates around it and reports the mass before it;
 *       the merged mass says which side the cut is on. Two allgathers per
 *       round, all rows of a chunk together; 8 to 21 rounds for 1000 tokens in
 *       tests/dist/test_sampler_vp.c (at most vocab: each round decides its
 *       pivot).
 *   top-k (rows with 0 < top_k < V): the same quickselect with weight 1 finds
 *       the k-th largest value in (value, id) order; ties are kept as in Dream.
 *   R2  per slice, after the filters: sum exp(z - m), top-2 exp values
 *       -> Z, the margin, and (temperature > 0) the slice holding the draw:
 *       one uniform u per row from the job's Philox address, the first slice
 *       whose cumulative mass passes u Z
 *   R3  (only when a row samples or asks for entropy) the drawing slice's
 *       token and its exp value, every slice's sum p log(p + 1e-10)
 * Then token = the draw (temperature > 0) or the argmax, confidence = p(token)
 * / top1 - top2 / the negative entropy, exactly the whole-row formulas.
 *
 * Agreement with the whole-row sampler: the argmax, and with it every token at
 * temperature 0, is the same function of the logits. The sums (Z, masses,
 * entropy) are added slice by slice instead of token by token, so confidences
 * and the top-p cut differ by rounding (~1e-16 relative) and a draw or a cut
 * can only differ when it falls within that distance of a boundary. With one
 * rank (T = 1) diffu_sampler_run itself is used: bit for bit the single process.
 *
 * Memory: candidates for the filters, at most max(1, 64 MiB / (24 (v1 - v0)))
 * rows at a time, and R x 3 doubles per phase, all allocated at creation; a run
 * allocates nothing. Threads: the local work of each phase is spread over rows
 * on the pool; the allgathers are called from the calling thread only.
 * Collective over the T ranks of the slices (every rank calls run with the same
 * rows and jobs). No MPI in here: the caller supplies the allgather. */
#ifndef DIFFU_SAMPLER_VP_H
#define DIFFU_SAMPLER_VP_H

#include <stddef.h>

#include "sampler.h"

struct diffu_pool;

/* Collective over the T ranks: recv[t * n + i] = rank t's send[i]. */
typedef void (*diffu_vp_allgather_fn)(void *user, const double *send, size_t n, double *recv);

typedef struct diffu_sampler_vp diffu_sampler_vp;

/* This rank holds vocabulary ids [v0, v1) of a vocab-sized row; it is rank
 * `rank` of `size` (the slices ascend with the rank and cover [0, vocab)).
 * allgather may be NULL when size == 1. pool: borrowed (NULL: the caller's
 * thread only). max_rows: the most rows of one run. */
diffu_sampler_vp *diffu_sampler_vp_create(int vocab, int v0, int v1, int rank, int size,
                                          diffu_vp_allgather_fn allgather, void *user, struct diffu_pool *pool,
                                          int max_rows);
void diffu_sampler_vp_free(diffu_sampler_vp **s);

/* out[r] = the sample of row r, from this rank's slice logits + r * ld
 * ((v1 - v0) floats, ld >= v1 - v0) and jobs[r]. Collective (see above); every
 * rank gets every out[r]. n_rows <= max_rows. */
void diffu_sampler_vp_run(diffu_sampler_vp *s, int n_rows, const float *logits, size_t ld,
                          const diffu_sample_job *jobs, diffu_sample *out);

/* Allgathers and doubles sent by this rank so far (for the stats). */
void diffu_sampler_vp_counts(const diffu_sampler_vp *s, long *allgathers, long *doubles);

#endif
