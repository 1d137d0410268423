/* cmd_inspect.c — `diffu inspect DIR`: validate a checkpoint and report it. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "checkpoint.h"
#include "commands.h"
#include "forward.h"
#include "layout.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: diffu inspect DIR [--pp P] [--tp T] [--max-tokens N] [--threads N] [--f32-weights] [--config-only]\n"
            "                         [--cache-slots N [--cache-ctx L]]\n"
            "  Validates the checkpoint (every header, tensor, shape and dtype) and prints its config, parameter\n"
            "  count, bytes by dtype, and the memory each rank of a P x T layout needs (weights + activations,\n"
            "  and with --cache-slots the KV cache of N requests of L positions, default --max-tokens).\n"
            "  --config-only  plan from config.json alone (no weights needed, e.g. `mkmodel --preset 7b --config-only`)\n");
}

static double gib(double b) { return b / (1024.0 * 1024.0 * 1024.0); }

int cmd_inspect(int argc, char **argv) {
    static const struct option opts[] = {{"pp", 1, 0, 'p'},          {"tp", 1, 0, 't'},
                                         {"max-tokens", 1, 0, 'n'},  {"threads", 1, 0, 'j'},
                                         {"f32-weights", 0, 0, 'f'}, {"config-only", 0, 0, 'c'},
                                         {"cache-slots", 1, 0, 'S'}, {"cache-ctx", 1, 0, 'L'},
                                         {"help", 0, 0, 'h'},        {0, 0, 0, 0}};
    long long pp = 1, tp = 1, v;
    int f32 = 0, config_only = 0, cache_slots = 0, cache_ctx = 0;
    diffu_model_opts mo;
    diffu_model_opts_default(&mo);
    mo.threads = 1;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': if (arg_int("inspect", "--pp", optarg, 1, 4096, &pp)) return 2; break;
        case 't': if (arg_int("inspect", "--tp", optarg, 1, 4096, &tp)) return 2; break;
        case 'n': if (arg_int("inspect", "--max-tokens", optarg, 1, 1 << 24, &v)) return 2; mo.max_tokens = (int)v; break;
        case 'j': if (arg_int("inspect", "--threads", optarg, 1, 1024, &v)) return 2; mo.threads = (int)v; break;
        case 'f': f32 = 1; break;
        case 'c': config_only = 1; break;
        case 'S': if (arg_int("inspect", "--cache-slots", optarg, 1, 1 << 20, &v)) return 2; cache_slots = (int)v; break;
        case 'L': if (arg_int("inspect", "--cache-ctx", optarg, 1, 1 << 24, &v)) return 2; cache_ctx = (int)v; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc - 1) {
        usage(stderr);
        return 2;
    }
    const char *dir = argv[optind];
    diffu_err err;
    diffu_config cfg;
    diffu_ckpt *ck = NULL;
    if (config_only) {
        char path[4096];
        snprintf(path, sizeof path, "%s/config.json", dir);
        if (diffu_config_load(path, &cfg, &err)) {
            fprintf(stderr, "diffu inspect: error: %s\n", err.msg);
            return 1;
        }
    } else {
        if (diffu_ckpt_open(dir, &ck, &err)) {
            fprintf(stderr, "diffu inspect: error: %s\n", err.msg);
            return 1;
        }
        cfg = *diffu_ckpt_config(ck);
    }
    printf("model: %s\n", dir);
    printf("config: model_type %s, hidden %d, layers %d, heads %d (kv %d, head_dim %d), intermediate %d, vocab %d\n",
           cfg.model_type, cfg.hidden, cfg.n_layers, cfg.n_heads, cfg.n_kv_heads, cfg.head_dim, cfg.inter, cfg.vocab);
    printf("config: rope_theta %g, rms_norm_eps %g, max_position_embeddings %d, tie_word_embeddings %s\n",
           cfg.rope_theta, cfg.rms_eps, cfg.max_pos, cfg.tie_embed ? "true" : "false");
    printf("config: bos %d, eos %d, pad %d, mask %d\n", cfg.bos_id, cfg.eos_id, cfg.pad_id, cfg.mask_id);
    size_t es = 2;
    if (ck) {
        diffu_ckpt_stats st;
        diffu_ckpt_get_stats(ck, &st);
        printf("parameters: %lld (%.3f B) in %d tensors, %d file(s), fingerprint %016llx\n", (long long)st.params,
               (double)st.params / 1e9, st.n_tensors, st.n_files, (unsigned long long)diffu_ckpt_fingerprint(ck));
        printf("bytes: total %.3f GiB; BF16 %.3f GiB, F16 %.3f GiB, F32 %.3f GiB\n", gib((double)st.bytes_total),
               gib((double)st.bytes_by_dtype[DIFFU_BF16]), gib((double)st.bytes_by_dtype[DIFFU_F16]),
               gib((double)st.bytes_by_dtype[DIFFU_F32]));
        es = st.bytes_by_dtype[DIFFU_F32] > st.bytes_total / 2 ? 4 : 2;
        diffu_ckpt_close(ck);
    } else {
        printf("parameters: %lld (%.3f B) (from config.json; no weights read)\n", (long long)diffu_config_params(&cfg),
               (double)diffu_config_params(&cfg) / 1e9);
    }
    if (f32) es = 4;
    /* the same plan the distributed runtime uses (node/layout.h) */
    diffu_layout_opts lo;
    diffu_layout_opts_default(&lo);
    lo.max_tokens = mo.max_tokens;
    lo.threads = mo.threads;
    lo.weight_elem_size = es;
    lo.cache_slots = cache_slots; /* the KV cache per rank (model/kvcache.h), as diffu layout / plan count it */
    lo.cache_ctx = cache_ctx;
    diffu_layout *lay;
    if (diffu_layout_init(&cfg, (int)(pp * tp), (int)pp, (int)tp, &lo, &lay, &err)) {
        fprintf(stderr, "diffu inspect: error: layout pp %lld x tp %lld: %s\n", pp, tp, err.msg);
        return 1;
    }
    printf("\n");
    diffu_layout_print(lay, stdout);
    diffu_layout_free(lay);
    return 0;
}
