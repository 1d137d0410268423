/* weights.h — the weights one rank holds: a shard of the model.
 *
 * A shard is layers [layer_begin, layer_end) of the pipeline, and inside them
 * the tensor-parallel slice tp_rank of tp_size (Megatron): whole query heads
 * [q_head_begin, q_head_end) with the KV heads they read, FFN columns
 * [ffn_begin, ffn_end), lm_head rows [vocab_begin, vocab_end). The single
 * process case is the shard with every layer and tp_size 1.
 *
 * Matrices stay in their checkpoint dtype, as views into the read-only mmap
 * when the slice is the whole tensor or a block of whole rows (BF16 for the
 * real model: 15 GB, not 30), copied only for column slices; or, with
 * f32 set, widened to owned fp32 buffers at load. Norm weights and biases are
 * always owned fp32. The shard owns its buffers and keeps the checkpoint open
 * for the views; free with diffu_weights_free. Not collective. */
#ifndef DIFFU_WEIGHTS_H
#define DIFFU_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "checkpoint.h"
#include "config.h"
#include "dtype.h"
#include "log.h"

typedef struct diffu_shard {
    int layer_begin, layer_end; /* pipeline: this rank's layers */
    int embed, head;            /* holds the embedding / final norm + lm_head */
    int tp_rank, tp_size;
    /* derived by diffu_shard_init */
    int q_head_begin, q_head_end;
    int kv_head_begin, kv_head_end;
    int ffn_begin, ffn_end;
    int vocab_begin, vocab_end;
} diffu_shard;

/* Derive the slice; refuses (with the reason) a tp_size the heads do not
 * allow or an empty layer range. */
int diffu_shard_init(diffu_shard *s, const diffu_config *c, int layer_begin, int layer_end, int tp_rank, int tp_size,
                     diffu_err *err);

/* A weight matrix W [rows x cols]: element (r, c) at data + (r * ld + c) * size. */
typedef struct diffu_mat {
    diffu_dtype dtype;
    int rows, cols;
    size_t ld;
    const void *data;
    const void *packed; /* the GEMM engine's copy in its own layout (gemm.h), or NULL */
} diffu_mat;

typedef struct diffu_layer_weights {
    float *attn_norm;        /* [hidden] */
    diffu_mat q, k, v;       /* [nq*hd, hidden], [nkv*hd, hidden] x2 (this rank's heads) */
    float *q_bias, *k_bias, *v_bias; /* [nq*hd], [nkv*hd], [nkv*hd] */
    diffu_mat o;             /* [hidden, nq*hd]  (row-parallel: this rank's input columns) */
    float *ffn_norm;         /* [hidden] */
    diffu_mat gate, up;      /* [nffn, hidden] */
    diffu_mat down;          /* [hidden, nffn] */
} diffu_layer_weights;

typedef struct diffu_weights {
    diffu_config cfg;
    diffu_shard shard;
    diffu_mat embed;         /* [vocab, hidden] (if shard.embed) */
    diffu_layer_weights *layers; /* [layer_end - layer_begin] */
    float *out_norm;         /* [hidden] (if shard.head) */
    diffu_mat lm_head;       /* [vocab_end - vocab_begin, hidden] (if shard.head) */
    uint64_t bytes_mapped;   /* weight bytes used straight from the mmap */
    uint64_t bytes_owned;    /* weight bytes in owned buffers */
    /* private */
    diffu_ckpt *ckpt;
    void **owned;
    int n_owned;
} diffu_weights;

/* Load this shard's weights from an open checkpoint (the weights keep it and
 * close it on free). f32: widen every matrix to fp32 at load. */
int diffu_weights_load(diffu_ckpt *ckpt, const diffu_shard *shard, int f32, diffu_weights **out, diffu_err *err);
void diffu_weights_free(diffu_weights *w);

#endif
