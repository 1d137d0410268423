/* tensor_names.c — see tensor_names.h. */
#include "tensor_names.h"

#include <stdio.h>
#include <string.h>

static const char *LAYER_SUFFIX[DIFFU_LAYER_ROLES] = {
    "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.q_proj.bias",
    "self_attn.k_proj.weight", "self_attn.k_proj.bias",  "self_attn.v_proj.weight",
    "self_attn.v_proj.bias",  "self_attn.o_proj.weight", "post_attention_layernorm.weight",
    "mlp.gate_proj.weight",   "mlp.up_proj.weight",      /* down below */
};

void diffu_tensor_name(diffu_tensor_role role, int layer, char *buf, int cap) {
    switch (role) {
    case DT_EMBED: snprintf(buf, (size_t)cap, "model.embed_tokens.weight"); return;
    case DT_OUT_NORM: snprintf(buf, (size_t)cap, "model.norm.weight"); return;
    case DT_LM_HEAD: snprintf(buf, (size_t)cap, "lm_head.weight"); return;
    case DT_DOWN: snprintf(buf, (size_t)cap, "model.layers.%d.mlp.down_proj.weight", layer); return;
    default: snprintf(buf, (size_t)cap, "model.layers.%d.%s", layer, LAYER_SUFFIX[role - DT_ATTN_NORM]); return;
    }
}

int diffu_tensor_count(const diffu_config *c) {
    return 1 + c->n_layers * (DIFFU_LAYER_ROLES + 1) + 1 + (c->tie_embed ? 0 : 1);
}

static void set2(diffu_tensor_spec *s, int ndim, int64_t a, int64_t b) {
    s->ndim = ndim;
    s->shape[0] = a;
    s->shape[1] = b;
}

void diffu_tensor_spec_at(const diffu_config *c, int i, diffu_tensor_spec *s) {
    memset(s, 0, sizeof *s);
    int64_t H = c->hidden, Q = (int64_t)c->n_heads * c->head_dim, KV = (int64_t)c->n_kv_heads * c->head_dim,
            I = c->inter, V = c->vocab;
    int per = DIFFU_LAYER_ROLES + 1;
    s->layer = -1;
    if (i == 0) {
        s->role = DT_EMBED;
        set2(s, 2, V, H);
    } else if (i <= c->n_layers * per) {
        int k = i - 1;
        s->layer = k / per;
        s->role = (diffu_tensor_role)(DT_ATTN_NORM + k % per);
        switch (s->role) {
        case DT_ATTN_NORM: case DT_FFN_NORM: set2(s, 1, H, 0); break;
        case DT_Q: set2(s, 2, Q, H); break;
        case DT_Q_B: set2(s, 1, Q, 0); break;
        case DT_K: case DT_V: set2(s, 2, KV, H); break;
        case DT_K_B: case DT_V_B: set2(s, 1, KV, 0); break;
        case DT_O: set2(s, 2, H, Q); break;
        case DT_GATE: case DT_UP: set2(s, 2, I, H); break;
        case DT_DOWN: set2(s, 2, H, I); break;
        default: break;
        }
    } else if (i == c->n_layers * per + 1) {
        s->role = DT_OUT_NORM;
        set2(s, 1, H, 0);
    } else {
        s->role = DT_LM_HEAD;
        set2(s, 2, V, H);
    }
    diffu_tensor_name(s->role, s->layer, s->name, sizeof s->name);
}
