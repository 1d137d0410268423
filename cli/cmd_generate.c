/* cmd_generate.c — `diffu generate`: denoise one or more prompts in one
 * process (coordinator/driver.h: forward -> sampler -> policy).
 * stdout: the generated ids (--emit-ids, or when the checkpoint has no
 * tokenizer) or text, one entry per (prompt, sample); stderr: per-sample
 * AR-ness and forwards, then timing. --out writes the full sequences as JSON
 * (the format of tests/ref/dream_generate_ref.py --out). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "chat.h"
#include "commands.h"
#include "denoise.h"
#include "driver.h"
#include "forward.h"
#include "tokenizer.h"

#define CMD "generate"
#define BAIL(code)      \
    do {                \
        rc = (code);    \
        goto out_args;  \
    } while (0)

static void usage(FILE *f) {
    fprintf(f,
            "usage: diffu generate --model DIR (--prompt-ids IDS | --prompt TEXT)... [options]\n"
            "  --prompt-ids 1,2,3     a prompt as token ids (repeat for a batch of prompts)\n"
            "  --prompt TEXT          a prompt as text (needs the checkpoint's tokenizer; repeatable)\n"
            "  --chat                 wrap each --prompt as the user turn of the DiffuCoder chat prompt\n"
            "  --system TEXT          system line of the chat prompt (default \"" DIFFU_CHAT_DEFAULT_SYSTEM "\")\n"
            "  --prefill TEXT         assistant prefill after the chat prompt (C escapes \\n \\t expanded)\n"
            "  --eval-prefill         the paper's prefill \"Here is the code to solve this problem:\\n```python\\n\"\n"
            "  --max-new-tokens N     generated positions (default 256)\n"
            "  --steps N              denoising steps (default: max-new-tokens)\n"
            "  --alg A                origin | maskgit_plus | topk_margin | entropy (default entropy)\n"
            "  --temperature T        0 = greedy (default 0)\n"
            "  --top-p P, --top-k K   nucleus / top-k filtering (default off)\n"
            "  --alg-temp T           sample positions from softmax(confidence / T) (default 0: top-n)\n"
            "  --eps E                timesteps linspace(1, E, steps + 1) (default 1e-3)\n"
            "  --seed S               random seed (default 0)\n"
            "  --n N                  samples per prompt (default 1)\n"
            "  --threshold TAU        Fast-dLLM confidence-threshold decoding (steps unused)\n"
            "  --factor F             Fast-dLLM factor rule (steps unused)\n"
            "  --block-length B       semi-autoregressive blocks of B generated tokens\n"
            "  --early-stop           stop once an end token is committed with nothing masked to its left\n"
            "  --end-id ID            end token for --early-stop and the text cut (repeatable; default: config\n"
            "                         eos, plus <|dlm_pad|> when the tokenizer has it)\n"
            "  --watch                live view of the canvas on a terminal (stderr)\n"
            "  --emit-ids             print generated ids (comma-separated) instead of text\n"
            "  --out FILE             write the full sequences (prompt + generated) as a JSON list\n"
            "  --threads N            threads (default: CPUs in the affinity mask)\n"
            "  --f32-weights          widen weights to fp32 at load\n"
            "  --dump-origin-uniforms FILE   (testing) the float32 uniforms alg origin consumes, in the\n"
            "                         order of tests/ref/dream_generate_ref.py --origin-uniforms\n");
}

static char *unescape(const char *s) {
    char *r = diffu_xmalloc(strlen(s) + 1), *o = r;
    for (; *s; s++) {
        if (*s == '\\' && s[1]) {
            s++;
            *o++ = *s == 'n' ? '\n' : *s == 't' ? '\t' : *s == 'r' ? '\r' : *s;
        } else {
            *o++ = *s;
        }
    }
    *o = 0;
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

static int file_exists(const char *dir, const char *name) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) == 0;
}

/* ------------------------------------------------------------ watch */

typedef struct {
    diffu_tokenizer *tok;
    diffu_text text;
    int32_t mask_id;
} watch_ctx;

