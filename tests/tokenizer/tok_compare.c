/* tok_compare.c — diffu's tokenizer against the references of oracle.js,
 * record by record: Hugging Face's Rust tokenizers library (tokenizers@0.23.2
 * on npm) and the independent JavaScript port @lenml/tokenizers@3.7.2, both on
 * the same tokenizer.json.
 *
 *   tok_compare TOKENIZER_DIR CORPUS.bin ORACLE.bin [--threads N]
 *
 * Checks, for every text record x (corpus format: see oracle.js):
 *   ids       encode(x) == the Rust library's ids, and == lenml's ("compat")
 *   stock     where the published lenml differs from its compat mode, x holds
 *             a character of a documented deviation (U+0085, U+FEFF, 'ſ)
 *   roundtrip decode(encode(x)) == NFC(x) as computed by ICU (node), except
 *             where an added token is followed by a mark NFC would compose
 *             into it (">" + U+0338): then == NFC of the pieces between tokens
 *   decode    decode(ids) == the Rust library's and lenml's decode
 *   stream    the incremental decoder fed in random chunks == decode
 * and for every id record: decode with and without skipping special tokens
 * == both references', whole and streamed.
 * Encoding runs on N threads sharing one tokenizer (default 4), then every
 * 7th record is re-encoded on one thread: results must be identical.
 * Prints per-category counts and a closing "N passed, M failed". */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

static const char *CATS[] = {"code",      "prose",      "nfd", "whitespace", "special",
                             "emoji",     "fuzz_text",  "fuzz_bytes", "ids", "unicode15"};
#define NCAT 10

typedef struct {
    int kind, cat;
    const unsigned char *p;
    size_t n;
    /* references: r = Rust tokenizers, c/s = lenml compat/stock */
    const uint32_t *ids_r, *ids_c, *ids_s;
    size_t n_r, n_c, n_s;
    const char *nfc, *pieces, *dec[4]; /* text: dec[0] rust, dec[1] lenml; ids: rust, rust skip, lenml, lenml skip */
    size_t nfc_n, pieces_n, dec_n[4];
    /* ours */
    diffu_ids mine;
} record;

static unsigned char *read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        exit(2);
    }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)sz + 1);
    if (fread(b, 1, (size_t)sz, f) != (size_t)sz) {
        perror(path);
        exit(2);
    }
    fclose(f);
    *n = (size_t)sz;
    return b;
}

static uint32_t rd32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }

/* The file's u32 arrays are unaligned: copy them out. */
static const uint32_t *copy_ids(const unsigned char *p, size_t n) {
    uint32_t *v = malloc(4 * (n + 1));
    for (size_t i = 0; i < n; i++) v[i] = rd32(p + 4 * i);
    return v;
}

static const diffu_tokenizer *g_tok;
static record *g_rec;
static size_t g_nrec;
static atomic_size_t g_next;

static void *encode_worker(void *arg) {
    (void)arg;
    diffu_err err;
    for (;;) {
        size_t i = atomic_fetch_add(&g_next, 1);
        if (i >= g_nrec) break;
        record *r = &g_rec[i];
        if (r->kind != 1) continue;
        if (diffu_tokenizer_encode(g_tok, (const char *)r->p, r->n, &r->mine, &err) < 0) {
            fprintf(stderr, "record %zu: encode failed: %s\n", i, err.msg);
            exit(1);
        }
    }
    return NULL;
}

static int n_fail_printed;

static void show_bytes(const char *label, const char *s, size_t n, size_t at) {
    size_t a = at > 40 ? at - 40 : 0, b = at + 40 < n ? at + 40 : n;
    fprintf(stderr, "    %s[%zu..%zu): \"", label, a, b);
    for (size_t i = a; i < b; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == '"' || c == '\\') fprintf(stderr, "\\x%02x", c);
        else fputc(c, stderr);
    }
    fprintf(stderr, "\"\n");
}

static int fail(size_t idx, const record *r, const char *what) {
    if (n_fail_printed++ < 12) fprintf(stderr, "FAIL record %zu (%s, %zu bytes): %s\n", idx, CATS[r->cat], r->n, what);
    return 1;
}

