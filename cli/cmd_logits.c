/* cmd_logits.c — `diffu logits`: raw logits of every position, for tests and
 * outside checks. Input: little-endian int32 token ids (sequences back to back
 * when --lengths is given). Output: little-endian float32 [N x vocab], the
 * unshifted logits of every position in input order. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "forward.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: diffu logits --model DIR --ids FILE --out FILE [--lengths L1,L2,...] [--threads N] [--f32-weights]\n"
            "                    [--precision fp32|bf16|int8|auto]  (GEMM precision; default auto = $DIFFU_PRECISION or the CPU's fastest)\n"
            "  FILE of --ids: little-endian int32 token ids; with --lengths, several sequences back to back\n"
            "  (each attends only to itself, positions from 0). --out gets float32 [N x vocab], unshifted.\n"
            "  Under mpirun with --pp P --tp T: the distributed forward (see `diffu logits --pp 1 --help`).\n");
}

int cmd_logits(int argc, char **argv) {
    for (int i = 1; i < argc; i++) /* the distributed forward under mpirun: cli/cmd_logits_dist.c */
        if (!strncmp(argv[i], "--pp", 4) || !strncmp(argv[i], "--tp", 4)) return cmd_logits_dist(argc, argv);
    static const struct option opts[] = {{"model", 1, 0, 'm'},   {"ids", 1, 0, 'i'},   {"out", 1, 0, 'o'},
                                         {"lengths", 1, 0, 'l'}, {"threads", 1, 0, 't'}, {"f32-weights", 0, 0, 'f'}, {"precision", 1, 0, 'P'},
                                         {"help", 0, 0, 'h'},    {0, 0, 0, 0}};
    const char *model = NULL, *ids_path = NULL, *out_path = NULL, *lengths = NULL;
    long long v;
    diffu_model_opts mo;
    diffu_model_opts_default(&mo);
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'i': ids_path = optarg; break;
        case 'o': out_path = optarg; break;
        case 'l': lengths = optarg; break;
        case 't': if (arg_int("logits", "--threads", optarg, 1, 1024, &v)) return 2; mo.threads = (int)v; break;
        case 'f': mo.f32_weights = 1; break;
        case 'P': if (arg_precision("logits", optarg)) return 2; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!model || !ids_path || !out_path) {
        fprintf(stderr, "diffu logits: --model, --ids and --out are required\n");
        return 2;
    }
    FILE *f = fopen(ids_path, "rb");
    if (!f) {
        fprintf(stderr, "diffu logits: error: %s: cannot open: %s\n", ids_path, strerror(errno));
        return 1;
    }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (sz <= 0 || sz % 4) {
        fprintf(stderr, "diffu logits: error: %s: %ld bytes is not a non-empty list of int32 ids\n", ids_path, sz);
        fclose(f);
        return 1;
    }
    int n = (int)(sz / 4);
    int32_t *ids = diffu_xmalloc((size_t)sz);
    size_t got = fread(ids, 4, (size_t)n, f);
    fclose(f);
    if (got != (size_t)n) {
        fprintf(stderr, "diffu logits: error: %s: short read\n", ids_path);
        free(ids);
        return 1;
    }
    int *lens = NULL, n_seq = 1;
    if (lengths) {
        if (arg_int_list("logits", "--lengths", lengths, 1, 1 << 30, &lens, &n_seq)) {
            free(ids);
            return 2;
        }
        long long tot = 0;
        for (int i = 0; i < n_seq; i++) tot += lens[i];
        if (tot != n) {
            fprintf(stderr, "diffu logits: error: --lengths add up to %lld but %s holds %d ids\n", tot, ids_path, n);
            free(ids);
            free(lens);
            return 1;
        }
    } else {
        lens = diffu_xmalloc(sizeof *lens);
        lens[0] = n;
    }
    int max_seq = 0;
    for (int i = 0; i < n_seq; i++) max_seq = lens[i] > max_seq ? lens[i] : max_seq;
    mo.max_tokens = n;
    mo.max_seq = max_seq;
    mo.max_rows = n;
    mo.max_seqs = n_seq;
    diffu_err err;
    diffu_model *m;
    if (diffu_model_load(model, &mo, &m, &err)) {
        fprintf(stderr, "diffu logits: error: %s\n", err.msg);
        free(ids);
        free(lens);
        return 1;
    }
    int V = diffu_model_config(m)->vocab;
    int32_t *rows = diffu_xmalloc((size_t)n * 4);
    for (int i = 0; i < n; i++) rows[i] = i;
    diffu_batch b = {n_seq, lens, ids, NULL, n, rows};
    float *logits = diffu_xaligned((size_t)diffu_model_logit_rows(m) * (size_t)V * 4); /* room for the padded rows */
    int rc = 0;
    double t0 = diffu_now();
    if (diffu_forward(m, &b, logits, &err)) {
        fprintf(stderr, "diffu logits: error: %s: %s\n", ids_path, err.msg);
        rc = 1;
    } else {
        DLOG_INFO("forward: %d tokens in %d sequence(s), %.1f ms", n, n_seq, 1e3 * (diffu_now() - t0));
        FILE *o = fopen(out_path, "wb");
        if (!o || fwrite(logits, 4, (size_t)n * V, o) != (size_t)n * V || fclose(o) != 0) {
            fprintf(stderr, "diffu logits: error: %s: write failed: %s\n", out_path, strerror(errno));
            rc = 1;
        }
    }
    free(logits);
    free(rows);
    free(ids);
    free(lens);
    diffu_model_free(m);
    return rc;
}
