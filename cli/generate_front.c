/* generate_front.c — see generate.h: the set-up (config, tokenizer, prompts
 * -> policies) and the results that both back ends share (the options:
 * cli/generate_args.c). */
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
