/* stage.c — see stage.h. */
#include "stage.h"

#include <signal.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct diffu_stage {
    diffu_comm *c;
    const diffu_layout *l;
    const diffu_rank_plan *p;
    diffu_model *m;
    int hidden, max_tokens, nvocab;
    float *x[2];          /* [max_tokens x hidden] each: the residual stream of a microbatch */
    float *logits;        /* [max_rows x nvocab] on the last stage */
    diffu_xfer *rx[2], *tx[2];
    uint64_t next_id;     /* microbatch ids continue across runs (identical on every rank) */
    int runs;
    size_t io_bytes;
    int cur;              /* diffu_stage_step: the buffer of the next microbatch */
    double t_busy, t_idle;
    diffu_kvcache *kv;    /* the KV cache of this rank's layers and KV heads, or NULL */
};

/* With tp = 1 the model's all-reduce hook (called twice per layer from this
 * thread) has nothing to sum; it is the point where this rank lets MPI
 * progress the activations it is sending or receiving while it computes (a
 * large send over shared memory without single-copy, or over TCP, only moves
 * when the sender enters MPI). The buffer is not touched. */
static void progress_hook(float *buf, size_t n, void *comm) {
    (void)buf;
    (void)n;
    diffu_comm_progress(comm);
}

/* "14.20 GiB" / "88.3 MiB" */
static const char *human(char *buf, size_t n, double b) {
    if (b >= 1024.0 * 1024.0 * 1024.0) snprintf(buf, n, "%.2f GiB", b / (1024.0 * 1024.0 * 1024.0));
    else snprintf(buf, n, "%.1f MiB", b / (1024.0 * 1024.0));
    return buf;
}

int diffu_stage_check_memory(diffu_comm *c, const diffu_layout *l, diffu_err *err) {
    double avail = -1, total = -1;
    const char *ov = getenv("DIFFU_MEM_AVAILABLE_MIB");
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        double v;
        while (fgets(line, sizeof line, f)) {
            if (sscanf(line, "MemAvailable: %lf kB", &v) == 1) avail = v * 1024.0;
            else if (sscanf(line, "MemTotal: %lf kB", &v) == 1) total = v * 1024.0;
        }
        fclose(f);
    }
    if (ov && *ov) avail = atof(ov) * 1024.0 * 1024.0;
    if (avail < 0) return 0;
    const char *me = diffu_comm_hostname(c);
    double w = 0, a = 0, io = 0;
    int first = -1, last = -1, n = 0;
    for (int r = 0; r < diffu_comm_size(c); r++) {
        if (strcmp(diffu_comm_host_of(c, r), me)) continue;
        const diffu_rank_plan *p = diffu_layout_rank(l, r);
        w += (double)p->weight_bytes;
        a += (double)p->act_bytes;
        io += (double)p->io_bytes;
        if (first < 0) first = r;
        last = r;
        n++;
    }
    if (w + a + io <= avail) return 0;
    char b1[32], b2[32], b3[32], b4[32], b5[32], b6[32];
    return diffu_err_set(err, "host %s: the layout does not fit: its %d rank(s) (%d-%d) need %s (weights %s,"
                              " activations %s, pipeline buffers and logits %s), MemAvailable is %s%s%s;"
                              " use more nodes or stages, a smaller --max-active / --microbatches, or shorter"
                              " --max-new-tokens (diffu plan)",
                         me, n, first, last, human(b1, 32, w + a + io), human(b2, 32, w), human(b3, 32, a),
                         human(b4, 32, io), human(b5, 32, avail), total > 0 ? " of " : "",
                         total > 0 ? human(b6, 32, total) : "");
}

void diffu_stage_fault_point(diffu_comm *c, const char *point) {
    const char *f = getenv("DIFFU_FAULT");
    if (!f || !*f) return;
    size_t pl = strlen(point);
    if (strncmp(f, point, pl) || f[pl] != ':') return;
    char *end;
    long r = strtol(f + pl + 1, &end, 10);
    if (end == f + pl + 1 || r != diffu_comm_rank(c)) return;
    const char *act = *end == ':' ? end + 1 : "kill";
    DLOG_WARN("DIFFU_FAULT=%s: rank %d %s at '%s' (a testing hook)", f, (int)r,
              !strcmp(act, "stop") ? "stops itself" : !strcmp(act, "exit") ? "exits" : "kills itself", point);
    fflush(stderr);
    if (!strcmp(act, "stop")) raise(SIGSTOP);
    else if (!strcmp(act, "exit")) _exit(1);
    else raise(SIGKILL);
}

