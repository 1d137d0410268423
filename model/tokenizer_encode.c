/* tokenizer_encode.c — text -> ids: added-token splitting, NFC (utf8proc),
 * pre-tokenizer regex (PCRE2 with JIT), byte-level BPE by merge rank with a
 * word cache. The order of steps and every tie-break follow
 * huggingface/tokenizers (added_vocabulary.rs find_matches, normalizer NFC,
 * Split "Isolated", models/bpe/word.rs merge_all); see tokenizer.h.
 *
 * Per-thread state (PCRE2 match data and JIT stack, the word cache, BPE work
 * arrays, text buffers) lives in a tok_scratch taken from the tokenizer's
 * mutex-guarded pool for the duration of one encode call, so concurrent
 * encodes never share mutable state and the pool holds at most one scratch
 * per concurrent caller. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer_int.h"

/* tokenizer_decode.c */
int tok_utf8_valid(const char *s, size_t n);

/* ---- Unicode classes from utf8proc --------------------------------------- */

#define UNI_MAX 0x110000
static uint8_t *uni_cat; /* general category of every code point, utf8proc's */
static pthread_once_t uni_once = PTHREAD_ONCE_INIT;

static void uni_init(void) {
    uni_cat = diffu_xmalloc(UNI_MAX);
    for (int32_t c = 0; c < UNI_MAX; c++) uni_cat[c] = (uint8_t)utf8proc_category(c);
}

/* White_Space, the definition of \s in Oniguruma (tokenizers' regex engine)
 * for Unicode text: 9-D, 20, 85, A0, 1680, 2000-200A, 2028, 2029, 202F, 205F,
 * 3000. PCRE2's own \s (UCP) would add U+180E, Node's would add U+FEFF. */
static const char WS_RANGES[] =
    "\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}";

/* Bit set over utf8proc categories for a property name, 0 if unknown. */
static uint32_t cat_mask(const char *name, size_t n) {
    static const struct { const char *n; uint32_t m; } T[] = {
        {"L", (1u << UTF8PROC_CATEGORY_LU) | (1u << UTF8PROC_CATEGORY_LL) | (1u << UTF8PROC_CATEGORY_LT) |
                  (1u << UTF8PROC_CATEGORY_LM) | (1u << UTF8PROC_CATEGORY_LO)},
        {"Lu", 1u << UTF8PROC_CATEGORY_LU}, {"Ll", 1u << UTF8PROC_CATEGORY_LL}, {"Lt", 1u << UTF8PROC_CATEGORY_LT},
        {"Lm", 1u << UTF8PROC_CATEGORY_LM}, {"Lo", 1u << UTF8PROC_CATEGORY_LO},
        {"M", (1u << UTF8PROC_CATEGORY_MN) | (1u << UTF8PROC_CATEGORY_MC) | (1u << UTF8PROC_CATEGORY_ME)},
        {"Mn", 1u << UTF8PROC_CATEGORY_MN}, {"Mc", 1u << UTF8PROC_CATEGORY_MC}, {"Me", 1u << UTF8PROC_CATEGORY_ME},
        {"N", (1u << UTF8PROC_CATEGORY_ND) | (1u << UTF8PROC_CATEGORY_NL) | (1u << UTF8PROC_CATEGORY_NO)},
        {"Nd", 1u << UTF8PROC_CATEGORY_ND}, {"Nl", 1u << UTF8PROC_CATEGORY_NL}, {"No", 1u << UTF8PROC_CATEGORY_NO},
        {"P", (1u << UTF8PROC_CATEGORY_PC) | (1u << UTF8PROC_CATEGORY_PD) | (1u << UTF8PROC_CATEGORY_PS) |
                  (1u << UTF8PROC_CATEGORY_PE) | (1u << UTF8PROC_CATEGORY_PI) | (1u << UTF8PROC_CATEGORY_PF) |
                  (1u << UTF8PROC_CATEGORY_PO)},
        {"S", (1u << UTF8PROC_CATEGORY_SM) | (1u << UTF8PROC_CATEGORY_SC) | (1u << UTF8PROC_CATEGORY_SK) |
                  (1u << UTF8PROC_CATEGORY_SO)},
        {"Z", (1u << UTF8PROC_CATEGORY_ZS) | (1u << UTF8PROC_CATEGORY_ZL) | (1u << UTF8PROC_CATEGORY_ZP)},
        {"Zs", 1u << UTF8PROC_CATEGORY_ZS},
    };
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        if (strlen(T[i].n) == n && !memcmp(T[i].n, name, n)) return T[i].m;
    return 0;
}

