/* fuzz_jobin.c — the request file of a batch job (coordinator/job_input.c):
 * JSONL lines of every field and type, BOM / CRLF / blank lines, and gzip
 * (any number of members, truncated or corrupt). An input that starts with the
 * gzip magic is written as in.jsonl.gz, else as in.jsonl. The options are
 * those of `diffu jobcheck` without a model (vocab 151669, the byte stand-in
 * tokenizer, --max-context 4096) with a 64 KiB line limit, so "line too long"
 * is reachable. Oracles: a file-level refusal is one line; every reject has a
 * line number inside the file, a one-line reason, and formats and writes;
 * every accepted request has an id without control characters, a prompt, a
 * sample count in [1, 65536], parameters that pass the policy's own check,
 * and is found by its id. */
#include "denoise.h"
#include "fuzz_common.h"
#include "job_input.h"
#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_quiet();
    int gz = size >= 2 && data[0] == 0x1f && data[1] == 0x8b;
    const char *p = fz_write_one(gz ? "in.jsonl.gz" : "in.jsonl", data, size);
    diffu_jobin_opts o;
    diffu_jobin_opts_default(&o);
    o.vocab = 151669;
    o.defaults.mask_id = 151666;
    o.count_tokens = diffu_jobin_count_bytes;
    o.max_context = 4096;
    o.max_line = 64 << 10;
    diffu_err err;
    err.msg[0] = 0;
    diffu_jobin *in = diffu_jobin_open(p, &o, &err);
    if (!in) {
        FZ_CHECK(err.msg[0] && !strchr(err.msg, '\n'), "a refusal without a one-line message");
        fz_clean();
        return 0;
    }
    const diffu_jobin_stats *st = diffu_jobin_get_stats(in);
    char line[4096];
    for (int i = 0; i < diffu_jobin_n_rejects(in); i++) {
        const diffu_jobin_reject *r = diffu_jobin_get_reject(in, i);
        FZ_CHECK(r->line >= 1 && r->line <= st->lines + 1, "reject line %d of %d", r->line, st->lines);
        FZ_CHECK(r->reason && r->reason[0] && !strchr(r->reason, '\n'), "reject without a one-line reason");
        FZ_CHECK(r->raw_len <= r->raw_total, "raw %zu > total %zu", r->raw_len, r->raw_total);
        diffu_jobin_format_reject(in, i, line, sizeof line);
        FZ_CHECK(!strchr(line, '\n'), "formatted reject with a newline: %s", line);
    }
    if (diffu_jobin_n_rejects(in))
        FZ_CHECK(diffu_jobin_write_rejects(in, fz_path(1, "rejects.jsonl"), &err) == 0, "write_rejects: %s", err.msg);
    diffu_text t = {0};
    long samples = 0;
    for (int i = 0; i < diffu_jobin_count(in); i++) {
        const diffu_jobin_req *r = diffu_jobin_get(in, i);
        FZ_CHECK(r->id && r->id_len > 0 && r->id_len <= DIFFU_JOBIN_MAX_ID && strlen(r->id) == r->id_len, "bad id");
        for (size_t k = 0; k < r->id_len; k++) FZ_CHECK((unsigned char)r->id[k] >= 0x20, "control character in an id");
        FZ_CHECK(diffu_jobin_find(in, r->id, r->id_len) == r, "find(%s) misses", r->id);
        FZ_CHECK(r->n >= 1 && r->n <= DIFFU_JOBIN_MAX_N, "n %d", r->n);
        FZ_CHECK(r->index == i && r->line >= 1 && r->line <= st->lines, "index %d line %d", r->index, r->line);
        FZ_CHECK(r->prompt != NULL, "no prompt");
        FZ_CHECK(diffu_denoise_params_check(&r->params, o.vocab, &err) == 0, "accepted params fail the check: %s", err.msg);
        FZ_CHECK(r->prompt_tokens >= 0 && r->prompt_tokens + r->params.max_new_tokens <= o.max_context,
                 "prompt of %d tokens + %d accepted over the context %d", r->prompt_tokens, r->params.max_new_tokens,
                 o.max_context);
        samples += r->n;
        t.len = 0;
        diffu_jobin_describe(r, &t);
        diffu_jobin_params_json(r, &t);
        diffu_jobin_prompt_text(r, &t);
    }
    FZ_CHECK(samples == st->samples, "samples %ld vs stats %ld", samples, st->samples);
    diffu_text_free(&t);
    diffu_jobin_free(&in);
    fz_clean();
    return 0;
}
