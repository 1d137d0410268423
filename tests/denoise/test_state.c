/* test_state.c — in-flight checkpoints of the denoising policy
 * (diffu_denoise_save / diffu_denoise_restore, coordinator/denoise.h), driven by
 * a fake sampler whose (token, confidence) depend on (position, step) only, so
 * a canvas's whole run is a function of its parameters.
 *
 * Reference: the uninterrupted run of the same canvas. For every decoding mode
 * (Dream's schedule with entropy / maskgit_plus / origin, alg_temp > 0, blocks,
 * threshold, factor, early stop, committed <|mask|> tokens) and for EVERY step
 * k of the run before its end: run k steps, save, create a fresh canvas from the same
 * arguments, restore, run to the end; the final canvas, commit steps, commit
 * order, steps taken, forwards and early-stop flag equal the reference exactly,
 * and the state saved after restoring equals the state that was restored (the
 * finished canvas's state is refused); the
 * same from a state saved with step k+1 in flight (prepared, not committed).
 * Robustness: every single-byte change of every saved state is either refused
 * with a one-line message (the canvas left untouched: it then still runs to the
 * reference's result) or accepted and the canvas runs to completion without an
 * assertion; a state of another canvas shape is refused. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "denoise.h"

enum { VOCAB = 1000, MASK = 999, END = 998, MAXG = 64 };

static uint32_t mix(uint32_t a, uint32_t b) {
    uint32_t h = a * 0x9E3779B1u ^ (b + 0x7F4A7C15u);
    h ^= h >> 15;
    h *= 0x85EBCA77u;
    h ^= h >> 13;
    return h;
}

typedef struct {
    int end_at;     /* generated index that samples END (-1: none) */
    int mask_every; /* every k-th (j, step) samples <|mask|> (0: never) */
} fake;

static void fake_sample(const fake *f, int j, int step, diffu_sample *s) {
    uint32_t h = mix((uint32_t)j, (uint32_t)step);
    s->token = j == f->end_at ? END : (int32_t)(100 + h % 500);
    if (f->mask_every && h % (uint32_t)f->mask_every == 0) s->token = MASK;
    s->conf = (double)(h % 1000) / 1000.0;
}

/* n steps (or to the end when n < 0) */
static void run_steps(diffu_denoise *d, const fake *f, int n) {
    diffu_sample smp[MAXG];
    int L = diffu_denoise_prompt_len(d);
    for (int k = 0; (n < 0 || k < n) && !diffu_denoise_done(d); k++) {
        int m = diffu_denoise_prepare(d);
        const int32_t *pos = diffu_denoise_positions(d);
        int step = diffu_denoise_steps_taken(d);
        for (int i = 0; i < m; i++) fake_sample(f, pos[i] - L, step, &smp[i]);
        diffu_denoise_commit(d, m ? smp : NULL);
    }
}

static const int32_t PROMPT[4] = {5, 6, 7, 8};

static diffu_denoise *make(const diffu_denoise_params *p) {
    diffu_err err;
    diffu_denoise *d = diffu_denoise_create(p, VOCAB, PROMPT, 4, 3, 1, &err);
    if (!d) fprintf(stderr, "create: %s\n", err.msg);
    return d;
}

static int same_result(const diffu_denoise *a, const diffu_denoise *b) {
    int na, nb, oa, ob;
    const int32_t *ca = diffu_denoise_canvas(a, &na), *cb = diffu_denoise_canvas(b, &nb);
    const int32_t *ra = diffu_denoise_order(a, &oa), *rb = diffu_denoise_order(b, &ob);
    int G = diffu_denoise_get_params(a)->max_new_tokens;
    return na == nb && !memcmp(ca, cb, (size_t)na * 4) && oa == ob && !memcmp(ra, rb, (size_t)oa * 4) &&
           !memcmp(diffu_denoise_commit_steps(a), diffu_denoise_commit_steps(b), (size_t)G * 4) &&
           diffu_denoise_steps_taken(a) == diffu_denoise_steps_taken(b) &&
           diffu_denoise_forwards(a) == diffu_denoise_forwards(b) &&
           diffu_denoise_stopped_early(a) == diffu_denoise_stopped_early(b) &&
           diffu_denoise_done(a) && diffu_denoise_done(b);
}

