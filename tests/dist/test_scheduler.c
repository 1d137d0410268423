/* test_scheduler.c — coordinator/scheduler.h in one process (no MPI, no
 * model): a fake pipeline executes the scheduler's Control messages and
 * answers with StepResults whose (token, confidence) are a fixed function of
 * (request, sample, step, position). Because a policy's evolution depends only
 * on those samples, every sequence must end EXACTLY as the same policy driven
 * directly (prepare -> the same samples -> commit, one sequence at a time) —
 * whatever the microbatch packing, admission order, phase spread or result
 * latency. Checked for every algorithm, threshold / blocks / early stop,
 * ragged prompts, and scheduler settings M = 1..5, max_active 1..n, spread
 * 1..4, tight microbatch caps, results held back at random.
 * Also checked on every message: each role variant carries only its role's
 * fields (stage 0: the canvas on a slot's first step, then only changed
 * positions, whose result matches the canvas hash; the last stage: positions,
 * step, and parameters + key on the first step only; stages in between:
 * lengths only); slots are unique among sequences in flight and released when
 * they finish; microbatch ids ascend; a result for the wrong microbatch is
 * refused. Every case runs twice: the sequences given up front, and lazily
 * (diffu_sched_opts.make: created at admission, in order, never more than
 * max_active unfinished ones at a time). A make() that fails stops admission
 * (diffu_sched_failed) and the scheduler drains what is in flight.
 * Prints "N passed, M failed"; exit 1 on any failure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "denoise.h"
#include "diffu.pb-c.h"
#include "philox.h"
#include "scheduler.h"
#include "wire.h"

#include "check.h" /* tests/common: CHECK, n_pass, n_fail, check_report */

enum { V = 500, MASK = 499, MAXSEQ = 64, MAXSLOT = 64 };

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* The fake sampler: a fixed function of the sample's address. */
static diffu_sample fake(uint32_t req, uint32_t smp, uint32_t step, uint32_t pos) {
    uint64_t h = mix((uint64_t)req << 40 ^ (uint64_t)smp << 32 ^ (uint64_t)step << 16 ^ pos);
    diffu_sample s;
    s.token = (int32_t)(h % 480) + 10; /* never the mask (499); 10..489 */
    s.pad_ = 0;
    s.conf = (double)(h >> 11) * (1.0 / 9007199254740992.0);
    return s;
}

/* Drive one policy directly: the reference. */
static void reference(diffu_denoise *d) {
    diffu_sample smp[MAXSEQ];
    while (!diffu_denoise_done(d)) {
        int n = diffu_denoise_prepare(d);
        const int32_t *pos = diffu_denoise_positions(d);
        for (int k = 0; k < n; k++)
            smp[k] = fake(diffu_denoise_request(d), diffu_denoise_sample(d), (uint32_t)diffu_denoise_steps_taken(d),
                          (uint32_t)pos[k]);
        diffu_denoise_commit(d, n ? smp : NULL);
    }
}

typedef struct {
    int used;
    uint64_t seq;
    int len;
    int32_t canvas[MAXSEQ];
    uint32_t req, smp;
    int have_params;
} fslot;

typedef struct {
    uint8_t *msg;
    size_t len;
} held;

/* A StepResult for microbatch id with n (token, confidence) pairs, packed into pk. */
static size_t pack_result(diffu_wire_packbuf *pk, long id, int32_t *tok, double *conf, int n) {
    Diffu__StepResult r = DIFFU__STEP_RESULT__INIT;
    r.microbatch = (uint64_t)id;
    r.n_token = r.n_confidence = (size_t)n;
    r.token = tok;
    r.confidence = conf;
    return diffu_wire_pack(pk, &r.base);
}

/* Lazy admission: make(i) hands out the pre-made policy i (or fails at fail_at). */
typedef struct {
    diffu_denoise **seqs;
    int n, next, max_active, fail_at;
    const char *label;
} lazy_src;

static diffu_denoise *lazy_make(void *user, int i) {
    lazy_src *z = user;
    CHECK(i == z->next && i < z->n, "%s: make(%d), expected make(%d)", z->label, i, z->next);
    z->next = i + 1;
    int open = 0;
    for (int k = 0; k < i; k++) open += !diffu_denoise_done(z->seqs[k]);
    CHECK(open < z->max_active, "%s: make(%d) with %d unfinished sequences already (max_active %d)", z->label, i, open,
          z->max_active);
    return i == z->fail_at ? NULL : z->seqs[i];
}

