/* job_manifest.c — see job_manifest.h. */
#include "job_manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "checkpoint.h"
#include "tensor_names.h"
#include "json.h"
#include "hash.h"
#include "job_util.h"

/* a field: its length, then its bytes (so "ab"+"c" differs from "a"+"bc") */
static uint64_t fnv64_field(uint64_t h, const char *s, size_t n) {
    uint64_t len = s ? (uint64_t)n : UINT64_MAX;
    h = diffu_fnv64(h, &len, sizeof len);
    return s ? diffu_fnv64(h, s, n) : h;
}

uint64_t diffu_jobman_input_fingerprint(const char *path, diffu_err *err) {
    gzFile f = gzopen(path, "rb"); /* gzip or plain, transparently */
    if (!f) {
        diffu_err_set(err, "%s: cannot read the input to fingerprint it: %s", path, strerror(errno));
        return 0;
    }
    gzbuffer(f, 1 << 17);
    unsigned char buf[1 << 16];
    uint64_t h = DIFFU_FNV64_INIT;
    int n;
    while ((n = gzread(f, buf, sizeof buf)) > 0) h = diffu_fnv64(h, buf, (size_t)n);
    if (n < 0) {
        int e;
        diffu_err_set(err, "%s: cannot read the input to fingerprint it: %s", path, gzerror(f, &e));
        gzclose(f);
        return 0;
    }
    gzclose(f);
    err->msg[0] = 0;
    return h;
}

void diffu_jobman_settings(const diffu_jobin_opts *io, const char *format, int emit_ids, diffu_text *t) {
    const diffu_denoise_params *p = &io->defaults;
    diffu_job_util_put(t, "{");
    diffu_jobin_put_params(p, t); /* max_new_tokens .. early_stop, as every record's "params" */
    diffu_job_util_put_key(t, "end_ids", 0);
    diffu_job_util_put(t, "[");
    for (int i = 0; i < p->n_end; i++) {
        if (i) diffu_job_util_put(t, ",");
        diffu_job_util_put_int(t, p->end_ids[i]);
    }
    diffu_job_util_put(t, "]");
    diffu_job_util_put_key(t, "mask_id", 0);
    diffu_job_util_put_int(t, p->mask_id);
    diffu_job_util_put_key(t, "n", 0);
    diffu_job_util_put_int(t, io->n);
    diffu_job_util_put_key(t, "system", 0);
    if (io->system) diffu_job_util_put_str_lossy(t, io->system, strlen(io->system));
    else diffu_job_util_put(t, "null");
    diffu_job_util_put_key(t, "prefill", 0);
    if (io->prefill) diffu_job_util_put_str_lossy(t, io->prefill, strlen(io->prefill));
    else diffu_job_util_put(t, "null");
    diffu_job_util_put_key(t, "format", 0);
    const char *f = format ? format : "diffu";
    diffu_job_util_put_str_lossy(t, f, strlen(f));
    diffu_job_util_put_key(t, "emit_ids", 0);
    diffu_job_util_put(t, emit_ids ? "true" : "false");
    diffu_job_util_put(t, "}");
}

void diffu_jobman_run_id(const diffu_jobman_ident *id, char out[17]) {
    uint64_t h = diffu_fnv64(DIFFU_FNV64_INIT, &id->model_fingerprint, sizeof id->model_fingerprint);
    const char *s = id->settings_json ? id->settings_json : "";
    h = fnv64_field(h, s, strlen(s));
    snprintf(out, 17, "%016" PRIx64, h);
}

void diffu_jobman_model_name(const char *path, char *buf, size_t cap) {
    size_t n = path ? strlen(path) : 0;
    while (n > 1 && path[n - 1] == '/') n--;
    size_t b = n;
    while (b > 0 && path[b - 1] != '/') b--;
    snprintf(buf, cap, "%.*s", (int)(n - b), n ? path + b : "");
}

static void put_cstr(diffu_text *t, const char *s) {
    if (s) diffu_job_util_put_str_lossy(t, s, strlen(s));
    else diffu_job_util_put(t, "null");
}

