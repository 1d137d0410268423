/* fuzz_proto.c — the protobuf messages between ranks (proto/diffu.proto) and
 * the code that consumes them, without MPI: byte 0 selects the message, the
 * rest is its wire bytes.
 *   0: Handshake (rank 0's check, node/handshake.c diffu_handshake_verify)
 *      against this build's own handshake for rank i = byte 1 % 4 of a
 *      pp 2 x tp 2 layout of a small config. Oracle: a refusal is one line.
 *   1: HandshakeReply (unpacked as every rank does).
 *   2: Control (StepCommand / Shutdown) through the step loop's arena unpack
 *      (coordinator/wire.c), every field walked as a worker reads it.
 *   3: StepResult into a scheduler with one microbatch in flight
 *      (coordinator/scheduler.c diffu_sched_result): refused with a one-line
 *      reason, or committed; then the loop runs on with well-formed results
 *      until the job is done (a committed foreign result must not break it).
 * The protocol's integrity is MPI's (ranks of one job); these are the
 * messages a foreign peer, a mixed build or a bug would put on the wire. */
#include "config.h"
#include "denoise.h"
#include "diffu.pb-c.h"
#include "fuzz_common.h"
#include "handshake.h"
#include "layout.h"
#include "scheduler.h"
#include "wire.h"

static diffu_layout *g_layout;
static uint8_t g_mine[4][512];
static size_t g_mine_len[4];
static diffu_wire_arena g_arena;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    fz_quiet();
    diffu_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.model_type, sizeof c.model_type, "Dream");
    snprintf(c.torch_dtype, sizeof c.torch_dtype, "bfloat16");
    c.hidden = 64, c.inter = 128, c.n_layers = 4, c.n_heads = 4, c.n_kv_heads = 2, c.head_dim = 16, c.vocab = 1000;
    c.max_pos = 4096, c.rope_theta = 1e6, c.rms_eps = 1e-6, c.tie_embed = 0;
    c.bos_id = 997, c.eos_id = 998, c.pad_id = 998, c.mask_id = 999;
    diffu_err err;
    if (diffu_layout_init(&c, 4, 2, 2, NULL, &g_layout, &err)) {
        fprintf(stderr, "fuzz_proto: layout: %s\n", err.msg);
        abort();
    }
    for (int r = 0; r < 4; r++) { /* what rank r of this build sends */
        const diffu_rank_plan *p = diffu_layout_rank(g_layout, r);
        Diffu__Handshake h = DIFFU__HANDSHAKE__INIT;
        h.protocol_version = diffu_protocol_version();
        h.build_id = (char *)diffu_build_id();
        h.model_fingerprint = 0x1234abcd5678ef00ull;
        h.rank = (uint32_t)r, h.world_size = 4, h.pp = 2, h.tp = 2;
        h.hostname = (char *)"node1";
        h.stage = (uint32_t)p->stage, h.tp_rank = (uint32_t)p->tp_rank;
        h.layer_begin = (uint32_t)p->shard.layer_begin, h.layer_end = (uint32_t)p->shard.layer_end;
        h.layout_hash = diffu_layout_hash(g_layout);
        h.pid = 100 + r, h.threads = 1, h.host_cpus = 2, h.row_panel = 1;
        g_mine_len[r] = diffu__handshake__get_packed_size(&h);
        if (g_mine_len[r] > sizeof g_mine[r]) abort();
        diffu__handshake__pack(&h, g_mine[r]);
    }
    diffu_wire_arena_init(&g_arena, 4096);
    return 0;
}

static void do_handshake(int i, const uint8_t *d, size_t n) {
    char why[1024] = "";
    int rc = diffu_handshake_verify(g_mine[0], g_mine_len[0], d, n, i, 4, g_layout, why, sizeof why);
    if (rc) FZ_CHECK(why[0] && !strchr(why, '\n'), "a refusal without a one-line reason");
    else FZ_CHECK(!why[0], "accepted with a reason");
}

static void do_reply(const uint8_t *d, size_t n) {
    Diffu__HandshakeReply *r = diffu__handshake_reply__unpack(NULL, n, d);
    if (!r) return;
    size_t total = strlen(r->reason);
    for (size_t i = 0; i < r->n_hostnames; i++) total += strlen(r->hostnames[i]);
    (void)total;
    diffu__handshake_reply__free_unpacked(r, NULL);
}

