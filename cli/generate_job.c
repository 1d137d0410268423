/* generate_job.c — `diffu generate --input IN --output OUT` (docs/jobs.md):
 * the command line into the batch job of coordinator/job.h, its progress
 * display on stderr, and the one-process run (the local backend). Under
 * mpirun rank 0 runs the same job over the pipeline backend
 * (cli/cmd_generate_dist.c).
 * SIGTERM / SIGINT / SIGUSR1 (base/signals.h, installed first): admit nothing
 * more, stop after the current step (one process) or once the microbatches in
 * flight are back (mpirun), checkpoint the samples in flight, close the
 * output, exit 1 with a resume hint. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "forward.h"
#include "generate.h"
#include "handshake.h"
#include "signals.h"

#define CMD "generate"
#define DEFAULT_WINDOW 8
#define PROGRESS_SECONDS 10.0 /* plain lines (stderr not a terminal) */
#define REDRAW_SECONDS 0.5    /* the in-place bar on a terminal */
#define MAX_STAGES_SHOWN 16

/* ------------------------------------------------------------ the display */

void gen_display_init(gen_display *d, const char *output) {
    memset(d, 0, sizeof *d);
    d->output = output;
    d->t_last = diffu_now(); /* the first line one interval into the run, not at its first step */
    const char *term = getenv("TERM");
    d->tty = isatty(STDERR_FILENO) && !(term && !strcmp(term, "dumb"));
}

void gen_display_note(void *user) {
    gen_display *d = user;
    if (d && d->drawn) {
        fputs("\r\033[K", stderr);
        d->drawn = 0;
        d->t_last = 0; /* redraw at the next tick */
    }
}

/* Requests and samples done / total, generated tokens/s, forwards/s,
 * per-stage utilization, elapsed, ETA: on a terminal a bar redrawn in place
 * ("\r" + erase line), else a plain line now and then. final: the last one
 * (ends the bar's line). */
void gen_display_progress(void *user, const diffu_job_progress *p, int final) {
    gen_display *d = user;
    double now = diffu_now();
    if (!final && now - d->t_last < (d->tty ? REDRAW_SECONDS : PROGRESS_SECONDS)) return;
    d->t_last = now;
    double el = p->elapsed;
    long done_here = p->s_done - p->s_done_before;
    long com = p->committed > p->tokens ? p->committed : p->tokens;
    double tps = el > 0 ? (double)com / el : 0, fps = el > 0 ? (double)p->forwards / el : 0;
    char eta[32], util[16 * MAX_STAGES_SHOWN + 16] = "";
    /* ETA: from the positions committed (every sample moves), else from the samples done */
    double frac = p->new_total > 0 ? (double)com / (double)p->new_total : 0;
    if (p->s_total <= p->s_done) snprintf(eta, sizeof eta, "0 s");
    else if (frac > 0.001) snprintf(eta, sizeof eta, "%.0f s", el * (1.0 - frac) / frac);
    else if (done_here > 0) snprintf(eta, sizeof eta, "%.0f s", el * (double)(p->s_total - p->s_done) / (double)done_here);
    else snprintf(eta, sizeof eta, "?");
    if (p->n_util) {
        size_t n = (size_t)snprintf(util, sizeof util, ", stages");
        for (int i = 0; i < p->n_util && i < MAX_STAGES_SHOWN && n < sizeof util; i++)
            n += (size_t)snprintf(util + n, sizeof util - n, p->util[i] < 0 ? " ?" : " %.0f%%", 100.0 * p->util[i]);
    }
    if (d->tty) {
        char bar[21];
        int fill = p->s_total ? (int)(20 * p->s_done / p->s_total) : 20;
        for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
        bar[20] = 0;
        fprintf(stderr, "\r\033[K[%s] %ld/%ld samples, %ld/%ld requests, %.1f tok/s, %.1f fwd/s%s, %.0f s, ETA %s%s", bar,
                p->s_done, p->s_total, p->req_done, p->req_total, tps, fps, util, el, eta, final ? "\n" : "");
        d->drawn = !final;
    } else {
        fprintf(stderr, "[diffu] %s: requests %ld/%ld, samples %ld/%ld, %.1f tokens/s, %.1f forwards/s%s, elapsed %.0f s,"
                " ETA %s\n", d->output, p->req_done, p->req_total, p->s_done, p->s_total, tps, fps, util, el, eta);
    }
    fflush(stderr);
}

