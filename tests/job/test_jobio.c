/* test_jobio.c — unit tests of the job I/O modules (coordinator/job_*.h).
 *
 * usage: test_jobio WORK_DIR
 *
 * Asserts, against values written out by hand here (the independent
 * reference) and against zlib / our JSON reader reading back what was written:
 *   input:  defaults and per-request overrides merged into diffu_denoise_params
 *           (steps following max_new_tokens), n, chat system/prefill
 *           resolution (default, assistant message, true/false/null), integer
 *           ids, rng_key = FNV-1a(id), find(), metadata kept, the count
 *           callback seeing the request and the context limit, the rejects file;
 *   output: the three formats field by field, code extraction, gzip records as
 *           separate members read back by the streaming reader, a second
 *           writer refused (lock), duplicate (id, sample) refused, resume after
 *           reopen (done set), format mismatch refused, overwrite, a torn plain
 *           tail dropped and saved to .torn, EFBIG from RLIMIT_FSIZE (plain and
 *           gzip): the file cut back to its last complete record, later writes
 *           refused, close reporting the failure; four threads writing 200
 *           records into one gzip file: each record once, whole;
 *   util:   the map through growth, base64, UTF-8 validation, edit distance.
 * Prints "N passed, M failed"; exit 1 on any failure. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chat.h"
#include "job_input.h"
#include "job_output.h"
#include "job_resume.h"
#include "job_util.h"
#include "json.h"

#include "check.h" /* tests/common: CHECK, n_pass, n_fail, check_report */

static char work[2048];

static const char *wpath(const char *name) {
    static char buf[8][4096];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", work, name);
    return buf[k];
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(2);
    }
    fwrite(text, 1, strlen(text), f);
    fclose(f);
}

static char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    size_t r;
    while ((r = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 >= cap) b = realloc(b, cap *= 2);
    }
    fclose(f);
    b[n] = 0;
    if (len) *len = n;
    return b;
}

static uint64_t file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : (uint64_t)-1;
}

/* decompress a whole file with the module's reader (gz members concatenated) */
static char *inflate_file(const char *path, size_t *len, int *members) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) return NULL;
    diffu_job_util_reader *r = diffu_job_util_reader_new(fd, 1, path);
    diffu_text t = {0};
    char buf[4096];
    diffu_err e;
    long n;
    *members = 0;
    while ((n = diffu_job_util_reader_read(r, buf, sizeof buf, &e)) > 0 || (n == 0 && diffu_job_util_reader_member_ended(r))) {
        diffu_text_append(&t, buf, (size_t)n);
        if (diffu_job_util_reader_member_ended(r)) ++*members;
    }
    if (n < 0) fprintf(stderr, "inflate_file: %s\n", e.msg);
    diffu_job_util_reader_free(&r);
    close(fd);
    *len = t.len;
    if (!t.data) diffu_text_append(&t, "", 0);
    return t.data;
}

/* the i-th line of text as a parsed JSON doc */
static diffu_json_doc *line_json(const char *text, int i) {
    const char *p = text;
    for (int k = 0; k < i && p; k++) {
        p = strchr(p, '\n');
        if (p) p++;
    }
    if (!p || !*p) return NULL;
    const char *e = strchr(p, '\n');
    diffu_err err;
    return diffu_json_parse(p, e ? (size_t)(e - p) : strlen(p), &err);
}

static const char *jstr(const diffu_json *o, const char *k) {
    const diffu_json *v = diffu_json_get(o, k);
    return v && v->type == DJ_STR ? v->u.str.s : NULL;
}
static double jnum(const diffu_json *o, const char *k) {
    const diffu_json *v = diffu_json_get(o, k);
    return v && v->type == DJ_NUM ? v->u.num.d : -12345;
}

/* ------------------------------------------------------------ input */

static int count_calls;
static int count_cb(void *user, const diffu_jobin_req *r, diffu_err *err) {
    count_calls++;
    (void)user;
    if (r->prompt_len >= 3 && !memcmp(r->prompt, "ERR", 3)) return diffu_err_set(err, "tokenizer exploded");
    return (int)r->prompt_len; /* one token per byte of the prompt / user message */
}

