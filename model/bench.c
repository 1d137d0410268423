/* bench.c — see bench.h. */
#include "bench.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpupeak.h"
#include "forward.h"
#include "gemm.h"

void openblas_set_num_threads(int);

typedef struct { int n, k, count; const char *name; } shape;

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
double diffu_bench_median(double *v, int n) {
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

void diffu_bench_cpu_name(char *buf, size_t n) {
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

/* The per-core rates file `diffu plan --rates` reads (fwd[p] > 0: a measured path; pk1: peaks or NULL). */
static int save_rates(const char *save, const char *cpu, int nthreads, long long tokens, const char *model,
                      const double *fwd, const double *pk1, diffu_err *err) {
    FILE *f = fopen(save, "w");
    if (!f) {
        diffu_err_set(err, "%s: cannot write", save);
        return -1;
    }
    fprintf(f, "# diffu per-core rates (diffu bench forward --save): forward GFLOP/s per core, peaks per core\n");
    fprintf(f, "cpu %s\nisa %s\nthreads %d\ntokens %lld\nmodel %s\n", cpu, diffu_cpu_get()->isa, nthreads, tokens, model);
    for (int pi = DIFFU_PREC_FP32; pi <= DIFFU_PREC_INT8; pi++)
        if (fwd[pi] > 0) fprintf(f, "forward_gflops_per_core.%s %.3f\n", diffu_precision_name((diffu_precision)pi), fwd[pi]);
    if (pk1)
        for (int pi = DIFFU_PREC_FP32; pi <= DIFFU_PREC_INT8; pi++)
            fprintf(f, "peak_gflops_per_core.%s %.3f\n", diffu_precision_name((diffu_precision)pi), pk1[pi]);
    fclose(f);
    fprintf(stderr, "[diffu] bench forward: per-core rates saved to %s\n", save);
    return 0;
}

/* One path's lines: the forward's median time and rate, the GEMMs' share, the phases, the peak fraction. */
static void print_path(FILE *out, const char *model, long long tokens, long long seqs, long long rows, long long reps,
                       int nthreads, diffu_model *mk, const char *label, diffu_precision prec, double *tk, double gsec,
                       double gfl, double flops, const double *pk, int peak) {
    const diffu_weights *wt = diffu_model_weights(mk);
    double med = diffu_bench_median(tk, (int)reps);
    fprintf(out, "forward: model %s, %lld tokens in %lld seq, %lld lm_head rows, %d threads, gemm %s\n", model, tokens,
           seqs, rows, nthreads, diffu_gemm_describe(diffu_model_gemm(mk)));
    fprintf(out, "forward: %s median %.1f ms over %lld reps, %.2f GFLOP per forward, %.1f GFLOP/s; GEMMs %.1f%% of the time"
           " at %.1f GFLOP/s; weights %.1f MiB resident\n",
           label, 1e3 * med, reps, flops / 1e9, flops / med / 1e9,
           100.0 * gsec / (diffu_bench_median(tk, (int)reps) * reps), gfl / gsec / 1e9,
           (double)(wt->bytes_mapped + wt->bytes_owned + diffu_gemm_weight_bytes(diffu_model_gemm(mk))) / 1048576.0);
    const char *pn[DIFFU_PHASES];
    double ps[DIFFU_PHASES], psum = 0;
    int np = diffu_model_phases(mk, pn, ps, 0);
    for (int i = 0; i < np; i++) psum += ps[i];
    fprintf(out, "phases: %s mean ms per forward:", label);
    for (int i = 0; i < np; i++) fprintf(out, "%s %s %.1f (%.1f%%)", i ? "," : "", pn[i], 1e3 * ps[i] / reps, 100.0 * ps[i] / psum);
    double conv = diffu_gemm_convert_seconds(diffu_model_gemm(mk), 0);
    fprintf(out, "; GEMM activation conversion %.1f ms\n", 1e3 * conv / reps);
    if (peak && pk[prec] > 0)
        fprintf(out, "forward: %s peak %.1f G%s/s (%s, %d threads): forward %.1f%%, GEMMs %.1f%% of peak\n", label,
               pk[prec], prec == DIFFU_PREC_INT8 ? "OP" : "FLOP", diffu_cpu_peak_insn(prec),
               nthreads, 100.0 * flops / med / 1e9 / pk[prec], 100.0 * gfl / gsec / 1e9 / pk[prec]);
}

/* Raw OpenBLAS sgemm (fp32 operands) on the forward's own GEMM shapes, threaded like the forward, and each
 * path's forward rate against it. */
static void raw_sgemm(FILE *out, const diffu_config *cfg, long long tokens, long long rows, long long reps, int nthreads,
                      int n_models, const char *const *labels, const double *med_s, double flops) {
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
        double med = diffu_bench_median(ts, (int)reps), f = 2.0 * M * sh[i].n * sh[i].k;
        fprintf(out, "sgemm: %-13s M=%-5d N=%-6d K=%-6d %7.2f ms  %6.1f GFLOP/s\n", sh[i].name, M, sh[i].n, sh[i].k,
               1e3 * med, f / med / 1e9);
        gemm_time += med * sh[i].count;
        gemm_flops += f * sh[i].count;
        free(ts);
    }
    openblas_set_num_threads(1);
    double raw = gemm_flops / gemm_time;
    fprintf(out, "sgemm: the forward's GEMMs at raw sgemm speed: %.1f ms, %.1f GFLOP/s (%d threads)\n", 1e3 * gemm_time,
           raw / 1e9, nthreads);
    for (int k = 0; k < n_models; k++) {
        double med = med_s[k];
        fprintf(out, "result: forward (%s) %.1f GFLOP/s = %.1f%% of raw sgemm %.1f GFLOP/s (time ratio sgemm-only/forward %.3f)\n",
               labels[k], flops / med / 1e9, 100.0 * (flops / med) / raw, raw / 1e9, gemm_time / med);
    }
    free(W);
    free(X);
    free(Y);
}

/* One path of a forward benchmark: its precision, fp32-resident weights, and its label once loaded. */
typedef struct {
    diffu_precision prec;
    int f32;
    char label[64];
} bench_path;

/* Load the model once per path (one set of threads for all); 0, or -1 with err and nothing loaded. */
static int load_paths(const char *model, diffu_model_opts *mo, int n, bench_path *paths, diffu_model **models,
                      diffu_err *err) {
    for (int k = 0; k < n; k++) {
        mo->f32_weights = paths[k].f32;
        mo->precision = (int)paths[k].prec;
        if (k >= 1) mo->pool = diffu_model_pool(models[0]);
        if (diffu_model_load(model, mo, &models[k], err)) {
            for (int i = k - 1; i >= 0; i--) diffu_model_free(models[i]);
            return -1;
        }
        paths[k].prec = diffu_gemm_precision(diffu_model_gemm(models[k]));
        snprintf(paths[k].label, sizeof paths[k].label, "%s%s", diffu_precision_name(paths[k].prec),
                 paths[k].f32 ? " fp32-resident" : "");
    }
    return 0;
}

/* The time ratios of the paths against the first, and the core's peak per dtype. */
static void print_ratios_and_peaks(FILE *out, int n, const bench_path *paths, double *const *t, int reps, int peak,
                                   const double *pk1, const double *pk, int nthreads) {
    for (int k = 1; k < n; k++) {
        double a = diffu_bench_median(t[k], reps), b = diffu_bench_median(t[0], reps);
        fprintf(out, "compare: %s / %s time ratio %.3f (speed-up %.2fx)\n", paths[k].label, paths[0].label, a / b,
                b / a);
    }
    if (peak)
        for (int pi = DIFFU_PREC_FP32; pi <= DIFFU_PREC_INT8; pi++)
            fprintf(out, "peak: %-5s %-16s 1 thread %.1f, %d threads %.1f G%s/s\n",
                    diffu_precision_name((diffu_precision)pi), diffu_cpu_peak_insn((diffu_precision)pi), pk1[pi],
                    nthreads, pk[pi], pi == DIFFU_PREC_INT8 ? "OP" : "FLOP");
}

int diffu_bench_forward(const diffu_bench_forward_opts *o, FILE *out, diffu_err *err) {
    const char *model = o->model, *save = o->save;
    long long tokens = o->tokens, seqs = o->seqs, rows = o->rows, threads = o->threads, reps = o->reps;
    int peak = o->peak, no_sgemm = !o->sgemm, n_models = o->n_paths, rc = 0;
    DIFFU_ASSERT(n_models >= 1 && n_models <= DIFFU_BENCH_MAX_PATHS && tokens >= 1 && reps >= 1 && seqs >= 1);
    bench_path modes[DIFFU_BENCH_MAX_PATHS];
    for (int k = 0; k < n_models; k++) modes[k] = (bench_path){o->paths[k].prec, o->paths[k].f32, ""};
    if (seqs > tokens) seqs = tokens;
    if (rows < 0 || rows > tokens) rows = tokens;
    diffu_model_opts mo;
    diffu_model_opts_default(&mo);
    mo.max_tokens = (int)tokens;
    mo.max_seq = (int)((tokens + seqs - 1) / seqs);
    mo.max_rows = (int)(rows > 0 ? rows : 1);
    mo.max_seqs = (int)seqs;
    mo.threads = (int)threads;
    diffu_model *models[DIFFU_BENCH_MAX_PATHS] = {NULL};
    if (load_paths(model, &mo, n_models, modes, models, err)) return -1;
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
    double *t[DIFFU_BENCH_MAX_PATHS], gsec[DIFFU_BENCH_MAX_PATHS] = {0}, gfl[DIFFU_BENCH_MAX_PATHS] = {0};
    for (int k = 0; k < n_models; k++) t[k] = diffu_xmalloc((size_t)reps * sizeof(double));
    for (int k = 0; k < n_models; k++)
        if (diffu_forward(models[k], &b, logits, err)) { /* warm-up (pages the weights in) */
            rc = -1;
            goto done;
        }
    for (int k = 0; k < n_models; k++) { /* the warm-up's out */
        diffu_model_phases(models[k], NULL, NULL, 1);
        diffu_gemm_convert_seconds(diffu_model_gemm(models[k]), 1);
    }
    /* alternate the modes rep by rep so machine noise hits all alike */
    for (int r = 0; r < reps; r++)
        for (int k = 0; k < n_models; k++) {
            diffu_gemm_stats(diffu_model_gemm(models[k]), NULL, NULL, 1);
            double t0 = diffu_now();
            diffu_forward(models[k], &b, logits, err);
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
    diffu_bench_cpu_name(cpu, sizeof cpu);
    fprintf(out, "cpu: %s, isa %s, %d threads\n", cpu, diffu_cpu_get()->isa, nthreads);
    for (int k = 0; k < n_models; k++)
        print_path(out, model, tokens, seqs, rows, reps, nthreads, models[k], modes[k].label, modes[k].prec, t[k], gsec[k],
                   gfl[k], flops, pk, peak);
    print_ratios_and_peaks(out, n_models, modes, t, (int)reps, peak, pk1, pk, nthreads);
    if (save) {
        double fwd[4] = {0}; /* by diffu_precision: GFLOP/s per core of the weights-as-loaded paths */
        for (int k = 0; k < n_models; k++)
            if (!modes[k].f32) fwd[modes[k].prec] = flops / diffu_bench_median(t[k], (int)reps) / 1e9 / nthreads;
        if (save_rates(save, cpu, nthreads, tokens, model, fwd, peak ? pk1 : NULL, err)) {
            rc = -1;
            goto done;
        }
    }
    double rss, hwm;
    rss_mib(&rss, &hwm);
    const diffu_weights *wt = diffu_model_weights(m);
    fprintf(out, "memory: weights %.1f MiB mapped + %.1f MiB owned, activations %.1f MiB; process RSS %.1f MiB (peak %.1f)%s\n",
           (double)wt->bytes_mapped / 1048576.0, (double)wt->bytes_owned / 1048576.0,
           (double)diffu_model_plan_bytes(m) / 1048576.0, rss, hwm, n_models > 1 ? " (all models loaded)" : "");
    if (!no_sgemm) {
        const char *labels[DIFFU_BENCH_MAX_PATHS];
        double med_s[DIFFU_BENCH_MAX_PATHS];
        for (int k = 0; k < n_models; k++) labels[k] = modes[k].label, med_s[k] = diffu_bench_median(t[k], (int)reps);
        raw_sgemm(out, cfg, tokens, rows, reps, nthreads, n_models, labels, med_s, flops);
    }
done:
    for (int k = 0; k < n_models; k++) free(t[k]);
    free(logits);
    free(ids);
    free(rowv);
    free(lens);
    for (int k = n_models - 1; k >= 0; k--) diffu_model_free(models[k]);
    return rc;
}