static void put_hex(diffu_text *t, uint64_t v) {
    char b[20];
    snprintf(b, sizeof b, "\"%016" PRIx64 "\"", v);
    diffu_job_util_put(t, b);
}

void diffu_jobman_record_json(const diffu_jobman_ident *id, diffu_text *t) {
    char rid[17], name[1024];
    diffu_jobman_run_id(id, rid);
    diffu_jobman_model_name(id->model_path, name, sizeof name);
    diffu_job_util_put(t, "{");
    diffu_job_util_put_key(t, "id", 1);
    put_cstr(t, rid);
    diffu_job_util_put_key(t, "model", 0);
    put_cstr(t, name);
    diffu_job_util_put_key(t, "model_fingerprint", 0);
    put_hex(t, id->model_fingerprint);
    diffu_job_util_put_key(t, "diffu", 0);
    put_cstr(t, id->diffu_version);
    diffu_job_util_put(t, "}");
}

int diffu_jobman_path(const char *output, char *buf, size_t cap) {
    return snprintf(buf, cap, "%s.manifest.json", output);
}

static void now_iso(char *buf, size_t cap) {
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* this run's identity members (no braces): "run", "diffu", "model", "input", "generation" */
static void put_ident(diffu_text *t, const diffu_jobman_ident *id, const char *indent) {
    char rid[17], name[1024];
    diffu_jobman_run_id(id, rid);
    diffu_jobman_model_name(id->model_path, name, sizeof name);
    diffu_job_util_put(t, indent);
    diffu_job_util_put(t, "\"run\": ");
    put_cstr(t, rid);
    diffu_job_util_put(t, ",\n");
    diffu_job_util_put(t, indent);
    diffu_job_util_put(t, "\"diffu\": ");
    put_cstr(t, id->diffu_version);
    diffu_job_util_put(t, ",\n");
    diffu_job_util_put(t, indent);
    diffu_job_util_put(t, "\"model\": {\"name\": ");
    put_cstr(t, name);
    diffu_job_util_put(t, ", \"path\": ");
    put_cstr(t, id->model_path);
    diffu_job_util_put(t, ", \"fingerprint\": ");
    put_hex(t, id->model_fingerprint);
    diffu_job_util_put(t, "},\n");
    diffu_job_util_put(t, indent);
    diffu_job_util_put(t, "\"input\": {\"path\": ");
    put_cstr(t, id->input_path);
    diffu_job_util_put(t, ", \"fingerprint\": ");
    put_hex(t, id->input_fingerprint);
    diffu_job_util_put(t, ", \"requests\": ");
    diffu_job_util_put_int(t, id->requests);
    diffu_job_util_put(t, ", \"samples\": ");
    diffu_job_util_put_int(t, id->samples);
    diffu_job_util_put(t, "},\n");
    diffu_job_util_put(t, indent);
    diffu_job_util_put(t, "\"generation\": ");
    diffu_job_util_put(t, id->settings_json ? id->settings_json : "{}");
}


static const char *str_of(const diffu_json *o, const char *key) {
    const diffu_json *v = o ? diffu_json_get(o, key) : NULL;
    return v && v->type == DJ_STR ? v->u.str.s : NULL;
}

static int64_t int_of(const diffu_json *o, const char *key) {
    const diffu_json *v = o ? diffu_json_get(o, key) : NULL;
    return v && v->type == DJ_NUM ? (int64_t)v->u.num.d : -1;
}

/* Control characters of a manifest's strings (a key or a name may hold any,
 * escaped in JSON) become '?': the messages quoting them stay one line. */
static void flatten(char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f) *s = '?';
}

static void add_diff(diffu_text *d, const char *fmt_a, const char *a, const char *b, const char *what) {
    char line[3000];
    if (d->len) diffu_text_append(d, "; ", 2);
    snprintf(line, sizeof line, fmt_a, what, a, b);
    flatten(line); /* found by fuzz_manifest: corpus/manifest/crash-newline-in-key */
    diffu_text_append(d, line, strlen(line));
}

