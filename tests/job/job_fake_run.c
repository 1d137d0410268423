/* job_fake_run.c — the batch-job I/O path of `diffu generate --input/--output`
 * with the model replaced by a deterministic stand-in, for the kill / resume /
 * disk-full tests (check_kill.py, check_full.sh).
 *
 * usage: job_fake_run IN OUT [--format diffu|evalplus|humaneval] [--kill-after K]
 *                    [--sleep-us U] [--big BYTES] [--emit-ids] [--no-sync]
 *
 * Reads IN with coordinator/job_input.h (byte-count stand-in tokenizer),
 * opens OUT with coordinator/job_output.h (lock, repair, resume), and for
 * every accepted (id, sample) not yet in OUT writes the record whose
 * completion is fake_completion(id, sample) (check_kill.py computes the same
 * text). --kill-after K: raise SIGKILL right after the K-th record of this run
 * (a kill between records); --sleep-us: pause between records (so an outside
 * kill lands anywhere, including inside a write). Prints on stderr
 * "fake_run: skipped S, wrote W" and exits 0; on an I/O error prints the error
 * and exits 1. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "job_input.h"
#include "job_output.h"

/* "# <id> sample <s>\n" + filler lines up to `big` bytes; the filler mixes
 * the id and sample so gzip cannot shrink it to nothing */
static void fake_completion(const char *id, int sample, int big, diffu_text *out) {
    char line[256];
    int n = snprintf(line, sizeof line, "    return %d  # %s sample %d\n", (int)(strlen(id) * 7 + sample), id, sample);
    diffu_text_append(out, line, (size_t)n);
    unsigned x = 2166136261u ^ (unsigned)sample;
    for (const char *p = id; *p; p++) x = (x ^ (unsigned char)*p) * 16777619u;
    while ((int)out->len < big) {
        x = x * 1103515245u + 12345u;
        n = snprintf(line, sizeof line, "    # %08x\n", x);
        diffu_text_append(out, line, (size_t)n);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: job_fake_run IN OUT [--format F] [--kill-after K] [--sleep-us U] [--big B] "
                        "[--emit-ids] [--no-sync]\n");
        return 2;
    }
    const char *inp = argv[1], *outp = argv[2];
    diffu_jobout_opts oo;
    diffu_jobout_opts_default(&oo);
    long kill_after = -1, sleep_us = 0;
    int big = 0;
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--format") && i + 1 < argc) {
            int f = diffu_jobout_format_parse(argv[++i]);
            if (f < 0) return 2;
            oo.format = (diffu_jobout_format)f;
        } else if (!strcmp(argv[i], "--kill-after") && i + 1 < argc) {
            kill_after = atol(argv[++i]);
        } else if (!strcmp(argv[i], "--sleep-us") && i + 1 < argc) {
            sleep_us = atol(argv[++i]);
        } else if (!strcmp(argv[i], "--big") && i + 1 < argc) {
            big = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--emit-ids")) {
            oo.emit_ids = 1;
        } else if (!strcmp(argv[i], "--no-sync")) {
            oo.sync = 0;
        } else {
            fprintf(stderr, "job_fake_run: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    signal(SIGXFSZ, SIG_IGN);
    diffu_jobin_opts io;
    diffu_jobin_opts_default(&io);
    io.vocab = 257;
    io.defaults.mask_id = 256;
    io.defaults.max_new_tokens = 16;
    io.count_tokens = diffu_jobin_count_bytes;
    diffu_err err;
    diffu_jobin *in = diffu_jobin_open(inp, &io, &err);
    if (!in) {
        fprintf(stderr, "fake_run: error: %s\n", err.msg);
        return 1;
    }
    diffu_jobout *out = diffu_jobout_open(outp, &oo, &err);
    if (!out) {
        fprintf(stderr, "fake_run: error: %s\n", err.msg);
        diffu_jobin_free(&in);
        return 1;
    }
    long skipped = 0, wrote = 0;
    int rc = 0;
    diffu_text comp = {0};
    int32_t ids[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    for (int i = 0; i < diffu_jobin_count(in) && !rc; i++) {
        const diffu_jobin_req *r = diffu_jobin_get(in, i);
        for (int s = 0; s < r->n; s++) {
            if (diffu_jobout_done(out, r->id, r->id_len, s)) {
                skipped++;
                continue;
            }
            comp.len = 0;
            fake_completion(r->id, s, big, &comp);
            diffu_arness a = {4, {1, 1, 0.5, 0.25}, {1, 1, 1, 1}};
            diffu_jobout_rec rec = {r,  s,  comp.data, comp.len, (s & 1) ? DIFFU_FINISH_LENGTH : DIFFU_FINISH_STOP,
                                    r->prompt_tokens, 4, r->params.steps, r->params.steps, 0.25 * s, &a, ids, 3, ids + 3, 5};
            if (diffu_jobout_write(out, &rec, &err)) {
                fprintf(stderr, "fake_run: error: %s\n", err.msg);
                rc = 1;
                break;
            }
            wrote++;
            if (kill_after >= 0 && wrote == kill_after) raise(SIGKILL);
            if (sleep_us) usleep((useconds_t)sleep_us);
        }
    }
    diffu_text_free(&comp);
    if (diffu_jobout_close(&out, &err) && !rc) {
        fprintf(stderr, "fake_run: error: %s\n", err.msg);
        rc = 1;
    }
    fprintf(stderr, "fake_run: skipped %ld, wrote %ld\n", skipped, wrote);
    diffu_jobin_free(&in);
    return rc;
}
