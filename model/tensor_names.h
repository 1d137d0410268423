/* tensor_names.h — the Hugging Face tensor set of a Dream/DiffuCoder model,
 * derived from its config: names, shapes and roles. The loader checks a
 * checkpoint against this list and `diffu mkmodel` writes exactly this list,
 * so the two cannot drift apart. Pure data, thread-safe. */
#ifndef DIFFU_TENSOR_NAMES_H
#define DIFFU_TENSOR_NAMES_H

#include <stdint.h>

#include "config.h"

typedef enum {
    DT_EMBED,     /* model.embed_tokens.weight          [vocab, hidden] */
    DT_ATTN_NORM, /* model.layers.i.input_layernorm     [hidden] */
    DT_Q, DT_Q_B, /* self_attn.q_proj.{weight,bias}     [nh*hd, hidden], [nh*hd] */
    DT_K, DT_K_B, /* self_attn.k_proj                   [nkv*hd, hidden], [nkv*hd] */
    DT_V, DT_V_B, /* self_attn.v_proj                   [nkv*hd, hidden], [nkv*hd] */
    DT_O,         /* self_attn.o_proj.weight            [hidden, nh*hd] */
    DT_FFN_NORM,  /* post_attention_layernorm           [hidden] */
    DT_GATE,      /* mlp.gate_proj.weight               [inter, hidden] */
    DT_UP,        /* mlp.up_proj.weight                 [inter, hidden] */
    DT_DOWN,      /* mlp.down_proj.weight               [hidden, inter] */
    DT_OUT_NORM,  /* model.norm.weight                  [hidden] */
    DT_LM_HEAD,   /* lm_head.weight                     [vocab, hidden] (absent when tied) */
    DT_ROLE_COUNT
} diffu_tensor_role;

#define DIFFU_LAYER_ROLES 11 /* DT_ATTN_NORM .. DT_DOWN */

typedef struct diffu_tensor_spec {
    char name[96];
    diffu_tensor_role role;
    int layer; /* -1 for non-layer tensors */
    int ndim;
    int64_t shape[2];
} diffu_tensor_spec;

/* Number of tensors the config implies. */
int diffu_tensor_count(const diffu_config *c);
/* Fill spec for index i in [0, count): embedding, then layer by layer in the
 * roles' order, final norm, lm_head. */
void diffu_tensor_spec_at(const diffu_config *c, int i, diffu_tensor_spec *spec);
/* Name of a role's tensor in a layer (layer ignored for non-layer roles). */
void diffu_tensor_name(diffu_tensor_role role, int layer, char *buf, int cap);

#endif
