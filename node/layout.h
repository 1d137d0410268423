/* layout.h — the parallel plan as data: which rank is which pipeline stage and
 * tensor-parallel (TP) rank, what it owns and which communication it joins.
 *
 * World size N = P x T. Ranks are numbered stage-major: rank = stage * T + tp,
 * so the T ranks of one stage are contiguous (with `mpirun --map-by` they land
 * on the same node: TP inside a node, PP across nodes).
 *
 * Stages (balanced by cost, see diffu_layout_balance): stage s owns layers
 * [stage_begin[s], stage_begin[s+1]); stage 0 also the embedding, the last
 * stage the final norm + lm_head. Inside a stage, TP rank t owns (Megatron,
 * diffu_shard_init): query heads [t*nh/T, (t+1)*nh/T) and the KV heads they
 * read (a KV head is replicated on every rank whose query heads read it, e.g.
 * tp > num_key_value_heads), FFN columns and lm_head vocabulary rows split as
 * evenly as possible.
 *
 * Communication of one forward (each named in the plan, diffu_layout_coll):
 *   - TP all-reduce, in place, [tokens x hidden] floats, twice per layer, on
 *     the stage communicator (the stage's T ranks); only when T > 1;
 *   - activations [tokens x hidden] from TP rank t of stage s to TP rank t of
 *     stage s+1 (point to point; every TP rank holds the whole residual stream);
 *   - on the last stage, the vocabulary-parallel reduction of the sampler over
 *     the stage communicator (argmax/softmax statistics of each row; generation
 *     never moves full logits); only when T > 1;
 *   - at start-up, the handshake: every rank to rank 0, verdict back.
 *
 * Refusals (before anything loads; one line with the reason): N != P x T,
 * P > num_hidden_layers, T not dividing num_attention_heads, T > intermediate_size.
 *
 * No MPI in here: plain data, unit-testable in one process. Not collective. */
#ifndef DIFFU_LAYOUT_H
#define DIFFU_LAYOUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "log.h"
#include "weights.h"

typedef struct diffu_layout diffu_layout;

typedef struct diffu_layout_opts {
    /* the forward plan each rank allocates (as diffu_model_opts), for the memory figures */
    int max_tokens;         /* default 2048 */
    int max_seq;            /* default max_tokens; also the sequence length of the balance rule */
    int max_rows;           /* default max_tokens */
    int threads;            /* per rank; default 1 */
    size_t weight_elem_size;/* bytes per weight element: 2 (BF16/F16) or 4; 0 = from config torch_dtype */
    double head_row_frac;   /* lm_head rows per token in the balance rule; default 1 (every row) */
    int cache_slots;        /* KV cache (model/kvcache.h): requests that hold a slot at once; 0 = no cache */
    int cache_ctx;          /* positions per slot (prompt + new tokens); default max_seq */
} diffu_layout_opts;

void diffu_layout_opts_default(diffu_layout_opts *o);

typedef enum {
    DIFFU_COLL_HANDSHAKE = 0, /* world: each rank -> rank 0 at start-up, verdict back */
    DIFFU_COLL_RECV_PREV,     /* activations [tokens x hidden] from peer (previous stage, same tp rank) */
    DIFFU_COLL_TP_ALLREDUCE,  /* stage communicator, in place, [tokens x hidden], per_forward times */
    DIFFU_COLL_SEND_NEXT,     /* activations [tokens x hidden] to peer (next stage, same tp rank) */
    DIFFU_COLL_VOCAB_REDUCE,  /* last stage communicator: per-row reductions over the vocab slices */
} diffu_coll_kind;

typedef struct diffu_layout_coll {
    diffu_coll_kind kind;
    int peer;                  /* point to point: the other rank; else -1 */
    int group_first, group_n;  /* collectives: ranks [group_first, group_first + group_n); else 0, 0 */
    int per_forward;           /* how many times one forward calls it */
} diffu_layout_coll;

#define DIFFU_LAYOUT_MAX_COLLS 5

