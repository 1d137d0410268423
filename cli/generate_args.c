/* generate_args.c — `diffu generate`'s command line (generate.h: gen_parse):
 * every option of both back ends, the generation parameters from the one
 * table (coordinator/genparam.h, through cli/args.h), and which options go
 * together. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "chat.h"
#include "generate.h"
#include "job_output.h"

#define CMD "generate"

enum {
    O_PROMPT_IDS = 1, O_PROMPT, O_ENDID, O_WATCH, O_EMIT, O_OUT, O_THREADS, O_F32, O_DUMPU, O_MODEL,
    O_CHAT, O_SYSTEM, O_PREFILL, O_EVALPREFILL, O_PP, O_TP, O_MB, O_MAXACT, O_SPREAD, O_HEADROWS, O_TIMEOUT,
    O_VERBOSE, O_INPUT, O_OUTPUT, O_FORMAT, O_STRICT, O_ALLOWCHANGE, O_CKPT,
    O_PARAM = 0x100 /* + a row of the generation parameters' table (coordinator/genparam.h) */
};

static void usage(FILE *f) {
    fprintf(f,
            "usage: diffu generate --model DIR (--prompt-ids IDS | --prompt TEXT)... [options]\n"
            "       diffu generate --model DIR --input IN.jsonl[.gz] --output OUT.jsonl[.gz] [options]\n"
            "       mpirun -np N diffu generate --pp P --tp T --model DIR ... [options]   (N = P x T)\n"
            "  --prompt-ids 1,2,3     a prompt as token ids (repeat for a batch of prompts)\n"
            "  --prompt TEXT          a prompt as text (needs the checkpoint's tokenizer; repeatable)\n"
            "  --chat                 wrap each --prompt as the user turn of the DiffuCoder chat prompt\n"
            "  --system TEXT          system line of the chat prompt (default \"" DIFFU_CHAT_DEFAULT_SYSTEM "\")\n"
            "  --prefill TEXT         assistant prefill after the chat prompt (C escapes \\n \\t expanded)\n"
            "  --eval-prefill         the paper's prefill \"Here is the code to solve this problem:\\n```python\\n\"\n"
            );
    arg_genparam_help(f); /* coordinator/genparam.h: the table every command and the job input share */
    fprintf(f,
            "  --end-id ID            end token for --early-stop and the text cut (repeatable; default: config\n"
            "                         eos, plus <|dlm_pad|> when the tokenizer has it)\n"
            "  --watch                live view of the canvas on a terminal (stderr; single process)\n"
            "  --emit-ids             print generated ids (comma-separated) instead of text\n"
            "  --out FILE             write the full sequences (prompt + generated) as a JSON list\n"
            "batch job (docs/jobs.md):\n"
            "  --input FILE           requests, JSONL or JSONL.gz (coordinator/job_input.h)\n"
            "  --output FILE          one record per finished sample, resumable: rerun the same command\n"
            "  --format F             diffu | humaneval | evalplus (default diffu)\n"
            "  --strict               refuse the whole input when any line is bad (else rejects go to\n"
            "                         OUTPUT.rejects.jsonl)\n"
            "  --allow-run-change     continue an output made with another model, input or settings (refused\n"
            "                         otherwise: OUTPUT.manifest.json holds the run's identity)\n"
            "  --max-active N         (one process) samples in flight at once (default 8)\n"
            "  --checkpoint-every S   write the samples in flight to OUTPUT.inflight every S seconds (default 300;\n"
            "                         0: only on a signal); a rerun continues them mid-sample\n"
            "  SIGTERM/SIGINT/SIGUSR1 stop after the current step, checkpoint the samples in flight, exit 1;\n"
            "                         rerun the same command to resume (a second signal: stop at once)\n"
            "  --threads N            threads per rank (default: CPUs in the affinity mask)\n"
            "  --f32-weights          widen weights to fp32 at load\n"
            "  --precision P          GEMM precision fp32|bf16|int8|auto (default auto: $DIFFU_PRECISION, else bf16 where the CPU has BF16 units)\n"
            "  --dump-origin-uniforms FILE   (testing; single process) the float32 uniforms alg origin\n"
            "                         consumes, in the order of tests/ref/dream_generate_ref.py --origin-uniforms\n"
            "distributed (under mpirun; docs/distributed.md):\n"
            "  --pp P, --tp T         pipeline stages x tensor-parallel ranks per stage (mpirun -np P*T)\n"
            "  --microbatches M       microbatches kept in flight (default: 1 for one stage, else 2 x P)\n"
            "  --max-active N         sequences in flight at once; the next enters as one finishes (default: all;\n"
            "                         a batch job: 32, at least 2 x microbatches)\n"
            "  --spread W             phase-spread admission: at most max(M, N/W) sequences in the first 1/W of\n"
            "                         their decoding (default: 4 with several stages, else 1 = off)\n"
            "  --head-rows F          lm_head rows per token for the stage balance (default: from the schedule)\n"
            "  --comm-timeout S       a rank waiting longer than S s for a peer ends the job (default 300,\n"
            "                         env DIFFU_COMM_TIMEOUT)\n"
            "  --verbose              every rank's memory plan\n");
}

