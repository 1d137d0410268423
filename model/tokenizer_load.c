/* tokenizer_load.c — reading tokenizer.json (or vocab.json + merges.txt +
 * added_tokens.json) and tokenizer_config.json into the tables of
 * tokenizer_int.h. Semantics follow huggingface/tokenizers: BPE vocab/merges
 * (merges as "a b" strings or [a, b] pairs; a merge whose left, right or
 * merged token is not in the vocabulary is an error), added tokens with their
 * special/normalized/lstrip/rstrip/single_word flags, a normalizer of NFC (or
 * none), a pre-tokenizer of Split/ByteLevel steps, a ByteLevel decoder.
 * Anything else is rejected with a one-line "unsupported" error rather than
 * silently tokenizing differently. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "json.h"
#include "tokenizer_int.h"

const char TOK_QWEN2_PATTERN[] =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";

/* ---- byte-level alphabet (GPT-2 bytes_to_unicode) ------------------------ */

static uint32_t bl_char[256]; /* byte -> code point */
static int16_t bl_byte[0x144]; /* code point -> byte, -1 if not in the alphabet */
static pthread_once_t bl_once = PTHREAD_ONCE_INIT;

static void bl_init(void) {
    for (int i = 0; i < 0x144; i++) bl_byte[i] = -1;
    int n = 0;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        bl_char[b] = printable ? (uint32_t)b : (uint32_t)(256 + n++);
        bl_byte[bl_char[b]] = (int16_t)b;
    }
}

/* Decode one UTF-8 code point from valid UTF-8 (the JSON parser validated it). */
static uint32_t utf8_next(const unsigned char *s, size_t n, size_t *i) {
    unsigned char c = s[*i];
    if (c < 0x80) {
        (*i)++;
        return c;
    }
    int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
    uint32_t cp = c & (0x3F >> (len - 1));
    for (int k = 1; k < len && *i + k < n; k++) cp = (cp << 6) | (s[*i + k] & 0x3F);
    *i += len;
    return cp;
}

/* Map a token string spelled in the byte-level alphabet to the raw bytes it
 * stands for. Returns 1 and appends the bytes if every character is in the
 * alphabet, else 0 (out unchanged). */
static int bl_to_bytes(const char *s, size_t n, diffu_text *out) {
    size_t start = out->len;
    size_t i = 0;
    while (i < n) {
        uint32_t cp = utf8_next((const unsigned char *)s, n, &i);
        if (cp >= 0x144 || bl_byte[cp] < 0) {
            out->len = start;
            if (out->data) out->data[start] = 0;
            return 0;
        }
        char b = (char)bl_byte[cp];
        diffu_text_append(out, &b, 1);
    }
    return 1;
}

/* ---- hash maps ----------------------------------------------------------- */

