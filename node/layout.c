/* layout.c — see layout.h. */
#include "layout.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "checkpoint.h"
#include "hash.h"
#include "forward.h"
#include "kvcache.h"

struct diffu_layout {
    diffu_config cfg;
    diffu_layout_opts o;
    int world, pp, tp;
    double layer_flops, head_flops, head_cost, bottleneck;
    int *stage_begin;       /* [pp + 1] */
    diffu_rank_plan *ranks; /* [world] */
    int *kv_copies;         /* [n_kv_heads] TP ranks of a stage holding each KV head */
};

double diffu_layout_rank_bytes(const diffu_rank_plan *p) {
    return (double)p->weight_bytes + (double)p->act_bytes + (double)p->io_bytes + (double)p->cache_bytes;
}

void diffu_layout_opts_default(diffu_layout_opts *o) {
    memset(o, 0, sizeof *o);
    o->max_tokens = 2048;
    o->threads = 1;
    o->head_row_frac = 1.0;
}

static void fill_defaults(diffu_layout_opts *o, const diffu_config *c) {
    if (o->max_tokens <= 0) o->max_tokens = 2048;
    if (o->max_seq <= 0 || o->max_seq > o->max_tokens) o->max_seq = o->max_tokens;
    if (o->max_rows <= 0) o->max_rows = o->max_tokens;
    if (o->threads <= 0) o->threads = 1;
    if (o->head_row_frac <= 0) o->head_row_frac = 1.0;
    if (o->weight_elem_size == 0)
        o->weight_elem_size = (!strcmp(c->torch_dtype, "float32") || !strcmp(c->torch_dtype, "fp32")) ? 4 : 2;
}

/* The tp values the heads and the FFN allow, as "1, 2, 4, 7, 14, 28". */
static void allowed_tp(const diffu_config *c, char *buf, size_t n) {
    size_t used = 0;
    buf[0] = 0;
    for (int t = 1; t <= c->n_heads && used + 16 < n; t++)
        if (c->n_heads % t == 0 && t <= c->inter) used += (size_t)snprintf(buf + used, n - used, "%s%d", used ? ", " : "", t);
}

int diffu_layout_check(const diffu_config *c, int world, int pp, int tp, diffu_err *err) {
    if (world < 1) return diffu_err_set(err, "world size %d: need at least one rank", world);
    if (pp < 1) return diffu_err_set(err, "pp %d: need at least one pipeline stage", pp);
    if (tp < 1) return diffu_err_set(err, "tp %d: need at least one tensor-parallel rank per stage", tp);
    if ((long long)pp * tp != world)
        return diffu_err_set(err, "world size %d is not pp %d x tp %d = %lld ranks (every rank is one stage's tensor-parallel rank)",
                             world, pp, tp, (long long)pp * tp);
    if (pp > c->n_layers)
        return diffu_err_set(err, "pp %d exceeds num_hidden_layers %d (every pipeline stage needs at least one layer)", pp,
                             c->n_layers);
    char ok[256];
    allowed_tp(c, ok, sizeof ok);
    if (c->n_heads % tp)
        return diffu_err_set(err, "tp %d does not divide num_attention_heads %d (tp must be one of %s)", tp, c->n_heads, ok);
    if (tp > c->inter)
        return diffu_err_set(err, "tp %d exceeds intermediate_size %d (tp must be one of %s)", tp, c->inter, ok);
    if (tp > c->vocab) return diffu_err_set(err, "tp %d exceeds vocab_size %d", tp, c->vocab);
    return 0;
}

static double layer_flops(const diffu_config *c, const diffu_layout_opts *o) {
    double H = c->hidden, hd = c->head_dim, nh = c->n_heads, nkv = c->n_kv_heads, F = c->inter, S = o->max_seq;
    return 2.0 * (H * nh * hd + 2.0 * H * nkv * hd + nh * hd * H + 3.0 * H * F) + 4.0 * S * nh * hd;
}

static double head_flops(const diffu_config *c) { return 2.0 * (double)c->vocab * c->hidden + 4.0 * c->hidden; }

