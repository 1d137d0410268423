/* logits_dist.c — see logits_dist.h. */
#include "logits_dist.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "diffu.pb-c.h"
#include "forward.h"
#include "layout.h"
#include "runtime.h"
#include "stage.h"
#include "threadpool.h"

/* Rank 0: read the ids and lengths into a packed StepCommand. */
static int read_command(const diffu_logits_dist_opts *o, uint8_t **buf, size_t *len, diffu_err *err) {
    FILE *f = fopen(o->ids, "rb");
    if (!f) return diffu_err_set(err, "%s: cannot open: %s", o->ids, strerror(errno));
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (sz <= 0 || sz % 4) {
        fclose(f);
        return diffu_err_set(err, "%s: %ld bytes is not a non-empty list of int32 ids", o->ids, sz);
    }
    int n = (int)(sz / 4);
    int32_t *ids = diffu_xmalloc((size_t)sz);
    size_t got = fread(ids, 4, (size_t)n, f);
    fclose(f);
    if (got != (size_t)n) {
        free(ids);
        return diffu_err_set(err, "%s: short read", o->ids);
    }
    int n_seq = o->n_lengths ? o->n_lengths : 1;
    int *lens = diffu_xmalloc((size_t)n_seq * sizeof *lens);
    if (o->n_lengths) {
        long long tot = 0;
        for (int i = 0; i < n_seq; i++) tot += lens[i] = o->lengths[i];
        if (tot != n) {
            free(ids);
            free(lens);
            return diffu_err_set(err, "--lengths add up to %lld but %s holds %d ids", tot, o->ids, n);
        }
    } else {
        lens[0] = n;
    }
    if (o->microbatches > n_seq) {
        free(ids);
        free(lens);
        return diffu_err_set(err, "--microbatches %d: only %d sequence(s) to split", o->microbatches, n_seq);
    }
    Diffu__StepCommand cmd = DIFFU__STEP_COMMAND__INIT;
    Diffu__SeqStep *seqs = diffu_xcalloc((size_t)n_seq, sizeof *seqs);
    Diffu__SeqStep **ps = diffu_xcalloc((size_t)n_seq, sizeof *ps);
    int at = 0;
    for (int i = 0; i < n_seq; i++) {
        diffu__seq_step__init(&seqs[i]);
        seqs[i].seq_id = (uint64_t)i;
        seqs[i].length = (uint32_t)lens[i];
        seqs[i].n_tokens = (size_t)lens[i];
        seqs[i].tokens = ids + at;
        at += lens[i];
        ps[i] = &seqs[i];
    }
    cmd.n_seqs = (size_t)n_seq;
    cmd.seqs = ps;
    *len = diffu__step_command__get_packed_size(&cmd);
    *buf = diffu_xmalloc(*len + 1);
    diffu__step_command__pack(&cmd, *buf);
    free(ps);
    free(seqs);
    free(ids);
    free(lens);
    return 0;
}

typedef struct {
    diffu_comm *c;
    diffu_xfer *x;
} sender;

/* Last stage: this rank's vocabulary slice of microbatch mb's logits -> rank 0. */
static void send_logits(void *user, int mb, const diffu_batch *b, const float *logits, int vb, int ve) {
    sender *s = user;
    diffu_comm_send_floats(s->c, s->x, 0, logits, (size_t)b->n_rows * (size_t)(ve - vb), mb);
    diffu_comm_wait(s->c, s->x, NULL, NULL); /* the stage reuses the buffer */
}

/* The end of the run on every rank: rank 0 prints the error (before the finalize, so that no rank's exit can
 * end the job before the line is out). */
static int finish(diffu_comm *c, int rc, const diffu_err *err) {
    if (rc && diffu_comm_rank(c) == 0) fprintf(stderr, "diffu logits: error: %s\n", err->msg);
    diffu_comm_finalize(c);
    return rc;
}

/* The sequences of rank 0's StepCommand, split into M microbatches of whole
 * sequences (microbatch k: sequences [k n / M, (k+1) n / M), every row asked). */
