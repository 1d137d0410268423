/* arness.h — how left-to-right a decode was: local and global AR-ness@k of
 * the DiffuCoder paper (Gong et al. 2025, arXiv 2506.20639, appendix A.2).
 *
 * Input: the decoding order, order[t] = generated index (0 = the first
 * position after the prompt) of the t-th committed token, t = 0..T-1. When a
 * step commits several tokens they appear left to right (the flattening that
 * keeps left-to-right parallel decoding at AR-ness 1).
 *   local@k  = (1/T) #{t : for j = 1..k, the j-th most recently committed
 *              position is order[t] - j}  (a contiguous left-to-right run of
 *              k tokens ends just before order[t]; k = 1 is next-token
 *              prediction). The prompt counts as committed before step 0, left
 *              to right (its last token at generated index -1, and so on),
 *              so the first tokens are judged against it.
 *   global@k = (1/T) #{t : order[t] is among the k left-most positions still
 *              masked just before it is committed}.
 * Both are 1 for autoregressive (left-to-right) decoding. Positions never
 * committed by the decoder (early-stop fill, leftovers) are not counted in T.
 * Pure function; no allocation except a G-byte scratch (the caller's or
 * malloc'd once). Not collective. */
#ifndef DIFFU_ARNESS_H
#define DIFFU_ARNESS_H

#include <stdint.h>

#define DIFFU_ARNESS_K 4

typedef struct diffu_arness {
    int n;                          /* T: tokens counted */
    double local[DIFFU_ARNESS_K];   /* local@1..4 */
    double global[DIFFU_ARNESS_K];  /* global@1..4 */
} diffu_arness;

/* order: [n] distinct generated indices in [0, G). scratch: NULL (allocated
 * and freed here) or [G] bytes. */
void diffu_arness_compute(int G, const int32_t *order, int n, uint8_t *scratch, diffu_arness *out);

#endif