/* compact text of v (or "absent") */
static void compact(const diffu_json *v, char *buf, size_t cap) {
    if (!v) {
        snprintf(buf, cap, "(absent)");
        return;
    }
    diffu_text t = {0};
    diffu_job_util_put_json(&t, v);
    snprintf(buf, cap, "%.*s", t.len > 200 ? 200 : (int)t.len, t.data ? t.data : "");
    if (t.len > 200) snprintf(buf + 200, cap > 200 ? cap - 200 : 0, "...");
    diffu_text_free(&t);
}

/* Every difference between the manifest's identity (m) and this run's into d;
 * *version_only: 1 when only the diffu build differs. */
static void differences(const diffu_json *m, const diffu_jobman_ident *id, const diffu_json *gen_now, diffu_text *d,
                        int *build_differs) {
    char a[1400], b[1400], name[1024];
    diffu_jobman_model_name(id->model_path, name, sizeof name);
    const diffu_json *mm = diffu_json_get(m, "model");
    const char *mfp = str_of(mm, "fingerprint");
    char fp[20];
    snprintf(fp, sizeof fp, "%016" PRIx64, id->model_fingerprint);
    if (!mfp || strcmp(mfp, fp)) {
        snprintf(a, sizeof a, "%s (fingerprint %s)", str_of(mm, "name") ? str_of(mm, "name") : "?", mfp ? mfp : "?");
        snprintf(b, sizeof b, "%s (fingerprint %s)", name, fp);
        add_diff(d, "%s %s -> %s", a, b, "model");
    }
    const diffu_json *mi = diffu_json_get(m, "input");
    const char *ifp = str_of(mi, "fingerprint");
    snprintf(fp, sizeof fp, "%016" PRIx64, id->input_fingerprint);
    if (!ifp || strcmp(ifp, fp)) {
        snprintf(a, sizeof a, "%s (%lld requests, fingerprint %s)", str_of(mi, "path") ? str_of(mi, "path") : "?",
                 (long long)int_of(mi, "requests"), ifp ? ifp : "?");
        snprintf(b, sizeof b, "%s (%d requests, fingerprint %s)", id->input_path ? id->input_path : "?", id->requests, fp);
        add_diff(d, "%s %s -> %s", a, b, "input");
    }
    const diffu_json *g = diffu_json_get(m, "generation");
    if (!g || g->type != DJ_OBJ) {
        add_diff(d, "%s%s%s", "", "", "generation settings missing in the manifest");
    } else if (gen_now && gen_now->type == DJ_OBJ) {
        for (size_t i = 0; i < gen_now->u.kids.n; i++) {
            const char *k = gen_now->u.kids.keys[i];
            compact(diffu_json_get(g, k), a, sizeof a);
            compact(gen_now->u.kids.items[i], b, sizeof b);
            if (strcmp(a, b)) add_diff(d, "%s %s -> %s", a, b, k);
        }
        for (size_t i = 0; i < g->u.kids.n; i++) {
            const char *k = g->u.kids.keys[i];
            if (diffu_json_get(gen_now, k)) continue;
            compact(g->u.kids.items[i], a, sizeof a);
            add_diff(d, "%s %s -> %s", a, "(absent)", k);
        }
    }
    const char *v = str_of(m, "diffu");
    *build_differs = !v || !id->diffu_version || strcmp(v, id->diffu_version);
}

