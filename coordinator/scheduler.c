/* scheduler.c — see scheduler.h. */
#include "scheduler.h"

#include <stdlib.h>
#include <string.h>

#include "diffu.pb-c.h"
#include "kvpolicy.h"
#include "philox.h"
#include "wire.h"

enum { S_WAITING = 0, S_READY, S_INFLIGHT, S_DONE };

typedef struct {
    diffu_denoise *d;
    uint64_t id;              /* request << 24 | sample */
    int state, slot, first;
    int young;                /* in the first 1/spread of its decoding (admission limit) */
    int prepared, n_want;     /* this step's wanted positions (prepared) */
    int N, G;                 /* canvas, generated lengths */
    int32_t *shadow;          /* [N] the canvas as stage 0 holds it (the slot's shadow) */
    diffu_sampler_params sp;  /* as sent on the first step (checked unchanged) */
    diffu_kvpolicy *kp;       /* stage_cache: which rows each step computes */
} sseq;

typedef struct {
    long id;
    int n;                    /* sequences */
    int *seq;                 /* [mb_max_seqs] their indices */
    int *n_want;              /* [mb_max_seqs] */
    diffu_denoise **d;        /* [mb_max_seqs] the sequences (diffu_sched_members) */
    int n_rows;
    diffu_wire_packbuf pk[4];      /* the Control variants by role */
} mbrec;

struct diffu_sched {
    diffu_sched_opts o;
    sseq *seqs;
    int n, next_admit, n_active, n_young, n_young_limit;
    int *ready;               /* [n] ring of sequence indices */
    int r_head, r_len;
    int *free_slots, n_free;  /* [max_active] */
    int32_t *shadows;         /* [max_active x max_seq] canvas shadows by slot */
    int max_seq, failed, closed;
    uint32_t *release;        /* [max_active] slots freed since the last microbatch */
    int n_release;
    mbrec *ring;              /* [M + 1] */
    int n_ring;
    long next_id, oldest;     /* ids: dispatched [oldest, next_id) in flight */
    /* message building (one microbatch) */
    Diffu__SeqStep *steps;    /* [mb_max_seqs] the full step of each sequence */
    Diffu__SeqStep *vsteps;   /* [mb_max_seqs] a role's copy */
    Diffu__SeqStep **vptr;    /* [mb_max_seqs] */
    Diffu__SamplingParams *params; /* [mb_max_seqs] */
    int32_t *tok_buf;         /* [mb_max_tokens] first-step canvases */
    uint32_t *chg_pos;        /* [mb_max_tokens] */
    int32_t *chg_tok;         /* [mb_max_tokens] */
    uint32_t *pos_buf;        /* [mb_max_rows] */
    uint32_t *row_buf;        /* [mb_max_tokens] stage_cache: the rows computed */
    int32_t *row_tmp;         /* [max_seq] one sequence's */
    diffu_sample *samples;    /* [mb_max_rows] */
    diffu_wire_arena arena;        /* StepResult unpacking */
    diffu_wire_packbuf shutdown;
    diffu_sched_stats st;
};

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

