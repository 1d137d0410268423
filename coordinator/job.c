/* job.c — see job.h. */
#include "job.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"
#include "job_inflight.h"
#include "job_manifest.h"
#include "job_output.h"
#include "job_util.h"
#include "signals.h"

#define CKPT_DEFAULT_SECONDS 300.0
#define REJECTS_SHOWN 20

struct diffu_job {
    diffu_job_opts o;
    const diffu_tokenizer *tok;
    diffu_jobin *in;
    diffu_jobout *out;
    diffu_jobman *man;       /* the run's identity (job_manifest.h) */
    diffu_jobinf_live *live; /* the samples in flight (job_inflight.h) */
    double t_ckpt;           /* the last in-flight checkpoint */
    /* every prompt's ids, tokenized once while the input was read (count_and_keep) */
    diffu_ids pids;
    int n_kept, cap_kept;
    int *kept_line;          /* [n_kept] the input line of each tokenized prompt, ascending */
    size_t *kept_off;        /* [n_kept] its ids: pids.data + off, kept_len ids */
    int *kept_len;
    size_t *req_off;         /* [requests] */
    int *req_len;
    /* what is left to do */
    int *todo_req, *todo_s, *left;
    int max_seq, max_new, cache;
    long sum_tokens;         /* canvas tokens over the samples to do */
    diffu_job_progress pr;
    double util[64];
    double t_start;
    int begun;
    diffu_text text;         /* a record's reply */
    /* the samples as the engine's sequences */
    diffu_denoise **ds;      /* [todo] created at admission, freed once written */
    double *t0;              /* [todo] admission time */
    int write_failed;        /* a record could not be written: write nothing more, stop */
    char error[1024];        /* a sample that could not be made or written ("" none) */
    diffu_jobin_opts io;     /* the input's options as read (the manifest's settings) */
};

static void note(diffu_job *j) {
    if (j->o.note) j->o.note(j->o.user);
}

static void show(diffu_job *j, int final) {
    if (!j->o.progress) return;
    j->pr.elapsed = diffu_now() - j->t_start;
    j->o.progress(j->o.user, &j->pr, final);
}

static void keep_error(diffu_job *j, const char *msg) {
    if (!j->error[0]) snprintf(j->error, sizeof j->error, "%s", msg);
}

/* The count callback of the input (job_input.h): the prompt's ids, kept. */
static int count_and_keep(void *user, const diffu_jobin_req *r, diffu_err *err) {
    diffu_job *j = user;
    size_t before = j->pids.len;
    if (diffu_jobin_prompt_ids(r, j->tok, &j->pids, err)) {
        j->pids.len = before;
        return -1;
    }
    if (j->n_kept == j->cap_kept) {
        j->cap_kept = j->cap_kept ? 2 * j->cap_kept : 256;
        j->kept_line = diffu_xrealloc(j->kept_line, (size_t)j->cap_kept * sizeof *j->kept_line);
        j->kept_off = diffu_xrealloc(j->kept_off, (size_t)j->cap_kept * sizeof *j->kept_off);
        j->kept_len = diffu_xrealloc(j->kept_len, (size_t)j->cap_kept * sizeof *j->kept_len);
    }
    size_t n = j->pids.len - before;
    j->kept_line[j->n_kept] = r->line;
    j->kept_off[j->n_kept] = before;
    j->kept_len[j->n_kept++] = (int)(n > 0x7fffffff ? 0x7fffffff : n);
    return j->kept_len[j->n_kept - 1];
}

/* Each accepted request's ids (requests and kept prompts are both in line order). */
static void index_prompts(diffu_job *j, int nreq) {
    j->req_off = diffu_xcalloc((size_t)nreq, sizeof *j->req_off);
    j->req_len = diffu_xcalloc((size_t)nreq, sizeof *j->req_len);
    int k = 0;
    for (int i = 0; i < nreq; i++) {
        int line = diffu_jobin_get(j->in, i)->line;
        while (k < j->n_kept && j->kept_line[k] < line) k++;
        DIFFU_ASSERTF(k < j->n_kept && j->kept_line[k] == line, "request of line %d was accepted without its ids", line);
        j->req_off[i] = j->kept_off[k];
        j->req_len[i] = j->kept_len[k];
    }
}

