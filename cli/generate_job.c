/* generate_job.c — `diffu generate --input IN --output OUT` (docs/jobs.md):
 * the requests of coordinator/job_input.h, each (id, sample) not yet in OUT a
 * sequence of coordinator/engine.h, created when the scheduler admits it (at
 * most --max-active at once: a new one enters as one finishes) and written as
 * a record the moment it finishes (coordinator/job_output.h). The same for
 * one process (the local backend: gen_run_job) and under mpirun
 * (cli/cmd_generate_dist.c, the pipeline backend). A sample's random draws
 * are addressed by (request rng_key, sample), and the forward is
 * batch-invariant, so a resumed job writes what an uninterrupted one would
 * have.
 * In-flight checkpoints (coordinator/job_inflight.h): every sample made is
 * registered (restored from OUTPUT.inflight when the rerun finds its state
 * there), every --checkpoint-every seconds and when the job stops unfinished
 * the states of the samples in flight are written to OUTPUT.inflight; a
 * finished job removes it.
 * SIGTERM / SIGINT / SIGUSR1: admit nothing more, stop after the current
 * step (one process) or once the microbatches in flight are back (mpirun),
 * checkpoint the samples in flight, close the output, exit 1 with a resume
 * hint (the rerun continues those samples mid-sample). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine.h"
#include "forward.h"
#include "generate.h"
#include "handshake.h"
#include "job_inflight.h"
#include "job_input.h"
#include "job_util.h"
#include "job_manifest.h"
#include "job_output.h"
#include "signals.h"

#define CMD "generate"
#define DEFAULT_WINDOW 8
#define PROGRESS_SECONDS 10.0 /* plain lines (stderr not a terminal) */
#define REDRAW_SECONDS 0.5    /* the in-place bar on a terminal */
#define MAX_STAGES_SHOWN 16

struct gen_jobrun {
    gen_opts *o;
    gen_job *j;
    diffu_jobin *in;
    diffu_jobout *out;
    diffu_jobman *man; /* the run's identity (job_manifest.h) */
    diffu_jobinf_live *live; /* the samples in flight (job_inflight.h) */
    double t_ckpt;           /* the last in-flight checkpoint */
    int *todo_req, *todo_s, *left;
    long s_total, s_todo, s_done, req_total, req_done, tokens;
    int max_seq, max_new;
    int cache;           /* a request to do asks for a KV cache */
    long forwards;       /* sequence-forwards so far (gen_job_tick) */
    long committed;      /* positions unmasked so far in this run (gen_job_tick) */
    long sum_tokens;     /* canvas tokens over the samples to do */
    long new_total;      /* positions to generate in this run */
    int tty, drawn;      /* stderr is a terminal; the bar is on screen */
    int begun;           /* gen_job_begin was called: the run started (else no progress / resume hint) */
    int n_util;          /* stages with a utilization (gen_job_set_util) */
    double util[MAX_STAGES_SHOWN];
    double t_start, t_last;
    diffu_ids ids;
    diffu_text text;
    /* the samples as the engine's sequences (gen_job_engine) */
    diffu_denoise **ds;  /* [s_todo] created at admission, freed once written */
    double *t0;          /* [s_todo] admission time */
    int write_failed;    /* writing a record failed: write nothing more, stop */
};

int gen_job_stopping(void) { return diffu_signals_stop_requested() > 0; }

/* The progress: requests and samples done / total, generated tokens/s,
 * forwards/s, per-stage utilization, elapsed, ETA. On a terminal a bar
 * redrawn in place ("\r" + erase line); else a plain line. final: the last
 * one (ends the bar's line). */