static int text_eq(size_t idx, const record *r, const char *what, const char *a, size_t an, const char *b, size_t bn) {
    if (an == bn && memcmp(a, b, an) == 0) return 0;
    size_t k = 0;
    while (k < an && k < bn && a[k] == b[k]) k++;
    if (n_fail_printed < 12) {
        fail(idx, r, what);
        show_bytes("ours  ", a, an, k);
        show_bytes("oracle", b, bn, k);
    } else {
        n_fail_printed++;
    }
    return 1;
}

/* 1 if s[0..n) is well-formed UTF-8 (RFC 3629). */
static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        int k = c < 0x80 ? 0 : c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xF0 && c <= 0xF4 ? 3 : -1;
        if (k < 0 || i + (size_t)k >= n) return 0;
        for (int j = 1; j <= k; j++)
            if ((s[i + j] & 0xC0) != 0x80) return 0;
        if ((c == 0xE0 && s[i + 1] < 0xA0) || (c == 0xED && s[i + 1] > 0x9F) || (c == 0xF0 && s[i + 1] < 0x90) ||
            (c == 0xF4 && s[i + 1] > 0x8F))
            return 0;
        i += (size_t)k + 1;
    }
    return 1;
}

/* Incremental decode of ids in random-sized chunks (seeded per record). */
static void stream_decode(const diffu_tokenizer *tok, const int32_t *ids, size_t n, int flags, unsigned seed,
                          diffu_text *out) {
    diffu_detok *d = diffu_detok_new(tok, flags);
    size_t i = 0;
    while (i < n) {
        seed = seed * 1103515245u + 12345u;
        size_t k = 1 + (seed >> 16) % 4;
        if (k > n - i) k = n - i;
        size_t before = out->len;
        diffu_detok_push(d, ids + i, k, out);
        /* never half a character: every chunk emitted is whole UTF-8 */
        if (!valid_utf8((const unsigned char *)out->data + before, out->len - before)) {
            fprintf(stderr, "tok_compare: the incremental decoder emitted part of a character\n");
            exit(1);
        }
        i += k;
    }
    diffu_detok_finish(d, out);
    diffu_detok_free(&d);
}

static diffu_text g_tmp;
static const diffu_tokenizer *g_show_tok;

/* Our ids vs a reference's; on a difference print where. */
static int ids_eq(size_t idx, const record *r, const char *what, const uint32_t *want, size_t wn) {
    int ok = r->mine.len == wn;
    for (size_t k = 0; ok && k < wn; k++)
        if ((uint32_t)r->mine.data[k] != want[k]) ok = 0;
    if (ok) return 1;
    if (n_fail_printed < 12) {
        size_t j = 0;
        while (j < r->mine.len && j < wn && (uint32_t)r->mine.data[j] == want[j]) j++;
        fail(idx, r, what);
        fprintf(stderr, "    first difference at id %zu (ours %zu ids, reference %zu)\n    ours:     ", j, r->mine.len, wn);
        for (size_t q = j > 3 ? j - 3 : 0; q < j + 6 && q < r->mine.len; q++) fprintf(stderr, " %d", r->mine.data[q]);
        fprintf(stderr, "\n    reference:");
        for (size_t q = j > 3 ? j - 3 : 0; q < j + 6 && q < wn; q++) fprintf(stderr, " %u", want[q]);
        fprintf(stderr, "\n");
        g_tmp.len = 0;
        diffu_tokenizer_decode(g_show_tok, r->mine.data, j, 0, &g_tmp);
        show_bytes("text     ", r->nfc, r->nfc_n, g_tmp.len);
    } else {
        n_fail_printed++;
    }
    return 0;
}

static int has_deviation_char(const record *r) {
    static const char *trig[] = {"\xc2\x85", "\xef\xbb\xbf", "'\xc5\xbf"};
    for (int k = 0; k < 3; k++)
        if (memmem(r->nfc, r->nfc_n, trig[k], strlen(trig[k]))) return 1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: tok_compare TOKENIZER_DIR CORPUS.bin ORACLE.bin [--threads N]\n");
        return 2;
    }
    int threads = 4;
    if (argc >= 6 && !strcmp(argv[4], "--threads")) threads = atoi(argv[5]);
    diffu_err err;
    diffu_tokenizer *tok = diffu_tokenizer_load(argv[1], &err);
    if (!tok) {
        fprintf(stderr, "tok_compare: %s\n", err.msg);
        return 1;
    }
    size_t cn, on;
    unsigned char *cb = read_file(argv[2], &cn), *ob = read_file(argv[3], &on);
    if (cn < 5 || memcmp(cb, "DTKC\x01", 5) || on < 5 || memcmp(ob, "DTKO\x02", 5)) {
        fprintf(stderr, "tok_compare: bad corpus or oracle file\n");
        return 2;
    }
    size_t cap = 1024, n = 0, co = 5, oo = 5;
    record *rec = calloc(cap, sizeof *rec);
