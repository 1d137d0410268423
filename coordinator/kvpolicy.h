/* kvpolicy.h — which canvas rows a denoising step computes under an
 * approximate KV cache (docs/kvcache.md; model/kvcache.h runs them): the
 * per-request policy of Fast-dLLM's prefix and dual cache and dKV-Cache's
 * delayed cache, on top of block decoding (denoise.h block_length).
 *
 * Modes (s, e: the current block's canvas range, N: the canvas length):
 *   none     every forward computes every row (Dream: exact)
 *   prefix   the block's first forward is a full pass (every row: it refreshes
 *            every cached K/V); later forwards of the block compute [s-1, N)
 *            (the row before the block predicts its first position: Dream's
 *            logit shift), attending to the cached prefix
 *   dual     as prefix, but later forwards compute only [s-1, e): the prefix
 *            and the suffix come from the block-start pass
 *   delayed  a full pass every `refresh` forwards; otherwise row p is computed
 *            unless position p+1 was already decoded in the canvas as it was
 *            BEFORE the previous forward (row p predicts p+1; the last row
 *            looks at position 0, and at its own position on the very first
 *            canvas) — a token's K/V is cached one step after it is decoded
 * refresh R (prefix/dual, optional): also a full pass at every R-th forward
 * inside a block; with R = 1 every forward is a full pass and the tokens are
 * exactly those of `none`. The rows always include every row whose logits the
 * step needs (want - 1, or 0 for position 0).
 *
 * The policy only chooses rows; it never sees logits or the model. A request
 * made again from an in-flight checkpoint starts with a full pass (a fresh
 * policy), which rebuilds its cache. Memory: create allocates [N] scratch;
 * rows/done allocate nothing. Not collective. */
#ifndef DIFFU_KVPOLICY_H
#define DIFFU_KVPOLICY_H

#include <stdint.h>

#include "log.h"

typedef enum { DIFFU_CACHE_NONE = 0, DIFFU_CACHE_PREFIX, DIFFU_CACHE_DUAL, DIFFU_CACHE_DELAYED } diffu_cache_mode;

/* "none", "prefix", "dual", "delayed"; -1 if unknown. */
int diffu_cache_mode_parse(const char *s);
const char *diffu_cache_mode_name(diffu_cache_mode m);

/* The mode's parameters alone (what create checks before sizes): 0, or -1
 * with one line (prefix/dual without block decoding, delayed without a
 * refresh, a negative refresh). */
int diffu_kvpolicy_check(int mode, int refresh, int block_length, diffu_err *err);

typedef struct diffu_kvpolicy diffu_kvpolicy;
/* prompt_len L and canvas_len N = L + max_new_tokens; block_length B > 0
 * required by prefix and dual; refresh: prefix/dual >= 0 (0: block starts
 * only), delayed >= 1. NULL with one line in err on a bad combination. */
diffu_kvpolicy *diffu_kvpolicy_create(diffu_cache_mode mode, int refresh, int block_length, int prompt_len,
                                      int canvas_len, diffu_err *err);
void diffu_kvpolicy_free(diffu_kvpolicy **p);
/* The policy of request d (denoise.h): its params' cache mode, refresh and
 * block length, its prompt and canvas lengths; as create. */
struct diffu_denoise;
diffu_kvpolicy *diffu_kvpolicy_for(const struct diffu_denoise *d, diffu_err *err);

/* The rows of the forward about to run: want [n_want] the positions needing
 * logits (ascending, diffu_denoise_positions; n_want >= 1). Writes the rows (ascending canvas positions) into rows[N] and returns their
 * count; *full = 1 when that is every row. */
int diffu_kvpolicy_rows(diffu_kvpolicy *p, int32_t mask_id, const int32_t *want, int n_want, int32_t *rows,
                        int *full);
/* That forward ran; canvas_before: the canvas as it was when rows() was called
 * (before the step's commit). */
void diffu_kvpolicy_done(diffu_kvpolicy *p, const int32_t *canvas_before);

int diffu_kvpolicy_forwards(const diffu_kvpolicy *p);
long diffu_kvpolicy_rows_total(const diffu_kvpolicy *p);

#endif
