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
#include "job.h"
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
    /* the batch job (coordinator/job.h, docs/jobs.md) */
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
/* The batch job (--input / --output; coordinator/job.h) as both back ends
 * run it (cli/generate_job.c). */
typedef struct gen_display {
    const char *output;
    int tty, drawn;     /* stderr is a terminal; the bar is on screen */
    double t_last;      /* the last redraw */
} gen_display;
/* The progress display the job calls (diffu_job_opts.note / .progress). */
void gen_display_init(gen_display *d, const char *output);
void gen_display_note(void *user);   /* before another line on stderr: erase the bar (NULL ok) */
void gen_display_progress(void *user, const diffu_job_progress *p, int final);
/* Signals, gen_setup into j, then diffu_job_open with the command line's
 * options and the display dsp. 0 (*job: work to do), -1 (nothing left: exit
 * 0), or 1 after printing the error. */
int gen_job_start(gen_opts *o, gen_job *j, gen_display *dsp, diffu_job **job);
/* After the engine's run: the job's error, if any, printed; the exit status
 * (diffu_job_rc). Close with diffu_job_close. */
int gen_job_end(const diffu_job *job, gen_display *dsp, const diffu_engine *e);
/* The batch job in one process (the local backend). Returns the exit status. */
int gen_run_job(gen_opts *o);

/* --watch (cli/generate_watch.c): the live view on a terminal. attach sets
 * eo's stepped hook (user = w) when stderr is a terminal, else warns. */
typedef struct gen_watch {
    diffu_tokenizer *tok;
    diffu_text text;
    int32_t mask_id;
    diffu_denoise **ds; /* borrowed: the job's canvases */
    int n_d, n_samples;
    long steps;
} gen_watch;
void gen_watch_attach(gen_watch *w, const gen_opts *o, const gen_job *j, diffu_engine_opts *eo);
void gen_watch_free(gen_watch *w);

/* The [timing] line on stderr (both back ends). */
/* The local backend's work (rows through the forward, FLOPs) per generated token, one "[timing] work:" line
 * on stderr; nothing under mpirun. */
void gen_work(const diffu_engine_stats *st, long gen_tokens);
void gen_timing(double t_load, const diffu_engine_stats *st, long gen_tokens);

/* Does this command line ask for the distributed back end? (--pp / --tp, or
 * launched by mpirun with more than one rank.) */
int gen_wants_dist(int argc, char **argv);

int cmd_generate_dist(int argc, char **argv);

#endif
