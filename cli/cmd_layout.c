/* cmd_layout.c — `diffu layout`: print the parallel plan of a P x T job
 * (node/layout.h) without MPI and without loading weights. */
#include <getopt.h>
#include <stdio.h>

#include "args.h"
#include "commands.h"
#include "layout.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: diffu layout --model DIR [--np N] [--pp P] [--tp T] [--config-only] [--max-tokens N] [--max-seq N]\n"
            "                    [--threads N] [--f32-weights] [--head-rows F] [--cache-slots N [--cache-ctx L]]\n"
            "  Prints which rank is which pipeline stage and tensor-parallel rank, its layers, heads, KV heads,\n"
            "  FFN columns, vocabulary rows, memory (weights + activations + pipeline buffers) and the\n"
            "  communication it joins; refuses (exit 1) a layout the model does not allow, with the reason.\n"
            "  --np N          world size (default pp x tp; with only one of --pp/--tp the other is N / it)\n"
            "  --config-only   read DIR/config.json only (no weights needed)\n"
            "  --max-tokens N  tokens per forward in the memory plan (default 2048); --max-seq N: longest sequence\n"
            "  --threads N     threads per rank in the memory plan (default 1)\n"
            "  --head-rows F   lm_head rows per token in the balance rule (default 1; generation computes only\n"
            "                  the masked rows, e.g. 0.5)\n"
            "  --cache-slots N  count a KV cache (--cache prefix|dual|delayed) of N requests per rank;\n"
            "  --cache-ctx L    of L positions each (default --max-seq)\n");
}

int cmd_layout(int argc, char **argv) {
    static const struct option opts[] = {{"model", 1, 0, 'm'},      {"np", 1, 0, 'n'},          {"pp", 1, 0, 'p'},
                                         {"tp", 1, 0, 't'},         {"config-only", 0, 0, 'c'}, {"max-tokens", 1, 0, 'k'},
                                         {"max-seq", 1, 0, 's'},    {"threads", 1, 0, 'j'},     {"f32-weights", 0, 0, 'f'},
                                         {"head-rows", 1, 0, 'r'},  {"cache-slots", 1, 0, 'S'}, {"cache-ctx", 1, 0, 'L'},
                                         {"help", 0, 0, 'h'},       {0, 0, 0, 0}};
    const char *model = NULL;
    long long np = 0, pp = 0, tp = 0, v;
    double d;
    int config_only = 0;
    diffu_layout_opts lo;
    diffu_layout_opts_default(&lo);
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'n': if (arg_int("layout", "--np", optarg, 1, 1 << 20, &np)) return 2; break;
        case 'p': if (arg_int("layout", "--pp", optarg, 1, 1 << 20, &pp)) return 2; break;
        case 't': if (arg_int("layout", "--tp", optarg, 1, 1 << 20, &tp)) return 2; break;
        case 'c': config_only = 1; break;
        case 'k': if (arg_int("layout", "--max-tokens", optarg, 1, 1 << 24, &v)) return 2; lo.max_tokens = (int)v; break;
        case 's': if (arg_int("layout", "--max-seq", optarg, 1, 1 << 24, &v)) return 2; lo.max_seq = (int)v; break;
        case 'j': if (arg_int("layout", "--threads", optarg, 1, 1024, &v)) return 2; lo.threads = (int)v; break;
        case 'f': lo.weight_elem_size = 4; break;
        case 'r': if (arg_double("layout", "--head-rows", optarg, 1e-6, 1.0, &d)) return 2; lo.head_row_frac = d; break;
        case 'S': if (arg_int("layout", "--cache-slots", optarg, 1, 1 << 20, &v)) return 2; lo.cache_slots = (int)v; break;
        case 'L': if (arg_int("layout", "--cache-ctx", optarg, 1, 1 << 24, &v)) return 2; lo.cache_ctx = (int)v; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!model || optind != argc) {
        fprintf(stderr, "diffu layout: --model is required (and takes no other arguments)\n");
        return 2;
    }
    if (!np && !pp && !tp) {
        fprintf(stderr, "diffu layout: give --np, or --pp and --tp\n");
        return 2;
    }
    diffu_err err;
    diffu_layout *l;
    if (diffu_layout_from_dir(model, config_only, (int)np, (int)pp, (int)tp, &lo, &l, &err)) {
        fprintf(stderr, "diffu layout: error: %s\n", err.msg);
        return 1;
    }
    printf("model: %s%s\n", model, config_only ? " (config.json only)" : "");
    diffu_layout_print(l, stdout);
    diffu_layout_free(l);
    return 0;
}
