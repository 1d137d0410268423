/* worker.c — see worker.h. */
#include "worker.h"

#include <stdlib.h>
#include <string.h>

#include "diffu.pb-c.h"
#include "forward.h"
#include "philox.h"
#include "sampler.h"
#include "sampler_vp.h"
#include "wire.h"

typedef struct {
    int used;
    uint64_t seq_id;
    int len;
    /* last stage */
    diffu_sampler_params sp;
    diffu_philox_key key;
    uint32_t request, sample;
    int kslot;              /* its KV-cache slot (kv_cache runs), -1: none */
} wslot;

struct diffu_worker {
    diffu_comm *c;
    diffu_stage *st;
    diffu_model *m;
    diffu_worker_plan plan;
    int embed, head, tp0, rank, vocab;
    wslot *slots;           /* [max_active] */
    diffu_kvcache *kv;      /* the stage's KV cache, or NULL */
    int32_t *pos;           /* [mb_max_tokens] kv: the computed rows' canvas positions */
    int *kslot, *kctx;      /* [mb_max_seqs] kv: the sequences' cache slots and canvas lengths */
    int32_t *canvas;        /* [max_active x max_seq] stage 0 */
    /* the batch */
    int *seq_len;           /* [mb_max_seqs] */
    int32_t *tokens;        /* [mb_max_tokens] */
    int32_t *rows;          /* [mb_max_rows] */
    diffu_sample_job *jobs; /* [mb_max_rows] */
    diffu_sample *samples;  /* [mb_max_rows] */
    int32_t *res_tok;       /* [mb_max_rows] */
    double *res_conf;       /* [mb_max_rows] */
    diffu_sampler_vp *sampler;
    /* messages */
    diffu_wire_arena arena;
    diffu_bytes inbox;
    diffu_wire_packbuf out[2];   /* StepResults, double-buffered */
    diffu_xfer *tx[2];
    int out_cur;
    uint64_t next_mb;
    diffu_worker_result_fn local_fn;
    void *local_user;
    diffu_worker_stats ws;
    double t_sample, t_msg, t_wait;
    /* live utilization for rank 0's progress (stage tp-0 ranks other than 0) */
    diffu_xfer *tx_live;
    float live[2];          /* [busy seconds, seconds since the first command] */
    double t_live;
};

