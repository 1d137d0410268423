/* args.h — strict parsing of option values for the subcommands: a bad value
 * is a one-line error naming the option, never a silent zero. */
#ifndef DIFFU_ARGS_H
#define DIFFU_ARGS_H

#include <getopt.h>
#include <stdint.h>
#include <stdio.h>

#include "genparam.h"

/* Each returns 0, or prints "diffu CMD: --opt: ..." and returns -1. */
int arg_int(const char *cmd, const char *opt, const char *s, long long lo, long long hi, long long *out);
int arg_double(const char *cmd, const char *opt, const char *s, double lo, double hi, double *out);
/* Sizes with an optional K/M/G suffix (powers of 1024). */
int arg_size(const char *cmd, const char *opt, const char *s, uint64_t *out);
/* The backslash escapes of --prefill (\\n, \\t, \\r; \\x for any other x) into dst, which
 * holds at least strlen(src) + 1 bytes and may be src itself (the result is
 * never longer). One rule for every command that takes --prefill. */
void arg_unescape(char *dst, const char *src);
/* --precision fp32|bf16|int8|auto: checked, then handed to the model load as
 * $DIFFU_PRECISION (model/gemm.h), so every command and every rank under
 * mpirun resolves it the same way. */
int arg_precision(const char *cmd, const char *s);
/* Ranks > 0 of a job parse the same command line as rank 0; its errors are
 * printed once: arg_quiet_stderr(1) points fd 2 at /dev/null and returns the
 * saved descriptor (-1 when quiet is 0), arg_restore_stderr puts it back. */
int arg_quiet_stderr(int quiet);
/* The rank the launcher (Open MPI, PMIx, PMI) announces before MPI is up (0 when none). */
int arg_launcher_rank(void);
void arg_restore_stderr(int saved);
/* Comma-separated list of ints in [lo, hi] (blanks around them allowed); *out malloc'd. */
int arg_int_list(const char *cmd, const char *opt, const char *s, long lo, long hi, int **out, int *n);

/* The generation parameters (coordinator/genparam.h, one table for every
 * command, the job input and the records) on a command line:
 *   arg_genparam_options  opts = the command's own n_own long options, then each row's
 *                         (val = base + row), then the terminator: room for n_own +
 *                         ARG_GENPARAM_MAX + 1 entries
 *   arg_genparam_help     their help lines, in the layout of the commands' usage
 *   arg_genparam          the value s of row `row` checked by the row's rules and stored into
 *                         p (the `n` row into *n_samples); 0, or -1 after the one-line error */
enum { ARG_GENPARAM_MAX = 32 };
void arg_genparam_options(struct option *opts, const struct option *own, size_t n_own, int base);
void arg_genparam_help(FILE *f);
int arg_genparam(const char *cmd, int row, const char *s, diffu_denoise_params *p, long long *n_samples);

#endif
