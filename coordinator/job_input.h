/* job_input.h — the request file of a batch job (`diffu generate --input`):
 * JSONL or JSONL.gz, one request per line, read and validated in full before
 * any work starts.
 *
 * A line is a JSON object:
 *   {"id": ID, "prompt": TEXT, ...}          raw completion of TEXT
 *   {"id": ID, "messages": [MSG...], ...}    the DiffuCoder chat prompt (chat.h)
 * ID is a non-empty string (no control characters, <= 1024 bytes) or an
 * integer (MBPP's task_id; kept as an integer in the output). "task_id" may
 * stand for "id" (HumanEval / MBPP / EvalPlus files read as they are).
 * MSG is {"role": "system"|"user"|"assistant", "content": TEXT}; one turn:
 * an optional system message, one user message, an optional final assistant
 * message (its content is the assistant prefill).
 * Optional per-request overrides (absent or null: the command-line default):
 *   max_new_tokens int [1, 2^20]   steps int [1, 2^24]    n int [1, 65536]
 *   temperature num [0, 1e6]       top_p num (0, 1]       top_k int [0, 2^30]
 *   alg "origin"|"maskgit_plus"|"topk_margin"|"entropy"   alg_temp num [0, 1e6]
 *   seed int [0, 2^63)             block_length int [0, 2^20]  (0: off)
 *   threshold num [0, 1] (0: off)  prefill string | true (the paper's eval
 *                                  prefill) | false (none); chat requests only
 * and then diffu_denoise_params_check (denoise.h) on the merged parameters.
 * Fields of HumanEval / MBPP / EvalPlus records (entry_point, test,
 * canonical_solution, text, code, test_list, test_setup_code,
 * challenge_test_list, test_imports, source_file, contract, base_input,
 * plus_input, atol, declaration, example_test) and "metadata" (any value) are
 * accepted and kept, unvalidated, as the request's metadata. Any other field
 * is an error (with a "did you mean" when a known name is close).
 *
 * File rules: a UTF-8 BOM before the first line is skipped; CRLF line endings
 * are accepted; blank (whitespace-only) lines are skipped; a line longer than
 * max_line bytes is rejected without being held in memory. A file named *.gz
 * must be gzip (any number of members); a gzip file not named *.gz is read as
 * gzip too. An empty file, a file of blank lines only, an unreadable file, or
 * a file named .gz that is not gzip fail diffu_jobin_open. A damaged gzip
 * file is one reject at the first line lost, and the lines before it run:
 * truncated (the file ends inside a member): every complete line inflated
 * before the end is kept (a deflate prefix is exact); corrupt (bad CRC, bad
 * data, junk after a member): nothing from the damaged member on is used (a
 * first pass checks every member before any line is read, for regular files).
 *
 * Bad lines are REJECTS, not failures: each is recorded with its line number,
 * the field at fault, one line of reason and the raw line, and the other lines
 * are accepted. Strict mode (refuse the whole file when anything is rejected)
 * is the caller's policy: check diffu_jobin_n_rejects(). Duplicate ids: every
 * line after the first with the same id is rejected, whether or not the first
 * was accepted (so a rerun after fixing the first one does not change which
 * line owns the id). Integer 7 and string "7" are the same id.
 *
 * Prompt length: with a count callback and max_context > 0, a request is
 * rejected when prompt tokens + max_new_tokens > max_context. Counters for
 * the real tokenizer (diffu_jobin_count_tokenizer) and a byte stand-in
 * (diffu_jobin_count_bytes, one token per byte) are provided.
 *
 * Ownership: diffu_jobin_open returns a handle the caller frees with
 * diffu_jobin_free; requests and rejects are owned by it and live as long as
 * it. Thread-safety: read-only after open (any number of threads may read).
 * Not collective (the coordinator reads the file; the runtime distributes the
 * work). */
#ifndef DIFFU_JOB_INPUT_H
#define DIFFU_JOB_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "denoise.h"
#include "log.h"
#include "tokenizer.h"

#define DIFFU_JOBIN_MAX_LINE ((size_t)64 << 20) /* default line limit, bytes */
#define DIFFU_JOBIN_MAX_ID 1024                 /* bytes */
#define DIFFU_JOBIN_MAX_N 65536

typedef enum { DIFFU_JOBIN_PROMPT = 0, DIFFU_JOBIN_CHAT = 1 } diffu_jobin_kind;

typedef struct diffu_jobin_req {
    const char *id;         /* NUL-terminated, no control characters; integers in decimal */
    size_t id_len;
    int id_is_int;          /* the id was a JSON integer */
    const char *id_field;   /* "id" or "task_id": where the id came from */
    int line;               /* 1-based physical line of the input file */
    int index;              /* 0-based among accepted requests, in file order */
    uint32_t rng_key;       /* FNV-1a of the id: a request number for the denoiser's random
                               draws that does not move when other lines change (resume) */
    diffu_jobin_kind kind;
    const char *prompt;     /* PROMPT: the text; CHAT: the user message's content */
    size_t prompt_len;
    const char *system;     /* CHAT: the system message (the request's or the default); else NULL */
    const char *prefill;    /* CHAT: the assistant prefill, or NULL for none; PROMPT: NULL */
    int n;                  /* samples */
    diffu_denoise_params params; /* the defaults with this request's overrides; steps resolved */
    int prompt_tokens;      /* from the count callback; -1 without one */
    const char *meta;       /* the metadata fields as one compact JSON object, or NULL */
    size_t meta_len;
} diffu_jobin_req;