static int read_input(diffu_job *j, diffu_err *err) {
    const diffu_job_opts *o = &j->o;
    j->io = o->in;
    j->io.count_tokens = count_and_keep;
    j->io.count_user = j;
    if (!(j->in = diffu_jobin_open(o->input, &j->io, err))) return -1;
    int nrej = diffu_jobin_n_rejects(j->in), nreq = diffu_jobin_count(j->in);
    char rej_path[4200];
    snprintf(rej_path, sizeof rej_path, "%s.rejects.jsonl", o->output);
    if (diffu_jobin_write_rejects(j->in, rej_path, err)) return -1;
    if (nrej) {
        diffu_jobin_list_rejects(j->in, stderr, REJECTS_SHOWN, rej_path);
        if (o->strict)
            return diffu_err_set(err, "%s: %d bad line%s; --strict refuses the whole file (listed above)", o->input,
                                 nrej, nrej > 1 ? "s" : "");
        DLOG_INFO("%d rejected line%s in %s; the other %d request%s run", nrej, nrej > 1 ? "s" : "", rej_path, nreq,
                  nreq == 1 ? "" : "s");
    }
    if (!nreq) return diffu_err_set(err, "%s: no valid request", o->input);
    index_prompts(j, nreq);
    return 0;
}

/* The output, resumed; the manifest checked; the in-flight checkpoint of an earlier run of this one. */
static int open_output(diffu_job *j, diffu_err *err) {
    const diffu_job_opts *o = &j->o;
    diffu_jobout_opts oo;
    diffu_jobout_opts_default(&oo);
    if (o->format) oo.format = (diffu_jobout_format)diffu_jobout_format_parse(o->format);
    oo.emit_ids = o->emit_ids;
    if (!(j->man = diffu_jobman_begin(o->model, o->build_id, j->in, &j->io, o->format, o->emit_ids, err))) return -1;
    oo.run_json = diffu_jobman_run_json(j->man);
    if (!(j->out = diffu_jobout_open(o->output, &oo, err))) return -1;
    if (diffu_jobman_commit(j->man, o->output, diffu_jobout_resume_report(j->out)->records, o->allow_run_change, err)) {
        diffu_err e2;
        diffu_jobout_close(&j->out, &e2); /* nothing written: no resume hint */
        return -1;
    }
    char run_id[17];
    diffu_jobman_run_id(diffu_jobman_get_ident(j->man), run_id);
    diffu_jobinf *inf = NULL;
    diffu_err e;
    if (diffu_jobinf_load(o->output, run_id, &inf, &e))
        DLOG_INFO("%s (not used: its samples start over)", e.msg);
    else if (inf)
        DLOG_INFO("%s: an in-flight checkpoint of %d sample(s): they continue where they were", o->output,
                  diffu_jobinf_count(inf));
    long cap = 0;
    for (int i = 0; i < diffu_jobin_count(j->in); i++) cap += diffu_jobin_get(j->in, i)->n;
    j->live = diffu_jobinf_live_new(o->output, run_id, (int)(cap > 0 && cap < (1L << 30) ? cap : 1), inf);
    return 0;
}

