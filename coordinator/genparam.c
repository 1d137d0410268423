/* genparam.c — see genparam.h. */
#include "genparam.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "job_util.h"
#include "kvpolicy.h"

#define F(m) ((long)offsetof(diffu_denoise_params, m))

/* The order is the record's: golden records (tests/golden) pin it. */
static const diffu_genparam TABLE[] = {
    {"max_new_tokens", "max-new-tokens", "N", DIFFU_GP_INT, 1, 1 << 20, 0, F(max_new_tokens), 1,
     "generated positions (default 256)"},
    {"steps", "steps", "N", DIFFU_GP_INT, 1, 1 << 24, 0, F(steps), 1, "denoising steps (default: max-new-tokens)"},
    {"alg", "alg", "A", DIFFU_GP_ALG, 0, 0, 0, F(alg), 1, "origin | maskgit_plus | topk_margin | entropy (default entropy)"},
    {"temperature", "temperature", "T", DIFFU_GP_NUM, 0, 1e6, 0, F(temperature), 1, "0 = greedy (default 0)"},
    {"top_p", "top-p", "P", DIFFU_GP_NUM, 0, 1, 1, F(top_p), 1, "nucleus filtering, (0, 1] (default off)"},
    {"top_k", "top-k", "K", DIFFU_GP_INT, 0, 1 << 30, 0, F(top_k), 1, "top-k filtering (default 0: off)"},
    {"alg_temp", "alg-temp", "T", DIFFU_GP_NUM, 0, 1e6, 0, F(alg_temp), 1,
     "sample positions from softmax(confidence / T) (default 0: top-n)"},
    {"seed", "seed", "S", DIFFU_GP_SEED, 0, (double)INT64_MAX, 0, F(seed), 1, "random seed (default 0)"},
    {"eps", "eps", "E", DIFFU_GP_NUM, 0, 0.999999, 0, F(eps), 1, "timesteps linspace(1, E, steps + 1) (default 1e-3)"},
    {"block_length", "block-length", "B", DIFFU_GP_INT, 0, 1 << 20, 0, F(block_length), 1,
     "semi-autoregressive blocks of B generated tokens (default 0: one block)"},
    {"threshold", "threshold", "TAU", DIFFU_GP_NUM, 0, 1, 0, F(threshold), 1,
     "Fast-dLLM confidence-threshold decoding, steps unused (default 0: off)"},
    {"factor", "factor", "F", DIFFU_GP_NUM, 0, 1e6, 0, F(factor), 1, "Fast-dLLM factor rule, steps unused (default 0: off)"},
    {"early_stop", "early-stop", NULL, DIFFU_GP_FLAG, 0, 1, 0, F(early_stop), 1,
     "stop once an end token is committed with nothing masked to its left"},
    {"cache", "cache", "MODE", DIFFU_GP_CACHE, 0, 3, 0, F(cache), 2,
     "approximate KV cache: none | prefix | dual | delayed (default none: exact; prefix/dual need --block-length)"},
    {"cache_refresh", "cache-refresh", "N", DIFFU_GP_INT, 0, 1 << 20, 0, F(cache_refresh), 2,
     "prefix/dual: also a full pass every N forwards of a block; delayed: every N forwards (default 0: block starts)"},
    {"n", "n", "N", DIFFU_GP_INT, 1, 65536, 0, DIFFU_GP_NO_FIELD, 0, "samples per prompt (default 1)"},
};
#define N_ROWS ((int)(sizeof TABLE / sizeof TABLE[0]))

int diffu_genparam_count(void) { return N_ROWS; }

const diffu_genparam *diffu_genparam_at(int i) {
    DIFFU_ASSERT(i >= 0 && i < N_ROWS);
    return &TABLE[i];
}

const diffu_genparam *diffu_genparam_find(const char *name) {
    for (int i = 0; i < N_ROWS; i++)
        if (!strcmp(TABLE[i].name, name)) return &TABLE[i];
    return NULL;
}

const char *diffu_genparam_range(const diffu_genparam *g, char *buf, size_t cap) {
    if (g->type == DIFFU_GP_NUM)
        snprintf(buf, cap, "%s%g, %g]", g->lo_open ? "(" : "[", g->lo, g->hi);
    else if (g->type == DIFFU_GP_SEED)
        snprintf(buf, cap, "[%lld, %lld]", (long long)g->lo, (long long)INT64_MAX);
    else
        snprintf(buf, cap, "[%lld, %lld]", (long long)g->lo, (long long)g->hi);
    return buf;
}

int diffu_genparam_is_enum(const diffu_genparam *g) { return g->type == DIFFU_GP_ALG || g->type == DIFFU_GP_CACHE; }

int diffu_genparam_enum_parse(const diffu_genparam *g, const char *s) {
    DIFFU_ASSERTF(diffu_genparam_is_enum(g), "%s is not a named choice", g->name);
    return g->type == DIFFU_GP_ALG ? diffu_denoise_alg_parse(s) : diffu_cache_mode_parse(s);
}

const char *diffu_genparam_enum_choices(const diffu_genparam *g) {
    DIFFU_ASSERTF(diffu_genparam_is_enum(g), "%s is not a named choice", g->name);
    return g->type == DIFFU_GP_ALG ? "origin, maskgit_plus, topk_margin or entropy" : "none, prefix, dual or delayed";
}

