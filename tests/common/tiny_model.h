/* tiny_model.h — the C tests' random model: diffu_mkmodel_write of the tiny
 * preset (hidden 64, 2 layers, 4 heads / 2 KV heads) with a vocabulary of
 * `vocab`, bf16 weights, the given seed, into dir. *cfg gets its config (the
 * special ids fixed for that vocabulary). 0, or 1 after printing why. */
#ifndef DIFFU_TEST_TINY_MODEL_H
#define DIFFU_TEST_TINY_MODEL_H

#include <stdio.h>
#include <string.h>

#include "mkmodel.h"

static inline int tiny_model_write(const char *dir, int vocab, uint64_t seed, diffu_config *cfg) {
    diffu_mkmodel_opts mk;
    memset(&mk, 0, sizeof mk);
    diffu_err err;
    if (diffu_mkmodel_preset("tiny", &mk.cfg, &err)) {
        fprintf(stderr, "mkmodel: %s\n", err.msg);
        return 1;
    }
    mk.cfg.vocab = vocab;
    diffu_mkmodel_fix_ids(&mk.cfg);
    mk.dtype = DIFFU_BF16;
    mk.seed = seed;
    mk.threads = 2;
    if (diffu_mkmodel_write(dir, &mk, &err)) {
        fprintf(stderr, "mkmodel: %s\n", err.msg);
        return 1;
    }
    *cfg = mk.cfg;
    return 0;
}

#endif
