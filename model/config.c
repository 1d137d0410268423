/* config.c — see config.h. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "json.h"

static int need_int(const diffu_json *root, const char *key, int64_t lo, int64_t hi, int *out, diffu_err *err) {
    int64_t v;
    int r = diffu_json_get_int(root, key, lo, hi, &v, err);
    if (r == 1) return diffu_err_set(err, "missing required field '%s'", key);
    if (r < 0) return -1;
    *out = (int)v;
    return 0;
}

static int opt_id(const diffu_json *root, const char *key, int *out, diffu_err *err) {
    const diffu_json *v = diffu_json_get(root, key);
    *out = -1;
    if (!v || v->type == DJ_NULL) return 0;
    int64_t x;
    if (diffu_json_get_int(root, key, 0, INT32_MAX, &x, err) < 0) return -1;
    *out = (int)x;
    return 0;
}

static int load_fields(const diffu_json *root, diffu_config *c, diffu_err *err) {
    if (root->type != DJ_OBJ) return diffu_err_set(err, "expected a JSON object at the top level");
    memset(c, 0, sizeof *c);
    const char *s = NULL;
    if (diffu_json_get_str(root, "model_type", &s, err) < 0) return -1;
    snprintf(c->model_type, sizeof c->model_type, "%s", s ? s : "");
    if (s && strcmp(s, "Dream") && strcmp(s, "qwen2"))
        return diffu_err_set(err, "field 'model_type': '%s' is not a Dream/DiffuCoder (or qwen2) model", s);
    s = NULL;
    if (diffu_json_get_str(root, "torch_dtype", &s, err) < 0) return -1;
    snprintf(c->torch_dtype, sizeof c->torch_dtype, "%s", s ? s : "");
    if (need_int(root, "hidden_size", 1, 1 << 20, &c->hidden, err)) return -1;
    if (need_int(root, "intermediate_size", 1, 1 << 22, &c->inter, err)) return -1;
    if (need_int(root, "num_hidden_layers", 1, 4096, &c->n_layers, err)) return -1;
    if (need_int(root, "num_attention_heads", 1, 4096, &c->n_heads, err)) return -1;
    if (need_int(root, "vocab_size", 1, 1 << 24, &c->vocab, err)) return -1;
    int64_t v;
    int r = diffu_json_get_int(root, "num_key_value_heads", 1, 4096, &v, err);
    if (r < 0) return -1;
    c->n_kv_heads = r == 1 ? c->n_heads : (int)v;
    if (c->hidden % c->n_heads)
        return diffu_err_set(err, "field 'num_attention_heads': %d does not divide hidden_size %d", c->n_heads,
                             c->hidden);
    c->head_dim = c->hidden / c->n_heads;
    r = diffu_json_get_int(root, "head_dim", 1, 1 << 16, &v, err);
    if (r < 0) return -1;
    if (r == 0 && v != c->head_dim)
        return diffu_err_set(err, "field 'head_dim': %lld differs from hidden_size/num_attention_heads = %d",
                             (long long)v, c->head_dim);
    if (c->head_dim % 2) return diffu_err_set(err, "field 'hidden_size': head dimension %d is odd (RoPE needs it even)", c->head_dim);
    if (c->n_heads % c->n_kv_heads)
        return diffu_err_set(err, "field 'num_key_value_heads': %d does not divide num_attention_heads %d",
                             c->n_kv_heads, c->n_heads);
    c->max_pos = 32768;
    r = diffu_json_get_int(root, "max_position_embeddings", 1, INT32_MAX, &v, err);
    if (r < 0) return -1;
    if (r == 0) c->max_pos = (int)v;
    r = diffu_json_get_num(root, "rope_theta", &c->rope_theta, err);
    if (r < 0) return -1;
    if (r == 1) return diffu_err_set(err, "missing required field 'rope_theta'");
    if (!(c->rope_theta > 1.0)) return diffu_err_set(err, "field 'rope_theta': %g must be > 1", c->rope_theta);
    r = diffu_json_get_num(root, "rms_norm_eps", &c->rms_eps, err);
    if (r < 0) return -1;
    if (r == 1) return diffu_err_set(err, "missing required field 'rms_norm_eps'");
    if (!(c->rms_eps > 0 && c->rms_eps < 1)) return diffu_err_set(err, "field 'rms_norm_eps': %g must be in (0, 1)", c->rms_eps);
    c->tie_embed = 0;
    if (diffu_json_get_bool(root, "tie_word_embeddings", &c->tie_embed, err) < 0) return -1;
    s = NULL;
    if (diffu_json_get_str(root, "hidden_act", &s, err) < 0) return -1;
    if (s && strcmp(s, "silu")) return diffu_err_set(err, "field 'hidden_act': '%s' is not supported (only silu)", s);
    const diffu_json *rs = diffu_json_get(root, "rope_scaling");
    if (rs && rs->type != DJ_NULL)
        return diffu_err_set(err, "field 'rope_scaling': only null is supported (Dream/DiffuCoder use none)");
    if (opt_id(root, "bos_token_id", &c->bos_id, err) || opt_id(root, "eos_token_id", &c->eos_id, err) ||
        opt_id(root, "pad_token_id", &c->pad_id, err) || opt_id(root, "mask_token_id", &c->mask_id, err))
        return -1;
    const char *names[] = {"bos_token_id", "eos_token_id", "pad_token_id", "mask_token_id"};
    int ids[] = {c->bos_id, c->eos_id, c->pad_id, c->mask_id};
    for (int i = 0; i < 4; i++)
        if (ids[i] >= c->vocab)
            return diffu_err_set(err, "field '%s': %d is not below vocab_size %d", names[i], ids[i], c->vocab);
    return 0;
}

int diffu_config_load(const char *path, diffu_config *cfg, diffu_err *err) {
    diffu_json_doc *doc = diffu_json_parse_file(path, err);
    if (!doc) return -1;
    int r = load_fields(diffu_json_root(doc), cfg, err);
    diffu_json_free(doc);
    if (r) diffu_err_prefix(err, "%s", path);
    return r;
}

int diffu_config_write(const char *path, const diffu_config *c, diffu_err *err) {
    FILE *f = fopen(path, "w");
    if (!f) return diffu_err_set(err, "%s: cannot create: %s", path, strerror(errno));
    char ids[4][24];
    int idv[4] = {c->bos_id, c->eos_id, c->pad_id, c->mask_id};
    for (int i = 0; i < 4; i++) {
        if (idv[i] < 0) snprintf(ids[i], sizeof ids[i], "null");
        else snprintf(ids[i], sizeof ids[i], "%d", idv[i]);
    }
    fprintf(f,
            "{\n"
            "  \"architectures\": [\"DreamModel\"],\n"
            "  \"attention_dropout\": 0.0,\n"
            "  \"auto_map\": {\"AutoConfig\": \"configuration_dream.DreamConfig\", \"AutoModel\": \"modeling_dream.DreamModel\"},\n"
            "  \"bos_token_id\": %s,\n"
            "  \"eos_token_id\": %s,\n"
            "  \"hidden_act\": \"silu\",\n"
            "  \"hidden_size\": %d,\n"
            "  \"initializer_range\": 0.02,\n"
            "  \"intermediate_size\": %d,\n"
            "  \"mask_token_id\": %s,\n"
            "  \"max_position_embeddings\": %d,\n"
            "  \"max_window_layers\": %d,\n"
            "  \"model_type\": \"%s\",\n"
            "  \"num_attention_heads\": %d,\n"
            "  \"num_hidden_layers\": %d,\n"
            "  \"num_key_value_heads\": %d,\n"
            "  \"pad_token_id\": %s,\n"
            "  \"rms_norm_eps\": %.17g,\n"
            "  \"rope_scaling\": null,\n"
            "  \"rope_theta\": %.17g,\n"
            "  \"sliding_window\": null,\n"
            "  \"tie_word_embeddings\": %s,\n"
            "  \"torch_dtype\": \"%s\",\n"
            "  \"use_cache\": false,\n"
            "  \"use_sliding_window\": false,\n"
            "  \"vocab_size\": %d\n"
            "}\n",
            ids[0], ids[1], c->hidden, c->inter, ids[3], c->max_pos, c->n_layers,
            c->model_type[0] ? c->model_type : "Dream", c->n_heads, c->n_layers, c->n_kv_heads, ids[2], c->rms_eps,
            c->rope_theta, c->tie_embed ? "true" : "false", c->torch_dtype[0] ? c->torch_dtype : "bfloat16", c->vocab);
    if (fclose(f) != 0) return diffu_err_set(err, "%s: write failed: %s", path, strerror(errno));
    return 0;
}

int64_t diffu_config_params(const diffu_config *c) {
    int64_t H = c->hidden, I = c->inter, hd = c->head_dim, nh = c->n_heads, nkv = c->n_kv_heads, V = c->vocab;
    int64_t layer = H /*ln1*/ + H * nh * hd + nh * hd + 2 * (H * nkv * hd + nkv * hd) + nh * hd * H + H /*ln2*/ +
                    3 * H * I;
    return V * H + c->n_layers * layer + H + (c->tie_embed ? 0 : V * H);
}
