/* test_layout.c — node/layout.h in one process (no MPI): refusals with their
 * reasons, the DiffuCoder-7B shape on 16 ranks (pp 4 x tp 4, pp 16 x tp 1,
 * pp 2 x tp 8 refused, tp 7 / 14 / 28 with replicated KV heads), the balance
 * rule against a brute-force search over every contiguous split, its head cost
 * in closed form, the weight bytes of the slices adding up to the model, and the
 * KV cache bytes per rank in closed form.
 * Prints one line per failed check and "N passed, M failed"; exit 1 on any failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "forward.h"
#include "layout.h"
#include "mkmodel.h"

#include "check.h" /* tests/common: CHECK, n_pass, n_fail, check_report */

static diffu_config preset(const char *name) {
    diffu_config c;
    diffu_err err;
    if (diffu_mkmodel_preset(name, &c, &err)) { printf("preset %s: %s\n", name, err.msg); exit(2); }
    return c;
}

static void refuses(const diffu_config *c, int n, int p, int t, const char *want) {
    diffu_err err = {""};
    diffu_layout *l = NULL;
    int rc = diffu_layout_init(c, n, p, t, NULL, &l, &err);
    CHECK(rc == -1 && l == NULL, "np %d pp %d tp %d accepted", n, p, t);
    CHECK(strstr(err.msg, want) != NULL, "np %d pp %d tp %d: message '%s' lacks '%s'", n, p, t, err.msg, want);
    CHECK(strchr(err.msg, '\n') == NULL, "multi-line message");
}

static diffu_layout *make(const diffu_config *c, int n, int p, int t) {
    diffu_err err;
    diffu_layout *l;
    if (diffu_layout_init(c, n, p, t, NULL, &l, &err)) {
        printf("FAIL: np %d pp %d tp %d refused: %s\n", n, p, t, err.msg);
        n_fail++;
        return NULL;
    }
    n_pass++;
    return l;
}

/* the stage cost of a split (layers + h on the last) */
static double split_cost(const int *b, int P, double h) {
    double worst = 0;
    for (int s = 0; s < P; s++) {
        double cost = b[s + 1] - b[s] + (s == P - 1 ? h : 0);
        worst = cost > worst ? cost : worst;
    }
    return worst;
}

/* brute force: the best bottleneck over every split of L layers into P non-empty stages */
static double brute(int L, int P, double h, int *b, int s) {
    if (s == P - 1) {
        b[P] = L;
        return b[P - 1] < L ? split_cost(b, P, h) : INFINITY;
    }
    double best = INFINITY;
    for (int e = b[s] + 1; e <= L - (P - 1 - s); e++) {
        b[s + 1] = e;
        double c = brute(L, P, h, b, s + 1);
        best = c < best ? c : best;
    }
    return best;
}