int diffu_stage_init(diffu_comm *c, const diffu_layout *l, const char *dir, const diffu_model_opts *mo_in,
                     diffu_stage **out, diffu_err *err) {
    *out = NULL;
    diffu_stage_fault_point(c, "load");
    const diffu_rank_plan *p = diffu_layout_rank(l, diffu_comm_rank(c));
    diffu_model_opts mo = *mo_in;
    mo.layer_begin = p->shard.layer_begin;
    mo.layer_end = p->shard.layer_end;
    mo.tp_rank = p->tp_rank;
    mo.tp_size = diffu_layout_tp(l);
    diffu_model *m;
    if (diffu_model_load(dir, &mo, &m, err)) return -1;
    const diffu_config *mc = diffu_model_config(m), *lc = diffu_layout_config(l);
    if (mc->hidden != lc->hidden || mc->n_layers != lc->n_layers || mc->vocab != lc->vocab) {
        diffu_model_free(m);
        return diffu_err_set(err, "%s: config.json changed between the layout and the load", dir);
    }
    diffu_stage *s = diffu_xcalloc(1, sizeof *s);
    s->c = c;
    s->l = l;
    s->p = p;
    s->m = m;
    s->hidden = mc->hidden;
    s->max_tokens = diffu_model_act_rows(m); /* padded rows (forward.h, "Row layout") */
    s->nvocab = diffu_model_vocab_local(m);
    size_t xb = (size_t)s->max_tokens * (size_t)s->hidden * 4;
    s->x[0] = diffu_xaligned(xb);
    s->x[1] = diffu_xaligned(xb);
    s->io_bytes = 2 * xb;
    if (p->shard.head) {
        size_t lb = (size_t)diffu_model_logit_rows(m) * (size_t)s->nvocab * 4;
        s->logits = diffu_xaligned(lb);
        s->io_bytes += lb;
    }
    for (int i = 0; i < 2; i++) {
        s->rx[i] = diffu_xfer_new();
        s->tx[i] = diffu_xfer_new();
    }
    if (diffu_layout_tp(l) > 1) diffu_model_set_allreduce(m, diffu_comm_tp_allreduce, c);
    else if (diffu_layout_pp(l) > 1) diffu_model_set_allreduce(m, progress_hook, c);
    *out = s;
    return 0;
}

void diffu_stage_free(diffu_stage *s) {
    if (!s) return;
    for (int i = 0; i < 2; i++) {
        diffu_comm_wait(s->c, s->rx[i], NULL, NULL);
        diffu_comm_wait(s->c, s->tx[i], NULL, NULL);
        diffu_xfer_free(s->rx[i]);
        diffu_xfer_free(s->tx[i]);
    }
    free(s->x[0]);
    free(s->x[1]);
    free(s->logits);
    diffu_kvcache_free(s->kv);
    diffu_model_free(s->m);
    free(s);
}

diffu_model *diffu_stage_model(diffu_stage *s) { return s->m; }

int diffu_stage_cache_create(diffu_stage *s, int slots, int max_ctx, diffu_err *err) {
    DIFFU_ASSERT(!s->kv);
    return diffu_kvcache_create(s->m, slots, max_ctx, &s->kv, err); /* (prints its plan line unless quiet) */
}

diffu_kvcache *diffu_stage_cache(diffu_stage *s) { return s->kv; }

/* VmRSS of this process in bytes (Linux), 0 if unknown. */
static size_t rss_bytes(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) break;
    fclose(f);
    return (size_t)kb * 1024;
}

static double mib(double b) { return b / 1048576.0; }

