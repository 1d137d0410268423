/* fuzz_tokenizer_codec.c — the tokenizer's encode and decode on arbitrary
 * bytes and ids (model/tokenizer_encode.c, tokenizer_decode.c), with Dream's
 * tokenizer: the cached Qwen2.5 vocabulary (deploy/fetch_vocab.sh) with
 * Dream's added tokens, written once by diffu_tokenizer_write_dream; without
 * the cache, the small tokenizer in tests/fuzz/data/ (found next to the
 * corpus: $DIFFU_FUZZ_DATA or this file's directory at build time).
 *
 * Input: byte 0 selects the mode, the rest is the payload.
 *   even: encode the payload as text. Oracles: every id in [0, vocab); the
 *         payload's UTF-8-repaired form has NFC pieces so for ASCII input
 *         without added-token text decode(encode(x)) == x; encoding twice gives
 *         the same ids.
 *   odd:  the payload as little-endian int32 ids (any values, unknown ids
 *         included); decode, with and without skip-special. Oracle: the
 *         incremental decoder fed the ids in chunks (sizes from the payload)
 *         emits exactly the one-shot decode, holding back at most 3 bytes. */
#include "fuzz_common.h"
#include "tokenizer.h"

#ifndef DIFFU_FUZZ_DATA_DIR
#define DIFFU_FUZZ_DATA_DIR "."
#endif

static diffu_tokenizer *g_tok;

static diffu_tokenizer *load(void) {
    if (g_tok) return g_tok;
    fz_quiet();
    diffu_err err;
    const char *base = diffu_vocab_default_path();
    if (base) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/dream", fz_dir());
        mkdir(dir, 0700);
        if (diffu_tokenizer_write_dream(base, dir, &err) == 0) g_tok = diffu_tokenizer_load(dir, &err);
        char p[1100];
        snprintf(p, sizeof p, "%s/tokenizer.json", dir);
        unlink(p);
        snprintf(p, sizeof p, "%s/tokenizer_config.json", dir);
        unlink(p);
        rmdir(dir);
    }
    if (!g_tok) {
        const char *d = getenv("DIFFU_FUZZ_DATA");
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/small_tokenizer", d && *d ? d : DIFFU_FUZZ_DATA_DIR "/data");
        g_tok = diffu_tokenizer_load(dir, &err);
        if (!g_tok) {
            fprintf(stderr, "fuzz_tokenizer_codec: no tokenizer: %s\n", err.msg);
            abort();
        }
    }
    fprintf(stderr, "fuzz_tokenizer_codec: tokenizer with %d ids (%s)\n", diffu_tokenizer_vocab_size(g_tok),
            base ? "Dream, from the cached Qwen2.5 vocabulary" : "the small test tokenizer");
    return g_tok;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    load();
    return 0;
}

static int has_added_text(const char *s, size_t n) {
    for (size_t i = 0; i + 1 < n; i++)
        if (s[i] == '<' && s[i + 1] == '|') return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const diffu_tokenizer *tok = load();
    int32_t V = diffu_tokenizer_vocab_size(tok);
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    diffu_err err;
    diffu_ids ids = {0}, ids2 = {0};
    diffu_text a = {0}, b = {0};
    if (!(data[0] & 1)) {
        FZ_CHECK(diffu_tokenizer_encode(tok, s, n, &ids, &err) == 0, "encode: %s", err.msg);
        for (size_t i = 0; i < ids.len; i++) FZ_CHECK(ids.data[i] >= 0 && ids.data[i] < V, "id %d", ids.data[i]);
        FZ_CHECK(diffu_tokenizer_encode(tok, s, n, &ids2, &err) == 0, "encode: %s", err.msg);
        FZ_CHECK(ids.len == ids2.len && (!ids.len || !memcmp(ids.data, ids2.data, ids.len * 4)),
                 "encoding twice differs (the word cache?)");
        diffu_tokenizer_decode(tok, ids.data, ids.len, 0, &a);
        int ascii = 1;
        for (size_t i = 0; i < n; i++) ascii &= (unsigned char)s[i] < 0x80;
        if (ascii && !has_added_text(s, n))
            FZ_CHECK(a.len == n && (!n || !memcmp(a.data, s, n)), "decode(encode(x)) != x for ASCII x (%zu vs %zu bytes)",
                     a.len, n);
    } else {
        size_t k = n / 4;
        int32_t *v = malloc((k ? k : 1) * sizeof *v);
        for (size_t i = 0; i < k; i++) memcpy(&v[i], s + 4 * i, 4);
        for (int flags = 0; flags <= DIFFU_DECODE_SKIP_SPECIAL; flags++) {
            a.len = b.len = 0;
            diffu_tokenizer_decode(tok, v, k, flags, &a);
            diffu_detok *d = diffu_detok_new(tok, flags);
            size_t at = 0, step = 0;
            while (at < k) {
                size_t c = 1 + ((uint32_t)v[step % k] % 5); /* chunk sizes from the data */
                if (c > k - at) c = k - at;
                diffu_detok_push(d, v + at, c, &b);
                FZ_CHECK(diffu_detok_pending(d) <= 3, "pending %zu", diffu_detok_pending(d));
                at += c, step++;
            }
            diffu_detok_finish(d, &b);
            diffu_detok_free(&d);
            FZ_CHECK(a.len == b.len && (!a.len || !memcmp(a.data, b.data, a.len)),
                     "incremental decode (%zu bytes) differs from one-shot (%zu bytes), flags %d", b.len, a.len, flags);
        }
        free(v);
    }
    diffu_ids_free(&ids);
    diffu_ids_free(&ids2);
    diffu_text_free(&a);
    diffu_text_free(&b);
    return 0;
}
