/* main.c — the `diffu` command line: dispatches to subcommands. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "log.h"

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
} command;

static const command COMMANDS[] = {
    {"mkmodel", cmd_mkmodel, "write a random-weight model in Hugging Face format (tiny|small|7b presets)"},
    {"inspect", cmd_inspect, "validate a checkpoint; print config, parameters, bytes by dtype, memory per rank"},
    {"logits", cmd_logits, "raw logits of every position for int32 token ids (testing and outside checks)"},
    {"tokenize", cmd_tokenize, "text <-> token ids with a checkpoint's tokenizer (exact to Hugging Face); --chat, --decode"},
    {"bench", cmd_bench, "benchmarks: `bench forward` (ms per forward, GFLOP/s beside raw sgemm)"},
    {"layout", cmd_layout, "the parallel plan of a pp x tp job: stages, slices, memory, communication per rank"},
    {"generate", cmd_generate, "denoise prompts into code: Dream's algorithms exactly, plus threshold/blocks/early stop; --watch"},
    {"jobcheck", cmd_jobcheck, "validate a batch-job request file (rejects with file:line and field); --repair a job output"},
    {"plan", cmd_plan, "which pp x tp layouts fit N nodes of C cores and G GiB, memory per rank, the one to use and why"},
    {"split", cmd_split, "cut a batch-job input into K shards for a job array (byte for byte, .gz in -> .gz out)"},
    {"merge", cmd_merge, "merge shard outputs, checking every (id, sample) is there exactly once (--input: none missing)"},
};

static void usage(FILE *f) {
    fprintf(f, "diffu %s — distributed CPU inference for masked-diffusion code models (DiffuCoder, Dream)\n\n",
            "0.1.0");
    fprintf(f, "usage: diffu <command> [options]   (diffu <command> --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        fprintf(f, "  %-10s %s\n", COMMANDS[i].name, COMMANDS[i].summary);
    fprintf(f, "  %-10s %s\n", "help", "this list");
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof COMMANDS / sizeof COMMANDS[0]; i++)
        if (!strcmp(argv[1], COMMANDS[i].name)) return COMMANDS[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "diffu: unknown command '%s' (try: diffu help)\n", argv[1]);
    return 2;
}