static void test_input(void) {
    const char *in_path = wpath("in.jsonl");
    write_file(in_path,
               "{\"id\": \"p1\", \"prompt\": \"def f():\\n\"}\n"
               "{\"id\": \"p2\", \"prompt\": \"xx\", \"max_new_tokens\": 64, \"temperature\": 0.4, \"top_p\": 0.95,"
               " \"top_k\": 20, \"alg\": \"maskgit_plus\", \"alg_temp\": 0.5, \"seed\": 12345678901, \"n\": 3}\n"
               "{\"id\": \"p3\", \"prompt\": \"yy\", \"steps\": 32, \"block_length\": 32, \"threshold\": null}\n"
               "{\"id\": 42, \"messages\": [{\"role\": \"user\", \"content\": \"  write it  \"}]}\n"
               "{\"id\": \"c2\", \"messages\": [{\"role\": \"system\", \"content\": \"SYS\"}, {\"role\": \"user\", "
               "\"content\": \"u\"}, {\"role\": \"assistant\", \"content\": \"AS\"}]}\n"
               "{\"id\": \"c3\", \"messages\": [{\"role\": \"user\", \"content\": \"u\"}], \"prefill\": true}\n"
               "{\"id\": \"c4\", \"messages\": [{\"role\": \"user\", \"content\": \"u\"}], \"prefill\": null}\n"
               "{\"id\": \"c5\", \"messages\": [{\"role\": \"user\", \"content\": \"u\"}], \"prefill\": \"PF\"}\n"
               "{\"task_id\": \"HumanEval/0\", \"prompt\": \"def g():\\n\", \"entry_point\": \"g\", \"test\": \"T\","
               " \"canonical_solution\": \"  pass\\n\", \"atol\": 0}\n"
               "{\"id\": \"7\", \"prompt\": \"s7\"}\n"
               "{\"id\": 7, \"prompt\": \"dup of string 7\"}\n"
               "{\"id\": \"long\", \"prompt\": \"0123456789012345678901234567890123456789\"}\n"
               "{\"id\": \"err\", \"prompt\": \"ERR\"}\n");
    diffu_jobin_opts o;
    diffu_jobin_opts_default(&o);
    o.vocab = 1000;
    o.defaults.mask_id = 999;
    o.defaults.max_new_tokens = 128;
    o.defaults.temperature = 0.2;
    o.n = 2;
    o.prefill = "DEFAULT-PREFILL";
    o.count_tokens = count_cb;
    o.max_context = 128 + 30; /* "long" (40 bytes) does not fit with 128 new tokens */
    diffu_err err;
    diffu_jobin *in = diffu_jobin_open(in_path, &o, &err);
    CHECK(in != NULL, "open: %s", err.msg);
    if (!in) return;
    CHECK(diffu_jobin_count(in) == 10, "accepted %d", diffu_jobin_count(in));
    CHECK(diffu_jobin_n_rejects(in) == 3, "rejects %d", diffu_jobin_n_rejects(in));
    CHECK(count_calls == 12, "count callback called %d times (once per otherwise valid line)", count_calls);

    const diffu_jobin_req *r = diffu_jobin_find(in, "p1", 2);
    CHECK(r && r->line == 1 && r->index == 0 && r->kind == DIFFU_JOBIN_PROMPT, "p1");
    CHECK(r && r->params.max_new_tokens == 128 && r->params.steps == 128, "p1 steps follow max_new_tokens: %d",
          r ? r->params.steps : -1);
    CHECK(r && r->params.temperature == 0.2 && r->n == 2 && r->params.alg == DIFFU_ALG_ENTROPY, "p1 defaults");
    CHECK(r && r->prompt_len == 9 && !memcmp(r->prompt, "def f():\n", 9) && r->prompt_tokens == 9, "p1 prompt");
    CHECK(r && r->rng_key == diffu_job_util_fnv1a("p1", 2) && r->rng_key == 0xa04ed67au, "p1 rng_key %08x",
          r ? r->rng_key : 0);
    CHECK(r && !r->meta && !r->id_is_int && !strcmp(r->id_field, "id") && r->prefill == NULL && r->system == NULL,
          "p1 other fields");

    r = diffu_jobin_find(in, "p2", 2);
    CHECK(r && r->params.max_new_tokens == 64 && r->params.steps == 64 && r->params.temperature == 0.4 &&
              r->params.top_p == 0.95 && r->params.top_k == 20 && r->params.alg == DIFFU_ALG_MASKGIT_PLUS &&
              r->params.alg_temp == 0.5 && r->params.seed == 12345678901ull && r->n == 3,
          "p2 overrides");
    r = diffu_jobin_find(in, "p3", 2);
    CHECK(r && r->params.steps == 32 && r->params.block_length == 32 && r->params.max_new_tokens == 128 &&
              r->params.threshold == 0,
          "p3 steps/block_length/null threshold");

    r = diffu_jobin_find(in, "42", 2);
    CHECK(r && r->id_is_int && r->kind == DIFFU_JOBIN_CHAT && r->prompt_len == 12 &&
              !strcmp(r->system, DIFFU_CHAT_DEFAULT_SYSTEM) && r->prefill && !strcmp(r->prefill, "DEFAULT-PREFILL"),
          "42: chat with the default system and prefill");
    r = diffu_jobin_find(in, "c2", 2);
    CHECK(r && !strcmp(r->system, "SYS") && r->prefill && !strcmp(r->prefill, "AS") && r->prompt_len == 1,
          "c2: system message and assistant prefill");
    r = diffu_jobin_find(in, "c3", 2);
    CHECK(r && r->prefill && !strcmp(r->prefill, DIFFU_CHAT_EVAL_PREFILL), "c3: prefill true = the eval prefill");
    r = diffu_jobin_find(in, "c4", 2);
    CHECK(r && r->prefill == NULL, "c4: prefill null = none");
    r = diffu_jobin_find(in, "c5", 2);
    CHECK(r && r->prefill && !strcmp(r->prefill, "PF"), "c5: prefill string");
    r = diffu_jobin_find(in, "HumanEval/0", 11);
    CHECK(r && !strcmp(r->id_field, "task_id") && r->meta &&
              !strcmp(r->meta, "{\"entry_point\":\"g\",\"test\":\"T\",\"canonical_solution\":\"  pass\\n\",\"atol\":0}"),
          "HumanEval metadata kept: %s", r && r->meta ? r->meta : "(none)");
    r = diffu_jobin_find(in, "7", 1);
    CHECK(r && !r->id_is_int && r->line == 10, "string id 7");
    CHECK(diffu_jobin_get_stats(in)->samples == 2 + 3 + 2 + 2 + 2 + 2 + 2 + 2 + 2 + 2, "samples %ld",
          diffu_jobin_get_stats(in)->samples);

    const diffu_jobin_reject *j = diffu_jobin_get_reject(in, 0);
    CHECK(j->line == 11 && j->field && !strcmp(j->field, "id") && strstr(j->reason, "duplicate id '7' (first on line 10)"),
          "integer 7 duplicates string \"7\": %s", j->reason);
    j = diffu_jobin_get_reject(in, 1);
    CHECK(j->line == 12 && !strcmp(j->field, "prompt") &&
              strstr(j->reason, "too long for the model's context: 40 prompt tokens + max_new_tokens 128 = 168 > 158"),
          "context: %s", j->reason);
    j = diffu_jobin_get_reject(in, 2);
    CHECK(j->line == 13 && strstr(j->reason, "cannot count its tokens: tokenizer exploded"), "count error: %s",
          j->reason);

    /* the rejects file: one JSON object per reject */
    const char *rj = wpath("in.rejects.jsonl");
    CHECK(diffu_jobin_write_rejects(in, rj, &err) == 0, "write rejects: %s", err.msg);
    char *txt = read_file(rj, NULL);
    diffu_json_doc *d = txt ? line_json(txt, 1) : NULL;
    CHECK(d != NULL, "rejects line 2 parses");
    if (d) {
        const diffu_json *o2 = diffu_json_root(d);
        CHECK(jnum(o2, "line") == 12 && !strcmp(jstr(o2, "field"), "prompt") && !strcmp(jstr(o2, "id"), "long") &&
                  !strcmp(jstr(o2, "raw"), "{\"id\": \"long\", \"prompt\": \"0123456789012345678901234567890123456789\"}") &&
                  !strcmp(jstr(o2, "file"), in_path),
              "rejects record");
        diffu_json_free(d);
    }
    free(txt);
    /* describe / params: parse back */
    diffu_text t = {0};
    diffu_jobin_describe(diffu_jobin_find(in, "p2", 2), &t);
    d = diffu_json_parse(t.data, t.len, &err);
    CHECK(d != NULL, "describe parses: %s", t.data);
    if (d) {
        const diffu_json *p = diffu_json_get(diffu_json_root(d), "params");
        CHECK(p && jnum(p, "top_p") == 0.95 && jnum(p, "seed") == 12345678901.0 && !strcmp(jstr(p, "alg"), "maskgit_plus") &&
                  jnum(p, "n") == 3,
              "describe params: %s", t.data);
        diffu_json_free(d);
    }
    diffu_text_free(&t);
    diffu_jobin_free(&in);
    CHECK(in == NULL, "free nulls");

    /* no rejects: a stale rejects file is removed */
    write_file(in_path, "{\"id\": \"a\", \"prompt\": \"x\"}\n");
    o.count_tokens = NULL;
    in = diffu_jobin_open(in_path, &o, &err);
    CHECK(in && diffu_jobin_n_rejects(in) == 0 && diffu_jobin_get(in, 0)->prompt_tokens == -1, "clean file");
    CHECK(in && diffu_jobin_write_rejects(in, rj, &err) == 0 && file_size(rj) == (uint64_t)-1, "stale rejects removed");
    diffu_jobin_free(&in);

    /* bad defaults are a file-level error */
    o.defaults.top_p = 2;
    in = diffu_jobin_open(in_path, &o, &err);
    CHECK(!in && strstr(err.msg, "default parameters: top_p"), "bad defaults: %s", err.msg);
}

