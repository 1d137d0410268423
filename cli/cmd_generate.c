/* cmd_generate.c — `diffu generate` in one process: every (prompt, sample)
 * through coordinator/engine.h with the local backend (forward -> sampler ->
 * policy in this process), all admitted at once. The options, prompts and results are the front end's
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
#include "engine.h"
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

/* ------------------------------------------------------------ hooks */

/* --watch: a redraw after every step (the engine's microbatch). */
typedef struct {
    watch_ctx w;
    diffu_denoise **ds;
    int n_d, n_samples;
    long steps;
} watch_hook;

static void watch_stepped(void *user, const diffu_engine *e) {
    watch_hook *h = user;
    watch_draw(&h->w, h->ds, h->n_d, h->n_samples, ++h->steps);
}

/* --dump-origin-uniforms: each canvas's uniforms, step by step (the engine's
 * stepping hook), written at the end step-major (step 0 of every canvas,
 * then step 1, ...: the order of the reference's torch.rand over the batch). */
typedef struct {
    int n_d, G, failed;
    float *buf;               /* [G] */
    float **u;                /* [n_d] growing: each canvas's uniforms */
    int **cnt;                /* [n_d] per step: how many */
    int *n_u, *cap_u, *n_steps, *cap_steps;
} dump_hook;

static void dump_stepping(void *user, int i, const diffu_denoise *d) {
    dump_hook *h = user;
    int nu = diffu_denoise_origin_uniforms(d, h->buf);
    int t = diffu_denoise_steps_taken(d);
    while (h->n_steps[i] <= t) {
        if (h->n_steps[i] == h->cap_steps[i]) {
            h->cap_steps[i] = h->cap_steps[i] ? 2 * h->cap_steps[i] : 16;
            h->cnt[i] = diffu_xrealloc(h->cnt[i], (size_t)h->cap_steps[i] * sizeof **h->cnt);
        }
        h->cnt[i][h->n_steps[i]++] = 0;
    }
    if (h->n_u[i] + nu > h->cap_u[i]) {
        h->cap_u[i] = 2 * (h->n_u[i] + nu);
        h->u[i] = diffu_xrealloc(h->u[i], (size_t)h->cap_u[i] * sizeof **h->u);
    }
    memcpy(h->u[i] + h->n_u[i], h->buf, (size_t)nu * sizeof *h->buf);
    h->n_u[i] += nu;
    h->cnt[i][t] += nu;
}

static int dump_write(const dump_hook *h, FILE *f) {
    int max_steps = 0;
    for (int k = 0; k < h->n_d; k++) max_steps = h->n_steps[k] > max_steps ? h->n_steps[k] : max_steps;
    size_t *at = diffu_xcalloc((size_t)h->n_d, sizeof *at);
    int rc = 0;
    for (int t = 0; t < max_steps && !rc; t++)
        for (int k = 0; k < h->n_d && !rc; k++) {
            int c = t < h->n_steps[k] ? h->cnt[k][t] : 0;
            if (c && fwrite(h->u[k] + at[k], sizeof(float), (size_t)c, f) != (size_t)c) rc = -1;
            at[k] += (size_t)c;
        }
    free(at);
    return rc;
}

static void dump_free(dump_hook *h) {
    for (int k = 0; k < h->n_d && h->u; k++) {
        free(h->u[k]);
        free(h->cnt[k]);
    }
    free(h->u);
    free(h->cnt);
    free(h->n_u);
    free(h->cap_u);
    free(h->n_steps);
    free(h->cap_steps);
    free(h->buf);
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
    diffu_engine *e = NULL;
    FILE *dump = NULL;
    dump_hook dh;
    watch_hook wh;
    memset(&dh, 0, sizeof dh);
    memset(&wh, 0, sizeof wh);
    diffu_err err;
    if (gen_prepare(&o, &j)) goto out;
    const diffu_denoise_params *p = &o.p;
    int n_d = j.n_d;

    /* the model with a plan that fits every canvas in one microbatch */
    diffu_model_opts mo;
    diffu_model_opts_default(&mo);
    mo.quiet = 1;
    mo.threads = o.threads;
    mo.f32_weights = o.f32;
    mo.max_tokens = (int)j.sum_tokens;
    mo.max_seq = j.max_seq;
    mo.max_rows = (int)j.sum_rows;
    mo.max_seqs = n_d;
    double t_load = diffu_now();
    if (diffu_model_load(o.model, &mo, &m, &err)) {
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        goto out;
    }
    t_load = diffu_now() - t_load;
    diffu_engine_opts eo = {.sched = {1, n_d, 1, n_d, (int)j.sum_tokens, (int)j.sum_rows, j.max_seq}, .model = m,
                            .kv_cache = p->cache != 0};
    if (o.dump_path) {
        dump = fopen(o.dump_path, "wb");
        if (!dump) {
            fprintf(stderr, "diffu " CMD ": error: %s: cannot create: %s\n", o.dump_path, strerror(errno));
            goto out;
        }
        dh.n_d = n_d;
        dh.buf = diffu_xmalloc((size_t)p->max_new_tokens * sizeof *dh.buf);
        dh.u = diffu_xcalloc((size_t)n_d, sizeof *dh.u);
        dh.cnt = diffu_xcalloc((size_t)n_d, sizeof *dh.cnt);
        dh.n_u = diffu_xcalloc((size_t)n_d, sizeof *dh.n_u);
        dh.cap_u = diffu_xcalloc((size_t)n_d, sizeof *dh.cap_u);
        dh.n_steps = diffu_xcalloc((size_t)n_d, sizeof *dh.n_steps);
        dh.cap_steps = diffu_xcalloc((size_t)n_d, sizeof *dh.cap_steps);
        eo.sched.stepping = dump_stepping;
        eo.sched.stepping_user = &dh;
    }
    if (o.watch && !isatty(2)) {
        DLOG_WARN("--watch: stderr is not a terminal; no live view");
    } else if (o.watch) {
        wh.w.tok = j.tok;
        wh.w.mask_id = p->mask_id;
        wh.ds = j.ds;
        wh.n_d = n_d;
        wh.n_samples = (int)o.n_samples;
        eo.stepped = watch_stepped;
        eo.user = &wh;
    }
    if (!(e = diffu_engine_create(&eo, j.ds, n_d, &err)) || diffu_engine_run(e, &err)) {
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        goto out;
    }
    if (dump && dump_write(&dh, dump)) {
        fprintf(stderr, "diffu " CMD ": error: %s: write failed\n", o.dump_path);
        goto out;
    }
    if (gen_report(&o, &j)) goto out;
    gen_timing(t_load, diffu_engine_get_stats(e), (long)n_d * p->max_new_tokens);
    rc = 0;
out:
    if (dump) fclose(dump);
    dump_free(&dh);
    diffu_text_free(&wh.w.text);
    diffu_engine_free(&e);
    diffu_model_free(m);
    gen_free(&o, &j);
    return rc;
}
