/* sampler_vp.c — see sampler_vp.h. The whole-row reference is sampler.c;
 * every formula here is written to match it term for term. */
#include "sampler_vp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sampler_math.h"
#include "threadpool.h"

typedef struct {
    double z, w; /* value (z after ban / earlier filters), weight (exp(z - m) or 1) */
    int32_t id;  /* global token id */
} vcand;

typedef struct {
    double m;        /* global max z (after ban) */
    int32_t amax;    /* its lowest id */
    int has_p;       /* top-p cut active: drop (z, id) after (pz, pid) */
    double pz;
    int32_t pid;
    int has_k;       /* top-k cut active: drop z < kth */
    double kth;
    double Z, a, b;  /* after the filters: sum exp(z - m), top-2 exp values */
    double target;   /* temperature > 0: u Z */
    int tstar;       /* the slice holding the draw */
    double cum0;     /* mass of the slices before tstar */
    int fallback;    /* no slice passed u Z (rounding): the last non-empty slice, its last token */
    int32_t tok;
    double etok, H;
    /* quickselect state (filters) */
    vcand *cand;
    int n_cand, lo, hi, own, kpos, done, found;
    double acc, sel_target, piv_z;
    int32_t piv_id;
} vrow;

struct diffu_sampler_vp {
    int vocab, v0, v1, nloc, rank, size, max_rows;
    diffu_vp_allgather_fn ag;
    void *ag_user;
    struct diffu_pool *pool;
    diffu_sampler *whole; /* size == 1 */
    vrow *rows;           /* [max_rows] */
    double *send, *recv;  /* [max_rows x 3], [size x max_rows x 3] */
    int chunk;            /* rows whose candidates fit the buffer */
    vcand *cbuf;          /* [chunk x nloc] */
    int *sel;             /* [max_rows] rows of the current filter pass */
    long n_ag, n_doubles;
    /* the run in progress (for the pool tasks) */
    const float *logits;
    size_t ld;
    const diffu_sample_job *jobs;
};

diffu_sampler_vp *diffu_sampler_vp_create(int vocab, int v0, int v1, int rank, int size,
                                          diffu_vp_allgather_fn allgather, void *user, struct diffu_pool *pool,
                                          int max_rows) {
    DIFFU_ASSERT(vocab >= 1 && 0 <= v0 && v0 < v1 && v1 <= vocab && size >= 1 && rank >= 0 && rank < size);
    DIFFU_ASSERT(max_rows >= 1 && (size == 1 || allgather));
    diffu_sampler_vp *s = diffu_xcalloc(1, sizeof *s);
    s->vocab = vocab;
    s->v0 = v0;
    s->v1 = v1;
    s->nloc = v1 - v0;
    s->rank = rank;
    s->size = size;
    s->max_rows = max_rows;
    s->ag = allgather;
    s->ag_user = user;
    s->pool = pool;
    if (size == 1) {
        DIFFU_ASSERT(v0 == 0 && v1 == vocab);
        s->whole = diffu_sampler_create(vocab, pool);
        return s;
    }
    s->rows = diffu_xcalloc((size_t)max_rows, sizeof *s->rows);
    s->send = diffu_xmalloc((size_t)max_rows * 3 * sizeof *s->send);
    s->recv = diffu_xmalloc((size_t)size * (size_t)max_rows * 3 * sizeof *s->recv);
    size_t per_row = (size_t)s->nloc * sizeof(vcand);
    size_t budget = (size_t)64 << 20;
    s->chunk = (int)(budget / per_row);
    if (s->chunk < 1) s->chunk = 1;
    if (s->chunk > max_rows) s->chunk = max_rows;
    s->cbuf = diffu_xmalloc((size_t)s->chunk * per_row);
    s->sel = diffu_xmalloc((size_t)max_rows * sizeof *s->sel);
    return s;
}

void diffu_sampler_vp_free(diffu_sampler_vp **sp) {
    if (!sp || !*sp) return;
    diffu_sampler_vp *s = *sp;
    diffu_sampler_free(&s->whole);
    free(s->rows);
    free(s->send);
    free(s->recv);
    free(s->cbuf);
    free(s->sel);
    free(s);
    *sp = NULL;
}