/* ------------------------------------------------------------ output */

static diffu_jobin *make_requests(void) {
    const char *p = wpath("reqs.jsonl");
    write_file(p, "{\"id\": \"r0\", \"prompt\": \"def f():\\n\", \"entry_point\": \"f\"}\n"
                  "{\"id\": 5, \"prompt\": \"def g():\\n\", \"n\": 3}\n"
                  "{\"id\": \"c\", \"messages\": [{\"role\": \"user\", \"content\": \"q\"}], \"prefill\": true}\n");
    diffu_jobin_opts o;
    diffu_jobin_opts_default(&o);
    o.vocab = 100;
    o.defaults.mask_id = 99;
    diffu_err err;
    diffu_jobin *in = diffu_jobin_open(p, &o, &err);
    if (!in) {
        fprintf(stderr, "make_requests: %s\n", err.msg);
        exit(2);
    }
    return in;
}

static diffu_jobout_rec mkrec(const diffu_jobin_req *r, int sample, const char *comp) {
    static diffu_arness a = {10, {1, 0.5, 0.25, 0.125}, {1, 1, 1, 1}};
    static const int32_t pid[] = {1, 2, 3}, gid[] = {7, 8};
    diffu_jobout_rec rec = {r, sample, comp, strlen(comp), DIFFU_FINISH_STOP, 3, 2, 16, 15, 1.23456, &a,
                            pid, 3, gid, 2};
    return rec;
}

