/* args.h — strict parsing of option values for the subcommands: a bad value
 * is a one-line error naming the option, never a silent zero. */
#ifndef DIFFU_ARGS_H
#define DIFFU_ARGS_H

#include <stdint.h>

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
/* Comma-separated list of positive ints; *out malloc'd. */
int arg_int_list(const char *cmd, const char *opt, const char *s, int **out, int *n);

#endif
