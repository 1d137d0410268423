/* philox.h — Philox4x32-10, the counter-based random generator of Salmon et
 * al., "Parallel random numbers: as easy as 1, 2, 3" (SC'11), as in Random123.
 *
 * A draw is a pure function of (key, counter): nothing is carried from one
 * draw to the next, so a request's random numbers do not depend on which
 * other requests share the batch, on the order rows are processed, on the
 * thread or rank layout, or on whether the run was resumed.
 *
 * How diffu addresses its draws (diffu_philox_addr):
 *   key     = the request's 64-bit seed            (k0 = low word, k1 = high)
 *   ctr[0]  = canvas position (prompt included)
 *   ctr[1]  = the request's step number
 *   ctr[2]  = purpose << 24 | sample index (< 2^24)
 *   ctr[3]  = request id
 * Distinct (seed, request, sample, step, position, purpose) give distinct
 * (key, counter) pairs, hence independent 128-bit outputs.
 * Pure functions; thread-safe; not collective. */
#ifndef DIFFU_PHILOX_H
#define DIFFU_PHILOX_H

#include <stdint.h>

typedef struct diffu_philox_key { uint32_t k[2]; } diffu_philox_key;
typedef struct diffu_philox_ctr { uint32_t c[4]; } diffu_philox_ctr;

/* Purposes (the top byte of ctr[2]). */
enum {
    DIFFU_RNG_TOKEN = 1,    /* the multinomial draw of a token */
    DIFFU_RNG_ORIGIN = 2,   /* origin: is this masked position committed now? */
    DIFFU_RNG_POSITION = 3, /* alg_temp: Gumbel key of a position */
};

/* Philox4x32 with R rounds (R = 10 is Philox4x32-10; 7 is exposed for the
 * Random123 known-answer vectors). out[4]. */
void diffu_philox4x32_r(int rounds, const diffu_philox_ctr *ctr, const diffu_philox_key *key, uint32_t out[4]);
static inline void diffu_philox4x32(const diffu_philox_ctr *ctr, const diffu_philox_key *key, uint32_t out[4]) {
    diffu_philox4x32_r(10, ctr, key, out);
}

static inline diffu_philox_key diffu_philox_seed(uint64_t seed) {
    diffu_philox_key k = {{(uint32_t)seed, (uint32_t)(seed >> 32)}};
    return k;
}

/* The counter of one draw (see the layout above). */
static inline diffu_philox_ctr diffu_philox_addr(uint32_t request, uint32_t sample, uint32_t step, uint32_t position,
                                                 uint32_t purpose) {
    diffu_philox_ctr c = {{position, step, (purpose << 24) | (sample & 0xFFFFFFu), request}};
    return c;
}

/* Uniform double in [0, 1) with 53 random bits (from out[0], out[1]). */
static inline double diffu_philox_u01(const uint32_t out[4]) {
    uint64_t a = out[0] >> 5, b = out[1] >> 6; /* 27 + 26 bits */
    return (double)((a << 26) | b) * (1.0 / 9007199254740992.0);
}
/* Uniform float in [0, 1) with 24 random bits (from out[2]), like torch.rand. */
static inline float diffu_philox_u01f(const uint32_t out[4]) {
    return (float)(out[2] >> 8) * (1.0f / 16777216.0f);
}
/* Uniform double in (0, 1) (never 0 or 1: safe under log(-log u)), 52 bits
 * from out[0], out[1]. */
static inline double diffu_philox_u01_open(const uint32_t out[4]) {
    uint64_t a = out[0] >> 6, b = out[1] >> 6; /* 26 + 26 bits */
    return ((double)((a << 26) | b) + 0.5) * (1.0 / 4503599627370496.0);
}

#endif
