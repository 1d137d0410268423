/* genparam.h — the one table of generation parameters: name (the JSON key of
 * a request and of a record's "params"), command-line flag, type, range,
 * default and help. It drives
 *   - the command lines of `diffu generate` and `diffu jobcheck` (their long
 *     options, help lines and value checks: cli/genopts.c),
 *   - the per-request overrides of a batch job's input lines
 *     (coordinator/job_input.c: a request may set every row of the table),
 *   - the "params" of every record and of the run manifest
 *     (diffu_genparam_put_json, in table order),
 * so a value one place accepts is a value every place accepts, with the same
 * range, and a record names every parameter the sample ran with.
 *
 * The values live in diffu_denoise_params (denoise.h), except `n` (samples
 * per request), which belongs to the request: its row has no field
 * (DIFFU_GP_NO_FIELD) and the caller stores it.
 * Notes per row:
 *   steps           0 in the params means "unset: max_new_tokens" (the caller
 *                   resolves it per request); a given value is in [1, 2^24].
 *   block_length, threshold, factor, top_k, alg_temp:  0 is "off".
 *   top_p           (0, 1]; 1 is off (so is the params' initial 0).
 *   seed            [0, 2^63 - 1] (JSON integers are int64).
 *   early_stop      a flag on the command line, a boolean in JSON.
 * The table is static data: no allocation, thread-safe, not collective. */
#ifndef DIFFU_GENPARAM_H
#define DIFFU_GENPARAM_H

#include <stddef.h>

#include "config.h"
#include "denoise.h"
#include "log.h"
#include "tokenizer.h"

typedef enum {
    DIFFU_GP_INT,  /* int field, integer in [lo, hi] */
    DIFFU_GP_NUM,  /* double field, number in [lo, hi] ((lo, hi] with lo_open) */
    DIFFU_GP_SEED, /* uint64_t field, integer in [lo, hi] */
    DIFFU_GP_ALG,  /* diffu_alg field: origin | maskgit_plus | topk_margin | entropy */
    DIFFU_GP_FLAG, /* int field 0/1: a flag without a value; a JSON boolean */
    DIFFU_GP_CACHE /* int field, a diffu_cache_mode: none | prefix | dual | delayed (kvpolicy.h) */
} diffu_gp_type;

enum { DIFFU_GP_NO_FIELD = -1 };

typedef struct diffu_genparam {
    const char *name;    /* JSON key and record key: "top_p" */
    const char *flag;    /* the long option without "--": "top-p" */
    const char *metavar; /* "P" (NULL for a flag) */
    diffu_gp_type type;
    double lo, hi;       /* the range (integers: exact below 2^53, and INT64_MAX for seed) */
    int lo_open;         /* the lower bound excluded */
    long field;          /* offsetof(diffu_denoise_params, ...), or DIFFU_GP_NO_FIELD */
    int record;          /* written in a record's "params" by diffu_genparam_put_json: 1 always,
                            2 only when not 0 (the KV-cache rows: records of exact runs stay as they were) */
    const char *help;    /* one line, with the default */
} diffu_genparam;

/* Rows whose value is one of named choices (alg, cache): the value of a name
 * (-1 if unknown), and the choices as one phrase for messages. */
int diffu_genparam_is_enum(const diffu_genparam *g);
int diffu_genparam_enum_parse(const diffu_genparam *g, const char *s);
const char *diffu_genparam_enum_choices(const diffu_genparam *g);

/* The rows, in the order of a record's "params". */
int diffu_genparam_count(void);
const diffu_genparam *diffu_genparam_at(int i);
/* By JSON name ("top_p"); NULL if none. */
const diffu_genparam *diffu_genparam_find(const char *name);

/* The range as text for messages: "[1, 1048576]", "(0, 1]" (buf >= 64 bytes). */
const char *diffu_genparam_range(const diffu_genparam *g, char *buf, size_t cap);

/* Whether an integer / a number is in the row's range. */
int diffu_genparam_int_ok(const diffu_genparam *g, long long v);
int diffu_genparam_num_ok(const diffu_genparam *g, double v);

/* Store a checked value into the params (no-op for a row without a field):
 * set_int for INT / SEED / FLAG / ALG (the alg's enum value), set_num for NUM. */
void diffu_genparam_set_int(const diffu_genparam *g, diffu_denoise_params *p, long long v);
void diffu_genparam_set_num(const diffu_genparam *g, diffu_denoise_params *p, double v);

/* The record's "params" members (no braces): "max_new_tokens":..,"steps":..,
 * every row with `record`, in table order (t: tokenizer.h's text buffer). */
void diffu_genparam_put_json(const diffu_denoise_params *p, diffu_text *t);

/* The model's part of the generation parameters, one rule for every command
 * (generate, jobcheck, the batch job, the distributed run's rank 0):
 * config.json into cfg; the tokenizer when the checkpoint has one
 * (tokenizer.json or vocab.json; its ids must fit vocab_size) into *tok (NULL
 * when it has none; the caller frees it); p->mask_id from the config; the end
 * ids: end_cli[n_end_cli] when given, else the config's eos_token_id plus
 * <|dlm_pad|> when the tokenizer has it (p->early_stop with none is refused).
 * 0, or -1 with err naming the file. */
int diffu_genparam_model(const char *model, const int32_t *end_cli, int n_end_cli, diffu_config *cfg,
                         diffu_tokenizer **tok, diffu_denoise_params *p, diffu_err *err);

#endif