/* Append the code point ranges of the categories in mask, as class items. */
static void append_cat_ranges(diffu_text *out, uint32_t mask) {
    pthread_once(&uni_once, uni_init);
    char buf[48];
    int32_t c = 0;
    while (c < UNI_MAX) {
        if (!(mask >> uni_cat[c] & 1)) {
            c++;
            continue;
        }
        int32_t s = c;
        while (c < UNI_MAX && (mask >> uni_cat[c] & 1)) c++;
        int k = c - 1 == s ? snprintf(buf, sizeof buf, "\\x{%x}", (unsigned)s)
                           : snprintf(buf, sizeof buf, "\\x{%x}-\\x{%x}", (unsigned)s, (unsigned)(c - 1));
        diffu_text_append(out, buf, (size_t)k);
    }
}

/* Rewrite \s, \S, \p{X}, \P{X} (X a general category) of an Oniguruma
 * pattern into explicit classes; everything else is passed to PCRE2 as is. */
static void translate_pattern(const char *p, size_t n, diffu_text *out) {
    int in_class = 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char e = p[i + 1];
            if (e == 's' || (e == 'S' && !in_class)) {
                if (!in_class) diffu_text_append(out, e == 'S' ? "[^" : "[", e == 'S' ? 2 : 1);
                diffu_text_append(out, WS_RANGES, sizeof WS_RANGES - 1);
                if (!in_class) diffu_text_append(out, "]", 1);
                i++;
                continue;
            }
            if ((e == 'p' || (e == 'P' && !in_class)) && i + 2 < n) {
                const char *name = p + i + 2;
                size_t nl = 1, skip = 3;
                if (*name == '{') {
                    const char *close = memchr(name, '}', n - (i + 2));
                    if (close) {
                        name++;
                        nl = (size_t)(close - name);
                        skip = 2 + nl + 2;
                    }
                }
                uint32_t m = cat_mask(name, nl);
                if (m) {
                    if (!in_class) diffu_text_append(out, e == 'P' ? "[^" : "[", e == 'P' ? 2 : 1);
                    append_cat_ranges(out, m);
                    if (!in_class) diffu_text_append(out, "]", 1);
                    i += skip - 1;
                    continue;
                }
            }
            diffu_text_append(out, p + i, 2);
            i++;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = 1;
            diffu_text_append(out, p + i, 1);
            /* a ']' right after '[' or '[^' is a literal */
            if (i + 1 < n && p[i + 1] == '^') diffu_text_append(out, p + ++i, 1);
            if (i + 1 < n && p[i + 1] == ']') diffu_text_append(out, p + ++i, 1);
            continue;
        }
        if (in_class && c == '[' && i + 1 < n && p[i + 1] == ':') {
            const char *close = strstr(p + i, ":]");
            if (close && (size_t)(close - p) < n) {
                size_t k = (size_t)(close - (p + i)) + 2;
                diffu_text_append(out, p + i, k);
                i += k - 1;
                continue;
            }
        }
        if (in_class && c == ']') in_class = 0;
        diffu_text_append(out, p + i, 1);
    }
}

pcre2_code *tok_regex_compile(const char *pattern, size_t len, int literal, diffu_err *err) {
    diffu_text t = {0};
    uint32_t opts = PCRE2_UTF | PCRE2_UCP;
    if (literal) {
        diffu_text_append(&t, pattern, len);
        opts |= PCRE2_LITERAL;
    } else {
        translate_pattern(pattern, len, &t);
    }
    int ecode;
    PCRE2_SIZE eoff;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)(t.data ? t.data : ""), t.len, opts, &ecode, &eoff, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ecode, msg, sizeof msg);
        diffu_err_set(err, "regex does not compile: %s", (char *)msg);
        diffu_text_free(&t);
        return NULL;
    }
    diffu_text_free(&t);
    if (pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) != 0)
        DLOG_DEBUG("tokenizer: PCRE2 JIT unavailable, using the interpreter");
    return re;
}

/* ---- added tokens -------------------------------------------------------- */

