/* chat.c — see chat.h. */
#include "chat.h"

#include <string.h>

/* Python's str.isspace() for one code point (bidi WS/B/S or category Zs). */
static int py_isspace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Decode the code point at s[i] (valid or not: an invalid byte counts as one
 * non-space unit). */
static uint32_t cp_at(const unsigned char *s, size_t n, size_t i, size_t *len) {
    unsigned char c = s[i];
    int k = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (i + (size_t)k > n || (k == 1 && c >= 0x80)) {
        *len = 1;
        return 0xFFFD;
    }
    uint32_t cp = k == 1 ? c : (uint32_t)(c & (0x7F >> k));
    for (int j = 1; j < k; j++) cp = (cp << 6) | (s[i + j] & 0x3F);
    *len = (size_t)k;
    return cp;
}

static void py_strip(const char *s, size_t n, size_t *a, size_t *b) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, k;
    while (i < n && py_isspace(cp_at(u, n, i, &k))) i += k;
    size_t end = n;
    while (end > i) {
        size_t st = end - 1;
        while (st > i && (u[st] & 0xC0) == 0x80) st--;
        if (!py_isspace(cp_at(u, end, st, &k)) || st + k != end) break;
        end = st;
    }
    *a = i;
    *b = end;
}

void diffu_chat_prompt_text(const char *system, const char *user, size_t user_len, const char *prefill,
                            diffu_text *out) {
    static const char SYS[] = "<|im_start|>system\n", END[] = "<|im_end|>\n", USER[] = "<|im_start|>user\n",
                      ASSIST[] = "<|im_start|>assistant\n";
    if (!system) system = DIFFU_CHAT_DEFAULT_SYSTEM;
    size_t a, b;
    py_strip(user, user_len, &a, &b);
    diffu_text_append(out, SYS, sizeof SYS - 1);
    diffu_text_append(out, system, strlen(system));
    diffu_text_append(out, END, sizeof END - 1);
    diffu_text_append(out, USER, sizeof USER - 1);
    diffu_text_append(out, user + a, b - a);
    diffu_text_append(out, "\n", 1);
    diffu_text_append(out, END, sizeof END - 1);
    diffu_text_append(out, ASSIST, sizeof ASSIST - 1);
    if (prefill) diffu_text_append(out, prefill, strlen(prefill));
}

int diffu_chat_prompt_ids(const diffu_tokenizer *tok, const char *system, const char *user, size_t user_len,
                          const char *prefill, diffu_ids *out, diffu_err *err) {
    const diffu_special_ids *sp = diffu_tokenizer_special(tok);
    if (sp->im_start < 0 || sp->im_end < 0)
        return diffu_err_set(err, "tokenizer has no <|im_start|> / <|im_end|> token: not a chat vocabulary");
    diffu_text t = {0};
    diffu_chat_prompt_text(system, user, user_len, prefill, &t);
    int rc = diffu_tokenizer_encode(tok, t.data, t.len, out, err);
    diffu_text_free(&t);
    return rc;
}

void diffu_chat_reply(const diffu_tokenizer *tok, const int32_t *ids, size_t n, diffu_text *out) {
    const diffu_special_ids *sp = diffu_tokenizer_special(tok);
    diffu_text t = {0};
    diffu_tokenizer_decode(tok, ids, n, 0, &t);
    size_t len = t.len;
    const int32_t stops[2] = {sp->endoftext, sp->dlm_pad};
    for (int k = 0; k < 2; k++) {
        size_t sl;
        const char *s = diffu_tokenizer_token_bytes(tok, stops[k], &sl);
        if (!s || !sl || !len) continue;
        const char *hit = memmem(t.data, len, s, sl);
        if (hit) len = (size_t)(hit - t.data);
    }
    size_t el;
    const char *e = diffu_tokenizer_token_bytes(tok, sp->im_end, &el);
    if (e && el && len >= el && !memcmp(t.data + len - el, e, el)) len -= el;
    diffu_text_append(out, t.data ? t.data : "", len);
    diffu_text_free(&t);
}

void diffu_chat_reply_ids(const diffu_tokenizer *tok, const int32_t *gen, size_t n_gen, size_t n_answer,
                          const int32_t *end_ids, int n_end, diffu_text *out) {
    if (!n_end) {
        diffu_chat_reply(tok, gen, n_gen, out);
        return;
    }
    size_t n = n_answer;
    if (n > 0)
        for (int e = 0; e < n_end; e++)
            if (gen[n - 1] == end_ids[e]) {
                n--;
                break;
            }
    int32_t im_end = diffu_tokenizer_special(tok)->im_end;
    if (n > 0 && im_end >= 0 && gen[n - 1] == im_end) n--;
    diffu_tokenizer_decode(tok, gen, n, 0, out);
}