static void test_extract(void) {
    size_t s;
    const char *t = "x = 1\n```\nmore";
    size_t n = diffu_jobout_extract_code("Here:\n```python\n", t, strlen(t), &s);
    CHECK(s == 0 && n == 6, "open fence in prefill: %zu %zu", s, n);
    t = "Sure.\n```python\ndef f():\n    return 1\n```\ntext\n```\nsecond\n```\n";
    n = diffu_jobout_extract_code(NULL, t, strlen(t), &s);
    CHECK(n == 22 && !memcmp(t + s, "def f():\n    return 1\n", 22), "first block: %.*s", (int)n, t + s);
    t = "def f():\n    pass\n";
    n = diffu_jobout_extract_code("no fence\n", t, strlen(t), &s);
    CHECK(s == 0 && n == strlen(t), "no fence: all");
    t = "```py\nunterminated";
    n = diffu_jobout_extract_code(NULL, t, strlen(t), &s);
    CHECK(s == 6 && n == 12, "unterminated block: %zu %zu", s, n);
}

static void test_encode(diffu_jobin *in) {
    diffu_jobout_opts o;
    diffu_jobout_opts_default(&o);
    diffu_text t = {0};
    diffu_err err;
    /* diffu format, ids and meta */
    o.emit_ids = 1;
    o.keep_meta = 1;
    diffu_jobout_rec rec = mkrec(diffu_jobin_find(in, "r0", 2), 0, "    return \"\xc3\xa9\"\n\xff");
    diffu_jobout_encode(&o, &rec, &t);
    CHECK(t.len && t.data[t.len - 1] == '\n' && !memchr(t.data, '\n', t.len - 1), "one line");
    diffu_json_doc *d = diffu_json_parse(t.data, t.len, &err);
    CHECK(d != NULL, "diffu record parses: %s", err.msg);
    if (d) {
        const diffu_json *o2 = diffu_json_root(d);
        CHECK(!strcmp(jstr(o2, "id"), "r0") && jnum(o2, "sample") == 0 &&
                  !strcmp(jstr(o2, "completion"), "    return \"\xc3\xa9\"\n\xef\xbf\xbd") &&
                  !strcmp(jstr(o2, "finish_reason"), "stop") && jnum(o2, "prompt_tokens") == 3 &&
                  jnum(o2, "generated_tokens") == 2 && jnum(o2, "steps") == 16 && jnum(o2, "forwards") == 15 &&
                  jnum(o2, "seconds") == 1.235,
              "diffu fields: %s", t.data);
        const diffu_json *a = diffu_json_get(o2, "arness");
        CHECK(a && jnum(a, "n") == 10 && diffu_json_get(a, "local")->u.kids.items[3]->u.num.d == 0.125, "arness");
        const diffu_json *m = diffu_json_get(o2, "meta");
        CHECK(m && !strcmp(jstr(m, "entry_point"), "f"), "meta");
        const diffu_json *g = diffu_json_get(o2, "generated_ids");
        CHECK(g && g->u.kids.n == 2 && g->u.kids.items[1]->u.num.i == 8, "generated_ids");
        const diffu_json *p = diffu_json_get(o2, "params");
        CHECK(p && jnum(p, "max_new_tokens") == 256 && jnum(p, "n") == 1, "params");
        diffu_json_free(d);
    }
    /* integer id stays an integer in diffu and humaneval, a string in evalplus */
    t.len = 0;
    o.emit_ids = 0;
    rec = mkrec(diffu_jobin_find(in, "5", 1), 2, "  return 0\n");
    diffu_jobout_encode(&o, &rec, &t);
    CHECK(!strncmp(t.data, "{\"id\":5,\"sample\":2,", 19), "int id: %s", t.data);
    o.format = DIFFU_JOBOUT_HUMANEVAL;
    t.len = 0;
    diffu_jobout_encode(&o, &rec, &t);
    CHECK(!strcmp(t.data, "{\"task_id\":5,\"sample\":2,\"completion\":\"  return 0\\n\"}\n"), "humaneval: %s", t.data);
    o.format = DIFFU_JOBOUT_EVALPLUS;
    t.len = 0;
    diffu_jobout_encode(&o, &rec, &t);
    CHECK(!strcmp(t.data, "{\"task_id\":\"5\",\"sample\":2,\"completion\":\"  return 0\\n\"}\n"), "evalplus raw: %s",
          t.data);
    /* chat requests: the extracted code, as "solution" for evalplus */
    rec = mkrec(diffu_jobin_find(in, "c", 1), 0, "def f():\n    return 1\n```\nExplanation.");
    t.len = 0;
    diffu_jobout_encode(&o, &rec, &t);
    CHECK(!strcmp(t.data, "{\"task_id\":\"c\",\"sample\":0,\"solution\":\"def f():\\n    return 1\\n\"}\n"),
          "evalplus chat: %s", t.data);
    o.format = DIFFU_JOBOUT_HUMANEVAL;
    t.len = 0;
    diffu_jobout_encode(&o, &rec, &t);
    CHECK(!strcmp(t.data, "{\"task_id\":\"c\",\"sample\":0,\"completion\":\"def f():\\n    return 1\\n\"}\n"),
          "humaneval chat: %s", t.data);
    diffu_text_free(&t);
    CHECK(diffu_jobout_format_parse("evalplus") == 1 && diffu_jobout_format_parse("json") == -1, "format names");
}