static const diffu_tokenizer *sort_tok;
static int cmp_added_for_match(const void *x, const void *y) {
    const tok_added *a = &sort_tok->added[*(const int32_t *)x], *b = &sort_tok->added[*(const int32_t *)y];
    unsigned char fa = (unsigned char)a->content[0], fb = (unsigned char)b->content[0];
    if (fa != fb) return fa < fb ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1; /* longest first */
    return memcmp(a->content, b->content, a->len);
}

static void matcher_build(diffu_tokenizer *tok, tok_matcher *m, int normalized) {
    m->order = diffu_xmalloc((tok->n_added + 1) * sizeof(int32_t));
    m->n = 0;
    for (size_t i = 0; i < tok->n_added; i++)
        if (!!(tok->added[i].flags & ADDED_NORMALIZED) == normalized && tok->added[i].len > 0)
            m->order[m->n++] = (int32_t)i;
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER; /* qsort has no context argument */
    pthread_mutex_lock(&mu);
    sort_tok = tok;
    qsort(m->order, m->n, sizeof(int32_t), cmp_added_for_match);
    pthread_mutex_unlock(&mu);
    size_t k = 0;
    for (int b = 0; b < 256; b++) {
        m->start[b] = (uint32_t)k;
        while (k < m->n && (unsigned char)tok->added[m->order[k]].content[0] == b) k++;
    }
    m->start[256] = (uint32_t)k;
}

void tok_matchers_build(diffu_tokenizer *tok) {
    matcher_build(tok, &tok->match_raw, 0);
    matcher_build(tok, &tok->match_norm, 1);
}

/* Unicode \w as the Rust regex crate has it (tokenizers' single_word check):
 * Alphabetic (L, Nl, Other_Alphabetic), M, Nd, Pc, Join_Control. From
 * utf8proc's categories; Other_Alphabetic outside L/M is the circled and
 * squared Latin letters (So). */
static int is_word_cp(int32_t c) {
    if (c < 0x80) return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    int cat = utf8proc_category(c);
    return (cat >= UTF8PROC_CATEGORY_LU && cat <= UTF8PROC_CATEGORY_NL) || cat == UTF8PROC_CATEGORY_PC ||
           c == 0x200C || c == 0x200D || (c >= 0x24B6 && c <= 0x24E9) || (c >= 0x1F130 && c <= 0x1F149) ||
           (c >= 0x1F150 && c <= 0x1F169) || (c >= 0x1F170 && c <= 0x1F189);
}

static int is_ws_cp(int32_t c) {
    return (c >= 9 && c <= 13) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Code point ending at s[end) (valid UTF-8), and its start. */
static int32_t cp_before(const char *s, size_t end, size_t *start) {
    size_t i = end;
    do i--;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80);
    *start = i;
    utf8proc_int32_t c;
    utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(end - i), &c);
    return c;
}

static int32_t cp_at(const char *s, size_t n, size_t i, size_t *next) {
    utf8proc_int32_t c;
    utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
    *next = i + (k > 0 ? (size_t)k : 1);
    return c;
}

/* Leftmost-longest match of an added token in s[from..n); returns the index
 * into tok->added and the span, or -1. */
static int find_added_at(const diffu_tokenizer *tok, const tok_matcher *m, const char *s, size_t n, size_t from,
                         size_t *ms, size_t *me) {
    if (!m->n) return -1;
    for (size_t i = from; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        uint32_t lo = m->start[b], hi = m->start[b + 1];
        for (uint32_t k = lo; k < hi; k++) {
            const tok_added *a = &tok->added[m->order[k]];
            if (a->len <= n - i && memcmp(a->content, s + i, a->len) == 0) {
                *ms = i;
                *me = i + a->len;
                return m->order[k];
            }
        }
    }
    return -1;
}

/* ---- scratch pool -------------------------------------------------------- */

struct tok_sym {
    int32_t c;
    int32_t prev, next;
    int32_t len; /* 0 = merged away */
};
struct tok_merge {
    uint32_t rank;
    int32_t pos;
    int32_t merged;
};