/* diffu_sched_opts.finished: each sequence exactly once, already done, the
 * one the scheduler was given for that index. */
typedef struct {
    diffu_denoise **seqs;
    int n, *count;
    const char *label;
} fin_log;

static void on_finished(void *user, int i, diffu_denoise *d) {
    fin_log *f = user;
    CHECK(i >= 0 && i < f->n && d == f->seqs[i] && diffu_denoise_done(d), "%s: finished(%d) with another or an unfinished"
          " sequence", f->label, i);
    if (i >= 0 && i < f->n) f->count[i]++;
}

static void run_case(const char *label, const diffu_denoise_params *p, int n_prompts, int n_samples, int M, int max_active,
                     int spread, int mb_cap, uint64_t seed, int lazy) {
    diffu_err err;
    int n = n_prompts * n_samples;
    diffu_denoise **ours = calloc((size_t)n, sizeof *ours), **ref = calloc((size_t)n, sizeof *ref);
    int max_len = 0;
    for (int i = 0; i < n_prompts; i++) {
        int32_t prompt[16];
        int L = 1 + (int)(mix(seed + (uint64_t)i) % 12);
        for (int k = 0; k < L; k++) prompt[k] = (int32_t)(mix(seed * 31 + (uint64_t)(i * 16 + k)) % 400) + 5;
        for (int s = 0; s < n_samples; s++) {
            ours[i * n_samples + s] = diffu_denoise_create(p, V, prompt, L, (uint32_t)i, (uint32_t)s, &err);
            ref[i * n_samples + s] = diffu_denoise_create(p, V, prompt, L, (uint32_t)i, (uint32_t)s, &err);
            if (!ours[i * n_samples + s]) {
                printf("create: %s\n", err.msg);
                exit(2);
            }
        }
        max_len = L + p->max_new_tokens > max_len ? L + p->max_new_tokens : max_len;
    }
    lazy_src lz = {ours, n, 0, max_active, -1, label};
    diffu_sched_opts o = {M, max_active, spread, mb_cap, mb_cap * max_len, mb_cap * p->max_new_tokens, max_len,
                          lazy ? lazy_make : NULL, &lz, NULL, NULL, 0, NULL, NULL, 0};
    fin_log fl = {ours, n, calloc((size_t)n, sizeof(int)), label};
    o.finished = on_finished;
    o.finished_user = &fl;
    diffu_sched *sc = diffu_sched_create(&o, lazy ? NULL : ours, n, &err);
    CHECK(sc != NULL, "%s: %s", label, err.msg);
    if (!sc) return;
    fslot slots[MAXSLOT];
    memset(slots, 0, sizeof slots);
    diffu_wire_arena ar[4];
    for (int r = 0; r < 4; r++) diffu_wire_arena_init(&ar[r], 1 << 16);
    held *q = calloc(4096, sizeof *q);
    int qh = 0, qn = 0;
    long last_id = -1, guard = 0;
    uint64_t rng = seed;
    diffu_wire_packbuf pk = {0};
    int32_t rtok[4096];
    double rconf[4096];
    while (!diffu_sched_done(sc) && guard++ < 200000) {
        long id = diffu_sched_next(sc);
        if (id >= 0) {
            CHECK(id == last_id + 1, "%s: microbatch %ld after %ld", label, id, last_id);
            last_id = id;
            Diffu__Control *c[4];
            for (int r = 0; r < 4; r++) {
                size_t len;
                const uint8_t *m = diffu_sched_control(sc, r, &len);
                c[r] = diffu_wire_arena_unpack(&ar[r], &diffu__control__descriptor, len, m);
                CHECK(c[r] && c[r]->msg_case == DIFFU__CONTROL__MSG_STEP, "%s: role %d control does not parse", label, r);
            }
            const Diffu__StepCommand *full = c[3]->step;
            for (size_t k = 0; k < full->n_release; k++) {
                CHECK(full->release[k] < MAXSLOT && slots[full->release[k]].used, "%s: release of a free slot", label);
                slots[full->release[k]].used = 0;
            }
            int nrow = 0;
            for (size_t k = 0; k < full->n_seqs; k++) {
                const Diffu__SeqStep *s = full->seqs[k], *mid = c[0]->step->seqs[k], *emb = c[1]->step->seqs[k],
                                     *hd = c[2]->step->seqs[k];
                /* the roles carry only their fields */
                CHECK(mid->n_tokens == 0 && mid->n_changed_pos == 0 && mid->n_positions == 0 && !mid->params &&
                      mid->length == s->length && mid->slot == s->slot, "%s: middle stage variant", label);
                CHECK(emb->n_positions == 0 && !emb->params && emb->rng_key == 0, "%s: stage-0 variant has sampling fields", label);
                CHECK(hd->n_tokens == 0 && hd->n_changed_pos == 0 && hd->canvas_hash == 0, "%s: last-stage variant has canvas fields",
                      label);
                CHECK(s->slot < MAXSLOT && s->length <= MAXSEQ, "%s: slot %u length %u", label, s->slot, s->length);
                fslot *f = &slots[s->slot];
                if (s->first) {
                    CHECK(!f->used, "%s: slot %u given to sequence %llx while in use", label, s->slot,
                          (unsigned long long)s->seq_id);
                    CHECK(s->seq_id == ((uint64_t)hd->request << 24 | hd->sample), "%s: sequence id %llx is not"
                          " request %u << 24 | sample %u", label, (unsigned long long)s->seq_id, hd->request, hd->sample);
                    for (int u = 0; u < MAXSLOT; u++)
                        CHECK(!slots[u].used || slots[u].seq != s->seq_id, "%s: sequence id %llx already in slot %d",
                              label, (unsigned long long)s->seq_id, u);
                    CHECK(emb->n_tokens == s->length && hd->params && s->n_changed_pos == 0,
                          "%s: first step without the canvas or the parameters", label);
                    f->used = 1;
                    f->seq = s->seq_id;
                    f->len = (int)s->length;
                    memcpy(f->canvas, emb->tokens, s->length * sizeof(int32_t));
                    f->req = hd->request;
                    f->smp = hd->sample;
                    f->have_params = 1;
                } else {
                    CHECK(f->used && f->seq == s->seq_id, "%s: slot %u holds %llx, step for %llx", label, s->slot,
                          (unsigned long long)f->seq, (unsigned long long)s->seq_id);
                    CHECK(emb->n_tokens == 0 && !hd->params, "%s: a later step repeats the canvas or the parameters", label);
                    for (size_t j = 0; j < emb->n_changed_pos; j++) {
                        CHECK(emb->changed_pos[j] < s->length && f->canvas[emb->changed_pos[j]] != emb->changed_tok[j],
                              "%s: changed position %u unchanged or outside", label, emb->changed_pos[j]);
                        f->canvas[emb->changed_pos[j]] = emb->changed_tok[j];
                    }
                }
                CHECK(diffu_wire_hash_i32(f->canvas, (size_t)f->len) == emb->canvas_hash, "%s: stage-0 canvas of %llx differs"
                      " from the coordinator's", label, (unsigned long long)s->seq_id);
                CHECK(hd->n_positions >= 1, "%s: a sequence without positions in a microbatch", label);
                for (size_t j = 0; j < hd->n_positions; j++) {
                    CHECK(j == 0 || hd->positions[j] > hd->positions[j - 1], "%s: positions not ascending", label);
                    CHECK(f->canvas[hd->positions[j]] == MASK, "%s: position %u is not masked", label, hd->positions[j]);
                    diffu_sample sm = fake(f->req, f->smp, hd->step, hd->positions[j]);
                    rtok[nrow] = sm.token;
                    rconf[nrow] = sm.conf;
                    nrow++;
                }
            }
            /* the StepResult, held back for a while (pipeline latency) */
            size_t len = pack_result(&pk, id, rtok, rconf, nrow);
            q[(qh + qn) % 4096].msg = malloc(len);
            memcpy(q[(qh + qn) % 4096].msg, pk.data, len);
            q[(qh + qn) % 4096].len = len;
            qn++;
            rng = mix(rng);
            if (qn < M && rng % 3) continue; /* keep more in flight */
        }
        if (qn > 0) {
            if (qn >= 1 && (rng & 7) == 3) { /* a result for the wrong microbatch is refused */
                Diffu__StepResult bad = DIFFU__STEP_RESULT__INIT;
                bad.microbatch = 999999;
                size_t bl = diffu_wire_pack(&pk, &bad.base);
                CHECK(diffu_sched_result(sc, pk.data, bl, &err) == -1 && strstr(err.msg, "expected microbatch"),
                      "%s: a foreign result accepted", label);
            }
            held *h = &q[qh];
            int rc = diffu_sched_result(sc, h->msg, h->len, &err);
            CHECK(rc == 0, "%s: result refused: %s", label, err.msg);
            free(h->msg);
            qh = (qh + 1) % 4096;
            qn--;
        } else if (id < 0) {
            CHECK(0, "%s: nothing in flight, nothing to dispatch, not done", label);
            break;
        }
    }
    CHECK(diffu_sched_done(sc), "%s: not done after %ld rounds", label, guard);
    CHECK(!lazy || lz.next == n, "%s: %d of %d sequences made", label, lz.next, n);
    const diffu_sched_stats *st = diffu_sched_get_stats(sc);
    for (int k = 0; k < n; k++) CHECK(fl.count[k] == 1, "%s: sequence %d reported finished %d times", label, k, fl.count[k]);
    free(fl.count);
    int bad = 0;
    for (int k = 0; k < n; k++) {
        reference(ref[k]);
        int la, lb;
        const int32_t *a = diffu_denoise_canvas(ours[k], &la), *b = diffu_denoise_canvas(ref[k], &lb);
        int same = la == lb && !memcmp(a, b, (size_t)la * sizeof *a) &&
                   !memcmp(diffu_denoise_commit_steps(ours[k]), diffu_denoise_commit_steps(ref[k]),
                           (size_t)p->max_new_tokens * sizeof(int32_t)) &&
                   diffu_denoise_steps_taken(ours[k]) == diffu_denoise_steps_taken(ref[k]) &&
                   diffu_denoise_forwards(ours[k]) == diffu_denoise_forwards(ref[k]);
        bad += !same;
        CHECK(same, "%s: sequence %d differs from the policy driven directly", label, k);
    }
    printf("%-44s %-6s %3d seqs, M %d, active %2d, spread %d, cap %d: %4ld microbatches (%.2f seqs each), %3ld skipped"
           " steps: %s\n", label, lazy ? "lazy" : "given", n, M, max_active, spread, mb_cap, st->microbatches,
           st->microbatches ? (double)st->seq_steps / (double)st->microbatches : 0.0, st->skipped_steps,
           bad ? "DIFFERENT" : "identical");
    for (int k = 0; k < n; k++) {
        diffu_denoise_free(&ours[k]);
        diffu_denoise_free(&ref[k]);
    }
    free(ours);
    free(ref);
    while (qn > 0) {
        free(q[qh].msg);
        qh = (qh + 1) % 4096;
        qn--;
    }
    free(q);
    for (int r = 0; r < 4; r++) diffu_wire_arena_free(&ar[r]);
    diffu_wire_packbuf_free(&pk);
    diffu_sched_free(&sc);
}

