/* fuzz_manifest.c — the run-identity manifest reader (coordinator/job_manifest.c,
 * diffu_jobman_check): the input is the OUTPUT.manifest.json found beside an
 * output that already holds 3 records; this run's identity is fixed (RUN_A).
 * The first input byte picks the mode (even: allow_change 0, odd: 1, as
 * --allow-run-change); the rest is the manifest file. Oracles:
 *   - a refusal is one line that names the manifest or the output, and leaves
 *     the manifest byte for byte as it was;
 *   - with allow_change every input is accepted (the manifest is replaced);
 *   - after an acceptance the manifest on disk is a JSON object with
 *     "diffu_manifest": 1 whose run is RUN_A, and checking RUN_A again
 *     without allow_change is accepted and leaves the file unchanged (one
 *     acceptance makes the output this run's, and it stays so).
 * With DIFFU_FUZZ_WRITE_SEEDS=DIR (tests/fuzz/make_seeds.py) it writes this
 * build's own manifests into DIR: a fresh one, one of another run, one with a
 * history entry (a deliberate change), one after another diffu build. */
#include "fuzz_common.h"
#include "job_manifest.h"
#include "json.h"

static const char SETTINGS_A[] =
    "{\"max_new_tokens\":16,\"steps\":16,\"alg\":\"entropy\",\"temperature\":0.5,\"top_p\":0.95,\"n\":1,"
    "\"system\":null,\"prefill\":\"\",\"format\":\"jsonl\",\"emit_ids\":false}";
static const char SETTINGS_B[] =
    "{\"max_new_tokens\":16,\"steps\":16,\"alg\":\"entropy\",\"temperature\":1.5,\"top_p\":0.95,\"n\":1,"
    "\"system\":null,\"prefill\":\"\",\"format\":\"jsonl\",\"emit_ids\":false}";

static diffu_jobman_ident ident(const char *version, const char *model, uint64_t fp, const char *settings) {
    diffu_jobman_ident id;
    memset(&id, 0, sizeof id);
    id.diffu_version = version;
    id.model_path = model;
    id.model_fingerprint = fp;
    id.input_path = "in.jsonl";
    id.input_fingerprint = 0x0123456789abcdefull;
    id.requests = 3;
    id.samples = 3;
    id.settings_json = settings;
    return id;
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) { *n = 0; return NULL; }
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(len > 0 ? (size_t)len : 1);
    *n = fread(b, 1, len > 0 ? (size_t)len : 0, f);
    fclose(f);
    return b;
}

static void copy_seed(const char *from, const char *dir, const char *name, uint8_t mode) {
    size_t n;
    uint8_t *b = slurp(from, &n);
    FZ_CHECK(b, "no manifest at %s", from);
    uint8_t *s = malloc(n + 1);
    s[0] = mode;
    memcpy(s + 1, b, n);
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    fz_write(p, s, n + 1);
    free(s);
    free(b);
}

static void write_seeds(const char *dir, const char *out, const char *man) {
    diffu_jobman_ident a = ident("diffu-fuzz 1.0", "/models/tiny-a", 0x1111222233334444ull, SETTINGS_A);
    diffu_jobman_ident b = ident("diffu-fuzz 1.0", "/models/tiny-b", 0x5555666677778888ull, SETTINGS_B);
    diffu_jobman_ident a2 = ident("diffu-fuzz 1.1", "/models/tiny-a", 0x1111222233334444ull, SETTINGS_A);
    char note[2048];
    diffu_err err;
    FZ_CHECK(diffu_jobman_check(out, &a, 0, 0, note, sizeof note, &err) == 0, "fresh: %s", err.msg);
    copy_seed(man, dir, "same_run", 0);
    copy_seed(man, dir, "same_run_allow", 1);
    FZ_CHECK(diffu_jobman_check(out, &b, 0, 0, note, sizeof note, &err) == 0, "fresh b: %s", err.msg);
    copy_seed(man, dir, "other_run", 0);
    FZ_CHECK(diffu_jobman_check(out, &a, 3, 1, note, sizeof note, &err) == 0, "change: %s", err.msg);
    copy_seed(man, dir, "history", 0);
    FZ_CHECK(diffu_jobman_check(out, &a2, 3, 0, note, sizeof note, &err) == 0, "build: %s", err.msg);
    copy_seed(man, dir, "other_build", 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_quiet();
    const char *out = fz_path(0, "out.jsonl");
    char man[1100];
    diffu_jobman_path(out, man, sizeof man);
    const char *seeds = getenv("DIFFU_FUZZ_WRITE_SEEDS");
    if (seeds) {
        write_seeds(seeds, out, man);
        fz_clean();
        return 0;
    }
    if (size < 1) return 0;
    int allow = data[0] & 1;
    fz_write(out, (const uint8_t *)"{}\n{}\n{}\n", 9); /* the records are not read: their count is given */
    fz_write(man, data + 1, size - 1);
    diffu_jobman_ident a = ident("diffu-fuzz 1.0", "/models/tiny-a", 0x1111222233334444ull, SETTINGS_A);
    char note[2048], note2[2048];
    diffu_err err;
    err.msg[0] = 0;
    int rc = diffu_jobman_check(out, &a, 3, allow, note, sizeof note, &err);
    size_t n;
    uint8_t *now = slurp(man, &n);
    FZ_CHECK(!memchr(note, '\n', strlen(note)), "a note of more than one line: %s", note);
    if (rc != 0) {
        FZ_CHECK(!allow, "refused under allow_change: %s", err.msg);
        FZ_CHECK(err.msg[0] && !strchr(err.msg, '\n'), "a refusal without a one-line message");
        FZ_CHECK(strstr(err.msg, out) || strstr(err.msg, man), "the refusal names neither file: %s", err.msg);
        FZ_CHECK(now && n == size - 1 && !memcmp(now, data + 1, n), "a refusal changed the manifest");
        free(now);
        fz_clean();
        return 0;
    }
    FZ_CHECK(now, "accepted, but no manifest left");
    diffu_err perr;
    diffu_json_doc *doc = diffu_json_parse((const char *)now, n, &perr);
    FZ_CHECK(doc, "the accepted manifest does not parse: %s", perr.msg);
    const diffu_json *root = diffu_json_root(doc);
    const diffu_json *v = diffu_json_get(root, "diffu_manifest");
    FZ_CHECK(v && v->type == DJ_NUM && v->u.num.d == 1, "the accepted manifest has no \"diffu_manifest\": 1");
    diffu_json_free(doc);
    err.msg[0] = 0;
    FZ_CHECK(diffu_jobman_check(out, &a, 3, 0, note2, sizeof note2, &err) == 0,
             "the manifest just accepted is refused for the same run: %s", err.msg);
    size_t n2;
    uint8_t *again = slurp(man, &n2);
    FZ_CHECK(again && n2 == n && !memcmp(again, now, n), "checking the same run again changed the manifest");
    free(again);
    free(now);
    fz_clean();
    return 0;
}
