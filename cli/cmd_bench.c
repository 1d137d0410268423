/* cmd_bench.c — `diffu bench forward`: ms per forward and achieved GFLOP/s,
 * printed beside the raw OpenBLAS sgemm rate on the forward's own GEMM shapes
 * measured in the same run (fp32 operands, OpenBLAS threaded over the same
 * number of threads). Results to stdout; progress to stderr. */
#include <cblas.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "forward.h"

void openblas_set_num_threads(int);

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void fill(float *p, size_t n, uint32_t seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)((int32_t)(seed >> 8) - (1 << 23)) / (float)(1 << 23);
    }
}

/* VmRSS / VmHWM of this process in MiB (Linux), -1 if unknown. */
static void rss_mib(double *rss, double *hwm) {
    *rss = *hwm = -1;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return;
    char line[256];
    while (fgets(line, sizeof line, f)) {
        long kb;
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1) *rss = (double)kb / 1024.0;
        if (sscanf(line, "VmHWM: %ld kB", &kb) == 1) *hwm = (double)kb / 1024.0;
    }
    fclose(f);
}

static void usage(FILE *f) {
    fprintf(f,
            "usage: diffu bench tokenize --model DIR [--runs N] FILE...   (encoder MB/s on one thread)\n"
            "       diffu bench forward --model DIR --tokens N [--seqs S] [--rows R] [--threads T] [--reps K]\n"
            "                            [--f32-weights | --compare-f32] [--no-sgemm]\n"
            "  Times K forwards (after one warm-up) of S sequences totalling N tokens with lm_head on R rows\n"
            "  (default all), prints the median ms and GFLOP/s, then raw sgemm on the same GEMM shapes.\n"
            "  --compare-f32  also load the model fp32-resident and alternate the two, rep by rep\n");
}

typedef struct { int n, k, count; const char *name; } shape;