diffu_worker *diffu_worker_create(diffu_comm *c, diffu_stage *st, const diffu_worker_plan *plan, diffu_err *err) {
    const diffu_rank_plan *rp = diffu_comm_plan(c);
    diffu_model *m = diffu_stage_model(st);
    const diffu_model_opts *mo = diffu_model_get_opts(m);
    if (plan->max_active < 1 || plan->mb_max_seqs < 1 || plan->mb_max_tokens < 1 || plan->mb_max_rows < 1 ||
        plan->max_seq < 1) {
        diffu_err_set(err, "worker plan: every capacity must be >= 1");
        return NULL;
    }
    if (mo->max_tokens < plan->mb_max_tokens || mo->max_seqs < plan->mb_max_seqs || mo->max_rows < plan->mb_max_rows ||
        mo->max_seq < plan->max_seq) {
        diffu_err_set(err, "the model's plan (%d tokens, %d sequences, %d rows, %d per sequence) is smaller than a"
                      " microbatch (%d, %d, %d, %d)", mo->max_tokens, mo->max_seqs, mo->max_rows, mo->max_seq,
                      plan->mb_max_tokens, plan->mb_max_seqs, plan->mb_max_rows, plan->max_seq);
        return NULL;
    }
    diffu_worker *w = diffu_xcalloc(1, sizeof *w);
    w->c = c;
    w->st = st;
    w->m = m;
    w->plan = *plan;
    w->embed = rp->shard.embed;
    w->head = rp->shard.head;
    w->tp0 = rp->tp_rank == 0;
    w->rank = diffu_comm_rank(c);
    w->vocab = diffu_model_config(m)->vocab;
    w->slots = diffu_xcalloc((size_t)plan->max_active, sizeof *w->slots);
    for (int i = 0; i < plan->max_active; i++) w->slots[i].kslot = -1;
    if (plan->kv_cache) {
        if (diffu_stage_cache_create(st, plan->max_active, plan->max_seq, err)) {
            free(w->slots);
            free(w);
            return NULL;
        }
        w->kv = diffu_stage_cache(st);
        w->pos = diffu_xmalloc((size_t)plan->mb_max_tokens * sizeof *w->pos);
        w->kslot = diffu_xmalloc((size_t)plan->mb_max_seqs * sizeof *w->kslot);
        w->kctx = diffu_xmalloc((size_t)plan->mb_max_seqs * sizeof *w->kctx);
    }
    if (w->embed) w->canvas = diffu_xmalloc((size_t)plan->max_active * (size_t)plan->max_seq * sizeof *w->canvas);
    w->seq_len = diffu_xmalloc((size_t)plan->mb_max_seqs * sizeof *w->seq_len);
    if (w->embed) w->tokens = diffu_xmalloc((size_t)plan->mb_max_tokens * sizeof *w->tokens);
    w->rows = diffu_xmalloc((size_t)plan->mb_max_rows * sizeof *w->rows);
    if (w->head) {
        w->jobs = diffu_xmalloc((size_t)plan->mb_max_rows * sizeof *w->jobs);
        w->samples = diffu_xmalloc((size_t)plan->mb_max_rows * sizeof *w->samples);
        w->res_tok = diffu_xmalloc((size_t)plan->mb_max_rows * sizeof *w->res_tok);
        w->res_conf = diffu_xmalloc((size_t)plan->mb_max_rows * sizeof *w->res_conf);
        int T = rp->shard.tp_size;
        w->sampler = diffu_sampler_vp_create(w->vocab, rp->shard.vocab_begin, rp->shard.vocab_end, rp->tp_rank, T,
                                             T > 1 ? diffu_comm_stage_allgather : NULL, c, diffu_model_pool(m),
                                             plan->mb_max_rows);
    }
    diffu_wire_arena_init(&w->arena, (size_t)plan->mb_max_tokens * 16 + (size_t)plan->mb_max_seqs * 256 + 4096);
    for (int i = 0; i < 2; i++) w->tx[i] = diffu_xfer_new();
    w->tx_live = diffu_xfer_new();
    return w;
}

void diffu_worker_free(diffu_worker *w) {
    if (!w) return;
    for (int i = 0; i < 2; i++) {
        diffu_comm_wait(w->c, w->tx[i], NULL, NULL);
        diffu_xfer_free(w->tx[i]);
        diffu_wire_packbuf_free(&w->out[i]);
    }
    diffu_comm_wait(w->c, w->tx_live, NULL, NULL);
    diffu_xfer_free(w->tx_live);
    free(w->slots);
    free(w->pos);
    free(w->kslot);
    free(w->kctx);
    free(w->canvas);
    free(w->seq_len);
    free(w->tokens);
    free(w->rows);
    free(w->jobs);
    free(w->samples);
    free(w->res_tok);
    free(w->res_conf);
    diffu_sampler_vp_free(&w->sampler);
    diffu_wire_arena_free(&w->arena);
    diffu_bytes_free(&w->inbox);
    free(w);
}

void diffu_worker_set_local_result(diffu_worker *w, diffu_worker_result_fn fn, void *user) {
    w->local_fn = fn;
    w->local_user = user;
}

static diffu_conf_kind conf_kind(Diffu__Confidence c) {
    return c == DIFFU__CONFIDENCE__CONF_MARGIN ? DIFFU_CONF_MARGIN
           : c == DIFFU__CONFIDENCE__CONF_NEG_ENTROPY ? DIFFU_CONF_NEG_ENTROPY : DIFFU_CONF_PROB;
}

