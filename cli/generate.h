/* generate.h — `diffu generate`'s front end, shared by its two back ends of
 * the one loop (coordinator/engine.h): the single process (cli/cmd_generate.c,
 * the local backend) and the distributed run under mpirun
 * (cli/cmd_generate_dist.c: pipeline stages x tensor-parallel ranks, the
 * pipeline backend node/pipeline.h).
 *
 *   gen_parse    the command line (every option of both back ends)
 *   gen_prepare  config, tokenizer, prompts -> one denoising policy per
 *                (prompt, sample) (the distributed run: rank 0 only)
 *   gen_report   stdout (ids or text, one entry per sample), --out JSON, and
 *                per sample on stderr: steps, forwards, AR-ness
 * Exit statuses as every command: 0, 1 user error (printed), 2 usage. */
#ifndef DIFFU_GENERATE_H
#define DIFFU_GENERATE_H

#include <stdint.h>

#include "config.h"
#include "denoise.h"
#include "engine.h"
#include "tokenizer.h"

typedef struct gen_opts {
    const char *model, *out_path, *dump_path, *system;
    char *prefill;
    int chat;
    int n_prompts, cap_prompts;
    int32_t **prompts;
    int *prompt_len;
    const char **prompt_text; /* NULL entry: given as ids */
    long long n_samples, steps;
    int watch, emit_ids, n_end_cli;
    int32_t end_cli[DIFFU_MAX_END_IDS];
    diffu_denoise_params p;
    int threads, f32;
    /* the distributed run (cli/cmd_generate_dist.c) */
    int pp, tp;               /* 0: not given */
    int microbatches;         /* 0: default (1 for one stage, else 2 x pp) */
    int max_active;           /* 0: every sequence at once */
    int spread;               /* 0: default */
    double comm_timeout;      /* 0: DIFFU_COMM_TIMEOUT or 300 s */
    double head_rows;         /* 0: from the schedule (balance rule input) */
    int verbose;
    int dist_opts;            /* a distributed-only option was given */
    /* the batch job (cli/generate_job.c, docs/jobs.md) */
    const char *input, *output, *format;
    int strict;
    int allow_run_change;     /* --allow-run-change (coordinator/job_manifest.h) */
    double checkpoint_every;  /* --checkpoint-every S: in-flight checkpoints (job_inflight.h); 0: default 300;
                                 < 0: on signals only */
    int ckpt_given;
} gen_opts;

typedef struct gen_job {
    diffu_config cfg;
    diffu_tokenizer *tok;
    diffu_denoise **ds;       /* [n_d]: prompt i sample s at i * n_samples + s */
    int n_d;
    int max_seq;              /* longest canvas */
    long sum_tokens, sum_rows; /* totals over all canvases: tokens, generated positions */
} gen_job;

/* quiet: print no errors (ranks other than 0 of a distributed run; rank 0
 * reports them). Returns 0; -1 after --help (exit 0); 1 or 2 after an error. */
int gen_parse(int argc, char **argv, gen_opts *o, int quiet);
/* Returns 0, or 1 after printing the error. */
int gen_prepare(gen_opts *o, gen_job *j);
/* Results to stdout / --out, per-sample lines to stderr. Returns 0 or 1. */
int gen_report(const gen_opts *o, const gen_job *j);
void gen_free(gen_opts *o, gen_job *j);
/* Config, tokenizer, mask id and end ids into j / o->p (part of gen_prepare).
 * Returns 0, or 1 after printing the error. */
int gen_setup(gen_opts *o, gen_job *j);
/* The reply text of a finished canvas (DiffuCoder's post-processing, or the
 * cut at the --end-id tokens), appended to text. */
void gen_reply_text(const gen_opts *o, const diffu_tokenizer *tok, const diffu_denoise *d, diffu_text *text);
/* The batch job: --input / --output in one process (cli/generate_job.c).
 * Returns the exit status. */
int gen_run_job(gen_opts *o);

/* The batch job's pieces, shared by both back ends (cli/generate_job.c). */
typedef struct gen_jobrun gen_jobrun;
/* Setup (gen_setup into j), requests, rejects, the output (resumed); the
 * samples left to do. Returns 0 (work to do), -1 (nothing left: exit 0), or
 * 1 after printing the error. */
int gen_job_open(gen_opts *o, gen_job *j, gen_jobrun **jr);
long gen_job_todo(const gen_jobrun *jr);
/* Longest canvas and largest max_new_tokens over the samples to do. */
void gen_job_plan(const gen_jobrun *jr, int *max_seq, int *max_new);
/* 1 when a request to do asks for a KV cache (its cache, or --cache, not none). */
int gen_job_wants_cache(const gen_jobrun *jr);
/* Over the samples to do: canvas tokens (prompt + max_new_tokens) and
 * generated positions (the stage balance's lm_head-rows estimate). */
void gen_job_sums(const gen_jobrun *jr, long *sum_tokens, long *sum_rows);
/* The policy of sample k (0 .. todo-1). NULL after printing the error. */
diffu_denoise *gen_job_make(gen_jobrun *jr, long k);
/* Sample k has finished (d): write its record; progress on stderr now and
 * then. 0, or 1 after printing the error. */
int gen_job_finish(gen_jobrun *jr, long k, const diffu_denoise *d, double t0);
/* The run starts now (after loading): elapsed, rates and the ETA count from
 * here. */
void gen_job_begin(gen_jobrun *jr);
/* After a step: the sequence-forwards and the positions unmasked so far in
 * this run (tokens/s and the ETA before samples finish); redraws the progress
 * when it is time. */
void gen_job_tick(gen_jobrun *jr, long forwards, long committed);
/* The in-flight checkpoint when --checkpoint-every seconds have passed (also done by gen_job_tick);
 * call it as often as a checkpoint may be wanted. */
void gen_job_checkpoint_maybe(gen_jobrun *jr);
/* Per-stage utilization (busy / elapsed, < 0 unknown) shown by the progress. */
void gen_job_set_util(gen_jobrun *jr, int n_stages, const double *util);
/* Before printing another message on stderr: erase the in-place bar (NULL ok). */
void gen_job_note(gen_jobrun *jr);
/* A signal asked the job to stop (installed by gen_job_open). */
int gen_job_stopping(void);
/* The job's samples as the engine's sequences: eo's make / finished (the
 * record, then the policy freed) / stop (signals) / tick (progress) hooks;
 * create the engine with n = gen_job_todo and no sequences. */
void gen_job_engine(gen_jobrun *jr, diffu_engine_opts *eo);
/* After the run: 1 when a signal, a failed write or a failed make stopped it
 * before every sample was written, else 0. */
int gen_job_rc(const gen_jobrun *jr, const diffu_engine *e);
/* Final progress line, the resume hint when rc != 0, close; returns rc (1 if
 * closing the output failed). */
int gen_job_close(gen_jobrun **jr, int rc);

/* The [timing] line on stderr (both back ends). */
/* The local backend's work (rows through the forward, FLOPs) per generated token, one "[timing] work:" line
 * on stderr; nothing under mpirun. */
void gen_work(const diffu_engine_stats *st, long gen_tokens);
void gen_timing(double t_load, const diffu_engine_stats *st, long gen_tokens);

/* Does this command line ask for the distributed back end? (--pp / --tp, or
 * launched by mpirun with more than one rank.) */
int gen_wants_dist(int argc, char **argv);
/* The rank the launcher announces before MPI is up (0 when none). */
int gen_launcher_rank(void);

int cmd_generate_dist(int argc, char **argv);

#endif