diffu_sched *diffu_sched_create(const diffu_sched_opts *o, diffu_denoise *const *seqs, int n, diffu_err *err) {
    if (o->microbatches < 1 || o->max_active < 1 || o->spread < 1 || o->mb_max_seqs < 1 || o->mb_max_tokens < 1 ||
        o->mb_max_rows < 1) {
        diffu_err_set(err, "scheduler plan: microbatches %d, max_active %d, spread %d, microbatch %d seqs / %d tokens /"
                      " %d rows: all must be >= 1", o->microbatches, o->max_active, o->spread, o->mb_max_seqs,
                      o->mb_max_tokens, o->mb_max_rows);
        return NULL;
    }
    diffu_sched *s = diffu_xcalloc(1, sizeof *s);
    s->o = *o;
    s->n = n;
    s->seqs = diffu_xcalloc((size_t)(n ? n : 1), sizeof *s->seqs);
    s->max_seq = o->max_seq > 0 ? o->max_seq : o->mb_max_tokens;
    if (!seqs && !o->make) {
        diffu_err_set(err, "scheduler: neither sequences nor a make callback");
        diffu_sched_free(&s);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        sseq *q = &s->seqs[i];
        q->slot = -1;
        if (!seqs) continue; /* lazy: set up at admission */
        q->d = seqs[i];
        DIFFU_ASSERT(!diffu_denoise_done(q->d));
        diffu_denoise_canvas(q->d, &q->N);
        q->G = diffu_denoise_get_params(q->d)->max_new_tokens;
        if (q->N > o->mb_max_tokens || q->G > o->mb_max_rows || q->N > s->max_seq) {
            diffu_err_set(err, "sequence %d: a canvas of %d tokens (%d generated) does not fit a microbatch of %d tokens /"
                          " %d rows (longest canvas %d)", i, q->N, q->G, o->mb_max_tokens, o->mb_max_rows, s->max_seq);
            diffu_sched_free(&s);
            return NULL;
        }
    }
    s->shadows = diffu_xmalloc((size_t)o->max_active * (size_t)s->max_seq * sizeof *s->shadows);
    s->ready = diffu_xmalloc((size_t)(n ? n : 1) * sizeof *s->ready);
    s->free_slots = diffu_xmalloc((size_t)o->max_active * sizeof *s->free_slots);
    for (int k = 0; k < o->max_active; k++) s->free_slots[k] = o->max_active - 1 - k; /* pop gives 0, 1, ... */
    s->n_free = o->max_active;
    s->release = diffu_xmalloc((size_t)o->max_active * sizeof *s->release);
    s->n_young_limit = ceil_div(o->max_active, o->spread);
    if (s->n_young_limit < o->microbatches) s->n_young_limit = o->microbatches;
    s->n_ring = o->microbatches + 1;
    s->ring = diffu_xcalloc((size_t)s->n_ring, sizeof *s->ring);
    for (int k = 0; k < s->n_ring; k++) {
        s->ring[k].seq = diffu_xmalloc((size_t)o->mb_max_seqs * sizeof(int));
        s->ring[k].n_want = diffu_xmalloc((size_t)o->mb_max_seqs * sizeof(int));
        s->ring[k].d = diffu_xcalloc((size_t)o->mb_max_seqs, sizeof *s->ring[k].d);
        s->ring[k].id = -1;
    }
    size_t M = (size_t)o->mb_max_seqs;
    s->steps = diffu_xcalloc(M, sizeof *s->steps);
    s->vsteps = diffu_xcalloc(M, sizeof *s->vsteps);
    s->vptr = diffu_xcalloc(M, sizeof *s->vptr);
    s->params = diffu_xcalloc(M, sizeof *s->params);
    s->tok_buf = diffu_xmalloc((size_t)o->mb_max_tokens * sizeof *s->tok_buf);
    s->chg_pos = diffu_xmalloc((size_t)o->mb_max_tokens * sizeof *s->chg_pos);
    s->chg_tok = diffu_xmalloc((size_t)o->mb_max_tokens * sizeof *s->chg_tok);
    s->pos_buf = diffu_xmalloc((size_t)o->mb_max_rows * sizeof *s->pos_buf);
    if (o->stage_cache) {
        s->row_buf = diffu_xmalloc((size_t)o->mb_max_tokens * sizeof *s->row_buf);
        s->row_tmp = diffu_xmalloc((size_t)s->max_seq * sizeof *s->row_tmp);
    }
    s->samples = diffu_xmalloc((size_t)o->mb_max_rows * sizeof *s->samples);
    diffu_wire_arena_init(&s->arena, (size_t)o->mb_max_rows * 24 + 4096);
    return s;
}

void diffu_sched_free(diffu_sched **sp) {
    if (!sp || !*sp) return;
    diffu_sched *s = *sp;
    for (int i = 0; i < s->n; i++) diffu_kvpolicy_free(&s->seqs[i].kp);
    free(s->seqs);
    free(s->shadows);
    free(s->ready);
    free(s->free_slots);
    free(s->release);
    for (int k = 0; k < s->n_ring; k++) {
        free(s->ring[k].seq);
        free(s->ring[k].n_want);
        free(s->ring[k].d);
        for (int r = 0; r < 4; r++) diffu_wire_packbuf_free(&s->ring[k].pk[r]);
    }
    free(s->ring);
    free(s->steps);
    free(s->vsteps);
    free(s->vptr);
    free(s->params);
    free(s->tok_buf);
    free(s->chg_pos);
    free(s->chg_tok);
    free(s->pos_buf);
    free(s->row_buf);
    free(s->row_tmp);
    free(s->samples);
    diffu_wire_arena_free(&s->arena);
    diffu_wire_packbuf_free(&s->shutdown);
    free(s);
    *sp = NULL;
}

