/* generate_front.c — see generate.h. (Moved out of cmd_generate.c so that the
 * single-process and the distributed back ends take the same options and
 * print the same results.) */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "args.h"
#include "chat.h"
#include "generate.h"
#include "job_output.h"

#define CMD "generate"

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

/* "1, 2,3" -> ids (0 allowed). */
static int parse_ids(const char *s, int32_t **out, int *n) {
    int cap = 16, k = 0;
    int32_t *v = diffu_xmalloc((size_t)cap * sizeof *v);
    const char *p = s;
    while (*p) {
        while (*p == ' ' || *p == '\t') p++;
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (errno || end == p || x < 0 || x > 0x7fffffff) goto bad;
        while (*end == ' ' || *end == '\t') end++;
        if (*end && *end != ',') goto bad;
        if (k == cap) v = diffu_xrealloc(v, (size_t)(cap *= 2) * sizeof *v);
        v[k++] = (int32_t)x;
        p = *end ? end + 1 : end;
    }
    if (!k) goto bad;
    *out = v;
    *n = k;
    return 0;
bad:
    fprintf(stderr, "diffu " CMD ": --prompt-ids: '%s' is not a comma-separated list of token ids\n", s);
    free(v);
    return -1;
}

int gen_launcher_rank(void) {
    const char *v[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "PMI_RANK"};
    for (int i = 0; i < 3; i++) {
        const char *e = getenv(v[i]);
        if (e && *e) return atoi(e);
    }
    return 0;
}

int gen_wants_dist(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strncmp(argv[i], "--pp", 4) || !strncmp(argv[i], "--tp", 4)) return 1;
    }
    const char *v[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_SIZE", "PMI_SIZE"};
    for (int i = 0; i < 3; i++) {
        const char *e = getenv(v[i]);
        if (e && *e) return atoi(e) > 1;
    }
    return 0;
}

/* ------------------------------------------------------------ parse */