typedef struct diffu_jobin_reject {
    int line;               /* 1-based line; for a damaged gzip tail, the first line lost */
    const char *field;      /* "temperature", "messages[1].role", ...; NULL when not one field */
    const char *id;         /* the line's id when it could be read, else NULL */
    const char *reason;     /* one line; names the field when there is one */
    const char *raw;        /* the line as read, without its line ending (may be cut: raw_len < raw_total) */
    size_t raw_len, raw_total;
} diffu_jobin_reject;

typedef struct diffu_jobin_stats {
    int lines;              /* physical lines read */
    int blank;              /* blank lines skipped */
    int crlf;               /* lines that ended in CRLF */
    int bom;                /* 1: a BOM was skipped */
    int gz;                 /* 1: the file was gzip */
    long samples;           /* sum of n over accepted requests */
} diffu_jobin_stats;

/* Returns the prompt's token count (>= 0), or -1 with err. */
typedef int (*diffu_jobin_count_fn)(void *user, const diffu_jobin_req *req, diffu_err *err);

typedef struct diffu_jobin_opts {
    diffu_denoise_params defaults; /* the command line's, complete (mask_id, end ids, eps, factor,
                                      early_stop...); steps <= 0: each request's steps = its
                                      max_new_tokens */
    int n;                         /* default samples per request */
    const char *system;            /* default system message (NULL: DIFFU_CHAT_DEFAULT_SYSTEM); borrowed */
    const char *prefill;           /* default assistant prefill for chat requests (NULL: none); borrowed */
    int vocab;                     /* for diffu_denoise_params_check */
    int max_context;               /* > 0: prompt tokens + max_new_tokens must fit (needs count_tokens) */
    diffu_jobin_count_fn count_tokens; /* NULL: prompt_tokens = -1, no context check */
    void *count_user;
    size_t max_line;               /* 0: DIFFU_JOBIN_MAX_LINE */
} diffu_jobin_opts;

/* defaults = diffu_denoise_params_default with max_new_tokens 256, steps 0
 * (= max_new_tokens); n 1; vocab 0 (must be set); everything else off. */
void diffu_jobin_opts_default(diffu_jobin_opts *o);

/* Read and validate the whole file. NULL with err on a file-level failure
 * (cannot open or read, named .gz but not gzip, empty, only blank lines, bad
 * defaults). Otherwise a handle with the accepted requests and the rejects. */
typedef struct diffu_jobin diffu_jobin;
diffu_jobin *diffu_jobin_open(const char *path, const diffu_jobin_opts *o, diffu_err *err);
/* Frees and sets *in to NULL; NULL is a no-op. */
void diffu_jobin_free(diffu_jobin **in);

/* The input file's path as given to diffu_jobin_open (owned by the handle). */
const char *diffu_jobin_path(const diffu_jobin *in);
int diffu_jobin_count(const diffu_jobin *in);
const diffu_jobin_req *diffu_jobin_get(const diffu_jobin *in, int i);
/* The accepted request with this id, or NULL. */
const diffu_jobin_req *diffu_jobin_find(const diffu_jobin *in, const char *id, size_t id_len);
const diffu_jobin_stats *diffu_jobin_get_stats(const diffu_jobin *in);

int diffu_jobin_n_rejects(const diffu_jobin *in);
const diffu_jobin_reject *diffu_jobin_get_reject(const diffu_jobin *in, int i);
/* "PATH:LINE: reason" into buf (snprintf semantics). */
int diffu_jobin_format_reject(const diffu_jobin *in, int i, char *buf, size_t cap);
/* The first max rejects on f, one formatted line each, then "... and N more"
 * (+ " in MORE_IN" when more_in is not NULL). */
void diffu_jobin_list_rejects(const diffu_jobin *in, FILE *f, long max, const char *more_in);

/* Write the rejects as JSONL to path, replacing it atomically (temporary file
 * + rename): {"file", "line", "field", "id", "reason", "raw"} per reject; a raw
 * line that is not valid UTF-8 is written as "raw_base64" instead; a cut one
 * has "raw_truncated": true and "raw_bytes". With no rejects, a stale file at
 * path is removed. 0, or -1 with err. */
int diffu_jobin_write_rejects(const diffu_jobin *in, const char *path, diffu_err *err);

/* Append a one-line JSON description of an accepted request (what `diffu
 * jobcheck` prints): {"line","id","n","mode","prompt_tokens","params":{...}}. */
void diffu_jobin_describe(const diffu_jobin_req *r, diffu_text *out);
/* Append the request's parameters as a JSON object (shared with the output
 * records): max_new_tokens, steps, alg, temperature, top_p, top_k, alg_temp,
 * seed, eps, block_length, threshold, factor, early_stop, n, and for chat
 * requests system and prefill. */
void diffu_jobin_params_json(const diffu_jobin_req *r, diffu_text *out);
/* The denoising members of that object ("max_new_tokens": ... "early_stop": ...), no braces
 * (shared with the run manifest's settings, job_manifest.h). */
void diffu_jobin_put_params(const diffu_denoise_params *p, diffu_text *out);

/* ---- prompt tokens ------------------------------------------------------- */

/* The prompt as the model sees it: raw text, or the chat template applied
 * (diffu_chat_prompt_text). Appended to out. */
void diffu_jobin_prompt_text(const diffu_jobin_req *r, diffu_text *out);
/* The prompt's ids with the real tokenizer (raw: encode; chat:
 * diffu_chat_prompt_ids). Appended to out. 0 or -1 with err. */
int diffu_jobin_prompt_ids(const diffu_jobin_req *r, const diffu_tokenizer *tok, diffu_ids *out, diffu_err *err);
/* Count callbacks: user is a const diffu_tokenizer * / unused. */
int diffu_jobin_count_tokenizer(void *tok, const diffu_jobin_req *r, diffu_err *err);
int diffu_jobin_count_bytes(void *unused, const diffu_jobin_req *r, diffu_err *err);

#endif