int diffu_sched_failed(const diffu_sched *s) { return s->failed; }
int diffu_sched_done(const diffu_sched *s) {
    return s->st.finished == (s->closed ? s->next_admit : s->n) && s->next_id == s->oldest;
}
void diffu_sched_close(diffu_sched *s) { s->closed = 1; }
int diffu_sched_inflight(const diffu_sched *s) { return (int)(s->next_id - s->oldest); }
int diffu_sched_active(const diffu_sched *s) { return s->n_active; }
const diffu_sched_stats *diffu_sched_get_stats(const diffu_sched *s) { return &s->st; }

/* ------------------------------------------------------------ states */

static void push_ready(diffu_sched *s, int i) {
    DIFFU_ASSERT(s->r_len < s->n);
    s->ready[(s->r_head + s->r_len++) % s->n] = i;
    s->seqs[i].state = S_READY;
}

/* Committed fraction of the generated positions (the decoding phase). */
static double progress(const sseq *q) { return 1.0 - (double)diffu_denoise_masked(q->d) / (double)q->G; }

/* A sequence leaves the young set once for all (its progress only grows). */
static void update_young(diffu_sched *s, sseq *q) {
    if (q->young && (q->state == S_DONE || progress(q) >= 1.0 / s->o.spread)) {
        q->young = 0;
        s->n_young--;
    }
}

static void finish(diffu_sched *s, int i) {
    sseq *q = &s->seqs[i];
    q->state = S_DONE;
    update_young(s, q);
    s->free_slots[s->n_free++] = q->slot;
    s->release[s->n_release++] = (uint32_t)q->slot;
    q->slot = -1;
    q->shadow = NULL;
    diffu_kvpolicy_free(&q->kp);
    diffu_denoise *d = q->d;
    q->d = NULL; /* the caller's to free from now on */
    s->n_active--;
    s->st.finished++;
    if (s->o.finished) s->o.finished(s->o.finished_user, i, d);
}

static void admit(diffu_sched *s) {
    while (!s->failed && !s->closed && s->next_admit < s->n && s->n_active < s->o.max_active) {
        if (s->o.spread > 1 && s->n_young >= s->n_young_limit) break;
        int i = s->next_admit++;
        sseq *q = &s->seqs[i];
        if (!q->d) { /* lazy */
            q->d = s->o.make(s->o.make_user, i);
            if (!q->d) { /* the caller has reported why; this one counts as finished, nothing more enters */
                q->state = S_DONE;
                s->st.finished++;
                s->failed = 1;
                break;
            }
            DIFFU_ASSERT(!diffu_denoise_done(q->d));
            diffu_denoise_canvas(q->d, &q->N);
            q->G = diffu_denoise_get_params(q->d)->max_new_tokens;
            DIFFU_ASSERTF(q->N <= s->o.mb_max_tokens && q->G <= s->o.mb_max_rows && q->N <= s->max_seq, "sequence %d: a"
                          " canvas of %d tokens (%d generated) outside the plan (microbatch %d tokens / %d rows, longest"
                          " canvas %d)", i, q->N, q->G, s->o.mb_max_tokens, s->o.mb_max_rows, s->max_seq);
        }
        if (s->o.spread > 1) {
            q->young = 1;
            s->n_young++;
        }
        if (s->o.stage_cache && !s->o.structured) {
            diffu_err err;
            q->kp = diffu_kvpolicy_for(q->d, &err);
            /* (the parameters were checked when the request was read: diffu_kvpolicy_check) */
            DIFFU_ASSERTF(q->kp, "request %u: %s", diffu_denoise_request(q->d), err.msg);
        }
        DIFFU_ASSERT(s->n_free > 0);
        q->id = (uint64_t)diffu_denoise_request(q->d) << 24 | diffu_denoise_sample(q->d);
        q->slot = s->free_slots[--s->n_free];
        q->shadow = s->shadows + (size_t)q->slot * (size_t)s->max_seq;
        q->first = 1;
        s->n_active++;
        push_ready(s, i);
    }
}

/* Advance through the steps that need no forward; 1 if the sequence now
 * wants positions, 0 if it finished on the way. */