static void render_run(watch_ctx *w, const int32_t *ids, int n, int is_new) {
    if (is_new) fputs("\033[1;30;42m", stderr);
    if (w->tok) {
        w->text.len = 0;
        diffu_tokenizer_decode(w->tok, ids, (size_t)n, 0, &w->text);
        fwrite(w->text.data, 1, w->text.len, stderr);
    } else {
        for (int i = 0; i < n; i++) fprintf(stderr, "%d ", ids[i]);
    }
    if (is_new) fputs("\033[0m", stderr);
}

/* Redraw all canvases: masks as shaded boxes, tokens committed in the step
 * just taken highlighted. */
static void watch_draw(watch_ctx *w, diffu_denoise **ds, int n_d, int n_samples, long step) {
    fputs("\033[H\033[2J", stderr);
    for (int k = 0; k < n_d; k++) {
        diffu_denoise *d = ds[k];
        int len, L = diffu_denoise_prompt_len(d);
        const int32_t *c = diffu_denoise_canvas(d, &len);
        const int32_t *cs = diffu_denoise_commit_steps(d);
        int last = diffu_denoise_steps_taken(d) - 1;
        fprintf(stderr, "\033[1m── prompt %d sample %d · step %d · %d masked%s\033[0m\n", k / n_samples, k % n_samples,
                diffu_denoise_steps_taken(d), diffu_denoise_masked(d), diffu_denoise_done(d) ? " · done" : "");
        int G = len - L;
        for (int j = 0; j < G;) {
            int st = cs[j] == DIFFU_STEP_MASKED ? 0 : cs[j] == last ? 2 : 1;
            int e = j + 1;
            while (e < G && (cs[e] == DIFFU_STEP_MASKED ? 0 : cs[e] == last ? 2 : 1) == st) e++;
            if (st == 0) {
                fputs("\033[2m", stderr);
                for (int q = j; q < e; q++) fputs("░", stderr);
                fputs("\033[0m", stderr);
            } else {
                render_run(w, c + L + j, e - j, st == 2);
            }
            j = e;
        }
        fputs("\n\n", stderr);
    }
    fprintf(stderr, "[step %ld]\n", step);
    fflush(stderr);
}

/* ------------------------------------------------------------ main */