int diffu_jobman_check(const char *output, const diffu_jobman_ident *id, long records, int allow_change, char *note,
                       size_t note_cap, diffu_err *err) {
    char path[4200], now[32];
    diffu_jobman_path(output, path, sizeof path);
    now_iso(now, sizeof now);
    if (note_cap) note[0] = 0;
    struct stat st;
    int have = stat(path, &st) == 0;
    diffu_json_doc *doc = NULL;
    diffu_json_doc *gdoc = NULL;
    diffu_text out = {0}, diffs = {0}, hist = {0};
    int rc = -1, build_differs = 0;
    const char *created = now;
    if (have && records > 0) {
        diffu_err perr;
        doc = diffu_json_parse_file(path, &perr);
        const diffu_json *m = doc ? diffu_json_root(doc) : NULL;
        if (!m || m->type != DJ_OBJ || int_of(m, "diffu_manifest") != 1) {
            if (!allow_change) {
                diffu_err_set(err, "%s: not a diffu run manifest (%s); cannot tell which run made the %ld record(s) of"
                                   " %s (--allow-run-change adopts them as this run's)",
                              path, !doc ? perr.msg : "no \"diffu_manifest\": 1", records, output);
                goto out;
            }
            snprintf(note, note_cap, "[diffu] %s: unreadable run manifest replaced (--allow-run-change)", output);
        } else {
            gdoc = diffu_json_parse(id->settings_json, strlen(id->settings_json), err);
            DIFFU_ASSERTF(gdoc, "diffu_jobman_settings wrote bad JSON: %s", err->msg);
            differences(m, id, diffu_json_root(gdoc), &diffs, &build_differs);
            if (str_of(m, "created")) created = str_of(m, "created");
            if (diffs.len && !allow_change) {
                diffu_err_set(err, "%s holds %ld record(s) of another run: %.*s (see %s); use another --output, or"
                                   " --allow-run-change to continue it deliberately",
                              output, records, (int)(diffs.len > 3000 ? 3000 : diffs.len), diffs.data, path);
                goto out;
            }
            /* history: the old entries, then (on a change) the identity the old manifest had */
            const diffu_json *h = diffu_json_get(m, "history");
            if (h && h->type == DJ_ARR)
                for (size_t i = 0; i < h->u.kids.n; i++) {
                    diffu_job_util_put(&hist, hist.len ? ",\n    " : "\n    ");
                    diffu_job_util_put_json(&hist, h->u.kids.items[i]);
                }
            if (diffs.len || build_differs) {
                diffu_job_util_put(&hist, hist.len ? ",\n    " : "\n    ");
                diffu_job_util_put(&hist, "{\"until\": ");
                put_cstr(&hist, now);
                diffu_job_util_put(&hist, ", \"records\": ");
                diffu_job_util_put_int(&hist, records);
                diffu_job_util_put(&hist, ", \"changed\": ");
                if (diffs.len) diffu_job_util_put_str_lossy(&hist, diffs.data, diffs.len);
                else put_cstr(&hist, "diffu build");
                static const char *keep[] = {"run", "diffu", "model", "input", "generation"};
                for (size_t i = 0; i < sizeof keep / sizeof *keep; i++) {
                    const diffu_json *v = diffu_json_get(m, keep[i]);
                    if (!v) continue;
                    diffu_job_util_put(&hist, ", \"");
                    diffu_job_util_put(&hist, keep[i]);
                    diffu_job_util_put(&hist, "\": ");
                    diffu_job_util_put_json(&hist, v);
                }
                diffu_job_util_put(&hist, "}");
                if (diffs.len)
                    snprintf(note, note_cap, "[diffu] %s: continuing %ld record(s) of another run deliberately"
                             " (--allow-run-change): %.*s", output, records, (int)(diffs.len > 1500 ? 1500 : diffs.len),
                             diffs.data);
                else {
                    snprintf(note, note_cap, "[diffu] %s: resuming records made by %s with %s", output,
                             str_of(m, "diffu") ? str_of(m, "diffu") : "another diffu build", id->diffu_version);
                    flatten(note);
                }
            } else {
                rc = 0; /* the same run: the manifest stays as it is */
                goto out;
            }
        }
    } else if (records > 0) {
        if (!allow_change) {
            diffu_err_set(err, "%s holds %ld record(s) but has no run manifest %s (made by an older diffu, or it was"
                               " deleted): cannot tell which model and settings made them; --allow-run-change adopts"
                               " them as this run's",
                          output, records, path);
            goto out;
        }
        snprintf(note, note_cap, "[diffu] %s: %ld record(s) without a manifest adopted as this run's"
                 " (--allow-run-change)", output, records);
    }
    diffu_job_util_put(&out, "{\n  \"diffu_manifest\": 1,\n  \"created\": ");
    put_cstr(&out, created);
    diffu_job_util_put(&out, ",\n  \"updated\": ");
    put_cstr(&out, now);
    diffu_job_util_put(&out, ",\n  \"output\": ");
    put_cstr(&out, output);
    diffu_job_util_put(&out, ",\n");
    put_ident(&out, id, "  ");
    diffu_job_util_put(&out, ",\n  \"history\": [");
    if (hist.len) diffu_text_append(&out, hist.data, hist.len);
    diffu_job_util_put(&out, hist.len ? "\n  ]\n}\n" : "]\n}\n");
    rc = diffu_job_util_write_atomic(path, out.data, out.len, "the run manifest", err);
out:
    diffu_json_free(doc);
    diffu_json_free(gdoc);
    diffu_text_free(&out);
    diffu_text_free(&diffs);
    diffu_text_free(&hist);
    return rc;
}

