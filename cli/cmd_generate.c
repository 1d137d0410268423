/* cmd_generate.c — `diffu generate` in one process: the denoising loop of
 * coordinator/driver.h (forward -> sampler -> policy) over every (prompt,
 * sample) at once. The options, prompts and results are the front end's
 * (cli/generate.h); under mpirun with --pp / --tp, or more than one rank, the
 * distributed back end runs instead (cli/cmd_generate_dist.c).
 * stdout: the generated ids (--emit-ids, or when the checkpoint has no
 * tokenizer) or text, one entry per (prompt, sample); stderr: per-sample
 * AR-ness and forwards, then timing. --out writes the full sequences as JSON
 * (the format of tests/ref/dream_generate_ref.py --out). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "denoise.h"
#include "driver.h"
#include "forward.h"
#include "generate.h"
#include "tokenizer.h"

#define CMD "generate"

/* ------------------------------------------------------------ watch */

typedef struct {
    diffu_tokenizer *tok;
    diffu_text text;
    int32_t mask_id;
} watch_ctx;

static void render_run(watch_ctx *w, const int32_t *ids, int n, int is_new) {
    if (is_new) fputs("\033[1;30;42m", stderr);
    if (w->tok) {
        w->text.len = 0;
        diffu_tokenizer_decode(w->tok, ids, (size_t)n, 0, &w->text);
        fwrite(w->text.data, 1, w->text.len, stderr);
    } else {
        for (int i = 0; i < n; i++) fprintf(stderr, "%d ", ids[i]);
    }
    if (is_new) fputs("\033[0m", stderr);
}

/* Redraw all canvases: masks as shaded boxes, tokens committed in the step
 * just taken highlighted. */
static void watch_draw(watch_ctx *w, diffu_denoise **ds, int n_d, int n_samples, long step) {
    fputs("\033[H\033[2J", stderr);
    for (int k = 0; k < n_d; k++) {
        diffu_denoise *d = ds[k];
        int len, L = diffu_denoise_prompt_len(d);
        const int32_t *c = diffu_denoise_canvas(d, &len);
        const int32_t *cs = diffu_denoise_commit_steps(d);
        int last = diffu_denoise_steps_taken(d) - 1;
        fprintf(stderr, "\033[1m── prompt %d sample %d · step %d · %d masked%s\033[0m\n", k / n_samples, k % n_samples,
                diffu_denoise_steps_taken(d), diffu_denoise_masked(d), diffu_denoise_done(d) ? " · done" : "");
        int G = len - L;
        for (int j = 0; j < G;) {
            int st = cs[j] == DIFFU_STEP_MASKED ? 0 : cs[j] == last ? 2 : 1;
            int e = j + 1;
            while (e < G && (cs[e] == DIFFU_STEP_MASKED ? 0 : cs[e] == last ? 2 : 1) == st) e++;
            if (st == 0) {
                fputs("\033[2m", stderr);
                for (int q = j; q < e; q++) fputs("░", stderr);
                fputs("\033[0m", stderr);
            } else {
                render_run(w, c + L + j, e - j, st == 2);
            }
            j = e;
        }
        fputs("\n\n", stderr);
    }
    fprintf(stderr, "[step %ld]\n", step);
    fflush(stderr);
}

/* ------------------------------------------------------------ main */