static void test_writer(diffu_jobin *in, int gz) {
    const char *path = wpath(gz ? "out.jsonl.gz" : "out.jsonl");
    unlink(path);
    diffu_jobout_opts o;
    diffu_jobout_opts_default(&o);
    diffu_err err;
    diffu_jobout *out = diffu_jobout_open(path, &o, &err);
    CHECK(out != NULL, "open: %s", err.msg);
    if (!out) return;
    const diffu_jobin_req *r0 = diffu_jobin_find(in, "r0", 2), *r5 = diffu_jobin_find(in, "5", 1);
    diffu_jobout_rec rec = mkrec(r0, 0, "A\n");
    CHECK(diffu_jobout_write(out, &rec, &err) == 0, "write: %s", err.msg);
    rec = mkrec(r5, 1, "B\n");
    CHECK(diffu_jobout_write(out, &rec, &err) == 0, "write: %s", err.msg);
    CHECK(diffu_jobout_write(out, &rec, &err) == -1 && strstr(err.msg, "id '5' sample 1 is already in the file"),
          "duplicate refused: %s", err.msg);
    CHECK(diffu_jobout_done(out, "5", 1, 1) && !diffu_jobout_done(out, "5", 1, 0), "done set");
    /* a second writer on the same file is refused */
    diffu_jobout *o2 = diffu_jobout_open(path, &o, &err);
    CHECK(!o2 && strstr(err.msg, "another process is writing this file"), "lock: %s", err.msg);
    uint64_t sz = diffu_jobout_size(out);
    CHECK(diffu_jobout_sync(out) == 0, "sync");
    CHECK(diffu_jobout_close(&out, &err) == 0 && !out, "close: %s", err.msg);
    CHECK(file_size(path) == sz, "size %llu", (unsigned long long)sz);
    if (gz) {
        size_t n = 0;
        int members = 0;
        char *txt = inflate_file(path, &n, &members);
        CHECK(txt && members == 3, "an empty first member, then one member per record: %d", members);
        diffu_json_doc *d = txt ? line_json(txt, 1) : NULL;
        CHECK(d && !strcmp(jstr(diffu_json_root(d), "completion"), "B\n"), "second record");
        diffu_json_free(d);
        free(txt);
    }
    /* reopen: resumes */
    out = diffu_jobout_open(path, &o, &err);
    CHECK(out && diffu_jobout_resume_report(out)->records == 2 && diffu_jobout_done(out, "r0", 2, 0) &&
              diffu_jobout_done(out, "5", 1, 1) && !diffu_jobout_done(out, "5", 1, 2),
          "resume: %s", out ? "" : err.msg);
    rec = mkrec(r5, 2, "C\n");
    CHECK(out && diffu_jobout_write(out, &rec, &err) == 0, "append after resume");
    diffu_jobout_close(&out, &err);
    /* another format is refused */
    o.format = DIFFU_JOBOUT_HUMANEVAL;
    out = diffu_jobout_open(path, &o, &err);
    CHECK(!out && strstr(err.msg, "another --format than humaneval"), "format mismatch: %s", err.msg);
    o.format = DIFFU_JOBOUT_DIFFU;

    if (!gz) {
        /* a torn plain tail: dropped, saved, and the next record follows the last good one */
        uint64_t good = file_size(path);
        FILE *f = fopen(path, "ab");
        fputs("{\"id\":\"r0\",\"sample\":7,\"compl", f);
        fclose(f);
        char torn[4200];
        snprintf(torn, sizeof torn, "%s.torn", path);
        unlink(torn);
        out = diffu_jobout_open(path, &o, &err);
        const diffu_jobresume_report *rp = out ? diffu_jobout_resume_report(out) : NULL;
        CHECK(rp && rp->dropped_bytes == 28 && rp->good_bytes == good && rp->records == 3 && rp->repaired &&
                  !strcmp(rp->saved_to, torn) && strstr(rp->dropped_what, "a partial last line of 28 bytes"),
              "torn tail: %s", rp ? rp->dropped_what : err.msg);
        char *saved = read_file(torn, NULL);
        CHECK(saved && !strcmp(saved, "{\"id\":\"r0\",\"sample\":7,\"compl"), "saved tail");
        free(saved);
        CHECK(file_size(path) == good, "truncated to the last record");
        diffu_jobout_close(&out, &err);
        /* a complete line that is not a record: refused, untouched */
        f = fopen(path, "ab");
        fputs("{\"hello\": 1}\n", f);
        fclose(f);
        uint64_t before = file_size(path);
        out = diffu_jobout_open(path, &o, &err);
        CHECK(!out && strstr(err.msg, "line 4 is not a diffu record") && file_size(path) == before, "foreign line: %s",
              err.msg);
    }
    /* overwrite starts afresh */
    o.overwrite = 1;
    out = diffu_jobout_open(path, &o, &err);
    CHECK(out && diffu_jobout_size(out) == (gz ? 20u : 0u) && !diffu_jobout_done(out, "r0", 2, 0), "overwrite");
    diffu_jobout_close(&out, &err);
}

