/* cmd_logits_dist.c — `diffu logits --pp P --tp T` under mpirun: the options;
 * the run is node/logits_dist.h. Exit status: 0, 1 (user error, printed once by
 * rank 0), 2 (usage). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "commands.h"
#include "logits_dist.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: mpirun -np N diffu logits --pp P --tp T --model DIR --ids FILE --out FILE [--lengths L1,L2,...]\n"
            "                                  [--microbatches M] [--threads N] [--f32-weights] [--comm-timeout S] [--verbose]\n"
            "  The distributed forward (N = P x T ranks); writes the same float32 [N x vocab] file as the\n"
            "  single-process `diffu logits` (rank 0 writes it). --microbatches M splits the sequences into M\n"
            "  groups that follow each other through the pipeline (default 1). --comm-timeout S: a rank that\n"
            "  waits longer than S seconds for a peer ends the job (default 300, env DIFFU_COMM_TIMEOUT).\n"
            "  --verbose prints every rank's memory plan.\n");
}

typedef struct {
    const char *model, *ids, *out;
    int *lengths, n_lengths;
    int pp, tp, microbatches, threads, f32, verbose;
    double timeout;
} dopts;

static int parse(int argc, char **argv, dopts *o) {
    static const struct option opts[] = {
        {"model", 1, 0, 'm'},        {"ids", 1, 0, 'i'},         {"out", 1, 0, 'o'},          {"lengths", 1, 0, 'l'},
        {"threads", 1, 0, 'j'},      {"f32-weights", 0, 0, 'f'}, {"pp", 1, 0, 'p'},           {"tp", 1, 0, 't'},
        {"microbatches", 1, 0, 'b'}, {"comm-timeout", 1, 0, 'T'}, {"verbose", 0, 0, 'v'},     {"help", 0, 0, 'h'}, {"precision", 1, 0, 'P'},
        {0, 0, 0, 0}};
    memset(o, 0, sizeof *o);
    o->pp = o->tp = o->microbatches = 1;
    long long v;
    double d;
    /* arg_* and getopt print their errors; once per job is enough: silence fd 2 on ranks > 0 */
    int quiet = arg_launcher_rank() != 0, saved = arg_quiet_stderr(quiet);
    int rc = 0, c;
    optind = 1;
    opterr = !quiet;
    while (!rc && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': o->model = optarg; break;
        case 'i': o->ids = optarg; break;
        case 'o': o->out = optarg; break;
        case 'l':
            free(o->lengths);
            o->lengths = NULL;
            if (arg_int_list("logits", "--lengths", optarg, 1, 1 << 30, &o->lengths, &o->n_lengths)) rc = 2;
            break;
        case 'j': if (arg_int("logits", "--threads", optarg, 1, 1024, &v)) rc = 2; else o->threads = (int)v; break;
        case 'f': o->f32 = 1; break;
        case 'p': if (arg_int("logits", "--pp", optarg, 1, 1 << 20, &v)) rc = 2; else o->pp = (int)v; break;
        case 't': if (arg_int("logits", "--tp", optarg, 1, 1 << 20, &v)) rc = 2; else o->tp = (int)v; break;
        case 'b': if (arg_int("logits", "--microbatches", optarg, 1, 1 << 20, &v)) rc = 2; else o->microbatches = (int)v; break;
        case 'T': if (arg_double("logits", "--comm-timeout", optarg, 0.01, 1e7, &d)) rc = 2; else o->timeout = d; break;
        case 'v': o->verbose = 1; break;
        case 'P': if (arg_precision("logits", optarg)) rc = 2; break;
        case 'h': rc = -1; break;
        default: rc = 2;
        }
    }
    if (!rc && (!o->model || !o->ids || !o->out || optind != argc)) {
        fprintf(stderr, "diffu logits: --model, --ids and --out are required\n");
        rc = 2;
    }
    if (rc > 0) usage(stderr);
    arg_restore_stderr(saved);
    return rc;
}

int cmd_logits_dist(int argc, char **argv) {
    dopts o;
    int prc = parse(argc, argv, &o);
    if (prc < 0) {
        if (arg_launcher_rank() == 0) usage(stdout);
        return 0;
    }
    if (prc) return prc;
    diffu_logits_dist_opts lo = {o.model, o.ids, o.out, o.lengths, o.n_lengths, o.pp, o.tp, o.microbatches,
                                 o.threads, o.f32, o.verbose, o.timeout};
    diffu_err err;
    int rc = diffu_logits_dist_run(&lo, &err); /* prints its error once */
    free(o.lengths);
    return rc ? 1 : 0;
}
