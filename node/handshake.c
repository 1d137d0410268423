/* handshake.c — see handshake.h. */
#include "handshake.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "diffu.pb-c.h"
#include "gemm.h"
#include "forward.h"

#ifndef DIFFU_BUILD_ID
#define DIFFU_BUILD_ID "diffu-unknown"
#endif

unsigned diffu_protocol_version(void) { return DIFFU__VERSION__PROTOCOL_VERSION; }
const char *diffu_build_id(void) { return DIFFU_BUILD_ID; }

/* DIFFU_DEBUG_HANDSHAKE=RANK:FIELD=VALUE — make this rank claim another value (tests). */
static void debug_override(int rank, Diffu__Handshake *h, char *build_buf, size_t build_cap) {
    const char *e = getenv("DIFFU_DEBUG_HANDSHAKE");
    if (!e || !*e) return;
    char *end;
    long r = strtol(e, &end, 10);
    if (r != rank || *end != ':') return;
    const char *field = end + 1, *eq = strchr(field, '=');
    if (!eq) return;
    size_t fl = (size_t)(eq - field);
    const char *val = eq + 1;
    if (fl == 11 && !strncmp(field, "fingerprint", fl)) h->model_fingerprint = strtoull(val, NULL, 16);
    else if (fl == 5 && !strncmp(field, "build", fl)) { snprintf(build_buf, build_cap, "%s", val); h->build_id = build_buf; }
    else if (fl == 8 && !strncmp(field, "protocol", fl)) h->protocol_version = (uint32_t)strtoul(val, NULL, 10);
    else if (fl == 6 && !strncmp(field, "layout", fl)) h->layout_hash = strtoull(val, NULL, 16);
    else if (fl == 5 && !strncmp(field, "panel", fl)) h->row_panel = (uint32_t)strtoul(val, NULL, 10);
    else if (fl == 9 && !strncmp(field, "precision", fl)) h->precision = (char *)val;
    else { DLOG_WARN("debug: DIFFU_DEBUG_HANDSHAKE='%s': unknown field (fingerprint, build, protocol, layout, panel, precision)", e); return; }
    DLOG_WARN("debug: DIFFU_DEBUG_HANDSHAKE: rank %d claims %.*s = %s", rank, (int)fl, field, val);
}

/* Rank 0: the first reason to refuse rank i's handshake, or "" (writes why). */
static void check_one(const Diffu__Handshake *me, const Diffu__Handshake *h, int i, int world,
                      const diffu_layout *l, char *why, size_t n) {
    why[0] = 0;
    char who[320];
    snprintf(who, sizeof who, "rank %d (host %s, pid %u)", i, h->hostname ? h->hostname : "?", h->pid);
    if (h->protocol_version != me->protocol_version) {
        snprintf(why, n, "%s speaks control protocol %u, rank 0 speaks %u (mixed diffu versions)", who, h->protocol_version,
                 me->protocol_version);
        return;
    }
    if (h->error && h->error[0]) { snprintf(why, n, "%s: %s", who, h->error); return; }
    if (strcmp(h->build_id, me->build_id)) {
        snprintf(why, n, "%s runs build '%s', rank 0 runs '%s' (install one diffu build on every host)", who, h->build_id,
                 me->build_id);
        return;
    }
    if (h->rank != (uint32_t)i || h->world_size != (uint32_t)world) {
        snprintf(why, n, "%s says it is rank %u of %u, MPI says rank %d of %d", who, h->rank, h->world_size, i, world);
        return;
    }
    if (h->pp != me->pp || h->tp != me->tp) {
        snprintf(why, n, "%s was started with pp %u x tp %u, rank 0 with pp %u x tp %u", who, h->pp, h->tp, me->pp, me->tp);
        return;
    }
    if (h->model_fingerprint != me->model_fingerprint) {
        snprintf(why, n, "%s: model fingerprint %016llx differs from rank 0's %016llx (another checkpoint or config.json)",
                 who, (unsigned long long)h->model_fingerprint, (unsigned long long)me->model_fingerprint);
        return;
    }
    if (h->layout_hash != me->layout_hash) {
        snprintf(why, n, "%s computed layout %016llx, rank 0 computed %016llx (different config or options)", who,
                 (unsigned long long)h->layout_hash, (unsigned long long)me->layout_hash);
        return;
    }
    if (l) {
        const diffu_rank_plan *p = diffu_layout_rank(l, i);
        if (h->stage != (uint32_t)p->stage || h->tp_rank != (uint32_t)p->tp_rank ||
            h->layer_begin != (uint32_t)p->shard.layer_begin || h->layer_end != (uint32_t)p->shard.layer_end)
            snprintf(why, n, "%s thinks it is stage %u tp %u with layers [%u,%u), rank 0's plan says stage %d tp %d [%d,%d)",
                     who, h->stage, h->tp_rank, h->layer_begin, h->layer_end, p->stage, p->tp_rank, p->shard.layer_begin,
                     p->shard.layer_end);
    }
}

/* The reason quotes the peer's strings (build id, hostname, error): keep it one
 * line whatever they hold (found by tests/fuzz proto: crash-handshake-newline). */