static int prepare(diffu_sched *s, int i) {
    sseq *q = &s->seqs[i];
    if (q->prepared) return 1;
    for (;;) {
        if (s->o.stepping) s->o.stepping(s->o.stepping_user, i, q->d);
        int n = diffu_denoise_prepare(q->d);
        if (n > 0) {
            q->prepared = 1;
            q->n_want = n;
            return 1;
        }
        int before = diffu_denoise_masked(q->d);
        diffu_denoise_commit(q->d, NULL);
        s->st.committed += before - diffu_denoise_masked(q->d);
        s->st.skipped_steps++;
        if (diffu_denoise_done(q->d)) {
            finish(s, i);
            return 0;
        }
        update_young(s, q);
    }
}

/* ------------------------------------------------------------ messages */

static Diffu__Confidence conf_wire(diffu_conf_kind k) {
    return k == DIFFU_CONF_MARGIN ? DIFFU__CONFIDENCE__CONF_MARGIN
           : k == DIFFU_CONF_NEG_ENTROPY ? DIFFU__CONFIDENCE__CONF_NEG_ENTROPY : DIFFU__CONFIDENCE__CONF_PROB;
}

/* The full SeqStep of sequence i at slot k of the microbatch; the arrays come
 * from the scheduler's buffers (cursor at *tok / *chg / *pos / *rows). */
static void build_step(diffu_sched *s, int i, int k, int *tok, int *chg, int *pos, int *rows) {
    sseq *q = &s->seqs[i];
    Diffu__SeqStep *m = &s->steps[k];
    diffu__seq_step__init(m);
    m->seq_id = q->id;
    m->slot = (uint32_t)q->slot;
    m->length = (uint32_t)q->N;
    m->first = q->first;
    int len;
    const int32_t *cv = diffu_denoise_canvas(q->d, &len);
    /* stage 0: the canvas, or what changed since the slot's last step */
    if (q->first) {
        memcpy(s->tok_buf + *tok, cv, (size_t)len * sizeof *cv);
        m->n_tokens = (size_t)len;
        m->tokens = s->tok_buf + *tok;
        *tok += len;
    } else {
        int c0 = *chg;
        for (int p = 0; p < len; p++)
            if (cv[p] != q->shadow[p]) {
                s->chg_pos[*chg] = (uint32_t)p;
                s->chg_tok[*chg] = cv[p];
                (*chg)++;
            }
        m->n_changed_pos = m->n_changed_tok = (size_t)(*chg - c0);
        m->changed_pos = s->chg_pos + c0;
        m->changed_tok = s->chg_tok + c0;
    }
    memcpy(q->shadow, cv, (size_t)len * sizeof *cv);
    m->canvas_hash = diffu_wire_hash_i32(cv, (size_t)len);
    /* last stage: positions, step; parameters and key on the first step */
    const int32_t *want = diffu_denoise_positions(q->d);
    const diffu_sample_job *jobs = diffu_denoise_jobs(q->d);
    uint32_t step = (uint32_t)diffu_denoise_steps_taken(q->d);
    uint32_t req = diffu_denoise_request(q->d), smp = diffu_denoise_sample(q->d);
    uint64_t seed = diffu_denoise_get_params(q->d)->seed;
    diffu_philox_key key = diffu_philox_seed(seed);
    for (int j = 0; j < q->n_want; j++) {
        /* the worker rebuilds each job from (key, request, sample, step, position): the policy's must be that */
        diffu_philox_ctr c = diffu_philox_addr(req, smp, step, (uint32_t)want[j], DIFFU_RNG_TOKEN);
        DIFFU_ASSERTF(!memcmp(&c, &jobs[j].ctr, sizeof c) && !memcmp(&key, &jobs[j].key, sizeof key),
                      "the policy's Philox address differs from the step protocol's");
        s->pos_buf[*pos + j] = (uint32_t)want[j];
    }
    m->n_positions = (size_t)q->n_want;
    m->positions = s->pos_buf + *pos;
    *pos += q->n_want;
    /* every stage: the rows this step computes (stage cache) */
    int nr = q->N;
    if (q->kp) {
        int full;
        nr = diffu_kvpolicy_rows(q->kp, diffu_denoise_get_params(q->d)->mask_id, want, q->n_want, s->row_tmp, &full);
        DIFFU_ASSERT(nr >= 1 && nr <= q->N && (!q->first || full));
        if (!full) {
            for (int j = 0; j < nr; j++) s->row_buf[*rows + j] = (uint32_t)s->row_tmp[j];
            m->n_rows = (size_t)nr;
            m->rows = s->row_buf + *rows;
            *rows += nr;
        }
    }
    s->st.computed += nr;
    m->step = step;
    const diffu_sampler_params *sp = jobs[0].params;
    if (q->first) {
        q->sp = *sp;
        Diffu__SamplingParams *w = &s->params[k];
        diffu__sampling_params__init(w);
        w->temperature = sp->temperature;
        w->top_p = sp->top_p;
        w->top_k = sp->top_k > 0 ? (uint32_t)sp->top_k : 0;
        w->conf = conf_wire(sp->conf);
        w->ban_token = sp->ban_token;
        m->params = w;
        m->rng_key = seed;
        m->request = req;
        m->sample = smp;
    } else {
        DIFFU_ASSERTF(!memcmp(&q->sp, sp, sizeof *sp), "a sequence's sampling parameters changed between steps");
    }
}