static void progress(gen_jobrun *r, int final) {
    double el = diffu_now() - r->t_start;
    long done_here = r->s_done - (r->s_total - r->s_todo);
    long com = r->committed > r->tokens ? r->committed : r->tokens;
    double tps = el > 0 ? (double)com / el : 0, fps = el > 0 ? (double)r->forwards / el : 0;
    char eta[32], util[16 * MAX_STAGES_SHOWN + 16] = "";
    /* ETA: from the positions committed (every sample moves), else from the samples done */
    double frac = r->new_total > 0 ? (double)com / (double)r->new_total : 0;
    if (r->s_total <= r->s_done) snprintf(eta, sizeof eta, "0 s");
    else if (frac > 0.001) snprintf(eta, sizeof eta, "%.0f s", el * (1.0 - frac) / frac);
    else if (done_here > 0) snprintf(eta, sizeof eta, "%.0f s", el * (double)(r->s_total - r->s_done) / (double)done_here);
    else snprintf(eta, sizeof eta, "?");
    if (r->n_util) {
        size_t n = (size_t)snprintf(util, sizeof util, ", stages");
        for (int i = 0; i < r->n_util && n < sizeof util; i++)
            n += (size_t)snprintf(util + n, sizeof util - n, r->util[i] < 0 ? " ?" : " %.0f%%", 100.0 * r->util[i]);
    }
    if (r->tty) {
        char bar[21];
        int fill = r->s_total ? (int)(20 * r->s_done / r->s_total) : 20;
        for (int i = 0; i < 20; i++) bar[i] = i < fill ? '#' : '.';
        bar[20] = 0;
        fprintf(stderr, "\r\033[K[%s] %ld/%ld samples, %ld/%ld requests, %.1f tok/s, %.1f fwd/s%s, %.0f s, ETA %s%s", bar,
                r->s_done, r->s_total, r->req_done, r->req_total, tps, fps, util, el, eta, final ? "\n" : "");
        r->drawn = !final;
    } else {
        fprintf(stderr, "[diffu] %s: requests %ld/%ld, samples %ld/%ld, %.1f tokens/s, %.1f forwards/s%s, elapsed %.0f s,"
                " ETA %s\n", r->o->output, r->req_done, r->req_total, r->s_done, r->s_total, tps, fps, util, el, eta);
    }
    fflush(stderr);
}

/* Redraw (or print a line) when it is time. */
static void progress_maybe(gen_jobrun *r) {
    double now = diffu_now();
    if (now - r->t_last < (r->tty ? REDRAW_SECONDS : PROGRESS_SECONDS)) return;
    r->t_last = now;
    progress(r, 0);
}

/* Write the states of the samples in flight (job_inflight.h). */
static void checkpoint(gen_jobrun *r, int final) {
    diffu_err err;
    r->t_ckpt = diffu_now();
    if (!r->live || (!final && !diffu_jobinf_live_count(r->live))) return;
    if (diffu_jobinf_live_checkpoint(r->live, r->s_done, &err)) {
        gen_job_note(r);
        fprintf(stderr, "[diffu] warning: %s (the samples in flight would start over)\n", err.msg);
    } else if (final) {
        gen_job_note(r);
        fprintf(stderr, "[diffu] %s.inflight: the %d sample(s) in flight saved; the rerun continues them\n",
                r->o->output, diffu_jobinf_live_count(r->live));
    }
}

void gen_job_checkpoint_maybe(gen_jobrun *r) {
    double every = r->o->checkpoint_every == 0 ? 300.0 : r->o->checkpoint_every;
    if (every > 0 && diffu_now() - r->t_ckpt >= every) checkpoint(r, 0);
}

void gen_job_tick(gen_jobrun *r, long forwards, long committed) {
    gen_job_checkpoint_maybe(r);
    r->forwards = forwards;
    r->committed = committed;
    progress_maybe(r);
}

void gen_job_begin(gen_jobrun *r) {
    r->t_start = r->t_last = diffu_now();
    r->begun = 1;
}

void gen_job_set_util(gen_jobrun *r, int n, const double *util) {
    r->n_util = n < MAX_STAGES_SHOWN ? n : MAX_STAGES_SHOWN;
    for (int i = 0; i < r->n_util; i++) r->util[i] = util[i];
}

void gen_job_note(gen_jobrun *r) {
    if (r && r->drawn) {
        fputs("\r\033[K", stderr);
        r->drawn = 0;
        r->t_last = 0; /* redraw at the next tick */
    }
}

