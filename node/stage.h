/* stage.h — one rank's part of the pipelined forward: its shard of the model
 * (only its own slices are read from the checkpoint), two activation buffers
 * and the transfers between stages.
 *
 * A run pushes microbatches through the pipeline:
 *   stage 0       embed(tokens) -> layers -> send to stage 1
 *   stage s       recv from s-1 (the receive of microbatch k+1 is posted before
 *                 microbatch k is computed, into the other buffer) -> layers -> send
 *   last stage    recv -> layers -> its vocabulary slice of lm_head for the rows
 *                 asked -> the caller's callback (generation: vocab-parallel
 *                 sampling; `diffu logits`: send to rank 0 for the test)
 * with the TP all-reduce (diffu_comm_tp_allreduce) twice per layer inside a
 * stage. Every TP rank of a stage holds the whole residual stream and talks to
 * the same TP rank of the neighbouring stages.
 *
 * Memory: the model's plan (diffu_model_load) + 2 x [max_tokens x hidden]
 * fp32 + the logits slice [max_rows x vocab rows] on the last stage; all
 * allocated at init, nothing in diffu_stage_run. */
#ifndef DIFFU_STAGE_H
#define DIFFU_STAGE_H

#include "comm.h"
#include "forward.h"
#include "kvcache.h"
#include "layout.h"
#include "log.h"

typedef struct diffu_stage diffu_stage;

/* Local: load this rank's shard of DIR as the layout says (mo gives
 * max_tokens, max_seq, max_rows, threads, f32_weights, quiet; its layer and
 * tp fields are overwritten), install the TP all-reduce when tp > 1 and
 * allocate the pipeline buffers. Returns 0 or -1 with err. A rank can fail
 * alone (a missing file on one host): follow with diffu_comm_agree. The
 * stage keeps c and l (which must outlive it). */
/* Local, after the handshake (it needs every rank's host): does the layout
 * fit this host? The sum over the ranks on this host of their plan (weights
 * + activations + pipeline buffers and logits, diffu_rank_plan) against
 * MemAvailable (/proc/meminfo). -1 with err giving the numbers ("host h:
 * ranks 0-1 need 14.20 GiB (weights ..., activations ..., pipeline/logits
 * ...), MemAvailable 8.00 GiB of 24.00 GiB"); 0 when it fits or /proc/meminfo
 * cannot be read. Every rank of a host reaches the same verdict: follow with
 * diffu_comm_agree. Env DIFFU_MEM_AVAILABLE_MIB overrides MemAvailable. */
int diffu_stage_check_memory(diffu_comm *c, const diffu_layout *l, diffu_err *err);

/* Testing hook: env DIFFU_FAULT=POINT:RANK[:ACTION] makes rank RANK kill
 * itself (ACTION kill, default: SIGKILL), stop (SIGSTOP: a hang) or exit(1)
 * when it reaches POINT ("load": as its shard starts loading). */
void diffu_stage_fault_point(diffu_comm *c, const char *point);

int diffu_stage_init(diffu_comm *c, const diffu_layout *l, const char *dir, const diffu_model_opts *mo,
                     diffu_stage **out, diffu_err *err);
void diffu_stage_free(diffu_stage *s);

diffu_model *diffu_stage_model(diffu_stage *s);

/* Local: one log line with this rank's shard and memory: weight bytes mapped
 * from the checkpoint / owned, activation and pipeline bytes, VmRSS. */
void diffu_stage_log_memory(diffu_stage *s);

/* Called on every rank of the last stage, once per microbatch, in order:
 * logits [b->n_rows x (vocab_end - vocab_begin)] of this rank's vocabulary
 * slice. The buffer is the stage's and is reused after the call returns. */
typedef void (*diffu_stage_logits_fn)(void *user, int mb, const diffu_batch *b, const float *logits, int vocab_begin,
                                      int vocab_end);

/* Collective over the whole job (every rank, the same batches in the same
 * order). Every batch is checked against the plan first, on every rank; the
 * check depends only on the batches and the plan, so all ranks agree without
 * communicating: -1 with err and nothing sent. Then 0 after the microbatches
 * went through (this rank's sends completed). */
int diffu_stage_run(diffu_stage *s, const diffu_batch *batches, int n, diffu_stage_logits_fn fn, void *user,
                    diffu_err *err);

/* ---- one microbatch at a time (generation: node/worker.h) ----
 * Collective over the pipeline like diffu_stage_run, but the microbatches
 * arrive one by one (the coordinator's step commands) and every rank calls
 * diffu_stage_step for the same batches in the same order (ids continue from
 * 0 and are checked against the sender's). The first stage embeds; the others
 * wait for the previous stage's activations, then post the receive of the
 * next microbatch into the other buffer when its send has completed. Returns,
 * on the last stage, the logits [b->n_rows x vocab_local] (the stage's buffer,
 * valid until the next call); NULL elsewhere. b must pass diffu_stage_check
 * (asserted downstream).
 * Progress: with tp = 1 and pp > 1 the stage installs a progress point as the
 * model's all-reduce hook (called twice per layer, a no-op on the data) so
 * that sends and receives advance while this rank computes; with tp > 1 the
 * real all-reduce does that. */
int diffu_stage_check(diffu_stage *s, const diffu_batch *b, diffu_err *err); /* local; same verdict everywhere */
const float *diffu_stage_step(diffu_stage *s, const diffu_batch *b);
/* The KV cache of this rank's layers and KV heads (model/kvcache.h): slots
 * requests of max_ctx positions, made once after diffu_stage_init (the memory
 * plan; its line printed unless the model is quiet). Local. -1 with err. */
int diffu_stage_cache_create(diffu_stage *s, int slots, int max_ctx, diffu_err *err);
diffu_kvcache *diffu_stage_cache(diffu_stage *s); /* NULL without one */
/* As diffu_stage_step, the cached forward: kb->b holds only the computed rows
 * (their canvas positions in b.pos), and only their activations travel; every
 * stage's cache slots are written by the rows it computes. kb must pass
 * diffu_kv_batch_check against this stage's cache (asserted by the caller). */
const float *diffu_stage_step_kv(diffu_stage *s, const diffu_kv_batch *kb);
/* Local: after the last step: cancel the pre-posted receive, wait for the sends to be taken. */
void diffu_stage_drain(diffu_stage *s);
/* Local: seconds computing (tp all-reduce included) and waiting for
 * activations or for a send buffer (the pipeline bubble) in diffu_stage_step. */
void diffu_stage_times(const diffu_stage *s, double *busy, double *idle);

#endif
