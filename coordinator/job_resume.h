/* job_resume.h — what an existing job output already holds, and the repair of
 * its torn tail, so that rerunning the same command continues the job.
 *
 * The output (job_output.h) is JSONL, or gzip with every record its own
 * complete gzip member; a record is one line ending in '\n' that carries the
 * request id ("id", or "task_id" in the harness formats) and "sample". A
 * killed writer leaves at most one torn record at the end:
 *   plain: bytes after the last '\n' (a partial last line);
 *   gzip:  an incomplete member (the file ends inside it), or members whose
 *          text does not end at a line boundary.
 * The scan reads the file from the start, keeps every complete record, and
 * with repair truncates the file to the end of the last complete record after
 * copying the dropped bytes to PATH.torn (PATH.torn.1, .2, ... if taken), so
 * nothing is lost silently (the drop is also logged with DLOG_WARN; a gzip file cut back to nothing gets one empty
 * gzip member, as the writer starts every gzip file with one, so zcat accepts
 * it); the report says what was dropped and where it
 * went. It refuses (returns NULL with err, file untouched) when the damage is
 * not a torn tail: a complete line that is not a record, a corrupt gzip member
 * followed by more than DIFFU_JOBRESUME_MAX_TAIL bytes, a non-gzip file where
 * gzip is expected, records in two formats. Then the user decides.
 *
 * The done set answers "is (id, sample) already in the output?"; integer ids
 * are compared as their decimal text (the input module does the same).
 *
 * Ownership: a diffu_jobresume is created by a scan and freed by the caller
 * with diffu_jobresume_free; it does not keep the fd. Thread-safety: read-only
 * after the scan (any number of threads may query). Not collective. */
#ifndef DIFFU_JOB_RESUME_H
#define DIFFU_JOB_RESUME_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

#define DIFFU_JOBRESUME_MAX_TAIL ((uint64_t)80 << 20) /* a torn tail longer than this is not one record */

typedef enum {
    DIFFU_JOBRESUME_KEY_NONE = 0,    /* no records */
    DIFFU_JOBRESUME_KEY_ID = 1,      /* records carry "id" (the diffu format) */
    DIFFU_JOBRESUME_KEY_TASK_ID = 2, /* records carry "task_id" (evalplus / humaneval formats) */
} diffu_jobresume_key;

typedef struct diffu_jobresume_report {
    uint64_t file_bytes;     /* size found */
    uint64_t good_bytes;     /* end of the last complete record = the size after repair (except that a
                                gzip file left with nothing gets one empty member, 20 bytes, so zcat
                                reads it) */
    uint64_t dropped_bytes;  /* bytes after the last complete record (what a repair removes) */
    char dropped_what[512];  /* what the torn tail was ("" when nothing was dropped) */
    char saved_to[4200];     /* where the dropped bytes were copied ("" if none / not repaired) */
    int repaired;            /* 1: the file was truncated to good_bytes */
    long records;            /* complete records kept */
    long distinct;           /* distinct (id, sample) */
    long duplicates;         /* records - distinct */
    int gz;
    diffu_jobresume_key key;
} diffu_jobresume_report;

typedef struct diffu_jobresume diffu_jobresume;

/* Scan an open file (fd readable, and writable when repair is 1; the caller
 * holds the lock) from offset 0. gz: the records are gzip members. path is
 * for messages and for the .torn copy. On return the fd's offset is
 * unspecified. NULL with err on a refusal or an I/O error. */
diffu_jobresume *diffu_jobresume_scan_fd(int fd, const char *path, int gz, int repair, diffu_err *err);

/* Open path (gzip by its name, or by its content if it has the gzip magic),
 * take an exclusive lock (fails if a writer holds it), scan, repair when
 * repair is 1, close. A missing file is an error here. */
diffu_jobresume *diffu_jobresume_scan_path(const char *path, int repair, diffu_err *err);

void diffu_jobresume_free(diffu_jobresume **r);

const diffu_jobresume_report *diffu_jobresume_get_report(const diffu_jobresume *r);
/* 1 if (id, sample) is in the output. */
int diffu_jobresume_done(const diffu_jobresume *r, const char *id, size_t id_len, int sample);
/* Mark (id, sample) done (the writer calls this as it appends); returns 1 if
 * it was new. Not thread-safe: the writer holds its own lock. */
int diffu_jobresume_mark(diffu_jobresume *r, const char *id, size_t id_len, int sample);
/* An empty done set (a new output file). */
diffu_jobresume *diffu_jobresume_empty(int gz);

#endif
