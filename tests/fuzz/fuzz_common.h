/* fuzz_common.h — shared helpers of the fuzz targets (tests/fuzz/README.md).
 *
 * Every target is one file defining LLVMFuzzerTestOneInput (and optionally
 * LLVMFuzzerInitialize). It is built two ways: with libFuzzer (clang,
 * -DDIFFU_FUZZ=ON) for coverage-guided runs, and with replay.c (any compiler,
 * the normal build) so ctest replays the committed corpus. The parsers read
 * files by path, so the input is written to a private scratch directory
 * ($TMPDIR or /dev/shm, one per process) and removed after each run.
 *
 * Multi-file inputs (a checkpoint directory, a tokenizer directory) use a
 * readable container: sections that each start with a line "@@FILE name",
 * e.g. "@@FILE config.json\n{...}\n@@FILE model.safetensors\n<bytes>". The
 * newline before the next "@@FILE" belongs to the marker. An input that does
 * not start with "@@FILE " is one file with the caller's default name. Names
 * are [A-Za-z0-9._-] only (never a path). FZ_CHECK is an oracle: it aborts
 * (a crash for libFuzzer) when a documented invariant does not hold. */
#ifndef DIFFU_FUZZ_COMMON_H
#define DIFFU_FUZZ_COMMON_H
#include <dirent.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define FZ_CHECK(cond, ...)                                                       \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "fuzz oracle failed at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
            abort();                                                              \
        }                                                                         \
    } while (0)

/* The process's scratch directory (created on first use, removed at exit). */
static char fz_dir_buf[512];
static __attribute__((unused)) void fz_rm_tree(const char *dir);
static __attribute__((unused)) void fz_atexit(void) { if (fz_dir_buf[0]) { fz_rm_tree(fz_dir_buf); rmdir(fz_dir_buf); } }
static __attribute__((unused)) const char *fz_dir(void) {
    if (!fz_dir_buf[0]) {
        const char *t = getenv("TMPDIR");
        struct stat st;
        if (!t || !*t) t = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
        snprintf(fz_dir_buf, sizeof fz_dir_buf, "%s/diffu-fuzz-%d", t, (int)getpid());
        if (mkdir(fz_dir_buf, 0700) && access(fz_dir_buf, W_OK)) {
            perror(fz_dir_buf);
            abort();
        }
        atexit(fz_atexit);
    }
    return fz_dir_buf;
}

/* Remove every file (and one level of subdirectories) inside dir. */
static __attribute__((unused)) void fz_rm_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[1024];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (unlink(p) && rmdir(p)) {
            fz_rm_tree(p);
            rmdir(p);
        }
    }
    closedir(d);
}
static __attribute__((unused)) void fz_clean(void) { fz_rm_tree(fz_dir()); }

static __attribute__((unused)) void fz_write(const char *path, const uint8_t *data, size_t n) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) { perror(path); abort(); }
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, data + off, n - off);
        if (w <= 0) { perror(path); abort(); }
        off += (size_t)w;
    }
    close(fd);
}

/* Path of a file in the scratch directory (static buffer per slot 0..3). */
static __attribute__((unused)) const char *fz_path(int slot, const char *name) {
    static char buf[4][1024];
    snprintf(buf[slot & 3], sizeof buf[0], "%s/%s", fz_dir(), name);
    return buf[slot & 3];
}

/* Write one input as one file in the scratch directory; returns its path. */
static __attribute__((unused)) const char *fz_write_one(const char *name, const uint8_t *data, size_t n) {
    const char *p = fz_path(0, name);
    fz_write(p, data, n);
    return p;
}

/* Unpack the "@@FILE name" container into dir (see above). Returns the number
 * of files written (at most max_files; later sections and bad names ignored). */
static __attribute__((unused)) int fz_unpack_files(const uint8_t *data, size_t n, const char *dir, const char *default_name, int max_files) {
    static const char mark[] = "@@FILE ";
    const size_t ml = sizeof mark - 1;
    if (n < ml || memcmp(data, mark, ml)) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, default_name);
        fz_write(p, data, n);
        return 1;
    }
    int files = 0;
    size_t at = 0;
    while (at < n && files < max_files) {
        /* data[at..] starts with the marker */
        size_t name_at = at + ml, nl = name_at;
        while (nl < n && data[nl] != '\n') nl++;
        size_t body = nl < n ? nl + 1 : n, end = body;
        while (end < n && !(data[end] == '\n' && n - end - 1 >= ml && !memcmp(data + end + 1, mark, ml))) end++;
        char name[128];
        size_t len = nl - name_at;
        int ok = len > 0 && len < sizeof name;
        for (size_t i = 0; ok && i < len; i++) {
            uint8_t c = data[name_at + i];
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                 c == '-';
        }
        if (ok && !(len == 1 && data[name_at] == '.') && !(len == 2 && !memcmp(data + name_at, "..", 2))) {
            memcpy(name, data + name_at, len);
            name[len] = 0;
            char p[1024];
            snprintf(p, sizeof p, "%s/%s", dir, name);
            fz_write(p, data + body, end - body);
            files++;
        }
        at = end < n ? end + 1 : n;
    }
    return files;
}

/* Silence diffu's logs (warnings about bad input are expected by the thousand). */
static __attribute__((unused)) void fz_quiet(void) {
    if (!getenv("DIFFU_FUZZ_VERBOSE")) diffu_log_set_level(-1);
}
#endif