int diffu_genparam_int_ok(const diffu_genparam *g, long long v) {
    if (g->type == DIFFU_GP_SEED) return v >= (long long)g->lo; /* hi is INT64_MAX: every int64 below it */
    return (double)v >= g->lo && (double)v <= g->hi && !(g->lo_open && (double)v == g->lo);
}

int diffu_genparam_num_ok(const diffu_genparam *g, double v) {
    return !isnan(v) && (g->lo_open ? v > g->lo : v >= g->lo) && v <= g->hi;
}

void diffu_genparam_set_int(const diffu_genparam *g, diffu_denoise_params *p, long long v) {
    if (g->field == DIFFU_GP_NO_FIELD) return;
    char *f = (char *)p + g->field;
    switch (g->type) {
    case DIFFU_GP_SEED: { uint64_t u = (uint64_t)v; memcpy(f, &u, sizeof u); break; }
    case DIFFU_GP_ALG: { diffu_alg a = (diffu_alg)v; memcpy(f, &a, sizeof a); break; }
    case DIFFU_GP_INT:
    case DIFFU_GP_CACHE:
    case DIFFU_GP_FLAG: { int i = (int)v; memcpy(f, &i, sizeof i); break; }
    case DIFFU_GP_NUM: DIFFU_ASSERTF(0, "%s is a number: diffu_genparam_set_num", g->name);
    }
}

void diffu_genparam_set_num(const diffu_genparam *g, diffu_denoise_params *p, double v) {
    DIFFU_ASSERTF(g->type == DIFFU_GP_NUM, "%s is not a number", g->name);
    if (g->field != DIFFU_GP_NO_FIELD) memcpy((char *)p + g->field, &v, sizeof v);
}

void diffu_genparam_put_json(const diffu_denoise_params *p, diffu_text *t) {
    int first = 1;
    for (int i = 0; i < N_ROWS; i++) {
        const diffu_genparam *g = &TABLE[i];
        if (!g->record || g->field == DIFFU_GP_NO_FIELD) continue;
        const char *f = (const char *)p + g->field;
        if (g->record == 2) {
            int v;
            memcpy(&v, f, sizeof v);
            if (!v) continue;
        }
        diffu_job_util_put_key(t, g->name, first);
        first = 0;
        switch (g->type) {
        case DIFFU_GP_INT: { int v; memcpy(&v, f, sizeof v); diffu_job_util_put_int(t, v); break; }
        case DIFFU_GP_FLAG: { int v; memcpy(&v, f, sizeof v); diffu_job_util_put(t, v ? "true" : "false"); break; }
        case DIFFU_GP_NUM: { double v; memcpy(&v, f, sizeof v); diffu_job_util_put_num(t, v); break; }
        case DIFFU_GP_SEED: { uint64_t v; memcpy(&v, f, sizeof v); diffu_job_util_put_uint(t, (unsigned long long)v); break; }
        case DIFFU_GP_ALG: {
            diffu_alg a;
            memcpy(&a, f, sizeof a);
            const char *nm = diffu_denoise_alg_name(a);
            diffu_job_util_put_str(t, nm, strlen(nm));
            break;
        }
        case DIFFU_GP_CACHE: {
            int v;
            memcpy(&v, f, sizeof v);
            const char *nm = diffu_cache_mode_name((diffu_cache_mode)v);
            diffu_job_util_put_str(t, nm, strlen(nm));
            break;
        }
        }
    }
}

static int has_file(const char *dir, const char *name) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

int diffu_genparam_model(const char *model, const int32_t *end_cli, int n_end_cli, diffu_config *cfg,
                         diffu_tokenizer **tok, diffu_denoise_params *p, diffu_err *err) {
    char path[4096];
    *tok = NULL;
    snprintf(path, sizeof path, "%s/config.json", model);
    if (diffu_config_load(path, cfg, err)) return -1;
    if (has_file(model, "tokenizer.json") || has_file(model, "vocab.json")) {
        *tok = diffu_tokenizer_load(model, err);
        if (!*tok) return -1;
        if (diffu_tokenizer_vocab_size(*tok) > cfg->vocab) {
            diffu_err_set(err, "%s: the tokenizer has ids up to %d, beyond the model's vocab_size %d", model,
                          diffu_tokenizer_vocab_size(*tok) - 1, cfg->vocab);
            diffu_tokenizer_free(tok);
            return -1;
        }
    }
    p->mask_id = cfg->mask_id;
    if (p->mask_id < 0) {
        diffu_err_set(err, "%s has no mask_token_id", path);
        diffu_tokenizer_free(tok);
        return -1;
    }
    p->n_end = 0;
    if (n_end_cli) {
        DIFFU_ASSERT(n_end_cli <= DIFFU_MAX_END_IDS);
        memcpy(p->end_ids, end_cli, (size_t)n_end_cli * sizeof *end_cli);
        p->n_end = n_end_cli;
        return 0;
    }
    if (cfg->eos_id >= 0) p->end_ids[p->n_end++] = cfg->eos_id;
    if (*tok) {
        int32_t dp = diffu_tokenizer_special(*tok)->dlm_pad;
        if (dp >= 0 && dp < cfg->vocab && dp != cfg->eos_id) p->end_ids[p->n_end++] = dp;
    }
    if (p->early_stop && !p->n_end) {
        diffu_err_set(err, "--early-stop: %s has no eos_token_id; give --end-id", path);
        diffu_tokenizer_free(tok);
        return -1;
    }
    return 0;
}
