/* philox.c — see philox.h. Written from the SC'11 paper's description:
 * each round multiplies ctr[0] and ctr[2] by the two Philox constants, keeps
 * the 64-bit products' halves, and mixes them with the other two words and the
 * key; the key is bumped by the Weyl constants between rounds. */
#include "philox.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u /* golden ratio */
#define PHILOX_W1 0xBB67AE85u /* sqrt(3) - 1 */

void diffu_philox4x32_r(int rounds, const diffu_philox_ctr *ctr, const diffu_philox_key *key, uint32_t out[4]) {
    uint32_t c0 = ctr->c[0], c1 = ctr->c[1], c2 = ctr->c[2], c3 = ctr->c[3];
    uint32_t k0 = key->k[0], k1 = key->k[1];
    for (int r = 0; r < rounds; r++) {
        if (r) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        uint64_t p0 = (uint64_t)PHILOX_M0 * c0, p1 = (uint64_t)PHILOX_M1 * c2;
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        c0 = hi1 ^ c1 ^ k0;
        c1 = lo1;
        c2 = hi0 ^ c3 ^ k1;
        c3 = lo0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}