/* A role's copy of step k: the fields of the other roles cleared. */
static void role_step(const Diffu__SeqStep *full, Diffu__SeqStep *v, int role) {
    *v = *full;
    if (!(role & DIFFU_ROLE_EMBED)) {
        v->n_tokens = v->n_changed_pos = v->n_changed_tok = 0;
        v->tokens = v->changed_tok = NULL;
        v->changed_pos = NULL;
        v->canvas_hash = 0;
    }
    if (!(role & DIFFU_ROLE_HEAD)) {
        v->n_positions = 0;
        v->positions = NULL;
        v->step = 0;
        v->params = NULL;
        v->rng_key = 0;
        v->request = v->sample = 0;
    }
}

long diffu_sched_next(diffu_sched *s) {
    if (diffu_sched_inflight(s) >= s->o.microbatches) return -1;
    admit(s);
    int target = ceil_div(s->n_active, s->o.microbatches);
    if (target > s->o.mb_max_seqs) target = s->o.mb_max_seqs;
    if (target < 1) target = 1;
    mbrec *mb = &s->ring[s->next_id % s->n_ring];
    int n = 0, tokens = 0, rows = 0, tok = 0, chg = 0, pos = 0, crow = 0;
    while (s->r_len > 0 && n < target) {
        int i = s->ready[s->r_head];
        if (!prepare(s, i)) { /* finished without a forward: its slot frees, maybe another enters */
            s->r_head = (s->r_head + 1) % s->n;
            s->r_len--;
            admit(s);
            continue;
        }
        sseq *q = &s->seqs[i];
        if (tokens + q->N > s->o.mb_max_tokens || rows + q->n_want > s->o.mb_max_rows) break;
        s->r_head = (s->r_head + 1) % s->n;
        s->r_len--;
        if (!s->o.structured) build_step(s, i, n, &tok, &chg, &pos, &crow);
        else s->st.computed += q->N; /* (the local backend counts its own cached rows) */
        q->state = S_INFLIGHT;
        q->first = 0;
        mb->seq[n] = i;
        mb->n_want[n] = q->n_want;
        mb->d[n] = q->d;
        n++;
        tokens += q->N;
        rows += q->n_want;
    }
    if (n == 0) return -1;
    mb->id = s->next_id++;
    mb->n = n;
    mb->n_rows = rows;
    s->st.microbatches++;
    s->st.seq_steps += n;
    s->st.rows += rows;
    s->st.tokens += tokens;
    if (s->o.structured) { /* no stage keeps slots: nothing to release */
        s->n_release = 0;
        return mb->id;
    }
    /* the Control variants */
    Diffu__StepCommand cmd = DIFFU__STEP_COMMAND__INIT;
    cmd.microbatch = (uint64_t)mb->id;
    cmd.n_seqs = (size_t)n;
    cmd.seqs = s->vptr;
    cmd.n_release = (size_t)s->n_release;
    cmd.release = s->release;
    Diffu__Control ctl = DIFFU__CONTROL__INIT;
    ctl.msg_case = DIFFU__CONTROL__MSG_STEP;
    ctl.step = &cmd;
    for (int role = 0; role < 4; role++) {
        for (int k = 0; k < n; k++) {
            role_step(&s->steps[k], &s->vsteps[k], role);
            s->vptr[k] = &s->vsteps[k];
        }
        s->st.ctrl_bytes[role] += diffu_wire_pack(&mb->pk[role], &ctl.base);
    }
    s->n_release = 0;
    return mb->id;
}