void diffu_stage_log_memory(diffu_stage *s) {
    const diffu_shard *sh = &s->p->shard;
    const diffu_weights *w = diffu_model_weights(s->m);
    char voc[48] = "-";
    if (sh->head) snprintf(voc, sizeof voc, "[%d,%d)", sh->vocab_begin, sh->vocab_end);
    DLOG_INFO("shard: stage %d/%d tp %d/%d layers [%d,%d)%s%s q heads [%d,%d) kv [%d,%d) ffn [%d,%d) vocab %s; "
              "weights %.2f MiB mapped + %.2f MiB owned, activations %.2f MiB + pipeline %.2f MiB; VmRSS %.1f MiB "
              "(host %s, pid %d, %d thread(s))",
              s->p->stage, diffu_layout_pp(s->l), s->p->tp_rank, diffu_layout_tp(s->l), sh->layer_begin, sh->layer_end,
              sh->embed ? " +embed" : "", sh->head ? " +head" : "", sh->q_head_begin, sh->q_head_end, sh->kv_head_begin,
              sh->kv_head_end, sh->ffn_begin, sh->ffn_end, voc, mib((double)w->bytes_mapped), mib((double)w->bytes_owned),
              mib((double)diffu_model_plan_bytes(s->m)), mib((double)s->io_bytes), mib((double)rss_bytes()),
              diffu_comm_hostname(s->c), (int)getpid(), diffu_model_get_opts(s->m)->threads);
}

/* The same verdict on every rank: depends only on the batch and the plan. */
static int check_batch(diffu_stage *s, const diffu_batch *b, int mb, diffu_err *err);

int diffu_stage_check(diffu_stage *s, const diffu_batch *b, diffu_err *err) { return check_batch(s, b, 0, err); }

/* One microbatch: kb (the cached forward over its rows) or the plain forward of b. */
static const float *step(diffu_stage *s, const diffu_batch *b, const diffu_kv_batch *kb) {
    const diffu_rank_plan *p = s->p;
    int first = p->prev_rank < 0, last = p->next_rank < 0, H = s->hidden;
    uint64_t id = s->next_id++;
    int cur = s->cur, T = diffu_batch_tokens(b); /* activations travel compact: one row per token */
    float *x = s->x[cur];
    double t0 = diffu_now(), waited = 0;
    s->runs++;
    char where[64];
    snprintf(where, sizeof where, "microbatch %llu", (unsigned long long)id);
    diffu_comm_debug_stall(s->c, (long)id, id ? where : "its first forward");
    if (first) {
        diffu_comm_wait(s->c, s->tx[cur], NULL, NULL); /* microbatch id-2 has left this buffer */
        waited = diffu_now() - t0;
        diffu_forward_embed(s->m, b, x);
    } else {
        if (!diffu_xfer_pending(s->rx[cur])) {
            diffu_comm_wait(s->c, s->tx[cur], NULL, NULL);
            diffu_comm_recv_act(s->c, s->rx[cur], p->prev_rank, x, s->max_tokens, H);
        }
        int got = 0;
        uint64_t gid = 0;
        diffu_comm_wait(s->c, s->rx[cur], &got, &gid);
        DIFFU_ASSERTF(got == T && gid == id, "stage %d got microbatch %llu of %d rows from rank %d, expected %llu of %d",
                      p->stage, (unsigned long long)gid, got, p->prev_rank, (unsigned long long)id, T);
        /* receive the next microbatch into the other buffer while computing this one, if that buffer is free */
        int nx = cur ^ 1;
        if (diffu_comm_test(s->c, s->tx[nx])) diffu_comm_recv_act(s->c, s->rx[nx], p->prev_rank, s->x[nx], s->max_tokens, H);
        waited = diffu_now() - t0;
        diffu_batch_expand(s->m, b, x); /* into this stage's row layout (forward.h) */
    }
    if (kb) diffu_forward_layers_kv(s->m, s->kv, kb, x);
    else diffu_forward_layers(s->m, b, x);
    if (!last) diffu_comm_send_act(s->c, s->tx[cur], p->next_rank, x, diffu_batch_compact(s->m, b, x), H, id);
    else diffu_forward_head(s->m, b, x, s->logits);
    s->cur ^= 1;
    s->t_idle += waited;
    s->t_busy += diffu_now() - t0 - waited;
    return last ? s->logits : NULL;
}

