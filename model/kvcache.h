/* kvcache.h — the per-request KV cache of one shard, and the forward that
 * computes only some rows of a sequence and attends to the cache for the rest.
 *
 * Storage: for this shard's layers [layer_begin, layer_end) and this rank's KV
 * heads [kv_head_begin, kv_head_end) (the tensor-parallel slice), `slots`
 * request slots of `max_ctx` canvas positions each:
 *     K, V [n_layers_local][slots][max_ctx][n_kv_local * head_dim]  fp32
 * i.e. bytes = 2 x slots x max_ctx x layers x kv_heads x head_dim x 4
 * (diffu_kvcache_plan_bytes gives it without a model, for plan/inspect).
 * Keys are stored AFTER RoPE, at their absolute canvas position: the public
 * references (Fast-dLLM, dKV-Cache) store keys before RoPE and rotate the whole
 * key set at every step, but a key's rotation depends only on the key and its
 * position, neither of which changes while it is cached, so rotating once when
 * it is written gives the same keys without re-rotating. fp32 storage: a full
 * pass attends to exactly the keys/values the no-cache forward uses, so its
 * logits are bit for bit diffu_forward's (bf16 storage would halve the
 * memory; not implemented).
 * Allocated once at creation (the start-up memory plan), printed with the
 * plan; nothing is allocated per step. Slots are handed out by
 * diffu_kvcache_acquire (-1 when all are taken: the caller's admission waits).
 *
 * The cached forward (per sequence of a ragged microbatch):
 *   the caller names the canvas rows to compute (b.seq_len[i] of them, their
 *   canvas positions in b.pos, ascending; their tokens in b.tokens), the
 *   request's slot and its canvas length ctx_len[i]. In every layer the
 *   computed rows' K/V are written into the slot at their positions, then each
 *   computed row attends over the slot's rows [0, ctx_len[i]). Rows not
 *   computed contribute the K/V cached by the last pass that computed them
 *   (every one must have been computed at least once since acquire: checked).
 *   A full pass (every row) refreshes the whole slot and gives exactly the
 *   logits of the no-cache forward. Sequences doing full passes and sequences
 *   computing a few rows mix in one microbatch: the projections and the FFN
 *   run over all computed rows at once (tall GEMMs), and the row layout is the
 *   forward's (forward.h): a sequence's results do not depend on what else is
 *   in the microbatch (batch invariance, bit for bit).
 * The cache modes (which rows to compute when) are the caller's policy; see
 * docs/kvcache.md and tests/ref/dream_cache_ref.py.
 * Pipeline use: every stage holds its own diffu_kvcache for its own layers;
 * the activations passed between stages are those of the computed rows only,
 * in the forward's padded row layout (diffu_batch_rows of kb->b).
 * Not collective (the forward calls the model's all-reduce like
 * diffu_forward_layers). One thread at a time per cache. */
#ifndef DIFFU_KVCACHE_H
#define DIFFU_KVCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "forward.h"
#include "log.h"
#include "weights.h"

typedef struct diffu_kvcache diffu_kvcache;

/* Bytes of the cache for this shard (storage + bookkeeping), without loading. */
size_t diffu_kvcache_plan_bytes(const diffu_config *c, const diffu_shard *s, int slots, int max_ctx);

/* Allocate the cache for the model's shard: slots >= 1 requests of at most
 * max_ctx positions (<= the model's max_seq). -1 with err if impossible.
 * Prints its plan line unless the model was loaded quiet. */
int diffu_kvcache_create(const diffu_model *m, int slots, int max_ctx, diffu_kvcache **out, diffu_err *err);
void diffu_kvcache_free(diffu_kvcache *kv);
void diffu_kvcache_plan_print(const diffu_kvcache *kv);
/* Bytes actually allocated (storage + bookkeeping). */
size_t diffu_kvcache_bytes(const diffu_kvcache *kv);
int diffu_kvcache_slots(const diffu_kvcache *kv);
int diffu_kvcache_max_ctx(const diffu_kvcache *kv);
const char *diffu_kvcache_dtype_name(const diffu_kvcache *kv); /* "fp32" */

/* A free slot (its rows marked not yet computed), or -1 when all are in use. */
int diffu_kvcache_acquire(diffu_kvcache *kv);
void diffu_kvcache_release(diffu_kvcache *kv, int slot);
int diffu_kvcache_in_use(const diffu_kvcache *kv);

/* Layer l (0 = the shard's first) of a slot: [max_ctx x ld] floats, ld = n_kv_local * head_dim. */
float *diffu_kvcache_k(diffu_kvcache *kv, int l, int slot);
float *diffu_kvcache_v(diffu_kvcache *kv, int l, int slot);
int diffu_kvcache_ld(const diffu_kvcache *kv);

typedef struct diffu_kv_batch {
    diffu_batch b;      /* the computed rows (b.pos required: canvas positions, strictly increasing per sequence);
                           b.rows: lm_head rows as indices into the computed rows */
    const int *slot;    /* [n_seq] the requests' slots (distinct) */
    const int *ctx_len; /* [n_seq] canvas length: the context attended to is [0, ctx_len) */
} diffu_kv_batch;

/* 0, or -1 with err: the batch does not fit the model's plan (diffu_batch_check),
 * a slot is not acquired or repeated, a position is outside [0, ctx_len) or
 * not increasing, ctx_len exceeds max_ctx, or a row of the context was never
 * computed since the slot was acquired. */
int diffu_kv_batch_check(const diffu_model *m, const diffu_kvcache *kv, const diffu_kv_batch *kb, diffu_err *err);

/* Stage piece: the shard's layers over the computed rows (x as diffu_forward_layers,
 * [diffu_batch_rows(kb->b) x hidden]); writes the computed rows' K/V into the slots.
 * Embedding and head are diffu_forward_embed / diffu_forward_head on kb->b. */
void diffu_forward_layers_kv(diffu_model *m, diffu_kvcache *kv, const diffu_kv_batch *kb, float *x);

/* The whole shard (single process): checks, embed, cached layers, head.
 * logits needs room for diffu_batch_logit_rows(m, &kb->b) rows. */
int diffu_forward_kv(diffu_model *m, diffu_kvcache *kv, const diffu_kv_batch *kb, float *logits, diffu_err *err);

/* FLOPs of one cached forward of this batch on this shard (attention over the context). */
double diffu_forward_kv_flops(const diffu_model *m, const diffu_kv_batch *kb);

#endif