const uint8_t *diffu_sched_control(diffu_sched *s, int role, size_t *len) {
    DIFFU_ASSERT(role >= 0 && role < 4 && s->next_id > 0 && !s->o.structured);
    mbrec *mb = &s->ring[(s->next_id - 1) % s->n_ring];
    *len = mb->pk[role].len;
    return mb->pk[role].data;
}

/* The oldest microbatch's samples (its rows in order): commit each sequence. */
static void commit(diffu_sched *s, const diffu_sample *samples) {
    mbrec *mb = &s->ring[s->oldest % s->n_ring];
    s->oldest++;
    int at = 0;
    for (int k = 0; k < mb->n; k++) {
        int i = mb->seq[k];
        sseq *q = &s->seqs[i];
        DIFFU_ASSERT(q->state == S_INFLIGHT && q->prepared && q->n_want == mb->n_want[k]);
        int before = diffu_denoise_masked(q->d);
        if (q->kp) diffu_kvpolicy_done(q->kp, diffu_denoise_canvas(q->d, NULL)); /* the canvas it chose rows on */
        diffu_denoise_commit(q->d, samples + at);
        at += q->n_want;
        q->prepared = 0;
        s->st.committed += before - diffu_denoise_masked(q->d);
        if (diffu_denoise_done(q->d)) finish(s, i);
        else {
            update_young(s, q);
            push_ready(s, i);
        }
    }
}

int diffu_sched_members(const diffu_sched *s, diffu_denoise *const **seqs, const int **n_want) {
    DIFFU_ASSERT(s->next_id > 0);
    const mbrec *mb = &s->ring[(s->next_id - 1) % s->n_ring];
    *seqs = mb->d;
    *n_want = mb->n_want;
    return mb->n;
}

int diffu_sched_result(diffu_sched *s, const uint8_t *msg, size_t len, diffu_err *err) {
    if (s->oldest >= s->next_id) return diffu_err_set(err, "a step result arrived with no microbatch in flight");
    Diffu__StepResult *r = diffu_wire_arena_unpack(&s->arena, &diffu__step_result__descriptor, len, msg);
    if (!r) return diffu_err_set(err, "a step result of %zu bytes does not parse", len);
    mbrec *mb = &s->ring[s->oldest % s->n_ring];
    if ((long)r->microbatch != mb->id || r->n_token != (size_t)mb->n_rows || r->n_confidence != (size_t)mb->n_rows)
        return diffu_err_set(err, "step result for microbatch %llu with %zu tokens / %zu confidences; expected microbatch"
                             " %ld with %d", (unsigned long long)r->microbatch, r->n_token, r->n_confidence, mb->id,
                             mb->n_rows);
    for (int k = 0, row = 0; k < mb->n; k++) { /* a foreign peer's ids must not reach a canvas (tests/fuzz proto) */
        int V = diffu_denoise_vocab(s->seqs[mb->seq[k]].d);
        for (int j = 0; j < mb->n_want[k]; j++, row++)
            if (r->token[row] < 0 || r->token[row] >= V)
                return diffu_err_set(err, "step result for microbatch %ld: row %d: token id %d is outside the vocabulary"
                                     " [0, %d)", mb->id, row, r->token[row], V);
    }
    for (int k = 0; k < mb->n_rows; k++) {
        s->samples[k].token = r->token[k];
        s->samples[k].pad_ = 0;
        s->samples[k].conf = r->confidence[k];
    }
    commit(s, s->samples);
    return 0;
}

void diffu_sched_commit(diffu_sched *s, const diffu_sample *samples, int n_rows) {
    DIFFU_ASSERT(s->oldest < s->next_id);
    DIFFU_ASSERTF(n_rows == s->ring[s->oldest % s->n_ring].n_rows, "%d result rows for a microbatch of %d", n_rows,
                  s->ring[s->oldest % s->n_ring].n_rows);
    commit(s, samples);
}

const uint8_t *diffu_sched_shutdown(diffu_sched *s, const char *reason, int exit_code, size_t *len) {
    Diffu__Shutdown sd = DIFFU__SHUTDOWN__INIT;
    sd.reason = (char *)(reason ? reason : "");
    sd.exit_code = exit_code;
    Diffu__Control ctl = DIFFU__CONTROL__INIT;
    ctl.msg_case = DIFFU__CONTROL__MSG_SHUTDOWN;
    ctl.shutdown = &sd;
    *len = diffu_wire_pack(&s->shutdown, &ctl.base);
    return s->shutdown.data;
}
