/* json.h — a small strict JSON reader (RFC 8259) for config.json, safetensors
 * headers, tokenizer.json and JSONL job input.
 *
 * The document owns every node and string (one arena); free it with
 * diffu_json_free(). Strings are decoded to UTF-8 and NUL-terminated (they may
 * also contain NUL from \u0000: use .len). Invalid UTF-8, lone surrogates,
 * trailing garbage, depth > 512 are errors, reported as "line L col C: what".
 * Object members keep their source order; duplicate keys are kept (callers
 * that care check for them). Not collective; a document is not shared between
 * threads while being parsed, and is read-only afterwards. */
#ifndef DIFFU_JSON_H
#define DIFFU_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

typedef enum { DJ_NULL, DJ_BOOL, DJ_NUM, DJ_STR, DJ_ARR, DJ_OBJ } diffu_json_type;

typedef struct diffu_json diffu_json;
struct diffu_json {
    diffu_json_type type;
    int line; /* 1-based source line where the value starts */
    union {
        int b;                                                      /* DJ_BOOL */
        struct { double d; int is_int; int64_t i; } num;            /* DJ_NUM */
        struct { char *s; size_t len; } str;                        /* DJ_STR */
        struct { diffu_json **items; char **keys; size_t *klen; size_t n; } kids; /* DJ_ARR (keys NULL), DJ_OBJ */
    } u;
};

typedef struct diffu_json_doc diffu_json_doc;

/* Parse text[0..len). Returns NULL and fills err on failure. */
diffu_json_doc *diffu_json_parse(const char *text, size_t len, diffu_err *err);
void diffu_json_free(diffu_json_doc *doc);
const diffu_json *diffu_json_root(const diffu_json_doc *doc);

/* Read and parse a whole file; err names the file. */
diffu_json_doc *diffu_json_parse_file(const char *path, diffu_err *err);

/* Object member by key (first match, linear scan), or NULL. */
const diffu_json *diffu_json_get(const diffu_json *obj, const char *key);
const char *diffu_json_type_name(diffu_json_type t);

/* Typed getters for object members. Each returns 0 on success, 1 if the key is
 * absent (out untouched), -1 with err "field 'key': expected ..." on a wrong
 * type or out-of-range value. */
int diffu_json_get_int(const diffu_json *obj, const char *key, int64_t lo, int64_t hi, int64_t *out, diffu_err *err);
int diffu_json_get_num(const diffu_json *obj, const char *key, double *out, diffu_err *err);
int diffu_json_get_bool(const diffu_json *obj, const char *key, int *out, diffu_err *err);
int diffu_json_get_str(const diffu_json *obj, const char *key, const char **out, diffu_err *err);

/* Write s[0..len) as a JSON string literal (with quotes) to buf; returns bytes
 * needed (excluding NUL), like snprintf. Non-ASCII UTF-8 is written as is. */
size_t diffu_json_escape(char *buf, size_t cap, const char *s, size_t len);

#endif