long gen_job_todo(const gen_jobrun *jr) { return jr->s_todo; }

void gen_job_plan(const gen_jobrun *jr, int *max_seq, int *max_new) {
    *max_seq = jr->max_seq;
    *max_new = jr->max_new;
}

int gen_job_wants_cache(const gen_jobrun *jr) { return jr->cache; }

void gen_job_sums(const gen_jobrun *jr, long *sum_tokens, long *sum_rows) {
    *sum_tokens = jr->sum_tokens;
    *sum_rows = jr->new_total;
}

int gen_job_open(gen_opts *o, gen_job *j, gen_jobrun **jrp) {
    diffu_err err;
    gen_jobrun *r = diffu_xcalloc(1, sizeof *r);
    *jrp = r;
    r->o = o;
    r->j = j;
    /* first: a stop signal during the set-up (tokenizer, input, output, model) already means "stop and say
       how to resume", not a death without a word */
    diffu_signals_graceful();
    char rej_path[4200];
    if (gen_setup(o, j)) return 1;
    if (!j->tok) {
        fprintf(stderr, "diffu " CMD ": error: --input needs the checkpoint's tokenizer; %s has none\n", o->model);
        return 1;
    }
    /* the requests */
    diffu_jobin_opts io;
    diffu_jobin_opts_default(&io);
    io.defaults = o->p;
    io.defaults.steps = (int)o->steps; /* 0: each request's max_new_tokens */
    io.n = (int)o->n_samples;
    io.system = o->system;
    io.prefill = o->prefill;
    io.vocab = j->cfg.vocab;
    io.max_context = j->cfg.max_pos;
    io.count_tokens = diffu_jobin_count_tokenizer;
    io.count_user = j->tok;
    r->in = diffu_jobin_open(o->input, &io, &err);
    if (!r->in) {
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        return 1;
    }
    int nrej = diffu_jobin_n_rejects(r->in), nreq = diffu_jobin_count(r->in);
    snprintf(rej_path, sizeof rej_path, "%s.rejects.jsonl", o->output);
    if (diffu_jobin_write_rejects(r->in, rej_path, &err)) {
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        return 1;
    }
    if (nrej) {
        char line[2048];
        if (o->strict)
            fprintf(stderr, "diffu " CMD ": error: %s: %d bad line%s; --strict refuses the whole file:\n", o->input,
                    nrej, nrej > 1 ? "s" : "");
        for (int i = 0; i < nrej && i < 20; i++) {
            diffu_jobin_format_reject(r->in, i, line, sizeof line);
            fprintf(stderr, "%s\n", line);
        }
        if (nrej > 20) fprintf(stderr, "... and %d more in %s\n", nrej - 20, rej_path);
        if (o->strict) return 1;
        fprintf(stderr, "[diffu] %d rejected line%s in %s; the other %d request%s run\n", nrej, nrej > 1 ? "s" : "",
                rej_path, nreq, nreq == 1 ? "" : "s");
    }
    if (!nreq) {
        fprintf(stderr, "diffu " CMD ": error: %s: no valid request\n", o->input);
        return 1;
    }
    /* the output: resume what it holds */
    diffu_jobout_opts oo;
    diffu_jobout_opts_default(&oo);
    if (o->format) oo.format = (diffu_jobout_format)diffu_jobout_format_parse(o->format);
    oo.emit_ids = o->emit_ids;
    if (!(r->man = diffu_jobman_begin(o->model, diffu_build_id(), r->in, &io, o->format, o->emit_ids, &err))) {
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        return 1;
    }
    oo.run_json = diffu_jobman_run_json(r->man);
    r->out = diffu_jobout_open(o->output, &oo, &err);
    if (!r->out) {
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        return 1;
    }
    if (diffu_jobman_commit(r->man, o->output, diffu_jobout_resume_report(r->out)->records, o->allow_run_change,
                            &err)) {
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        diffu_jobout_close(&r->out, &err); /* nothing written: no resume hint */
        return 1;
    }
    /* the in-flight checkpoint of an earlier run of this one (job_inflight.h) */
    {
        char run_id[17];
        diffu_jobman_run_id(diffu_jobman_get_ident(r->man), run_id);
        diffu_jobinf *inf = NULL;
        if (diffu_jobinf_load(o->output, run_id, &inf, &err))
            fprintf(stderr, "[diffu] %s (not used: its samples start over)\n", err.msg);
        else if (inf)
            fprintf(stderr, "[diffu] %s: an in-flight checkpoint of %d sample(s): they continue where they were\n",
                    o->output, diffu_jobinf_count(inf));
        long cap = 0;
        for (int i = 0; i < nreq; i++) cap += diffu_jobin_get(r->in, i)->n;
        r->live = diffu_jobinf_live_new(o->output, run_id, (int)(cap > 0 && cap < (1L << 30) ? cap : 1), inf);
    }
    /* what is left to do, in file order */
    r->left = diffu_xcalloc((size_t)nreq, sizeof *r->left);
    for (int i = 0; i < nreq; i++) r->s_total += diffu_jobin_get(r->in, i)->n;
    r->todo_req = diffu_xmalloc((size_t)(r->s_total ? r->s_total : 1) * sizeof *r->todo_req);
    r->todo_s = diffu_xmalloc((size_t)(r->s_total ? r->s_total : 1) * sizeof *r->todo_s);
    for (int i = 0; i < nreq; i++) {
        const diffu_jobin_req *q = diffu_jobin_get(r->in, i);
        long k0 = r->s_todo;
        for (int s = 0; s < q->n; s++)
            if (!diffu_jobout_done(r->out, q->id, q->id_len, s)) {
                r->todo_req[r->s_todo] = i;
                r->todo_s[r->s_todo++] = s;
            }
        r->left[i] = (int)(r->s_todo - k0);
        if (r->s_todo == k0) continue;
        r->ids.len = 0;
        if (diffu_jobin_prompt_ids(q, j->tok, &r->ids, &err)) {
            fprintf(stderr, "diffu " CMD ": error: %s: request %s: %s\n", o->input, q->id, err.msg);
            return 1;
        }
        int len = (int)r->ids.len + q->params.max_new_tokens;
        if (len > r->max_seq) r->max_seq = len;
        if (q->params.max_new_tokens > r->max_new) r->max_new = q->params.max_new_tokens;
        if (q->params.cache) r->cache = 1;
        r->new_total += (long)r->left[i] * q->params.max_new_tokens;
        r->sum_tokens += (long)r->left[i] * len;
    }
    r->req_total = nreq;
    for (int i = 0; i < nreq; i++) r->req_done += r->left[i] == 0;
    r->s_done = r->s_total - r->s_todo;
    if (r->s_done)
        fprintf(stderr, "[diffu] %s: resuming: %ld of %ld samples already done\n", o->output, r->s_done, r->s_total);
    if (!r->s_todo) {
        fprintf(stderr, "[diffu] %s: all %ld samples of %ld requests are done\n", o->output, r->s_total, r->req_total);
        if (diffu_jobinf_remove(o->output, &err)) fprintf(stderr, "[diffu] %s\n", err.msg);
        return -1;
    }
    r->ds = diffu_xcalloc((size_t)r->s_todo, sizeof *r->ds);
    r->t0 = diffu_xcalloc((size_t)r->s_todo, sizeof *r->t0);
    const char *term = getenv("TERM");
    r->tty = isatty(STDERR_FILENO) && !(term && !strcmp(term, "dumb"));
    r->t_start = r->t_last = r->t_ckpt = diffu_now();
    return 0;
}