static tok_scratch *scratch_get(const diffu_tokenizer *ctok) {
    diffu_tokenizer *tok = (diffu_tokenizer *)ctok; /* the pool is the only mutable part */
    pthread_mutex_lock(&tok->pool_mu);
    tok_scratch *s = tok->pool_free;
    if (s) tok->pool_free = s->next_free;
    pthread_mutex_unlock(&tok->pool_mu);
    if (s) return s;
    s = diffu_xcalloc(1, sizeof *s);
    s->md = pcre2_match_data_create(1, NULL);
    s->mctx = pcre2_match_context_create(NULL);
    s->jstack = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, NULL);
    if (!s->md || !s->mctx || !s->jstack) diffu_assert_fail(__FILE__, __LINE__, "pcre2 alloc", "out of memory");
    pcre2_jit_stack_assign(s->mctx, NULL, s->jstack);
    s->wmask = TOK_CACHE_SLOTS - 1;
    s->wslot = diffu_xcalloc(TOK_CACHE_SLOTS, sizeof(tok_wslot));
    pthread_mutex_lock(&tok->pool_mu);
    s->next_all = tok->pool_all;
    tok->pool_all = s;
    pthread_mutex_unlock(&tok->pool_mu);
    return s;
}

static void scratch_put(const diffu_tokenizer *ctok, tok_scratch *s) {
    diffu_tokenizer *tok = (diffu_tokenizer *)ctok;
    pthread_mutex_lock(&tok->pool_mu);
    s->next_free = tok->pool_free;
    tok->pool_free = s;
    pthread_mutex_unlock(&tok->pool_mu);
}

void tok_scratch_free_all(diffu_tokenizer *tok) {
    tok_scratch *s = tok->pool_all;
    while (s) {
        tok_scratch *nx = s->next_all;
        pcre2_match_data_free(s->md);
        pcre2_match_context_free(s->mctx);
        pcre2_jit_stack_free(s->jstack);
        diffu_text_free(&s->repaired);
        diffu_text_free(&s->norm);
        free(s->wslot);
        free(s->wkeys);
        free(s->wids);
        free(s->sym);
        free(s->heap);
        free(s);
        s = nx;
    }
    tok->pool_all = tok->pool_free = NULL;
}

/* ---- word cache ---------------------------------------------------------- */

static void cache_clear(tok_scratch *s) {
    memset(s->wslot, 0, (s->wmask + 1) * sizeof(tok_wslot));
    s->wcount = s->wkeys_len = s->wids_len = 0;
}

static tok_wslot *cache_find(tok_scratch *s, const char *w, size_t n, uint64_t h) {
    size_t i = (size_t)h & s->wmask;
    for (;;) {
        tok_wslot *e = &s->wslot[i];
        if (!e->key_len) return e;
        if (e->hash == h && e->key_len == n && memcmp(s->wkeys + e->key_off, w, n) == 0) return e;
        i = (i + 1) & s->wmask;
    }
}

static void cache_store(tok_scratch *s, tok_wslot *e, const char *w, size_t n, uint64_t h, const int32_t *ids,
                        size_t k) {
    if (s->wcount * 4 >= (s->wmask + 1) * 3 || s->wkeys_len + n > (8u << 20) || s->wids_len + k > (2u << 20)) {
        cache_clear(s);
        e = cache_find(s, w, n, h);
    }
    if (s->wkeys_len + n > s->wkeys_cap) {
        s->wkeys_cap = (s->wkeys_len + n) * 2 + 4096;
        s->wkeys = diffu_xrealloc(s->wkeys, s->wkeys_cap);
    }
    if (s->wids_len + k > s->wids_cap) {
        s->wids_cap = (s->wids_len + k) * 2 + 1024;
        s->wids = diffu_xrealloc(s->wids, s->wids_cap * sizeof(int32_t));
    }
    memcpy(s->wkeys + s->wkeys_len, w, n);
    memcpy(s->wids + s->wids_len, ids, k * sizeof(int32_t));
    e->hash = h;
    e->key_off = (uint32_t)s->wkeys_len;
    e->key_len = (uint16_t)n;
    e->ids_off = (uint32_t)s->wids_len;
    e->n_ids = (uint16_t)k;
    s->wkeys_len += n;
    s->wids_len += k;
    s->wcount++;
}

/* ---- BPE ----------------------------------------------------------------- */

static inline int merge_less(const struct tok_merge *a, const struct tok_merge *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static void heap_push(tok_scratch *s, size_t *hn, struct tok_merge m) {
    if (*hn == s->heap_cap) {
        s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 256;
        s->heap = diffu_xrealloc(s->heap, s->heap_cap * sizeof *s->heap);
    }
    size_t i = (*hn)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!merge_less(&m, &s->heap[p])) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = m;
}

