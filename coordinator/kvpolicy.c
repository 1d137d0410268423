/* kvpolicy.c — see kvpolicy.h. */
#include "kvpolicy.h"

#include <stdlib.h>
#include <string.h>

#include "denoise.h"

struct diffu_kvpolicy {
    diffu_cache_mode mode;
    int refresh, B, L, N;
    int forwards, last_block, block_fw, have_prev, prev_initial, last_n;
    long rows_total;
    int32_t *before_prev; /* [N] the canvas before the previous forward (delayed) */
    uint8_t *need;        /* [N] scratch */
};

static const char *NAMES[] = {"none", "prefix", "dual", "delayed"};

int diffu_cache_mode_parse(const char *s) {
    for (int i = 0; i < 4; i++)
        if (s && !strcmp(s, NAMES[i])) return i;
    return -1;
}

const char *diffu_cache_mode_name(diffu_cache_mode m) { return (unsigned)m < 4 ? NAMES[m] : "?"; }

int diffu_kvpolicy_check(int mode, int refresh, int block_length, diffu_err *err) {
    if (mode < 0 || mode > DIFFU_CACHE_DELAYED) {
        diffu_err_set(err, "cache: unknown mode %d", mode);
        return -1;
    }
    if ((mode == DIFFU_CACHE_PREFIX || mode == DIFFU_CACHE_DUAL) && block_length <= 0) {
        diffu_err_set(err, "cache %s: needs block decoding (--block-length B): it caches around the current block",
                      NAMES[mode]);
        return -1;
    }
    if (mode == DIFFU_CACHE_DELAYED && refresh < 1) {
        diffu_err_set(err, "cache delayed: --cache-refresh N >= 1 is required (a full pass every N forwards)");
        return -1;
    }
    if (refresh < 0) {
        diffu_err_set(err, "cache-refresh: %d, must be >= 0", refresh);
        return -1;
    }
    return 0;
}

diffu_kvpolicy *diffu_kvpolicy_create(diffu_cache_mode mode, int refresh, int block_length, int prompt_len,
                                      int canvas_len, diffu_err *err) {
    if (diffu_kvpolicy_check((int)mode, refresh, block_length, err)) return NULL;
    if (prompt_len < 0 || canvas_len <= prompt_len) {
        diffu_err_set(err, "cache: canvas of %d positions after a prompt of %d", canvas_len, prompt_len);
        return NULL;
    }
    diffu_kvpolicy *p = diffu_xcalloc(1, sizeof *p);
    p->mode = mode;
    p->refresh = refresh;
    p->B = block_length;
    p->L = prompt_len;
    p->N = canvas_len;
    p->last_block = -1;
    p->before_prev = diffu_xmalloc((size_t)canvas_len * sizeof *p->before_prev);
    p->need = diffu_xmalloc((size_t)canvas_len);
    return p;
}

diffu_kvpolicy *diffu_kvpolicy_for(const diffu_denoise *d, diffu_err *err) {
    const diffu_denoise_params *p = diffu_denoise_get_params(d);
    int len;
    diffu_denoise_canvas(d, &len);
    return diffu_kvpolicy_create((diffu_cache_mode)p->cache, p->cache_refresh, p->block_length,
                                 diffu_denoise_prompt_len(d), len, err);
}

void diffu_kvpolicy_free(diffu_kvpolicy **pp) {
    if (!pp || !*pp) return;
    free((*pp)->before_prev);
    free((*pp)->need);
    free(*pp);
    *pp = NULL;
}

int diffu_kvpolicy_rows(diffu_kvpolicy *p, int32_t mask_id, const int32_t *want, int n_want, int32_t *rows,
                        int *full) {
    DIFFU_ASSERT(n_want >= 1);
    int N = p->N, s = 0, e = N;
    if (p->B > 0) {
        int block = (want[0] - p->L) / p->B;
        s = p->L + block * p->B;
        e = s + p->B < N ? s + p->B : N;
        if (block != p->last_block) {
            p->last_block = block;
            p->block_fw = 0;
        }
    }
    int all = 0;
    switch (p->mode) {
    case DIFFU_CACHE_NONE: all = 1; break;
    case DIFFU_CACHE_PREFIX:
    case DIFFU_CACHE_DUAL: all = p->block_fw == 0 || (p->refresh > 0 && p->block_fw % p->refresh == 0); break;
    case DIFFU_CACHE_DELAYED: all = !p->have_prev || p->forwards % p->refresh == 0; break;
    }
    int n = 0;
    if (all) {
        for (int r = 0; r < N; r++) rows[n++] = r;
        *full = 1;
        p->last_n = n;
        return n;
    }
    memset(p->need, 0, (size_t)N);
    if (p->mode == DIFFU_CACHE_DELAYED) {
        const int32_t *x = p->before_prev;
        for (int r = 0; r < N; r++) {
            int cached = r < N - 1 ? x[r + 1] != mask_id : (p->prev_initial ? x[r] != mask_id : x[0] != mask_id);
            p->need[r] = !cached;
        }
    } else {
        int end = p->mode == DIFFU_CACHE_PREFIX ? N : e;
        for (int r = s > 0 ? s - 1 : 0; r < end; r++) p->need[r] = 1;
    }
    for (int k = 0; k < n_want; k++) p->need[want[k] > 0 ? want[k] - 1 : 0] = 1; /* the logit shift */
    for (int r = 0; r < N; r++)
        if (p->need[r]) rows[n++] = r;
    *full = n == N;
    p->last_n = n;
    return n;
}

void diffu_kvpolicy_done(diffu_kvpolicy *p, const int32_t *canvas_before) {
    p->prev_initial = p->forwards == 0;
    memcpy(p->before_prev, canvas_before, (size_t)p->N * sizeof *canvas_before);
    p->have_prev = 1;
    p->forwards++;
    p->block_fw++;
    p->rows_total += p->last_n;
}

int diffu_kvpolicy_forwards(const diffu_kvpolicy *p) { return p->forwards; }
long diffu_kvpolicy_rows_total(const diffu_kvpolicy *p) { return p->rows_total; }