static void one_line(char *why) {
    for (char *q = why; *q; q++)
        if ((unsigned char)*q < 0x20 || *q == 0x7f) *q = '?';
}

static void summary(diffu_comm *c, Diffu__Handshake **hs, int world, const Diffu__Handshake *me) {
    char hosts[1024] = "";
    size_t used = 0;
    int n_hosts = 0;
    for (int i = 0; i < world && used + 64 < sizeof hosts; i++) {
        int seen = 0;
        for (int j = 0; j < i; j++) seen |= !strcmp(hs[j]->hostname, hs[i]->hostname);
        if (seen) continue;
        n_hosts++;
        used += (size_t)snprintf(hosts + used, sizeof hosts - used, "%s%s: ranks", n_hosts > 1 ? "; " : "", hs[i]->hostname);
        for (int j = i; j < world && used + 16 < sizeof hosts; j++)
            if (!strcmp(hs[j]->hostname, hs[i]->hostname)) used += (size_t)snprintf(hosts + used, sizeof hosts - used, " %d", j);
    }
    DLOG_INFO("handshake: %d rank(s) on %d host(s) (%s); protocol %u, build %s, model fingerprint %016llx, layout %016llx",
              world, n_hosts, hosts, me->protocol_version, me->build_id, (unsigned long long)me->model_fingerprint,
              (unsigned long long)me->layout_hash);
    (void)c;
    char precs[1024] = "", panels[512] = "";
    used = 0;
    for (int i = 0; i < world && used + 64 < sizeof precs; i++)
        used += (size_t)snprintf(precs + used, sizeof precs - used, "%s%d:%s/%s", i ? " " : "", i, hs[i]->precision,
                                 hs[i]->cpu_isa);
    used = 0;
    for (int i = 0; i < world && used + 16 < sizeof panels; i++)
        used += (size_t)snprintf(panels + used, sizeof panels - used, "%s%u", i ? " " : "", hs[i]->row_panel);
    DLOG_INFO("handshake: gemm precision/cpu by rank: %s; row panel by rank: %s (each stage's own, forward.h)", precs,
              panels);
    for (int i = 0; i < world; i++) { /* oversubscribed hosts: threads of all ranks there vs its CPUs */
        int seen = 0;
        for (int j = 0; j < i; j++) seen |= !strcmp(hs[j]->hostname, hs[i]->hostname);
        if (seen || !hs[i]->host_cpus) continue;
        unsigned th = 0, nr = 0;
        for (int j = i; j < world; j++)
            if (!strcmp(hs[j]->hostname, hs[i]->hostname)) th += hs[j]->threads, nr++;
        if (th > hs[i]->host_cpus)
            DLOG_WARN("host %s: %u rank(s) run %u compute threads on %u CPUs (oversubscribed: slow); give each rank its"
                      " own cores (mpirun --map-by ...:PE=N --bind-to core) or set --threads", hs[i]->hostname, nr, th,
                      hs[i]->host_cpus);
    }
}