static int bench_forward(int argc, char **argv) {
    static const struct option opts[] = {{"model", 1, 0, 'm'},       {"tokens", 1, 0, 'n'},  {"seqs", 1, 0, 's'},
                                         {"rows", 1, 0, 'r'},        {"threads", 1, 0, 't'}, {"reps", 1, 0, 'k'},
                                         {"f32-weights", 0, 0, 'f'}, {"no-sgemm", 0, 0, 'x'}, {"compare-f32", 0, 0, 'c'},
                                         {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *model = NULL;
    long long tokens = 256, seqs = 1, rows = -1, threads = 0, reps = 5;
    int f32 = 0, no_sgemm = 0, compare = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'n': if (arg_int("bench forward", "--tokens", optarg, 1, 1 << 20, &tokens)) return 2; break;
        case 's': if (arg_int("bench forward", "--seqs", optarg, 1, 1 << 20, &seqs)) return 2; break;
        case 'r': if (arg_int("bench forward", "--rows", optarg, 0, 1 << 20, &rows)) return 2; break;
        case 't': if (arg_int("bench forward", "--threads", optarg, 1, 1024, &threads)) return 2; break;
        case 'k': if (arg_int("bench forward", "--reps", optarg, 1, 1000, &reps)) return 2; break;
        case 'f': f32 = 1; break;
        case 'x': no_sgemm = 1; break;
        case 'c': compare = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!model) {
        usage(stderr);
        return 2;
    }
    if (seqs > tokens) seqs = tokens;
    if (rows < 0 || rows > tokens) rows = tokens;
    diffu_model_opts mo;
    diffu_model_opts_default(&mo);
    mo.max_tokens = (int)tokens;
    mo.max_seq = (int)((tokens + seqs - 1) / seqs);
    mo.max_rows = (int)(rows > 0 ? rows : 1);
    mo.max_seqs = (int)seqs;
    mo.threads = (int)threads;
    mo.f32_weights = f32;
    diffu_err err;
    diffu_model *models[2] = {NULL, NULL};
    int n_models = compare ? 2 : 1;
    for (int k = 0; k < n_models; k++) {
        mo.f32_weights = k == 1 ? 1 : f32;
        if (k == 1) mo.pool = diffu_model_pool(models[0]); /* one set of threads for both */
        if (diffu_model_load(model, &mo, &models[k], &err)) {
            fprintf(stderr, "diffu bench forward: error: %s\n", err.msg);
            return 1;
        }
    }
    diffu_model *m = models[0];
    const diffu_config *cfg = diffu_model_config(m);
    int nthreads = diffu_model_get_opts(m)->threads;
    int *lens = diffu_xmalloc((size_t)seqs * sizeof *lens);
    for (int i = 0; i < seqs; i++) lens[i] = (int)(tokens * (i + 1) / seqs - tokens * i / seqs);
    int32_t *ids = diffu_xmalloc((size_t)tokens * 4), *rowv = diffu_xmalloc((size_t)(rows + 1) * 4);
    uint32_t s = 12345;
    for (int i = 0; i < tokens; i++) {
        s = s * 1664525u + 1013904223u;
        ids[i] = (int32_t)((s >> 8) % (uint32_t)cfg->vocab);
    }
    for (int i = 0; i < rows; i++) rowv[i] = (int32_t)((long long)i * tokens / rows);
    diffu_batch b = {(int)seqs, lens, ids, NULL, (int)rows, rowv};
    float *logits = diffu_xaligned((size_t)diffu_model_logit_rows(m) * cfg->vocab * 4);
    double *t[2] = {diffu_xmalloc((size_t)reps * sizeof(double)), diffu_xmalloc((size_t)reps * sizeof(double))};
    for (int k = 0; k < n_models; k++)
        if (diffu_forward(models[k], &b, logits, &err)) { /* warm-up (pages the weights in) */
            fprintf(stderr, "diffu bench forward: error: %s\n", err.msg);
            return 1;
        }
    /* alternate the modes rep by rep so machine noise hits both alike */
    for (int r = 0; r < reps; r++)
        for (int k = 0; k < n_models; k++) {
            double t0 = diffu_now();
            diffu_forward(models[k], &b, logits, &err);
            t[k][r] = diffu_now() - t0;
            fprintf(stderr, "[diffu] bench forward: rep %d/%lld %s %.1f ms\n", r + 1, reps,
                    k == 1 || f32 ? "fp32-resident" : "checkpoint-dtype", 1e3 * t[k][r]);
        }
    double flops = diffu_forward_flops(m, &b);
    double fwd = median(t[0], (int)reps);
    for (int k = 0; k < n_models; k++) {
        const diffu_weights *wt = diffu_model_weights(models[k]);
        double med = median(t[k], (int)reps);
        printf("forward: model %s, %lld tokens in %lld seq, %lld lm_head rows, %d threads, weights %s\n", model, tokens,
               seqs, rows, nthreads, k == 1 || f32 ? "fp32-resident" : "checkpoint dtype (widened per tile)");
        printf("forward: median %.1f ms over %lld reps, %.2f GFLOP per forward, %.1f GFLOP/s; weights %.1f MiB resident\n",
               1e3 * med, reps, flops / 1e9, flops / med / 1e9,
               (double)(wt->bytes_mapped + wt->bytes_owned) / 1048576.0);
    }
    if (compare)
        printf("compare: fp32-resident / checkpoint-dtype time ratio %.3f\n", median(t[1], (int)reps) / fwd);
    double rss, hwm;
    rss_mib(&rss, &hwm);
    const diffu_weights *wt = diffu_model_weights(m);
    printf("memory: weights %.1f MiB mapped + %.1f MiB owned, activations %.1f MiB; process RSS %.1f MiB (peak %.1f)%s\n",
           (double)wt->bytes_mapped / 1048576.0, (double)wt->bytes_owned / 1048576.0,
           (double)diffu_model_plan_bytes(m) / 1048576.0, rss, hwm, compare ? " (both models loaded)" : "");
    if (!no_sgemm) {
        int H = cfg->hidden, hd = cfg->head_dim, L = cfg->n_layers;
        shape sh[] = {{cfg->n_heads * hd, H, L, "q_proj"},      {cfg->n_kv_heads * hd, H, 2 * L, "k/v_proj"},
                      {H, cfg->n_heads * hd, L, "o_proj"},      {cfg->inter, H, 2 * L, "gate/up_proj"},
                      {H, cfg->inter, L, "down_proj"},          {cfg->vocab, H, 1, "lm_head"}};
        size_t maxw = 0, maxy = 0, maxx = 0;
        for (int i = 0; i < 6; i++) {
            size_t w = (size_t)sh[i].n * sh[i].k, y = (size_t)tokens * sh[i].n, x = (size_t)tokens * sh[i].k;
            maxw = w > maxw ? w : maxw;
            maxy = y > maxy ? y : maxy;
            maxx = x > maxx ? x : maxx;
        }
        float *W = diffu_xaligned(maxw * 4), *X = diffu_xaligned(maxx * 4), *Y = diffu_xaligned(maxy * 4);
        fill(W, maxw, 1);
        fill(X, maxx, 2);
        openblas_set_num_threads(nthreads);
        double gemm_time = 0, gemm_flops = 0;
        for (int i = 0; i < 6; i++) {
            int M = i == 5 ? (int)rows : (int)tokens;
            if (M == 0) continue;
            double *ts = diffu_xmalloc((size_t)reps * sizeof *ts);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, sh[i].n, sh[i].k, 1.0f, X, sh[i].k, W, sh[i].k,
                        0.0f, Y, sh[i].n);
            for (int r = 0; r < reps; r++) {
                double t0 = diffu_now();
                for (int k = 0; k < 3; k++)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, sh[i].n, sh[i].k, 1.0f, X, sh[i].k, W,
                                sh[i].k, 0.0f, Y, sh[i].n);
                ts[r] = (diffu_now() - t0) / 3;
            }
            double med = median(ts, (int)reps), f = 2.0 * M * sh[i].n * sh[i].k;
            printf("sgemm: %-13s M=%-5d N=%-6d K=%-6d %7.2f ms  %6.1f GFLOP/s\n", sh[i].name, M, sh[i].n, sh[i].k,
                   1e3 * med, f / med / 1e9);
            gemm_time += med * sh[i].count;
            gemm_flops += f * sh[i].count;
            free(ts);
        }
        openblas_set_num_threads(1);
        double raw = gemm_flops / gemm_time;
        printf("sgemm: the forward's GEMMs at raw sgemm speed: %.1f ms, %.1f GFLOP/s (%d threads)\n", 1e3 * gemm_time,
               raw / 1e9, nthreads);
        for (int k = 0; k < n_models; k++) {
            double med = median(t[k], (int)reps);
            printf("result: forward (%s) %.1f GFLOP/s = %.1f%% of raw sgemm %.1f GFLOP/s (time ratio sgemm-only/forward %.3f)\n",
                   k == 1 || f32 ? "fp32-resident" : "checkpoint dtype", flops / med / 1e9,
                   100.0 * (flops / med) / raw, raw / 1e9, gemm_time / med);
        }
        free(W);
        free(X);
        free(Y);
    }
    free(t[0]);
    free(t[1]);
    free(logits);
    free(ids);
    free(rowv);
    free(lens);
    for (int k = n_models - 1; k >= 0; k--) diffu_model_free(models[k]);
    return 0;
}

int cmd_bench(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "forward")) return bench_forward(argc - 1, argv + 1);
    if (!strcmp(argv[1], "tokenize")) return bench_tokenize(argc - 1, argv + 1);
    fprintf(stderr, "diffu bench: unknown benchmark '%s' (forward, tokenize)\n", argv[1]);
    return 2;
}