static struct tok_merge heap_pop(tok_scratch *s, size_t *hn) {
    struct tok_merge top = s->heap[0], last = s->heap[--(*hn)];
    size_t i = 0, n = *hn;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= n) break;
        size_t c = (l + 1 < n && merge_less(&s->heap[l + 1], &s->heap[l])) ? l + 1 : l;
        if (!merge_less(&s->heap[c], &last)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n) s->heap[i] = last;
    return top;
}

/* BPE of one pre-token's raw bytes, appended to out (models/bpe/word.rs
 * merge_all: lowest rank first, leftmost on ties, stale entries skipped). */
static void bpe_compute(const diffu_tokenizer *tok, tok_scratch *s, const char *w, size_t n, diffu_ids *out) {
    if (tok->ignore_merges) {
        int32_t id = tok_strmap_get(tok, &tok->vocab, w, n);
        if (id >= 0) {
            diffu_ids_push(out, id);
            return;
        }
    }
    if (n > s->sym_cap) {
        s->sym_cap = n * 2;
        s->sym = diffu_xrealloc(s->sym, s->sym_cap * sizeof *s->sym);
    }
    struct tok_sym *sym = s->sym;
    int32_t m = 0, unk_len = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t id = tok->byte_id[(unsigned char)w[i]];
        if (id >= 0) {
            if (unk_len) {
                sym[m] = (struct tok_sym){tok->unk_id, m - 1, m + 1, unk_len};
                m++;
                unk_len = 0;
            }
            sym[m] = (struct tok_sym){id, m - 1, m + 1, 1};
            m++;
        } else if (tok->unk_id >= 0) {
            if (unk_len && !tok->fuse_unk) {
                sym[m] = (struct tok_sym){tok->unk_id, m - 1, m + 1, unk_len};
                m++;
                unk_len = 0;
            }
            unk_len++;
        }
    }
    if (unk_len) {
        sym[m] = (struct tok_sym){tok->unk_id, m - 1, m + 1, unk_len};
        m++;
    }
    if (m == 0) return;
    sym[m - 1].next = -1;
    size_t hn = 0;
    uint32_t rank;
    int32_t merged;
    for (int32_t i = 0; i + 1 < m; i++)
        if (tok_pairmap_get(&tok->merges, sym[i].c, sym[i + 1].c, &rank, &merged))
            heap_push(s, &hn, (struct tok_merge){rank, i, merged});
    while (hn) {
        struct tok_merge top = heap_pop(s, &hn);
        struct tok_sym *cur = &sym[top.pos];
        if (cur->len == 0 || cur->next == -1) continue;
        int32_t nx = cur->next;
        struct tok_sym right = sym[nx];
        if (!tok_pairmap_get(&tok->merges, cur->c, right.c, &rank, &merged) || merged != top.merged) continue;
        cur->c = top.merged;
        cur->len += right.len;
        cur->next = right.next;
        sym[nx].len = 0;
        if (right.next >= 0) sym[right.next].prev = top.pos;
        if (cur->prev >= 0 && tok_pairmap_get(&tok->merges, sym[cur->prev].c, cur->c, &rank, &merged))
            heap_push(s, &hn, (struct tok_merge){rank, cur->prev, merged});
        if (cur->next >= 0 && tok_pairmap_get(&tok->merges, cur->c, sym[cur->next].c, &rank, &merged))
            heap_push(s, &hn, (struct tok_merge){rank, top.pos, merged});
    }
    for (int32_t i = 0; i >= 0; i = sym[i].next) diffu_ids_push(out, sym[i].c);
}

static void bpe_word(const diffu_tokenizer *tok, tok_scratch *s, const char *w, size_t n, diffu_ids *out) {
    if (n == 0) return;
    if (n == 1 && tok->byte_id[(unsigned char)w[0]] >= 0) {
        diffu_ids_push(out, tok->byte_id[(unsigned char)w[0]]);
        return;
    }
    if (n > TOK_CACHE_MAX_WORD) {
        bpe_compute(tok, s, w, n, out);
        return;
    }
    uint64_t h = tok_hash_bytes(w, n);
    tok_wslot *e = cache_find(s, w, n, h);
    if (e->key_len) {
        for (uint16_t k = 0; k < e->n_ids; k++) diffu_ids_push(out, s->wids[e->ids_off + k]);
        return;
    }
    size_t before = out->len;
    bpe_compute(tok, s, w, n, out);
    /* A word can encode to no ids at all (a vocabulary without its bytes and
     * no unk token): nothing to cache, and out->data may still be NULL. */
    size_t got = out->len - before;
    if (got > 0 && got <= 0xFFFF) cache_store(s, e, w, n, h, out->data + before, got);
}