static void do_control(const uint8_t *d, size_t n) {
    Diffu__Control *c = diffu_wire_arena_unpack(&g_arena, &diffu__control__descriptor, n, d);
    if (!c) return;
    uint64_t h = 0;
    if (c->msg_case == DIFFU__CONTROL__MSG_SHUTDOWN && c->shutdown) {
        h += strlen(c->shutdown->reason) + (uint64_t)c->shutdown->exit_code;
    } else if (c->msg_case == DIFFU__CONTROL__MSG_STEP && c->step) {
        const Diffu__StepCommand *s = c->step;
        for (size_t i = 0; i < s->n_release; i++) h += s->release[i];
        for (size_t i = 0; i < s->n_seqs; i++) {
            const Diffu__SeqStep *q = s->seqs[i];
            FZ_CHECK(q, "a NULL sequence in a parsed StepCommand");
            for (size_t k = 0; k < q->n_tokens; k++) h += (uint64_t)q->tokens[k];
            for (size_t k = 0; k < q->n_changed_pos; k++) h += q->changed_pos[k];
            for (size_t k = 0; k < q->n_changed_tok; k++) h += (uint64_t)q->changed_tok[k];
            for (size_t k = 0; k < q->n_positions; k++) h += q->positions[k];
            if (q->tokens && q->n_tokens) h ^= diffu_wire_hash_i32(q->tokens, q->n_tokens);
        }
    }
    (void)h;
}

enum { V = 64, MASK = 63, NSEQ = 3 };

static size_t pack_good(diffu_wire_packbuf *pk, diffu_wire_arena *ar, diffu_sched *sc, long id, int32_t *tok, double *conf) {
    size_t ml;
    const uint8_t *m = diffu_sched_control(sc, 3, &ml);
    Diffu__Control *c = diffu_wire_arena_unpack(ar, &diffu__control__descriptor, ml, m);
    FZ_CHECK(c && c->step, "our own Control does not parse");
    size_t rows = 0;
    for (size_t k = 0; k < c->step->n_seqs; k++)
        for (size_t j = 0; j < c->step->seqs[k]->n_positions && rows < 256; j++, rows++) {
            tok[rows] = (int32_t)((c->step->seqs[k]->positions[j] * 7 + k) % (V - 1));
            conf[rows] = 0.5 + 0.01 * (double)(rows % 13);
        }
    Diffu__StepResult r = DIFFU__STEP_RESULT__INIT;
    r.microbatch = (uint64_t)id;
    r.n_token = r.n_confidence = rows;
    r.token = tok;
    r.confidence = conf;
    return diffu_wire_pack(pk, &r.base);
}

static void write_seeds(const char *dir);