/* make() fails for sequence 3: nothing after it is made, what is in flight
 * drains (every result accepted), diffu_sched_failed says so, and the
 * scheduler never reports done (the caller stops on the failure). */
static void run_fail(const diffu_denoise_params *p) {
    diffu_err err;
    enum { N = 8, ACTIVE = 2 };
    diffu_denoise *seqs[N];
    int32_t prompt[4] = {5, 6, 7, 8};
    for (int i = 0; i < N; i++) seqs[i] = diffu_denoise_create(p, V, prompt, 4, (uint32_t)i, 0, &err);
    lazy_src lz = {seqs, N, 0, ACTIVE, 3, "make fails"};
    int len = 4 + p->max_new_tokens;
    diffu_sched_opts o = {2, ACTIVE, 1, ACTIVE, ACTIVE * len, ACTIVE * p->max_new_tokens, len, lazy_make, &lz, NULL, NULL, 0, NULL, NULL, 0};
    diffu_sched *sc = diffu_sched_create(&o, NULL, N, &err);
    CHECK(sc != NULL, "make fails: create: %s", err.msg);
    diffu_wire_packbuf pk = {0};
    diffu_wire_arena ar;
    diffu_wire_arena_init(&ar, 1 << 16);
    int32_t rtok[256];
    double rconf[256];
    long rounds = 0;
    for (; rounds < 100000; rounds++) {
        long id = diffu_sched_next(sc);
        if (id < 0 && diffu_sched_inflight(sc) == 0) break;
        if (id < 0) continue;
        size_t mlen;
        const uint8_t *m = diffu_sched_control(sc, 3, &mlen);
        Diffu__Control *c = diffu_wire_arena_unpack(&ar, &diffu__control__descriptor, mlen, m);
        int nrow = 0;
        for (size_t k = 0; k < c->step->n_seqs; k++) {
            const Diffu__SeqStep *st = c->step->seqs[k];
            for (size_t j = 0; j < st->n_positions; j++, nrow++) {
                diffu_sample sm = fake(st->request, st->sample, st->step, st->positions[j]);
                rtok[nrow] = sm.token;
                rconf[nrow] = sm.conf;
            }
        }
        size_t rl = pack_result(&pk, id, rtok, rconf, nrow);
        CHECK(diffu_sched_result(sc, pk.data, rl, &err) == 0, "make fails: result refused: %s", err.msg);
    }
    CHECK(diffu_sched_failed(sc) && !diffu_sched_done(sc), "make fails: failed %d, done %d", diffu_sched_failed(sc),
          diffu_sched_done(sc));
    CHECK(lz.next == 4, "make fails: %d sequences asked for, expected 4 (0-2, then 3 fails)", lz.next);
    int done = 0;
    for (int i = 0; i < 3; i++) done += diffu_denoise_done(seqs[i]);
    CHECK(diffu_sched_inflight(sc) == 0, "make fails: %d microbatches still in flight", diffu_sched_inflight(sc));
    printf("make fails at sequence 3: admission stopped after it, %d of the 3 before finished, %ld rounds\n", done,
           rounds);
    for (int i = 0; i < N; i++) diffu_denoise_free(&seqs[i]);
    diffu_wire_arena_free(&ar);
    diffu_wire_packbuf_free(&pk);
    diffu_sched_free(&sc);
}

