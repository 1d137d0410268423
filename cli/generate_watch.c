/* generate_watch.c — `diffu generate --watch` (single process): every canvas
 * redrawn on stderr after every step, masks shaded, the tokens the step just
 * committed highlighted. See generate.h. */
#include <stdio.h>
#include <unistd.h>

#include "generate.h"

static void render_run(gen_watch *w, const int32_t *ids, int n, int is_new) {
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
static void watch_draw(gen_watch *w, diffu_denoise **ds, int n_d, int n_samples, long step) {
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

static void watch_stepped(void *user, const diffu_engine *e) {
    (void)e;
    gen_watch *w = user;
    watch_draw(w, w->ds, w->n_d, w->n_samples, ++w->steps);
}

void gen_watch_attach(gen_watch *w, const gen_opts *o, const gen_job *j, diffu_engine_opts *eo) {
    if (!isatty(2)) {
        DLOG_WARN("--watch: stderr is not a terminal; no live view");
        return;
    }
    w->tok = j->tok;
    w->mask_id = o->p.mask_id;
    w->ds = j->ds;
    w->n_d = j->n_d;
    w->n_samples = (int)o->n_samples;
    eo->stepped = watch_stepped;
    eo->user = w;
}

void gen_watch_free(gen_watch *w) { diffu_text_free(&w->text); }
