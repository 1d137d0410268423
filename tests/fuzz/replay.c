/* replay.c — a plain main() that feeds files to a fuzz target's
 * LLVMFuzzerTestOneInput, so the committed corpora run in the normal build
 * (gcc, Release and the ASan build) without clang or libFuzzer.
 *
 * usage: fuzz_replay_TARGET PATH...   (a PATH is a file or a directory of files,
 * read one level deep, in name order). Exit 0 when every input ran; an input
 * that crashes the target ends the process (the sanitizer or abort() says
 * which: the input's path is printed before it runs with DIFFU_FUZZ_VERBOSE=1,
 * and the last path is kept in the message below). Fails when no input was
 * found, so an empty corpus is never a pass. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static const char *g_current;
static void on_exit_msg(void) {
    if (g_current) fprintf(stderr, "replay: the process ended while running %s\n", g_current);
}

static int run_file(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); return -1; }
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
    if (n > 0 && fread(buf, 1, (size_t)n, f) != (size_t)n) { perror(path); fclose(f); free(buf); return -1; }
    fclose(f);
    if (getenv("DIFFU_FUZZ_VERBOSE")) fprintf(stderr, "replay: %s (%ld bytes)\n", path, n);
    g_current = path;
    LLVMFuzzerTestOneInput(buf, (size_t)n);
    g_current = NULL;
    free(buf);
    return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b) { return strcmp((*a)->d_name, (*b)->d_name); }

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR_OR_FILE...\n", argv[0]);
        return 2;
    }
    atexit(on_exit_msg);
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    long n_inputs = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st)) { perror(argv[i]); return 1; }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i])) return 1;
            n_inputs++;
            continue;
        }
        struct dirent **ents;
        int k = scandir(argv[i], &ents, NULL, by_name);
        if (k < 0) { perror(argv[i]); return 1; }
        for (int j = 0; j < k; j++) {
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", argv[i], ents[j]->d_name);
            struct stat s2;
            if (ents[j]->d_name[0] != '.' && !stat(p, &s2) && S_ISREG(s2.st_mode)) {
                if (run_file(p)) return 1;
                n_inputs++;
            }
            free(ents[j]);
        }
        free(ents);
    }
    if (n_inputs == 0) {
        fprintf(stderr, "replay: no inputs found in the corpus\n");
        return 1;
    }
    printf("replay: %ld inputs ran without a crash or an oracle failure\n", n_inputs);
    return 0;
}