void diffu_sampler_vp_counts(const diffu_sampler_vp *s, long *allgathers, long *doubles) {
    *allgathers = s->n_ag;
    *doubles = s->n_doubles;
}

/* n doubles per row from every rank: s->recv[t * n_rows * k + r * k + j] */
static void gather(diffu_sampler_vp *s, int n_rows, int k) {
    size_t n = (size_t)n_rows * (size_t)k;
    s->ag(s->ag_user, s->send, n, s->recv);
    s->n_ag++;
    s->n_doubles += (long)n;
}

static inline const double *got(const diffu_sampler_vp *s, int t, int n_rows, int k, int r) {
    return s->recv + (size_t)t * (size_t)n_rows * (size_t)k + (size_t)r * (size_t)k;
}

/* z of local index i of row r, with the ban and the filters decided so far
 * (sampler.c's order: z = logits / T; ban; top-p; top-k). */
static inline double zval(const diffu_sampler_vp *s, const float *L, const diffu_sampler_params *p, const vrow *rw,
                          int i) {
    double T = p->temperature;
    double z = T > 0 ? (double)L[i] / T : (double)L[i];
    int32_t v = s->v0 + i;
    if (v == p->ban_token) return -INFINITY;
    if (rw->has_p && (z < rw->pz || (z == rw->pz && v > rw->pid))) return -INFINITY;
    if (rw->has_k && z < rw->kth) return -INFINITY;
    return z;
}

static inline int before(const vcand *x, double z, int32_t id) { return x->z > z || (x->z == z && x->id < id); }

static inline const float *row_logits(const diffu_sampler_vp *s, int r) { return s->logits + (size_t)r * s->ld; }

/* ------------------------------------------------------------ phase tasks */

typedef struct {
    diffu_sampler_vp *s;
    int n_rows, phase, k; /* k: doubles per row in send */
    int n_sel;            /* filter passes: rows s->sel[0..n_sel) */
    int top_k;            /* filter pass kind: 1 top-k, 0 top-p */
} ptask;

/* R1: local max and its first id. */
static void t_max(void *arg, int r, int tid) {
    (void)tid;
    ptask *c = arg;
    diffu_sampler_vp *s = c->s;
    const diffu_sampler_params *p = s->jobs[r].params;
    vrow *rw = &s->rows[r];
    const float *L = row_logits(s, r);
    double m = -INFINITY;
    int32_t arg_ = -1;
    for (int i = 0; i < s->nloc; i++) {
        double z = zval(s, L, p, rw, i);
        if (z > m) {
            m = z;
            arg_ = s->v0 + i;
        }
    }
    s->send[(size_t)r * 2] = m;
    s->send[(size_t)r * 2 + 1] = (double)arg_;
}

/* top-p input: local sum exp(z - m) over the ban-applied row. */
static void t_zpre(void *arg, int j, int tid) {
    (void)tid;
    ptask *c = arg;
    diffu_sampler_vp *s = c->s;
    int r = s->sel[j];
    const diffu_sampler_params *p = s->jobs[r].params;
    vrow *rw = &s->rows[r];
    const float *L = row_logits(s, r);
    double Z = 0;
    for (int i = 0; i < s->nloc; i++) Z += vm_exp1(zval(s, L, p, rw, i) - rw->m);
    s->send[j] = Z;
}

/* Fill a row's candidates: top-p those with exp(z - m) >= bound (weight
 * exp(z - m)), top-k every entry (weight 1). */
