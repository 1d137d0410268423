/* cmd_mkmodel.c — `diffu mkmodel`: write a random-weight model (model/mkmodel.h). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "mkmodel.h"
#include "tokenizer.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: diffu mkmodel --preset tiny|small|7b --out DIR [options]\n"
            "  --dtype bf16|f16|f32   weight dtype (default bf16, as the real checkpoints)\n"
            "  --seed N               deterministic values from this seed (default 1)\n"
            "  --shard-size SIZE      start a new safetensors shard above SIZE (default 4G), e.g. 64K, 512M\n"
            "  --hidden N --layers N --heads N --kv-heads N --inter N --vocab N\n"
            "  --rope-theta X --rms-eps X --max-pos N --tie   override the preset\n"
            "  --config-only          write config.json only (memory planning for big presets)\n"
            "  --threads N            generator threads (default: CPUs in the affinity mask)\n"
            "  --tokenizer PATH|none  base Qwen2.5 tokenizer.json to give the model, with Dream's added tokens\n"
            "                         (default: the cached vocabulary from deploy/fetch_vocab.sh, when the\n"
            "                         model's vocab holds Dream's ids; none: no tokenizer files)\n");
}

int cmd_mkmodel(int argc, char **argv) {
    static const struct option opts[] = {
        {"preset", 1, 0, 'p'}, {"out", 1, 0, 'o'},       {"dtype", 1, 0, 'd'},      {"seed", 1, 0, 's'},
        {"shard-size", 1, 0, 'S'}, {"hidden", 1, 0, 1},  {"layers", 1, 0, 2},       {"heads", 1, 0, 3},
        {"kv-heads", 1, 0, 4},  {"inter", 1, 0, 5},      {"vocab", 1, 0, 6},        {"rope-theta", 1, 0, 7},
        {"rms-eps", 1, 0, 8},   {"max-pos", 1, 0, 9},    {"tie", 0, 0, 10},         {"config-only", 0, 0, 11},
        {"threads", 1, 0, 't'}, {"tokenizer", 1, 0, 'T'}, {"help", 0, 0, 'h'},     {0, 0, 0, 0}};
    const char *preset = NULL, *out = NULL, *dtype = "bf16", *tokenizer = NULL;
    long long v;
    double d;
    int ovr_int[12] = {0}, have[12] = {0}, tie = -1;
    double theta = 0, eps = 0;
    diffu_mkmodel_opts o;
    memset(&o, 0, sizeof o);
    o.seed = 1;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': preset = optarg; break;
        case 'o': out = optarg; break;
        case 'd': dtype = optarg; break;
        case 's': if (arg_int("mkmodel", "--seed", optarg, 0, INT64_MAX, &v)) return 2; o.seed = (uint64_t)v; break;
        case 'S': if (arg_size("mkmodel", "--shard-size", optarg, &o.shard_bytes)) return 2; break;
        case 't': if (arg_int("mkmodel", "--threads", optarg, 1, 1024, &v)) return 2; o.threads = (int)v; break;
        case 1: case 2: case 3: case 4: case 5: case 6: case 9:
            if (arg_int("mkmodel", opts[c + 4].name, optarg, 1, 1 << 24, &v)) return 2;
            ovr_int[c] = (int)v;
            have[c] = 1;
            break;
        case 7: if (arg_double("mkmodel", "--rope-theta", optarg, 1.0, 1e12, &d)) return 2; theta = d; break;
        case 8: if (arg_double("mkmodel", "--rms-eps", optarg, 1e-12, 0.1, &d)) return 2; eps = d; break;
        case 10: tie = 1; break;
        case 11: o.config_only = 1; break;
        case 'T': tokenizer = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!preset || !out) {
        fprintf(stderr, "diffu mkmodel: --preset and --out are required\n");
        usage(stderr);
        return 2;
    }
    diffu_err err;
    if (diffu_mkmodel_preset(preset, &o.cfg, &err)) {
        fprintf(stderr, "diffu mkmodel: --preset: %s\n", err.msg);
        return 2;
    }
    if (!strcmp(dtype, "bf16")) o.dtype = DIFFU_BF16;
    else if (!strcmp(dtype, "f16")) o.dtype = DIFFU_F16;
    else if (!strcmp(dtype, "f32")) o.dtype = DIFFU_F32;
    else {
        fprintf(stderr, "diffu mkmodel: --dtype: '%s' is not bf16, f16 or f32\n", dtype);
        return 2;
    }
    diffu_config *cf = &o.cfg;
    if (have[1]) cf->hidden = ovr_int[1];
    if (have[2]) cf->n_layers = ovr_int[2];
    if (have[3]) cf->n_heads = ovr_int[3];
    if (have[4]) cf->n_kv_heads = ovr_int[4];
    else if (have[3] && cf->n_heads % cf->n_kv_heads) cf->n_kv_heads = cf->n_heads;
    if (have[5]) cf->inter = ovr_int[5];
    if (have[6]) cf->vocab = ovr_int[6];
    if (have[9]) cf->max_pos = ovr_int[9];
    if (theta > 0) cf->rope_theta = theta;
    if (eps > 0) cf->rms_eps = eps;
    if (tie >= 0) cf->tie_embed = tie;
    if (cf->hidden % cf->n_heads || cf->n_heads % cf->n_kv_heads || (cf->hidden / cf->n_heads) % 2) {
        fprintf(stderr,
                "diffu mkmodel: heads do not fit: hidden %d / heads %d must be an even integer and kv-heads %d must divide heads\n",
                cf->hidden, cf->n_heads, cf->n_kv_heads);
        return 2;
    }
    cf->head_dim = cf->hidden / cf->n_heads;
    diffu_mkmodel_fix_ids(cf);
    /* the tokenizer: Dream's added tokens go up to id 151667 */
    const char *tok_src = NULL;
    if (tokenizer && strcmp(tokenizer, "none")) {
        if (cf->vocab < 151668) {
            fprintf(stderr, "diffu mkmodel: --tokenizer: vocab %d cannot hold Dream's token ids (up to 151667); use --tokenizer none or a larger --vocab\n", cf->vocab);
            return 2;
        }
        tok_src = tokenizer;
    } else if (!tokenizer && cf->vocab >= 151668) {
        tok_src = diffu_vocab_default_path();
        if (!tok_src)
            fprintf(stderr, "[diffu] mkmodel: no cached vocabulary (run deploy/fetch_vocab.sh); writing the model without a tokenizer\n");
    }
    if (diffu_mkmodel_write(out, &o, &err)) {
        fprintf(stderr, "diffu mkmodel: error: %s\n", err.msg);
        return 1;
    }
    if (tok_src && !o.config_only && diffu_tokenizer_write_dream(tok_src, out, &err)) {
        fprintf(stderr, "diffu mkmodel: error: --tokenizer: %s\n", err.msg);
        return 1;
    }
    fprintf(stderr, "[diffu] mkmodel: %s preset (hidden %d, %d layers, %d/%d heads, inter %d, vocab %d, %s%s) -> %s\n",
            preset, cf->hidden, cf->n_layers, cf->n_heads, cf->n_kv_heads, cf->inter, cf->vocab, dtype,
            tok_src ? ", Dream tokenizer" : ", no tokenizer", out);
    return 0;
}