double diffu_layout_head_cost(const diffu_config *c, const diffu_layout_opts *o_in) {
    diffu_layout_opts o;
    if (o_in) o = *o_in; else diffu_layout_opts_default(&o);
    fill_defaults(&o, c);
    return o.head_row_frac * head_flops(c) / layer_flops(c, &o);
}

double diffu_layout_balance(int L, int P, double h, int *begin) {
    DIFFU_ASSERT(P >= 1 && P <= L && h >= 0);
    int best_n = L;
    double best = (double)L + h;
    if (P > 1) {
        best = INFINITY;
        for (int n = 1; n <= L - P + 1; n++) {
            int rest = L - n;
            double front = (double)((rest + P - 2) / (P - 1));
            double cost = front > n + h ? front : n + h;
            if (cost < best - 1e-9 || (cost <= best + 1e-9 && n > best_n)) {
                best = cost;
                best_n = n;
            }
        }
    }
    begin[0] = 0;
    int rest = L - best_n, F = P - 1;
    for (int s = 0; s < F; s++) begin[s + 1] = begin[s] + rest / F + (s < rest % F ? 1 : 0);
    begin[P] = L;
    DIFFU_ASSERT(begin[P - 1] == L - best_n);
    return best;
}

static void add_coll(diffu_rank_plan *r, diffu_coll_kind k, int peer, int gfirst, int gn, int per) {
    DIFFU_ASSERT(r->n_colls < DIFFU_LAYOUT_MAX_COLLS);
    diffu_layout_coll *cl = &r->colls[r->n_colls++];
    cl->kind = k;
    cl->peer = peer;
    cl->group_first = gfirst;
    cl->group_n = gn;
    cl->per_forward = per;
}

int diffu_layout_init(const diffu_config *c, int world, int pp, int tp, const diffu_layout_opts *o,
                      diffu_layout **out, diffu_err *err) {
    *out = NULL;
    if (diffu_layout_check(c, world, pp, tp, err)) return -1;
    diffu_layout *l = diffu_xcalloc(1, sizeof *l);
    l->cfg = *c;
    if (o) l->o = *o; else diffu_layout_opts_default(&l->o);
    fill_defaults(&l->o, c);
    l->world = world;
    l->pp = pp;
    l->tp = tp;
    l->layer_flops = layer_flops(c, &l->o);
    l->head_flops = head_flops(c);
    l->head_cost = l->o.head_row_frac * l->head_flops / l->layer_flops;
    l->stage_begin = diffu_xmalloc((size_t)(pp + 1) * sizeof *l->stage_begin);
    l->bottleneck = diffu_layout_balance(c->n_layers, pp, l->head_cost, l->stage_begin);
    l->ranks = diffu_xcalloc((size_t)world, sizeof *l->ranks);
    l->kv_copies = diffu_xcalloc((size_t)c->n_kv_heads, sizeof *l->kv_copies);
    diffu_model_opts mo;
    diffu_model_opts_default(&mo);
    mo.max_tokens = l->o.max_tokens;
    mo.max_seq = l->o.max_seq;
    mo.max_rows = l->o.max_rows;
    mo.threads = l->o.threads;
    size_t H = (size_t)c->hidden;
    for (int s = 0; s < pp; s++) {
        int lb = l->stage_begin[s], le = l->stage_begin[s + 1];
        for (int t = 0; t < tp; t++) {
            int rank = s * tp + t;
            diffu_rank_plan *r = &l->ranks[rank];
            r->rank = rank;
            r->stage = s;
            r->tp_rank = t;
            if (diffu_shard_init(&r->shard, c, lb, le, t, tp, err)) { /* checked above: a bug if it fails */
                DIFFU_ASSERTF(0, "diffu_shard_init refused a checked layout: %s", err ? err->msg : "");
            }
            r->prev_rank = s > 0 ? rank - tp : -1;
            r->next_rank = s < pp - 1 ? rank + tp : -1;
            r->stage_first_rank = s * tp;
            add_coll(r, DIFFU_COLL_HANDSHAKE, 0, 0, world, 0);
            if (r->prev_rank >= 0) add_coll(r, DIFFU_COLL_RECV_PREV, r->prev_rank, 0, 0, 1);
            if (tp > 1) add_coll(r, DIFFU_COLL_TP_ALLREDUCE, -1, s * tp, tp, 2 * (le - lb));
            if (r->next_rank >= 0) add_coll(r, DIFFU_COLL_SEND_NEXT, r->next_rank, 0, 0, 1);
            if (tp > 1 && r->shard.head) add_coll(r, DIFFU_COLL_VOCAB_REDUCE, -1, s * tp, tp, 1);
            r->weight_bytes = diffu_plan_weight_bytes(c, &r->shard, l->o.weight_elem_size);
            r->act_bytes = diffu_plan_activation_bytes(c, &r->shard, &mo);
            r->io_bytes = (size_t)(pp > 1 ? 2 : 1) * (size_t)l->o.max_tokens * H * 4;
            if (r->shard.head)
                r->io_bytes += (size_t)l->o.max_rows * (size_t)(r->shard.vocab_end - r->shard.vocab_begin) * 4;
            if (l->o.cache_slots > 0)
                r->cache_bytes = diffu_kvcache_plan_bytes(c, &r->shard, l->o.cache_slots,
                                                          l->o.cache_ctx > 0 ? l->o.cache_ctx : l->o.max_seq);
            r->cost = (double)(le - lb) + (r->shard.head ? l->head_cost : 0.0);
            if (s == 0)
                for (int h = r->shard.kv_head_begin; h < r->shard.kv_head_end; h++) l->kv_copies[h]++;
        }
    }
    *out = l;
    return 0;
}