typedef struct {
    int n_seq, N, max_seq, max_tokens, max_seqs;
    int *lens, *tok_off;  /* [n_seq], [M + 1] */
    int32_t *ids, *rows;  /* [N] */
    diffu_batch *mbs;     /* [M] */
} batches;

static void split_batches(const uint8_t *buf, size_t len, int M, batches *B) {
    Diffu__StepCommand *cmd = diffu__step_command__unpack(NULL, len, buf);
    DIFFU_ASSERTF(cmd && cmd->n_seqs > 0, "the step command from rank 0 does not parse");
    int n_seq = (int)cmd->n_seqs, N = 0, max_seq = 0;
    int *lens = diffu_xmalloc((size_t)n_seq * sizeof *lens);
    for (int i = 0; i < n_seq; i++) {
        lens[i] = (int)cmd->seqs[i]->length;
        DIFFU_ASSERT(cmd->seqs[i]->n_tokens == (size_t)lens[i]);
        N += lens[i];
        max_seq = lens[i] > max_seq ? lens[i] : max_seq;
    }
    int32_t *ids = diffu_xmalloc((size_t)N * 4), *rows = diffu_xmalloc((size_t)N * 4);
    for (int i = 0, at = 0; i < n_seq; at += lens[i], i++) memcpy(ids + at, cmd->seqs[i]->tokens, (size_t)lens[i] * 4);
    diffu__step_command__free_unpacked(cmd, NULL);
    for (int i = 0; i < N; i++) rows[i] = i;
    diffu_batch *mbs = diffu_xcalloc((size_t)M, sizeof *mbs);
    int *tok_off = diffu_xcalloc((size_t)M + 1, sizeof *tok_off), max_tokens = 0, max_seqs = 1;
    for (int k = 0, at = 0; k < M; k++) {
        int s0 = (int)((long long)k * n_seq / M), s1 = (int)((long long)(k + 1) * n_seq / M), T = 0;
        for (int i = s0; i < s1; i++) T += lens[i];
        mbs[k] = (diffu_batch){s1 - s0, lens + s0, ids + at, NULL, T, rows};
        tok_off[k] = at;
        at += T;
        tok_off[k + 1] = at;
        max_tokens = T > max_tokens ? T : max_tokens;
        max_seqs = s1 - s0 > max_seqs ? s1 - s0 : max_seqs;
    }
    *B = (batches){n_seq, N, max_seq, max_tokens, max_seqs, lens, tok_off, ids, rows, mbs};
}

static void batches_free(batches *B) {
    free(B->mbs);
    free(B->tok_off);
    free(B->ids);
    free(B->rows);
    free(B->lens);
}

