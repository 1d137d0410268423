/* mkmodel.h — write a random-weight Dream/DiffuCoder model in exactly the
 * Hugging Face format (config.json, model.safetensors or sharded
 * model-XXXXX-of-YYYYY.safetensors + model.safetensors.index.json).
 *
 * Deterministic from the seed: element i of tensor NAME is a function of
 * (seed, NAME, i) only (a counter-based hash), so the values do not depend on
 * the dtype order, sharding or thread count. Scales keep activations sane:
 * embedding N(0,1); linear weights N(0, 1/fan_in); biases N(0, 0.1^2); norm
 * weights 1 + N(0, 0.1^2). Not collective. */
#ifndef DIFFU_MKMODEL_H
#define DIFFU_MKMODEL_H

#include <stdint.h>

#include "config.h"
#include "dtype.h"
#include "log.h"

typedef struct diffu_mkmodel_opts {
    diffu_config cfg;
    diffu_dtype dtype;
    uint64_t seed;
    uint64_t shard_bytes; /* start a new shard above this size (0: 4 GiB) */
    int threads;
    int config_only;      /* write config.json only (memory planning of big presets) */
} diffu_mkmodel_opts;

/* Fill cfg from a preset: "tiny", "small" (Qwen2.5-0.5B shape) or "7b"
 * (DiffuCoder-7B shape). Returns -1 for an unknown name. */
int diffu_mkmodel_preset(const char *name, diffu_config *cfg, diffu_err *err);

/* Make special token ids consistent with the vocabulary: DiffuCoder's ids
 * when they fit, else the top ids of a small vocabulary. */
void diffu_mkmodel_fix_ids(diffu_config *cfg);

int diffu_mkmodel_write(const char *out_dir, const diffu_mkmodel_opts *o, diffu_err *err);


#endif
