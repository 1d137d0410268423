/* cmd_jobcheck.c — `diffu jobcheck`: the batch-job I/O layer without a model.
 *
 *   diffu jobcheck --input IN [--strict] [--rejects FILE] [--max-context N]
 *                  [--model DIR] [generation defaults as in `diffu generate`]
 *     parses and validates a request file exactly as `diffu generate --input`
 *     does (coordinator/job_input.h). stdout: one JSON line per accepted
 *     request {"line","id","n","mode","prompt_tokens","params"}; stderr: one
 *     "IN:LINE: reason" per reject (the first --max-problems), then a summary;
 *     --rejects FILE gets every reject as JSONL (line, field, id, reason, raw).
 *     Prompt tokens come from the checkpoint's tokenizer with --model (and the
 *     context defaults to its max_position_embeddings), else from a stand-in
 *     that counts one token per byte.
 *     Exit: 0 when the file was read (rejects are reported, not fatal); 1 for a
 *     file-level error, or with --strict when any line is rejected (nothing on
 *     stdout then); 2 usage.
 *
 *   diffu jobcheck --repair OUT [--dry-run]
 *     scans a job output file (coordinator/job_resume.h), drops its torn tail
 *     (kept in OUT.torn) and prints {"records","distinct","duplicates",
 *     "good_bytes","dropped_bytes","dropped","saved_to"} on stdout. Exit 1 if
 *     the file is damaged in a way that is not a torn tail. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "chat.h"
#include "commands.h"
#include "config.h"
#include "job_input.h"
#include "job_resume.h"
#include "json.h"
#include "tokenizer.h"

#define CMD "jobcheck"
#define STANDIN_VOCAB 257 /* bytes + a mask id, for parameter checks without a model */

static void usage(FILE *f) {
    fprintf(f,
            "usage: diffu jobcheck --input IN.jsonl[.gz] [options]\n"
            "       diffu jobcheck --repair OUT.jsonl[.gz] [--dry-run]\n"
            "  --input FILE           request file to validate (JSONL or JSONL.gz)\n"
            "  --strict               refuse the whole file when any line is bad (exit 1, first problems listed)\n"
            "  --rejects FILE         write every rejected line as JSONL (line, field, id, reason, raw)\n"
            "  --max-context N        reject prompts with tokens + max_new_tokens > N (default: the model's\n"
            "                         max_position_embeddings with --model, else no limit)\n"
            "  --model DIR            count tokens with the checkpoint's tokenizer (default: 1 token per byte)\n"
            "  --max-problems N       rejects listed on stderr (default 20)\n"
            "  --max-line-bytes N     longest accepted line (default 64M)\n"
            "  --repair FILE          repair a job output's torn tail (kept in FILE.torn) and summarize it\n"
            "  --dry-run              with --repair: report only, change nothing\n"
            "defaults for the requests, as diffu generate's (--system, --prefill, --eval-prefill too):\n");
    arg_genparam_help(f); /* coordinator/genparam.h */
}

static int do_repair(const char *path, int dry) {
    diffu_err err;
    diffu_jobresume *r = diffu_jobresume_scan_path(path, !dry, &err);
    if (!r) {
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        return 1;
    }
    const diffu_jobresume_report *p = diffu_jobresume_get_report(r);
    char esc1[2048], esc2[8448];
    diffu_json_escape(esc1, sizeof esc1, p->dropped_what, strlen(p->dropped_what));
    diffu_json_escape(esc2, sizeof esc2, p->saved_to, strlen(p->saved_to));
    printf("{\"records\":%ld,\"distinct\":%ld,\"duplicates\":%ld,\"good_bytes\":%llu,\"dropped_bytes\":%llu,"
           "\"dropped\":%s,\"saved_to\":%s,\"repaired\":%s}\n",
           p->records, p->distinct, p->duplicates, (unsigned long long)p->good_bytes,
           (unsigned long long)p->dropped_bytes, esc1, esc2, p->repaired ? "true" : "false");
    if (p->dropped_bytes && dry) /* a real repair logs what it dropped itself */
        fprintf(stderr, "[diffu] %s: would drop %s\n", path, p->dropped_what);
    fprintf(stderr, "[diffu] %s: %ld complete records (%ld distinct id/sample), %llu bytes\n", path, p->records,
            p->distinct, (unsigned long long)p->good_bytes);
    diffu_jobresume_free(&r);
    return 0;
}

/* The rejects (stderr, and the rejects file), then one line per accepted
 * request on stdout and the summary. 0, or 1 after printing the error (a
 * strict refusal included). */
static int report(diffu_jobin *in, const char *input, const char *rejects, int strict, long long max_prob) {
    diffu_err err;
    int nrej = diffu_jobin_n_rejects(in), nreq = diffu_jobin_count(in);
    if (rejects && diffu_jobin_write_rejects(in, rejects, &err)) {
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        return 1;
    }
    if (strict && nrej)
        fprintf(stderr, "diffu " CMD ": error: %s: %d bad line%s; --strict refuses the whole file:\n", input, nrej,
                nrej > 1 ? "s" : "");
    diffu_jobin_list_rejects(in, stderr, (long)max_prob, rejects);
    if (strict && nrej) return 1;

    diffu_text t = {0};
    for (int i = 0; i < nreq; i++) {
        t.len = 0;
        diffu_jobin_describe(diffu_jobin_get(in, i), &t);
        fwrite(t.data, 1, t.len, stdout);
        fputc('\n', stdout);
    }
    diffu_text_free(&t);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "diffu " CMD ": error: writing stdout: %s\n", strerror(errno));
        return 1;
    }
    const diffu_jobin_stats *st = diffu_jobin_get_stats(in);
    fprintf(stderr, "[diffu] %s: %d request%s accepted (%ld sample%s), %d rejected", input, nreq, nreq == 1 ? "" : "s",
            st->samples, st->samples == 1 ? "" : "s", nrej);
    if (st->blank) fprintf(stderr, ", %d blank line%s skipped", st->blank, st->blank > 1 ? "s" : "");
    if (st->crlf) fprintf(stderr, ", CRLF line endings");
    if (st->bom) fprintf(stderr, ", UTF-8 BOM skipped");
    if (st->gz) fprintf(stderr, ", gzip");
    fputc('\n', stderr);
    return 0;
}

