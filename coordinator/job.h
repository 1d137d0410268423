/* job.h — the batch job of `diffu generate --input IN --output OUT`
 * (docs/jobs.md) as one module, for one process and for mpirun alike (rank 0):
 *
 *   diffu_job_open    read and check the requests (job_input.h; the rejects to
 *                     OUT.rejects.jsonl), open OUT and resume what it holds
 *                     (job_output.h, the run manifest job_manifest.h), load the
 *                     in-flight checkpoint OUT.inflight (job_inflight.h), and
 *                     list the (request, sample) pairs left to do, in file
 *                     order. Every prompt is tokenized once, while the input is
 *                     read (the context check counts those ids), and its ids
 *                     kept for the samples.
 *   diffu_job_engine  those samples as the engine's sequences (engine.h): a
 *                     policy made when the scheduler admits it, its record
 *                     written the moment it finishes, then freed; a stop signal
 *                     (signals.h) or a failed write admits nothing more.
 *   diffu_job_close   the samples still in flight checkpointed to
 *                     OUT.inflight (removed once the job is complete), OUT
 *                     closed, the resume hint on stderr.
 *
 * A sample's random draws are addressed by (request rng_key, sample) and the
 * forward is batch-invariant, so a resumed job writes what an uninterrupted one
 * would have. The display is the caller's (progress and note hooks); the job's
 * own messages (rejects, resume, checkpoints) go to stderr, after note.
 * Ownership: the job borrows o's strings and the tokenizer for its lifetime.
 * Not collective; one thread. */
#ifndef DIFFU_JOB_H
#define DIFFU_JOB_H

#include <stdint.h>

#include "denoise.h"
#include "engine.h"
#include "job_input.h"
#include "tokenizer.h"

typedef struct diffu_job diffu_job;

/* What a progress display shows (counts of this run unless said). */
typedef struct diffu_job_progress {
    long req_total, req_done;  /* requests in the file, and those with every sample written (any run) */
    long s_total, s_done;      /* samples, likewise */
    long s_done_before;        /* samples done by earlier runs */
    long tokens;               /* generated tokens written */
    long committed;            /* positions unmasked so far (every sample in flight moves it) */
    long forwards;             /* sequence-forwards */
    long new_total;            /* positions to generate */
    double elapsed;            /* seconds since diffu_job_begin */
    int n_util;                /* stages with a utilization (0: none known, e.g. one process) */
    const double *util;        /* [n_util] busy / elapsed, < 0 not heard yet */
} diffu_job_progress;

typedef struct diffu_job_opts {
    const char *name;          /* the messages' prefix, e.g. "diffu generate" */
    const char *input, *output;
    const char *format;        /* NULL: JSONL (job_output.h) */
    const char *model;         /* the checkpoint directory (the run's identity, job_manifest.h) */
    const char *build_id;
    int strict;                /* a rejected line refuses the whole file */
    int emit_ids, allow_run_change;
    double checkpoint_every;   /* seconds between in-flight checkpoints: 0 = 300; < 0 only when the job stops */
    diffu_jobin_opts in;       /* request defaults, samples, system, prefill, vocab, max_context (the count
                                  callback is the job's own) */
    const int32_t *reply_end;  /* the reply text is cut at these tokens (--end-id, chat.h diffu_chat_reply_ids); */
    int n_reply_end;           /*   0: DiffuCoder's post-processing */
    /* the display (any may be NULL) */
    void (*note)(void *user);  /* before the job writes a line to stderr (erase a progress bar) */
    void (*progress)(void *user, const diffu_job_progress *p, int final); /* after steps and records; final at close */
    void *user;
} diffu_job_opts;

/* Everything above up to the list of samples to do. Returns 0 (*out: work to
 * do), 1 (nothing left: every sample is in OUT, reported; *out NULL), or -1
 * with err (*out NULL; rejects are listed on stderr before a strict refusal). */
int diffu_job_open(const diffu_job_opts *o, const diffu_tokenizer *tok, diffu_job **out, diffu_err *err);

/* The samples to do, and for the memory plan: the longest canvas, the
 * largest max_new_tokens, whether a request asks for a KV cache, and over the
 * samples the canvas tokens and the generated positions. */
long diffu_job_todo(const diffu_job *j);
void diffu_job_plan(const diffu_job *j, int *max_seq, int *max_new, int *kv_cache);
void diffu_job_sums(const diffu_job *j, long *sum_tokens, long *sum_new);

/* Sets eo's sched.make / sched.finished / stop / tick hooks; create the
 * engine with n = diffu_job_todo and no sequences. */
void diffu_job_engine(diffu_job *j, diffu_engine_opts *eo);
/* The run starts now (after loading): elapsed and rates count from here. */
void diffu_job_begin(diffu_job *j);
/* After the run: 0 when every sample was written; 1 when a signal, a failed
 * write or a failed sample stopped it (diffu_job_error says which, if not a
 * signal). */
int diffu_job_rc(const diffu_job *j, const diffu_engine *e);
const char *diffu_job_error(const diffu_job *j); /* NULL: none */
/* Checkpoint, the final progress, the resume hint when rc != 0, close OUT.
 * Returns rc, or 1 when closing OUT failed (reported). NULL *j is a no-op. */
int diffu_job_close(diffu_job **j, int rc);

#endif
