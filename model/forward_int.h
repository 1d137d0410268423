/* forward_int.h — private to model/: the model's state, shared by forward.c
 * (the forward) and kvcache.c (the KV-cached forward). Not a public
 * header: nothing outside model/ includes it. */
#ifndef DIFFU_FORWARD_INT_H
#define DIFFU_FORWARD_INT_H

#include "forward.h"
#include "kernels.h"

struct diffu_model {
    diffu_model_opts o;
    diffu_config cfg;
    diffu_weights *w;
    diffu_pool *pool;
    diffu_kscratch ks;
    struct diffu_gemm *gemm; /* the matrix products' engine (gemm.h), precision o.precision */
    int nq, nkv, nffn, nvocab; /* this shard's heads, FFN columns, vocab rows */
    /* plan buffers */
    float *x;       /* [max_tokens x hidden] residual stream (for diffu_forward) */
    float *xn;      /* [max_tokens x hidden] normed input / projection output */
    float *q;       /* [max_tokens x nq*hd] */
    float *k, *v;   /* [max_tokens x nkv*hd] */
    float *att;     /* [max_tokens x nq*hd] */
    float *g, *u;   /* [max_tokens x nffn] */
    float *hx;      /* [max_rows x hidden] rows for lm_head */
    float *rope_cos, *rope_sin; /* [max_seq x hd/2] */
    int panel;      /* row panel P: every sequence starts on a multiple of it */
    int act_rows;   /* activation row capacity: max_tokens + max_seqs * (P - 1) */
    int logit_rows; /* lm_head row capacity: max_rows + max_seqs * (P - 1) */
    int32_t *pos;   /* [act_rows] RoPE position of each padded row */
    int32_t *row_tok; /* [act_rows] token index of each padded row, -1 for padding */
    int *seq_start; /* [max_seqs + 1] padded start row of each sequence */
    int *tok_start; /* [max_seqs + 1] first token index of each sequence */
    int32_t *hslot; /* [max_rows] lm_head slot of each asked row */
    size_t plan_bytes;
    double phase_sec[DIFFU_PHASES]; /* diffu_model_phases */
    diffu_allreduce_fn allreduce;
    void *allreduce_user;
};

/* The shard's layers (forward.c). kv NULL: the plain forward (diffu_forward_layers);
 * else the cached forward (kvcache.c): in layer l, after q and k are rotated,
 * diffu_kv_attend(m, kv, l) stores the rows' K/V and fills m->att from the cache. */
typedef struct diffu_kv_step diffu_kv_step;
void diffu_model_layers(diffu_model *m, const diffu_batch *b, float *x, diffu_kv_step *kv);
void diffu_kv_attend(diffu_model *m, diffu_kv_step *kv, int l);

#endif
