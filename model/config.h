/* config.h — the model's config.json (Dream / DiffuCoder / Qwen2 fields).
 * Plain data; not collective. */
#ifndef DIFFU_CONFIG_H
#define DIFFU_CONFIG_H

#include <stdint.h>

#include "log.h"

typedef struct diffu_config {
    char model_type[32];  /* "Dream" for DiffuCoder/Dream; "qwen2" accepted too */
    char torch_dtype[16]; /* informative: the tensors' own dtypes are what count */
    int hidden;           /* hidden_size */
    int inter;            /* intermediate_size */
    int n_layers;         /* num_hidden_layers */
    int n_heads;          /* num_attention_heads */
    int n_kv_heads;       /* num_key_value_heads (defaults to n_heads) */
    int head_dim;         /* hidden / n_heads (or config head_dim, which must agree) */
    int vocab;            /* vocab_size */
    int max_pos;          /* max_position_embeddings */
    double rope_theta;
    double rms_eps;       /* rms_norm_eps */
    int tie_embed;        /* tie_word_embeddings: lm_head shares embed_tokens */
    int bos_id, eos_id, pad_id, mask_id; /* -1 when absent */
} diffu_config;

/* Read and validate config.json: every required field present, of the right
 * type and sane (positive sizes, heads dividing hidden, kv heads dividing
 * heads, hidden_act silu, no rope_scaling, eps and theta positive, special
 * ids inside the vocab). err names the file and the field. */
int diffu_config_load(const char *path, diffu_config *cfg, diffu_err *err);

/* Write cfg as a DiffuCoder-style config.json. */
int diffu_config_write(const char *path, const diffu_config *cfg, diffu_err *err);

/* Parameter count of the whole model. */
int64_t diffu_config_params(const diffu_config *cfg);

#endif