diffu_denoise *gen_job_make(gen_jobrun *r, long k) {
    diffu_err err;
    const diffu_jobin_req *q = diffu_jobin_get(r->in, r->todo_req[k]);
    r->ids.len = 0;
    diffu_denoise *d = NULL;
    if (diffu_jobin_prompt_ids(q, r->j->tok, &r->ids, &err) ||
        !(d = diffu_denoise_create(&q->params, r->j->cfg.vocab, r->ids.data, (int)r->ids.len, q->rng_key,
                                   (uint32_t)r->todo_s[k], &err))) {
        gen_job_note(r);
        fprintf(stderr, "diffu " CMD ": error: request %s sample %d: %s\n", q->id, r->todo_s[k], err.msg);
        return d;
    }
    char key[4200];
    size_t kl = diffu_job_util_sample_key(key, sizeof key, q->id, q->id_len, r->todo_s[k]);
    if (diffu_jobinf_live_enter(r->live, d, key, kl, r->ids.data, (int)r->ids.len, &err) < 0) {
        gen_job_note(r);
        fprintf(stderr, "[diffu] %s\n", err.msg);
    }
    return d;
}

int gen_job_finish(gen_jobrun *r, long k, const diffu_denoise *d, double t0) {
    diffu_err err;
    diffu_jobinf_live_leave(r->live, d);
    const diffu_jobin_req *q = diffu_jobin_get(r->in, r->todo_req[k]);
    const diffu_denoise_params *p = &q->params;
    int len, L = diffu_denoise_prompt_len(d);
    const int32_t *cv = diffu_denoise_canvas(d, &len);
    int an = diffu_denoise_answer_len(d);
    diffu_jobout_finish fin = DIFFU_FINISH_LENGTH;
    for (int e = 0; an > 0 && e < p->n_end; e++)
        if (cv[L + an - 1] == p->end_ids[e]) fin = DIFFU_FINISH_STOP;
    diffu_arness a;
    diffu_denoise_arness(d, &a);
    r->text.len = 0;
    gen_reply_text(r->o, r->j->tok, d, &r->text);
    diffu_jobout_rec rec = {
        .req = q, .sample = r->todo_s[k], .completion = r->text.data ? r->text.data : "",
        .completion_len = r->text.len, .finish = fin, .prompt_tokens = L, .generated_tokens = an,
        .steps = diffu_denoise_steps_taken(d), .forwards = diffu_denoise_forwards(d),
        .seconds = diffu_now() - t0, .arness = &a, .prompt_ids = cv, .n_prompt_ids = L,
        .generated_ids = cv + L, .n_generated_ids = len - L};
    if (diffu_jobout_write(r->out, &rec, &err)) {
        gen_job_note(r);
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        return 1;
    }
    r->tokens += len - L;
    r->s_done++;
    if (--r->left[r->todo_req[k]] == 0) r->req_done++;
    progress_maybe(r);
    return 0;
}