static void t_cands(void *arg, int j, int tid) {
    (void)tid;
    ptask *c = arg;
    diffu_sampler_vp *s = c->s;
    int r = s->sel[j];
    const diffu_sampler_params *p = s->jobs[r].params;
    vrow *rw = &s->rows[r];
    const float *L = row_logits(s, r);
    int n = 0;
    if (c->top_k) {
        for (int i = 0; i < s->nloc; i++) {
            rw->cand[n].z = zval(s, L, p, rw, i);
            rw->cand[n].w = 1.0;
            rw->cand[n].id = s->v0 + i;
            n++;
        }
    } else {
        double bound = rw->sel_target; /* stashed by the caller: the candidate bound in exp(z - m) units */
        for (int i = 0; i < s->nloc; i++) {
            double z = zval(s, L, p, rw, i), e = vm_exp1(z - rw->m);
            if (e >= bound) {
                rw->cand[n].z = z;
                rw->cand[n].w = e;
                rw->cand[n].id = s->v0 + i;
                n++;
            }
        }
    }
    rw->n_cand = n;
    rw->lo = 0;
    rw->hi = n;
}

/* Quickselect round, part 1: this rank's pivot proposal for an undecided row:
 * the median of three of its undecided candidates at pseudo-random positions
 * (value, id, count). (Fixed positions — first, middle, last — degrade to a
 * few candidates per round on the arrangements the partition leaves behind.) */
static void t_propose(void *arg, int j, int tid) {
    (void)tid;
    ptask *c = arg;
    diffu_sampler_vp *s = c->s;
    vrow *rw = &s->rows[s->sel[j]];
    double *o = s->send + (size_t)j * 3;
    int n = rw->hi - rw->lo;
    if (rw->done || n <= 0) {
        o[0] = 0;
        o[1] = -1;
        o[2] = 0;
        return;
    }
    uint64_t h = ((uint64_t)(uint32_t)s->sel[j] << 32 | (uint32_t)rw->lo) * 0x9e3779b97f4a7c15ull ^ (uint64_t)n;
    int pos[3];
    for (int q = 0; q < 3; q++) {
        h ^= h >> 29;
        h *= 0xbf58476d1ce4e5b9ull;
        h ^= h >> 32;
        pos[q] = rw->lo + (int)(h % (uint64_t)n);
    }
    const vcand *x = &rw->cand[pos[0]], *y = &rw->cand[pos[1]], *w = &rw->cand[pos[2]];
    const vcand *pv = before(x, y->z, y->id) ? (before(y, w->z, w->id) ? y : (before(x, w->z, w->id) ? w : x))
                                             : (before(x, w->z, w->id) ? x : (before(y, w->z, w->id) ? w : y));
    o[0] = pv->z;
    o[1] = (double)pv->id;
    o[2] = (double)n;
}

/* Quickselect round, part 2: partition the undecided candidates around the
 * chosen pivot: [lo, kpos) before it, the pivot itself (if this rank holds it),
 * then the rest; report the mass before it and the pivot's own weight. */
static void t_partition(void *arg, int j, int tid) {
    (void)tid;
    ptask *c = arg;
    diffu_sampler_vp *s = c->s;
    vrow *rw = &s->rows[s->sel[j]];
    double *o = s->send + (size_t)j * 2;
    o[0] = o[1] = 0;
    if (rw->done) return;
    double pz = rw->piv_z;
    int32_t pid = rw->piv_id;
    int k = rw->lo;
    double mass = 0, pw = 0;
    int own = -1;
    for (int i = rw->lo; i < rw->hi; i++) {
        vcand *x = &rw->cand[i];
        if (before(x, pz, pid)) {
            mass += x->w;
            vcand u = *x;
            *x = rw->cand[k];
            rw->cand[k++] = u;
        }
    }
    for (int i = k; i < rw->hi; i++)
        if (rw->cand[i].id == pid) own = i;
    if (own >= 0) { /* move the pivot right after the before-part */
        vcand u = rw->cand[own];
        rw->cand[own] = rw->cand[k];
        rw->cand[k] = u;
        pw = u.w;
    }
    rw->kpos = k;
    rw->own = own >= 0;
    o[0] = mass;
    o[1] = pw;
}

/* R2: after the filters: local sum exp(z - m) and top-2 exp values (the
 * whole-row loop of sampler.c, on the slice). */