/* ---- pre-tokenizer ------------------------------------------------------- */

static int pretokenize(const diffu_tokenizer *tok, tok_scratch *s, int step, const char *p, size_t n, diffu_ids *out,
                       diffu_err *err);

/* Split p[0..n) with step's regex (tokenizers' Pattern::find_matches: gaps
 * and matches in order, empty pieces dropped, an empty match only cuts) and
 * hand every piece to the next step. */
static int split_step(const diffu_tokenizer *tok, tok_scratch *s, int step, const char *p, size_t n, diffu_ids *out,
                      diffu_err *err) {
    const tok_prestep *st = &tok->pre[step];
    if (!st->re) return pretokenize(tok, s, step + 1, p, n, out, err);
    size_t prev = 0, from = 0;
    int jit = 1;
    while (from <= n) {
        int rc = jit ? pcre2_jit_match(st->re, (PCRE2_SPTR)p, n, from, PCRE2_NO_UTF_CHECK, s->md, s->mctx)
                     : pcre2_match(st->re, (PCRE2_SPTR)p, n, from, PCRE2_NO_UTF_CHECK, s->md, s->mctx);
        if (jit && (rc == PCRE2_ERROR_JIT_BADOPTION || rc == PCRE2_ERROR_JIT_STACKLIMIT)) {
            jit = 0; /* no JIT code, or a pathological input: retry with the interpreter */
            continue;
        }
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return diffu_err_set(err, "tokenizer: regex match failed (PCRE2 error %d)", rc);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(s->md);
        size_t ms = ov[0], me = ov[1];
        if (ms > prev && pretokenize(tok, s, step + 1, p + prev, ms - prev, out, err) < 0) return -1;
        if (me > ms && st->behavior == SPLIT_ISOLATED && pretokenize(tok, s, step + 1, p + ms, me - ms, out, err) < 0)
            return -1;
        prev = me;
        if (me > ms) {
            from = me;
        } else {
            if (me >= n) break;
            size_t nx;
            cp_at(p, n, me, &nx);
            from = nx;
        }
    }
    if (prev < n) return pretokenize(tok, s, step + 1, p + prev, n - prev, out, err);
    return 0;
}

static int pretokenize(const diffu_tokenizer *tok, tok_scratch *s, int step, const char *p, size_t n, diffu_ids *out,
                       diffu_err *err) {
    if (n == 0) return 0;
    if (step == tok->n_pre) {
        bpe_word(tok, s, p, n, out);
        return 0;
    }
    const tok_prestep *st = &tok->pre[step];
    if (st->kind == PRE_BYTELEVEL && st->add_prefix_space && p[0] != ' ') {
        char *buf = diffu_xmalloc(n + 1);
        buf[0] = ' ';
        memcpy(buf + 1, p, n);
        int r = split_step(tok, s, step, buf, n + 1, out, err);
        free(buf);
        return r;
    }
    return split_step(tok, s, step, p, n, out, err);
}

/* ---- NFC ----------------------------------------------------------------- */

/* "Trivial" code points: NFC_Quick_Check=Yes, canonically stable starters
 * that are never the second character of a composition: everything below
 * U+0300 and the CJK Unified Ideographs U+4E00..U+9FFF. NFC never changes a
 * run of them, and NFC(A + tB) == NFC(A) + NFC(tB) when t is trivial, so the
 * text splits before every trivial character into independent segments. */
static size_t trivial_len(const unsigned char *u, size_t n, size_t i) {
    unsigned char c = u[i];
    if (c < 0x80) return 1;
    if (c < 0xCC) return 2; /* U+0080..U+02FF */
    if (c >= 0xE4 && c <= 0xE9 && i + 2 < n) {
        uint32_t cp = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(u[i + 1] & 0x3F) << 6) | (u[i + 2] & 0x3F);
        if (cp >= 0x4E00) return 3;
    }
    return 0;
}

static size_t utf8_len(unsigned char c) { return c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2; }

