/* cmd_bench.c — `diffu bench forward`: ms per forward and achieved GFLOP/s,
 * printed beside the raw OpenBLAS sgemm rate on the forward's own GEMM shapes
 * measured in the same run (fp32 operands, OpenBLAS threaded over the same
 * number of threads). Results to stdout; progress to stderr. */
#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "cpupeak.h"
#include "forward.h"
#include "gemm.h"
#include "sampler.h"

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
            "                            [--f32-weights | --compare-f32] [--no-sgemm] [--precision P[,P...]] [--peak]\n"
            "                            [--save FILE]\n"
            "  Times K forwards (after one warm-up) of S sequences totalling N tokens with lm_head on R rows\n"
            "  (default all), prints the median ms and GFLOP/s, then raw sgemm on the same GEMM shapes.\n"
            "  --compare-f32  also load the model fp32-resident and alternate the two, rep by rep\n"
            "  --precision    GEMM paths to time side by side (fp32,bf16,int8; one model each, reps alternated)\n"
            "  --peak         also measure the core's peak per dtype (diffu bench peak) in the same run\n"
            "  --save FILE    write the per-core rates (forward GFLOP/s per core per precision, peaks) for\n"
            "                 `diffu plan --rates FILE`\n"
            "       diffu bench peak [--threads T] [--seconds S]   (vfmadd231ps / vdpbf16ps / vpdpbusd loops)\n"
            "       diffu bench sampler [--vocab V] [--rows R]     (full-vocabulary softmax vs the scalar libm loop)\n");
}

typedef struct { int n, k, count; const char *name; } shape;

#define MAX_MODES 4
typedef struct { diffu_precision prec; int f32; char label[64]; } bmode;

static void cpu_name(char *buf, size_t n) {
    snprintf(buf, n, "unknown CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "model name", 10)) {
            char *c = strchr(line, ':');
            if (c) {
                c += 1 + (c[1] == ' ');
                c[strcspn(c, "\n")] = 0;
                snprintf(buf, n, "%s", c);
            }
            break;
        }
    fclose(f);
}

