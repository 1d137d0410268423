/* forward.h — the Dream/DiffuCoder forward pass on one rank's shard.
 *
 *   x = embed[tokens]
 *   per layer: x += o_proj(attn(rope(q, k), v)) on rmsnorm(x);  (all-reduce under TP)
 *              x += down(silu(gate(n)) * up(n)), n = rmsnorm(x)  (all-reduce under TP)
 *   logits[rows] = lm_head(rmsnorm(x[rows]))
 * Attention is bidirectional inside each sequence. A batch holds several
 * sequences of different lengths back to back (ragged, no padding); each
 * token's RoPE position is given, or 0..len-1 within its sequence.
 *
 * Row layout (batch invariance): inside the forward, sequence i occupies rows
 * [start_i, start_i + round_up(len_i, P)) where P = diffu_model_panel(), the
 * row panel its GEMM path needs (diffu_forward_panel: the BLAS's sgemm panel
 * in fp32, 1 in bf16/int8) — every sequence begins on a row panel, so its rows
 * are computed bit for bit the same whatever else is in the batch and on any
 * thread count (the padding rows are computed and ignored). diffu_batch_rows
 * gives the padded row count. lm_head rows are grouped the same way, so a
 * logits buffer needs diffu_batch_logit_rows rows of room; the result is
 * returned compacted to [n_rows x vocab_local]. Between pipeline stages the
 * activations travel compact (one row per token, diffu_batch_compact /
 * diffu_batch_expand), so stages of different panels (another BLAS, another
 * precision) line up.
 *
 * Memory: every activation buffer is allocated once at load from the plan
 * (max_tokens, max_seq, max_rows, max_seqs); diffu_model_plan_print shows it.
 * A forward allocates nothing. The matrix products run in opts.precision (gemm.h):
 * fp32 (BF16/F16 weights widened tile by tile) or bf16/int8 on weights packed at load;
 * everything else is fp32.
 * Threads: the model owns a pool of opts.threads threads; OpenBLAS is set to
 * one thread per caller. A model is used from one thread at a time.
 * Not collective itself: under tensor parallelism the caller supplies the
 * all-reduce (node/ does it with MPI), called twice per layer on every rank
 * of the stage in the same order. */
#ifndef DIFFU_FORWARD_H
#define DIFFU_FORWARD_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "log.h"
#include "weights.h"

typedef struct diffu_model diffu_model;

typedef struct diffu_model_opts {
    int max_tokens;   /* most tokens in one forward (sum of sequence lengths); default 2048 */
    int max_seq;      /* longest single sequence; default max_tokens */
    int max_rows;     /* most lm_head rows in one forward; default max_tokens */
    int max_seqs;     /* most sequences in one forward; default 64 */
    int threads;      /* 0: the CPUs in this process's affinity mask */
    int f32_weights;  /* widen all weights to fp32 at load (2x memory, no per-tile widening) */
    int layer_begin, layer_end; /* this shard's layers; layer_end 0 = to the last layer */
    int tp_rank, tp_size;       /* tensor-parallel slice; tp_size 0 or 1 = whole */
    int quiet;        /* do not print the memory plan */
    int precision;    /* diffu_precision (gemm.h): 0 auto ($DIFFU_PRECISION, else the CPU's fastest that meets
                         the accuracy bar); resolved by diffu_model_load */
    struct diffu_pool *pool; /* share this thread pool (not owned; its size wins over threads); NULL: own one */
} diffu_model_opts;

void diffu_model_opts_default(diffu_model_opts *o);

/* Open and validate the checkpoint directory, load this shard and allocate the
 * plan. Returns 0, or -1 with err naming the file/tensor/field. */
int diffu_model_load(const char *dir, const diffu_model_opts *o, diffu_model **out, diffu_err *err);
void diffu_model_free(diffu_model *m);

const diffu_config *diffu_model_config(const diffu_model *m);
const diffu_shard *diffu_model_shard(const diffu_model *m);
const diffu_weights *diffu_model_weights(const diffu_model *m);
const diffu_model_opts *diffu_model_get_opts(const diffu_model *m);
/* The model's thread pool, for other per-step work of the same rank (the
 * sampler) so that one set of threads serves everything. */
