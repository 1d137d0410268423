/* job_split.h — one batch-job input cut into K shards for a job array
 * (`diffu split`), and the shards' outputs put back together with every
 * (id, sample) checked to be there exactly once (`diffu merge`). Runs on one
 * process, before and after the jobs (no MPI, no model).
 *
 * Split: writes P-00000-of-0000K.jsonl[.gz] ... (gzip when IN is gzip, by its
 * content, as the job reads it). Lines are dealt round-robin (line i to shard
 * i mod K; contiguous: K consecutive blocks, sizes differing by at most one).
 * Every non-blank line is copied byte for byte with its own line ending (CRLF
 * stays CRLF; a last line without one gets '\n'), whether or not the job will
 * accept it: the job validates and rejects, not the splitter. Whitespace-only
 * lines carry no request (the job skips them) and are dropped, so no shard is
 * blank; fewer non-blank lines with distinct ids than K is an error. A line
 * whose id (as the job reads it) repeats an earlier line's goes to that
 * line's shard, after it. A UTF-8 BOM stays on the first line (the job skips
 * a BOM before a file's first line). Each shard is written to a temporary
 * file and renamed (job_util.h afile); an existing shard is an error unless
 * force. Deterministic: the same input gives the same shards. Two passes over
 * IN (count, then deal), so IN must be a file, not a pipe.
 *
 * Merge: reads the shard outputs (plain or gzip, any number of gzip members),
 * in the order given, and checks every line is a complete job record (a JSON
 * object with "id" or "task_id" — string or integer, 7 and "7" being the same
 * id, as the job reads them — and "sample", an integer >= 0, ending in '\n';
 * a torn last record is an error). Every (id, sample) must appear exactly
 * once (dedupe: keep the first, drop and count the others). All records must
 * be of one run ("run" of coordinator/job_manifest.h) unless mixed_ok. With
 * an input: the expected pairs are, for every input line with a readable id
 * (the first line of an id, as the job does), samples 0 .. n-1 with n the
 * line's "n" or n_default; a missing pair fails unless missing_ok; a record
 * the input does not ask for always fails. With an output, the records are
 * written byte for byte, in shard order, to a temporary file renamed to it
 * only when every check passed (gzip when it ends in .gz).
 *
 * Memory: one line at a time, plus a hash map of ids (with a count per
 * sample for merge). Errors: -1 with one line in err (the caller prints it).
 * Not collective; single-threaded. */
#ifndef DIFFU_JOB_SPLIT_H
#define DIFFU_JOB_SPLIT_H

#include <stdio.h>

#include "log.h"

typedef struct {
    const char *input;    /* IN.jsonl[.gz] */
    const char *prefix;   /* shard names: PREFIX-%05d-of-%05d.jsonl[.gz] */
    int shards;           /* K >= 1 */
    int contiguous;       /* consecutive blocks instead of round-robin */
    int force;            /* replace existing shards */
} diffu_job_split_opts;

typedef struct {
    int gz;               /* the shards are gzip (IN was) */
    long lines;           /* non-blank lines with distinct ids, dealt */
    long blank;           /* whitespace-only lines dropped */
    long repeats;         /* lines repeating an earlier line's id (each with that line's shard) */
    long per, extra;      /* shard sizes: per, or per + 1 for `extra` of them (ignoring repeats) */
} diffu_job_split_result;

/* Shard i of k's file name into buf. */
void diffu_job_split_shard_name(char *buf, size_t cap, const char *prefix, int i, int k, int gz);

/* Write the shards. 0 with *res, or -1 with err: nothing is renamed into
 * place unless every shard was written (a failure while renaming them keeps
 * the ones already renamed). */
int diffu_job_split_run(const diffu_job_split_opts *o, diffu_job_split_result *res, diffu_err *err);

typedef struct {
    const char *output;   /* NULL: check only */
    const char *input;    /* NULL: no expected set */
    int n_default;        /* samples per input line without "n" (>= 1) */
    int dedupe, missing_ok, mixed_ok;
    const char *const *shards; /* the shard outputs, in merge order */
    int n_shards;         /* >= 1 */
    FILE *log;            /* "[diffu] merge: ..." diagnostics (up to 10 examples) and the summary */
} diffu_job_split_merge_opts;

/* Check (and write) the merge. 0, or -1 with err (the reason; examples
 * already on o->log). */
int diffu_job_split_merge(const diffu_job_split_merge_opts *o, diffu_err *err);

#endif