const float *diffu_stage_step(diffu_stage *s, const diffu_batch *b) { return step(s, b, NULL); }

const float *diffu_stage_step_kv(diffu_stage *s, const diffu_kv_batch *kb) {
    DIFFU_ASSERT(s->kv);
    return step(s, &kb->b, kb);
}

void diffu_stage_drain(diffu_stage *s) {
    double t0 = diffu_now();
    for (int i = 0; i < 2; i++) {
        diffu_comm_cancel(s->c, s->rx[i]);
        diffu_comm_wait(s->c, s->tx[i], NULL, NULL);
    }
    s->t_idle += diffu_now() - t0;
}

void diffu_stage_times(const diffu_stage *s, double *busy, double *idle) {
    *busy = s->t_busy;
    *idle = s->t_idle;
}

static int check_batch(diffu_stage *s, const diffu_batch *b, int mb, diffu_err *err) {
    if (diffu_batch_check(s->m, b, err)) return diffu_err_prefix(err, "microbatch %d", mb);
    if (s->p->stage == 0 && !b->tokens) return diffu_err_set(err, "microbatch %d: no tokens for the embedding", mb);
    if (b->tokens) { /* diffu_batch_check looks at ids only on the embedding's ranks */
        int n = diffu_batch_tokens(b), V = diffu_model_config(s->m)->vocab;
        for (int i = 0; i < n; i++)
            if (b->tokens[i] < 0 || b->tokens[i] >= V)
                return diffu_err_set(err, "microbatch %d: token %d: id %d is outside the vocabulary [0, %d)", mb, i,
                                     b->tokens[i], V);
    }
    return 0;
}

int diffu_stage_run(diffu_stage *s, const diffu_batch *batches, int n, diffu_stage_logits_fn fn, void *user,
                    diffu_err *err) {
    for (int i = 0; i < n; i++)
        if (check_batch(s, &batches[i], i, err)) return -1;
    if (n == 0) return 0;
    const diffu_rank_plan *p = s->p;
    int first = p->prev_rank < 0, last = p->next_rank < 0, H = s->hidden;
    uint64_t base = s->next_id;
    s->next_id += (uint64_t)n;
    if (s->runs++ == 0) diffu_comm_debug_stall(s->c, 0, "its first forward");
    if (!first) diffu_comm_recv_act(s->c, s->rx[0], p->prev_rank, s->x[0], s->max_tokens, H);
    for (int mb = 0; mb < n; mb++) {
        const diffu_batch *b = &batches[mb];
        int cur = mb & 1, T = diffu_batch_tokens(b); /* activations travel compact: one row per token */
        float *x = s->x[cur];
        if (first) {
            diffu_comm_wait(s->c, s->tx[cur], NULL, NULL); /* microbatch mb-2 left this buffer */
            diffu_forward_embed(s->m, b, x);
        } else {
            int got = 0;
            uint64_t id = 0;
            diffu_comm_wait(s->c, s->rx[cur], &got, &id);
            DIFFU_ASSERTF(got == T && id == base + (uint64_t)mb,
                          "stage %d got microbatch %llu of %d rows from rank %d, expected %llu of %d", p->stage,
                          (unsigned long long)id, got, p->prev_rank, (unsigned long long)(base + mb), T);
            if (mb + 1 < n) { /* receive the next microbatch while computing this one */
                int nx = cur ^ 1;
                diffu_comm_wait(s->c, s->tx[nx], NULL, NULL);
                diffu_comm_recv_act(s->c, s->rx[nx], p->prev_rank, s->x[nx], s->max_tokens, H);
            }
            diffu_batch_expand(s->m, b, x);
        }
        diffu_forward_layers(s->m, b, x);
        if (!last) {
            diffu_comm_send_act(s->c, s->tx[cur], p->next_rank, x, diffu_batch_compact(s->m, b, x), H,
                                base + (uint64_t)mb);
        } else {
            diffu_forward_head(s->m, b, x, s->logits);
            if (fn) fn(user, mb, b, s->logits, p->shard.vocab_begin, p->shard.vocab_end);
        }
    }
    for (int i = 0; i < 2; i++) diffu_comm_wait(s->c, s->tx[i], NULL, NULL);
    return 0;
}