void diffu_layout_free(diffu_layout *l) {
    if (!l) return;
    free(l->stage_begin);
    free(l->ranks);
    free(l->kv_copies);
    free(l);
}

int diffu_layout_from_dir(const char *dir, int config_only, int world, int pp, int tp, const diffu_layout_opts *o_in,
                          diffu_layout **out, diffu_err *err) {
    *out = NULL;
    diffu_layout_opts o;
    if (o_in) o = *o_in; else diffu_layout_opts_default(&o);
    diffu_config cfg;
    if (config_only) {
        char path[4096];
        snprintf(path, sizeof path, "%s/config.json", dir);
        if (diffu_config_load(path, &cfg, err)) return -1;
    } else {
        diffu_ckpt *ck;
        if (diffu_ckpt_open(dir, &ck, err)) return -1;
        cfg = *diffu_ckpt_config(ck);
        if (o.weight_elem_size == 0) {
            diffu_ckpt_stats st;
            diffu_ckpt_get_stats(ck, &st);
            o.weight_elem_size = st.bytes_by_dtype[DIFFU_F32] > st.bytes_total / 2 ? 4 : 2;
        }
        diffu_ckpt_close(ck);
    }
    if (world <= 0 && pp <= 0 && tp <= 0) return diffu_err_set(err, "give the world size or pp and tp");
    if (world <= 0) {
        world = (pp > 0 ? pp : 1) * (tp > 0 ? tp : 1);
    } else if (pp <= 0 && tp <= 0) {
        tp = 1;
        pp = world;
    } else if (pp <= 0) {
        if (world % tp) return diffu_err_set(err, "world size %d is not a multiple of tp %d", world, tp);
        pp = world / tp;
    } else if (tp <= 0) {
        if (world % pp) return diffu_err_set(err, "world size %d is not a multiple of pp %d", world, pp);
        tp = world / pp;
    }
    if (pp <= 0) pp = 1;
    if (tp <= 0) tp = 1;
    return diffu_layout_init(&cfg, world, pp, tp, &o, out, err);
}

int diffu_layout_world(const diffu_layout *l) { return l->world; }
int diffu_layout_pp(const diffu_layout *l) { return l->pp; }
int diffu_layout_tp(const diffu_layout *l) { return l->tp; }
const diffu_config *diffu_layout_config(const diffu_layout *l) { return &l->cfg; }
const diffu_layout_opts *diffu_layout_get_opts(const diffu_layout *l) { return &l->o; }