/* What is left to do, in file order. */
static void list_todo(diffu_job *j) {
    int nreq = diffu_jobin_count(j->in);
    diffu_job_progress *p = &j->pr;
    j->left = diffu_xcalloc((size_t)nreq, sizeof *j->left);
    for (int i = 0; i < nreq; i++) p->s_total += diffu_jobin_get(j->in, i)->n;
    j->todo_req = diffu_xmalloc((size_t)(p->s_total ? p->s_total : 1) * sizeof *j->todo_req);
    j->todo_s = diffu_xmalloc((size_t)(p->s_total ? p->s_total : 1) * sizeof *j->todo_s);
    long todo = 0;
    for (int i = 0; i < nreq; i++) {
        const diffu_jobin_req *q = diffu_jobin_get(j->in, i);
        long k0 = todo;
        for (int s = 0; s < q->n; s++)
            if (!diffu_jobout_done(j->out, q->id, q->id_len, s)) {
                j->todo_req[todo] = i;
                j->todo_s[todo++] = s;
            }
        j->left[i] = (int)(todo - k0);
        if (todo == k0) continue;
        int len = j->req_len[i] + q->params.max_new_tokens;
        if (len > j->max_seq) j->max_seq = len;
        if (q->params.max_new_tokens > j->max_new) j->max_new = q->params.max_new_tokens;
        if (q->params.cache) j->cache = 1;
        p->new_total += (long)j->left[i] * q->params.max_new_tokens;
        j->sum_tokens += (long)j->left[i] * len;
    }
    p->req_total = nreq;
    for (int i = 0; i < nreq; i++) p->req_done += j->left[i] == 0;
    p->s_done = p->s_done_before = p->s_total - todo;
}

static long todo_count(const diffu_job *j) { return j->pr.s_total - j->pr.s_done_before; }

static void job_free(diffu_job *j) {
    diffu_jobin_free(&j->in);
    diffu_jobman_free(&j->man);
    diffu_jobinf_live_free(&j->live);
    for (long k = 0; j->ds && k < todo_count(j); k++) diffu_denoise_free(&j->ds[k]); /* unfinished: checkpointed */
    free(j->ds);
    free(j->t0);
    free(j->todo_req);
    free(j->todo_s);
    free(j->left);
    free(j->kept_line);
    free(j->kept_off);
    free(j->kept_len);
    free(j->req_off);
    free(j->req_len);
    diffu_ids_free(&j->pids);
    diffu_text_free(&j->text);
    free(j);
}

int diffu_job_open(const diffu_job_opts *o, const diffu_tokenizer *tok, diffu_job **out, diffu_err *err) {
    *out = NULL;
    if (!tok) return diffu_err_set(err, "--input needs the checkpoint's tokenizer; %s has none", o->model);
    diffu_job *j = diffu_xcalloc(1, sizeof *j);
    j->o = *o;
    j->tok = tok;
    if (read_input(j, err) || open_output(j, err)) {
        job_free(j);
        return -1;
    }
    list_todo(j);
    diffu_job_progress *p = &j->pr;
    if (p->s_done) DLOG_INFO("%s: resuming: %ld of %ld samples already done", o->output, p->s_done, p->s_total);
    if (p->s_done == p->s_total) {
        DLOG_INFO("%s: all %ld samples of %ld requests are done", o->output, p->s_total, p->req_total);
        diffu_err e;
        if (diffu_jobinf_remove(o->output, &e)) DLOG_INFO("%s", e.msg);
        diffu_jobout_close(&j->out, &e);
        job_free(j);
        return 1;
    }
    j->ds = diffu_xcalloc((size_t)todo_count(j), sizeof *j->ds);
    j->t0 = diffu_xcalloc((size_t)todo_count(j), sizeof *j->t0);
    j->t_start = j->t_ckpt = diffu_now();
    *out = j;
    return 0;
}

long diffu_job_todo(const diffu_job *j) { return todo_count(j); }

void diffu_job_plan(const diffu_job *j, int *max_seq, int *max_new, int *kv_cache) {
    *max_seq = j->max_seq;
    *max_new = j->max_new;
    *kv_cache = j->cache;
}

void diffu_job_sums(const diffu_job *j, long *sum_tokens, long *sum_new) {
    *sum_tokens = j->sum_tokens;
    *sum_new = j->pr.new_total;
}

