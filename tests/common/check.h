/* check.h — the assertion counter shared by the C unit tests: every
 * CHECK counts a pass or prints "FAIL file:line: ..." ; check_report() prints
 * "N passed, M failed" and returns the exit status. */
#ifndef DIFFU_TEST_CHECK_H
#define DIFFU_TEST_CHECK_H

#include <stdio.h>

static int n_pass, n_fail;

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (cond) {                                                         \
            n_pass++;                                                       \
        } else {                                                            \
            n_fail++;                                                       \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
        }                                                                   \
    } while (0)

static inline int check_report(void) {
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}

#endif