/* EFBIG from a file size limit, in a child so the limit does not leak */
static void test_full(diffu_jobin *in, int gz) {
    const char *path = wpath(gz ? "full.jsonl.gz" : "full.jsonl");
    unlink(path);
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {1500, 1500};
        setrlimit(RLIMIT_FSIZE, &rl);
        n_pass = n_fail = 0;
        diffu_jobout_opts o;
        diffu_jobout_opts_default(&o);
        diffu_err err;
        diffu_jobout *out = diffu_jobout_open(path, &o, &err);
        CHECK(out != NULL, "open: %s", err.msg);
        if (!out) _exit(1);
        const diffu_jobin_req *r = diffu_jobin_find(in, "5", 1);
        char comp[400];
        int failed_at = -1;
        uint64_t last_good = 0;
        for (int s = 0; s < 100; s++) {
            /* incompressible-ish text so gzip records grow too */
            for (int k = 0; k < 399; k++) comp[k] = (char)('!' + (unsigned)(s * 131 + k * 7919 + k * k) % 90);
            comp[399] = 0;
            diffu_jobout_rec rec = mkrec(r, s, comp);
            if (diffu_jobout_write(out, &rec, &err)) {
                failed_at = s;
                break;
            }
            last_good = diffu_jobout_size(out);
        }
        CHECK(failed_at > 0, "the limit is hit after some records (%d)", failed_at);
        CHECK(strstr(err.msg, "File too large") && strstr(err.msg, "cut back to its last complete record"),
              "EFBIG message: %s", err.msg);
        CHECK(file_size(path) == last_good, "file cut back to %llu (is %llu)", (unsigned long long)last_good,
              (unsigned long long)file_size(path));
        diffu_jobout_rec rec = mkrec(r, 99, "x");
        CHECK(diffu_jobout_write(out, &rec, &err) == -1 && strstr(err.msg, "an earlier write failed"),
              "later writes refused: %s", err.msg);
        CHECK(diffu_jobout_close(&out, &err) == -1 && strstr(err.msg, "File too large"), "close reports: %s", err.msg);
        /* what is left resumes cleanly */
        diffu_jobresume *rs = diffu_jobresume_scan_path(path, 0, &err);
        CHECK(rs && diffu_jobresume_get_report(rs)->records == failed_at &&
                  diffu_jobresume_get_report(rs)->dropped_bytes == 0,
              "the rest is complete records");
        diffu_jobresume_free(&rs);
        printf("[child gz=%d] %d passed, %d failed\n", gz, n_pass, n_fail);
        fflush(stdout);
        _exit(n_fail ? 1 : 0);
    }
    int st;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "EFBIG child (gz=%d) status %d", gz, st);
}