void diffu_job_begin(diffu_job *j) {
    j->t_start = diffu_now();
    j->begun = 1;
}

/* ------------------------------------------------------------ in-flight checkpoints */

static void checkpoint(diffu_job *j, int final) {
    diffu_err err;
    j->t_ckpt = diffu_now();
    if (!final && !diffu_jobinf_live_count(j->live)) return;
    if (diffu_jobinf_live_checkpoint(j->live, j->pr.s_done, &err)) {
        note(j);
        DLOG_WARN("%s (the samples in flight would start over)", err.msg);
    } else if (final) {
        note(j);
        DLOG_INFO("%s.inflight: the %d sample(s) in flight saved; the rerun continues them", j->o.output,
                  diffu_jobinf_live_count(j->live));
    }
}

static void checkpoint_maybe(diffu_job *j) {
    double every = j->o.checkpoint_every == 0 ? CKPT_DEFAULT_SECONDS : j->o.checkpoint_every;
    if (every > 0 && diffu_now() - j->t_ckpt >= every) checkpoint(j, 0);
}

/* ------------------------------------------------------------ the engine's sequences */

/* The scheduler admits sample k (diffu_sched_opts.make). NULL: nothing more
 * is admitted; the engine drains and returns. */
static diffu_denoise *job_make(void *user, int k) {
    diffu_job *j = user;
    const diffu_jobin_req *q = diffu_jobin_get(j->in, j->todo_req[k]);
    const int32_t *ids = j->pids.data + j->req_off[j->todo_req[k]];
    int n = j->req_len[j->todo_req[k]];
    diffu_err err;
    diffu_denoise *d = diffu_denoise_create(&q->params, j->o.in.vocab, ids, n, q->rng_key, (uint32_t)j->todo_s[k], &err);
    if (!d) { /* the scheduler admits nothing more; the samples in flight finish */
        diffu_err e2;
        diffu_err_set(&e2, "request %s sample %d: %s", q->id, j->todo_s[k], err.msg);
        keep_error(j, e2.msg);
        return NULL;
    }
    char key[4200];
    size_t kl = diffu_job_util_sample_key(key, sizeof key, q->id, q->id_len, j->todo_s[k]);
    if (diffu_jobinf_live_enter(j->live, d, key, kl, ids, n, &err) < 0) {
        note(j);
        DLOG_INFO("%s", err.msg);
    }
    j->ds[k] = d;
    j->t0[k] = diffu_now();
    return d;
}

/* Sample k's record. 0, or -1 with err. */
static int write_record(diffu_job *j, int k, const diffu_denoise *d, diffu_err *err) {
    const diffu_jobin_req *q = diffu_jobin_get(j->in, j->todo_req[k]);
    const diffu_denoise_params *p = &q->params;
    int len, L = diffu_denoise_prompt_len(d);
    const int32_t *cv = diffu_denoise_canvas(d, &len);
    int an = diffu_denoise_answer_len(d);
    diffu_jobout_finish fin = DIFFU_FINISH_LENGTH;
    for (int e = 0; an > 0 && e < p->n_end; e++)
        if (cv[L + an - 1] == p->end_ids[e]) fin = DIFFU_FINISH_STOP;
    diffu_arness a;
    diffu_denoise_arness(d, &a);
    j->text.len = 0;
    diffu_chat_reply_ids(j->tok, cv + L, (size_t)(len - L), (size_t)an, j->o.reply_end, j->o.n_reply_end, &j->text);
    diffu_jobout_rec rec = {
        .req = q, .sample = j->todo_s[k], .completion = j->text.data ? j->text.data : "",
        .completion_len = j->text.len, .finish = fin, .prompt_tokens = L, .generated_tokens = an,
        .steps = diffu_denoise_steps_taken(d), .forwards = diffu_denoise_forwards(d),
        .seconds = diffu_now() - j->t0[k], .arness = &a, .prompt_ids = cv, .n_prompt_ids = L,
        .generated_ids = cv + L, .n_generated_ids = len - L};
    if (diffu_jobout_write(j->out, &rec, err)) return -1;
    j->pr.tokens += len - L;
    j->pr.s_done++;
    if (--j->left[j->todo_req[k]] == 0) j->pr.req_done++;
    return 0;
}