static char *unescape(const char *s) {
    char *r = diffu_xmalloc(strlen(s) + 1);
    arg_unescape(r, s);
    return r;
}

/* One option (getopt's c, its argument) into o: 0, -1 (--help), or 2 after
 * printing the error. */
static int parse_one(gen_opts *o, int c, char *arg) {
    diffu_denoise_params *p = &o->p;
    long long v;
    int rc = 0;
    switch (c) {
    case O_MODEL: o->model = arg; break;
    case O_PROMPT_IDS:
    case O_PROMPT:
        if (o->n_prompts == o->cap_prompts) {
            o->cap_prompts = o->cap_prompts ? 2 * o->cap_prompts : 4;
            o->prompts = diffu_xrealloc(o->prompts, (size_t)o->cap_prompts * sizeof *o->prompts);
            o->prompt_len = diffu_xrealloc(o->prompt_len, (size_t)o->cap_prompts * sizeof *o->prompt_len);
            o->prompt_text = diffu_xrealloc(o->prompt_text, (size_t)o->cap_prompts * sizeof *o->prompt_text);
        }
        o->prompts[o->n_prompts] = NULL;
        o->prompt_len[o->n_prompts] = 0;
        o->prompt_text[o->n_prompts] = c == O_PROMPT ? arg : NULL;
        o->n_prompts++;
        if (c == O_PROMPT_IDS && arg_int_list(CMD, "--prompt-ids", arg, 0, 0x7fffffff, &o->prompts[o->n_prompts - 1],
                                              &o->prompt_len[o->n_prompts - 1]))
            rc = 2;
        break;
    case O_ENDID:
        if (arg_int(CMD, "--end-id", arg, 0, 0x7fffffff, &v)) {
            rc = 2;
        } else if (o->n_end_cli == DIFFU_MAX_END_IDS) {
            fprintf(stderr, "diffu " CMD ": --end-id: at most %d end tokens\n", DIFFU_MAX_END_IDS);
            rc = 2;
        } else {
            o->end_cli[o->n_end_cli++] = (int32_t)v;
        }
        break;
    case O_WATCH: o->watch = 1; break;
    case O_EMIT: o->emit_ids = 1; break;
    case O_OUT: o->out_path = arg; break;
    case O_THREADS: if (arg_int(CMD, "--threads", arg, 1, 1024, &v)) rc = 2; else o->threads = (int)v; break;
    case O_F32: o->f32 = 1; break;
    case 'P': if (arg_precision(CMD, arg)) rc = 2; break;
    case O_DUMPU: o->dump_path = arg; break;
    case O_CHAT: o->chat = 1; break;
    case O_SYSTEM: o->system = arg; break;
    case O_PREFILL: free(o->prefill); o->prefill = unescape(arg); break;
    case O_EVALPREFILL: free(o->prefill); o->prefill = diffu_xstrdup(DIFFU_CHAT_EVAL_PREFILL); break;
    case O_PP: if (arg_int(CMD, "--pp", arg, 1, 1 << 20, &v)) rc = 2; else o->pp = (int)v; break;
    case O_TP: if (arg_int(CMD, "--tp", arg, 1, 1 << 20, &v)) rc = 2; else o->tp = (int)v; break;
    case O_MB: if (arg_int(CMD, "--microbatches", arg, 1, 1 << 16, &v)) rc = 2; else o->microbatches = (int)v; o->dist_opts = 1; break;
    case O_MAXACT: if (arg_int(CMD, "--max-active", arg, 1, 1 << 24, &v)) rc = 2; else o->max_active = (int)v; o->dist_opts = 1; break;
    case O_SPREAD: if (arg_int(CMD, "--spread", arg, 1, 1 << 16, &v)) rc = 2; else o->spread = (int)v; o->dist_opts = 1; break;
    case O_HEADROWS: if (arg_double(CMD, "--head-rows", arg, 1e-6, 1.0, &o->head_rows)) rc = 2; o->dist_opts = 1; break;
    case O_TIMEOUT: if (arg_double(CMD, "--comm-timeout", arg, 0.01, 1e7, &o->comm_timeout)) rc = 2; o->dist_opts = 1; break;
    case O_VERBOSE: o->verbose = 1; break;
    case O_INPUT: o->input = arg; break;
    case O_OUTPUT: o->output = arg; break;
    case O_FORMAT: o->format = arg; break;
    case O_STRICT: o->strict = 1; break;
    case O_ALLOWCHANGE: o->allow_run_change = 1; break;
    case O_CKPT:
        if (arg_double(CMD, "--checkpoint-every", arg, 0, 1e9, &o->checkpoint_every)) rc = 2;
        else if (o->checkpoint_every == 0) o->checkpoint_every = -1; /* 0 given: on signals only */
        o->ckpt_given = 1;
        break;
    case 'h': rc = -1; break;
    default:
        if (c >= O_PARAM && c < O_PARAM + diffu_genparam_count()) {
            if (arg_genparam(CMD, c - O_PARAM, arg, p, &o->n_samples)) rc = 2;
        } else {
            usage(stderr);
            rc = 2;
        }
    }
    return rc;
}