/* ------------------------------------------------------------ the job's hook */

struct diffu_jobman {
    diffu_jobman_ident id;
    char *version, *model, *input;
    diffu_text settings, run;
};

static char *dup_or_empty(const char *s) {
    size_t n = s ? strlen(s) : 0;
    char *r = diffu_xmalloc(n + 1);
    memcpy(r, s ? s : "", n);
    r[n] = 0;
    return r;
}

#define SAMPLE_BYTES 4096

uint64_t diffu_jobman_model_fingerprint(const diffu_ckpt *c) {
    uint64_t h = diffu_ckpt_fingerprint(c), hd = DIFFU_FNV64_INIT;
    const diffu_config *g = diffu_ckpt_config(c);
    int n = diffu_tensor_count(g);
    for (int i = 0; i < n; i++) {
        diffu_tensor_spec sp;
        diffu_tensor_spec_at(g, i, &sp);
        const diffu_st_tensor *t = diffu_ckpt_tensor(c, sp.name, NULL);
        if (!t) continue;
        uint64_t sz = t->end - t->begin, w = sz < SAMPLE_BYTES ? sz : SAMPLE_BYTES;
        uint64_t at[3] = {0, (sz - w) / 2, sz - w};
        for (int k = 0; k < 3; k++) hd = diffu_fnv64(hd, (const unsigned char *)t->data + at[k], (size_t)w);
    }
    h = diffu_fnv64(h, &hd, sizeof hd);
    return h;
}

diffu_jobman *diffu_jobman_begin(const char *model_path, const char *diffu_version, const diffu_jobin *in,
                                 const diffu_jobin_opts *io, const char *format, int emit_ids, diffu_err *err) {
    diffu_ckpt *ck;
    if (diffu_ckpt_open(model_path, &ck, err)) return NULL; /* (gen_setup read it already: not expected) */
    diffu_jobman *m = diffu_xcalloc(1, sizeof *m);
    m->id.model_fingerprint = diffu_jobman_model_fingerprint(ck);
    diffu_ckpt_close(ck);
    m->version = dup_or_empty(diffu_version);
    m->model = dup_or_empty(model_path);
    m->input = dup_or_empty(diffu_jobin_path(in));
    m->id.diffu_version = m->version;
    m->id.model_path = m->model;
    m->id.input_path = m->input;
    m->id.input_fingerprint = diffu_jobman_input_fingerprint(diffu_jobin_path(in), err);
    if (err->msg[0]) {
        diffu_jobman_free(&m);
        return NULL;
    }
    m->id.requests = diffu_jobin_count(in);
    m->id.samples = diffu_jobin_get_stats(in)->samples;
    diffu_jobman_settings(io, format, emit_ids, &m->settings);
    m->id.settings_json = m->settings.data;
    diffu_jobman_record_json(&m->id, &m->run);
    return m;
}

const char *diffu_jobman_run_json(const diffu_jobman *m) { return m->run.data; }

const diffu_jobman_ident *diffu_jobman_get_ident(const diffu_jobman *m) { return &m->id; }

int diffu_jobman_commit(diffu_jobman *m, const char *output, long records, int allow_change, diffu_err *err) {
    char note[2048];
    if (diffu_jobman_check(output, &m->id, records, allow_change, note, sizeof note, err)) return -1;
    if (note[0]) fprintf(stderr, "%s\n", note);
    return 0;
}

void diffu_jobman_free(diffu_jobman **mp) {
    diffu_jobman *m = *mp;
    if (!m) return;
    free(m->version);
    free(m->model);
    free(m->input);
    diffu_text_free(&m->settings);
    diffu_text_free(&m->run);
    free(m);
    *mp = NULL;
}
