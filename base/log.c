/* log.c — see log.h. */
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int g_rank = -1;
static int g_level = DIFFU_LOG_INFO;
static diffu_abort_fn g_abort = NULL;

int diffu_err_set(diffu_err *err, const char *fmt, ...) {
    if (!err) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    /* one line, and nothing that drives a terminal */
    for (char *p = err->msg; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f) *p = ' ';
    return -1;
}

int diffu_err_prefix(diffu_err *err, const char *fmt, ...) {
    if (!err) return -1;
    char pre[256], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    snprintf(old, sizeof old, "%s", err->msg);
    size_t n = strlen(pre);
    if (n + 2 >= sizeof err->msg) n = sizeof err->msg - 3;
    memcpy(err->msg, pre, n);
    memcpy(err->msg + n, ": ", 2);
    size_t rest = sizeof err->msg - n - 3;
    size_t ol = strlen(old);
    if (ol > rest) ol = rest;
    memcpy(err->msg + n + 2, old, ol);
    err->msg[n + 2 + ol] = 0;
    return -1;
}

void diffu_log_set_rank(int rank) { g_rank = rank; }
int diffu_log_rank(void) { return g_rank; }
void diffu_log_set_level(int level) { g_level = level; }
int diffu_log_level(void) { return g_level; }

static const char *level_name(int level) {
    switch (level) {
    case DIFFU_LOG_ERROR: return "error: ";
    case DIFFU_LOG_WARN: return "warning: ";
    case DIFFU_LOG_DEBUG: return "debug: ";
    default: return "";
    }
}

void diffu_log(int level, const char *fmt, ...) {
    if (level > g_level) return;
    char body[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    if (g_rank >= 0)
        fprintf(stderr, "[diffu r%d] %s%s\n", g_rank, level_name(level), body);
    else
        fprintf(stderr, "[diffu] %s%s\n", level_name(level), body);
}

void diffu_set_abort_hook(diffu_abort_fn fn) { g_abort = fn; }

void diffu_assert_fail(const char *file, int line, const char *expr, const char *fmt, ...) {
    char extra[512] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(extra, sizeof extra, fmt, ap);
        va_end(ap);
    }
    fprintf(stderr, "[diffu r%d] BUG: %s:%d: assertion failed: %s%s%s\n", g_rank < 0 ? 0 : g_rank,
            file, line, expr, fmt ? ": " : "", extra);
    fflush(stderr);
    if (g_abort) g_abort();
    abort();
}

static void oom(size_t n) {
    fprintf(stderr, "[diffu r%d] error: out of memory allocating %zu bytes\n", g_rank < 0 ? 0 : g_rank, n);
    fflush(stderr);
    if (g_abort) g_abort();
    abort();
}

void *diffu_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}
void *diffu_xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}
void *diffu_xrealloc(void *q, size_t n) {
    void *p = realloc(q, n ? n : 1);
    if (!p) oom(n);
    return p;
}
char *diffu_xstrdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = diffu_xmalloc(n);
    memcpy(p, s, n);
    return p;
}
void *diffu_xaligned(size_t n) {
    void *p = NULL;
    size_t r = (n + 63) & ~(size_t)63;
    if (posix_memalign(&p, 64, r ? r : 64) != 0) oom(n);
    return p;
}

double diffu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