/* NFC of one segment with utf8proc's data and steps, except the canonical
 * reordering: utf8proc_decompose_custom does it with a gnome sort, quadratic
 * in a run of combining marks (a prompt of 10^6 alternating marks would take
 * hours). Here each run of non-starters is stable-sorted by combining class
 * (insertion sort, counting sort for long runs), which is the same order. */
static void nfc_segment(const unsigned char *s, size_t n, diffu_text *out) {
    size_t cap = n + 16, len = 0;
    int32_t *buf = diffu_xmalloc(cap * sizeof(int32_t));
    size_t i = 0;
    int boundclass = UTF8PROC_BOUNDCLASS_START;
    while (i < n) {
        utf8proc_int32_t uc;
        utf8proc_ssize_t k = utf8proc_iterate(s + i, (utf8proc_ssize_t)(n - i), &uc);
        DIFFU_ASSERT(k > 0); /* callers pass valid UTF-8 */
        i += (size_t)k;
        for (;;) {
            utf8proc_ssize_t r = utf8proc_decompose_char(uc, buf + len, (utf8proc_ssize_t)(cap - len),
                                                         UTF8PROC_STABLE | UTF8PROC_COMPOSE, &boundclass);
            DIFFU_ASSERT(r >= 0);
            if ((size_t)r <= cap - len) {
                len += (size_t)r;
                break;
            }
            cap = cap * 2 + (size_t)r;
            buf = diffu_xrealloc(buf, cap * sizeof(int32_t));
        }
    }
    /* canonical ordering: stable sort of every maximal run with ccc > 0 */
    uint8_t *ccc = diffu_xmalloc(len + 1);
    for (size_t j = 0; j < len; j++) ccc[j] = (uint8_t)utf8proc_get_property(buf[j])->combining_class;
    int32_t *tmp = NULL;
    uint8_t *tmpc = NULL;
    for (size_t a = 0; a < len;) {
        if (!ccc[a]) {
            a++;
            continue;
        }
        size_t b = a;
        while (b < len && ccc[b]) b++;
        if (b - a <= 32) {
            for (size_t x = a + 1; x < b; x++) {
                int32_t v = buf[x];
                uint8_t c = ccc[x];
                size_t y = x;
                while (y > a && ccc[y - 1] > c) {
                    buf[y] = buf[y - 1];
                    ccc[y] = ccc[y - 1];
                    y--;
                }
                buf[y] = v;
                ccc[y] = c;
            }
        } else {
            size_t cnt[257] = {0};
            if (!tmp) {
                tmp = diffu_xmalloc(len * sizeof(int32_t));
                tmpc = diffu_xmalloc(len);
            }
            for (size_t x = a; x < b; x++) cnt[ccc[x] + 1]++;
            for (int c = 1; c < 257; c++) cnt[c] += cnt[c - 1];
            for (size_t x = a; x < b; x++) {
                size_t at = cnt[ccc[x]]++;
                tmp[at] = buf[x];
                tmpc[at] = ccc[x];
            }
            memcpy(buf + a, tmp, (b - a) * sizeof(int32_t));
            memcpy(ccc + a, tmpc, b - a);
        }
        a = b;
    }
    free(tmp);
    free(tmpc);
    free(ccc);
    utf8proc_ssize_t m = utf8proc_normalize_utf32(buf, (utf8proc_ssize_t)len, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    DIFFU_ASSERT(m >= 0);
    for (utf8proc_ssize_t j = 0; j < m; j++) {
        utf8proc_uint8_t enc[4];
        utf8proc_ssize_t e = utf8proc_encode_char(buf[j], enc);
        diffu_text_append(out, (const char *)enc, (size_t)e);
    }
    free(buf);
}

void diffu_utf8_nfc(const char *s, size_t n, diffu_text *out) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, done = 0, last_start = 0; /* last_start: start of the last trivial character */
    while (i < n) {
        size_t k = trivial_len(u, n, i);
        if (k) {
            last_start = i;
            i += k;
            continue;
        }
        /* a non-trivial run: from the trivial starter before it (which may
         * compose with it) to the next trivial character */
        size_t from = last_start >= done && last_start < i ? last_start : i;
        while (i < n && !trivial_len(u, n, i)) i += utf8_len(u[i]);
        if (i > n) i = n;
        diffu_text_append(out, s + done, from - done);
        nfc_segment(u + from, i - from, out);
        done = i;
    }
    diffu_text_append(out, s + done, n - done);
}

