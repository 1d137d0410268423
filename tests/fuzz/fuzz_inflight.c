/* fuzz_inflight.c — the in-flight checkpoint reader (coordinator/job_inflight.c)
 * and the canvas states it carries (coordinator/denoise.c restore). The input is
 * an OUTPUT.inflight file; it is parsed for the run "0123456789abcdef" as it is and
 * again with its CRC-32 made right (so mutations reach the entries). Oracles:
 *   - a refusal is one line naming the file;
 *   - an accepted file: every entry lies inside the file, its key finds it, and
 *     writing the entries again (diffu_jobinf_writer) gives the same bytes
 *     (one encoding per checkpoint);
 *   - every entry's state is given to a canvas of the shape the seeds use
 *     (24 new tokens, 24 steps, entropy; or blocks of 8 when the key's last
 *     byte is odd): refused with one line and the canvas untouched, or accepted
 *     and the canvas runs to the end (fake sampler) without an assertion.
 * With DIFFU_FUZZ_WRITE_SEEDS=DIR (tests/fuzz/make_seeds.py) it writes this
 * build's own checkpoints into DIR: empty, 3 samples at different steps, blocks. */
#include "fuzz_common.h"
#include "denoise.h"
#include "job_inflight.h"
#include "job_util.h"

#include <zlib.h>

static const char RUN[] = "0123456789abcdef";
static const int32_t PROMPT[5] = {3, 1, 4, 1, 5};

static diffu_denoise *canvas(int blocks) {
    diffu_denoise_params p;
    diffu_denoise_params_default(&p);
    p.max_new_tokens = 24;
    p.steps = 24;
    p.mask_id = 99;
    if (blocks) p.block_length = 8;
    diffu_err err;
    diffu_denoise *d = diffu_denoise_create(&p, 100, PROMPT, 5, 1, 0, &err);
    FZ_CHECK(d, "create: %s", err.msg);
    return d;
}

static void run(diffu_denoise *d, int steps) {
    diffu_sample smp[24];
    for (int k = 0; (steps < 0 || k < steps) && !diffu_denoise_done(d); k++) {
        int m = diffu_denoise_prepare(d);
        const int32_t *pos = diffu_denoise_positions(d);
        for (int i = 0; i < m; i++) {
            smp[i].token = (int32_t)((pos[i] * 7 + k) % 90);
            smp[i].conf = (double)((pos[i] * 13 + k * 5) % 17);
        }
        diffu_denoise_commit(d, m ? smp : NULL);
        FZ_CHECK(diffu_denoise_steps_taken(d) <= 24, "more steps than the schedule");
    }
}

static void write_seeds(const char *dir) {
    static const int steps[3] = {0, 5, 17};
    for (int variant = 0; variant < 3; variant++) {
        diffu_jobinf_writer *w = diffu_jobinf_writer_new(RUN);
        diffu_jobinf_writer_reset(w, variant);
        int n = variant == 0 ? 0 : 3;
        for (int i = 0; i < n; i++) {
            int blocks = variant == 2;
            diffu_denoise *d = canvas(blocks);
            run(d, steps[i]);
            size_t sn = diffu_denoise_state_bytes(d);
            uint8_t *s = malloc(sn);
            diffu_denoise_save(d, s);
            char key[64], id[16];
            snprintf(id, sizeof id, "t%d", i);
            size_t kl = diffu_job_util_sample_key(key, sizeof key, id, strlen(id), blocks);
            diffu_jobinf_writer_add(w, key, kl, diffu_jobinf_prompt_hash(PROMPT, 5), s, sn);
            free(s);
            diffu_denoise_free(&d);
        }
        char out[1024];
        snprintf(out, sizeof out, "%s/v%d", dir, variant);
        diffu_err err;
        FZ_CHECK(diffu_jobinf_writer_commit(w, out, &err) == 0, "seed: %s", err.msg);
        diffu_jobinf_writer_free(&w);
    }
}

static void check_one(const uint8_t *data, size_t size) {
    diffu_err err;
    err.msg[0] = 0;
    diffu_jobinf *f = diffu_jobinf_parse(data, size, "out.jsonl.inflight", RUN, &err);
    if (!f) {
        FZ_CHECK(err.msg[0] && !strchr(err.msg, '\n') && strstr(err.msg, "out.jsonl.inflight"),
                 "a refusal that is not one line naming the file: %s", err.msg);
        return;
    }
    diffu_jobinf_writer *w = diffu_jobinf_writer_new(RUN);
    diffu_jobinf_writer_reset(w, diffu_jobinf_records(f));
    for (int i = 0; i < diffu_jobinf_count(f); i++) {
        const char *key;
        size_t kl, sn;
        uint32_t ph;
        const uint8_t *s;
        diffu_jobinf_entry(f, i, &key, &kl, &ph, &s, &sn);
        FZ_CHECK(diffu_jobinf_find(f, key, kl) == i, "entry %d is not found by its key", i);
        diffu_jobinf_writer_add(w, key, kl, ph, s, sn);
        diffu_denoise *d = canvas(key[kl - 1] & 1);
        diffu_denoise *fresh = canvas(key[kl - 1] & 1);
        if (diffu_denoise_restore(d, s, sn, &err)) {
            FZ_CHECK(err.msg[0] && !strchr(err.msg, '\n'), "a state refusal that is not one line");
            size_t a = diffu_denoise_state_bytes(d), b = diffu_denoise_state_bytes(fresh);
            uint8_t *x = malloc(a), *y = malloc(b);
            diffu_denoise_save(d, x);
            diffu_denoise_save(fresh, y);
            FZ_CHECK(a == b && !memcmp(x, y, a), "a refused state changed the canvas");
            free(x);
            free(y);
        } else {
            run(d, -1);
            FZ_CHECK(diffu_denoise_done(d), "a restored canvas did not finish");
        }
        diffu_denoise_free(&d);
        diffu_denoise_free(&fresh);
    }
    /* one encoding: the same entries written again are the same bytes */
    const char *out = fz_path(0, "re.jsonl");
    FZ_CHECK(diffu_jobinf_writer_commit(w, out, &err) == 0, "rewrite: %s", err.msg);
    char p[1100];
    diffu_jobinf_path(out, p, sizeof p);
    FILE *fp = fopen(p, "rb");
    FZ_CHECK(fp, "no rewritten file");
    uint8_t *back = malloc(size + 1);
    size_t got = fread(back, 1, size + 1, fp);
    fclose(fp);
    FZ_CHECK(got == size && !memcmp(back, data, size), "the rewritten checkpoint differs (%zu vs %zu bytes)", got, size);
    free(back);
    diffu_jobinf_writer_free(&w);
    diffu_jobinf_free(&f);
    fz_clean();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_quiet();
    const char *seeds = getenv("DIFFU_FUZZ_WRITE_SEEDS");
    if (seeds) {
        write_seeds(seeds);
        return 0;
    }
    check_one(data, size);
    /* the same bytes with their CRC-32 made right, so the fuzzer reaches the entries and states */
    if (size >= 8) {
        uint8_t *fixed = malloc(size);
        memcpy(fixed, data, size);
        uint32_t c = (uint32_t)crc32(0L, fixed, (uInt)(size - 4));
        for (int i = 0; i < 4; i++) fixed[size - 4 + i] = (uint8_t)(c >> (8 * i));
        check_one(fixed, size);
        free(fixed);
    }
    return 0;
}