int diffu_handshake(diffu_comm *c, uint64_t fingerprint, const diffu_layout *l, const char *local_error, int threads,
                    diffu_err *err) {
    int rank = diffu_comm_rank(c), world = diffu_comm_size(c);
    Diffu__Handshake h = DIFFU__HANDSHAKE__INIT;
    char build[256], host[256], errbuf[1024];
    snprintf(build, sizeof build, "%s", diffu_build_id());
    snprintf(host, sizeof host, "%s", diffu_comm_hostname(c));
    snprintf(errbuf, sizeof errbuf, "%s", local_error ? local_error : "");
    h.protocol_version = diffu_protocol_version();
    h.build_id = build;
    h.model_fingerprint = fingerprint;
    h.rank = (uint32_t)rank;
    h.world_size = (uint32_t)world;
    h.hostname = host;
    h.error = errbuf;
    h.pid = (uint32_t)getpid();
    h.threads = threads > 0 ? (uint32_t)threads : 0;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    h.host_cpus = cpus > 0 ? (uint32_t)cpus : 0;
    diffu_precision prec;
    diffu_err perr;
    if (diffu_precision_resolve(DIFFU_PREC_AUTO, &prec, &perr)) {
        if (!errbuf[0]) snprintf(errbuf, sizeof errbuf, "%s", perr.msg);
        prec = DIFFU_PREC_AUTO;
    }
    h.row_panel = (uint32_t)diffu_forward_panel(prec); /* (fp32's when the precision failed to resolve) */
    char precbuf[16], isabuf[32];
    snprintf(precbuf, sizeof precbuf, "%s", diffu_precision_name(prec));
    snprintf(isabuf, sizeof isabuf, "%s", diffu_cpu_get()->isa);
    h.precision = precbuf;
    h.cpu_isa = isabuf;
    if (l) {
        const diffu_rank_plan *p = diffu_layout_rank(l, rank < diffu_layout_world(l) ? rank : 0);
        h.pp = (uint32_t)diffu_layout_pp(l);
        h.tp = (uint32_t)diffu_layout_tp(l);
        h.stage = (uint32_t)p->stage;
        h.tp_rank = (uint32_t)p->tp_rank;
        h.layer_begin = (uint32_t)p->shard.layer_begin;
        h.layer_end = (uint32_t)p->shard.layer_end;
        h.layout_hash = diffu_layout_hash(l);
    }
    char dbg_build[256];
    debug_override(rank, &h, dbg_build, sizeof dbg_build);
    size_t len = diffu__handshake__get_packed_size(&h);
    uint8_t *buf = diffu_xmalloc(len + 1);
    diffu__handshake__pack(&h, buf);
    uint8_t **all;
    size_t *lens;
    diffu_comm_gather_bytes(c, buf, len, &all, &lens);
    free(buf);

    uint8_t *reply = NULL;
    size_t rlen = 0;
    if (rank == 0) {
        Diffu__Handshake **hs = diffu_xcalloc((size_t)world, sizeof *hs);
        char why[1024] = "";
        for (int i = 0; i < world; i++) {
            hs[i] = diffu__handshake__unpack(NULL, lens[i], all[i]);
            if (!hs[i] && !why[0]) snprintf(why, sizeof why, "rank %d sent a handshake that does not parse (not diffu, or a"
                                                             " much older version)", i);
        }
        for (int i = 0; i < world && !why[0]; i++) check_one(&h, hs[i], i, world, l, why, sizeof why);
        for (int i = 1; i < world && !why[0]; i++) /* the ranks of one stage: one precision, one row layout */
            for (int j = 0; j < i && !why[0]; j++) {
                if (hs[j]->stage != hs[i]->stage) continue;
                if (strcmp(hs[j]->precision, hs[i]->precision))
                    snprintf(why, sizeof why, "rank %d (host %s) computes stage %u in %s, rank %d (host %s) in %s: the"
                             " tensor-parallel ranks of one stage must use one precision (set --precision or"
                             " DIFFU_PRECISION alike on every rank of the stage)", i, hs[i]->hostname, hs[i]->stage,
                             hs[i]->precision, j, hs[j]->hostname, hs[j]->precision);
                else if (hs[j]->row_panel != hs[i]->row_panel)
                    snprintf(why, sizeof why, "rank %d (host %s) computes stage %u on row panel %u, rank %d (host %s) on"
                             " %u: the tensor-parallel ranks of one stage sum their rows in one layout (model/forward.h,"
                             " \"Row layout\"; another OpenBLAS build or DIFFU_ROW_PANEL setting: use one BLAS on the"
                             " stage's hosts, or set DIFFU_ROW_PANEL alike)", i, hs[i]->hostname, hs[i]->stage,
                             hs[i]->row_panel, j, hs[j]->hostname, hs[j]->row_panel);
            }
        one_line(why);
        Diffu__HandshakeReply r = DIFFU__HANDSHAKE_REPLY__INIT;
        r.ok = why[0] == 0;
        r.reason = why;
        char **names = diffu_xcalloc((size_t)world, sizeof *names);
        for (int i = 0; i < world; i++) names[i] = hs[i] && hs[i]->hostname ? hs[i]->hostname : "?";
        r.n_hostnames = (size_t)world;
        r.hostnames = names;
        rlen = diffu__handshake_reply__get_packed_size(&r);
        reply = diffu_xmalloc(rlen + 1);
        diffu__handshake_reply__pack(&r, reply);
        if (r.ok) summary(c, hs, world, &h);
        free(names);
        for (int i = 0; i < world; i++) {
            if (hs[i]) diffu__handshake__free_unpacked(hs[i], NULL);
            free(all[i]);
        }
        free(hs);
        free(all);
        free(lens);
    }
    diffu_comm_bcast_bytes(c, &reply, &rlen);
    Diffu__HandshakeReply *r = diffu__handshake_reply__unpack(NULL, rlen, reply);
    free(reply);
    DIFFU_ASSERTF(r, "rank 0's handshake reply does not parse");
    int rc = 0;
    if (r->n_hostnames == (size_t)world) diffu_comm_set_hosts(c, (const char *const *)r->hostnames);
    if (!r->ok) rc = diffu_err_set(err, "handshake refused: %s", r->reason);
    diffu__handshake_reply__free_unpacked(r, NULL);
    return rc;
}

int diffu_handshake_verify(const uint8_t *mine, size_t mine_len, const uint8_t *theirs, size_t len, int i, int world,
                           const diffu_layout *l, char *why, size_t n) {
    Diffu__Handshake *me = diffu__handshake__unpack(NULL, mine_len, mine);
    DIFFU_ASSERTF(me, "this rank's own handshake does not parse");
    Diffu__Handshake *h = diffu__handshake__unpack(NULL, len, theirs);
    if (!h) snprintf(why, n, "rank %d sent a handshake that does not parse (not diffu, or a much older version)", i);
    else check_one(me, h, i, world, l, why, n);
    one_line(why);
    if (h) diffu__handshake__free_unpacked(h, NULL);
    diffu__handshake__free_unpacked(me, NULL);
    return why[0] ? -1 : 0;
}