typedef struct diffu_rank_plan {
    int rank, stage, tp_rank;
    diffu_shard shard;         /* layers, heads, KV heads, FFN columns, vocab rows (diffu_shard_init) */
    int prev_rank, next_rank;  /* same tp rank in the previous / next stage; -1 at the ends */
    int stage_first_rank;      /* the stage communicator is ranks [stage_first_rank, + tp) */
    int n_colls;
    diffu_layout_coll colls[DIFFU_LAYOUT_MAX_COLLS];
    uint64_t weight_bytes;     /* diffu_plan_weight_bytes (the embedding counted whole: it is mmap'd) */
    size_t act_bytes;          /* diffu_plan_activation_bytes */
    size_t io_bytes;           /* pipeline buffers (2 x [max_tokens x hidden] fp32 when P > 1, else 1)
                                  + this rank's logits slice [max_rows x vocab rows] on the last stage */
    size_t cache_bytes;        /* the KV cache of this rank's layers and KV heads (diffu_kvcache_plan_bytes;
                                  0 without cache_slots) */
    double cost;               /* stage cost in layer units (balance rule) */
} diffu_rank_plan;

/* Everything the rank allocates or maps: weights + activations + io + cache. */
double diffu_layout_rank_bytes(const diffu_rank_plan *p);

/* Refusal checks only (what diffu_layout_init checks before building). */
int diffu_layout_check(const diffu_config *c, int world, int pp, int tp, diffu_err *err);

/* Build the plan. o may be NULL (defaults). Returns 0, or -1 with err giving
 * the reason (one line, naming pp / tp / world size and the config field). */
int diffu_layout_init(const diffu_config *c, int world, int pp, int tp, const diffu_layout_opts *o,
                      diffu_layout **out, diffu_err *err);
void diffu_layout_free(diffu_layout *l);

/* Convenience for commands: read DIR/config.json (config_only) or open and
 * validate the checkpoint (weight element size from its tensors, unless
 * o->weight_elem_size is set), then diffu_layout_init. pp or tp 0: derived
 * from world (tp 1 when both are 0); world 0: pp x tp. */
int diffu_layout_from_dir(const char *dir, int config_only, int world, int pp, int tp, const diffu_layout_opts *o,
                          diffu_layout **out, diffu_err *err);

int diffu_layout_world(const diffu_layout *l);
int diffu_layout_pp(const diffu_layout *l);
int diffu_layout_tp(const diffu_layout *l);
const diffu_config *diffu_layout_config(const diffu_layout *l);
const diffu_layout_opts *diffu_layout_get_opts(const diffu_layout *l);
const diffu_rank_plan *diffu_layout_rank(const diffu_layout *l, int rank);
/* Layers of stage s: [*begin, *end). */
void diffu_layout_stage_layers(const diffu_layout *l, int s, int *begin, int *end);
/* How many TP ranks of a stage hold KV head h (1 = not replicated). */
int diffu_layout_kv_copies(const diffu_layout *l, int kv_head);

/* The balance rule.
 *   layer cost (FLOP per token) = 2 (H*nh*hd + 2 H*nkv*hd + nh*hd*H + 3 H*F) + 4 S nh*hd
 *     (q, k, v, o and the three FFN matrices; QK^T and PV at sequence length S = max_seq);
 *   head cost (FLOP per lm_head row) = 2 V H + 4 H (lm_head + final norm);
 *   h = head_row_frac x head cost / layer cost  (the head in layer units; the
 *     embedding is a gather and counts 0). DiffuCoder-7B at S = 2048: h = 2.2.
 * Returns h. */
double diffu_layout_head_cost(const diffu_config *c, const diffu_layout_opts *o);

/* Split L layers into P contiguous stages, the last one also carrying the
 * head (cost h in layer units), minimizing the most expensive stage:
 *   choose the last stage's layer count n in [1, L-P+1] minimizing
 *     max(ceil((L - n) / (P - 1)), n + h)     (P = 1: n = L),
 *   ties to the larger n (least work in front); the other L - n layers are
 *   spread evenly over stages 0..P-2, the remainder one each to the first stages.
 * begin gets P+1 entries (begin[0] = 0, begin[P] = L). Returns the bottleneck
 * stage cost. Requires 1 <= P <= L (DIFFU_ASSERT). */
double diffu_layout_balance(int L, int P, double h, int *begin);

/* 64-bit hash of the plan (world, pp, tp, every rank's shard): the handshake
 * compares each rank's view with rank 0's. */
uint64_t diffu_layout_hash(const diffu_layout *l);

/* Print the plan: the balance rule and stage costs, one line per rank (stage,
 * tp, layers, heads, KV heads, FFN columns, vocab rows, memory), then the
 * collectives of every rank. For `diffu layout` and `generate --dry-run`. */
void diffu_layout_print(const diffu_layout *l, FILE *f);

#endif
