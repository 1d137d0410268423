/* tokenizer_decode.c — ids -> text, whole or incrementally, and the UTF-8
 * helpers (validation, U+FFFD repair) shared with the encoder.
 *
 * Invalid UTF-8 is replaced per "maximal subpart" (Unicode ch. 3, U+FFFD
 * substitution of maximal subparts), which is what Rust's
 * String::from_utf8_lossy (tokenizers' ByteLevel decoder), Python's
 * errors="replace" and the WHATWG TextDecoder all do. Because a maximal
 * subpart is decided by the bytes seen so far, a stream decoder that holds
 * back only an unfinished-but-valid tail emits exactly the same text as one
 * whole-buffer decode. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer_int.h"

/* ---- buffers -------------------------------------------------------------- */

void diffu_ids_push(diffu_ids *v, int32_t id) {
    if (v->len == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->data = diffu_xrealloc(v->data, v->cap * sizeof(int32_t));
    }
    v->data[v->len++] = id;
}

void diffu_ids_free(diffu_ids *v) {
    free(v->data);
    v->data = NULL;
    v->len = v->cap = 0;
}

void diffu_text_append(diffu_text *t, const char *s, size_t n) {
    if (t->len + n + 1 > t->cap) {
        size_t c = t->cap ? t->cap * 2 : 256;
        while (c < t->len + n + 1) c *= 2;
        t->data = diffu_xrealloc(t->data, c);
        t->cap = c;
    }
    if (n) memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = 0;
}

void diffu_text_free(diffu_text *t) {
    free(t->data);
    t->data = NULL;
    t->len = t->cap = 0;
}

/* ---- UTF-8 ---------------------------------------------------------------- */

/* Length of the well-formed sequence starting at s[0] (1..4), 0 if s[0..n)
 * starts with an ill-formed subpart (then *bad = its length, >= 1), or -1 if
 * s[0..n) is a proper prefix of a well-formed sequence (unfinished). */
static int utf8_seq(const unsigned char *s, size_t n, size_t *bad) {
    unsigned char c = s[0];
    if (c < 0x80) return 1;
    int need;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) need = 2, lo = 0xA0;
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) need = 2;
    else if (c == 0xED) need = 2, hi = 0x9F;
    else if (c == 0xF0) need = 3, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    else if (c == 0xF4) need = 3, hi = 0x8F;
    else {
        *bad = 1;
        return 0;
    }
    for (int k = 1; k <= need; k++) {
        if ((size_t)k >= n) return -1;
        unsigned char b = s[k];
        unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
        if (b < l || b > h) {
            *bad = (size_t)k;
            return 0;
        }
    }
    return need + 1;
}

int tok_utf8_valid(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < n) {
        /* 8 ASCII bytes at a time */
        while (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, u + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= n) break;
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t bad;
        int k = utf8_seq(u + i, n - i, &bad);
        if (k <= 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

static const char FFFD[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

void diffu_utf8_lossy(const char *s, size_t n, diffu_text *out, size_t *hold) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, run = 0; /* run: start of the pending valid stretch */
    if (hold) *hold = 0;
    while (i < n) {
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        size_t bad = 0;
        int k = utf8_seq(u + i, n - i, &bad);
        if (k > 0) {
            i += (size_t)k;
            continue;
        }
        diffu_text_append(out, s + run, i - run);
        if (k < 0) { /* unfinished at the end */
            if (hold) {
                *hold = n - i;
                return;
            }
            diffu_text_append(out, FFFD, 3);
            run = i = n;
            break;
        }
        diffu_text_append(out, FFFD, 3);
        i += bad;
        run = i;
    }
    diffu_text_append(out, s + run, n - run);
}

/* ---- decode --------------------------------------------------------------- */

static void append_token_bytes(const diffu_tokenizer *tok, const int32_t *ids, size_t n, int flags, diffu_text *raw) {
    for (size_t i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= tok->n_ids || tok->dec_len[id] == UINT32_MAX) continue; /* unknown id: dropped */
        if ((flags & DIFFU_DECODE_SKIP_SPECIAL) && (tok->flags[id] & TOKF_SPECIAL)) continue;
        diffu_text_append(raw, tok->dec_pool + tok->dec_off[id], tok->dec_len[id]);
    }
}

void diffu_tokenizer_decode(const diffu_tokenizer *tok, const int32_t *ids, size_t n, int flags, diffu_text *out) {
    diffu_text raw = {0};
    append_token_bytes(tok, ids, n, flags, &raw);
    if (tok_utf8_valid(raw.data, raw.len)) diffu_text_append(out, raw.data ? raw.data : "", raw.len);
    else diffu_utf8_lossy(raw.data, raw.len, out, NULL);
    diffu_text_free(&raw);
}

struct diffu_detok {
    const diffu_tokenizer *tok;
    int flags;
    diffu_text raw; /* bytes not yet emitted: at most an unfinished character */
};

diffu_detok *diffu_detok_new(const diffu_tokenizer *tok, int flags) {
    diffu_detok *d = diffu_xcalloc(1, sizeof *d);
    d->tok = tok;
    d->flags = flags;
    return d;
}

void diffu_detok_push(diffu_detok *d, const int32_t *ids, size_t n, diffu_text *out) {
    append_token_bytes(d->tok, ids, n, d->flags, &d->raw);
    if (!d->raw.len) return;
    size_t hold = 0;
    diffu_utf8_lossy(d->raw.data, d->raw.len, out, &hold);
    memmove(d->raw.data, d->raw.data + d->raw.len - hold, hold);
    d->raw.len = hold;
}

void diffu_detok_finish(diffu_detok *d, diffu_text *out) {
    if (d->raw.len) diffu_utf8_lossy(d->raw.data, d->raw.len, out, NULL);
    d->raw.len = 0;
}

size_t diffu_detok_pending(const diffu_detok *d) { return d->raw.len; }

void diffu_detok_free(diffu_detok **d) {
    if (!d || !*d) return;
    diffu_text_free(&(*d)->raw);
    free(*d);
    *d = NULL;
}