int gen_parse(int argc, char **argv, gen_opts *o, int quiet) {
    enum {
        O_PROMPT_IDS = 1, O_PROMPT, O_ENDID, O_WATCH, O_EMIT, O_OUT, O_THREADS, O_F32, O_DUMPU, O_MODEL,
        O_CHAT, O_SYSTEM, O_PREFILL, O_EVALPREFILL, O_PP, O_TP, O_MB, O_MAXACT, O_SPREAD, O_HEADROWS, O_TIMEOUT,
        O_VERBOSE, O_INPUT, O_OUTPUT, O_FORMAT, O_STRICT, O_ALLOWCHANGE, O_CKPT,
        O_PARAM = 0x100 /* + a row of the generation parameters' table (coordinator/genparam.h) */
    };
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
    long long v;
    /* the argument helpers print their errors: once per job is enough */
    int saved = -1;
    if (quiet) {
        fflush(stderr);
        int dn = open("/dev/null", O_WRONLY);
        saved = dup(STDERR_FILENO);
        if (dn >= 0) {
            dup2(dn, STDERR_FILENO);
            close(dn);
        }
    }
    optind = 1;
    opterr = !quiet;
    int c, rc = 0;
    diffu_denoise_params *p = &o->p;
    while (!rc && (c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: o->model = optarg; break;
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
            o->prompt_text[o->n_prompts] = c == O_PROMPT ? optarg : NULL;
            o->n_prompts++;
            if (c == O_PROMPT_IDS && parse_ids(optarg, &o->prompts[o->n_prompts - 1], &o->prompt_len[o->n_prompts - 1]))
                rc = 2;
            break;
        case O_ENDID:
            if (arg_int(CMD, "--end-id", optarg, 0, 0x7fffffff, &v)) {
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
        case O_OUT: o->out_path = optarg; break;
        case O_THREADS: if (arg_int(CMD, "--threads", optarg, 1, 1024, &v)) rc = 2; else o->threads = (int)v; break;
        case O_F32: o->f32 = 1; break;
        case 'P': if (arg_precision(CMD, optarg)) rc = 2; break;
        case O_DUMPU: o->dump_path = optarg; break;
        case O_CHAT: o->chat = 1; break;
        case O_SYSTEM: o->system = optarg; break;
        case O_PREFILL: free(o->prefill); o->prefill = unescape(optarg); break;
        case O_EVALPREFILL: free(o->prefill); o->prefill = diffu_xstrdup(DIFFU_CHAT_EVAL_PREFILL); break;
        case O_PP: if (arg_int(CMD, "--pp", optarg, 1, 1 << 20, &v)) rc = 2; else o->pp = (int)v; break;
        case O_TP: if (arg_int(CMD, "--tp", optarg, 1, 1 << 20, &v)) rc = 2; else o->tp = (int)v; break;
        case O_MB: if (arg_int(CMD, "--microbatches", optarg, 1, 1 << 16, &v)) rc = 2; else o->microbatches = (int)v; o->dist_opts = 1; break;
        case O_MAXACT: if (arg_int(CMD, "--max-active", optarg, 1, 1 << 24, &v)) rc = 2; else o->max_active = (int)v; o->dist_opts = 1; break;
        case O_SPREAD: if (arg_int(CMD, "--spread", optarg, 1, 1 << 16, &v)) rc = 2; else o->spread = (int)v; o->dist_opts = 1; break;
        case O_HEADROWS: if (arg_double(CMD, "--head-rows", optarg, 1e-6, 1.0, &o->head_rows)) rc = 2; o->dist_opts = 1; break;
        case O_TIMEOUT: if (arg_double(CMD, "--comm-timeout", optarg, 0.01, 1e7, &o->comm_timeout)) rc = 2; o->dist_opts = 1; break;
        case O_VERBOSE: o->verbose = 1; break;
        case O_INPUT: o->input = optarg; break;
        case O_OUTPUT: o->output = optarg; break;
        case O_FORMAT: o->format = optarg; break;
        case O_STRICT: o->strict = 1; break;
        case O_ALLOWCHANGE: o->allow_run_change = 1; break;
        case O_CKPT:
            if (arg_double(CMD, "--checkpoint-every", optarg, 0, 1e9, &o->checkpoint_every)) rc = 2;
            else if (o->checkpoint_every == 0) o->checkpoint_every = -1; /* 0 given: on signals only */
            o->ckpt_given = 1;
            break;
        case 'h': rc = -1; break;
        default:
            if (c >= O_PARAM && c < O_PARAM + diffu_genparam_count()) {
                if (arg_genparam(CMD, c - O_PARAM, optarg, p, &o->n_samples)) rc = 2;
            } else {
                usage(stderr);
                rc = 2;
            }
        }
    }
    if (!rc && optind < argc) {
        fprintf(stderr, "diffu " CMD ": unexpected argument '%s'\n", argv[optind]);
        rc = 2;
    }
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
    if (quiet && saved >= 0) {
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
    }
    if (rc == -1) {
        if (!quiet) usage(stdout);
        return -1;
    }
    if (rc) return rc;
    o->steps = o->p.steps; /* 0: not given (a batch job's requests: their own max_new_tokens) */
    if (!o->p.steps) o->p.steps = o->p.max_new_tokens;
    return 0;
}

/* ------------------------------------------------------------ prepare */

int gen_setup(gen_opts *o, gen_job *j) {
    memset(j, 0, sizeof *j);
    diffu_err err;
    if (diffu_genparam_model(o->model, o->end_cli, o->n_end_cli, &j->cfg, &j->tok, &o->p, &err)) {
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        return 1;
    }
    return 0;
}

int gen_prepare(gen_opts *o, gen_job *j) {
    diffu_err err;
    diffu_denoise_params *p = &o->p;
    if (gen_setup(o, j)) return 1;
    const diffu_config *cfg = &j->cfg;
    for (int i = 0; i < o->n_prompts; i++) {
        if (!o->prompt_text[i]) continue;
        if (!j->tok) {
            fprintf(stderr, "diffu " CMD ": error: --prompt needs a tokenizer, but %s has no tokenizer.json or "
                    "vocab.json (give --prompt-ids)\n", o->model);
            return 1;
        }
        diffu_ids ids = {0};
        size_t tl = strlen(o->prompt_text[i]);
        if (o->chat ? diffu_chat_prompt_ids(j->tok, o->system, o->prompt_text[i], tl, o->prefill, &ids, &err)
                    : diffu_tokenizer_encode(j->tok, o->prompt_text[i], tl, &ids, &err)) {
            fprintf(stderr, "diffu " CMD ": error: --prompt: %s\n", err.msg);
            diffu_ids_free(&ids);
            return 1;
        }
        o->prompts[i] = diffu_xmalloc((ids.len ? ids.len : 1) * sizeof(int32_t));
        if (ids.len) memcpy(o->prompts[i], ids.data, ids.len * sizeof(int32_t));
        o->prompt_len[i] = (int)ids.len;
        diffu_ids_free(&ids);
    }
    if (diffu_denoise_params_check(p, cfg->vocab, &err)) {
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        return 1;
    }
    /* one policy per (prompt, sample) */
    j->n_d = o->n_prompts * (int)o->n_samples;
    j->ds = diffu_xcalloc((size_t)j->n_d, sizeof *j->ds);
    for (int i = 0; i < o->n_prompts; i++)
        for (int s = 0; s < o->n_samples; s++) {
            diffu_denoise *d = diffu_denoise_create(p, cfg->vocab, o->prompts[i], o->prompt_len[i], (uint32_t)i,
                                                    (uint32_t)s, &err);
            if (!d) {
                fprintf(stderr, "diffu " CMD ": error: prompt %d: %s\n", i, err.msg);
                return 1;
            }
            j->ds[i * o->n_samples + s] = d;
            int len = o->prompt_len[i] + p->max_new_tokens;
            j->sum_tokens += len;
            j->max_seq = len > j->max_seq ? len : j->max_seq;
            j->sum_rows += p->max_new_tokens;
        }
    if (j->max_seq > cfg->max_pos)
        DLOG_WARN("a canvas of %d tokens is longer than max_position_embeddings %d", j->max_seq, cfg->max_pos);
    return 0;
}

/* ------------------------------------------------------------ report */

/* The reply text of a finished canvas (DiffuCoder's post-processing, or the cut at the --end-id tokens). */
static void gen_reply_text(const gen_opts *o, const diffu_tokenizer *tok, const diffu_denoise *d, diffu_text *text) {
    int len, L = diffu_denoise_prompt_len(d);
    const int32_t *cv = diffu_denoise_canvas(d, &len);
    diffu_chat_reply_ids(tok, cv + L, (size_t)(len - L), (size_t)diffu_denoise_answer_len(d), o->p.end_ids,
                         o->n_end_cli ? o->p.n_end : 0, text);
}

int gen_report(const gen_opts *o, const gen_job *j) {
    const diffu_denoise_params *p = &o->p;
    diffu_tokenizer *tok = j->tok;
    int n_samples = (int)o->n_samples;
    diffu_text text = {0};
    for (int k = 0; k < j->n_d; k++) {
        int len, L = diffu_denoise_prompt_len(j->ds[k]);
        const int32_t *cv = diffu_denoise_canvas(j->ds[k], &len);
        if (j->n_d > 1 && !o->emit_ids && tok) printf("=== prompt %d sample %d ===\n", k / n_samples, k % n_samples);
        if (o->emit_ids || !tok) {
            for (int q = L; q < len; q++) printf("%s%d", q > L ? "," : "", cv[q]);
            putchar('\n');
        } else {
            text.len = 0;
            gen_reply_text(o, tok, j->ds[k], &text);
            fwrite(text.data ? text.data : "", 1, text.len, stdout);
            putchar('\n');
        }
    }
    fflush(stdout);
    diffu_text_free(&text);
    if (o->out_path) {
        FILE *f = fopen(o->out_path, "w");
        if (!f) {
            fprintf(stderr, "diffu " CMD ": error: %s: cannot create: %s\n", o->out_path, strerror(errno));
            return 1;
        }
        fputc('[', f);
        for (int k = 0; k < j->n_d; k++) {
            int len;
            const int32_t *cv = diffu_denoise_canvas(j->ds[k], &len);
            fprintf(f, "%s[", k ? ", " : "");
            for (int q = 0; q < len; q++) fprintf(f, "%s%d", q ? ", " : "", cv[q]);
            fputc(']', f);
        }
        fputs("]\n", f);
        if (fclose(f) != 0) {
            fprintf(stderr, "diffu " CMD ": error: %s: write failed\n", o->out_path);
            return 1;
        }
    }
    /* AR-ness and forwards: stderr */
    for (int k = 0; k < j->n_d; k++) {
        diffu_arness a;
        diffu_denoise_arness(j->ds[k], &a);
        fprintf(stderr,
                "[prompt %d sample %d] %d tokens, %d steps, %d forwards (%.3f per token)%s; AR-ness over %d: "
                "local@1-4 %.3f %.3f %.3f %.3f  global@1-4 %.3f %.3f %.3f %.3f\n",
                k / n_samples, k % n_samples, p->max_new_tokens, diffu_denoise_steps_taken(j->ds[k]),
                diffu_denoise_forwards(j->ds[k]), (double)diffu_denoise_forwards(j->ds[k]) / p->max_new_tokens,
                diffu_denoise_stopped_early(j->ds[k]) ? ", early stop" : "", a.n, a.local[0], a.local[1], a.local[2],
                a.local[3], a.global[0], a.global[1], a.global[2], a.global[3]);
    }
    return 0;
}

void gen_timing(double t_load, const diffu_engine_stats *st, long gen_tokens) {
    const diffu_sched_stats *ss = &st->sched;
    char fwd[96] = "";
    if (st->forward > 0) /* the local backend: where its time went */
        snprintf(fwd, sizeof fwd, ", forward %.1f ms each, sampler %.1f ms",
                 ss->microbatches ? 1e3 * st->forward / (double)ss->microbatches : 0.0, 1e3 * st->sample);
    fprintf(stderr,
            "[timing] load %.2f s; generate %.3f s: %ld microbatches (%ld sequence-steps, %ld skipped without a"
            " forward), %ld lm_head rows%s, coordinator %.1f ms; %.1f generated tokens/s\n",
            t_load, st->wall, ss->microbatches, ss->seq_steps, ss->skipped_steps, ss->rows, fwd, 1e3 * st->coord,
            st->wall > 0 ? (double)gen_tokens / st->wall : 0.0);
    gen_work(st, gen_tokens);
}

void gen_work(const diffu_engine_stats *st, long gen_tokens) {
    if (st->computed <= 0 || gen_tokens <= 0) return;
    char fl[64] = ""; /* FLOPs: counted by the local backend only */
    if (st->flops > 0) snprintf(fl, sizeof fl, "; %.4f GFLOP per generated token", 1e-9 * st->flops / (double)gen_tokens);
    /* the work per generated token (the KV cache cuts it) */
    fprintf(stderr, "[timing] work: %ld rows through the forward, %.1f per generated token%s\n", st->computed,
            (double)st->computed / (double)gen_tokens, fl);
}

void gen_free(gen_opts *o, gen_job *j) {
    if (j) {
        for (int k = 0; k < j->n_d; k++) diffu_denoise_free(&j->ds[k]);
        free(j->ds);
        diffu_tokenizer_free(&j->tok);
        memset(j, 0, sizeof *j);
    }
    if (o) {
        for (int i = 0; i < o->n_prompts; i++) free(o->prompts[i]);
        free(o->prompts);
        free(o->prompt_len);
        free(o->prompt_text);
        free(o->prefill);
        memset(o, 0, sizeof *o);
    }
}