/* Sample k has finished (diffu_sched_opts.finished): its record, then the
 * policy is freed. After a failure nothing more is written. */
static void job_finished(void *user, int k, diffu_denoise *d) {
    diffu_job *j = user;
    if (j->write_failed) return;
    diffu_jobinf_live_leave(j->live, d);
    diffu_err err;
    if (write_record(j, k, d, &err)) {
        keep_error(j, err.msg);
        j->write_failed = 1;
        return;
    }
    diffu_denoise_free(&j->ds[k]);
    show(j, 0);
}

/* A signal or a failure: send nothing more, take what is in flight, return;
 * diffu_job_close checkpoints the samples still in flight. */
static int job_stop(void *user) {
    diffu_job *j = user;
    return j->write_failed || diffu_signals_stop_requested() ? 2 : 0;
}

static void job_tick(void *user, const diffu_engine *e, int n_util, const double *util) {
    diffu_job *j = user;
    if (util) {
        j->pr.n_util = n_util < 64 ? n_util : 64;
        memcpy(j->util, util, (size_t)j->pr.n_util * sizeof *util);
        j->pr.util = j->util;
    }
    checkpoint_maybe(j);
    const diffu_engine_stats *st = diffu_engine_get_stats(e);
    j->pr.forwards = st->sched.seq_steps;
    j->pr.committed = st->sched.committed;
    show(j, 0);
}

void diffu_job_engine(diffu_job *j, diffu_engine_opts *eo) {
    eo->sched.make = job_make;
    eo->sched.make_user = j;
    eo->sched.finished = job_finished;
    eo->sched.finished_user = j;
    eo->stop = job_stop;
    eo->tick = job_tick;
    eo->user = j;
}

int diffu_job_rc(const diffu_job *j, const diffu_engine *e) {
    return j->write_failed || diffu_engine_failed(e) || diffu_signals_stop_requested() > 0 ? 1 : 0;
}

const char *diffu_job_error(const diffu_job *j) { return j->error[0] ? j->error : NULL; }

int diffu_job_close(diffu_job **jp, int rc) {
    diffu_job *j = *jp;
    if (!j) return rc;
    diffu_err err;
    const char *name = j->o.name ? j->o.name : "diffu";
    if (j->begun) show(j, 1);
    long rsteps = 0;
    int nres = diffu_jobinf_live_restored(j->live, &rsteps);
    if (nres) DLOG_INFO("%d sample(s) continued from the in-flight checkpoint: %ld step(s) not redone", nres, rsteps);
    if (j->begun) {
        if (!rc && j->pr.s_done == j->pr.s_total) { /* complete: no sample in flight any more */
            if (diffu_jobinf_remove(j->o.output, &err)) DLOG_INFO("%s", err.msg);
        } else if (diffu_jobinf_live_count(j->live)) {
            checkpoint(j, 1);
        }
    }
    if (!j->begun && !diffu_jobout_written(j->out)) {
        /* failed before the run (loading, a refused layout): nothing to resume, no hint */
    } else if (diffu_signals_stop_requested()) {
        fprintf(stderr, "%s: interrupted: %ld of %ld samples in %s; rerun the same command to resume\n", name,
                j->pr.s_done, j->pr.s_total, j->o.output);
    } else if (rc) {
        fprintf(stderr, "%s: %s keeps every finished sample; rerun the same command to resume\n", name, j->o.output);
    }
    if (diffu_jobout_close(&j->out, &err)) {
        fprintf(stderr, "%s: error: %s\n", name, err.msg);
        rc = 1;
    }
    job_free(j);
    *jp = NULL;
    return rc;
}