int cmd_generate(int argc, char **argv) {
    enum {
        O_PROMPT_IDS = 1, O_PROMPT, O_MAXNEW, O_STEPS, O_ALG, O_TEMP, O_TOPP, O_TOPK, O_ALGTEMP, O_EPS, O_SEED, O_N,
        O_THRESH, O_FACTOR, O_BLOCK, O_EARLY, O_ENDID, O_WATCH, O_EMIT, O_OUT, O_THREADS, O_F32, O_DUMPU, O_MODEL,
        O_CHAT, O_SYSTEM, O_PREFILL, O_EVALPREFILL
    };
    static const struct option opts[] = {
        {"model", 1, 0, O_MODEL},         {"prompt-ids", 1, 0, O_PROMPT_IDS}, {"prompt", 1, 0, O_PROMPT},
        {"max-new-tokens", 1, 0, O_MAXNEW}, {"steps", 1, 0, O_STEPS},       {"alg", 1, 0, O_ALG},
        {"temperature", 1, 0, O_TEMP},    {"top-p", 1, 0, O_TOPP},          {"top-k", 1, 0, O_TOPK},
        {"alg-temp", 1, 0, O_ALGTEMP},    {"eps", 1, 0, O_EPS},             {"seed", 1, 0, O_SEED},
        {"n", 1, 0, O_N},                 {"threshold", 1, 0, O_THRESH},    {"factor", 1, 0, O_FACTOR},
        {"block-length", 1, 0, O_BLOCK},  {"early-stop", 0, 0, O_EARLY},    {"end-id", 1, 0, O_ENDID},
        {"watch", 0, 0, O_WATCH},         {"emit-ids", 0, 0, O_EMIT},       {"out", 1, 0, O_OUT},
        {"threads", 1, 0, O_THREADS},     {"f32-weights", 0, 0, O_F32},     {"dump-origin-uniforms", 1, 0, O_DUMPU},
        {"chat", 0, 0, O_CHAT},           {"system", 1, 0, O_SYSTEM},       {"prefill", 1, 0, O_PREFILL},
        {"eval-prefill", 0, 0, O_EVALPREFILL}, {"help", 0, 0, 'h'},        {0, 0, 0, 0}};
    const char *model = NULL, *out_path = NULL, *dump_path = NULL, *system = NULL;
    char *prefill = NULL;
    int chat = 0;
    int n_prompts = 0, cap_prompts = 0;
    int32_t **prompts = NULL;
    int *prompt_len = NULL;
    const char **prompt_text = NULL; /* NULL entry: given as ids */
    long long v, steps = 0, n_samples = 1;
    int watch = 0, emit_ids = 0, n_end_cli = 0;
    int32_t end_cli[DIFFU_MAX_END_IDS];
    diffu_denoise_params p;
    diffu_denoise_params_default(&p);
    p.max_new_tokens = 256;
    diffu_model_opts mo;
    diffu_model_opts_default(&mo);
    mo.quiet = 1;
    optind = 1;
    int c, rc = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case O_MODEL: model = optarg; break;
        case O_PROMPT_IDS:
        case O_PROMPT:
            if (n_prompts == cap_prompts) {
                cap_prompts = cap_prompts ? 2 * cap_prompts : 4;
                prompts = diffu_xrealloc(prompts, (size_t)cap_prompts * sizeof *prompts);
                prompt_len = diffu_xrealloc(prompt_len, (size_t)cap_prompts * sizeof *prompt_len);
                prompt_text = diffu_xrealloc(prompt_text, (size_t)cap_prompts * sizeof *prompt_text);
            }
            prompts[n_prompts] = NULL;
            prompt_len[n_prompts] = 0;
            prompt_text[n_prompts] = c == O_PROMPT ? optarg : NULL;
            if (c == O_PROMPT_IDS && parse_ids(optarg, &prompts[n_prompts], &prompt_len[n_prompts])) BAIL(2);
            n_prompts++;
            break;
        case O_MAXNEW: if (arg_int(CMD, "--max-new-tokens", optarg, 1, 1 << 20, &v)) BAIL(2); p.max_new_tokens = (int)v; break;
        case O_STEPS: if (arg_int(CMD, "--steps", optarg, 1, 1 << 24, &steps)) BAIL(2); break;
        case O_ALG:
            if ((int)(v = diffu_denoise_alg_parse(optarg)) < 0) {
                fprintf(stderr, "diffu " CMD ": --alg: '%s' is not origin, maskgit_plus, topk_margin or entropy\n", optarg);
                BAIL(2);
            }
            p.alg = (diffu_alg)v;
            break;
        case O_TEMP: if (arg_double(CMD, "--temperature", optarg, 0, 1e6, &p.temperature)) BAIL(2); break;
        case O_TOPP: if (arg_double(CMD, "--top-p", optarg, 1e-9, 1, &p.top_p)) BAIL(2); break;
        case O_TOPK: if (arg_int(CMD, "--top-k", optarg, 0, 1 << 30, &v)) BAIL(2); p.top_k = (int)v; break;
        case O_ALGTEMP: if (arg_double(CMD, "--alg-temp", optarg, 0, 1e6, &p.alg_temp)) BAIL(2); break;
        case O_EPS: if (arg_double(CMD, "--eps", optarg, 0, 0.999999, &p.eps)) BAIL(2); break;
        case O_SEED: {
            char *end;
            errno = 0;
            unsigned long long s = strtoull(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-') {
                fprintf(stderr, "diffu " CMD ": --seed: '%s' is not a non-negative integer\n", optarg);
                BAIL(2);
            }
            p.seed = s;
            break;
        }
        case O_N: if (arg_int(CMD, "--n", optarg, 1, 1 << 16, &n_samples)) BAIL(2); break;
        case O_THRESH: if (arg_double(CMD, "--threshold", optarg, 1e-9, 1, &p.threshold)) BAIL(2); break;
        case O_FACTOR: if (arg_double(CMD, "--factor", optarg, 1e-9, 1e6, &p.factor)) BAIL(2); break;
        case O_BLOCK: if (arg_int(CMD, "--block-length", optarg, 1, 1 << 20, &v)) BAIL(2); p.block_length = (int)v; break;
        case O_EARLY: p.early_stop = 1; break;
        case O_ENDID:
            if (arg_int(CMD, "--end-id", optarg, 0, 0x7fffffff, &v)) BAIL(2);
            if (n_end_cli == DIFFU_MAX_END_IDS) {
                fprintf(stderr, "diffu " CMD ": --end-id: at most %d end tokens\n", DIFFU_MAX_END_IDS);
                BAIL(2);
            }
            end_cli[n_end_cli++] = (int32_t)v;
            break;
        case O_WATCH: watch = 1; break;
        case O_EMIT: emit_ids = 1; break;
        case O_OUT: out_path = optarg; break;
        case O_THREADS: if (arg_int(CMD, "--threads", optarg, 1, 1024, &v)) BAIL(2); mo.threads = (int)v; break;
        case O_F32: mo.f32_weights = 1; break;
        case O_DUMPU: dump_path = optarg; break;
        case O_CHAT: chat = 1; break;
        case O_SYSTEM: system = optarg; break;
        case O_PREFILL: free(prefill); prefill = unescape(optarg); break;
        case O_EVALPREFILL: free(prefill); prefill = diffu_xstrdup(DIFFU_CHAT_EVAL_PREFILL); break;
        case 'h': usage(stdout); BAIL(0);
        default: usage(stderr); BAIL(2);
        }
    }
    if (optind < argc) {
        fprintf(stderr, "diffu " CMD ": unexpected argument '%s'\n", argv[optind]);
        BAIL(2);
    }
    if (!chat && (system || prefill)) {
        fprintf(stderr, "diffu " CMD ": --system / --prefill / --eval-prefill go with --chat\n");
        BAIL(2);
    }
    if (!model || !n_prompts) {
        fprintf(stderr, "diffu " CMD ": --model and at least one --prompt-ids or --prompt are required\n");
        usage(stderr);
        BAIL(2);
    }
    p.steps = steps ? (int)steps : p.max_new_tokens;

    diffu_err err;
    diffu_config cfg;
    {
        char path[4096];
        snprintf(path, sizeof path, "%s/config.json", model);
        if (diffu_config_load(path, &cfg, &err)) {
            fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
            BAIL(1);
        }
    }
    /* the tokenizer, when the checkpoint has one */
    diffu_tokenizer *tok = NULL;
    if (file_exists(model, "tokenizer.json") || file_exists(model, "vocab.json")) {
        tok = diffu_tokenizer_load(model, &err);
        if (!tok) {
            fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
            BAIL(1);
        }
        if (diffu_tokenizer_vocab_size(tok) > cfg.vocab) {
            fprintf(stderr, "diffu " CMD ": error: %s: the tokenizer has ids up to %d, beyond the model's vocab_size %d\n",
                    model, diffu_tokenizer_vocab_size(tok) - 1, cfg.vocab);
            goto out_tok;
        }
    }
    for (int i = 0; i < n_prompts; i++) {
        if (!prompt_text[i]) continue;
        if (!tok) {
            fprintf(stderr, "diffu " CMD ": error: --prompt needs a tokenizer, but %s has no tokenizer.json or "
                    "vocab.json (give --prompt-ids)\n", model);
            goto out_tok;
        }
        diffu_ids ids = {0};
        size_t tl = strlen(prompt_text[i]);
        if (chat ? diffu_chat_prompt_ids(tok, system, prompt_text[i], tl, prefill, &ids, &err)
                 : diffu_tokenizer_encode(tok, prompt_text[i], tl, &ids, &err)) {
            fprintf(stderr, "diffu " CMD ": error: --prompt: %s\n", err.msg);
            diffu_ids_free(&ids);
            goto out_tok;
        }
        prompts[i] = diffu_xmalloc((ids.len ? ids.len : 1) * sizeof(int32_t));
        if (ids.len) memcpy(prompts[i], ids.data, ids.len * sizeof(int32_t));
        prompt_len[i] = (int)ids.len;
        diffu_ids_free(&ids);
    }
    p.mask_id = cfg.mask_id;
    if (p.mask_id < 0) {
        fprintf(stderr, "diffu " CMD ": error: %s/config.json has no mask_token_id\n", model);
        goto out_tok;
    }
    if (n_end_cli) {
        memcpy(p.end_ids, end_cli, sizeof end_cli);
        p.n_end = n_end_cli;
    } else {
        if (cfg.eos_id >= 0) p.end_ids[p.n_end++] = cfg.eos_id;
        if (tok) {
            int32_t dp = diffu_tokenizer_special(tok)->dlm_pad;
            if (dp >= 0 && dp < cfg.vocab && dp != cfg.eos_id) p.end_ids[p.n_end++] = dp;
        }
        if (p.early_stop && !p.n_end) {
            fprintf(stderr, "diffu " CMD ": error: --early-stop: %s/config.json has no eos_token_id; give --end-id\n",
                    model);
            goto out_tok;
        }
    }
    if (diffu_denoise_params_check(&p, cfg.vocab, &err)) {
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        goto out_tok;
    }

    /* canvases, then the model with a plan that fits all of them at once */
    int n_d = n_prompts * (int)n_samples;
    diffu_denoise **ds = diffu_xcalloc((size_t)n_d, sizeof *ds);
    diffu_driver_plan plan = {n_d, 0, 0, 0};
    for (int i = 0; i < n_prompts; i++)
        for (int s = 0; s < n_samples; s++) {
            diffu_denoise *d = diffu_denoise_create(&p, cfg.vocab, prompts[i], prompt_len[i], (uint32_t)i, (uint32_t)s, &err);
            if (!d) {
                fprintf(stderr, "diffu " CMD ": error: prompt %d: %s\n", i, err.msg);
                goto out_ds;
            }
            ds[i * n_samples + s] = d;
            int len = prompt_len[i] + p.max_new_tokens;
            plan.max_tokens += len;
            plan.max_seq = len > plan.max_seq ? len : plan.max_seq;
            plan.max_rows += p.max_new_tokens;
        }
    if (plan.max_seq > cfg.max_pos)
        DLOG_WARN("a canvas of %d tokens is longer than max_position_embeddings %d", plan.max_seq, cfg.max_pos);
    mo.max_tokens = plan.max_tokens;
    mo.max_seq = plan.max_seq;
    mo.max_rows = plan.max_rows;
    mo.max_seqs = plan.max_canvases;
    diffu_model *m = NULL;
    double t_load = diffu_now();
    if (diffu_model_load(model, &mo, &m, &err)) {
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        goto out_ds;
    }
    t_load = diffu_now() - t_load;
    diffu_driver *dr = diffu_driver_create(m, &plan, &err);
    if (!dr) {
        fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
        goto out_model;
    }
    for (int k = 0; k < n_d; k++)
        if (diffu_driver_add(dr, ds[k], &err)) {
            fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
            goto out_driver;
        }

    FILE *dump = NULL;
    float *ubuf = NULL;
    if (dump_path) {
        dump = fopen(dump_path, "wb");
        if (!dump) {
            fprintf(stderr, "diffu " CMD ": error: %s: cannot create: %s\n", dump_path, strerror(errno));
            goto out_driver;
        }
        ubuf = diffu_xmalloc((size_t)p.max_new_tokens * sizeof *ubuf);
    }
    if (watch && !isatty(2)) {
        DLOG_WARN("--watch: stderr is not a terminal; no live view");
        watch = 0;
    }
    watch_ctx wc = {tok, {0}, p.mask_id};

    double t0 = diffu_now();
    while (diffu_driver_active(dr)) {
        if (dump)
            for (int k = 0; k < n_d; k++) {
                int nu = diffu_denoise_origin_uniforms(ds[k], ubuf);
                if (nu && fwrite(ubuf, sizeof *ubuf, (size_t)nu, dump) != (size_t)nu) {
                    fprintf(stderr, "diffu " CMD ": error: %s: write failed\n", dump_path);
                    goto out_dump;
                }
            }
        if (diffu_driver_step(dr, &err)) {
            fprintf(stderr, "diffu " CMD ": error: %s\n", err.msg);
            goto out_dump;
        }
        if (watch) watch_draw(&wc, ds, n_d, (int)n_samples, diffu_driver_get_stats(dr)->steps);
    }
    double t_gen = diffu_now() - t0;

    /* results: stdout */
    diffu_text text = {0};
    for (int k = 0; k < n_d; k++) {
        int len, L = diffu_denoise_prompt_len(ds[k]);
        const int32_t *cv = diffu_denoise_canvas(ds[k], &len);
        if (n_d > 1 && !emit_ids && tok) printf("=== prompt %d sample %d ===\n", k / (int)n_samples, k % (int)n_samples);
        if (emit_ids || !tok) {
            for (int j = L; j < len; j++) printf("%s%d", j > L ? "," : "", cv[j]);
            putchar('\n');
        } else if (!n_end_cli) {
            /* DiffuCoder's post-processing (model/chat.h): cut at the first <|endoftext|> /
             * <|dlm_pad|>, drop a trailing <|im_end|> */
            text.len = 0;
            diffu_chat_reply(tok, cv + L, (size_t)(len - L), &text);
            fwrite(text.data ? text.data : "", 1, text.len, stdout);
            putchar('\n');
        } else {
            /* the same with the --end-id tokens */
            int n = diffu_denoise_answer_len(ds[k]);
            if (n > 0) {
                int32_t last = cv[L + n - 1];
                for (int e = 0; e < p.n_end; e++)
                    if (last == p.end_ids[e]) {
                        n--;
                        break;
                    }
            }
            int32_t im_end = diffu_tokenizer_special(tok)->im_end;
            if (n > 0 && im_end >= 0 && cv[L + n - 1] == im_end) n--;
            text.len = 0;
            diffu_tokenizer_decode(tok, cv + L, (size_t)n, 0, &text);
            fwrite(text.data ? text.data : "", 1, text.len, stdout);
            putchar('\n');
        }
    }
    fflush(stdout);
    diffu_text_free(&text);
    if (out_path) {
        FILE *f = fopen(out_path, "w");
        if (!f) {
            fprintf(stderr, "diffu " CMD ": error: %s: cannot create: %s\n", out_path, strerror(errno));
            goto out_dump;
        }
        fputc('[', f);
        for (int k = 0; k < n_d; k++) {
            int len;
            const int32_t *cv = diffu_denoise_canvas(ds[k], &len);
            fprintf(f, "%s[", k ? ", " : "");
            for (int j = 0; j < len; j++) fprintf(f, "%s%d", j ? ", " : "", cv[j]);
            fputc(']', f);
        }
        fputs("]\n", f);
        if (fclose(f) != 0) {
            fprintf(stderr, "diffu " CMD ": error: %s: write failed\n", out_path);
            goto out_dump;
        }
    }
    /* AR-ness, forwards and timing: stderr */
    long gen_tokens = 0;
    for (int k = 0; k < n_d; k++) {
        diffu_arness a;
        diffu_denoise_arness(ds[k], &a);
        gen_tokens += p.max_new_tokens;
        fprintf(stderr,
                "[prompt %d sample %d] %d tokens, %d steps, %d forwards (%.3f per token)%s; AR-ness over %d: "
                "local@1-4 %.3f %.3f %.3f %.3f  global@1-4 %.3f %.3f %.3f %.3f\n",
                k / (int)n_samples, k % (int)n_samples, p.max_new_tokens, diffu_denoise_steps_taken(ds[k]),
                diffu_denoise_forwards(ds[k]), (double)diffu_denoise_forwards(ds[k]) / p.max_new_tokens,
                diffu_denoise_stopped_early(ds[k]) ? ", early stop" : "", a.n, a.local[0], a.local[1], a.local[2],
                a.local[3], a.global[0], a.global[1], a.global[2], a.global[3]);
    }
    const diffu_driver_stats *st = diffu_driver_get_stats(dr);
    fprintf(stderr,
            "[timing] load %.2f s; generate %.3f s: %ld steps, %ld forwards (%.1f ms each), %ld lm_head rows, "
            "sampler %.1f ms, policy %.1f ms; %.1f generated tokens/s\n",
            t_load, t_gen, st->steps, st->forwards, st->forwards ? 1e3 * st->t_forward / st->forwards : 0.0, st->rows,
            1e3 * st->t_sample, 1e3 * st->t_policy, t_gen > 0 ? gen_tokens / t_gen : 0.0);
    rc = 0;
out_dump:
    if (dump) fclose(dump);
    free(ubuf);
    diffu_text_free(&wc.text);
out_driver:
    diffu_driver_free(&dr);
out_model:
    diffu_model_free(m);
out_ds:
    for (int k = 0; k < n_d; k++) diffu_denoise_free(&ds[k]);
    free(ds);
out_tok:
    diffu_tokenizer_free(&tok);
out_args:
    for (int i = 0; i < n_prompts; i++) free(prompts[i]);
    free(prompts);
    free(prompt_len);
    free(prompt_text);
    free(prefill);
    return rc;
}
