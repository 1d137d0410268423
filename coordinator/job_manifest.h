/* job_manifest.h — the identity of a batch job's run (issue 14): which model,
 * input and generation settings made the records of an output, so that a
 * resumed job never silently mixes two runs in one dataset.
 *
 * Identity of a run:
 *   model       its name (the directory's basename; not compared: a model may
 *               move) and a fingerprint: the checkpoint's (config + every
 *               tensor header, model/checkpoint.h)
 *   model       (above) + 12 KiB of every tensor's data (its first, middle
 *               and last 4 KiB): two checkpoints of one shape (Base and
 *               Instruct, or two seeds) differ; ~1000 page reads on a 7B model
 *   input       a 64-bit FNV-1a over the input file's bytes (decompressed:
 *               the same requests gzip'ed or not are the same input)
 *   generation  the command line's effective settings (diffu_jobman_settings:
 *               max_new_tokens, steps, alg, temperature, ..., n, system,
 *               prefill, format, emit_ids)
 *   diffu       the build id (version + git revision)
 * The run id (16 hex digits) hashes the model fingerprint and the generation
 * settings, not the input: the shards of one job array (different inputs)
 * share it, so `diffu merge` can tell shards of one run from shards of two.
 *
 * The sidecar OUTPUT.manifest.json is written at the first run (replaced
 * atomically: temporary file, fsync, rename, fsync of the directory). A rerun
 * compares its identity with it (diffu_jobman_check):
 *   - the output holds no record yet: the manifest is (re)written: a new run;
 *   - model, input or a generation setting differ: refused, one line naming
 *     every difference ("temperature 0.5 -> 1.5; model tiny-a (fp ...) ->
 *     tiny-b (fp ...)"), unless allow_change (the command's
 *     --allow-run-change): then the manifest's current identity becomes this
 *     run's and the previous one goes to its "history" with what changed;
 *   - only the diffu build differs: allowed; noted in the history;
 *   - records but no manifest (an older diffu, or it was deleted): refused
 *     unless allow_change (the records are adopted as this run's).
 * Every record carries {"run": {"id", "model", "model_fingerprint", "diffu"}}
 * (diffu_jobman_record_json, through diffu_jobout_opts.run_json) next to its
 * effective "params".
 *
 * Not collective (the coordinator rank). Strings are borrowed for each call. */
#ifndef DIFFU_JOB_MANIFEST_H
#define DIFFU_JOB_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "job_input.h"
#include "log.h"
#include "tokenizer.h"

typedef struct diffu_jobman_ident {
    const char *diffu_version;    /* build id */
    const char *model_path;
    uint64_t model_fingerprint;
    const char *input_path;
    uint64_t input_fingerprint;   /* diffu_jobman_input_fingerprint */
    int requests;                 /* accepted requests */
    long samples;                 /* their samples */
    const char *settings_json;    /* diffu_jobman_settings: one flat JSON object */
} diffu_jobman_ident;

/* FNV-1a 64 over the (decompressed) bytes of the input file; on a read
 * failure 0 with err (err->msg[0] is 0 on success). */
uint64_t diffu_jobman_input_fingerprint(const char *path, diffu_err *err);
/* The model fingerprint described above. */
typedef struct diffu_ckpt diffu_ckpt;
uint64_t diffu_jobman_model_fingerprint(const diffu_ckpt *c);

/* The effective generation settings of a job's command line as a flat JSON
 * object appended to out: the request defaults (io->defaults, io->n,
 * io->system, io->prefill) and the output's format and emit_ids. */
void diffu_jobman_settings(const diffu_jobin_opts *io, const char *format, int emit_ids, diffu_text *out);

/* The run id: 16 hex digits + NUL into id[17]. */
void diffu_jobman_run_id(const diffu_jobman_ident *id, char out[17]);

/* The model's name: the basename of its path (trailing '/' ignored). */
void diffu_jobman_model_name(const char *model_path, char *buf, size_t cap);

/* {"id":"...","model":"...","model_fingerprint":"...","diffu":"..."} appended to out. */
void diffu_jobman_record_json(const diffu_jobman_ident *id, diffu_text *out);

/* OUTPUT.manifest.json into buf (snprintf semantics). */
int diffu_jobman_path(const char *output, char *buf, size_t cap);

/* Compare this run with the output's manifest and write / update it (see
 * above). records: the complete records the output holds now. 0: go on (note
 * holds a line to print, or ""); -1 with err: refused or the manifest cannot
 * be read or written (one line naming the file and what differs). */
int diffu_jobman_check(const char *output, const diffu_jobman_ident *id, long records, int allow_change, char *note,
                       size_t note_cap, diffu_err *err);

/* ---- the batch job's hook (coordinator/job.c: diffu_job_open) --------------------------- */

/* This run's identity: the model's fingerprint (opens its checkpoint's
 * headers), the input's, the settings, the record fragment. Owns its strings.
 * NULL with err (the checkpoint cannot be read). */
typedef struct diffu_jobman diffu_jobman;
diffu_jobman *diffu_jobman_begin(const char *model_path, const char *diffu_version, const diffu_jobin *in,
                                 const diffu_jobin_opts *io, const char *format, int emit_ids, diffu_err *err);
/* The "run" object for diffu_jobout_opts.run_json (lives as long as m). */
const char *diffu_jobman_run_json(const diffu_jobman *m);
const diffu_jobman_ident *diffu_jobman_get_ident(const diffu_jobman *m);
/* diffu_jobman_check on output; a note goes to stderr. 0 or -1 with err. */
int diffu_jobman_commit(diffu_jobman *m, const char *output, long records, int allow_change, diffu_err *err);
void diffu_jobman_free(diffu_jobman **m);

#endif
