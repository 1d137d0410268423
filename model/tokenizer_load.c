/* tokenizer_load.c — what both file formats share: the tables of
 * tokenizer_int.h built from what a reader collected (tok_build),
 * tokenizer_config.json, and diffu_tokenizer_load picking the reader:
 * tokenizer.json (tokenizer_json.c) or vocab.json + merges.txt +
 * added_tokens.json (tokenizer_legacy.c). Semantics follow huggingface/tokenizers: BPE vocab/merges
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

/* ---- the tok_builder: what both file layouts produce ------------------------- */


static const char *NAMED_KEYS[5] = {"bos_token", "eos_token", "pad_token", "unk_token", "mask_token"};

static int cmp_kv_id(const void *x, const void *y) {
    const tok_kv *a = x, *b = y;
    return a->id < b->id ? -1 : a->id > b->id;
}

char *tok_xmemdup(const char *s, size_t n) {
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

/* ids: unique over the vocabulary, then over the added tokens */
static int build_ids(tok_builder *bd, diffu_tokenizer *tok, diffu_err *err) {
    char sbuf[64], sbuf2[64];
    int32_t max_id = -1;
    qsort(bd->vocab, bd->n_vocab, sizeof *bd->vocab, cmp_kv_id);
    for (size_t i = 0; i < bd->n_vocab; i++) {
        if (i > 0 && bd->vocab[i].id == bd->vocab[i - 1].id) {
            diffu_err_set(err, "%s: field 'model.vocab': id %d is given to both '%s' and '%s'", bd->file,
                          bd->vocab[i].id, tok_show(bd->vocab[i - 1].s, bd->vocab[i - 1].n, sbuf, sizeof sbuf),
                          tok_show(bd->vocab[i].s, bd->vocab[i].n, sbuf2, sizeof sbuf2));
            return -1;
        }
        if (bd->vocab[i].id > max_id) max_id = bd->vocab[i].id;
    }
    for (size_t i = 0; i < bd->n_added; i++) {
        for (size_t j = 0; j < i; j++)
            if (bd->added[j].id == bd->added[i].id) {
                diffu_err_set(err, "%s: field 'added_tokens': id %d is given to both '%s' and '%s'", bd->added_file,
                              bd->added[i].id, tok_show(bd->added[j].content, bd->added[j].len, sbuf, sizeof sbuf),
                              tok_show(bd->added[i].content, bd->added[i].len, sbuf2, sizeof sbuf2));
                return -1;
            }
        if (bd->added[i].id > max_id) max_id = bd->added[i].id;
    }
    if (max_id < 0) {
        diffu_err_set(err, "%s: field 'model.vocab': the vocabulary is empty", bd->file);
        return -1;
    }
    int32_t n = max_id + 1;
    tok->n_ids = n;
    tok->vkey_off = diffu_xcalloc((size_t)n, sizeof(uint32_t));
    tok->vkey_len = diffu_xmalloc((size_t)n * sizeof(uint32_t));
    tok->dec_off = diffu_xcalloc((size_t)n, sizeof(uint32_t));
    tok->dec_len = diffu_xmalloc((size_t)n * sizeof(uint32_t));
    tok->flags = diffu_xcalloc((size_t)n, 1);
    for (int32_t i = 0; i < n; i++) tok->vkey_len[i] = tok->dec_len[i] = UINT32_MAX;
    return 0;
}

/* model vocabulary: raw bytes for BPE and for decoding */
static int build_vocab(tok_builder *bd, diffu_tokenizer *tok, diffu_err *err) {
    char sbuf[64];
    diffu_text vk = {0};
    size_t n_bl = 0;
    for (size_t i = 0; i < bd->n_vocab; i++) {
        const tok_kv *e = &bd->vocab[i];
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
            return -1;
        }
        strmap_put(tok, &tok->vocab, id);
    }
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        tok->byte_id[b] = tok_strmap_get(tok, &tok->vocab, &c, 1);
    }
    return 0;
}

/* added tokens (normalized ones are matched, and decoded, in NFC form) */
static void build_added(tok_builder *bd, diffu_tokenizer *tok) {
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
}

/* decode bytes per id: the token string through the byte-level decoder,
 * which keeps a string's own UTF-8 when any character is outside the
 * alphabet (tokenizers' ByteLevel::decode_chain) */
static void build_decode(tok_builder *bd, diffu_tokenizer *tok) {
    int32_t n = tok->n_ids;
    diffu_text dec = {0};
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
static int build_merges(tok_builder *bd, diffu_tokenizer *tok, diffu_err *err) {
    char sbuf[64];
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
                const tok_kv *o = &bd->vocab[slot[h]];
                if (o->n == bd->vocab[i].n && memcmp(o->s, bd->vocab[i].s, o->n) == 0) {
                    diffu_err_set(err, "%s: field 'model.vocab': '%s' appears twice", bd->file,
                                  tok_show(o->s, o->n, sbuf, sizeof sbuf));
                    free(slot);
                    return -1;
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
            const tok_kv *o_ = &bd->vocab[slot[h_]];                                           \
            if (o_->n == (len) && memcmp(o_->s, (str), (len)) == 0) { (out) = o_->id; break; } \
            h_ = (h_ + 1) & mask;                                                          \
        }                                                                                  \
    } while (0)
        diffu_text cat = {0};
        for (size_t r = 0; r < bd->n_merges; r++) {
            const tok_merge_str *m = &bd->merges[r];
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
                return -1;
            }
            pairmap_put(&tok->merges, a, b, (uint32_t)r, ab);
        }