/* ------------------------------------------------------------ the job */

int gen_job_start(gen_opts *o, gen_job *j, gen_display *dsp, diffu_job **job) {
    *job = NULL;
    /* first: a stop signal during the set-up (tokenizer, input, output, model) already means "stop and say
       how to resume", not a death without a word */
    diffu_signals_graceful();
    if (gen_setup(o, j)) return 1;
    gen_display_init(dsp, o->output);
    diffu_job_opts jo = {
        .name = "diffu " CMD, .input = o->input, .output = o->output, .format = o->format, .model = o->model,
        .build_id = diffu_build_id(), .strict = o->strict, .emit_ids = o->emit_ids,
        .allow_run_change = o->allow_run_change, .checkpoint_every = o->checkpoint_every,
        .reply_end = o->p.end_ids, .n_reply_end = o->n_end_cli ? o->p.n_end : 0,
        .note = gen_display_note, .progress = gen_display_progress, .user = dsp};
    diffu_jobin_opts_default(&jo.in);
    jo.in.defaults = o->p;
    jo.in.defaults.steps = (int)o->steps; /* 0: each request's max_new_tokens */
    jo.in.n = (int)o->n_samples;
    jo.in.system = o->system;
    jo.in.prefill = o->prefill;
    jo.in.vocab = j->cfg.vocab;
    jo.in.max_context = j->cfg.max_pos;
    diffu_err err;
    int st = diffu_job_open(&jo, j->tok, job, &err);
    if (st < 0) fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
    return st < 0 ? 1 : st > 0 ? -1 : 0;
}

int gen_job_end(const diffu_job *job, gen_display *dsp, const diffu_engine *e) {
    gen_display_note(dsp);
    int rc = diffu_job_rc(job, e);
    const char *why = diffu_job_error(job);
    if (why) fprintf(stderr, "diffu " CMD ": error: %s\n", why);
    return rc;
}

/* ------------------------------------------------------------ one process */

int gen_run_job(gen_opts *o) {
    gen_job j;
    gen_display dsp;
    diffu_job *job = NULL;
    diffu_err err;
    diffu_model *m = NULL;
    diffu_engine *e = NULL;
    int rc = 1;
    memset(&j, 0, sizeof j);
    int st = gen_job_start(o, &j, &dsp, &job);
    if (st) {
        rc = st < 0 ? 0 : 1;
        goto out;
    }
    /* the model and the engine's local backend, planned for a window of samples */
    int max_seq, max_new, cache;
    diffu_job_plan(job, &max_seq, &max_new, &cache);
    long todo = diffu_job_todo(job);
    int W = o->max_active > 0 ? o->max_active : DEFAULT_WINDOW;
    if (W > todo) W = (int)todo;
    diffu_model_opts mo;
    diffu_model_opts_default(&mo);
    mo.quiet = 1;
    mo.threads = o->threads;
    mo.f32_weights = o->f32;
    mo.max_tokens = W * max_seq;
    mo.max_seq = max_seq;
    mo.max_rows = W * max_new;
    mo.max_seqs = W;
    if (diffu_model_load(o->model, &mo, &m, &err)) {
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        goto out;
    }
    diffu_engine_opts eo = {.sched = {1, W, 1, W, W * max_seq, W * max_new, max_seq}, .model = m, .kv_cache = cache};
    diffu_job_engine(job, &eo);
    if (!(e = diffu_engine_create(&eo, NULL, (int)todo, &err))) {
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        goto out;
    }
    diffu_job_begin(job); /* rates and ETA from here: loading excluded */
    if (diffu_engine_run(e, &err)) {
        gen_display_note(&dsp);
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        goto out;
    }
    rc = gen_job_end(job, &dsp, e);
    gen_work(diffu_engine_get_stats(e), diffu_engine_get_stats(e)->sched.committed);
out:
    rc = diffu_job_close(&job, rc); /* first: it checkpoints the samples still in flight */
    diffu_engine_free(&e);
    diffu_model_free(m);
    gen_free(NULL, &j);
    return rc;
}