#define NEED(k)                                                                             \
    do {                                                                                    \
        if (oo + (k) > on) {                                                                \
            fprintf(stderr, "tok_compare: oracle output is short (rerun oracle.js)\n");     \
            return 2;                                                                       \
        }                                                                                   \
    } while (0)
    while (co < cn) {
        if (n == cap) rec = realloc(rec, (cap *= 2) * sizeof *rec);
        record *r = &rec[n++];
        memset(r, 0, sizeof *r);
        r->kind = cb[co];
        r->cat = cb[co + 1] < NCAT ? cb[co + 1] : 0;
        r->n = rd32(cb + co + 2);
        r->p = cb + co + 6;
        co += 6 + r->n;
#define IDS(P, N)                                      \
    do {                                               \
        NEED(4);                                       \
        N = rd32(ob + oo);                             \
        NEED(4 + 4 * (N));                             \
        P = copy_ids(ob + oo + 4, N);                  \
        oo += 4 + 4 * (N);                             \
    } while (0)
#define BLOB(P, N)                                     \
    do {                                               \
        NEED(4);                                       \
        N = rd32(ob + oo);                             \
        NEED(4 + (N));                                 \
        P = (const char *)ob + oo + 4;                 \
        oo += 4 + (N);                                 \
    } while (0)
        if (r->kind == 1) {
            IDS(r->ids_r, r->n_r);
            IDS(r->ids_c, r->n_c);
            IDS(r->ids_s, r->n_s);
            BLOB(r->nfc, r->nfc_n);
            BLOB(r->dec[0], r->dec_n[0]);
            BLOB(r->dec[1], r->dec_n[1]);
            BLOB(r->pieces, r->pieces_n);
        } else {
            for (int k = 0; k < 4; k++) BLOB(r->dec[k], r->dec_n[k]);
        }
    }

    /* encode everything on `threads` threads sharing the tokenizer */
    g_tok = tok;
    g_show_tok = tok;
    g_rec = rec;
    g_nrec = n;
    double t0 = diffu_now();
    pthread_t th[64];
    if (threads < 1) threads = 1;
    if (threads > 64) threads = 64;
    for (int t = 0; t < threads; t++) pthread_create(&th[t], NULL, encode_worker, NULL);
    for (int t = 0; t < threads; t++) pthread_join(th[t], NULL);
    double dt = diffu_now() - t0;

    size_t pass[NCAT] = {0}, failc[NCAT] = {0}, stock_diff = 0, stock_unexplained = 0, n_ids_cmp = 0, text_bytes = 0;
    size_t passed = 0, failed = 0, not_nfc = 0;
