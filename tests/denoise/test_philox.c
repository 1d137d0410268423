/* test_philox.c — Philox4x32 against the known-answer vectors of Random123
 * (DEShawResearch/random123, tests/kat_vectors: the three philox4x32 lines for
 * 7 rounds and the three for 10 rounds; columns CTR[4] KEY[2] -> OUT[4]), and
 * the properties diffu relies on: the addressing is injective over its fields,
 * the uniform conversions stay in range, and draws are pure functions of
 * (key, counter). */
#include <math.h>
#include <string.h>

#include "check.h"
#include "philox.h"

typedef struct {
    int rounds;
    uint32_t ctr[4], key[2], out[4];
} kat;

static const kat KATS[] = {
    {7, {0, 0, 0, 0}, {0, 0}, {0x5f6fb709, 0x0d893f64, 0x4f121f81, 0x4f730a48}},
    {7, {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
     {0x5207ddc2, 0x45165e59, 0x4d8ee751, 0x8c52f662}},
    {7, {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
     {0x4dfccaba, 0x190a87f0, 0xc47362ba, 0xb6b5242a}},
    {10, {0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {10, {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {10, {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};

int main(void) {
    for (size_t i = 0; i < sizeof KATS / sizeof KATS[0]; i++) {
        const kat *k = &KATS[i];
        diffu_philox_ctr c;
        diffu_philox_key key;
        memcpy(c.c, k->ctr, sizeof c.c);
        memcpy(key.k, k->key, sizeof key.k);
        uint32_t out[4];
        diffu_philox4x32_r(k->rounds, &c, &key, out);
        CHECK(!memcmp(out, k->out, sizeof out), "kat %zu (%d rounds): got %08x %08x %08x %08x", i, k->rounds, out[0],
              out[1], out[2], out[3]);
        if (k->rounds == 10) {
            uint32_t o2[4];
            diffu_philox4x32(&c, &key, o2);
            CHECK(!memcmp(o2, k->out, sizeof o2), "kat %zu via diffu_philox4x32", i);
        }
    }
    /* the seed split and the address layout */
    diffu_philox_key sk = diffu_philox_seed(0x0123456789abcdefull);
    CHECK(sk.k[0] == 0x89abcdefu && sk.k[1] == 0x01234567u, "seed split %08x %08x", sk.k[0], sk.k[1]);
    diffu_philox_ctr a = diffu_philox_addr(7, 3, 11, 513, DIFFU_RNG_ORIGIN);
    CHECK(a.c[0] == 513 && a.c[1] == 11 && a.c[2] == ((2u << 24) | 3u) && a.c[3] == 7, "addr layout");
    /* every field changes the counter (injective over the documented ranges) */
    diffu_philox_ctr b[6] = {diffu_philox_addr(0, 0, 0, 0, 1), diffu_philox_addr(1, 0, 0, 0, 1),
                             diffu_philox_addr(0, 1, 0, 0, 1), diffu_philox_addr(0, 0, 1, 0, 1),
                             diffu_philox_addr(0, 0, 0, 1, 1), diffu_philox_addr(0, 0, 0, 0, 2)};
    for (int i = 0; i < 6; i++)
        for (int j = i + 1; j < 6; j++) CHECK(memcmp(&b[i], &b[j], sizeof b[i]), "addr %d == addr %d", i, j);
    CHECK(diffu_philox_addr(0, 0xFFFFFF, 0, 0, 1).c[2] == ((1u << 24) | 0xFFFFFFu), "sample index keeps 24 bits");

    /* uniform conversions: ranges, and moments over 1e6 draws */
    uint32_t zero[4] = {0, 0, 0, 0}, ones[4] = {~0u, ~0u, ~0u, ~0u};
    CHECK(diffu_philox_u01(zero) == 0.0 && diffu_philox_u01(ones) < 1.0, "u01_double range");
    CHECK(diffu_philox_u01f(zero) == 0.0f && diffu_philox_u01f(ones) < 1.0f, "u01_float range");
    CHECK(diffu_philox_u01_open(zero) > 0.0 && diffu_philox_u01_open(ones) < 1.0, "u01_open range");
    diffu_philox_key key = diffu_philox_seed(42);
    double s1 = 0, s2 = 0, f1 = 0;
    const int N = 1000000;
    for (int i = 0; i < N; i++) {
        diffu_philox_ctr c = diffu_philox_addr(0, 0, (uint32_t)(i / 1000), (uint32_t)(i % 1000), DIFFU_RNG_TOKEN);
        uint32_t r[4];
        diffu_philox4x32(&c, &key, r);
        double u = diffu_philox_u01(r);
        s1 += u;
        s2 += u * u;
        f1 += diffu_philox_u01f(r);
    }
    double mean = s1 / N, var = s2 / N - mean * mean;
    /* mean of 1e6 uniforms: sd 2.9e-4; 6 sd */
    CHECK(fabs(mean - 0.5) < 6 * sqrt(1.0 / 12 / N), "mean %g", mean);
    CHECK(fabs(var - 1.0 / 12) < 1e-3, "variance %g", var);
    CHECK(fabs(f1 / N - 0.5) < 6 * sqrt(1.0 / 12 / N), "float mean %g", f1 / N);
    /* purity: the same address twice gives the same numbers */
    diffu_philox_ctr c = diffu_philox_addr(5, 6, 7, 8, DIFFU_RNG_POSITION);
    uint32_t r1[4], r2[4];
    diffu_philox4x32(&c, &key, r1);
    diffu_philox4x32(&c, &key, r2);
    CHECK(!memcmp(r1, r2, sizeof r1), "pure");
    return check_report();
}
