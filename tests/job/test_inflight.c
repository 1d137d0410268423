/* test_inflight.c — coordinator/job_inflight.h, the in-flight checkpoint file,
 * together with the canvas state it carries (denoise.h save/restore).
 *
 *  - Round trip: real canvas states of 5 samples (a fake sampler, different
 *    progress each) written, read back: the same keys, prompt hashes and
 *    state bytes, found by key; records count kept; writing again after a
 *    reset replaces the file (the old entries are gone).
 *  - A canvas restored from the file runs to the same result as the
 *    uninterrupted one (the reference), for each of the 5.
 *  - The live set of a resumed job: the 5 samples enter restored at their
 *    steps, an entry of another prompt is refused (the canvas stays fresh), a
 *    checkpoint holds exactly the samples still registered, at their steps.
 *  - Every truncation of the file, every single-byte change (bit 0 and bit 5 of
 *    each byte), an appended byte: refused with one line naming the file
 *    (CRC-32 and structure checks), never accepted with other content.
 *  - A file of another run id: refused with one line naming both runs.
 *  - No file: load gives 0 and no checkpoint; remove twice is fine.
 *  - A write into a missing directory: one line naming the file. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "denoise.h"
#include "job_inflight.h"
#include "job_util.h"

enum { VOCAB = 500, MASK = 499, G = 24 };

static void run_steps(diffu_denoise *d, int n) {
    diffu_sample smp[G];
    int L = diffu_denoise_prompt_len(d);
    for (int k = 0; (n < 0 || k < n) && !diffu_denoise_done(d); k++) {
        int m = diffu_denoise_prepare(d);
        const int32_t *pos = diffu_denoise_positions(d);
        int step = diffu_denoise_steps_taken(d);
        for (int i = 0; i < m; i++) {
            uint32_t h = (uint32_t)(pos[i] - L) * 2654435761u ^ (uint32_t)step * 40503u;
            smp[i].token = (int32_t)(10 + h % 400);
            smp[i].conf = (double)(h % 997) / 997.0;
        }
        diffu_denoise_commit(d, m ? smp : NULL);
    }
}

static diffu_denoise *make(int req, const int32_t *prompt, int plen) {
    diffu_denoise_params p;
    diffu_denoise_params_default(&p);
    p.max_new_tokens = G;
    p.steps = G;
    p.mask_id = MASK;
    diffu_err err;
    return diffu_denoise_create(&p, VOCAB, prompt, plen, (uint32_t)req, 0, &err);
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n + 1);
    if (fread(b, 1, *n, f) != *n) *n = 0;
    fclose(f);
    return b;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "work_inflight";
    mkdir(dir, 0755);
    char out[512], path[600];
    snprintf(out, sizeof out, "%s/out.jsonl", dir);
    diffu_jobinf_path(out, path, sizeof path);
    diffu_err err;
    diffu_jobinf_remove(out, &err);

    const char *run = "0123456789abcdef";
    int32_t prompts[5][6];
    diffu_denoise *d[5];
    uint8_t *st[5];
    size_t stn[5];
    char key[5][64];
    size_t kl[5];
    diffu_jobinf_writer *w = diffu_jobinf_writer_new(run);
    diffu_jobinf_writer_reset(w, 42);
    for (int i = 0; i < 5; i++) {
        for (int j = 0; j < 6; j++) prompts[i][j] = 20 + 7 * i + j;
        d[i] = make(i, prompts[i], 6);
        run_steps(d[i], 3 * i); /* sample 0 has not started, sample 4 is 12 steps in */
        stn[i] = diffu_denoise_state_bytes(d[i]);
        st[i] = malloc(stn[i]);
        diffu_denoise_save(d[i], st[i]);
        char id[16];
        snprintf(id, sizeof id, "task/%d", i);
        kl[i] = diffu_job_util_sample_key(key[i], sizeof key[i], id, strlen(id), i % 2);
        diffu_jobinf_writer_add(w, key[i], kl[i], diffu_jobinf_prompt_hash(prompts[i], 6), st[i], stn[i]);
    }
    CHECK(diffu_jobinf_writer_entries(w) == 5, "entries %d", diffu_jobinf_writer_entries(w));
    CHECK(diffu_jobinf_writer_commit(w, out, &err) == 0, "commit: %s", err.msg);

    diffu_jobinf *f = NULL;
    CHECK(diffu_jobinf_load(out, run, &f, &err) == 0 && f, "load: %s", err.msg);
    if (f) {
        CHECK(diffu_jobinf_count(f) == 5 && diffu_jobinf_records(f) == 42, "count %d records %ld",
              diffu_jobinf_count(f), diffu_jobinf_records(f));
        for (int i = 0; i < 5; i++) {
            int e = diffu_jobinf_find(f, key[i], kl[i]);
            CHECK(e == i, "sample %d found as entry %d", i, e);
            if (e < 0) continue;
            const char *k;
            size_t klen, sn;
            uint32_t ph;
            const uint8_t *s;
            diffu_jobinf_entry(f, e, &k, &klen, &ph, &s, &sn);
            CHECK(klen == kl[i] && !memcmp(k, key[i], klen), "entry %d key", i);
            CHECK(ph == diffu_jobinf_prompt_hash(prompts[i], 6), "entry %d prompt hash", i);
            CHECK(sn == stn[i] && !memcmp(s, st[i], sn), "entry %d state bytes", i);
            /* restore and finish == the uninterrupted canvas */
            diffu_denoise *r = make(i, prompts[i], 6);
            CHECK(diffu_denoise_restore(r, s, sn, &err) == 0, "restore %d: %s", i, err.msg);
            run_steps(r, -1);
            run_steps(d[i], -1);
            int n1, n2;
            const int32_t *c1 = diffu_denoise_canvas(r, &n1), *c2 = diffu_denoise_canvas(d[i], &n2);
            CHECK(n1 == n2 && !memcmp(c1, c2, (size_t)n1 * 4) &&
                      !memcmp(diffu_denoise_commit_steps(r), diffu_denoise_commit_steps(d[i]), G * 4),
                  "sample %d resumed from the file differs from the uninterrupted run", i);
            diffu_denoise_free(&r);
        }
        CHECK(diffu_jobinf_find(f, "nope", 4) == -1, "an unknown key found");
        diffu_jobinf_free(&f);
    }

    /* the live set: a resumed job's samples enter (restored from the file), run, leave; checkpoints of it */
    {
        diffu_jobinf *rf = NULL;
        CHECK(diffu_jobinf_load(out, run, &rf, &err) == 0 && rf, "load for the live set: %s", err.msg);
        diffu_jobinf_live *lv = diffu_jobinf_live_new(out, run, 8, rf);
        diffu_denoise *e[6];
        long want_steps = 0;
        for (int i = 0; i < 5; i++) {
            e[i] = make(i, prompts[i], 6);
            int rc = diffu_jobinf_live_enter(lv, e[i], key[i], kl[i], prompts[i], 6, &err);
            CHECK(rc == 1, "sample %d: enter gave %d (%s), restored expected", i, rc, rc < 0 ? err.msg : "");
            CHECK(diffu_denoise_steps_taken(e[i]) == 3 * i, "sample %d restored at step %d", i,
                  diffu_denoise_steps_taken(e[i]));
            want_steps += 3 * i;
        }
        int32_t other[6] = {1, 2, 3, 4, 5, 6};
        e[5] = make(9, other, 6);
        CHECK(diffu_jobinf_live_enter(lv, e[5], key[3], kl[3], other, 6, &err) == -1 && strstr(err.msg, "another prompt") &&
                  diffu_denoise_steps_taken(e[5]) == 0,
              "an entry of another prompt was used: %s", err.msg);
        long steps = 0;
        CHECK(diffu_jobinf_live_restored(lv, &steps) == 5 && steps == want_steps, "restored %d, %ld steps",
              diffu_jobinf_live_restored(lv, NULL), steps);
        run_steps(e[2], 2);
        diffu_jobinf_live_leave(lv, e[5]);
        diffu_jobinf_live_leave(lv, e[0]);
        CHECK(diffu_jobinf_live_count(lv) == 4, "live %d", diffu_jobinf_live_count(lv));
        CHECK(diffu_jobinf_live_checkpoint(lv, 7, &err) == 0, "live checkpoint: %s", err.msg);
        diffu_jobinf *cf = NULL;
        CHECK(diffu_jobinf_load(out, run, &cf, &err) == 0 && cf && diffu_jobinf_count(cf) == 4 &&
                  diffu_jobinf_find(cf, key[0], kl[0]) == -1 && diffu_jobinf_records(cf) == 7,
              "the live checkpoint holds the wrong samples");
        if (cf && diffu_jobinf_find(cf, key[2], kl[2]) >= 0) {
            const char *k;
            size_t klen, sn;
            uint32_t ph;
            const uint8_t *sst;
            diffu_jobinf_entry(cf, diffu_jobinf_find(cf, key[2], kl[2]), &k, &klen, &ph, &sst, &sn);
            diffu_denoise *r = make(2, prompts[2], 6);
            CHECK(diffu_denoise_restore(r, sst, sn, &err) == 0 && diffu_denoise_steps_taken(r) == 8,
                  "sample 2 checkpointed at step %d, 8 expected", diffu_denoise_steps_taken(r));
            diffu_denoise_free(&r);
        }
        diffu_jobinf_free(&cf);
        diffu_jobinf_live_free(&lv);
        for (int i = 0; i < 6; i++) diffu_denoise_free(&e[i]);
        /* the first file again, for the corruption checks below */
        diffu_jobinf_writer_reset(w, 42);
        for (int i = 0; i < 5; i++)
            diffu_jobinf_writer_add(w, key[i], kl[i], diffu_jobinf_prompt_hash(prompts[i], 6), st[i], stn[i]);
        CHECK(diffu_jobinf_writer_commit(w, out, &err) == 0, "rewrite: %s", err.msg);
    }

    /* corruption: every truncation, bit flips, an appended byte */
    size_t n = 0;
    uint8_t *good = slurp(path, &n);
    CHECK(good && n > 60, "file of %zu bytes", n);
    long accepted = 0, badmsg = 0, tried = 0;
    for (size_t cut = 0; good && cut < n; cut++, tried++) {
        diffu_jobinf *g = diffu_jobinf_parse(good, cut, path, run, &err);
        if (g) accepted++, diffu_jobinf_free(&g);
        else if (!strstr(err.msg, path) || strchr(err.msg, '\n')) badmsg++;
    }
    for (size_t i = 0; good && i < n; i++)
        for (int bit = 0; bit < 8; bit += 5, tried++) {
            good[i] ^= (uint8_t)(1u << bit);
            diffu_jobinf *g = diffu_jobinf_parse(good, n, path, run, &err);
            if (g) accepted++, diffu_jobinf_free(&g);
            else if (!strstr(err.msg, path) || strchr(err.msg, '\n')) badmsg++;
            good[i] ^= (uint8_t)(1u << bit);
        }
    if (good) {
        uint8_t *longer = malloc(n + 1);
        memcpy(longer, good, n);
        longer[n] = 0;
        diffu_jobinf *g = diffu_jobinf_parse(longer, n + 1, path, run, &err);
        if (g) accepted++, diffu_jobinf_free(&g);
        tried++;
        free(longer);
    }
    CHECK(accepted == 0 && badmsg == 0, "%ld of %ld corrupted files accepted, %ld refusals without a one-line message "
          "naming the file", accepted, tried, badmsg);
    printf("corrupted files: %ld tried, all refused\n", tried);

    /* another run */
    CHECK(diffu_jobinf_load(out, "fedcba9876543210", &f, &err) == -1 && !f && strstr(err.msg, "0123456789abcdef") &&
              strstr(err.msg, "fedcba9876543210"),
          "another run's file: %s", err.msg);

    /* reset + commit replaces */
    diffu_jobinf_writer_reset(w, 43);
    diffu_jobinf_writer_add(w, key[4], kl[4], 7, st[4], stn[4]);
    CHECK(diffu_jobinf_writer_commit(w, out, &err) == 0, "second commit: %s", err.msg);
    CHECK(diffu_jobinf_load(out, run, &f, &err) == 0 && f && diffu_jobinf_count(f) == 1 &&
              diffu_jobinf_find(f, key[0], kl[0]) == -1 && diffu_jobinf_records(f) == 43,
          "the second checkpoint does not replace the first");
    diffu_jobinf_free(&f);

    /* removal, no file */
    CHECK(diffu_jobinf_remove(out, &err) == 0 && diffu_jobinf_remove(out, &err) == 0, "remove: %s", err.msg);
    CHECK(diffu_jobinf_load(out, run, &f, &err) == 0 && !f, "no file: load gave a checkpoint or an error");

    /* unwritable place */
    char bad[600];
    snprintf(bad, sizeof bad, "%s/no/such/dir/out.jsonl", dir);
    CHECK(diffu_jobinf_writer_commit(w, bad, &err) == -1 && strstr(err.msg, "no/such/dir/out.jsonl.inflight") &&
              !strchr(err.msg, '\n'),
          "a write into a missing directory: %s", err.msg);

    diffu_jobinf_writer_free(&w);
    for (int i = 0; i < 5; i++) {
        diffu_denoise_free(&d[i]);
        free(st[i]);
    }
    free(good);
    return check_report();
}
