/* job_inflight.h — in-flight checkpoints of a batch job (issue 14): the state
 * of every sample still generating, written durably next to the output, so a
 * job cut by a signal, a time limit or a kill continues those samples where
 * they were instead of starting them over.
 *
 * OUTPUT.inflight holds, for one run (the run id of job_manifest.h), one entry
 * per sample in flight when it was written: the sample's key (request id +
 * sample index, diffu_job_util_sample_key), a hash of its prompt ids and its
 * canvas state (diffu_denoise_save; the Philox draws are addressed, so nothing
 * else is needed). The file is replaced atomically and durably
 * (diffu_job_util_write_atomic) each time: on SIGTERM / SIGINT / SIGUSR1 and
 * every --checkpoint-every seconds; a kill -9 leaves the last one whole.
 *
 * Format (little-endian):
 *   "DIFFUINF" | u32 version (1) | u32 entries | 16 bytes run id | u64 records
 *   entries x { u32 key bytes | key | u32 prompt hash | u32 state bytes | state }
 *   u32 CRC-32 (zlib) of everything before it.
 * records: the complete records the output held when it was written
 * (informational: a sample whose record is in the output is done, whatever
 * the checkpoint says).
 *
 * A resume (diffu_jobinf_load) takes the entries of a file of this run; a
 * file of another run (the settings changed under --allow-run-change) or one
 * that does not parse is not used: the samples start over, and the reason is
 * one line for the caller to print. Not collective (the coordinator rank).
 * Strings and buffers passed in are copied. */
#ifndef DIFFU_JOB_INFLIGHT_H
#define DIFFU_JOB_INFLIGHT_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

/* OUTPUT.inflight into buf (snprintf semantics). */
int diffu_jobinf_path(const char *output, char *buf, size_t cap);

/* The hash that ties an entry to its prompt (FNV-1a 32 of the int32 ids). */
uint32_t diffu_jobinf_prompt_hash(const int32_t *ids, int n);

/* ---- writing ---- */
typedef struct diffu_jobinf_writer diffu_jobinf_writer;
/* run_id: 16 hex digits (job_manifest.h). Its buffer grows with the entries
 * and is reused by later checkpoints (reset). */
diffu_jobinf_writer *diffu_jobinf_writer_new(const char *run_id);
void diffu_jobinf_writer_reset(diffu_jobinf_writer *w, long records);
void diffu_jobinf_writer_add(diffu_jobinf_writer *w, const char *key, size_t key_len, uint32_t prompt_hash,
                             const uint8_t *state, size_t state_len);
int diffu_jobinf_writer_entries(const diffu_jobinf_writer *w);
/* Replace OUTPUT.inflight with the entries added since the last reset. 0, or
 * -1 with one line naming the file. */
int diffu_jobinf_writer_commit(diffu_jobinf_writer *w, const char *output, diffu_err *err);
void diffu_jobinf_writer_free(diffu_jobinf_writer **w);

/* ---- reading ---- */
typedef struct diffu_jobinf diffu_jobinf;
/* Parse the bytes of an in-flight file (name: for messages). NULL with one
 * line in err when they are not one, or are another run's (run_id != NULL). */
diffu_jobinf *diffu_jobinf_parse(const uint8_t *data, size_t n, const char *name, const char *run_id, diffu_err *err);
/* The file of output (temporary files of checkpoints a kill cut short,
 * OUTPUT.inflight.tmp.*, are removed first): 0 with *out NULL when there is none; 0 with *out when it
 * is this run's; -1 with err (one line: why it is not used) otherwise. */
int diffu_jobinf_load(const char *output, const char *run_id, diffu_jobinf **out, diffu_err *err);
int diffu_jobinf_count(const diffu_jobinf *f);
long diffu_jobinf_records(const diffu_jobinf *f);
/* Entry i (0 <= i < count): key, prompt hash and state (borrowed from f). */
void diffu_jobinf_entry(const diffu_jobinf *f, int i, const char **key, size_t *key_len, uint32_t *prompt_hash,
                        const uint8_t **state, size_t *state_len);
/* The entry of key, or -1. */
int diffu_jobinf_find(const diffu_jobinf *f, const char *key, size_t key_len);
void diffu_jobinf_free(diffu_jobinf **f);

/* Remove OUTPUT.inflight (the job finished); a missing file is fine. */
int diffu_jobinf_remove(const char *output, diffu_err *err);

/* ---- the samples in flight of a running job ----
 * The job registers each sample when it is made (enter: restored from the
 * resume checkpoint when it has the sample's entry) and when it is finished
 * (leave); checkpoint writes every registered sample's state. The canvases are
 * borrowed (the job owns them) and must stay valid between enter and leave.
 * Memory: at most max_active samples at once (asserted); the writer's buffer
 * grows to the largest checkpoint. One thread. */
typedef struct diffu_denoise diffu_denoise;
typedef struct diffu_jobinf_live diffu_jobinf_live;
/* resume: the loaded checkpoint (taken over; NULL: start every sample fresh). */
diffu_jobinf_live *diffu_jobinf_live_new(const char *output, const char *run_id, int max_active, diffu_jobinf *resume);
/* 1: d was restored from its entry; 0: no entry (d fresh); -1 with err: the
 * entry does not fit this sample (another prompt, a state that does not
 * restore) — d is fresh and the caller prints the line. Either way d is now
 * registered. */
int diffu_jobinf_live_enter(diffu_jobinf_live *l, diffu_denoise *d, const char *key, size_t key_len, const int32_t *prompt,
                            int prompt_len, diffu_err *err);
void diffu_jobinf_live_leave(diffu_jobinf_live *l, const diffu_denoise *d);
int diffu_jobinf_live_count(const diffu_jobinf_live *l);
/* Write OUTPUT.inflight with every registered sample (records: the complete
 * records of the output now). 0, or -1 with one line. With $DIFFU_TRACE
 * naming "inflight", a line on stderr before (every sample's key and steps
 * taken) and after (once durable) each write: job_inflight.c. */
int diffu_jobinf_live_checkpoint(diffu_jobinf_live *l, long records, diffu_err *err);
/* Samples restored so far, and the steps they had taken (work not redone). */
int diffu_jobinf_live_restored(const diffu_jobinf_live *l, long *steps);
void diffu_jobinf_live_free(diffu_jobinf_live **l);

#endif
