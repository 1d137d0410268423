/* fuzz_tokenizer_load.c — loading a tokenizer directory (model/tokenizer_load.c):
 * tokenizer.json, or vocab.json + merges.txt (+ added_tokens.json), and
 * tokenizer_config.json. The input is a "@@FILE name" container
 * (fuzz_common.h); without one it is tokenizer.json. Oracle: a refusal is one
 * line; an accepted tokenizer encodes and decodes a fixed text (with every
 * special token's content) and decodes every id it has without a crash, and
 * each id's bytes map back to that id or to another with the same bytes, or
 * to none: a vocabulary entry with characters outside the byte-level alphabet
 * decodes to its own UTF-8 (as tokenizers' ByteLevel decoder does), which
 * spells no entry (found by this target: corpus crash-oracle-nonbytelevel-vocab). */
#include "fuzz_common.h"
#include "tokenizer.h"

static const char probe[] = "def f(x):\n    return x  # h\xc3\xa9 \xe2\x80\x94 <|endoftext|><|mask|> 12 'll\r\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_quiet();
    fz_unpack_files(data, size, fz_dir(), "tokenizer.json", 8);
    diffu_err err;
    err.msg[0] = 0;
    diffu_tokenizer *tok = diffu_tokenizer_load(fz_dir(), &err);
    if (!tok) {
        FZ_CHECK(err.msg[0] && !strchr(err.msg, '\n'), "a refusal without a one-line message");
        fz_clean();
        return 0;
    }
    int32_t V = diffu_tokenizer_vocab_size(tok);
    FZ_CHECK(V >= diffu_tokenizer_n_tokens(tok) && diffu_tokenizer_n_tokens(tok) >= 0, "vocab %d < tokens %d", V,
             diffu_tokenizer_n_tokens(tok));
    diffu_ids ids = {0};
    diffu_text txt = {0};
    FZ_CHECK(diffu_tokenizer_encode(tok, probe, sizeof probe - 1, &ids, &err) == 0, "encode: %s", err.msg);
    for (size_t i = 0; i < ids.len; i++) FZ_CHECK(ids.data[i] >= 0 && ids.data[i] < V, "id %d outside [0,%d)", ids.data[i], V);
    diffu_tokenizer_decode(tok, ids.data, ids.len, 0, &txt);
    diffu_tokenizer_decode(tok, ids.data, ids.len, DIFFU_DECODE_SKIP_SPECIAL, &txt);
    const diffu_special_ids *sp = diffu_tokenizer_special(tok);
    int32_t sids[9] = {sp->bos, sp->eos, sp->pad, sp->unk, sp->mask, sp->endoftext, sp->im_start, sp->im_end, sp->dlm_pad};
    for (int i = 0; i < 9; i++) FZ_CHECK(sids[i] >= -1 && sids[i] < V, "special id %d outside the vocab", sids[i]);
    int32_t lim = V < 4096 ? V : 4096; /* a real vocabulary has 151k: the first ids are enough */
    for (int32_t id = -1; id <= lim; id++) {
        size_t n = 0;
        const char *b = diffu_tokenizer_token_bytes(tok, id, &n);
        if (!b) continue;
        int32_t back = diffu_tokenizer_token_id(tok, b, n);
        if (back < 0) continue;
        size_t n2 = 0;
        const char *b2 = diffu_tokenizer_token_bytes(tok, back, &n2);
        FZ_CHECK(b2 && n2 == n && !memcmp(b, b2, n), "id %d -> bytes -> id %d with other bytes", id, back);
        diffu_tokenizer_decode(tok, &id, 1, 0, &txt);
        (void)diffu_tokenizer_is_special(tok, id);
    }
    diffu_ids_free(&ids);
    diffu_text_free(&txt);
    diffu_tokenizer_free(&tok);
    fz_clean();
    return 0;
}