#undef VOCAB_FIND
        diffu_text_free(&cat);
        if (bd->unk) {
            int32_t u = -1;
            size_t h = (size_t)tok_hash_bytes(bd->unk, bd->unk_n) & mask;
            while (slot[h] >= 0) {
                const tok_kv *o = &bd->vocab[slot[h]];
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
                return -1;
            }
            tok->unk_id = u;
        }
        free(slot);
    }
    return 0;
}

/* special tokens named by the config are special too (transformers marks
 * them so in the backend), then the well-known ones by content */
static void build_specials(tok_builder *bd, diffu_tokenizer *tok) {
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
static void warn_added_ids(const tok_builder *bd, const diffu_tokenizer *tok) {
    char sbuf[64];
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

diffu_tokenizer *tok_build(tok_builder *bd, diffu_err *err) {
    pthread_once(&bl_once, bl_init);
    diffu_tokenizer *tok = diffu_xcalloc(1, sizeof *tok);
    pthread_mutex_init(&tok->pool_mu, NULL);
    tok->unk_id = -1;
    tok->nfc = bd->nfc;
    tok->ignore_merges = bd->ignore_merges;
    tok->fuse_unk = bd->fuse_unk;
    if (build_ids(bd, tok, err) || build_vocab(bd, tok, err)) goto fail;
    build_added(bd, tok);
    build_decode(bd, tok);
    if (build_merges(bd, tok, err)) goto fail;
    build_specials(bd, tok);
    warn_added_ids(bd, tok);
    tok_matchers_build(tok);
    return tok;

fail:
    diffu_tokenizer_free(&tok);
    return NULL;
}

void tok_builder_free(tok_builder *bd) {
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

static int read_config(tok_builder *bd, const diffu_json *cfg, const char *file, diffu_err *err) {
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

int tok_read_vocab_object(tok_builder *bd, const diffu_json *v, const char *file, const char *field, diffu_err *err) {
    if (!v) return diffu_err_set(err, "%s: field '%s' is missing", file, field);
    if (v->type != DJ_OBJ) return diffu_err_set(err, "%s: field '%s': expected an object", file, field);
    bd->vocab = diffu_xmalloc((v->u.kids.n + 1) * sizeof(tok_kv));
    for (size_t i = 0; i < v->u.kids.n; i++) {
        const diffu_json *x = v->u.kids.items[i];
        if (x->type != DJ_NUM || !x->u.num.is_int || x->u.num.i < 0 || x->u.num.i >= INT32_MAX - 1) {
            char sbuf[64];
            return diffu_err_set(err, "%s: field '%s': entry '%s' needs an id in [0, 2^31-2]", file, field,
                                 tok_show(v->u.kids.keys[i], v->u.kids.klen[i], sbuf, sizeof sbuf));
        }
        bd->vocab[i] = (tok_kv){v->u.kids.keys[i], v->u.kids.klen[i], (int32_t)x->u.num.i};
    }
    bd->n_vocab = v->u.kids.n;
    return 0;
}

int tok_file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

char *tok_path_join(const char *dir, const char *name) {
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
    return tok_xmemdup(path, (size_t)(sl - path));
}

/* Load the optional config of dir into bd (its doc is returned to be kept
 * alive while bd refers to its strings). */
int tok_load_config(tok_builder *bd, const char *dir, diffu_json_doc **doc, char **cfg_path, diffu_err *err) {
    *cfg_path = tok_path_join(dir, "tokenizer_config.json");
    *doc = NULL;
    if (!tok_file_exists(*cfg_path)) return 0;
    *doc = diffu_json_parse_file(*cfg_path, err);
    if (!*doc) return -1;
    return read_config(bd, diffu_json_root(*doc), *cfg_path, err);
}

/* ---- vocab.json + merges.txt + added_tokens.json ------------------------- */

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
        char *tj = tok_path_join(path, "tokenizer.json");
        char *vj = tok_path_join(path, "vocab.json");
        char *mt = tok_path_join(path, "merges.txt");
        if (tok_file_exists(tj)) tok = tok_load_json(tj, path, err);
        else if (tok_file_exists(vj) && tok_file_exists(mt)) tok = tok_load_legacy(path, err);
        else diffu_err_set(err, "%s: no tokenizer.json (nor vocab.json + merges.txt) in this directory", path);
        free(tj);
        free(vj);
        free(mt);
    } else {
        char *dir = dir_of(path);
        tok = tok_load_json(path, dir, err);
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