static void t_sum(void *arg, int r, int tid) {
    (void)tid;
    ptask *c = arg;
    diffu_sampler_vp *s = c->s;
    const diffu_sampler_params *p = s->jobs[r].params;
    vrow *rw = &s->rows[r];
    const float *L = row_logits(s, r);
    double Z = 0, a = -1, b = -1;
    for (int i = 0; i < s->nloc; i++) {
        double e = vm_exp1(zval(s, L, p, rw, i) - rw->m);
        Z += e;
        if (e > a) {
            b = a;
            a = e;
        } else if (e > b) {
            b = e;
        }
    }
    double *o = s->send + (size_t)r * 3;
    o[0] = Z;
    o[1] = a;
    o[2] = b;
}

/* R3: the drawn token (on the slice holding the draw) and the entropy partial. */
static void t_draw(void *arg, int r, int tid) {
    (void)tid;
    ptask *c = arg;
    diffu_sampler_vp *s = c->s;
    const diffu_sampler_params *p = s->jobs[r].params;
    vrow *rw = &s->rows[r];
    const float *L = row_logits(s, r);
    double *o = s->send + (size_t)r * 3;
    o[0] = -1;
    o[1] = 0;
    o[2] = 0;
    if (p->temperature > 0 && rw->tstar == s->rank) {
        double cum = rw->cum0;
        int32_t tok = -1, last = -1;
        double elast = 0, etok = 0;
        for (int i = 0; i < s->nloc; i++) {
            double e = vm_exp1(zval(s, L, p, rw, i) - rw->m);
            if (e <= 0) continue;
            cum += e;
            last = s->v0 + i;
            elast = e;
            if (!rw->fallback && cum > rw->target) {
                tok = last;
                etok = e;
                break;
            }
        }
        if (tok < 0) { /* rounding at the very top of the CDF: the last token with mass */
            tok = last;
            etok = elast;
        }
        o[0] = (double)tok;
        o[1] = etok;
    }
    if (p->conf == DIFFU_CONF_NEG_ENTROPY) {
        double h = 0;
        for (int i = 0; i < s->nloc; i++) {
            double e = vm_exp1(zval(s, L, p, rw, i) - rw->m);
            if (e <= 0) continue; /* p = 0 adds 0 * log(1e-10) = 0 */
            double pv = e / rw->Z;
            h += pv * vm_log1(pv + 1e-10);
        }
        o[2] = h;
    }
}

static void run_rows(diffu_sampler_vp *s, diffu_pool_fn fn, ptask *c, int n) {
    if (n <= 0) return;
    if (s->pool) diffu_pool_run(s->pool, fn, c, n);
    else
        for (int i = 0; i < n; i++) fn(c, i, 0);
}

/* ------------------------------------------------------------ filters */

/* One filter (top-p or top-k) for the rows s->sel[0..n): candidates, then the
 * distributed quickselect, chunk by chunk; sets has_p/pz/pid or has_k/kth. */