static int bench_peak(int argc, char **argv) {
    static const struct option opts[] = {{"threads", 1, 0, 't'}, {"seconds", 1, 0, 's'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    long long threads = 0;
    double secs = 0.5;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 't': if (arg_int("bench peak", "--threads", optarg, 1, 256, &threads)) return 2; break;
        case 's': if (arg_double("bench peak", "--seconds", optarg, 0.01, 60, &secs)) return 2; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (threads <= 0) threads = diffu_affinity_cpus();
    char cpu[256];
    cpu_name(cpu, sizeof cpu);
    printf("peak: %s (isa %s)\n", cpu, diffu_cpu_get()->isa);
    diffu_precision ps[3] = {DIFFU_PREC_FP32, DIFFU_PREC_BF16, DIFFU_PREC_INT8};
    for (int i = 0; i < 3; i++) {
        double one = diffu_cpu_peak(ps[i], 1, secs), all = threads > 1 ? diffu_cpu_peak(ps[i], (int)threads, secs) : one;
        printf("peak: %-5s %-16s 1 thread %7.1f G%s/s, %lld threads %7.1f G%s/s\n", diffu_precision_name(ps[i]),
               diffu_cpu_peak_insn(ps[i]), one, ps[i] == DIFFU_PREC_INT8 ? "OP" : "FLOP", threads, all,
               ps[i] == DIFFU_PREC_INT8 ? "OP" : "FLOP");
    }
    return 0;
}

/* The scalar libm softmax the sampler used before it was vectorized (max, exp,
 * sum and the confidence in double), timed beside it in the same run. */
static double ref_row(const float *L, int V, const diffu_sampler_params *p, double *z) {
    double T = p->temperature, m = -INFINITY;
    for (int v = 0; v < V; v++) z[v] = T > 0 ? (double)L[v] / T : (double)L[v];
    for (int v = 0; v < V; v++) m = z[v] > m ? z[v] : m;
    double Z = 0;
    for (int v = 0; v < V; v++) Z += (z[v] = exp(z[v] - m));
    if (p->conf == DIFFU_CONF_NEG_ENTROPY) {
        double h = 0;
        for (int v = 0; v < V; v++)
            if (z[v] > 0) h += z[v] / Z * log(z[v] / Z + 1e-10);
        return h;
    }
    return 1.0 / Z;
}

static int bench_sampler(int argc, char **argv) {
    static const struct option opts[] = {{"vocab", 1, 0, 'v'}, {"rows", 1, 0, 'r'}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    long long V = 151936, R = 64;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'v': if (arg_int("bench sampler", "--vocab", optarg, 2, 1 << 24, &V)) return 2; break;
        case 'r': if (arg_int("bench sampler", "--rows", optarg, 1, 100000, &R)) return 2; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    float *L = diffu_xaligned((size_t)V * 4);
    double *z = diffu_xaligned((size_t)V * 8);
    uint32_t s = 7;
    for (long long v = 0; v < V; v++) { /* logits like a real row: most mass on a few tokens */
        s = s * 1664525u + 1013904223u;
        L[v] = (float)((int32_t)(s >> 8) - (1 << 23)) / (float)(1 << 23) * 6.0f;
    }
    diffu_sampler_scratch *sc = diffu_sampler_scratch_create((int)V);
    static const char *names[] = {"greedy, conf prob", "T 0.3, conf prob", "greedy, conf margin", "greedy, conf entropy",
                                  "T 0.3, top-p 0.95"};
    printf("sampler: vocab %lld, %lld rows per config, one thread, median of 5 (alternating reference and sampler)\n", V, R);
    for (int k = 0; k < 5; k++) {
        diffu_sampler_params p;
        diffu_sampler_params_default(&p);
        if (k == 1 || k == 4) p.temperature = 0.3;
        if (k == 2) p.conf = DIFFU_CONF_MARGIN;
        if (k == 3) p.conf = DIFFU_CONF_NEG_ENTROPY;
        if (k == 4) p.top_p = 0.95;
        double tr[5], ts[5], sink = 0;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = diffu_now();
            for (int r = 0; r < R; r++) sink += ref_row(L, (int)V, &p, z);
            tr[rep] = (diffu_now() - t0) / (double)R;
            t0 = diffu_now();
            for (int r = 0; r < R; r++) {
                diffu_sample_job j = {&p, diffu_philox_seed(1), diffu_philox_addr(0, 0, 0, (uint32_t)r, DIFFU_RNG_TOKEN)};
                diffu_sample o;
                diffu_sampler_row(L, (int)V, &j, sc, &o);
                sink += o.conf;
            }
            ts[rep] = (diffu_now() - t0) / (double)R;
        }
        double a = median(tr, 5), b = median(ts, 5);
        printf("sampler: %-22s scalar libm softmax %.3f ms/row, diffu_sampler_row %.3f ms/row: %.2fx%s\n", names[k],
               1e3 * a, 1e3 * b, a / b, k == 4 ? " (reference without the top-p cut)" : "");
        if (sink == 12345.678) printf(" ");
    }
    diffu_sampler_scratch_free(&sc);
    free(L);
    free(z);
    return 0;
}

static int bench_forward(int argc, char **argv) {
    static const struct option opts[] = {{"model", 1, 0, 'm'},       {"tokens", 1, 0, 'n'},  {"seqs", 1, 0, 's'},
                                         {"rows", 1, 0, 'r'},        {"threads", 1, 0, 't'}, {"reps", 1, 0, 'k'},
                                         {"f32-weights", 0, 0, 'f'}, {"no-sgemm", 0, 0, 'x'}, {"compare-f32", 0, 0, 'c'},
                                         {"precision", 1, 0, 'P'},   {"peak", 0, 0, 'K'},    {"save", 1, 0, 'S'},
                                         {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *model = NULL, *save = NULL, *plist = NULL;
    long long tokens = 256, seqs = 1, rows = -1, threads = 0, reps = 5;
    int f32 = 0, no_sgemm = 0, compare = 0, peak = 0;
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
        case 'P': plist = optarg; break;
        case 'K': peak = 1; break;
        case 'S': save = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (!model) {
        usage(stderr);
        return 2;
    }
    bmode modes[MAX_MODES];
    int n_models = 0;
    if (plist) {
        char buf[128];
        snprintf(buf, sizeof buf, "%s", plist);
        for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
            if (n_models == MAX_MODES) {
                fprintf(stderr, "diffu bench forward: --precision: at most %d paths\n", MAX_MODES);
                return 2;
            }
            if (diffu_precision_parse(tok, &modes[n_models].prec)) {
                fprintf(stderr, "diffu bench forward: --precision: '%s' is not one of fp32, bf16, int8, auto\n", tok);
                return 2;
            }
            modes[n_models].f32 = f32;
            n_models++;
        }
    } else {
        modes[n_models++] = (bmode){DIFFU_PREC_AUTO, f32, ""};
    }
    if (compare && n_models < MAX_MODES) modes[n_models++] = (bmode){DIFFU_PREC_FP32, 1, ""};
    if (seqs > tokens) seqs = tokens;
    if (rows < 0 || rows > tokens) rows = tokens;
    diffu_model_opts mo;
    diffu_model_opts_default(&mo);
    mo.max_tokens = (int)tokens;
    mo.max_seq = (int)((tokens + seqs - 1) / seqs);
    mo.max_rows = (int)(rows > 0 ? rows : 1);
    mo.max_seqs = (int)seqs;
    mo.threads = (int)threads;
    diffu_err err;
    diffu_model *models[MAX_MODES] = {NULL};
    for (int k = 0; k < n_models; k++) {
        mo.f32_weights = modes[k].f32;
        mo.precision = (int)modes[k].prec;
        if (k >= 1) mo.pool = diffu_model_pool(models[0]); /* one set of threads for all */
        if (diffu_model_load(model, &mo, &models[k], &err)) {
            fprintf(stderr, "diffu bench forward: error: %s\n", err.msg);
            return 1;
        }
        modes[k].prec = diffu_gemm_precision(diffu_model_gemm(models[k]));
        snprintf(modes[k].label, sizeof modes[k].label, "%s%s", diffu_precision_name(modes[k].prec),
                 modes[k].f32 ? " fp32-resident" : "");
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
    double *t[MAX_MODES], gsec[MAX_MODES] = {0}, gfl[MAX_MODES] = {0};
    for (int k = 0; k < n_models; k++) t[k] = diffu_xmalloc((size_t)reps * sizeof(double));
    for (int k = 0; k < n_models; k++)
        if (diffu_forward(models[k], &b, logits, &err)) { /* warm-up (pages the weights in) */
            fprintf(stderr, "diffu bench forward: error: %s\n", err.msg);
            return 1;
        }
    double conv[MAX_MODES] = {0};
    for (int k = 0; k < n_models; k++) { /* the warm-up's out */
        diffu_model_phases(models[k], NULL, NULL, 1);
        diffu_gemm_convert_seconds(diffu_model_gemm(models[k]), 1);
    }
    /* alternate the modes rep by rep so machine noise hits all alike */
    for (int r = 0; r < reps; r++)
        for (int k = 0; k < n_models; k++) {
            diffu_gemm_stats(diffu_model_gemm(models[k]), NULL, NULL, 1);
            double t0 = diffu_now();
            diffu_forward(models[k], &b, logits, &err);
            t[k][r] = diffu_now() - t0;
            double gs, gf;
            diffu_gemm_stats(diffu_model_gemm(models[k]), &gs, &gf, 1);
            gsec[k] += gs, gfl[k] += gf;
            fprintf(stderr, "[diffu] bench forward: rep %d/%lld %s %.1f ms\n", r + 1, reps, modes[k].label, 1e3 * t[k][r]);
        }
    double flops = diffu_forward_flops(m, &b);
    double pk[4] = {0}, pk1[4] = {0}; /* by diffu_precision: all threads, one thread */
    if (peak)
        for (int pi = DIFFU_PREC_FP32; pi <= DIFFU_PREC_INT8; pi++) {
            pk1[pi] = diffu_cpu_peak((diffu_precision)pi, 1, 0.3);
            pk[pi] = nthreads > 1 ? diffu_cpu_peak((diffu_precision)pi, nthreads, 0.3) : pk1[pi];
        }
    char cpu[256];
    cpu_name(cpu, sizeof cpu);
    printf("cpu: %s, isa %s, %d threads\n", cpu, diffu_cpu_get()->isa, nthreads);
    for (int k = 0; k < n_models; k++) {
        const diffu_weights *wt = diffu_model_weights(models[k]);
        double med = median(t[k], (int)reps);
        printf("forward: model %s, %lld tokens in %lld seq, %lld lm_head rows, %d threads, gemm %s\n", model, tokens,
               seqs, rows, nthreads, diffu_gemm_describe(diffu_model_gemm(models[k])));
        printf("forward: %s median %.1f ms over %lld reps, %.2f GFLOP per forward, %.1f GFLOP/s; GEMMs %.1f%% of the time"
               " at %.1f GFLOP/s; weights %.1f MiB resident\n",
               modes[k].label, 1e3 * med, reps, flops / 1e9, flops / med / 1e9,
               100.0 * gsec[k] / (median(t[k], (int)reps) * reps), gfl[k] / gsec[k] / 1e9,
               (double)(wt->bytes_mapped + wt->bytes_owned + diffu_gemm_weight_bytes(diffu_model_gemm(models[k]))) / 1048576.0);
        const char *pn[DIFFU_PHASES];
        double ps[DIFFU_PHASES], psum = 0;
        int np = diffu_model_phases(models[k], pn, ps, 0);
        for (int i = 0; i < np; i++) psum += ps[i];
        printf("phases: %s mean ms per forward:", modes[k].label);
        for (int i = 0; i < np; i++) printf("%s %s %.1f (%.1f%%)", i ? "," : "", pn[i], 1e3 * ps[i] / reps, 100.0 * ps[i] / psum);
        conv[k] = diffu_gemm_convert_seconds(diffu_model_gemm(models[k]), 0);
        printf("; GEMM activation conversion %.1f ms\n", 1e3 * conv[k] / reps);
        if (peak && pk[modes[k].prec] > 0)
            printf("forward: %s peak %.1f G%s/s (%s, %d threads): forward %.1f%%, GEMMs %.1f%% of peak\n", modes[k].label,
                   pk[modes[k].prec], modes[k].prec == DIFFU_PREC_INT8 ? "OP" : "FLOP", diffu_cpu_peak_insn(modes[k].prec),
                   nthreads, 100.0 * flops / med / 1e9 / pk[modes[k].prec], 100.0 * gfl[k] / gsec[k] / 1e9 / pk[modes[k].prec]);
    }
    if (n_models > 1)
        for (int k = 1; k < n_models; k++)
            printf("compare: %s / %s time ratio %.3f (speed-up %.2fx)\n", modes[k].label, modes[0].label,
                   median(t[k], (int)reps) / median(t[0], (int)reps), median(t[0], (int)reps) / median(t[k], (int)reps));
    if (peak)
        for (int pi = DIFFU_PREC_FP32; pi <= DIFFU_PREC_INT8; pi++)
            printf("peak: %-5s %-16s 1 thread %.1f, %d threads %.1f G%s/s\n", diffu_precision_name((diffu_precision)pi),
                   diffu_cpu_peak_insn((diffu_precision)pi), pk1[pi], nthreads, pk[pi], pi == DIFFU_PREC_INT8 ? "OP" : "FLOP");
    if (save) {
        FILE *f = fopen(save, "w");
        if (!f) {
            fprintf(stderr, "diffu bench forward: error: %s: cannot write\n", save);
            return 1;
        }
        fprintf(f, "# diffu per-core rates (diffu bench forward --save): forward GFLOP/s per core, peaks per core\n");
        fprintf(f, "cpu %s\nisa %s\nthreads %d\ntokens %lld\nmodel %s\n", cpu, diffu_cpu_get()->isa, nthreads, tokens, model);
        for (int k = 0; k < n_models; k++)
            if (!modes[k].f32)
                fprintf(f, "forward_gflops_per_core.%s %.3f\n", diffu_precision_name(modes[k].prec),
                        flops / median(t[k], (int)reps) / 1e9 / nthreads);
        if (peak)
            for (int pi = DIFFU_PREC_FP32; pi <= DIFFU_PREC_INT8; pi++)
                fprintf(f, "peak_gflops_per_core.%s %.3f\n", diffu_precision_name((diffu_precision)pi), pk1[pi]);
        fclose(f);
        fprintf(stderr, "[diffu] bench forward: per-core rates saved to %s\n", save);
    }
    double rss, hwm;
    rss_mib(&rss, &hwm);
    const diffu_weights *wt = diffu_model_weights(m);
    printf("memory: weights %.1f MiB mapped + %.1f MiB owned, activations %.1f MiB; process RSS %.1f MiB (peak %.1f)%s\n",
           (double)wt->bytes_mapped / 1048576.0, (double)wt->bytes_owned / 1048576.0,
           (double)diffu_model_plan_bytes(m) / 1048576.0, rss, hwm, n_models > 1 ? " (all models loaded)" : "");
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
                   modes[k].label, flops / med / 1e9, 100.0 * (flops / med) / raw, raw / 1e9, gemm_time / med);
        }
        free(W);
        free(X);
        free(Y);
    }
    for (int k = 0; k < n_models; k++) free(t[k]);
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
    if (!strcmp(argv[1], "peak")) return bench_peak(argc - 1, argv + 1);
    if (!strcmp(argv[1], "sampler")) return bench_sampler(argc - 1, argv + 1);
    fprintf(stderr, "diffu bench: unknown benchmark '%s' (forward, peak, sampler, tokenize)\n", argv[1]);
    return 2;
}