int cmd_generate(int argc, char **argv) {
    if (gen_wants_dist(argc, argv)) return cmd_generate_dist(argc, argv);
    gen_opts o;
    gen_job j;
    memset(&j, 0, sizeof j);
    int rc = gen_parse(argc, argv, &o, 0);
    if (rc) {
        gen_free(&o, NULL);
        return rc < 0 ? 0 : rc;
    }
    if (o.input) {
        rc = gen_run_job(&o);
        gen_free(&o, NULL);
        return rc;
    }
    if (o.dist_opts) {
        fprintf(stderr, "diffu " CMD ": --microbatches, --max-active, --spread, --head-rows and --comm-timeout are for the"
                " distributed run (mpirun ... --pp P --tp T)\n");
        gen_free(&o, NULL);
        return 2;
    }
    rc = 1;
    diffu_model *m = NULL;
    diffu_driver *dr = NULL;
    FILE *dump = NULL;
    float *ubuf = NULL;
    watch_ctx wc = {NULL, {0}, 0};
    diffu_err err;
    if (gen_prepare(&o, &j)) goto out;
    const diffu_denoise_params *p = &o.p;
    int n_d = j.n_d;
    diffu_denoise **ds = j.ds;

    /* the model with a plan that fits every canvas at once */
    diffu_driver_plan plan = {n_d, j.sum_tokens, j.max_seq, j.sum_rows};
    diffu_model_opts mo;
    diffu_model_opts_default(&mo);
    mo.quiet = 1;
    mo.threads = o.threads;
    mo.f32_weights = o.f32;
    mo.max_tokens = plan.max_tokens;
    mo.max_seq = plan.max_seq;
    mo.max_rows = plan.max_rows;
    mo.max_seqs = plan.max_canvases;
    double t_load = diffu_now();
    if (diffu_model_load(o.model, &mo, &m, &err)) {
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        goto out;
    }
    t_load = diffu_now() - t_load;
    dr = diffu_driver_create(m, &plan, &err);
    if (!dr) {
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        goto out;
    }
    for (int k = 0; k < n_d; k++)
        if (diffu_driver_add(dr, ds[k], &err)) {
            fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
            goto out;
        }
    if (o.dump_path) {
        dump = fopen(o.dump_path, "wb");
        if (!dump) {
            fprintf(stderr, "diffu " CMD ": error: %s: cannot create: %s\n", o.dump_path, strerror(errno));
            goto out;
        }
        ubuf = diffu_xmalloc((size_t)p->max_new_tokens * sizeof *ubuf);
    }
    int watch = o.watch;
    if (watch && !isatty(2)) {
        DLOG_WARN("--watch: stderr is not a terminal; no live view");
        watch = 0;
    }
    wc.tok = j.tok;
    wc.mask_id = p->mask_id;

    double t0 = diffu_now();
    while (diffu_driver_active(dr)) {
        if (dump)
            for (int k = 0; k < n_d; k++) {
                int nu = diffu_denoise_origin_uniforms(ds[k], ubuf);
                if (nu && fwrite(ubuf, sizeof *ubuf, (size_t)nu, dump) != (size_t)nu) {
                    fprintf(stderr, "diffu " CMD ": error: %s: write failed\n", o.dump_path);
                    goto out;
                }
            }
        if (diffu_driver_step(dr, &err)) {
            fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
            goto out;
        }
        if (watch) watch_draw(&wc, ds, n_d, (int)o.n_samples, diffu_driver_get_stats(dr)->steps);
    }
    double t_gen = diffu_now() - t0;

    if (gen_report(&o, &j)) goto out;
    long gen_tokens = (long)n_d * p->max_new_tokens;
    const diffu_driver_stats *st = diffu_driver_get_stats(dr);
    fprintf(stderr,
            "[timing] load %.2f s; generate %.3f s: %ld steps, %ld forwards (%.1f ms each), %ld lm_head rows, "
            "sampler %.1f ms, policy %.1f ms; %.1f generated tokens/s\n",
            t_load, t_gen, st->steps, st->forwards, st->forwards ? 1e3 * st->t_forward / st->forwards : 0.0, st->rows,
            1e3 * st->t_sample, 1e3 * st->t_policy, t_gen > 0 ? gen_tokens / t_gen : 0.0);
    rc = 0;
out:
    if (dump) fclose(dump);
    free(ubuf);
    diffu_text_free(&wc.text);
    diffu_driver_free(&dr);
    diffu_model_free(m);
    gen_free(&o, &j);
    return rc;
}