int gen_job_close(gen_jobrun **rp, int rc) {
    gen_jobrun *r = *rp;
    if (!r) return rc;
    diffu_err err;
    if (r->out && r->s_todo && r->begun) progress(r, 1);
    long rsteps = 0;
    int nres = r->live ? diffu_jobinf_live_restored(r->live, &rsteps) : 0;
    if (nres)
        fprintf(stderr, "[diffu] %d sample(s) continued from the in-flight checkpoint: %ld step(s) not redone\n", nres,
                rsteps);
    if (r->live && r->begun) {
        if (!rc && r->s_done == r->s_total) { /* complete: no sample in flight any more */
            if (diffu_jobinf_remove(r->o->output, &err)) fprintf(stderr, "[diffu] %s\n", err.msg);
        } else if (diffu_jobinf_live_count(r->live)) {
            checkpoint(r, 1);
        }
    }
    if (!r->begun && (!r->out || !diffu_jobout_written(r->out))) {
        /* failed before the run (loading, a refused layout): nothing to resume, no hint */
    } else if (r->out && diffu_signals_stop_requested())
        fprintf(stderr, "diffu " CMD ": interrupted: %ld of %ld samples in %s; rerun the same command to resume\n",
                r->s_done, r->s_total, r->o->output);
    else if (r->out && rc)
        fprintf(stderr, "diffu " CMD ": %s keeps every finished sample; rerun the same command to resume\n",
                r->o->output);
    if (r->out && diffu_jobout_close(&r->out, &err)) {
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        rc = 1;
    }
    diffu_jobin_free(&r->in);
    diffu_jobman_free(&r->man);
    diffu_jobinf_live_free(&r->live);
    for (long k = 0; r->ds && k < r->s_todo; k++) diffu_denoise_free(&r->ds[k]); /* unfinished: checkpointed above */
    free(r->ds);
    free(r->t0);
    free(r->todo_req);
    free(r->todo_s);
    free(r->left);
    diffu_ids_free(&r->ids);
    diffu_text_free(&r->text);
    free(r);
    *rp = NULL;
    return rc;
}

