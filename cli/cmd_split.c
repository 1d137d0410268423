/* cmd_split.c — `diffu split`: one batch-job input cut into K shards for a
 * job array (coordinator/job_split.h has the rules). Parses the options, calls
 * diffu_job_split_run, prints the shards' paths on stdout and a summary on
 * stderr.
 *
 *   diffu split --input IN.jsonl[.gz] --shards K --out-prefix P [--contiguous] [--force]
 *
 * Exit 0 ok; 1 with a one-line reason on stderr; 2 usage. */
#include <getopt.h>
#include <stdio.h>

#include "args.h"
#include "commands.h"
#include "job_split.h"

static void split_usage(FILE *f) {
    fprintf(f,
            "usage: diffu split --input IN.jsonl[.gz] --shards K --out-prefix P [--contiguous] [--force]\n"
            "  Cuts a batch-job input into K shards P-00000-of-0000K.jsonl[.gz] (gzip when IN is gzip) for a job array;\n"
            "  prints their paths. Lines round-robin (--contiguous: consecutive blocks), copied byte for byte;\n"
            "  whitespace-only lines are dropped. --force replaces existing shards.\n");
}

int cmd_split(int argc, char **argv) {
    static const struct option opts[] = {{"input", 1, 0, 'i'},      {"shards", 1, 0, 'k'}, {"out-prefix", 1, 0, 'o'},
                                         {"contiguous", 0, 0, 'c'}, {"force", 0, 0, 'f'},  {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    diffu_job_split_opts o = {0};
    long long k = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'i': o.input = optarg; break;
        case 'k': if (arg_int("split", "--shards", optarg, 1, 99999, &k)) return 2; break;
        case 'o': o.prefix = optarg; break;
        case 'c': o.contiguous = 1; break;
        case 'f': o.force = 1; break;
        case 'h': split_usage(stdout); return 0;
        default: split_usage(stderr); return 2;
        }
    }
    if (!o.input || !k || !o.prefix || optind != argc) {
        fprintf(stderr, "diffu split: --input, --shards and --out-prefix are required (and no other arguments)\n");
        return 2;
    }
    o.shards = (int)k;
    diffu_job_split_result r;
    diffu_err err;
    if (diffu_job_split_run(&o, &r, &err)) {
        fprintf(stderr, "diffu split: error: %s\n", err.msg);
        return 1;
    }
    char name[4200];
    for (int i = 0; i < o.shards; i++) {
        diffu_job_split_shard_name(name, sizeof name, o.prefix, i, o.shards, r.gz);
        printf("%s\n", name);
    }
    const char *in = o.input;
    fprintf(stderr, "[diffu] split %s: %ld line(s) into %d %s%s shard(s) of %ld..%ld line(s)\n", in, r.lines, o.shards,
            r.gz ? "gzip " : "", o.contiguous ? "contiguous" : "round-robin", r.per, r.per + (r.extra ? 1 : 0));
    if (r.blank) fprintf(stderr, "[diffu] split %s: %ld whitespace-only line(s) dropped\n", in, r.blank);
    if (r.repeats)
        fprintf(stderr, "[diffu] split %s: %ld line(s) repeat an earlier line's id: each went to that line's shard, after it "
                        "(the job rejects them as it would unsplit)\n", in, r.repeats);
    return 0;
}