/* The structured mode (an in-process backend, coordinator/local.h): no
 * Control is packed; the microbatch's members (diffu_sched_members) are
 * answered with the fake samples of their own (request, sample, step,
 * position) through diffu_sched_commit. Every sequence must end exactly as the
 * policy driven directly, with the stepping hook called once per step of
 * every sequence (forward-less steps included) — and with diffu_sched_close
 * after `close_after` microbatches: nothing more is admitted, the admitted
 * sequences all finish, the others are never touched, and done() says so. */
typedef struct {
    int *steps; /* [n] stepping calls per sequence */
    int n;
} step_log;

static void on_stepping(void *user, int i, const diffu_denoise *d) {
    step_log *l = user;
    CHECK(i >= 0 && i < l->n && !diffu_denoise_done(d), "stepping(%d) of a finished or unknown sequence", i);
    if (i >= 0 && i < l->n) l->steps[i]++;
}

static void run_structured(const char *label, const diffu_denoise_params *p, int n, int max_active, int close_after) {
    diffu_err err;
    diffu_denoise **ours = calloc((size_t)n, sizeof *ours), **ref = calloc((size_t)n, sizeof *ref);
    int max_len = 0;
    for (int i = 0; i < n; i++) {
        int32_t prompt[16];
        int L = 1 + i % 9;
        for (int k = 0; k < L; k++) prompt[k] = (int32_t)(7 * i + 3 * k) % 400 + 5;
        ours[i] = diffu_denoise_create(p, V, prompt, L, (uint32_t)i, 0, &err);
        ref[i] = diffu_denoise_create(p, V, prompt, L, (uint32_t)i, 0, &err);
        max_len = L + p->max_new_tokens > max_len ? L + p->max_new_tokens : max_len;
    }
    step_log sl = {calloc((size_t)n, sizeof(int)), n};
    diffu_sched_opts o = {1, max_active, 1, max_active, max_active * max_len, max_active * p->max_new_tokens, max_len,
                          NULL, NULL, NULL, NULL, 1, on_stepping, &sl, 0};
    diffu_sched *sc = diffu_sched_create(&o, ours, n, &err);
    CHECK(sc != NULL, "%s: create: %s", label, err.msg);
    diffu_sample smp[MAXSLOT * MAXSEQ];
    long rounds = 0;
    while (!diffu_sched_done(sc) && rounds < 100000) {
        if (rounds++ == close_after) diffu_sched_close(sc);
        long id = diffu_sched_next(sc);
        if (id < 0) break;
        diffu_denoise *const *ds;
        const int *n_want;
        int m = diffu_sched_members(sc, &ds, &n_want), rows = 0;
        for (int k = 0; k < m; k++) {
            const int32_t *pos = diffu_denoise_positions(ds[k]);
            for (int j = 0; j < n_want[k]; j++, rows++)
                smp[rows] = fake(diffu_denoise_request(ds[k]), diffu_denoise_sample(ds[k]),
                                 (uint32_t)diffu_denoise_steps_taken(ds[k]), (uint32_t)pos[j]);
        }
        diffu_sched_commit(sc, smp, rows);
    }
    CHECK(diffu_sched_done(sc), "%s: not done after %ld rounds", label, rounds);
    int admitted = 0;
    for (int i = 0; i < n; i++) {
        if (!sl.steps[i]) continue; /* never admitted (closed) */
        admitted++;
        reference(ref[i]);
        int la, lb;
        const int32_t *a = diffu_denoise_canvas(ours[i], &la), *b = diffu_denoise_canvas(ref[i], &lb);
        CHECK(diffu_denoise_done(ours[i]) && la == lb && !memcmp(a, b, (size_t)la * sizeof *a),
              "%s: sequence %d differs from the policy driven directly", label, i);
        CHECK(sl.steps[i] == diffu_denoise_steps_taken(ref[i]), "%s: sequence %d: %d stepping calls for %d steps",
              label, i, sl.steps[i], diffu_denoise_steps_taken(ref[i]));
    }
    if (close_after < 0) CHECK(admitted == n, "%s: %d of %d sequences ran", label, admitted, n);
    else CHECK(admitted < n && admitted >= 1, "%s: closed after %d microbatches, yet %d of %d sequences ran", label,
               close_after, admitted, n);
    printf("structured: %s: %d of %d sequences, %ld microbatches\n", label, admitted, n,
           diffu_sched_get_stats(sc)->microbatches);
    for (int i = 0; i < n; i++) {
        diffu_denoise_free(&ours[i]);
        diffu_denoise_free(&ref[i]);
    }
    free(ours);
    free(ref);
    free(sl.steps);
    diffu_sched_free(&sc);
}