/* four threads writing into one gzip output: every record lands once, whole */
typedef struct {
    diffu_jobout *out;
    const diffu_jobin_req *r;
    int first, fails;
} thr_arg;

static void *writer_thread(void *p) {
    thr_arg *a = p;
    char comp[64];
    for (int s = a->first; s < a->first + 50; s++) {
        snprintf(comp, sizeof comp, "record %d\n", s);
        diffu_jobout_rec rec = mkrec(a->r, s, comp);
        diffu_err err;
        if (diffu_jobout_write(a->out, &rec, &err)) a->fails++;
    }
    return NULL;
}

static void test_threads(diffu_jobin *in) {
    const char *path = wpath("threads.jsonl.gz");
    unlink(path);
    diffu_jobout_opts o;
    diffu_jobout_opts_default(&o);
    o.sync = 0;
    diffu_err err;
    diffu_jobout *out = diffu_jobout_open(path, &o, &err);
    CHECK(out != NULL, "open: %s", err.msg);
    if (!out) return;
    pthread_t th[4];
    thr_arg a[4];
    for (int t = 0; t < 4; t++) {
        a[t] = (thr_arg){out, diffu_jobin_find(in, "r0", 2), 50 * t, 0};
        pthread_create(&th[t], NULL, writer_thread, &a[t]);
    }
    for (int t = 0; t < 4; t++) pthread_join(th[t], NULL);
    CHECK(a[0].fails + a[1].fails + a[2].fails + a[3].fails == 0 && diffu_jobout_written(out) == 200, "200 written");
    CHECK(diffu_jobout_close(&out, &err) == 0, "close");
    size_t n = 0;
    int members = 0;
    char *txt = inflate_file(path, &n, &members);
    int seen[200] = {0}, lines = 0, ok = members == 201;
    for (char *p = txt; p && *p; lines++) {
        char *e = strchr(p, '\n');
        diffu_err e2;
        diffu_json_doc *d = diffu_json_parse(p, (size_t)(e - p), &e2);
        ok &= d != NULL;
        if (d) {
            int s = (int)jnum(diffu_json_root(d), "sample");
            char want[64];
            snprintf(want, sizeof want, "record %d\n", s);
            ok &= s >= 0 && s < 200 && !strcmp(jstr(diffu_json_root(d), "completion"), want);
            if (s >= 0 && s < 200) seen[s]++;
            diffu_json_free(d);
        }
        p = e + 1;
    }
    for (int s = 0; s < 200; s++) ok &= seen[s] == 1;
    CHECK(ok && lines == 200, "threads: %d lines, %d members", lines, members);
    free(txt);
}