static void filter_pass(diffu_sampler_vp *s, int n, int top_k) {
    for (int c0 = 0; c0 < n; c0 += s->chunk) {
        int nc = n - c0 < s->chunk ? n - c0 : s->chunk;
        int *sel = s->sel + c0;
        /* the task functions index s->sel; point it at this chunk */
        int *save = s->sel;
        s->sel = sel;
        for (int j = 0; j < nc; j++) {
            vrow *rw = &s->rows[sel[j]];
            rw->cand = s->cbuf + (size_t)j * (size_t)s->nloc;
            rw->done = rw->found = 0;
            rw->acc = 0;
            const diffu_sampler_params *p = s->jobs[sel[j]].params;
            if (top_k) {
                rw->sel_target = (double)(p->top_k - 1);
            } else {
                /* sampler.c apply_top_p: bound = (1 - top_p) / (2V) Z, target = top_p Z */
                rw->sel_target = 0.5 * (1.0 - p->top_p) / (double)s->vocab * rw->Z; /* the bound, for t_cands */
            }
        }
        ptask c = {s, nc, 0, 0, nc, top_k};
        run_rows(s, t_cands, &c, nc);
        if (!top_k)
            for (int j = 0; j < nc; j++) {
                vrow *rw = &s->rows[sel[j]];
                rw->sel_target = s->jobs[sel[j]].params->top_p * rw->Z;
            }
        for (int round = 0;; round++) {
            /* every round decides at least the pivot, somewhere: at most vocab rounds (the same bound on every rank) */
            DIFFU_ASSERTF(round <= s->vocab + 1, "vocab-parallel quickselect does not converge");
            int open = 0;
            for (int j = 0; j < nc; j++) open += !s->rows[sel[j]].done;
            if (!open) break;
            run_rows(s, t_propose, &c, nc);
            gather(s, nc, 3);
            for (int j = 0; j < nc; j++) { /* the proposal of the rank with the most undecided candidates */
                vrow *rw = &s->rows[sel[j]];
                if (rw->done) continue;
                int best = -1;
                double bn = 0;
                for (int t = 0; t < s->size; t++) {
                    const double *g = got(s, t, nc, 3, j);
                    if (g[2] > bn) {
                        bn = g[2];
                        best = t;
                    }
                }
                if (best < 0) { /* nothing undecided anywhere: the mass never passes the target */
                    rw->done = 1;
                    rw->found = 0;
                    continue;
                }
                const double *g = got(s, best, nc, 3, j);
                rw->piv_z = g[0];
                rw->piv_id = (int32_t)g[1];
            }
            run_rows(s, t_partition, &c, nc);
            gather(s, nc, 2);
            for (int j = 0; j < nc; j++) {
                vrow *rw = &s->rows[sel[j]];
                if (rw->done) continue;
                double mass = 0, pw = 0;
                for (int t = 0; t < s->size; t++) {
                    const double *g = got(s, t, nc, 2, j);
                    mass += g[0];
                    pw += g[1];
                }
                if (rw->acc + mass > rw->sel_target) {
                    rw->hi = rw->kpos; /* the cut is before the pivot */
                } else if (rw->acc + mass + pw > rw->sel_target) {
                    rw->done = rw->found = 1; /* the pivot is the cut */
                } else {
                    rw->acc += mass + pw;
                    rw->lo = rw->kpos + rw->own;
                }
            }
        }
        for (int j = 0; j < nc; j++) {
            vrow *rw = &s->rows[sel[j]];
            if (!rw->found) continue; /* top-p: the mass never exceeds top_p (rounding): nothing removed */
            if (top_k) {
                rw->has_k = 1;
                rw->kth = rw->piv_z;
            } else {
                rw->has_p = 1;
                rw->pz = rw->piv_z;
                rw->pid = rw->piv_id;
            }
        }
        s->sel = save;
    }
}

/* ------------------------------------------------------------ run */