static size_t pow2_at_least(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

int32_t tok_strmap_get(const diffu_tokenizer *tok, const tok_strmap *m, const char *s, size_t n) {
    if (!m->slot) return -1;
    size_t h = (size_t)tok_hash_bytes(s, n) & m->mask;
    for (;;) {
        uint32_t v = m->slot[h];
        if (!v) return -1;
        int32_t id = (int32_t)(v - 1);
        if (tok->vkey_len[id] == n && memcmp(tok->vkey_pool + tok->vkey_off[id], s, n) == 0) return id;
        h = (h + 1) & m->mask;
    }
}

static void strmap_put(diffu_tokenizer *tok, tok_strmap *m, int32_t id) {
    const char *s = tok->vkey_pool + tok->vkey_off[id];
    size_t n = tok->vkey_len[id];
    size_t h = (size_t)tok_hash_bytes(s, n) & m->mask;
    while (m->slot[h]) h = (h + 1) & m->mask;
    m->slot[h] = (uint32_t)id + 1;
}

int tok_pairmap_get(const tok_pairmap *m, int32_t a, int32_t b, uint32_t *rank, int32_t *merged) {
    if (!m->slot) return 0;
    uint64_t k = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t h = (size_t)tok_mix64(k) & m->mask;
    for (;;) {
        const tok_pairslot *e = &m->slot[h];
        if (e->key == k) {
            *rank = e->rank;
            *merged = e->merged;
            return 1;
        }
        if (!e->key) return 0;
        h = (h + 1) & m->mask;
    }
}

/* Insert or overwrite: a repeated merge takes its later rank, as the HashMap
 * collect in tokenizers' BpeBuilder::build does. */
static void pairmap_put(tok_pairmap *m, int32_t a, int32_t b, uint32_t rank, int32_t merged) {
    uint64_t k = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t h = (size_t)tok_mix64(k) & m->mask;
    while (m->slot[h].key && m->slot[h].key != k) h = (h + 1) & m->mask;
    m->slot[h] = (tok_pairslot){k, rank, merged};
}

/* ---- the builder: what both file layouts produce ------------------------- */

typedef struct {
    const char *s;
    size_t n;
    int32_t id;
} kv;

typedef struct {
    const char *a, *b; /* left / right token strings (byte-level spelling) */
    size_t an, bn;
} merge_str;

typedef struct {
    const char *file; /* for messages */
    kv *vocab;
    size_t n_vocab;
    merge_str *merges;
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
} builder;

static const char *NAMED_KEYS[5] = {"bos_token", "eos_token", "pad_token", "unk_token", "mask_token"};

static int cmp_kv_id(const void *x, const void *y) {
    const kv *a = x, *b = y;
    return a->id < b->id ? -1 : a->id > b->id;
}

static char *xmemdup(const char *s, size_t n) {
    char *r = diffu_xmalloc(n + 1);
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

/* Print a token for a message: at most 40 bytes, as is. */
static const char *tok_show(const char *s, size_t n, char *buf, size_t cap) {
    size_t k = n < 40 ? n : 40;
    if (k > cap - 4) k = cap - 4;
    memcpy(buf, s, k);
    strcpy(buf + k, n > k ? "..." : "");
    for (size_t i = 0; i < k; i++)
        if ((unsigned char)buf[i] < 0x20) buf[i] = '?';
    return buf;
}

static int32_t find_added(const diffu_tokenizer *tok, const char *s, size_t n) {
    for (size_t i = 0; i < tok->n_added; i++)
        if (tok->added[i].len == n && memcmp(tok->added[i].content, s, n) == 0) return tok->added[i].id;
    return -1;
}

/* A token named in the config or by content: an added token's content, else a
 * vocabulary entry (spelled in the byte-level alphabet, as
 * convert_tokens_to_ids does). */
static int32_t lookup_token_string(const diffu_tokenizer *tok, const char *s) {
    size_t n = strlen(s);
    int32_t id = find_added(tok, s, n);
    if (id >= 0) return id;
    diffu_text raw = {0};
    if (bl_to_bytes(s, n, &raw)) id = tok_strmap_get(tok, &tok->vocab, raw.data ? raw.data : "", raw.len);
    diffu_text_free(&raw);
    return id;
}

static diffu_tokenizer *build(builder *bd, diffu_err *err) {
    pthread_once(&bl_once, bl_init);
    char sbuf[64], sbuf2[64];
    diffu_tokenizer *tok = diffu_xcalloc(1, sizeof *tok);
    pthread_mutex_init(&tok->pool_mu, NULL);
    tok->unk_id = -1;
    tok->nfc = bd->nfc;
    tok->ignore_merges = bd->ignore_merges;
    tok->fuse_unk = bd->fuse_unk;

    /* ids: unique over the vocabulary, then over the added tokens */
    int32_t max_id = -1;
    qsort(bd->vocab, bd->n_vocab, sizeof *bd->vocab, cmp_kv_id);
    for (size_t i = 0; i < bd->n_vocab; i++) {
        if (i > 0 && bd->vocab[i].id == bd->vocab[i - 1].id) {
            diffu_err_set(err, "%s: field 'model.vocab': id %d is given to both '%s' and '%s'", bd->file,
                          bd->vocab[i].id, tok_show(bd->vocab[i - 1].s, bd->vocab[i - 1].n, sbuf, sizeof sbuf),
                          tok_show(bd->vocab[i].s, bd->vocab[i].n, sbuf2, sizeof sbuf2));
            goto fail;
        }
        if (bd->vocab[i].id > max_id) max_id = bd->vocab[i].id;
    }
    for (size_t i = 0; i < bd->n_added; i++) {
        for (size_t j = 0; j < i; j++)
            if (bd->added[j].id == bd->added[i].id) {
                diffu_err_set(err, "%s: field 'added_tokens': id %d is given to both '%s' and '%s'", bd->added_file,
                              bd->added[i].id, tok_show(bd->added[j].content, bd->added[j].len, sbuf, sizeof sbuf),
                              tok_show(bd->added[i].content, bd->added[i].len, sbuf2, sizeof sbuf2));
                goto fail;
            }
        if (bd->added[i].id > max_id) max_id = bd->added[i].id;
    }
    if (max_id < 0) {
        diffu_err_set(err, "%s: field 'model.vocab': the vocabulary is empty", bd->file);
        goto fail;
    }
    int32_t n = max_id + 1;
    tok->n_ids = n;
    tok->vkey_off = diffu_xcalloc((size_t)n, sizeof(uint32_t));
    tok->vkey_len = diffu_xmalloc((size_t)n * sizeof(uint32_t));
    tok->dec_off = diffu_xcalloc((size_t)n, sizeof(uint32_t));
    tok->dec_len = diffu_xmalloc((size_t)n * sizeof(uint32_t));
    tok->flags = diffu_xcalloc((size_t)n, 1);
    for (int32_t i = 0; i < n; i++) tok->vkey_len[i] = tok->dec_len[i] = UINT32_MAX;

    /* model vocabulary: raw bytes for BPE and for decoding */
    diffu_text vk = {0}, dec = {0};
    size_t n_bl = 0;
    for (size_t i = 0; i < bd->n_vocab; i++) {
        const kv *e = &bd->vocab[i];
        size_t off = vk.len;
        if (bl_to_bytes(e->s, e->n, &vk)) {
            tok->vkey_off[e->id] = (uint32_t)off;
            tok->vkey_len[e->id] = (uint32_t)(vk.len - off);
            n_bl++;
        }
        tok->flags[e->id] |= TOKF_PRESENT;
    }
    tok->vkey_pool = vk.data ? vk.data : diffu_xstrdup("");
    tok->vocab.mask = pow2_at_least(n_bl * 2 + 1) - 1;
    tok->vocab.slot = diffu_xcalloc(tok->vocab.mask + 1, sizeof(uint32_t));
    for (size_t i = 0; i < bd->n_vocab; i++) {
        int32_t id = bd->vocab[i].id;
        if (tok->vkey_len[id] == UINT32_MAX) continue;
        if (tok_strmap_get(tok, &tok->vocab, tok->vkey_pool + tok->vkey_off[id], tok->vkey_len[id]) >= 0) {
            diffu_err_set(err, "%s: field 'model.vocab': '%s' appears twice", bd->file,
                          tok_show(bd->vocab[i].s, bd->vocab[i].n, sbuf, sizeof sbuf));
            diffu_text_free(&dec);
            goto fail;
        }
        strmap_put(tok, &tok->vocab, id);
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        tok->byte_id[b] = tok_strmap_get(tok, &tok->vocab, &c, 1);
    }

    /* added tokens (normalized ones are matched, and decoded, in NFC form) */
    tok->n_added = bd->n_added;
    tok->added = bd->added;
    bd->added = NULL;
    bd->n_added = 0;
    for (size_t i = 0; i < tok->n_added; i++) {
        tok_added *a = &tok->added[i];
        if ((a->flags & ADDED_NORMALIZED) && tok->nfc) {
            diffu_text t = {0};
            diffu_utf8_nfc(a->content, a->len, &t);
            free(a->content);
            a->content = t.data ? t.data : diffu_xstrdup("");
            a->len = t.len;
        }
        tok->flags[a->id] |= TOKF_PRESENT | TOKF_ADDED;
        if (a->flags & ADDED_SPECIAL) tok->flags[a->id] |= TOKF_SPECIAL;
    }

    /* decode bytes per id: the token string through the byte-level decoder,
     * which keeps a string's own UTF-8 when any character is outside the
     * alphabet (tokenizers' ByteLevel::decode_chain) */
    {
        /* vocabulary strings by id (bd->vocab is sorted by id) */
        size_t vi = 0;
        for (int32_t id = 0; id < n; id++) {
            const char *s = NULL;
            size_t sn = 0;
            while (vi < bd->n_vocab && bd->vocab[vi].id < id) vi++;
            if (tok->flags[id] & TOKF_ADDED) {
                for (size_t k = 0; k < tok->n_added; k++)
                    if (tok->added[k].id == id) {
                        s = tok->added[k].content;
                        sn = tok->added[k].len;
                        break;
                    }
            } else if (vi < bd->n_vocab && bd->vocab[vi].id == id) {
                s = bd->vocab[vi].s;
                sn = bd->vocab[vi].n;
            }
            if (!s) continue;
            size_t off = dec.len;
            if (!bl_to_bytes(s, sn, &dec)) diffu_text_append(&dec, s, sn);
            tok->dec_off[id] = (uint32_t)off;
            tok->dec_len[id] = (uint32_t)(dec.len - off);
            tok->n_tokens++;
        }
        tok->dec_pool = dec.data ? dec.data : diffu_xstrdup("");
        tok->dec_pool_len = dec.len;
    }

    /* merges: left, right and merged token must all be in the vocabulary */
    tok->n_merges = (int32_t)bd->n_merges;
    tok->merges.mask = pow2_at_least(bd->n_merges * 2 + 1) - 1;
    tok->merges.slot = diffu_xcalloc(tok->merges.mask + 1, sizeof(tok_pairslot));
    {
        /* vocabulary string -> id, by the JSON spelling (merges name tokens so) */
        size_t cap = pow2_at_least(bd->n_vocab * 2 + 1), mask = cap - 1;
        int32_t *slot = diffu_xmalloc(cap * sizeof(int32_t));
        for (size_t i = 0; i < cap; i++) slot[i] = -1;
        for (size_t i = 0; i < bd->n_vocab; i++) {
            size_t h = (size_t)tok_hash_bytes(bd->vocab[i].s, bd->vocab[i].n) & mask;
            while (slot[h] >= 0) {
                const kv *o = &bd->vocab[slot[h]];
                if (o->n == bd->vocab[i].n && memcmp(o->s, bd->vocab[i].s, o->n) == 0) {
                    diffu_err_set(err, "%s: field 'model.vocab': '%s' appears twice", bd->file,
                                  tok_show(o->s, o->n, sbuf, sizeof sbuf));
                    free(slot);
                    goto fail;
                }
                h = (h + 1) & mask;
            }
            slot[h] = (int32_t)i;
        }
#define VOCAB_FIND(str, len, out)                                                          \
    do {                                                                                   \
        size_t h_ = (size_t)tok_hash_bytes((str), (len)) & mask;                           \
        (out) = -1;                                                                        \
        while (slot[h_] >= 0) {                                                            \
            const kv *o_ = &bd->vocab[slot[h_]];                                           \
            if (o_->n == (len) && memcmp(o_->s, (str), (len)) == 0) { (out) = o_->id; break; } \
            h_ = (h_ + 1) & mask;                                                          \
        }                                                                                  \
    } while (0)
        diffu_text cat = {0};
        for (size_t r = 0; r < bd->n_merges; r++) {
            const merge_str *m = &bd->merges[r];
            int32_t a, b, ab;
            VOCAB_FIND(m->a, m->an, a);
            VOCAB_FIND(m->b, m->bn, b);
            cat.len = 0;
            diffu_text_append(&cat, m->a, m->an);
            diffu_text_append(&cat, m->b, m->bn);
            VOCAB_FIND(cat.data, cat.len, ab);
            const char *bad = a < 0 ? m->a : b < 0 ? m->b : ab < 0 ? cat.data : NULL;
            size_t badn = a < 0 ? m->an : b < 0 ? m->bn : cat.len;
            if (bad) {
                diffu_err_set(err, "%s: field '%s[%zu]': merge names '%s', which is not in the vocabulary",
                              bd->merges_file, bd->merges_field, r, tok_show(bad, badn, sbuf, sizeof sbuf));
                diffu_text_free(&cat);
                free(slot);
                goto fail;
            }
            pairmap_put(&tok->merges, a, b, (uint32_t)r, ab);
        }
#undef VOCAB_FIND
        diffu_text_free(&cat);
        if (bd->unk) {
            int32_t u = -1;
            size_t h = (size_t)tok_hash_bytes(bd->unk, bd->unk_n) & mask;
            while (slot[h] >= 0) {
                const kv *o = &bd->vocab[slot[h]];
                if (o->n == bd->unk_n && memcmp(o->s, bd->unk, o->n) == 0) {
                    u = o->id;
                    break;
                }
                h = (h + 1) & mask;
            }
            if (u < 0) {
                diffu_err_set(err, "%s: field 'model.unk_token': '%s' is not in model.vocab", bd->file,
                              tok_show(bd->unk, bd->unk_n, sbuf, sizeof sbuf));
                free(slot);
                goto fail;
            }
            tok->unk_id = u;
        }
        free(slot);
    }

    /* special tokens named by the config are special too (transformers marks
     * them so in the backend), then the well-known ones by content */
    {
        int32_t *named_ids[5] = {&tok->special.bos, &tok->special.eos, &tok->special.pad, &tok->special.unk,
                                 &tok->special.mask};
        for (int k = 0; k < 5; k++) {
            *named_ids[k] = -1;
            if (!bd->named[k]) continue;
            int32_t id = lookup_token_string(tok, bd->named[k]);
            if (id < 0) {
                DLOG_WARN("%s: %s '%s' is not a token of the tokenizer; ignored", bd->cfg_file, NAMED_KEYS[k],
                          bd->named[k]);
                continue;
            }
            *named_ids[k] = id;
            tok->flags[id] |= TOKF_SPECIAL;
        }
        for (size_t k = 0; k < bd->n_extra_special; k++) {
            int32_t id = lookup_token_string(tok, bd->extra_special[k]);
            if (id >= 0) tok->flags[id] |= TOKF_SPECIAL;
        }
        tok->special.endoftext = lookup_token_string(tok, "<|endoftext|>");
        tok->special.im_start = lookup_token_string(tok, "<|im_start|>");
        tok->special.im_end = lookup_token_string(tok, "<|im_end|>");
        tok->special.dlm_pad = lookup_token_string(tok, "<|dlm_pad|>");
    }

    /* tokenizers ignores the ids in added_tokens when loading: a token gets its
     * vocabulary id, or the next id after the vocabulary, in file order (and
     * warns). diffu keeps the file's ids and warns where they would differ. */
    {
        int32_t next = (int32_t)bd->n_vocab;
        for (size_t i = 0; i < tok->n_added; i++) {
            const tok_added *a = &tok->added[i];
            diffu_text raw = {0};
            int32_t want = -1;
            if (bl_to_bytes(a->content, a->len, &raw)) want = tok_strmap_get(tok, &tok->vocab, raw.data, raw.len);
            diffu_text_free(&raw);
            for (size_t j = 0; j < i && want < 0; j++)
                if (tok->added[j].len == a->len && !memcmp(tok->added[j].content, a->content, a->len))
                    want = tok->added[j].id;
            if (want < 0) want = next++;
            if (want != a->id)
                DLOG_WARN("%s: added token '%s' has id %d; Hugging Face tokenizers would give it %d", bd->added_file,
                          tok_show(a->content, a->len, sbuf, sizeof sbuf), a->id, want);
        }
    }

    tok_matchers_build(tok);
    return tok;

fail:
    diffu_tokenizer_free(&tok);
    return NULL;
}

static void builder_free(builder *bd) {
    free(bd->vocab);
    free(bd->merges);
    for (size_t i = 0; i < bd->n_added; i++) free(bd->added[i].content);
    free(bd->added);
    free(bd->extra_special);
}

/* ---- tokenizer_config.json ---------------------------------------------- */

/* A special-token entry: "str" or {"content": "str", ...}. */
static const char *config_token(const diffu_json *v) {
    if (!v) return NULL;
    if (v->type == DJ_STR) return v->u.str.s;
    if (v->type == DJ_OBJ) {
        const diffu_json *c = diffu_json_get(v, "content");
        if (c && c->type == DJ_STR) return c->u.str.s;
    }
    return NULL;
}

static int read_config(builder *bd, const diffu_json *cfg, const char *file, diffu_err *err) {
    bd->cfg_file = file;
    if (cfg->type != DJ_OBJ) return diffu_err_set(err, "%s: expected a JSON object", file);
    for (int k = 0; k < 5; k++) {
        const diffu_json *v = diffu_json_get(cfg, NAMED_KEYS[k]);
        if (v && v->type != DJ_NULL && !config_token(v))
            return diffu_err_set(err, "%s: field '%s': expected a string or {\"content\": ...}", file, NAMED_KEYS[k]);
        bd->named[k] = config_token(v);
    }
    const diffu_json *extra = diffu_json_get(cfg, "additional_special_tokens");
    if (extra && extra->type == DJ_ARR) {
        bd->extra_special = diffu_xcalloc(extra->u.kids.n + 1, sizeof(char *));
        for (size_t i = 0; i < extra->u.kids.n; i++) {
            const char *s = config_token(extra->u.kids.items[i]);
            if (s) bd->extra_special[bd->n_extra_special++] = s;
        }
    }
    const diffu_json *cu = diffu_json_get(cfg, "clean_up_tokenization_spaces");
    if (cu && cu->type == DJ_BOOL && cu->u.b)
        DLOG_WARN("%s: clean_up_tokenization_spaces is true; diffu decodes without that clean-up", file);
    return 0;
}

/* ---- tokenizer.json ------------------------------------------------------ */

static int type_is(const diffu_json *o, const char *t) {
    const diffu_json *v = diffu_json_get(o, "type");
    return v && v->type == DJ_STR && strcmp(v->u.str.s, t) == 0;
}

static const char *type_of(const diffu_json *o) {
    const diffu_json *v = diffu_json_get(o, "type");
    return v && v->type == DJ_STR ? v->u.str.s : "(none)";
}

static int bool_field(const diffu_json *o, const char *key, int dflt, const char *file, const char *where, int *out,
                      diffu_err *err) {
    *out = dflt;
    int r = diffu_json_get_bool(o, key, out, err);
    if (r < 0) {
        const diffu_json *v = diffu_json_get(o, key);
        if (v && v->type == DJ_NULL) {
            *out = dflt;
            return 0;
        }
        return diffu_err_prefix(err, "%s: %s", file, where);
    }
    return 0;
}

static int read_normalizer(builder *bd, const diffu_json *nz, const char *file, diffu_err *err) {
    if (!nz || nz->type == DJ_NULL) return 0;
    if (type_is(nz, "NFC")) {
        bd->nfc = 1;
        return 0;
    }
    if (type_is(nz, "Sequence")) {
        const diffu_json *seq = diffu_json_get(nz, "normalizers");
        if (!seq || seq->type != DJ_ARR)
            return diffu_err_set(err, "%s: field 'normalizer.normalizers': expected an array", file);
        for (size_t i = 0; i < seq->u.kids.n; i++)
            if (read_normalizer(bd, seq->u.kids.items[i], file, err) < 0) return -1;
        return 0;
    }
    return diffu_err_set(err, "%s: field 'normalizer': type '%s' is not supported (only NFC or none)", file,
                         type_of(nz));
}

static int add_prestep(diffu_tokenizer *tok, const diffu_json *p, const char *file, diffu_err *err) {
    if (type_is(p, "Sequence")) {
        const diffu_json *seq = diffu_json_get(p, "pretokenizers");
        if (!seq || seq->type != DJ_ARR)
            return diffu_err_set(err, "%s: field 'pre_tokenizer.pretokenizers': expected an array", file);
        for (size_t i = 0; i < seq->u.kids.n; i++)
            if (add_prestep(tok, seq->u.kids.items[i], file, err) < 0) return -1;
        return 0;
    }
    if (tok->n_pre == TOK_MAX_PRESTEPS)
        return diffu_err_set(err, "%s: field 'pre_tokenizer': more than %d steps", file, TOK_MAX_PRESTEPS);
    tok_prestep *st = &tok->pre[tok->n_pre];
    memset(st, 0, sizeof *st);
    if (type_is(p, "Split")) {
        st->kind = PRE_SPLIT;
        const diffu_json *pat = diffu_json_get(p, "pattern");
        const diffu_json *re = pat ? diffu_json_get(pat, "Regex") : NULL;
        const diffu_json *lit = pat ? diffu_json_get(pat, "String") : NULL;
        const diffu_json *src = re ? re : lit;
        if (!src || src->type != DJ_STR)
            return diffu_err_set(err, "%s: field 'pre_tokenizer.pattern': expected {\"Regex\": ...} or {\"String\": ...}",
                                 file);
        const diffu_json *beh = diffu_json_get(p, "behavior");
        const char *b = beh && beh->type == DJ_STR ? beh->u.str.s : "";
        if (!strcmp(b, "Isolated")) st->behavior = SPLIT_ISOLATED;
        else if (!strcmp(b, "Removed")) st->behavior = SPLIT_REMOVED;
        else
            return diffu_err_set(err, "%s: field 'pre_tokenizer.behavior': '%s' is not supported (Isolated, Removed)",
                                 file, b);
        int invert = 0;
        if (bool_field(p, "invert", 0, file, "pre_tokenizer", &invert, err) < 0) return -1;
        if (invert) return diffu_err_set(err, "%s: field 'pre_tokenizer.invert': true is not supported", file);
        st->re = tok_regex_compile(src->u.str.s, src->u.str.len, src == lit, err);
        if (!st->re) return diffu_err_prefix(err, "%s: field 'pre_tokenizer.pattern'", file);
        tok->n_pre++;
        return 0;
    }
    if (type_is(p, "ByteLevel")) {
        st->kind = PRE_BYTELEVEL;
        int use_regex = 1;
        if (bool_field(p, "add_prefix_space", 1, file, "pre_tokenizer", &st->add_prefix_space, err) < 0) return -1;
        if (bool_field(p, "use_regex", 1, file, "pre_tokenizer", &use_regex, err) < 0) return -1;
        if (use_regex) {
            static const char gpt2[] = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
            st->re = tok_regex_compile(gpt2, sizeof gpt2 - 1, 0, err);
            if (!st->re) return diffu_err_prefix(err, "%s: ByteLevel regex", file);
        }
        tok->n_pre++;
        return 0;
    }
    return diffu_err_set(err, "%s: field 'pre_tokenizer': type '%s' is not supported (Split, ByteLevel, Sequence)",
                         file, type_of(p));
}

static int read_added_tokens(builder *bd, const diffu_json *arr, const char *file, diffu_err *err) {
    if (!arr || arr->type == DJ_NULL) return 0;
    if (arr->type != DJ_ARR) return diffu_err_set(err, "%s: field 'added_tokens': expected an array", file);
    bd->added = diffu_xcalloc(arr->u.kids.n + 1, sizeof(tok_added));
    bd->added_file = file;
    for (size_t i = 0; i < arr->u.kids.n; i++) {
        const diffu_json *t = arr->u.kids.items[i];
        int64_t id;
        const char *content = NULL;
        if (t->type != DJ_OBJ) return diffu_err_set(err, "%s: field 'added_tokens[%zu]': expected an object", file, i);
        int r = diffu_json_get_int(t, "id", 0, INT32_MAX - 1, &id, err);
        if (r) {
            if (r > 0) diffu_err_set(err, "field 'id' is missing");
            return diffu_err_prefix(err, "%s: added_tokens[%zu]", file, i);
        }
        r = diffu_json_get_str(t, "content", &content, err);
        if (r) {
            if (r > 0) diffu_err_set(err, "field 'content' is missing");
            return diffu_err_prefix(err, "%s: added_tokens[%zu]", file, i);
        }
        const diffu_json *cj = diffu_json_get(t, "content");
        if (cj->u.str.len == 0)
            return diffu_err_set(err, "%s: field 'added_tokens[%zu].content': empty token", file, i);
        int special = 0, normalized = 1, lstrip = 0, rstrip = 0, single = 0;
        if (bool_field(t, "special", 0, file, "added_tokens", &special, err) < 0 ||
            bool_field(t, "normalized", !special, file, "added_tokens", &normalized, err) < 0 ||
            bool_field(t, "lstrip", 0, file, "added_tokens", &lstrip, err) < 0 ||
            bool_field(t, "rstrip", 0, file, "added_tokens", &rstrip, err) < 0 ||
            bool_field(t, "single_word", 0, file, "added_tokens", &single, err) < 0)
            return -1;
        tok_added *a = &bd->added[bd->n_added++];
        a->content = xmemdup(content, cj->u.str.len);
        a->len = cj->u.str.len;
        a->id = (int32_t)id;
        a->flags = (special ? ADDED_SPECIAL : 0) | (normalized ? ADDED_NORMALIZED : 0) | (lstrip ? ADDED_LSTRIP : 0) |
                   (rstrip ? ADDED_RSTRIP : 0) | (single ? ADDED_SINGLE_WORD : 0);
    }
    return 0;
}

static int read_vocab_object(builder *bd, const diffu_json *v, const char *file, const char *field, diffu_err *err) {
    if (!v) return diffu_err_set(err, "%s: field '%s' is missing", file, field);
    if (v->type != DJ_OBJ) return diffu_err_set(err, "%s: field '%s': expected an object", file, field);
    bd->vocab = diffu_xmalloc((v->u.kids.n + 1) * sizeof(kv));
    for (size_t i = 0; i < v->u.kids.n; i++) {
        const diffu_json *x = v->u.kids.items[i];
        if (x->type != DJ_NUM || !x->u.num.is_int || x->u.num.i < 0 || x->u.num.i >= INT32_MAX - 1) {
            char sbuf[64];
            return diffu_err_set(err, "%s: field '%s': entry '%s' needs an id in [0, 2^31-2]", file, field,
                                 tok_show(v->u.kids.keys[i], v->u.kids.klen[i], sbuf, sizeof sbuf));
        }
        bd->vocab[i] = (kv){v->u.kids.keys[i], v->u.kids.klen[i], (int32_t)x->u.num.i};
    }
    bd->n_vocab = v->u.kids.n;
    return 0;
}

static int read_model(builder *bd, const diffu_json *m, const char *file, diffu_err *err) {
    if (!m || m->type == DJ_NULL) return diffu_err_set(err, "%s: field 'model' is missing", file);
    if (m->type != DJ_OBJ) return diffu_err_set(err, "%s: field 'model': expected an object", file);
    const diffu_json *t = diffu_json_get(m, "type");
    if (t && !type_is(m, "BPE"))
        return diffu_err_set(err, "%s: field 'model.type': '%s' is not supported (only BPE)", file, type_of(m));
    if (read_vocab_object(bd, diffu_json_get(m, "vocab"), file, "model.vocab", err) < 0) return -1;
    const diffu_json *mg = diffu_json_get(m, "merges");
    if (!mg) return diffu_err_set(err, "%s: field 'model.merges' is missing", file);
    if (mg->type != DJ_ARR) return diffu_err_set(err, "%s: field 'model.merges': expected an array", file);
    bd->merges = diffu_xmalloc((mg->u.kids.n + 1) * sizeof(merge_str));
    bd->n_merges = mg->u.kids.n;
    for (size_t i = 0; i < mg->u.kids.n; i++) {
        const diffu_json *x = mg->u.kids.items[i];
        merge_str *ms = &bd->merges[i];
        if (x->type == DJ_STR) {
            /* legacy "a b": split at the first space (tokenizers'
             * convert_merges_to_hashmap wants exactly two parts) */
            const char *sp = memchr(x->u.str.s, ' ', x->u.str.len);
            if (!sp || memchr(sp + 1, ' ', x->u.str.len - (size_t)(sp + 1 - x->u.str.s)))
                return diffu_err_set(err, "%s: field 'model.merges[%zu]': expected \"left right\"", file, i);
            ms->a = x->u.str.s;
            ms->an = (size_t)(sp - x->u.str.s);
            ms->b = sp + 1;
            ms->bn = x->u.str.len - ms->an - 1;
        } else if (x->type == DJ_ARR && x->u.kids.n == 2 && x->u.kids.items[0]->type == DJ_STR &&
                   x->u.kids.items[1]->type == DJ_STR) {
            ms->a = x->u.kids.items[0]->u.str.s;
            ms->an = x->u.kids.items[0]->u.str.len;
            ms->b = x->u.kids.items[1]->u.str.s;
            ms->bn = x->u.kids.items[1]->u.str.len;
        } else {
            return diffu_err_set(err, "%s: field 'model.merges[%zu]': expected \"left right\" or [left, right]", file, i);
        }
    }
    bd->merges_file = file;
    bd->merges_field = "model.merges";
    double dropout = 0;
    const diffu_json *dj = diffu_json_get(m, "dropout");
    if (dj && dj->type == DJ_NUM) dropout = dj->u.num.d;
    if (dropout > 0) return diffu_err_set(err, "%s: field 'model.dropout': BPE dropout is not supported", file);
    int byte_fallback = 0;
    if (bool_field(m, "byte_fallback", 0, file, "model", &byte_fallback, err) < 0) return -1;
    if (byte_fallback) return diffu_err_set(err, "%s: field 'model.byte_fallback': true is not supported", file);
    if (bool_field(m, "ignore_merges", 0, file, "model", &bd->ignore_merges, err) < 0) return -1;
    if (bool_field(m, "fuse_unk", 0, file, "model", &bd->fuse_unk, err) < 0) return -1;
    static const char *affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int k = 0; k < 2; k++) {
        const diffu_json *a = diffu_json_get(m, affixes[k]);
        if (a && !(a->type == DJ_NULL || (a->type == DJ_STR && a->u.str.len == 0)))
            return diffu_err_set(err, "%s: field 'model.%s': only null or \"\" is supported", file, affixes[k]);
    }
    const diffu_json *unk = diffu_json_get(m, "unk_token");
    if (unk && unk->type == DJ_STR) {
        bd->unk = unk->u.str.s;
        bd->unk_n = unk->u.str.len;
    }
    return 0;
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *r = diffu_xmalloc(a + b + 2);
    memcpy(r, dir, a);
    size_t k = a;
    if (k && r[k - 1] != '/') r[k++] = '/';
    memcpy(r + k, name, b + 1);
    return r;
}

static char *dir_of(const char *path) {
    const char *sl = strrchr(path, '/');
    if (!sl) return diffu_xstrdup(".");
    if (sl == path) return diffu_xstrdup("/");
    return xmemdup(path, (size_t)(sl - path));
}

/* Load the optional config of dir into bd (its doc is returned to be kept
 * alive while bd refers to its strings). */
static int load_config(builder *bd, const char *dir, diffu_json_doc **doc, char **cfg_path, diffu_err *err) {
    *cfg_path = path_join(dir, "tokenizer_config.json");
    *doc = NULL;
    if (!file_exists(*cfg_path)) return 0;
    *doc = diffu_json_parse_file(*cfg_path, err);
    if (!*doc) return -1;
    return read_config(bd, diffu_json_root(*doc), *cfg_path, err);
}

static diffu_tokenizer *load_tokenizer_json(const char *file, const char *dir, diffu_err *err) {
    builder bd = {0};
    bd.file = file;
    diffu_tokenizer *tok = NULL;
    diffu_json_doc *cfg_doc = NULL;
    char *cfg_path = NULL;
    diffu_json_doc *doc = diffu_json_parse_file(file, err);
    if (!doc) return NULL;
    const diffu_json *root = diffu_json_root(doc);
    if (root->type != DJ_OBJ) {
        diffu_err_set(err, "%s: expected a JSON object", file);
        goto out;
    }
    if (load_config(&bd, dir, &cfg_doc, &cfg_path, err) < 0) goto out;
    if (read_model(&bd, diffu_json_get(root, "model"), file, err) < 0) goto out;
    if (read_added_tokens(&bd, diffu_json_get(root, "added_tokens"), file, err) < 0) goto out;
    if (read_normalizer(&bd, diffu_json_get(root, "normalizer"), file, err) < 0) goto out;
    const diffu_json *dec = diffu_json_get(root, "decoder");
    if (!dec || dec->type == DJ_NULL || !type_is(dec, "ByteLevel")) {
        diffu_err_set(err, "%s: field 'decoder': type '%s' is not supported (only ByteLevel)", file,
                      dec && dec->type == DJ_OBJ ? type_of(dec) : "null");
        goto out;
    }
    tok = build(&bd, err);
    if (!tok) goto out;
    const diffu_json *pre = diffu_json_get(root, "pre_tokenizer");
    if (pre && pre->type != DJ_NULL && add_prestep(tok, pre, file, err) < 0) {
        diffu_tokenizer_free(&tok);
        goto out;
    }
    if (tok->n_pre == 0 || tok->pre[tok->n_pre - 1].kind != PRE_BYTELEVEL) {
        diffu_err_set(err, "%s: field 'pre_tokenizer': a byte-level BPE needs a ByteLevel pre-tokenizer step", file);
        diffu_tokenizer_free(&tok);
        goto out;
    }
out:
    builder_free(&bd);
    diffu_json_free(doc);
    diffu_json_free(cfg_doc);
    free(cfg_path);
    return tok;
}

/* ---- vocab.json + merges.txt + added_tokens.json ------------------------- */

static char *read_whole(const char *path, size_t *n, diffu_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        diffu_err_set(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, len = 0, r;
    char *buf = diffu_xmalloc(cap + 1);
    while ((r = fread(buf + len, 1, cap - len, f)) > 0) {
        len += r;
        if (len == cap) buf = diffu_xrealloc(buf, (cap *= 2) + 1);
    }
    fclose(f);
    buf[len] = 0;
    *n = len;
    return buf;
}

static diffu_tokenizer *load_legacy(const char *dir, diffu_err *err) {
    builder bd = {0};
    diffu_tokenizer *tok = NULL;
    diffu_json_doc *vdoc = NULL, *adoc = NULL, *cfg_doc = NULL;
    char *cfg_path = NULL, *mtext = NULL;
    char *vpath = path_join(dir, "vocab.json"), *mpath = path_join(dir, "merges.txt"),
         *apath = path_join(dir, "added_tokens.json");
    bd.file = vpath;
    bd.nfc = 1;
    if (load_config(&bd, dir, &cfg_doc, &cfg_path, err) < 0) goto out;
    vdoc = diffu_json_parse_file(vpath, err);
    if (!vdoc || read_vocab_object(&bd, diffu_json_root(vdoc), vpath, "(root)", err) < 0) goto out;
    size_t mlen;
    mtext = read_whole(mpath, &mlen, err);
    if (!mtext) goto out;
    {
        size_t cap = 1024, line = 0;
        bd.merges = diffu_xmalloc(cap * sizeof(merge_str));
        char *p = mtext, *end = mtext + mlen;
        while (p < end) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            char *le = nl ? nl : end;
            line++;
            /* tokenizers strips the line, skips "#version" on line 1 and blanks */
            char *s = p, *e = le;
            while (s < e && (*s == ' ' || *s == '\t' || *s == '\r')) s++;
            while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) e--;
            p = nl ? nl + 1 : end;
            if (s == e || (line == 1 && e - s >= 8 && !memcmp(s, "#version", 8))) continue;
            char *sp = memchr(s, ' ', (size_t)(e - s));
            if (!sp || memchr(sp + 1, ' ', (size_t)(e - sp - 1))) {
                diffu_err_set(err, "%s: line %zu: expected \"left right\"", mpath, line);
                goto out;
            }
            if (bd.n_merges == cap) bd.merges = diffu_xrealloc(bd.merges, (cap *= 2) * sizeof(merge_str));
            bd.merges[bd.n_merges++] = (merge_str){s, sp + 1, (size_t)(sp - s), (size_t)(e - sp - 1)};
        }
    }
    bd.merges_file = mpath;
    bd.merges_field = "merges";
    /* added tokens: added_tokens.json (content -> id), flags from the config's
     * added_tokens_decoder when it has them; else from added_tokens_decoder alone */
    {
        const diffu_json *decoder = NULL;
        if (cfg_doc) decoder = diffu_json_get(diffu_json_root(cfg_doc), "added_tokens_decoder");
        const diffu_json *src = NULL;
        if (file_exists(apath)) {
            adoc = diffu_json_parse_file(apath, err);
            if (!adoc) goto out;
            src = diffu_json_root(adoc);
            if (src->type != DJ_OBJ) {
                diffu_err_set(err, "%s: expected an object of \"token\": id", apath);
                goto out;
            }
            bd.added_file = apath;
        } else if (decoder && decoder->type == DJ_OBJ) {
            bd.added_file = cfg_path;
        }
        size_t n = src ? src->u.kids.n : decoder && decoder->type == DJ_OBJ ? decoder->u.kids.n : 0;
        bd.added = diffu_xcalloc(n + 1, sizeof(tok_added));
        for (size_t i = 0; i < n; i++) {
            const char *content;
            size_t clen;
            int64_t id;
            const diffu_json *props = NULL;
            if (src) {
                const diffu_json *x = src->u.kids.items[i];
                content = src->u.kids.keys[i];
                clen = src->u.kids.klen[i];
                if (x->type != DJ_NUM || !x->u.num.is_int || x->u.num.i < 0 || x->u.num.i >= INT32_MAX - 1) {
                    diffu_err_set(err, "%s: field '%s': expected an id", apath, content);
                    goto out;
                }
                id = x->u.num.i;
                if (decoder && decoder->type == DJ_OBJ) {
                    char key[32];
                    snprintf(key, sizeof key, "%lld", (long long)id);
                    props = diffu_json_get(decoder, key);
                }
            } else {
                char *endp;
                id = strtoll(decoder->u.kids.keys[i], &endp, 10);
                props = decoder->u.kids.items[i];
                const diffu_json *c = diffu_json_get(props, "content");
                if (*endp || id < 0 || id >= INT32_MAX - 1 || !c || c->type != DJ_STR) {
                    diffu_err_set(err, "%s: field 'added_tokens_decoder.%s': expected an id with a content", cfg_path,
                                  decoder->u.kids.keys[i]);
                    goto out;
                }
                content = c->u.str.s;
                clen = c->u.str.len;
            }
            int special = 0;
            for (int k = 0; k < 5; k++)
                if (bd.named[k] && strlen(bd.named[k]) == clen && !memcmp(bd.named[k], content, clen)) special = 1;
            int normalized = !special, lstrip = 0, rstrip = 0, single = 0;
            if (props && props->type == DJ_OBJ) {
                diffu_json_get_bool(props, "special", &special, err);
                normalized = !special;
                diffu_json_get_bool(props, "normalized", &normalized, err);
                diffu_json_get_bool(props, "lstrip", &lstrip, err);
                diffu_json_get_bool(props, "rstrip", &rstrip, err);
                diffu_json_get_bool(props, "single_word", &single, err);
            }
            tok_added *a = &bd.added[bd.n_added++];
            a->content = xmemdup(content, clen);
            a->len = clen;
            a->id = (int32_t)id;
            a->flags = (special ? ADDED_SPECIAL : 0) | (normalized ? ADDED_NORMALIZED : 0) |
                       (lstrip ? ADDED_LSTRIP : 0) | (rstrip ? ADDED_RSTRIP : 0) | (single ? ADDED_SINGLE_WORD : 0);
        }
    }
    tok = build(&bd, err);
    if (!tok) goto out;
    /* Qwen2 / Dream: Split(regex, Isolated) then ByteLevel without its regex */
    tok->pre[0] = (tok_prestep){PRE_SPLIT, tok_regex_compile(TOK_QWEN2_PATTERN, strlen(TOK_QWEN2_PATTERN), 0, err),
                                SPLIT_ISOLATED, 0};
    if (!tok->pre[0].re) {
        diffu_tokenizer_free(&tok);
        goto out;
    }
    tok->pre[1] = (tok_prestep){PRE_BYTELEVEL, NULL, 0, 0};
    tok->n_pre = 2;
out:
    builder_free(&bd);
    diffu_json_free(vdoc);
    diffu_json_free(adoc);
    diffu_json_free(cfg_doc);
    free(cfg_path);
    free(mtext);
    free(vpath);
    free(mpath);
    free(apath);
    return tok;
}