const diffu_rank_plan *diffu_layout_rank(const diffu_layout *l, int rank) {
    DIFFU_ASSERT(rank >= 0 && rank < l->world);
    return &l->ranks[rank];
}

void diffu_layout_stage_layers(const diffu_layout *l, int s, int *begin, int *end) {
    DIFFU_ASSERT(s >= 0 && s < l->pp);
    *begin = l->stage_begin[s];
    *end = l->stage_begin[s + 1];
}

int diffu_layout_kv_copies(const diffu_layout *l, int h) {
    DIFFU_ASSERT(h >= 0 && h < l->cfg.n_kv_heads);
    return l->kv_copies[h];
}

uint64_t diffu_layout_hash(const diffu_layout *l) {
    uint64_t h = DIFFU_FNV64_INIT;
    int32_t head[3] = {l->world, l->pp, l->tp};
    h = diffu_fnv64(h, head, sizeof head);
    for (int r = 0; r < l->world; r++) {
        const diffu_shard *s = &l->ranks[r].shard;
        int32_t v[14] = {s->layer_begin, s->layer_end, s->embed, s->head, s->tp_rank, s->tp_size,
                         s->q_head_begin, s->q_head_end, s->kv_head_begin, s->kv_head_end,
                         s->ffn_begin, s->ffn_end, s->vocab_begin, s->vocab_end};
        h = diffu_fnv64(h, v, sizeof v);
    }
    return h;
}

static double mib(double b) { return b / (1024.0 * 1024.0); }

static void range(char *buf, size_t n, int b, int e) { snprintf(buf, n, "[%d,%d)", b, e); }