/* Which options go together: 0, or 2 after printing why. */
static int check_combination(const gen_opts *o) {
    int rc = 0;
    if (!rc && (o->input || o->output)) {
        if (!o->input || !o->output || !o->model) {
            fprintf(stderr, "diffu " CMD ": --input, --output and --model go together\n");
            rc = 2;
        } else if (o->n_prompts || o->chat || o->watch || o->out_path || o->dump_path) {
            fprintf(stderr, "diffu " CMD ": --input takes its prompts from the file: no --prompt, --prompt-ids, "
                    "--chat, --watch, --out or --dump-origin-uniforms\n");
            rc = 2;
        } else if (o->format && diffu_jobout_format_parse(o->format) < 0) {
            fprintf(stderr, "diffu " CMD ": --format: '%s' is not diffu, humaneval or evalplus\n", o->format);
            rc = 2;
        }
    } else if (!rc && (o->format || o->strict || o->allow_run_change || o->ckpt_given)) {
        fprintf(stderr, "diffu " CMD ": --format, --strict, --allow-run-change and --checkpoint-every go with --input /"
                " --output\n");
        rc = 2;
    }
    if (!rc && !o->input && !o->chat && (o->system || o->prefill)) {
        fprintf(stderr, "diffu " CMD ": --system / --prefill / --eval-prefill go with --chat\n");
        rc = 2;
    }
    if (!rc && !o->input && (!o->model || !o->n_prompts)) {
        fprintf(stderr, "diffu " CMD ": --model and at least one --prompt-ids or --prompt are required\n");
        usage(stderr);
        rc = 2;
    }
    return rc;
}

int gen_parse(int argc, char **argv, gen_opts *o, int quiet) {
    static const struct option own[] = {
        {"model", 1, 0, O_MODEL},         {"prompt-ids", 1, 0, O_PROMPT_IDS}, {"prompt", 1, 0, O_PROMPT},
        {"end-id", 1, 0, O_ENDID},
        {"watch", 0, 0, O_WATCH},         {"emit-ids", 0, 0, O_EMIT},       {"out", 1, 0, O_OUT},
        {"threads", 1, 0, O_THREADS},     {"f32-weights", 0, 0, O_F32},     {"dump-origin-uniforms", 1, 0, O_DUMPU},
        {"chat", 0, 0, O_CHAT},           {"system", 1, 0, O_SYSTEM},       {"prefill", 1, 0, O_PREFILL},
        {"eval-prefill", 0, 0, O_EVALPREFILL}, {"pp", 1, 0, O_PP},          {"tp", 1, 0, O_TP},
        {"microbatches", 1, 0, O_MB},     {"max-active", 1, 0, O_MAXACT},   {"spread", 1, 0, O_SPREAD},
        {"head-rows", 1, 0, O_HEADROWS},  {"comm-timeout", 1, 0, O_TIMEOUT}, {"verbose", 0, 0, O_VERBOSE},
        {"input", 1, 0, O_INPUT},         {"output", 1, 0, O_OUTPUT},       {"format", 1, 0, O_FORMAT},
        {"strict", 0, 0, O_STRICT},       {"allow-run-change", 0, 0, O_ALLOWCHANGE},
        {"precision", 1, 0, 'P'},        {"checkpoint-every", 1, 0, O_CKPT},
        {"help", 0, 0, 'h'}};
    struct option opts[sizeof own / sizeof own[0] + ARG_GENPARAM_MAX + 1];
    arg_genparam_options(opts, own, sizeof own / sizeof own[0], O_PARAM);
    memset(o, 0, sizeof *o);
    o->n_samples = 1;
    diffu_denoise_params_default(&o->p);
    o->p.max_new_tokens = 256;
    int saved = arg_quiet_stderr(quiet); /* the argument helpers print their errors: once per job is enough */
    optind = 1;
    opterr = !quiet;
    int c, rc = 0;
    while (!rc && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) rc = parse_one(o, c, optarg);
    if (!rc && optind < argc) {
        fprintf(stderr, "diffu " CMD ": unexpected argument '%s'\n", argv[optind]);
        rc = 2;
    }
    if (!rc) rc = check_combination(o);
    arg_restore_stderr(saved);
    if (rc == -1) {
        if (!quiet) usage(stdout);
        return -1;
    }
    if (rc) return rc;
    o->steps = o->p.steps; /* 0: not given (a batch job's requests: their own max_new_tokens) */
    if (!o->p.steps) o->p.steps = o->p.max_new_tokens;
    return 0;
}