/* Take one sequence's step into its slot; append its tokens / rows / jobs. */
static void take_step(diffu_worker *w, const Diffu__SeqStep *q, int k, int *tok, int *nrows) {
    DIFFU_ASSERTF(q->slot < (uint32_t)w->plan.max_active && q->length >= 1 && q->length <= (uint32_t)w->plan.max_seq,
                  "step command: slot %u / length %u outside the plan (%d slots, %d tokens)", q->slot, q->length,
                  w->plan.max_active, w->plan.max_seq);
    wslot *sl = &w->slots[q->slot];
    int L = (int)q->length;
    if (q->first) {
        int ks = sl->kslot;
        memset(sl, 0, sizeof *sl);
        sl->used = 1;
        sl->seq_id = q->seq_id;
        sl->len = L;
        sl->kslot = -1;
        if (w->kv) { /* a fresh cache slot: every row must be computed before it is attended to */
            if (ks >= 0) diffu_kvcache_release(w->kv, ks);
            sl->kslot = diffu_kvcache_acquire(w->kv);
            DIFFU_ASSERT(sl->kslot >= 0); /* as many cache slots as state slots */
        }
    }
    DIFFU_ASSERTF(sl->used && sl->seq_id == q->seq_id && sl->len == L,
                  "step command: slot %u holds sequence %llx of %d tokens, the command says %llx of %d", q->slot,
                  (unsigned long long)sl->seq_id, sl->len, (unsigned long long)q->seq_id, L);
    /* the rows computed: every position, or (KV cache) those the step names */
    const uint32_t *rows = q->n_rows ? q->rows : NULL;
    int nr = rows ? (int)q->n_rows : L;
    DIFFU_ASSERTF(w->kv || !rows, "slot %u: a step naming %zu rows, but this run holds no KV cache", q->slot, q->n_rows);
    DIFFU_ASSERTF(!rows || !q->first, "slot %u: the first step of a sequence must compute every row", q->slot);
    if (w->kv) {
        for (int j = 0; j < nr; j++) {
            DIFFU_ASSERTF(!rows || (rows[j] < (uint32_t)L && (j == 0 || rows[j] > rows[j - 1])), "slot %u: row %u outside"
                          " the canvas of %d or not ascending", q->slot, rows ? rows[j] : 0, L);
            w->pos[*tok + j] = rows ? (int32_t)rows[j] : j;
        }
        w->kslot[k] = sl->kslot;
        w->kctx[k] = L;
    }
    w->seq_len[k] = nr;
    if (w->embed) {
        int32_t *cv = w->canvas + (size_t)q->slot * (size_t)w->plan.max_seq;
        if (q->first) {
            DIFFU_ASSERTF(q->n_tokens == (size_t)L, "first step of slot %u: %zu tokens for a canvas of %d", q->slot,
                          q->n_tokens, L);
            memcpy(cv, q->tokens, (size_t)L * sizeof *cv);
        } else {
            DIFFU_ASSERT(q->n_changed_pos == q->n_changed_tok);
            for (size_t j = 0; j < q->n_changed_pos; j++) {
                DIFFU_ASSERTF(q->changed_pos[j] < (uint32_t)L, "changed position %u outside the canvas", q->changed_pos[j]);
                cv[q->changed_pos[j]] = q->changed_tok[j];
            }
        }
        for (int p = 0; p < L; p++)
            DIFFU_ASSERTF(cv[p] >= 0 && cv[p] < w->vocab, "slot %u: token %d at %d outside the vocabulary", q->slot, cv[p], p);
        DIFFU_ASSERTF(diffu_wire_hash_i32(cv, (size_t)L) == q->canvas_hash,
                      "slot %u: stage 0's canvas of sequence %llx differs from the coordinator's (hash)", q->slot,
                      (unsigned long long)q->seq_id);
        if (rows)
            for (int j = 0; j < nr; j++) w->tokens[*tok + j] = cv[rows[j]];
        else memcpy(w->tokens + *tok, cv, (size_t)L * sizeof *cv);
    }
    if (w->head) {
        if (q->first) {
            DIFFU_ASSERTF(q->params, "first step of slot %u without sampling parameters", q->slot);
            diffu_sampler_params_default(&sl->sp);
            sl->sp.temperature = q->params->temperature;
            sl->sp.top_p = q->params->top_p;
            sl->sp.top_k = (int)q->params->top_k;
            sl->sp.conf = conf_kind(q->params->conf);
            sl->sp.ban_token = q->params->ban_token;
            sl->key = diffu_philox_seed(q->rng_key);
            sl->request = q->request;
            sl->sample = q->sample;
        }
        DIFFU_ASSERTF(*nrows + (int)q->n_positions <= w->plan.mb_max_rows, "step command: more rows than the plan's %d",
                      w->plan.mb_max_rows);
        for (size_t j = 0; j < q->n_positions; j++) {
            uint32_t p = q->positions[j];
            DIFFU_ASSERTF(p < (uint32_t)L && (j == 0 || p > q->positions[j - 1]), "position %u: outside the canvas or"
                          " not ascending", p);
            int r = *nrows + (int)j, src = diffu_sampler_row_of((int)p); /* the logit shift: row p - 1 predicts p */
            if (rows) { /* its index among the computed rows */
                int lo = 0, hi = nr - 1;
                while (lo < hi) {
                    int mid = (lo + hi) / 2;
                    if ((int)rows[mid] < src) lo = mid + 1;
                    else hi = mid;
                }
                DIFFU_ASSERTF((int)rows[lo] == src, "slot %u: row %d, which predicts position %u, is not computed",
                              q->slot, src, p);
                src = lo;
            }
            w->rows[r] = *tok + src;
            w->jobs[r].params = &sl->sp;
            w->jobs[r].key = sl->key;
            w->jobs[r].ctr = diffu_philox_addr(sl->request, sl->sample, q->step, p, DIFFU_RNG_TOKEN);
        }
        *nrows += (int)q->n_positions;
    }
    *tok += nr;
}