int cmd_jobcheck(int argc, char **argv) {
    enum {
        O_INPUT = 1, O_STRICT, O_REJECTS, O_MAXCTX, O_MODEL, O_MAXPROB, O_MAXLINE, O_SYSTEM, O_PREFILL,
        O_EVALPREFILL, O_REPAIR, O_DRY,
        O_PARAM = 0x100 /* + a row of the generation parameters' table (coordinator/genparam.h) */
    };
    static const struct option own[] = {
        {"input", 1, 0, O_INPUT},         {"strict", 0, 0, O_STRICT},         {"rejects", 1, 0, O_REJECTS},
        {"max-context", 1, 0, O_MAXCTX},  {"model", 1, 0, O_MODEL},           {"max-problems", 1, 0, O_MAXPROB},
        {"max-line-bytes", 1, 0, O_MAXLINE},
        {"system", 1, 0, O_SYSTEM},       {"prefill", 1, 0, O_PREFILL},       {"eval-prefill", 0, 0, O_EVALPREFILL},
        {"repair", 1, 0, O_REPAIR},       {"dry-run", 0, 0, O_DRY},           {"help", 0, 0, 'h'}};
    struct option opts[sizeof own / sizeof own[0] + ARG_GENPARAM_MAX + 1];
    arg_genparam_options(opts, own, sizeof own / sizeof own[0], O_PARAM);
    const char *input = NULL, *rejects = NULL, *model = NULL, *repair = NULL;
    int strict = 0, dry = 0;
    long long max_ctx = -1, max_prob = 20, n_samples;
    uint64_t max_line = 0;
    diffu_jobin_opts o;
    diffu_jobin_opts_default(&o);
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_INPUT: input = optarg; break;
        case O_STRICT: strict = 1; break;
        case O_REJECTS: rejects = optarg; break;
        case O_MAXCTX: if (arg_int(CMD, "--max-context", optarg, 1, 1 << 30, &max_ctx)) return 2; break;
        case O_MODEL: model = optarg; break;
        case O_MAXPROB: if (arg_int(CMD, "--max-problems", optarg, 0, 1 << 30, &max_prob)) return 2; break;
        case O_MAXLINE: if (arg_size(CMD, "--max-line-bytes", optarg, &max_line)) return 2; break;
        case O_SYSTEM: o.system = optarg; break;
        case O_PREFILL: arg_unescape(optarg, optarg); o.prefill = optarg; break; /* as generate's --prefill */
        case O_EVALPREFILL: o.prefill = DIFFU_CHAT_EVAL_PREFILL; break;
        case O_REPAIR: repair = optarg; break;
        case O_DRY: dry = 1; break;
        case 'h': usage(stdout); return 0;
        default:
            if (c < O_PARAM || c >= O_PARAM + diffu_genparam_count()) {
                usage(stderr);
                return 2;
            }
            n_samples = o.n;
            if (arg_genparam(CMD, c - O_PARAM, optarg, &o.defaults, &n_samples)) return 2;
            o.n = (int)n_samples;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "diffu " CMD ": unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    if (repair) {
        if (input) {
            fprintf(stderr, "diffu " CMD ": --repair and --input are separate uses\n");
            return 2;
        }
        return do_repair(repair, dry);
    }
    if (!input) {
        fprintf(stderr, "diffu " CMD ": --input is required\n");
        usage(stderr);
        return 2;
    }
    o.max_line = (size_t)max_line;

    diffu_err err;
    diffu_tokenizer *tok = NULL;
    int rc = 1;
    if (model) {
        diffu_config cfg;
        if (diffu_genparam_model(model, NULL, 0, &cfg, &tok, &o.defaults, &err)) {
            fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
            return 1;
        }
        o.vocab = cfg.vocab;
        if (max_ctx < 0) max_ctx = cfg.max_pos;
        if (tok) {
            o.count_tokens = diffu_jobin_count_tokenizer;
            o.count_user = tok;
        } else {
            fprintf(stderr, "[diffu] warning: %s has no tokenizer: counting one token per byte\n", model);
            o.count_tokens = diffu_jobin_count_bytes;
        }
    } else {
        o.vocab = STANDIN_VOCAB;
        o.defaults.mask_id = STANDIN_VOCAB - 1;
        o.count_tokens = diffu_jobin_count_bytes;
    }
    o.max_context = max_ctx > 0 ? (int)max_ctx : 0;

    diffu_jobin *in = diffu_jobin_open(input, &o, &err);
    if (!in) {
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        goto out;
    }
    rc = report(in, input, rejects, strict, max_prob);
out:
    diffu_jobin_free(&in);
    diffu_tokenizer_free(&tok);
    return rc;
}
