/* cmd_merge.c — `diffu merge`: the shards' outputs of a job array put back
 * together, every (id, sample) checked to be there exactly once
 * (coordinator/job_split.h has the rules). Parses the options and calls
 * diffu_job_split_merge.
 *
 *   diffu merge [--output OUT.jsonl[.gz]] [--input IN.jsonl[.gz] [--n N]] [--missing-ok] [--dedupe]
 *               [--allow-mixed-runs] SHARD_OUT...
 *
 * Exit 0 ok; 1 with a one-line reason as the last line on stderr (up to 10
 * examples before it); 2 usage. */
#include <getopt.h>
#include <stdio.h>

#include "args.h"
#include "commands.h"
#include "job_split.h"

static void merge_usage(FILE *f) {
    fprintf(f,
            "usage: diffu merge [--output OUT.jsonl[.gz]] [--input IN.jsonl[.gz] [--n N]] [--missing-ok] [--dedupe]\n"
            "                   [--allow-mixed-runs] SHARD_OUT...\n"
            "  Concatenates job outputs (plain or gzip) byte for byte, checking every line is a job record and every\n"
            "  (id, sample) appears exactly once. With --input, every input line's id must have samples 0..n-1 (n from\n"
            "  the line, else --n, default 1), and nothing else. Writes OUT (gzip if it ends in .gz) only when all\n"
            "  checks pass; without --output it only checks.\n"
            "  --missing-ok   report missing (id, sample) pairs but do not fail (e.g. lines the job rejected)\n"
            "  --dedupe       keep the first copy of a duplicated (id, sample), drop the others (counted)\n"
            "  --allow-mixed-runs  merge records of different runs (their \"run\" ids differ: another model or\n"
            "                 other generation settings; coordinator/job_manifest.h); refused otherwise\n"
            "  exit: 0 ok, 1 a check failed (the reason is the last line on stderr), 2 usage\n");
}

int cmd_merge(int argc, char **argv) {
    static const struct option opts[] = {{"output", 1, 0, 'o'}, {"input", 1, 0, 'i'},      {"n", 1, 0, 'n'},
                                         {"dedupe", 0, 0, 'd'}, {"missing-ok", 0, 0, 'm'}, {"help", 0, 0, 'h'},
                                         {"allow-mixed-runs", 0, 0, 'x'}, {0, 0, 0, 0}};
    diffu_job_split_merge_opts o = {.n_default = 1, .log = stderr};
    long long defn = 1;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': o.output = optarg; break;
        case 'i': o.input = optarg; break;
        case 'n': if (arg_int("merge", "--n", optarg, 1, 65536, &defn)) return 2; break;
        case 'd': o.dedupe = 1; break;
        case 'm': o.missing_ok = 1; break;
        case 'x': o.mixed_ok = 1; break;
        case 'h': merge_usage(stdout); return 0;
        default: merge_usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "diffu merge: give at least one shard output (diffu merge --help)\n");
        return 2;
    }
    o.n_default = (int)defn;
    o.shards = (const char *const *)(argv + optind);
    o.n_shards = argc - optind;
    diffu_err err;
    if (diffu_job_split_merge(&o, &err)) {
        fprintf(stderr, "diffu merge: error: %s\n", err.msg);
        return 1;
    }
    return 0;
}