static void send_result(diffu_worker *w, uint64_t mb, int n_rows, double busy) {
    Diffu__StepResult r = DIFFU__STEP_RESULT__INIT;
    r.microbatch = mb;
    for (int i = 0; i < n_rows; i++) {
        w->res_tok[i] = w->samples[i].token;
        w->res_conf[i] = w->samples[i].conf;
    }
    r.n_token = r.n_confidence = (size_t)n_rows;
    r.token = w->res_tok;
    r.confidence = w->res_conf;
    r.busy_seconds = busy;
    if (w->local_fn) {
        diffu_wire_packbuf *b = &w->out[0];
        diffu_wire_pack(b, &r.base);
        w->local_fn(w->local_user, b->data, b->len);
        return;
    }
    int k = w->out_cur;
    w->out_cur ^= 1;
    double t0 = diffu_now();
    diffu_comm_wait(w->c, w->tx[k], NULL, NULL); /* the result before last has been taken */
    w->t_wait += diffu_now() - t0;
    diffu_wire_pack(&w->out[k], &r.base);
    diffu_comm_send_bytes(w->c, w->tx[k], 0, w->out[k].data, w->out[k].len, DIFFU_TAG_RESULT);
}

/* A stage's tp-0 rank (not rank 0) tells rank 0 its busy time now and then,
 * for the job's live per-stage utilization: two floats, never waited for (the
 * previous report must have gone; else this one is skipped); the last one
 * (Shutdown, elapsed -1) always goes. */
static void send_live(diffu_worker *w, int last) {
    double now = diffu_now();
    if (w->rank == 0 || !w->tp0) return;
    if (last) diffu_comm_wait(w->c, w->tx_live, NULL, NULL); /* the last report must go */
    else if (now - w->t_live < DIFFU_LIVE_SECONDS || !diffu_comm_test(w->c, w->tx_live)) return;
    w->t_live = now;
    w->live[0] = (float)diffu_worker_get_stats(w)->busy;
    w->live[1] = last ? -1.0f : (float)(now - w->ws.t_first);
    diffu_comm_send_floats(w->c, w->tx_live, 0, w->live, 2, DIFFU_LIVE_TAG);
}