void diffu_sampler_vp_run(diffu_sampler_vp *s, int n_rows, const float *logits, size_t ld,
                          const diffu_sample_job *jobs, diffu_sample *out) {
    DIFFU_ASSERT(n_rows >= 0 && n_rows <= s->max_rows && ld >= (size_t)s->nloc);
    if (s->whole) {
        diffu_sampler_run(s->whole, n_rows, logits, ld, jobs, out);
        return;
    }
    if (n_rows == 0) return; /* every rank sees the same n_rows: nobody gathers */
    s->logits = logits;
    s->ld = ld;
    s->jobs = jobs;
    ptask c = {s, n_rows, 0, 0, 0, 0};
    for (int r = 0; r < n_rows; r++) {
        vrow *rw = &s->rows[r];
        memset(rw, 0, sizeof *rw);
    }

    /* R1: max and argmax after the ban */
    run_rows(s, t_max, &c, n_rows);
    gather(s, n_rows, 2);
    for (int r = 0; r < n_rows; r++) {
        vrow *rw = &s->rows[r];
        rw->m = -INFINITY;
        rw->amax = -1;
        for (int t = 0; t < s->size; t++) {
            const double *g = got(s, t, n_rows, 2, r);
            if (g[0] > rw->m) { /* strict: ties go to the lower rank = the lower ids */
                rw->m = g[0];
                rw->amax = (int32_t)g[1];
            }
        }
        DIFFU_ASSERTF(isfinite(rw->m), "logits row has no finite maximum (NaN/inf from the forward?)");
    }

    /* top-p, then top-k (sampler.c's order); the max is never removed by either */
    int n = 0;
    for (int r = 0; r < n_rows; r++)
        if (jobs[r].params->top_p > 0 && jobs[r].params->top_p < 1) s->sel[n++] = r;
    if (n) {
        run_rows(s, t_zpre, &(ptask){s, n_rows, 0, 0, n, 0}, n);
        gather(s, n, 1);
        for (int j = 0; j < n; j++) {
            double Z = 0;
            for (int t = 0; t < s->size; t++) Z += got(s, t, n, 1, j)[0];
            s->rows[s->sel[j]].Z = Z;
        }
        filter_pass(s, n, 0);
    }
    n = 0;
    for (int r = 0; r < n_rows; r++)
        if (jobs[r].params->top_k > 0 && jobs[r].params->top_k < s->vocab) s->sel[n++] = r;
    if (n) filter_pass(s, n, 1);

    /* R2: Z, top-2, and where the draw falls */
    run_rows(s, t_sum, &c, n_rows);
    gather(s, n_rows, 3);
    int need_r3 = 0;
    for (int r = 0; r < n_rows; r++) {
        vrow *rw = &s->rows[r];
        const diffu_sampler_params *p = jobs[r].params;
        double Z = 0, top[2] = {-1, -1};
        for (int t = 0; t < s->size; t++) {
            const double *g = got(s, t, n_rows, 3, r);
            Z += g[0];
            for (int q = 1; q <= 2; q++) { /* the two largest of the slices' top-2 (with multiplicity) */
                double e = g[q];
                if (e > top[0]) {
                    top[1] = top[0];
                    top[0] = e;
                } else if (e > top[1]) {
                    top[1] = e;
                }
            }
        }
        rw->Z = Z;
        rw->a = top[0];
        rw->b = top[1];
        if (p->temperature > 0) {
            uint32_t u4[4];
            diffu_philox4x32(&jobs[r].ctr, &jobs[r].key, u4);
            rw->target = diffu_philox_u01(u4) * Z;
            double cum = 0;
            int lastnz = -1;
            rw->tstar = -1;
            for (int t = 0; t < s->size; t++) {
                double St = got(s, t, n_rows, 3, r)[0];
                if (St > 0) lastnz = t;
                if (rw->tstar < 0 && cum + St > rw->target) {
                    rw->tstar = t;
                    rw->cum0 = cum;
                }
                if (rw->tstar < 0) cum += St;
            }
            if (rw->tstar < 0) { /* rounding at the top of the CDF */
                rw->tstar = lastnz;
                rw->fallback = 1;
            }
            need_r3 = 1;
        }
        if (p->conf == DIFFU_CONF_NEG_ENTROPY) need_r3 = 1;
    }

    /* R3: the draw and the entropy */
    if (need_r3) {
        run_rows(s, t_draw, &c, n_rows);
        gather(s, n_rows, 3);
    }
    for (int r = 0; r < n_rows; r++) {
        vrow *rw = &s->rows[r];
        const diffu_sampler_params *p = jobs[r].params;
        int32_t tok = rw->amax;
        double etok = 1.0; /* exp(m - m) */
        double H = 0;
        if (need_r3) {
            for (int t = 0; t < s->size; t++) {
                const double *g = got(s, t, n_rows, 3, r);
                if (p->temperature > 0 && t == rw->tstar) {
                    tok = (int32_t)g[0];
                    etok = g[1];
                }
                H += g[2];
            }
        }
        DIFFU_ASSERT(tok >= 0 && tok < s->vocab);
        double conf;
        switch (p->conf) {
        case DIFFU_CONF_MARGIN: {
            double a = rw->a, b = rw->b < 0 ? 0 : rw->b;
            conf = a / rw->Z - b / rw->Z;
            break;
        }
        case DIFFU_CONF_NEG_ENTROPY: conf = H; break;
        default: conf = etok / rw->Z; break;
        }
        out[r].token = tok;
        out[r].pad_ = 0;
        out[r].conf = conf;
    }
}
