/* sampler.c — see sampler.h. */
#include "sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "sampler_math.h"
#include "threadpool.h"

typedef struct {
    double z, e; /* value, exp(z - max) */
    int32_t id;
} cand_t;

struct diffu_sampler_scratch {
    int vocab;
    double *z;    /* [vocab] working logits, then exp(z - max) */
    double *sel;  /* [vocab] top-k selection copy; top-p exp(z - max) */
    cand_t *cand; /* [vocab] top-p candidates */
};

struct diffu_sampler {
    int vocab;
    struct diffu_pool *pool;
    int n_scratch;
    diffu_sampler_scratch **scratch; /* one per pool thread */
};

void diffu_sampler_params_default(diffu_sampler_params *p) {
    memset(p, 0, sizeof *p);
    p->conf = DIFFU_CONF_PROB;
    p->ban_token = -1;
}

diffu_sampler_scratch *diffu_sampler_scratch_create(int vocab) {
    DIFFU_ASSERT(vocab >= 1);
    diffu_sampler_scratch *s = diffu_xcalloc(1, sizeof *s);
    s->vocab = vocab;
    s->z = diffu_xaligned((size_t)vocab * sizeof *s->z);
    s->sel = diffu_xaligned((size_t)vocab * sizeof *s->sel);
    s->cand = diffu_xmalloc((size_t)vocab * sizeof *s->cand);
    return s;
}

void diffu_sampler_scratch_free(diffu_sampler_scratch **sp) {
    if (!sp || !*sp) return;
    diffu_sampler_scratch *s = *sp;
    free(s->z);
    free(s->sel);
    free(s->cand);
    free(s);
    *sp = NULL;
}

/* ------------------------------------------------------------ filters */

/* The k-th smallest (0-based `target`) of a[0..n), reordering a. Three-way
 * partitioning keeps runs of equal values (e.g. many -inf) linear. */
static double select_smallest(double *a, int n, int target) {
    int lo = 0, hi = n - 1;
    while (lo < hi) {
        double x = a[lo], y = a[lo + (hi - lo) / 2], w = a[hi];
        double pv = x < y ? (y < w ? y : (x < w ? w : x)) : (x < w ? x : (y < w ? w : y)); /* median of 3 */
        int lt = lo, i = lo, gt = hi;
        while (i <= gt) {
            double v = a[i];
            if (v < pv) {
                a[i++] = a[lt];
                a[lt++] = v;
            } else if (v > pv) {
                a[i] = a[gt];
                a[gt--] = v;
            } else {
                i++;
            }
        }
        if (target < lt) hi = lt - 1;
        else if (target > gt) lo = gt + 1;
        else return pv;
    }
    return a[lo];
}

/* (z, id) order: larger z first, then lower id. A strict total order. */
static inline int before(const cand_t *x, const cand_t *y) { return x->z > y->z || (x->z == y->z && x->id < y->id); }

/* Dream's top_p_logits: sort descending (stable: lower id first among equal
 * values), cumulative softmax, remove where cum > top_p shifted right by one.
 * Kept = the sorted prefix up to and including the first token r whose
 * cumulative mass exceeds top_p. r is found by quickselect-style partitioning
 * in the (z, id) order, accumulating the mass of the parts known to precede
 * it: O(V) instead of a sort. (The masses are summed in partition order, not
 * sorted order: the cut can differ from a sequential sorted cumsum only when
 * the cumulative mass is within ~1e-13 of top_p.) Only tokens with
 * p >= (1 - top_p) / V can be kept (the mass after a kept token is >= 1 - top_p,
 * spread over at most V tokens, each <= its p), so the others are dropped
 * first; half that bound leaves room for rounding. */
static void apply_top_p(double *z, int V, double top_p, diffu_sampler_scratch *s) {
    double m = vm_max(z, V), *e = s->sel;
    memcpy(e, z, (size_t)V * sizeof *e);
    double Z = vm_exp_sum(e, V, m);
    double bound = 0.5 * (1.0 - top_p) / (double)V * Z; /* in exp(z - m) units */
    double target = top_p * Z;
    cand_t *a = s->cand;
    int n = 0;
    for (int v = 0; v < V; v++)
        if (e[v] >= bound) {
            a[n].z = z[v];
            a[n].e = e[v];
            a[n].id = v;
            n++;
        }
    double acc = 0; /* mass of the tokens known to precede a[lo] */
    int lo = 0, hi = n - 1, r = -1;
    while (lo <= hi) {
        /* median of three in the (z, id) order as the pivot, moved to a[hi] */
        int mid = lo + (hi - lo) / 2;
        cand_t *x = &a[lo], *y = &a[mid], *w = &a[hi];
        cand_t *pv = before(x, y) ? (before(y, w) ? y : (before(x, w) ? w : x)) : (before(x, w) ? x : (before(y, w) ? w : y));
        cand_t t = *pv;
        *pv = a[hi];
        a[hi] = t;
        /* Lomuto: tokens before the pivot to the front */
        int k = lo;
        double mass = 0;
        for (int i = lo; i < hi; i++)
            if (before(&a[i], &t)) {
                mass += a[i].e;
                cand_t u = a[i];
                a[i] = a[k];
                a[k++] = u;
            }
        a[hi] = a[k];
        a[k] = t;
        if (acc + mass > target) {
            hi = k - 1; /* the cut is among the tokens before the pivot */
        } else if (acc + mass + t.e > target) {
            r = k; /* the pivot is the first token past top_p */
            break;
        } else {
            acc += mass + t.e;
            lo = k + 1;
        }
    }
    if (r < 0) return; /* the mass never exceeds top_p (top_p ~ 1 and rounding): nothing removed */
    double zr = a[r].z;
    int32_t ir = a[r].id;
    for (int v = 0; v < V; v++)
        if (z[v] < zr || (z[v] == zr && v > ir)) z[v] = -INFINITY;
}