/* ------------------------------------------------------------ the engine's sequences */

/* The scheduler admits sample k (diffu_sched_opts.make). NULL (reported):
 * nothing more is admitted; the engine drains and returns. */
static diffu_denoise *job_make(void *user, int k) {
    gen_jobrun *r = user;
    r->ds[k] = gen_job_make(r, k);
    r->t0[k] = diffu_now();
    return r->ds[k];
}

/* Sample k has finished (diffu_sched_opts.finished): its record, then the
 * policy is freed. After a failed write nothing more is written. */
static void job_finished(void *user, int k, diffu_denoise *d) {
    gen_jobrun *r = user;
    if (r->write_failed) return;
    if (gen_job_finish(r, k, d, r->t0[k])) {
        r->write_failed = 1;
        return;
    }
    diffu_denoise_free(&r->ds[k]);
}

/* A signal or a failed write: send nothing more, take what is in flight
 * (one process: the current step), return; gen_job_close checkpoints the
 * samples still in flight (job_inflight.h). */
static int job_stop(void *user) {
    gen_jobrun *r = user;
    return r->write_failed || diffu_signals_stop_requested() ? 2 : 0;
}

static void job_tick(void *user, const diffu_engine *e, int n_util, const double *util) {
    gen_jobrun *r = user;
    if (util) gen_job_set_util(r, n_util, util);
    const diffu_engine_stats *st = diffu_engine_get_stats(e);
    gen_job_tick(r, st->sched.seq_steps, st->sched.committed);
}

void gen_job_engine(gen_jobrun *r, diffu_engine_opts *eo) {
    eo->sched.make = job_make;
    eo->sched.make_user = r;
    eo->sched.finished = job_finished;
    eo->sched.finished_user = r;
    eo->stop = job_stop;
    eo->tick = job_tick;
    eo->user = r;
}

int gen_job_rc(const gen_jobrun *r, const diffu_engine *e) {
    return r->write_failed || diffu_engine_failed(e) || gen_job_stopping() ? 1 : 0;
}

/* ------------------------------------------------------------ one process */

int gen_run_job(gen_opts *o) {
    gen_job j;
    gen_jobrun *r = NULL;
    diffu_err err;
    diffu_model *m = NULL;
    diffu_engine *e = NULL;
    int rc = 1;
    memset(&j, 0, sizeof j);
    int st = gen_job_open(o, &j, &r);
    if (st) {
        rc = st < 0 ? 0 : 1;
        goto out;
    }
    /* the model and the engine's local backend, planned for a window of samples */
    int max_seq, max_new;
    gen_job_plan(r, &max_seq, &max_new);
    long todo = gen_job_todo(r);
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
    diffu_engine_opts eo = {.sched = {1, W, 1, W, W * max_seq, W * max_new, max_seq}, .model = m,
                            .kv_cache = gen_job_wants_cache(r)};
    gen_job_engine(r, &eo);
    if (!(e = diffu_engine_create(&eo, NULL, (int)todo, &err))) {
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        goto out;
    }
    gen_job_begin(r); /* rates and ETA from here: loading excluded */
    if (diffu_engine_run(e, &err)) {
        gen_job_note(r);
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        goto out;
    }
    rc = gen_job_rc(r, e);
    gen_job_note(r);
    gen_work(diffu_engine_get_stats(e), diffu_engine_get_stats(e)->sched.committed);
out:
    rc = gen_job_close(&r, rc); /* first: it checkpoints the samples still in flight */
    diffu_engine_free(&e);
    diffu_model_free(m);
    gen_free(NULL, &j);
    return rc;
}