/* ------------------------------------------------------------ util */

static void test_util(void) {
    diffu_job_util_map *m = diffu_job_util_map_new();
    char k[32];
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(k, sizeof k, "key%d", i);
        diffu_job_util_map_put(m, k, (size_t)n, i * 3);
    }
    int ok = diffu_job_util_map_size(m) == 5000;
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(k, sizeof k, "key%d", i);
        int64_t v;
        ok &= diffu_job_util_map_get(m, k, (size_t)n, &v) && v == i * 3;
    }
    ok &= !diffu_job_util_map_get(m, "key5000", 7, NULL) && !diffu_job_util_map_put(m, "key7", 4, 1);
    CHECK(ok, "map");
    diffu_job_util_map_free(&m);
    diffu_text t = {0};
    diffu_job_util_put_base64(&t, (const unsigned char *)"\xff\xfe" "ab", 4);
    CHECK(!strcmp(t.data, "\"//5hYg==\""), "base64 %s", t.data);
    t.len = 0;
    diffu_job_util_put_num(&t, 0.1);
    diffu_job_util_put(&t, " ");
    diffu_job_util_put_num(&t, 1e-7);
    diffu_job_util_put(&t, " ");
    diffu_job_util_put_num(&t, 1.0 / 3);
    CHECK(!strcmp(t.data, "0.1 1e-07 0.3333333333333333"), "shortest doubles: %s", t.data);
    diffu_text_free(&t);
    CHECK(diffu_job_util_utf8_check("ok\xc3\xa9", 4) == 4 && diffu_job_util_utf8_check("a\xc0\xaf", 3) == 1 &&
              diffu_job_util_utf8_check("\xed\xa0\x80", 3) == 0 && diffu_job_util_utf8_check("ab\xe2\x82", 4) == 2,
          "utf8 check");
    CHECK(diffu_job_util_edit_distance("temprature", "temperature") == 1 && diffu_job_util_edit_distance("", "abc") == 3,
          "edit distance");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_jobio WORK_DIR\n");
        return 2;
    }
    snprintf(work, sizeof work, "%s", argv[1]);
    mkdir(work, 0755);
    test_util();
    test_input();
    test_extract();
    diffu_jobin *in = make_requests();
    test_encode(in);
    test_writer(in, 0);
    test_writer(in, 1);
    test_full(in, 0);
    test_full(in, 1);
    test_threads(in);
    diffu_jobin_free(&in);
    printf("%d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