int diffu_worker_exec(diffu_worker *w, const uint8_t *msg, size_t len, int *exit_code) {
    double t0 = diffu_now();
    if (w->ws.microbatches == 0 && w->ws.t_first == 0) w->ws.t_first = t0;
    Diffu__Control *ctl = diffu_wire_arena_unpack(&w->arena, &diffu__control__descriptor, len, msg);
    DIFFU_ASSERTF(ctl, "a control message of %zu bytes from rank 0 does not parse", len);
    if (ctl->msg_case == DIFFU__CONTROL__MSG_SHUTDOWN) {
        *exit_code = ctl->shutdown->exit_code;
        w->ws.t_last = diffu_now();
        send_live(w, 1);
        return 1;
    }
    DIFFU_ASSERTF(ctl->msg_case == DIFFU__CONTROL__MSG_STEP && ctl->step, "a control message that is neither a step nor"
                  " a shutdown");
    const Diffu__StepCommand *cmd = ctl->step;
    DIFFU_ASSERTF(cmd->microbatch == w->next_mb, "step command for microbatch %llu, expected %llu",
                  (unsigned long long)cmd->microbatch, (unsigned long long)w->next_mb);
    DIFFU_ASSERTF(cmd->n_seqs >= 1 && cmd->n_seqs <= (size_t)w->plan.mb_max_seqs, "step command with %zu sequences"
                  " (plan: 1 to %d)", cmd->n_seqs, w->plan.mb_max_seqs);
    w->next_mb++;
    for (size_t i = 0; i < cmd->n_release; i++) {
        DIFFU_ASSERT(cmd->release[i] < (uint32_t)w->plan.max_active);
        wslot *sl = &w->slots[cmd->release[i]];
        sl->used = 0;
        if (sl->kslot >= 0) diffu_kvcache_release(w->kv, sl->kslot);
        sl->kslot = -1;
    }
    int tok = 0, nrows = 0;
    for (size_t i = 0; i < cmd->n_seqs; i++) {
        DIFFU_ASSERTF(tok + (int)cmd->seqs[i]->length <= w->plan.mb_max_tokens, "step command: more tokens than the"
                      " plan's %d", w->plan.mb_max_tokens);
        take_step(w, cmd->seqs[i], (int)i, &tok, &nrows);
    }
    diffu_batch b = {(int)cmd->n_seqs, w->seq_len, w->embed ? w->tokens : NULL, w->kv ? w->pos : NULL,
                     w->head ? nrows : 0, w->rows};
    diffu_kv_batch kb = {b, w->kslot, w->kctx};
    diffu_err err;
    DIFFU_ASSERTF(diffu_stage_check(w->st, &b, &err) == 0, "microbatch %llu: %s", (unsigned long long)cmd->microbatch,
                  err.msg);
    DIFFU_ASSERTF(!w->kv || diffu_kv_batch_check(w->m, w->kv, &kb, &err) == 0, "microbatch %llu: %s",
                  (unsigned long long)cmd->microbatch, err.msg);
    double t1 = diffu_now();
    w->t_msg += t1 - t0;
    const float *logits = w->kv ? diffu_stage_step_kv(w->st, &kb) : diffu_stage_step(w->st, &b);
    if (w->head) {
        double t2 = diffu_now();
        int nv = diffu_model_vocab_local(w->m);
        diffu_sampler_vp_run(w->sampler, nrows, logits, (size_t)nv, w->jobs, w->samples);
        double t3 = diffu_now();
        w->t_sample += t3 - t2;
        if (w->tp0) send_result(w, cmd->microbatch, nrows, t3 - t1);
        w->t_msg += diffu_now() - t3;
        w->ws.rows += nrows;
    }
    w->ws.microbatches++;
    w->ws.seq_steps += (long)cmd->n_seqs;
    send_live(w, 0);
    *exit_code = 0;
    return 0;
}

int diffu_worker_loop(diffu_worker *w) {
    int code = 0;
    for (;;) {
        diffu_comm_recv_bytes(w->c, 0, DIFFU_TAG_CONTROL, &w->inbox, "the next step command from");
        if (diffu_worker_exec(w, w->inbox.data, w->inbox.len, &code)) break;
    }
    diffu_worker_drain(w);
    return code;
}

void diffu_worker_drain(diffu_worker *w) {
    double t0 = diffu_now();
    diffu_stage_drain(w->st);
    for (int i = 0; i < 2; i++) diffu_comm_wait(w->c, w->tx[i], NULL, NULL);
    diffu_comm_wait(w->c, w->tx_live, NULL, NULL);
    w->t_wait += diffu_now() - t0;
    if (w->ws.t_last == 0) w->ws.t_last = diffu_now();
}

const diffu_worker_stats *diffu_worker_get_stats(diffu_worker *w) {
    double sb, si;
    diffu_stage_times(w->st, &sb, &si);
    const diffu_comm_stats *cs = diffu_comm_get_stats(w->c);
    w->ws.sample = w->t_sample;
    w->ws.busy = sb + w->t_sample + w->t_msg;
    /* idle: the stage's waits for activations / send buffers, waits for commands, result buffers */
    w->ws.idle = si + cs->wait_ctrl + w->t_wait;
    return &w->ws;
}