struct diffu_pool *diffu_model_pool(diffu_model *m);
int diffu_model_vocab_local(const diffu_model *m); /* lm_head rows this shard computes */
/* The model's GEMM engine (gemm.h): its precision, description and timers. */
struct diffu_gemm *diffu_model_gemm(diffu_model *m);

/* The memory plan, one line per buffer, to stderr. */
void diffu_model_plan_print(const diffu_model *m);
/* Activation + scratch bytes of the plan (weights excluded). */
size_t diffu_model_plan_bytes(const diffu_model *m);

typedef void (*diffu_allreduce_fn)(float *buf, size_t n, void *user);
void diffu_model_set_allreduce(diffu_model *m, diffu_allreduce_fn fn, void *user);

typedef struct diffu_batch {
    int n_seq;
    const int *seq_len;     /* [n_seq] */
    const int32_t *tokens;  /* [n_tokens] (read by the embedding shard only) */
    const int32_t *pos;     /* [n_tokens] RoPE positions, or NULL for 0..len-1 per sequence */
    int n_rows;             /* rows wanted from lm_head */
    const int32_t *rows;    /* [n_rows] indices into the n_tokens tokens, non-decreasing */
} diffu_batch;

int diffu_batch_tokens(const diffu_batch *b);
/* Padded row count of the batch's activations (see "Row layout"). */
int diffu_batch_rows(const diffu_model *m, const diffu_batch *b);
/* The row panel a forward in this precision (diffu_precision, 0 = auto) needs:
 * diffu_row_panel() for fp32 (sgemm), 1 for bf16/int8 (oneDNN). */
int diffu_forward_panel(int precision);
int diffu_model_panel(const diffu_model *m);
/* In place, x [diffu_batch_rows x hidden]: the padded row layout to one row
 * per token (returns diffu_batch_tokens), and back (the padding rows zeroed). */
int diffu_batch_compact(const diffu_model *m, const diffu_batch *b, float *x);
void diffu_batch_expand(const diffu_model *m, const diffu_batch *b, float *x);
/* Rows of room a logits buffer needs for this batch (>= n_rows). */
int diffu_batch_logit_rows(const diffu_model *m, const diffu_batch *b);
/* The plan's capacities: activation rows [x buffers], logits rows. */
int diffu_model_act_rows(const diffu_model *m);
int diffu_model_logit_rows(const diffu_model *m);
/* 0, or -1 with err when the batch exceeds the plan or holds an id outside
 * the vocabulary / a row outside the batch. */
int diffu_batch_check(const diffu_model *m, const diffu_batch *b, diffu_err *err);

/* Stage pieces (for the pipeline). x is [diffu_batch_rows x hidden] in the
 * padded row layout. logits needs room for diffu_batch_logit_rows rows; on
 * return its first n_rows rows hold [n_rows x vocab_local]. */
void diffu_forward_embed(diffu_model *m, const diffu_batch *b, float *x);
void diffu_forward_layers(diffu_model *m, const diffu_batch *b, float *x);
void diffu_forward_head(diffu_model *m, const diffu_batch *b, const float *x, float *logits);

/* The whole shard in one call (single process: tokens -> logits; logits
 * needs room for diffu_batch_logit_rows rows). */
int diffu_forward(diffu_model *m, const diffu_batch *b, float *logits, diffu_err *err);

/* Plan estimates without loading anything (for `inspect`, `--dry-run`):
 * activation + scratch bytes of the plan, and this shard's weight bytes when
 * resident in a dtype of elem_size bytes. o as given to diffu_model_load
 * (threads must be set). */
size_t diffu_plan_activation_bytes(const diffu_config *c, const diffu_shard *s, const diffu_model_opts *o);
uint64_t diffu_plan_weight_bytes(const diffu_config *c, const diffu_shard *s, size_t elem_size);

/* Where a forward's time goes (benchmarks, profiling): wall seconds in each
 * phase since the model's load or the last reset, summed over forwards. The
 * GEMM phases include the GEMM layer's own activation conversion and
 * copy-out (gemm.h). Writes up to DIFFU_PHASES entries; returns the count. */
enum { DIFFU_PHASES = 12 };
int diffu_model_phases(diffu_model *m, const char **names, double *seconds, int reset);

/* Floating-point operations of one forward of this batch on this shard. */
double diffu_forward_flops(const diffu_model *m, const diffu_batch *b);

#endif