int main(void) {
    diffu_config c7 = preset("7b"), tiny = preset("tiny");

    /* --- refusals, before anything loads */
    refuses(&c7, 16, 4, 3, "world size 16 is not pp 4 x tp 3 = 12 ranks");
    refuses(&c7, 29, 29, 1, "pp 29 exceeds num_hidden_layers 28");
    refuses(&c7, 16, 2, 8, "tp 8 does not divide num_attention_heads 28 (tp must be one of 1, 2, 4, 7, 14, 28)");
    refuses(&c7, 3, 1, 3, "tp 3 does not divide num_attention_heads 28");
    refuses(&tiny, 3, 3, 1, "pp 3 exceeds num_hidden_layers 2");
    refuses(&c7, 0, 1, 1, "world size 0");
    diffu_config narrow = tiny;
    narrow.n_heads = 8; narrow.n_kv_heads = 2; narrow.head_dim = 8; narrow.inter = 4;
    refuses(&narrow, 8, 1, 8, "tp 8 exceeds intermediate_size 4 (tp must be one of 1, 2, 4)");

    /* --- the head in layer units, closed form (DiffuCoder-7B, sequence 2048) */
    double layer = 2.0 * (3584.0 * 3584 * 2 + 2.0 * 3584 * 512 + 3.0 * 3584 * 18944) + 4.0 * 2048 * 3584;
    double head = 2.0 * 152064 * 3584 + 4.0 * 3584;
    double h7 = diffu_layout_head_cost(&c7, NULL);
    CHECK(fabs(h7 - head / layer) < 1e-12 * h7, "head cost %.15g, want %.15g", h7, head / layer);
    CHECK(fabs(h7 - 2.2) < 0.01, "7b head cost %.4f, about 2.2 expected", h7);
    diffu_layout_opts half;
    diffu_layout_opts_default(&half);
    half.head_row_frac = 0.5;
    CHECK(fabs(diffu_layout_head_cost(&c7, &half) - h7 / 2) < 1e-12, "head_row_frac scales the head");

    /* --- the balance rule: optimal bottleneck vs brute force; the closed-form split */
    double hs[] = {0, 0.5, 1, 2.2, 3.7, 9};
    for (int L = 1; L <= 10; L++)
        for (int P = 1; P <= L; P++)
            for (size_t i = 0; i < sizeof hs / sizeof hs[0]; i++) {
                int b[32], bb[32] = {0};
                double got = diffu_layout_balance(L, P, hs[i], b);
                double want = brute(L, P, hs[i], bb, 0);
                CHECK(fabs(got - want) < 1e-9, "L %d P %d h %g: bottleneck %g, brute force %g", L, P, hs[i], got, want);
                CHECK(fabs(split_cost(b, P, hs[i]) - got) < 1e-9, "L %d P %d h %g: the split costs %g, returned %g", L, P,
                      hs[i], split_cost(b, P, hs[i]), got);
                int ok = b[0] == 0 && b[P] == L;
                for (int s = 0; s < P; s++) ok &= b[s + 1] > b[s];
                CHECK(ok, "L %d P %d: not a split into non-empty stages", L, P);
            }
    {
        int b[32];
        double cost = diffu_layout_balance(28, 4, 2.2, b);
        CHECK(b[1] == 8 && b[2] == 16 && b[3] == 23 && fabs(cost - 8) < 1e-12, "28/4/2.2: [0,%d,%d,%d,28] cost %g", b[1],
              b[2], b[3], cost);
        cost = diffu_layout_balance(28, 2, 2.2, b);
        CHECK(b[1] == 15 && fabs(cost - 15.2) < 1e-12, "28/2/2.2: [0,%d,28] cost %g", b[1], cost);
        cost = diffu_layout_balance(28, 16, 2.2, b);
        CHECK(b[15] == 27 && b[12] == 24 && b[1] == 2 && fabs(cost - 3.2) < 1e-12, "28/16: last [%d,28), cost %g", b[15], cost);
        cost = diffu_layout_balance(4, 3, 0.0, b); /* no head cost: ties go to the larger last stage */
        CHECK(b[1] == 1 && b[2] == 2 && fabs(cost - 2) < 1e-12, "4/3/0: [0,%d,%d,4]", b[1], b[2]);
        cost = diffu_layout_balance(7, 1, 2.2, b);
        CHECK(b[1] == 7 && fabs(cost - 9.2) < 1e-12, "P = 1 holds everything");
    }

    /* --- DiffuCoder-7B on 16 ranks: pp 4 x tp 4 */
    diffu_layout *l = make(&c7, 16, 4, 4);
    if (l) {
        int b, e;
        diffu_layout_stage_layers(l, 2, &b, &e);
        CHECK(b == 16 && e == 23, "stage 2 [%d,%d)", b, e);
        const diffu_rank_plan *p = diffu_layout_rank(l, 13);
        CHECK(p->stage == 3 && p->tp_rank == 1, "rank 13 is stage %d tp %d", p->stage, p->tp_rank);
        CHECK(p->shard.layer_begin == 23 && p->shard.layer_end == 28 && p->shard.head && !p->shard.embed, "rank 13 layers");
        CHECK(p->shard.q_head_begin == 7 && p->shard.q_head_end == 14, "q heads [%d,%d)", p->shard.q_head_begin,
              p->shard.q_head_end);
        CHECK(p->shard.kv_head_begin == 1 && p->shard.kv_head_end == 2, "kv heads");
        CHECK(p->shard.ffn_begin == 4736 && p->shard.ffn_end == 9472, "ffn [%d,%d)", p->shard.ffn_begin, p->shard.ffn_end);
        CHECK(p->shard.vocab_begin == 38016 && p->shard.vocab_end == 76032, "vocab rows");
        CHECK(p->prev_rank == 9 && p->next_rank == -1 && p->stage_first_rank == 12, "neighbours %d %d", p->prev_rank,
              p->next_rank);
        int kinds = 0;
        for (int i = 0; i < p->n_colls; i++) {
            const diffu_layout_coll *cl = &p->colls[i];
            kinds |= 1 << cl->kind;
            if (cl->kind == DIFFU_COLL_TP_ALLREDUCE)
                CHECK(cl->per_forward == 10 && cl->group_first == 12 && cl->group_n == 4, "all-reduce x%d on %d+%d",
                      cl->per_forward, cl->group_first, cl->group_n);
            if (cl->kind == DIFFU_COLL_RECV_PREV) CHECK(cl->peer == 9, "recv from %d", cl->peer);
        }
        CHECK(kinds == (1 << DIFFU_COLL_HANDSHAKE | 1 << DIFFU_COLL_RECV_PREV | 1 << DIFFU_COLL_TP_ALLREDUCE |
                        1 << DIFFU_COLL_VOCAB_REDUCE), "rank 13 collectives %x", kinds);
        p = diffu_layout_rank(l, 1);
        kinds = 0;
        for (int i = 0; i < p->n_colls; i++) kinds |= 1 << p->colls[i].kind;
        CHECK(kinds == (1 << DIFFU_COLL_HANDSHAKE | 1 << DIFFU_COLL_TP_ALLREDUCE | 1 << DIFFU_COLL_SEND_NEXT) &&
              p->next_rank == 5, "rank 1 collectives %x", kinds);
        for (int h = 0; h < 4; h++) CHECK(diffu_layout_kv_copies(l, h) == 1, "tp 4: KV head %d replicated", h);
        /* the slices partition the model: over all ranks, weights = whole model + the parts every TP rank keeps
         * whole (norms; the embedding on stage 0; the final norm) */
        uint64_t sum = 0, es = 2;
        for (int r = 0; r < 16; r++) sum += diffu_layout_rank(l, r)->weight_bytes;
        diffu_shard whole;
        diffu_err err;
        diffu_shard_init(&whole, &c7, 0, 28, 0, 1, &err);
        uint64_t H = 3584, extra = 3 * (28 * 2 * H * 4 + 152064 * H * es + H * 4);
        CHECK(sum == diffu_plan_weight_bytes(&c7, &whole, es) + extra, "slices add up to %llu, want %llu",
              (unsigned long long)sum, (unsigned long long)(diffu_plan_weight_bytes(&c7, &whole, es) + extra));
        uint64_t h1 = diffu_layout_hash(l);
        diffu_layout *l2 = make(&c7, 16, 4, 4), *l3 = make(&c7, 16, 16, 1);
        CHECK(l2 && diffu_layout_hash(l2) == h1, "same plan, same hash");
        CHECK(l3 && diffu_layout_hash(l3) != h1, "another plan, another hash");
        diffu_layout_free(l2);
        /* pp 16 x tp 1: the head stage keeps one layer; weights of all stages = the whole model */
        if (l3) {
            diffu_layout_stage_layers(l3, 15, &b, &e);
            CHECK(b == 27 && e == 28, "stage 15 [%d,%d)", b, e);
            sum = 0;
            for (int r = 0; r < 16; r++) sum += diffu_layout_rank(l3, r)->weight_bytes;
            CHECK(sum == diffu_plan_weight_bytes(&c7, &whole, es), "pp 16: stages add up to the model");
            CHECK(diffu_layout_rank(l3, 0)->n_colls == 2 && diffu_layout_rank(l3, 15)->n_colls == 2, "pp only: no tp");
        }
        diffu_layout_free(l3);
        diffu_layout_free(l);
    }

    /* --- tp 7, 14, 28: replicated (and straddled) KV heads */
    l = make(&c7, 14, 2, 7);
    if (l) {
        int want_kv[7][2] = {{0, 1}, {0, 2}, {1, 2}, {1, 3}, {2, 3}, {2, 4}, {3, 4}};
        for (int t = 0; t < 7; t++) {
            const diffu_shard *s = &diffu_layout_rank(l, 7 + t)->shard;
            CHECK(s->q_head_begin == 4 * t && s->kv_head_begin == want_kv[t][0] && s->kv_head_end == want_kv[t][1],
                  "tp 7 rank %d: q [%d,%d) kv [%d,%d)", t, s->q_head_begin, s->q_head_end, s->kv_head_begin, s->kv_head_end);
        }
        int copies[4] = {2, 3, 3, 2};
        for (int h = 0; h < 4; h++)
            CHECK(diffu_layout_kv_copies(l, h) == copies[h], "tp 7: KV head %d on %d ranks", h, diffu_layout_kv_copies(l, h));
        diffu_layout_free(l);
    }
    l = make(&c7, 28, 1, 28);
    if (l) {
        for (int h = 0; h < 4; h++) CHECK(diffu_layout_kv_copies(l, h) == 7, "tp 28: KV head %d", h);
        const diffu_shard *s = &diffu_layout_rank(l, 27)->shard;
        CHECK(s->q_head_begin == 27 && s->kv_head_begin == 3 && s->kv_head_end == 4, "tp 28 rank 27");
        CHECK(s->vocab_end == 152064 && s->ffn_end == 18944, "the last slices end at the end");
        diffu_layout_free(l);
    }
    diffu_layout_free(make(&c7, 14, 1, 14));
    diffu_config g7 = tiny; /* GQA 7:1 test model: hidden 112, 7 heads, 1 KV head */
    g7.hidden = 112; g7.n_heads = 7; g7.n_kv_heads = 1; g7.head_dim = 16; g7.inter = 96; g7.vocab = 1000;
    l = make(&g7, 7, 1, 7);
    if (l) {
        CHECK(diffu_layout_kv_copies(l, 0) == 7, "gqa 7:1 tp 7: the KV head on every rank");
        diffu_layout_free(l);
    }
    refuses(&g7, 2, 1, 2, "tp 2 does not divide num_attention_heads 7 (tp must be one of 1, 7)");

    /* KV cache in the plan: DiffuCoder-7B, pp 4 x tp 2, 32 requests x 1024 positions; closed form
     * 2 (K, V) x slots x ctx x layers x kv heads x head_dim x 4 bytes (fp32), per rank's own layers and
     * KV heads; the rank total counts it. Stages [0,8) [8,16) [16,23) [23,28) (the balance rule above). */
    {
        diffu_layout_opts lo;
        diffu_layout_opts_default(&lo);
        lo.max_tokens = 1024;
        lo.cache_slots = 32;
        lo.cache_ctx = 1024;
        diffu_err err;
        diffu_layout *lc = NULL, *ln = NULL;
        int rc = diffu_layout_init(&c7, 8, 4, 2, &lo, &lc, &err);
        lo.cache_slots = 0;
        rc |= diffu_layout_init(&c7, 8, 4, 2, &lo, &ln, &err);
        CHECK(rc == 0, "pp 4 x tp 2 with a cache refused: %s", err.msg);
        if (!rc) {
            static const int layers[4] = {8, 8, 7, 5};
            for (int r = 0; r < 8; r++) {
                const diffu_rank_plan *p = diffu_layout_rank(lc, r);
                /* + kvcache.c's bookkeeping: one byte per cached position and one per slot */
                size_t want = (size_t)2 * 32 * 1024 * layers[r / 2] * 2 * 128 * 4 + 32 * 1024 + 32;
                CHECK(p->cache_bytes == want, "rank %d: cache %zu bytes, closed form %zu", r, p->cache_bytes, want);
                CHECK(diffu_layout_rank(ln, r)->cache_bytes == 0, "rank %d: a cache without cache_slots", r);
                CHECK(fabs(diffu_layout_rank_bytes(p) - diffu_layout_rank_bytes(diffu_layout_rank(ln, r)) - (double)want) < 1,
                      "rank %d: the total does not count the cache", r);
            }
        }
        diffu_layout_free(lc);
        diffu_layout_free(ln);
    }

    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