/* ---- encode -------------------------------------------------------------- */

/* tokenizers' AddedVocabulary::find_matches on s[0..n) for one matcher: the
 * spans of matched tokens (id >= 0) and of the text between them (id -1). */
typedef struct {
    size_t start, end;
    int32_t id; /* -1: text */
} tok_span;

static size_t find_matches(const diffu_tokenizer *tok, const tok_matcher *m, const char *s, size_t n, tok_span **spans,
                           size_t *cap) {
    size_t ns = 0, start_offset = 0, from = 0;
#define PUSH_SPAN(a, b, i)                                                        \
    do {                                                                          \
        if (ns == *cap) {                                                         \
            *cap = *cap ? *cap * 2 : 16;                                          \
            *spans = diffu_xrealloc(*spans, *cap * sizeof **spans);               \
        }                                                                         \
        (*spans)[ns++] = (tok_span){(a), (b), (i)};                               \
    } while (0)
    while (from < n) {
        size_t ms, me;
        int k = find_added_at(tok, m, s, n, from, &ms, &me);
        if (k < 0) break;
        const tok_added *a = &tok->added[k];
        from = me; /* the automaton resumes after the match, kept or not */
        if (a->flags & ADDED_SINGLE_WORD) {
            size_t ps, nx;
            int start_ok = ms == 0 || !is_word_cp(cp_before(s, ms, &ps));
            int stop_ok = me == n || !is_word_cp(cp_at(s, n, me, &nx));
            if (!start_ok || !stop_ok) continue;
        }
        if (a->flags & ADDED_LSTRIP) {
            size_t ns2 = ms, ps;
            while (ns2 > 0 && is_ws_cp(cp_before(s, ns2, &ps))) ns2 = ps;
            ms = ns2 > start_offset ? ns2 : start_offset;
        }
        if (a->flags & ADDED_RSTRIP) {
            size_t nx;
            while (me < n && is_ws_cp(cp_at(s, n, me, &nx))) me = nx;
            from = me;
        }
        if (start_offset < ms) PUSH_SPAN(start_offset, ms, -1);
        PUSH_SPAN(ms, me, a->id);
        start_offset = me;
    }
    if (start_offset < n) PUSH_SPAN(start_offset, n, -1);
#undef PUSH_SPAN
    return ns;
}

int diffu_tokenizer_encode(const diffu_tokenizer *tok, const char *text, size_t len, diffu_ids *out, diffu_err *err) {
    if (len == 0) return 0;
    tok_scratch *s = scratch_get(tok);
    int rc = 0;
    if (!tok_utf8_valid(text, len)) {
        s->repaired.len = 0;
        diffu_utf8_lossy(text, len, &s->repaired, NULL);
        text = s->repaired.data;
        len = s->repaired.len;
    }
    tok_span *spans = NULL, *nspans = NULL;
    size_t cap = 0, ncap = 0;
    size_t n = find_matches(tok, &tok->match_raw, text, len, &spans, &cap);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (spans[i].id >= 0) {
            diffu_ids_push(out, spans[i].id);
            continue;
        }
        const char *p = text + spans[i].start;
        size_t pn = spans[i].end - spans[i].start;
        if (!tok->match_norm.n) {
            if (tok->nfc) {
                s->norm.len = 0;
                diffu_utf8_nfc(p, pn, &s->norm);
                p = s->norm.data ? s->norm.data : "";
                pn = s->norm.len;
            }
            rc = pretokenize(tok, s, 0, p, pn, out, err);
            continue;
        }
        /* normalize, then the second pass over normalized tokens */
        diffu_text normed = {0};
        if (tok->nfc) diffu_utf8_nfc(p, pn, &normed);
        else diffu_text_append(&normed, p, pn);
        size_t m = find_matches(tok, &tok->match_norm, normed.data, normed.len, &nspans, &ncap);
        for (size_t j = 0; j < m && rc == 0; j++) {
            if (nspans[j].id >= 0) diffu_ids_push(out, nspans[j].id);
            else
                rc = pretokenize(tok, s, 0, normed.data + nspans[j].start, nspans[j].end - nspans[j].start, out,
                                 err);
        }
        diffu_text_free(&normed);
    }
    free(spans);
    free(nspans);
    scratch_put(tok, s);
    return rc;
}