/* Dream's top_k_logits: remove z < the k-th largest value (ties kept). */
static void apply_top_k(double *z, int V, int k, diffu_sampler_scratch *s) {
    memcpy(s->sel, z, (size_t)V * sizeof *z);
    double kth = select_smallest(s->sel, V, V - k);
    for (int v = 0; v < V; v++)
        if (z[v] < kth) z[v] = -INFINITY;
}

/* ------------------------------------------------------------ one row */

void diffu_sampler_row(const float *logits, int V, const diffu_sample_job *job, diffu_sampler_scratch *s,
                      diffu_sample *out) {
    DIFFU_ASSERT(V == s->vocab);
    const diffu_sampler_params *p = job->params;
    double *z = s->z;
    double T = p->temperature;
    /* z = logits (/ T) in double, and its max in the same pass; a ban or a filter
     * that may have removed the max recomputes it */
    double m = vm_load_max(z, logits, V, T);
    int remax = 0;
    if (p->ban_token >= 0 && p->ban_token < V) {
        remax = z[p->ban_token] == m;
        z[p->ban_token] = -INFINITY;
    }
    if (p->top_p > 0 && p->top_p < 1) apply_top_p(z, V, p->top_p, s), remax = 1;
    if (p->top_k > 0 && p->top_k < V) apply_top_k(z, V, p->top_k, s), remax = 1;
    if (remax) m = vm_max(z, V);

    /* softmax over the full vocabulary; z becomes exp(z - max) (sampler_math.h: vectorized, double) */
    DIFFU_ASSERTF(isfinite(m), "logits row has no finite maximum (NaN/inf from the forward?)");
    int32_t arg = vm_first_eq(z, V, m); /* argmax: the first maximal id */
    double Z = vm_exp_sum(z, V, m); /* z[arg] = exp(0) = 1 */
    int32_t tok = arg;
    if (T > 0) {
        uint32_t r[4];
        diffu_philox4x32(&job->ctr, &job->key, r);
        double target = diffu_philox_u01(r) * Z, cum = 0;
        int32_t last = arg;
        tok = -1;
        /* inverse CDF: whole blocks by their (vectorized) sums, then the block that passes target */
        enum { BLK = 512 };
        int v0 = 0;
        for (; v0 + BLK <= V; v0 += BLK) {
            double bs = vm_sum(z + v0, BLK);
            if (cum + bs > target) break;
            cum += bs;
        }
        for (int v = v0; v < V; v++) {
            if (z[v] <= 0) continue;
            cum += z[v];
            last = v;
            if (cum > target) {
                tok = v;
                break;
            }
        }
        if (tok < 0) /* rounding at the very top of the CDF: the last token with mass */
            for (int v = V - 1; v >= 0; v--)
                if (z[v] > 0) {
                    last = v;
                    break;
                }
        if (tok < 0) tok = last;
    }
    double conf;
    switch (p->conf) {
    case DIFFU_CONF_MARGIN: {
        /* top-1 and top-2 of the exp values (a duplicate maximum gives margin 0) */
        double a = 1.0, b = vm_max_excl(z, V, arg);
        if (b < 0) b = 0;
        conf = a / Z - b / Z;
        break;
    }
    case DIFFU_CONF_NEG_ENTROPY: conf = vm_entropy(z, V, Z); break;
    default: conf = z[tok] / Z; break;
    }
    out->token = tok;
    out->pad_ = 0;
    out->conf = conf;
}

/* ------------------------------------------------------------ threaded */

diffu_sampler *diffu_sampler_create(int vocab, struct diffu_pool *pool) {
    diffu_sampler *s = diffu_xcalloc(1, sizeof *s);
    s->vocab = vocab;
    s->pool = pool;
    s->n_scratch = pool ? diffu_pool_size(pool) : 1;
    s->scratch = diffu_xcalloc((size_t)s->n_scratch, sizeof *s->scratch);
    for (int t = 0; t < s->n_scratch; t++) s->scratch[t] = diffu_sampler_scratch_create(vocab);
    return s;
}

void diffu_sampler_free(diffu_sampler **sp) {
    if (!sp || !*sp) return;
    diffu_sampler *s = *sp;
    for (int t = 0; t < s->n_scratch; t++) diffu_sampler_scratch_free(&s->scratch[t]);
    free(s->scratch);
    free(s);
    *sp = NULL;
}


typedef struct {
    diffu_sampler *s;
    const float *logits;
    size_t ld;
    const diffu_sample_job *jobs;
    diffu_sample *out;
} run_ctx;

static void run_task(void *arg, int r, int tid) {
    run_ctx *c = arg;
    diffu_sampler_row(c->logits + (size_t)r * c->ld, c->s->vocab, &c->jobs[r], c->s->scratch[tid], &c->out[r]);
}

void diffu_sampler_run(diffu_sampler *s, int n_rows, const float *logits, size_t ld, const diffu_sample_job *jobs,
                       diffu_sample *out) {
    DIFFU_ASSERT(ld >= (size_t)s->vocab);
    run_ctx c = {s, logits, ld, jobs, out};
    if (!s->pool) {
        for (int r = 0; r < n_rows; r++) run_task(&c, r, 0);
        return;
    }
    diffu_pool_run(s->pool, run_task, &c, n_rows);
}
