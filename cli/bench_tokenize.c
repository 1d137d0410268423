/* bench_tokenize.c — `diffu bench tokenize`: encoder throughput on one thread.
 *
 *   diffu bench tokenize --model DIR [--runs N] FILE...
 *
 * Each run encodes every FILE whole, in order, on the calling thread; the
 * word cache is warm after run 1 (as in a long-running server), so run 1 is
 * also reported alone. Prints MB/s (10^6 bytes of input per second) per run
 * and the median to stdout. Dispatched from cmd_bench.c as
 * bench_tokenize(argc - 1, argv + 1), i.e. argv[0] == "tokenize". */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "tokenizer.h"

int bench_tokenize(int argc, char **argv);

static void usage(FILE *f) {
    fprintf(f, "usage: diffu bench tokenize --model DIR [--runs N] FILE...\n"
               "  Encodes each FILE whole on one thread, N times (default 5); prints MB/s per run and the median.\n");
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int bench_tokenize(int argc, char **argv) {
    static const struct option lo[] = {{"model", 1, 0, 'm'}, {"runs", 1, 0, 'r'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    const char *model = NULL;
    long long runs = 5;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'r': if (arg_int("bench tokenize", "--runs", optarg, 1, 1000, &runs)) return 2; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!model || optind >= argc) {
        usage(stderr);
        return 2;
    }
    int nf = argc - optind;
    char **data = calloc((size_t)nf, sizeof(char *));
    size_t *len = calloc((size_t)nf, sizeof(size_t)), total = 0;
    for (int i = 0; i < nf; i++) {
        const char *path = argv[optind + i];
        FILE *f = fopen(path, "rb");
        if (!f) {
            fprintf(stderr, "diffu bench tokenize: error: %s: cannot open\n", path);
            return 1;
        }
        size_t cap = 1 << 20, n = 0, r;
        char *b = diffu_xmalloc(cap);
        while ((r = fread(b + n, 1, cap - n, f)) > 0)
            if ((n += r) == cap) b = diffu_xrealloc(b, cap *= 2);
        fclose(f);
        data[i] = b;
        len[i] = n;
        total += n;
    }
    diffu_err err;
    double t0 = diffu_now();
    diffu_tokenizer *tok = diffu_tokenizer_load(model, &err);
    if (!tok) {
        fprintf(stderr, "diffu bench tokenize: error: %s\n", err.msg);
        return 1;
    }
    double t_load = diffu_now() - t0;
    double *mbs = calloc((size_t)runs, sizeof(double));
    diffu_ids ids = {0};
    size_t n_ids = 0;
    for (long long r = 0; r < runs; r++) {
        ids.len = 0;
        n_ids = 0;
        t0 = diffu_now();
        for (int i = 0; i < nf; i++) {
            if (diffu_tokenizer_encode(tok, data[i], len[i], &ids, &err) < 0) {
                fprintf(stderr, "diffu bench tokenize: error: %s\n", err.msg);
                return 1;
            }
            n_ids += ids.len;
            ids.len = 0;
        }
        double dt = diffu_now() - t0;
        mbs[r] = total / 1e6 / dt;
        printf("run %lld: %.3f s, %.2f MB/s, %.2f M ids/s%s\n", r + 1, dt, mbs[r], n_ids / 1e6 / dt,
               r == 0 ? " (cold word cache)" : "");
    }
    double first = mbs[0];
    qsort(mbs, (size_t)runs, sizeof(double), cmp_double);
    double med = runs % 2 ? mbs[runs / 2] : 0.5 * (mbs[runs / 2 - 1] + mbs[runs / 2]);
    printf("tokenize: %.2f MB in %d file(s) -> %zu ids (%.2f bytes/id); load %.3f s; one thread: median %.2f MB/s "
           "over %lld runs (first, cold cache: %.2f MB/s)\n",
           total / 1e6, nf, n_ids, n_ids ? (double)total / n_ids : 0.0, t_load, med, runs, first);
    free(mbs);
    diffu_ids_free(&ids);
    diffu_tokenizer_free(&tok);
    for (int i = 0; i < nf; i++) free(data[i]);
    free(data);
    free(len);
    return 0;
}