int main(void) {
    diffu_denoise_params p;
    struct {
        const char *name;
        int alg, steps, block, early;
        double thr;
    } algs[] = {
        {"entropy, steps = gen", DIFFU_ALG_ENTROPY, 24, 0, 0, 0},
        {"origin (zero-work steps)", DIFFU_ALG_ORIGIN, 24, 0, 0, 0},
        {"maskgit_plus, steps gen/3", DIFFU_ALG_MASKGIT_PLUS, 8, 0, 0, 0},
        {"topk_margin, blocks of 6", DIFFU_ALG_TOPK_MARGIN, 12, 6, 0, 0},
        {"threshold 0.6, blocks of 8, early stop", DIFFU_ALG_ENTROPY, 24, 8, 1, 0.6},
    };
    struct { int M, active, spread, cap; } sch[] = {
        {1, 64, 1, 64}, {2, 64, 1, 64}, {4, 64, 4, 64}, {3, 2, 1, 64}, {5, 7, 2, 2}, {2, 1, 3, 1}, {4, 9, 4, 3},
    };
    for (size_t a = 0; a < sizeof algs / sizeof algs[0]; a++)
        for (size_t k = 0; k < sizeof sch / sizeof sch[0]; k++) {
            diffu_denoise_params_default(&p);
            p.max_new_tokens = 24;
            p.steps = algs[a].steps;
            p.alg = (diffu_alg)algs[a].alg;
            p.block_length = algs[a].block;
            p.threshold = algs[a].thr;
            p.early_stop = algs[a].early;
            p.n_end = 1;
            p.end_ids[0] = 17;
            p.mask_id = MASK;
            p.seed = 5 + a;
            if (p.alg == DIFFU_ALG_ORIGIN) p.temperature = 1.0;
            int n_samples = k % 2 ? 2 : 1;
            for (int lazy = 0; lazy < 2; lazy++)
                run_case(algs[a].name, &p, 6, n_samples, sch[k].M,
                         sch[k].active > 6 * n_samples ? 6 * n_samples : sch[k].active, sch[k].spread, sch[k].cap,
                         1000 + a * 10 + k, lazy);
        }
    diffu_denoise_params_default(&p);
    p.max_new_tokens = 12;
    p.steps = 12;
    p.mask_id = MASK;
    run_fail(&p);
    run_structured("entropy, steps = gen (a forward-less first step)", &p, 10, 4, -1);
    run_structured("closed after 3 microbatches", &p, 10, 4, 3);
    p.alg = DIFFU_ALG_ORIGIN;
    p.temperature = 1.0;
    p.steps = 6;
    run_structured("origin, 6 steps", &p, 7, 7, -1);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