static void check_mode(const char *name, const diffu_denoise_params *p, const fake *f, int corrupt) {
    diffu_denoise *ref = make(p);
    if (!ref) { CHECK(0, "%s: create failed", name); return; }
    run_steps(ref, f, -1);
    int total = diffu_denoise_steps_taken(ref);
    int resumed_ok = 1, resave_ok = 1, corrupt_ok = 1;
    long flips = 0, refused = 0;
    for (int k = 0; k <= total; k++) {
        diffu_denoise *a = make(p);
        run_steps(a, f, k);
        size_t n = diffu_denoise_state_bytes(a);
        uint8_t *buf = malloc(n), *again = malloc(n);
        diffu_denoise_save(a, buf);
        diffu_denoise *b = make(p);
        diffu_err err;
        if (k == total) { /* finished: nothing to continue, refused */
            CHECK(diffu_denoise_done(a) && diffu_denoise_restore(b, buf, n, &err) == -1 && strstr(err.msg, "finished"),
                  "%s: the state of the finished canvas was accepted", name);
        } else if (diffu_denoise_restore(b, buf, n, &err)) {
            CHECK(0, "%s: the state after %d steps is refused: %s", name, k, err.msg);
            resumed_ok = 0;
        } else {
            if (diffu_denoise_state_bytes(b) != n) resave_ok = 0;
            else {
                diffu_denoise_save(b, again);
                if (memcmp(again, buf, n)) resave_ok = 0;
            }
            run_steps(b, f, -1);
            if (!same_result(ref, b)) {
                CHECK(0, "%s: resumed after %d of %d steps, the result differs", name, k, total);
                resumed_ok = 0;
            }
        }
        diffu_denoise_free(&b);
        /* saved with its next step in flight (prepared, not committed): the resumed canvas redoes that step */
        if (!diffu_denoise_done(a)) {
            diffu_denoise *pa = make(p);
            run_steps(pa, f, k);
            diffu_denoise_prepare(pa);
            size_t pn = diffu_denoise_state_bytes(pa);
            uint8_t *pbuf = malloc(pn);
            diffu_denoise_save(pa, pbuf);
            diffu_denoise *pb = make(p);
            if (diffu_denoise_restore(pb, pbuf, pn, &err)) {
                CHECK(0, "%s: the state saved in flight after %d steps is refused: %s", name, k, err.msg);
                resumed_ok = 0;
            } else {
                run_steps(pb, f, -1);
                if (!same_result(ref, pb)) {
                    CHECK(0, "%s: resumed from a step in flight after %d steps, the result differs", name, k);
                    resumed_ok = 0;
                }
            }
            free(pbuf);
            diffu_denoise_free(&pa);
            diffu_denoise_free(&pb);
        }
        if (corrupt && (k == 0 || k == total / 2 || k == total - 1)) {
            for (size_t i = 0; i < n; i++)
                for (int bit = 0; bit < 8; bit += 3) {
                    buf[i] ^= (uint8_t)(1u << bit);
                    diffu_denoise *c = make(p);
                    err.msg[0] = 0;
                    flips++;
                    if (diffu_denoise_restore(c, buf, n, &err)) {
                        refused++;
                        if (!err.msg[0] || strchr(err.msg, '\n')) corrupt_ok = 0;
                        run_steps(c, f, -1); /* untouched: runs as a fresh canvas */
                        if (!same_result(ref, c)) corrupt_ok = 0;
                    } else {
                        run_steps(c, f, -1); /* accepted: must run to the end without an assertion */
                        if (!diffu_denoise_done(c)) corrupt_ok = 0;
                    }
                    diffu_denoise_free(&c);
                    buf[i] ^= (uint8_t)(1u << bit);
                }
            /* truncated and extended */
            diffu_denoise *c = make(p);
            if (!diffu_denoise_restore(c, buf, n - 4, &err)) corrupt_ok = 0;
            uint8_t *longer = calloc(n + 4, 1);
            memcpy(longer, buf, n);
            if (!diffu_denoise_restore(c, longer, n + 4, &err)) corrupt_ok = 0;
            free(longer);
            diffu_denoise_free(&c);
        }
        free(buf);
        free(again);
        diffu_denoise_free(&a);
    }
    CHECK(resumed_ok, "%s: a resume differs from the uninterrupted run", name);
    CHECK(resave_ok, "%s: saving a restored canvas does not give the restored state", name);
    if (corrupt)
        CHECK(corrupt_ok && refused > 0, "%s: %ld of %ld corrupted states refused; a refusal without a one-line "
              "message, a refused restore that changed the canvas, or an accepted one that did not finish", name,
              refused, flips);
    printf("%-28s %3d steps, resumed at each; %ld corrupted states, %ld refused\n", name, total, flips, refused);
    diffu_denoise_free(&ref);
}