void diffu_layout_print(const diffu_layout *l, FILE *f) {
    const diffu_config *c = &l->cfg;
    const diffu_layout_opts *o = &l->o;
    fprintf(f, "layout: %d rank(s) = %d pipeline stage(s) x %d tensor-parallel rank(s); rank = stage x %d + tp\n",
            l->world, l->pp, l->tp, l->tp);
    fprintf(f, "model: hidden %d, %d layers, %d heads (%d KV, head_dim %d), intermediate %d, vocab %d\n", c->hidden,
            c->n_layers, c->n_heads, c->n_kv_heads, c->head_dim, c->inter, c->vocab);
    fprintf(f, "balance: layer %.4g FLOP/token (sequence %d), lm_head + norm %.4g FLOP/row x %.2f rows/token"
               " = %.3f layers; embedding 0\n",
            l->layer_flops, o->max_seq, l->head_flops, o->head_row_frac, l->head_cost);
    double total = c->n_layers + l->head_cost;
    fprintf(f, "stages:");
    for (int s = 0; s < l->pp; s++) {
        int b = l->stage_begin[s], e = l->stage_begin[s + 1];
        double cost = (double)(e - b) + (s == l->pp - 1 ? l->head_cost : 0);
        fprintf(f, "%s %d [%d,%d) %.2f", s ? " |" : "", s, b, e, cost);
    }
    fprintf(f, "\nbalance: bottleneck %.3f layers, ideal %.3f (= (%d + %.3f) / %d), efficiency %.1f%%\n", l->bottleneck,
            total / l->pp, c->n_layers, l->head_cost, l->pp, 100.0 * total / (l->pp * l->bottleneck));
    int maxcopies = 1;
    for (int h = 0; h < c->n_kv_heads; h++) maxcopies = l->kv_copies[h] > maxcopies ? l->kv_copies[h] : maxcopies;
    if (maxcopies > 1)
        fprintf(f, "kv heads: replicated, each of the %d KV heads held by up to %d of a stage's %d ranks\n", c->n_kv_heads,
                maxcopies, l->tp);
    else
        fprintf(f, "kv heads: not replicated\n");
    fprintf(f, "memory: %d tokens/forward, %d per sequence, %d lm_head rows, %d thread(s)/rank, weights %zu bytes/element;"
               " the embedding (stage 0) is mmap'd whole, only the rows used become resident\n",
            o->max_tokens, o->max_seq, o->max_rows, o->threads, o->weight_elem_size);
    int kvc = o->cache_slots > 0;
    if (kvc)
        fprintf(f, "kv cache: %d request slot(s) x %d positions, fp32 K and V of the rank's layers and kv heads\n",
                o->cache_slots, o->cache_ctx > 0 ? o->cache_ctx : o->max_seq);
    fprintf(f, "%5s %5s %3s %9s %9s %7s %13s %17s %11s %11s %11s%s %11s\n", "rank", "stage", "tp", "layers", "q heads",
            "kv", "ffn cols", "vocab rows", "weights MiB", "activ. MiB", "io MiB", kvc ? "   cache MiB" : "",
            "total MiB");
    double maxtot = 0;
    for (int r = 0; r < l->world; r++) {
        const diffu_rank_plan *p = &l->ranks[r];
        const diffu_shard *s = &p->shard;
        char lay[24], qh[24], kv[24], ffn[32], voc[40];
        range(lay, sizeof lay, s->layer_begin, s->layer_end);
        range(qh, sizeof qh, s->q_head_begin, s->q_head_end);
        range(kv, sizeof kv, s->kv_head_begin, s->kv_head_end);
        range(ffn, sizeof ffn, s->ffn_begin, s->ffn_end);
        if (s->head) range(voc, sizeof voc, s->vocab_begin, s->vocab_end); else snprintf(voc, sizeof voc, "-");
        if (s->embed) strncat(lay, "+e", sizeof lay - strlen(lay) - 1);
        if (s->head) strncat(lay, "+h", sizeof lay - strlen(lay) - 1);
        double tot = diffu_layout_rank_bytes(p);
        maxtot = tot > maxtot ? tot : maxtot;
        char cb[24] = "";
        if (kvc) snprintf(cb, sizeof cb, " %11.1f", mib((double)p->cache_bytes));
        fprintf(f, "%5d %5d %3d %9s %9s %7s %13s %17s %11.1f %11.1f %11.1f%s %11.1f\n", r, p->stage, p->tp_rank, lay, qh, kv,
                ffn, voc, mib((double)p->weight_bytes), mib((double)p->act_bytes), mib((double)p->io_bytes), cb, mib(tot));
    }
    fprintf(f, "memory: largest rank %.1f MiB (%.2f GiB)\n", mib(maxtot), maxtot / 1073741824.0);
    fprintf(f, "collectives per forward ([T x %d] fp32 = T x %d bytes each):\n", c->hidden, 4 * c->hidden);
    for (int r = 0; r < l->world; r++) {
        const diffu_rank_plan *p = &l->ranks[r];
        fprintf(f, "  rank %d:", r);
        for (int i = 0; i < p->n_colls; i++) {
            const diffu_layout_coll *cl = &p->colls[i];
            switch (cl->kind) {
            case DIFFU_COLL_HANDSHAKE: break; /* start-up only, listed once below */
            case DIFFU_COLL_RECV_PREV: fprintf(f, " recv [T x H] from rank %d;", cl->peer); break;
            case DIFFU_COLL_SEND_NEXT: fprintf(f, " send [T x H] to rank %d;", cl->peer); break;
            case DIFFU_COLL_TP_ALLREDUCE:
                fprintf(f, " tp all-reduce [T x H] x %d on ranks %d-%d;", cl->per_forward, cl->group_first,
                        cl->group_first + cl->group_n - 1);
                break;
            case DIFFU_COLL_VOCAB_REDUCE:
                fprintf(f, " vocab-parallel reduction (per-row statistics) on ranks %d-%d;", cl->group_first,
                        cl->group_first + cl->group_n - 1);
                break;
            }
        }
        if (p->n_colls == 1) fprintf(f, " none (single process)");
        fprintf(f, "\n");
    }
    fprintf(f, "  all ranks: handshake to rank 0 at start-up\n");
}