#define CHECK(cond)                     \
    do {                                \
        if (cond) {                     \
            passed++;                   \
            pass[r->cat]++;             \
        } else {                        \
            failed++;                   \
            failc[r->cat]++;            \
        }                               \
    } while (0)
    diffu_text a = {0}, b = {0};
    diffu_ids again = {0};
    for (size_t i = 0; i < n; i++) {
        record *r = &rec[i];
        if (r->kind == 1) {
            text_bytes += r->n;
            n_ids_cmp += r->n_r;
            CHECK(ids_eq(i, r, "ids differ from the Rust tokenizers library", r->ids_r, r->n_r));
            CHECK(ids_eq(i, r, "ids differ from @lenml/tokenizers (compat)", r->ids_c, r->n_c));
            /* published lenml: differences only where a documented deviation applies */
            int same_stock = r->n_s == r->n_c && memcmp(r->ids_s, r->ids_c, 4 * r->n_c) == 0;
            if (!same_stock) {
                stock_diff++;
                if (!has_deviation_char(r)) {
                    stock_unexplained++;
                    fail(i, r, "the published oracle differs from its compat mode without a known cause");
                }
            }
            CHECK(same_stock || has_deviation_char(r));
            /* decode(encode(x)) == NFC(x), or its piecewise form (see the top) */
            a.len = 0;
            diffu_tokenizer_decode(tok, r->mine.data, r->mine.len, 0, &a);
            int pure = r->pieces_n == r->nfc_n && !memcmp(r->pieces, r->nfc, r->nfc_n);
            if (!pure) not_nfc++;
            CHECK(!text_eq(i, r, "decode(encode(x)) != NFC(x)", a.data ? a.data : "", a.len, r->pieces, r->pieces_n));
            CHECK(pure || r->cat == 4); /* only the special-token category has such text */
            /* decode of each reference's ids == that reference's decode, whole and streamed */
            for (int k = 0; k < 2; k++) {
                const uint32_t *rid = k ? r->ids_c : r->ids_r;
                size_t rn = k ? r->n_c : r->n_r;
                int32_t *oid = malloc(4 * (rn + 1));
                for (size_t q = 0; q < rn; q++) oid[q] = (int32_t)rid[q];
                b.len = 0;
                diffu_tokenizer_decode(tok, oid, rn, 0, &b);
                CHECK(!text_eq(i, r, k ? "decode differs from lenml's" : "decode differs from Rust's", b.data ? b.data : "",
                               b.len, r->dec[k], r->dec_n[k]));
                b.len = 0;
                stream_decode(tok, oid, rn, 0, (unsigned)i + (unsigned)k, &b);
                CHECK(!text_eq(i, r, "stream decode differs", b.data ? b.data : "", b.len, r->dec[k], r->dec_n[k]));
                free(oid);
            }
            /* one thread vs many: re-encode every 7th record here */
            if (i % 7 == 0) {
                again.len = 0;
                diffu_tokenizer_encode(tok, (const char *)r->p, r->n, &again, &err);
                CHECK(again.len == r->mine.len && !memcmp(again.data, r->mine.data, 4 * again.len));
            }
        } else {
            size_t m = r->n / 4;
            int32_t *ids = malloc(4 * (m + 1));
            for (size_t q = 0; q < m; q++) ids[q] = (int32_t)rd32(r->p + 4 * q);
            for (int k = 0; k < 4; k++) {
                int skip = k & 1;
                int fl = skip ? DIFFU_DECODE_SKIP_SPECIAL : 0;
                const char *who = k < 2 ? (skip ? "decode(skip special) differs from Rust's" : "decode differs from Rust's")
                                        : (skip ? "decode(skip special) differs from lenml's" : "decode differs from lenml's");
                a.len = 0;
                diffu_tokenizer_decode(tok, ids, m, fl, &a);
                CHECK(!text_eq(i, r, who, a.data ? a.data : "", a.len, r->dec[k], r->dec_n[k]));
                b.len = 0;
                stream_decode(tok, ids, m, fl, (unsigned)i * 31u + (unsigned)k, &b);
                CHECK(!text_eq(i, r, "stream decode differs", b.data ? b.data : "", b.len, r->dec[k], r->dec_n[k]));
            }
            free(ids);
        }
    }
    printf("tok_compare: %zu records, %.2f MB of text, %zu ids compared with each reference; encoded on %d threads "
           "in %.2f s (%.1f MB/s)\n",
           n, text_bytes / 1e6, n_ids_cmp, threads, dt, text_bytes / 1e6 / dt);
    for (int c = 0; c < NCAT; c++) printf("  %-11s %7zu checks passed, %zu failed\n", CATS[c], pass[c], failc[c]);
    printf("  the published @lenml/tokenizers differs from its compat mode (and Rust) on %zu records, all with\n"
           "  U+0085, U+FEFF or 'ſ: %s\n", stock_diff,
           stock_unexplained ? "NO" : "yes");
    printf("  decode(encode(x)) == NFC(x) on all but %zu records, where a token is followed by a mark that NFC\n"
           "  would compose into it (they equal the pipeline's piecewise NFC)\n", not_nfc);
    printf("%zu passed, %zu failed\n", passed, failed);
    for (size_t i = 0; i < n; i++) {
        diffu_ids_free(&rec[i].mine);
        free((void *)rec[i].ids_r);
        free((void *)rec[i].ids_c);
        free((void *)rec[i].ids_s);
    }
    free(rec);
    free(cb);
    free(ob);
    diffu_text_free(&a);
    diffu_text_free(&b);
    diffu_ids_free(&again);
    diffu_text_free(&g_tmp);
    diffu_tokenizer_free(&tok);
    return failed ? 1 : 0;
}