static diffu_denoise_params base(int G, int steps, diffu_alg alg) {
    diffu_denoise_params p;
    diffu_denoise_params_default(&p);
    p.max_new_tokens = G;
    p.steps = steps;
    p.alg = alg;
    p.mask_id = MASK;
    p.seed = 11;
    return p;
}

int main(void) {
    fake plain = {-1, 0}, masks = {-1, 13}, ender = {9, 0};
    diffu_denoise_params p = base(32, 32, DIFFU_ALG_ENTROPY);
    check_mode("dream entropy 32/32", &p, &plain, 1);
    p = base(32, 8, DIFFU_ALG_MASKGIT_PLUS);
    check_mode("dream maskgit_plus 32/8", &p, &masks, 0);
    p = base(32, 16, DIFFU_ALG_ORIGIN);
    check_mode("dream origin 32/16", &p, &masks, 1);
    p = base(24, 24, DIFFU_ALG_TOPK_MARGIN);
    p.alg_temp = 0.5;
    check_mode("alg_temp 0.5", &p, &plain, 0);
    p = base(32, 16, DIFFU_ALG_ENTROPY);
    p.block_length = 8;
    check_mode("blocks of 8, 16 steps", &p, &masks, 1);
    p = base(32, 32, DIFFU_ALG_ENTROPY);
    p.threshold = 0.7;
    p.block_length = 8;
    check_mode("threshold 0.7, blocks of 8", &p, &plain, 1);
    p = base(32, 32, DIFFU_ALG_ENTROPY);
    p.factor = 1.0;
    check_mode("factor 1.0", &p, &plain, 0);
    p = base(32, 32, DIFFU_ALG_ENTROPY);
    p.early_stop = 1;
    p.n_end = 1;
    p.end_ids[0] = END;
    check_mode("early stop", &p, &ender, 1);

    /* a state of another canvas shape */
    diffu_denoise_params p32 = base(32, 32, DIFFU_ALG_ENTROPY), p16 = base(16, 16, DIFFU_ALG_ENTROPY);
    diffu_denoise *a = make(&p32), *b = make(&p16);
    run_steps(a, &plain, 5);
    size_t n = diffu_denoise_state_bytes(a);
    uint8_t *buf = malloc(n);
    diffu_denoise_save(a, buf);
    diffu_err err;
    CHECK(diffu_denoise_restore(b, buf, n, &err) == -1 && strstr(err.msg, "32 generated positions"),
          "another shape accepted or not named: %s", err.msg);
    free(buf);
    diffu_denoise_free(&a);
    diffu_denoise_free(&b);
    return check_report();
}