int diffu_logits_dist_run(const diffu_logits_dist_opts *o, diffu_err *err) {
    diffu_comm *c;
    if (diffu_comm_init(&c, err)) {
        fprintf(stderr, "diffu logits: error: %s\n", err->msg);
        return -1;
    }
    if (o->timeout > 0) diffu_comm_set_timeout(c, o->timeout);
    int rank = diffu_comm_rank(c);

    /* 1. fingerprint + layout, then the handshake (a local failure travels in it) */
    diffu_layout *l = NULL;
    diffu_runtime_opts ro = {o->model, o->pp, o->tp, o->pp, o->tp, o->threads ? o->threads : diffu_affinity_cpus(), 0, NULL};
    if (diffu_runtime_join(c, &ro, &l, err)) {
        return finish(c, -1, err);
    }

    /* 2. the batch, from rank 0 */
    uint8_t *cbuf = NULL;
    size_t clen = 0;
    int rc = rank == 0 ? read_command(o, &cbuf, &clen, err) : 0;
    if (diffu_comm_agree(c, rc, err->msg, err)) {
        diffu_layout_free(l);
        return finish(c, -1, err);
    }
    diffu_comm_bcast_bytes(c, &cbuf, &clen);
    batches B;
    split_batches(cbuf, clen, o->microbatches, &B);
    free(cbuf);
    int n_seq = B.n_seq, M = o->microbatches, N = B.N;
    diffu_batch *mbs = B.mbs;

    /* 3. this rank's shard */
    diffu_model_opts mo;
    diffu_model_opts_default(&mo);
    mo.max_tokens = B.max_tokens;
    mo.max_seq = B.max_seq;
    mo.max_rows = B.max_tokens;
    mo.max_seqs = B.max_seqs;
    mo.threads = o->threads;
    mo.f32_weights = o->f32;
    mo.quiet = !o->verbose;
    diffu_stage *st = NULL;
    rc = diffu_stage_init(c, l, o->model, &mo, &st, err);
    if (diffu_comm_agree(c, rc, err->msg, err)) {
        diffu_stage_free(st);
        diffu_layout_free(l);
        batches_free(&B);
        return finish(c, -1, err);
    }
    diffu_stage_log_memory(st);

    /* 4. rank 0 posts the receives of every vocabulary slice of every microbatch */
    const diffu_config *cfg = diffu_layout_config(l);
    int P = diffu_layout_pp(l), T = diffu_layout_tp(l), V = cfg->vocab;
    float **slices = NULL;
    diffu_xfer **rx = NULL;
    if (rank == 0) {
        slices = diffu_xcalloc((size_t)M * T, sizeof *slices);
        rx = diffu_xcalloc((size_t)M * T, sizeof *rx);
        for (int k = 0; k < M; k++)
            for (int t = 0; t < T; t++) {
                const diffu_rank_plan *lp = diffu_layout_rank(l, (P - 1) * T + t);
                size_t n = (size_t)mbs[k].n_rows * (size_t)(lp->shard.vocab_end - lp->shard.vocab_begin);
                slices[k * T + t] = diffu_xmalloc(n * 4 + 4);
                rx[k * T + t] = diffu_xfer_new();
                diffu_comm_recv_floats(c, rx[k * T + t], lp->rank, slices[k * T + t], n, k);
            }
    }
    sender snd = {c, diffu_xfer_new()};
    double t0 = diffu_now();
    rc = diffu_stage_run(st, mbs, M, send_logits, &snd, err);
    DIFFU_ASSERTF(rc == 0, "%s", err->msg); /* the plan was made for these batches */
    if (rank == 0) {
        float *out = diffu_xmalloc((size_t)N * (size_t)V * 4);
        for (int k = 0; k < M; k++)
            for (int t = 0; t < T; t++) {
                const diffu_rank_plan *lp = diffu_layout_rank(l, (P - 1) * T + t);
                int vb = lp->shard.vocab_begin, nv = lp->shard.vocab_end - vb;
                diffu_comm_wait(c, rx[k * T + t], NULL, NULL);
                for (int r = 0; r < mbs[k].n_rows; r++)
                    memcpy(out + (size_t)(B.tok_off[k] + r) * V + vb, slices[k * T + t] + (size_t)r * nv, (size_t)nv * 4);
                free(slices[k * T + t]);
                diffu_xfer_free(rx[k * T + t]);
            }
        DLOG_INFO("forward: %d tokens in %d sequence(s), %d microbatch(es), through %d stage(s) x %d tp rank(s): %.1f ms",
                  N, n_seq, M, P, T, 1e3 * (diffu_now() - t0));
        FILE *f = fopen(o->out, "wb");
        if (!f || fwrite(out, 4, (size_t)N * V, f) != (size_t)N * V || fclose(f) != 0)
            rc = diffu_err_set(err, "%s: write failed: %s", o->out, strerror(errno));
        free(out);
        free(slices);
        free(rx);
    }
    if (diffu_comm_agree(c, rc, err->msg, err)) rc = -1;
    diffu_xfer_free(snd.x);
    diffu_stage_free(st);
    diffu_layout_free(l);
    batches_free(&B);
    return finish(c, rc, err);
}
