/* arness.c — see arness.h. */
#include "arness.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"

void diffu_arness_compute(int G, const int32_t *order, int n, uint8_t *scratch, diffu_arness *out) {
    memset(out, 0, sizeof *out);
    out->n = n;
    if (n <= 0) return;
    uint8_t *done = scratch ? scratch : diffu_xmalloc((size_t)G);
    memset(done, 0, (size_t)G);
    int local_hits[DIFFU_ARNESS_K] = {0}, global_hits[DIFFU_ARNESS_K] = {0};
    for (int t = 0; t < n; t++) {
        int p = order[t];
        DIFFU_ASSERT(p >= 0 && p < G && !done[p]);
        /* local: the j-th most recent commit is order[t - j], or the prompt's
         * (virtual) position t - j < 0 -> index -(j - t) */
        int run = 0;
        for (int j = 1; j <= DIFFU_ARNESS_K; j++) {
            int prev = j <= t ? order[t - j] : -(j - t);
            if (prev != p - j) break;
            run = j;
        }
        for (int k = 1; k <= run; k++) local_hits[k - 1]++;
        /* global: masked positions left of p */
        int left = 0;
        for (int q = 0; q < p && left < DIFFU_ARNESS_K; q++) left += !done[q];
        for (int k = left + 1; k <= DIFFU_ARNESS_K; k++) global_hits[k - 1]++;
        done[p] = 1;
    }
    for (int k = 0; k < DIFFU_ARNESS_K; k++) {
        out->local[k] = (double)local_hits[k] / n;
        out->global[k] = (double)global_hits[k] / n;
    }
    if (!scratch) free(done);
}
