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

#include "commands.h"
#include "denoise.h"
#include "engine.h"
#include "forward.h"
#include "generate.h"
#include "tokenizer.h"

#define CMD "generate"

/* ------------------------------------------------------------ hooks */

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
    gen_watch wh;
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
    if (o.watch) gen_watch_attach(&wh, &o, &j, &eo);
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
    gen_watch_free(&wh);
    diffu_engine_free(&e);
    diffu_model_free(m);
    gen_free(&o, &j);
    return rc;
}
