/* log.h — logging, assertions and user-error status for every diffu module.
 *
 * Two error tiers (see README "Errors"):
 *   - DIFFU_ASSERT(cond): a bug. Prints file:line and the rank, then calls the
 *     abort hook (node/ installs one that calls MPI_Abort so no rank hangs;
 *     the default is abort()).
 *   - diffu_err: something a user can cause (bad file, bad flag). Functions
 *     return 0 on success and -1 on failure after filling err->msg with ONE
 *     line naming the file / tensor / field at fault.
 *
 * Logs go to stderr with a "[diffu rN]" prefix; results never go through here.
 * Not collective. Thread-safe (each message is one fprintf). */
#ifndef DIFFU_LOG_H
#define DIFFU_LOG_H

#include <stdarg.h>
#include <stddef.h>

typedef struct diffu_err {
    char msg[1024]; /* one line, no trailing newline */
} diffu_err;

/* Fill err (if non-NULL) with a formatted message; always returns -1. */
int diffu_err_set(diffu_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prepend "prefix: " to an existing message (adds context as errors travel up). */
int diffu_err_prefix(diffu_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

enum { DIFFU_LOG_ERROR = 0, DIFFU_LOG_WARN = 1, DIFFU_LOG_INFO = 2, DIFFU_LOG_DEBUG = 3 };

void diffu_log_set_rank(int rank);  /* -1: no rank in the prefix */
int  diffu_log_rank(void);
void diffu_log_set_level(int level);
int  diffu_log_level(void);
void diffu_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define DLOG_ERR(...)   diffu_log(DIFFU_LOG_ERROR, __VA_ARGS__)
#define DLOG_WARN(...)  diffu_log(DIFFU_LOG_WARN, __VA_ARGS__)
#define DLOG_INFO(...)  diffu_log(DIFFU_LOG_INFO, __VA_ARGS__)
#define DLOG_DEBUG(...) diffu_log(DIFFU_LOG_DEBUG, __VA_ARGS__)

/* Called after an assertion failure has been printed; must not return. */
typedef void (*diffu_abort_fn)(void);
void diffu_set_abort_hook(diffu_abort_fn fn);
void diffu_assert_fail(const char *file, int line, const char *expr, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

#define DIFFU_ASSERT(cond) \
    do { if (!(cond)) diffu_assert_fail(__FILE__, __LINE__, #cond, NULL); } while (0)
#define DIFFU_ASSERTF(cond, ...) \
    do { if (!(cond)) diffu_assert_fail(__FILE__, __LINE__, #cond, __VA_ARGS__); } while (0)

/* Allocation that treats out-of-memory as fatal (policy, as in Redis). Only
 * used at start-up / load time: the step loop never allocates. */
void *diffu_xmalloc(size_t n);
void *diffu_xcalloc(size_t n, size_t size);
void *diffu_xrealloc(void *p, size_t n);
char *diffu_xstrdup(const char *s);
/* 64-byte aligned, for activation buffers. Free with free(). */
void *diffu_xaligned(size_t n);

/* Wall clock in seconds (monotonic). */
double diffu_now(void);

#endif