static void do_result(const uint8_t *d, size_t n) {
    diffu_denoise_params p;
    diffu_denoise_params_default(&p);
    p.max_new_tokens = 6;
    p.steps = 3;
    p.mask_id = MASK;
    p.n_end = 1;
    p.end_ids[0] = 5;
    diffu_err err;
    diffu_denoise *seqs[NSEQ];
    int32_t prompt[3] = {1, 2, 3};
    for (int i = 0; i < NSEQ; i++) {
        seqs[i] = diffu_denoise_create(&p, V, prompt, 3, (uint32_t)i, 0, &err);
        FZ_CHECK(seqs[i], "denoise_create: %s", err.msg);
    }
    int len = 3 + p.max_new_tokens;
    diffu_sched_opts o = {1, NSEQ, 1, NSEQ, NSEQ * len, NSEQ * p.max_new_tokens, len, NULL, NULL, NULL, NULL, 0, NULL, NULL, 0};
    diffu_sched *sc = diffu_sched_create(&o, seqs, NSEQ, &err);
    FZ_CHECK(sc, "sched_create: %s", err.msg);
    long id = diffu_sched_next(sc);
    FZ_CHECK(id == 0, "first microbatch %ld", id);
    const char *seeds = getenv("DIFFU_FUZZ_WRITE_SEEDS");
    if (seeds) { /* tests/fuzz/make_seeds.py: this build's own messages of the first microbatch */
        diffu_wire_packbuf pk = {0};
        diffu_wire_arena ar;
        diffu_wire_arena_init(&ar, 4096);
        int32_t tok[256];
        double conf[256];
        char path[512];
        uint8_t buf[8192];
        for (int role = 0; role < 4; role++) {
            size_t ml;
            const uint8_t *m = diffu_sched_control(sc, role, &ml);
            snprintf(path, sizeof path, "%s/control_role%d", seeds, role);
            buf[0] = 2;
            memcpy(buf + 1, m, ml < sizeof buf - 1 ? ml : sizeof buf - 1);
            fz_write(path, buf, 1 + ml);
        }
        size_t rl = pack_good(&pk, &ar, sc, id, tok, conf);
        snprintf(path, sizeof path, "%s/result_mb0", seeds);
        buf[0] = 3;
        memcpy(buf + 1, pk.data, rl);
        fz_write(path, buf, 1 + rl);
        size_t sl;
        const uint8_t *m = diffu_sched_shutdown(sc, "done", 0, &sl);
        snprintf(path, sizeof path, "%s/control_shutdown", seeds);
        buf[0] = 2;
        memcpy(buf + 1, m, sl);
        fz_write(path, buf, 1 + sl);
        write_seeds(seeds);
        diffu_wire_arena_free(&ar);
        diffu_wire_packbuf_free(&pk);
    }
    err.msg[0] = 0;
    if (diffu_sched_result(sc, d, n, &err)) {
        FZ_CHECK(err.msg[0] && !strchr(err.msg, '\n'), "a refusal without a one-line reason");
    } else { /* committed: run the job to its end with well-formed results */
        diffu_wire_packbuf pk = {0};
        diffu_wire_arena ar;
        diffu_wire_arena_init(&ar, 4096);
        int32_t tok[256];
        double conf[256];
        for (int round = 0; round < 100 && !diffu_sched_done(sc); round++) {
            id = diffu_sched_next(sc);
            if (id < 0) break;
            size_t rl = pack_good(&pk, &ar, sc, id, tok, conf);
            FZ_CHECK(diffu_sched_result(sc, pk.data, rl, &err) == 0, "a well-formed result refused: %s", err.msg);
        }
        FZ_CHECK(diffu_sched_done(sc), "the job did not finish after a committed result");
        for (int i = 0; i < NSEQ; i++) {
            int L;
            const int32_t *cv = diffu_denoise_canvas(seqs[i], &L);
            for (int k = 0; k < L; k++) FZ_CHECK(cv[k] >= 0 && cv[k] < V, "canvas token %d outside [0,%d)", cv[k], V);
        }
        diffu_wire_arena_free(&ar);
        diffu_wire_packbuf_free(&pk);
    }
    diffu_sched_free(&sc);
    for (int i = 0; i < NSEQ; i++) diffu_denoise_free(&seqs[i]);
}

static void write_seeds(const char *dir) {
    char path[512];
    uint8_t buf[600];
    for (int r = 0; r < 4; r++) { /* the well-formed handshakes of ranks 0..3 */
        snprintf(path, sizeof path, "%s/handshake_rank%d", dir, r);
        buf[0] = 0, buf[1] = (uint8_t)r;
        memcpy(buf + 2, g_mine[r], g_mine_len[r]);
        fz_write(path, buf, g_mine_len[r] + 2);
    }
    Diffu__HandshakeReply r = DIFFU__HANDSHAKE_REPLY__INIT;
    char *hosts[2] = {"node1", "node2"};
    r.ok = 1, r.reason = "", r.n_hostnames = 2, r.hostnames = hosts;
    size_t n = diffu__handshake_reply__pack(&r, buf + 1);
    buf[0] = 1;
    snprintf(path, sizeof path, "%s/handshake_reply", dir);
    fz_write(path, buf, n + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    switch (data[0] & 3) {
    case 0: do_handshake(data[1] % 4, data + 2, size - 2); break;
    case 1: do_reply(data + 1, size - 1); break;
    case 2: do_control(data + 1, size - 1); break;
    default: do_result(data + 1, size - 1); break;
    }
    return 0;
}
