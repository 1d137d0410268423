/* args.c — see args.h. */
#include "args.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gemm.h"
#include "log.h"

int arg_int(const char *cmd, const char *opt, const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end) {
        fprintf(stderr, "diffu %s: %s: '%s' is not an integer\n", cmd, opt, s);
        return -1;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "diffu %s: %s: %lld is outside [%lld, %lld]\n", cmd, opt, v, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int arg_double(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v != v) {
        fprintf(stderr, "diffu %s: %s: '%s' is not a number\n", cmd, opt, s);
        return -1;
    }
    if (v < lo || v > hi) {
        fprintf(stderr, "diffu %s: %s: %g is outside [%g, %g]\n", cmd, opt, v, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

int arg_size(const char *cmd, const char *opt, const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    uint64_t mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1ull << 10, end++;
    else if (*end == 'M' || *end == 'm') mul = 1ull << 20, end++;
    else if (*end == 'G' || *end == 'g') mul = 1ull << 30, end++;
    if (*end == 'B' || *end == 'b') end++;
    if (errno || end == s || *end || !(v > 0)) {
        fprintf(stderr, "diffu %s: %s: '%s' is not a size (e.g. 512M, 2G)\n", cmd, opt, s);
        return -1;
    }
    /* under one byte would become 0, 2^64 and over (inf) do not convert (found by tests/fuzz args) */
    if (!(v * (double)mul >= 1) || !(v * (double)mul < 18446744073709551616.0)) {
        fprintf(stderr, "diffu %s: %s: '%s' is outside [1 byte, 16E)\n", cmd, opt, s);
        return -1;
    }
    *out = (uint64_t)(v * (double)mul);
    return 0;
}

int arg_int_list(const char *cmd, const char *opt, const char *s, long lo, long hi, int **out, int *n) {
    int cap = 8, k = 0;
    int *v = diffu_xmalloc((size_t)cap * sizeof *v);
    const char *p = s;
    while (*p) {
        while (*p == ' ' || *p == '\t') p++;
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        while (end != p && (*end == ' ' || *end == '\t')) end++;
        if (errno || end == p || x < lo || x > hi || (*end && *end != ',')) {
            fprintf(stderr, "diffu %s: %s: '%s' is not a comma-separated list of integers in [%ld, %ld]\n", cmd, opt, s,
                    lo, hi);
            free(v);
            return -1;
        }
        if (k == cap) v = diffu_xrealloc(v, (size_t)(cap *= 2) * sizeof *v);
        v[k++] = (int)x;
        p = *end ? end + 1 : end;
    }
    if (!k) {
        fprintf(stderr, "diffu %s: %s: empty list\n", cmd, opt);
        free(v);
        return -1;
    }
    *out = v;
    *n = k;
    return 0;
}

void arg_unescape(char *dst, const char *s) {
    char *o = dst;
    for (; *s; s++) {
        if (*s == '\\' && s[1]) {
            s++;
            *o++ = *s == 'n' ? '\n' : *s == 't' ? '\t' : *s == 'r' ? '\r' : *s;
        } else {
            *o++ = *s;
        }
    }
    *o = 0;
}

int arg_precision(const char *cmd, const char *s) {
    diffu_precision p;
    if (diffu_precision_parse(s, &p)) {
        fprintf(stderr, "diffu %s: --precision: '%s' is not one of fp32, bf16, int8, auto\n", cmd, s);
        return -1;
    }
    setenv("DIFFU_PRECISION", diffu_precision_name(p), 1);
    return 0;
}

void arg_genparam_options(struct option *opts, const struct option *own, size_t n_own, int base) {
    DIFFU_ASSERT(diffu_genparam_count() <= ARG_GENPARAM_MAX);
    memcpy(opts, own, n_own * sizeof *own);
    size_t n = n_own;
    for (int i = 0; i < diffu_genparam_count(); i++) {
        const diffu_genparam *g = diffu_genparam_at(i);
        opts[n++] = (struct option){g->flag, g->type == DIFFU_GP_FLAG ? no_argument : required_argument, 0, base + i};
    }
    opts[n] = (struct option){0, 0, 0, 0};
}

void arg_genparam_help(FILE *f) {
    for (int i = 0; i < diffu_genparam_count(); i++) {
        const diffu_genparam *g = diffu_genparam_at(i);
        char lhs[64];
        snprintf(lhs, sizeof lhs, "--%s%s%s", g->flag, g->metavar ? " " : "", g->metavar ? g->metavar : "");
        fprintf(f, "  %-22s %s\n", lhs, g->help);
    }
}

int arg_genparam(const char *cmd, int row, const char *s, diffu_denoise_params *p, long long *n_samples) {
    const diffu_genparam *g = diffu_genparam_at(row);
    char opt[64], rg[64];
    snprintf(opt, sizeof opt, "--%s", g->flag);
    long long v = 1;
    double d;
    switch (g->type) {
    case DIFFU_GP_FLAG: break;
    case DIFFU_GP_ALG:
    case DIFFU_GP_CACHE:
        if ((v = diffu_genparam_enum_parse(g, s)) < 0) {
            fprintf(stderr, "diffu %s: %s: '%s' is not %s\n", cmd, opt, s, diffu_genparam_enum_choices(g));
            return -1;
        }
        break;
    case DIFFU_GP_SEED:
        if (arg_int(cmd, opt, s, (long long)g->lo, INT64_MAX, &v)) return -1;
        break;
    case DIFFU_GP_INT:
        if (arg_int(cmd, opt, s, (long long)g->lo, (long long)g->hi, &v)) return -1;
        break;
    case DIFFU_GP_NUM:
        if (arg_double(cmd, opt, s, g->lo, g->hi, &d)) return -1;
        if (!diffu_genparam_num_ok(g, d)) { /* an open lower bound */
            fprintf(stderr, "diffu %s: %s: %g is outside %s\n", cmd, opt, d, diffu_genparam_range(g, rg, sizeof rg));
            return -1;
        }
        diffu_genparam_set_num(g, p, d);
        return 0;
    }
    if (g->field == DIFFU_GP_NO_FIELD) {
        DIFFU_ASSERTF(!strcmp(g->name, "n"), "row %s has no field", g->name);
        *n_samples = v;
    } else {
        diffu_genparam_set_int(g, p, v);
    }
    return 0;
}

int arg_quiet_stderr(int quiet) {
    if (!quiet) return -1;
    fflush(stderr);
    int dn = open("/dev/null", O_WRONLY), saved = dup(STDERR_FILENO);
    if (dn >= 0) {
        dup2(dn, STDERR_FILENO);
        close(dn);
    }
    return saved;
}

void arg_restore_stderr(int saved) {
    if (saved < 0) return;
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
}

int arg_launcher_rank(void) {
    const char *v[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"};
    for (int i = 0; i < 3; i++) {
        const char *e = getenv(v[i]);
        if (e && *e) return atoi(e);
    }
    return 0;
}
