/* tokenizer_int.h — PRIVATE to model/tokenizer*.c: the tokenizer's internal
 * layout shared by tokenizer_load.c (files -> tables), tokenizer_encode.c
 * (added tokens, NFC, regex, BPE) and tokenizer_decode.c (ids -> text).
 * Everything else includes tokenizer.h only. */
#ifndef DIFFU_TOKENIZER_INT_H
#define DIFFU_TOKENIZER_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <pthread.h>
#include <stdint.h>

#include "json.h"
#include "tokenizer.h"

/* ---- hashing ------------------------------------------------------------ */

static inline uint64_t tok_hash_bytes(const void *p, size_t n) {
    /* FNV-1a over 8-byte words, then a final avalanche (splitmix64). */
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        __builtin_memcpy(&w, s, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) w |= (uint64_t)s[i] << (8 * i);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

static inline uint64_t tok_mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* bytes -> id, open addressing; keys live in the tokenizer's pools. */
typedef struct {
    uint32_t *slot; /* id + 1, 0 = empty */
    size_t mask;
} tok_strmap;

/* (left id, right id) -> (rank, merged id), open addressing; one 16-byte
 * slot per entry so a lookup touches one cache line. */
typedef struct {
    uint64_t key; /* (left << 32 | right) + 1, 0 = empty */
    uint32_t rank;
    int32_t merged;
} tok_pairslot;
typedef struct {
    tok_pairslot *slot;
    size_t mask;
} tok_pairmap;

/* ---- added tokens ------------------------------------------------------- */

enum {
    ADDED_SPECIAL = 1,
    ADDED_NORMALIZED = 2,
    ADDED_LSTRIP = 4,
    ADDED_RSTRIP = 8,
    ADDED_SINGLE_WORD = 16,
};

typedef struct {
    char *content; /* as matched: the NFC form for normalized tokens */
    size_t len;
    int32_t id;
    int flags;
} tok_added;

/* All tokens of one matching pass (raw or normalized), indexed by first byte
 * for a leftmost-longest scan. */
typedef struct {
    int32_t *order;       /* indexes into tok->added, grouped by first byte, longest first */
    uint32_t start[257];  /* order[start[b] .. start[b+1]) begin with byte b */
    size_t n;
} tok_matcher;

/* ---- pre-tokenizer ------------------------------------------------------ */

enum { PRE_SPLIT = 1, PRE_BYTELEVEL = 2 };
enum { SPLIT_ISOLATED = 0, SPLIT_REMOVED = 1 };

typedef struct {
    int kind;
    pcre2_code *re;       /* NULL for ByteLevel with use_regex false */
    int behavior;         /* SPLIT_* */
    int add_prefix_space; /* ByteLevel */
} tok_prestep;

#define TOK_MAX_PRESTEPS 8

/* ---- per-thread scratch -------------------------------------------------- */

typedef struct {
    uint64_t hash;
    uint32_t key_off, ids_off;
    uint16_t key_len, n_ids; /* key_len 0 = empty slot */
} tok_wslot;

typedef struct tok_scratch {
    struct tok_scratch *next_free, *next_all;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jstack;
    diffu_text repaired, norm;
    /* word cache: words of <= TOK_CACHE_MAX_WORD bytes */
    tok_wslot *wslot;
    size_t wmask, wcount;
    char *wkeys;
    size_t wkeys_len, wkeys_cap;
    int32_t *wids;
    size_t wids_len, wids_cap;
    /* BPE work arrays */
    struct tok_sym *sym;
    struct tok_merge *heap;
    size_t sym_cap, heap_cap;
} tok_scratch;

#define TOK_CACHE_MAX_WORD 255
#define TOK_CACHE_SLOTS (1u << 17)

/* ---- the tokenizer ------------------------------------------------------- */

enum { TOKF_PRESENT = 1, TOKF_SPECIAL = 2, TOKF_ADDED = 4 };

struct diffu_tokenizer {
    int32_t n_ids;    /* max id + 1 */
    int32_t n_tokens; /* ids that have a token */

    /* per id [n_ids]: what it decodes to, and flags */
    uint32_t *dec_off, *dec_len;
    char *dec_pool;
    size_t dec_pool_len;
    uint8_t *flags;

    /* BPE model, on raw bytes. vkey: the raw bytes a model-vocabulary entry
     * spells in the byte-level alphabet (vkey_len UINT32_MAX: not such an entry) */
    uint32_t *vkey_off, *vkey_len;
    char *vkey_pool;
    tok_strmap vocab;     /* model vocab: raw bytes -> id (entries spelled in the byte-level alphabet) */
    int32_t byte_id[256]; /* the single-byte token of each byte, -1 if none */
    tok_pairmap merges;
    int32_t n_merges;
    int ignore_merges;
    int32_t unk_id; /* -1: unknown bytes are dropped (tokenizers with unk_token null) */
    int fuse_unk;

    /* added tokens, and the two matching passes */
    tok_added *added;
    size_t n_added;
    tok_matcher match_raw, match_norm;

    int nfc; /* normalizer: 0 none, 1 NFC */
    tok_prestep pre[TOK_MAX_PRESTEPS];
    int n_pre;

    diffu_special_ids special;

    pthread_mutex_t pool_mu;
    tok_scratch *pool_free, *pool_all;
};

/* tokenizer_encode.c */
void tok_scratch_free_all(diffu_tokenizer *tok);
/* Compile a pre-tokenizer regex (tokenizers/Oniguruma syntax) with PCRE2;
 * \s \S \p{..} \P{..} are rewritten to explicit classes from utf8proc so the
 * Unicode data is utf8proc's (the same as NFC's). NULL + err on failure. */
pcre2_code *tok_regex_compile(const char *pattern, size_t len, int literal, diffu_err *err);
/* Build match_raw / match_norm from tok->added. */
void tok_matchers_build(diffu_tokenizer *tok);

/* tokenizer_load.c */
int32_t tok_strmap_get(const diffu_tokenizer *tok, const tok_strmap *m, const char *s, size_t n);
int tok_pairmap_get(const tok_pairmap *m, int32_t a, int32_t b, uint32_t *rank, int32_t *merged);

/* The Qwen2 pre-tokenizer regex (also Dream's tokenization_dream.py). */
extern const char TOK_QWEN2_PATTERN[];

/* ---- loading: tokenizer_load.c (shared), tokenizer_json.c, tokenizer_legacy.c */

/* What a reader collects before tok_build makes the tables (strings point
 * into the reader's JSON documents or buffers, alive until tok_build returns). */
typedef struct {
    const char *s;
    size_t n;
    int32_t id;
} tok_kv;

typedef struct {
    const char *a, *b; /* left / right token strings (byte-level spelling) */
    size_t an, bn;
} tok_merge_str;

typedef struct {
    const char *file; /* for messages */
    tok_kv *vocab;
    size_t n_vocab;
    tok_merge_str *merges;
    size_t n_merges;
    const char *merges_file;  /* file the merges come from (messages) */
    const char *merges_field; /* "model.merges" or "merges.txt" */
    tok_added *added;
    size_t n_added;
    const char *added_file;
    int ignore_merges, fuse_unk;
    const char *unk;
    size_t unk_n;
    int nfc;
    /* special token names from tokenizer_config.json */
    const char *cfg_file;
    const char *named[5]; /* bos eos pad unk mask */
    const char **extra_special;
    size_t n_extra_special;
} tok_builder;

/* The tables from bd (takes bd->added); NULL with err on a bad vocabulary / merge / id. */
diffu_tokenizer *tok_build(tok_builder *bd, diffu_err *err);
void tok_builder_free(tok_builder *bd);
/* tokenizer_config.json of dir (optional): special token names into bd; *doc keeps its strings. */
int tok_load_config(tok_builder *bd, const char *dir, diffu_json_doc **doc, char **cfg_path, diffu_err *err);
/* A {"token": id, ...} object (model.vocab or vocab.json) into bd->vocab; field names it in errors. */
int tok_read_vocab_object(tok_builder *bd, const diffu_json *v, const char *file, const char *field, diffu_err *err);
char *tok_xmemdup(const char *s, size_t n);
int tok_file_exists(const char *p);
char *tok_path_join(const char *dir, const char *name); /* malloc'd */
/* The two readers: NULL with err. */
diffu_tokenizer *tok_load_json(const char *file, const char *dir, diffu_err *err);
diffu_tokenizer *tok_load_legacy(const char *dir, diffu_err *err);

#endif
