/* chat.h — the DiffuCoder / Dream chat prompt and the post-processing of a
 * generated reply, in one place (apple/ml-diffucoder's README and paper):
 *
 *   <|im_start|>system\n{system}<|im_end|>\n
 *   <|im_start|>user\n{user.strip()}\n<|im_end|>\n      <- note the newline
 *   <|im_start|>assistant\n{prefill}
 *
 * The prompt is encoded as one text, as `tokenizer(prompt)` does in the
 * reference, so added-token strings are matched wherever they appear
 * (including inside the user's text, exactly as Hugging Face does).
 * Reply: decode the generated ids with special tokens kept, cut at the first
 * <|endoftext|> or <|dlm_pad|> (whichever the tokenizer has), strip one
 * trailing <|im_end|>. Token strings come from the tokenizer's ids.
 *
 * Ownership: outputs are appended to caller-owned buffers. Thread-safety: all
 * functions are reentrant (the tokenizer is shared read-only). Not collective. */
#ifndef DIFFU_CHAT_H
#define DIFFU_CHAT_H

#include <stddef.h>
#include <stdint.h>

#include "log.h"
#include "tokenizer.h"

#define DIFFU_CHAT_DEFAULT_SYSTEM "You are a helpful assistant."
/* The assistant prefill of the paper's evaluations. */
#define DIFFU_CHAT_EVAL_PREFILL "Here is the code to solve this problem:\n```python\n"

/* Append the prompt text. system NULL: DIFFU_CHAT_DEFAULT_SYSTEM; prefill
 * NULL: none. user[0..user_len) is stripped of leading/trailing whitespace as
 * Python's str.strip() does. */
void diffu_chat_prompt_text(const char *system, const char *user, size_t user_len, const char *prefill,
                            diffu_text *out);

/* Append the prompt's ids. Returns -1 with err if the tokenizer has no
 * <|im_start|> / <|im_end|> token (not a chat vocabulary). */
int diffu_chat_prompt_ids(const diffu_tokenizer *tok, const char *system, const char *user, size_t user_len,
                          const char *prefill, diffu_ids *out, diffu_err *err);

/* Append the reply text of generated ids (the prefill not included): decode,
 * cut at the first "<|endoftext|>" / "<|dlm_pad|>", strip a trailing
 * "<|im_end|>". */
void diffu_chat_reply(const diffu_tokenizer *tok, const int32_t *ids, size_t n, diffu_text *out);

/* The reply of a generation, appended to out: with no end tokens (n_end 0)
 * diffu_chat_reply of all n_gen generated ids; else the first n_answer ids
 * (the answer up to and including its end token) without a last token in
 * end_ids and then a trailing <|im_end|>, decoded (`--end-id`). */
void diffu_chat_reply_ids(const diffu_tokenizer *tok, const int32_t *gen, size_t n_gen, size_t n_answer,
                          const int32_t *end_ids, int n_end, diffu_text *out);

#endif