/* ---- public --------------------------------------------------------------- */

diffu_tokenizer *diffu_tokenizer_load(const char *path, diffu_err *err) {
    pthread_once(&bl_once, bl_init);
    struct stat st;
    if (stat(path, &st) != 0) {
        diffu_err_set(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    diffu_tokenizer *tok = NULL;
    if (S_ISDIR(st.st_mode)) {
        char *tj = path_join(path, "tokenizer.json");
        char *vj = path_join(path, "vocab.json");
        char *mt = path_join(path, "merges.txt");
        if (file_exists(tj)) tok = load_tokenizer_json(tj, path, err);
        else if (file_exists(vj) && file_exists(mt)) tok = load_legacy(path, err);
        else diffu_err_set(err, "%s: no tokenizer.json (nor vocab.json + merges.txt) in this directory", path);
        free(tj);
        free(vj);
        free(mt);
    } else {
        char *dir = dir_of(path);
        tok = load_tokenizer_json(path, dir, err);
        free(dir);
    }
    return tok;
}

void diffu_tokenizer_free(diffu_tokenizer **tokp) {
    if (!tokp || !*tokp) return;
    diffu_tokenizer *tok = *tokp;
    tok_scratch_free_all(tok);
    pthread_mutex_destroy(&tok->pool_mu);
    for (int i = 0; i < tok->n_pre; i++) pcre2_code_free(tok->pre[i].re);
    for (size_t i = 0; i < tok->n_added; i++) free(tok->added[i].content);
    free(tok->added);
    free(tok->match_raw.order);
    free(tok->match_norm.order);
    free(tok->vkey_off);
    free(tok->vkey_len);
    free(tok->vkey_pool);
    free(tok->vocab.slot);
    free(tok->dec_off);
    free(tok->dec_len);
    free(tok->dec_pool);
    free(tok->flags);
    free(tok->merges.slot);
    free(tok);
    *tokp = NULL;
}

int32_t diffu_tokenizer_vocab_size(const diffu_tokenizer *tok) { return tok->n_ids; }
int32_t diffu_tokenizer_n_tokens(const diffu_tokenizer *tok) { return tok->n_tokens; }
const diffu_special_ids *diffu_tokenizer_special(const diffu_tokenizer *tok) { return &tok->special; }

int32_t diffu_tokenizer_token_id(const diffu_tokenizer *tok, const char *s, size_t len) {
    int32_t id = find_added(tok, s, len);
    return id >= 0 ? id : tok_strmap_get(tok, &tok->vocab, s, len);
}

const char *diffu_tokenizer_token_bytes(const diffu_tokenizer *tok, int32_t id, size_t *len) {
    if (id < 0 || id >= tok->n_ids || tok->dec_len[id] == UINT32_MAX) return NULL;
    *len = tok->dec_len[id];
    return tok->dec_pool + tok->dec_off[id];
}

int diffu_tokenizer_is_special(const diffu_tokenizer *tok, int32_t id) {
    return id >= 0 && id < tok->n_ids && (tok->flags[id] & TOKF_SPECIAL);
}
