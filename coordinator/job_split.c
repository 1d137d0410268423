/* job_split.c — see job_split.h. */
#include "job_split.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "job_util.h"
#include "json.h"

/* ---- lines and their ids ------------------------------------------------- */

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

/* The id of a record or request: "id", else "task_id"; a string or an
 * integer (decimal text into buf). 0 ok, 1 absent, -1 wrong type. */
static int read_id(const diffu_json *o, char *buf, size_t cap, const char **id, size_t *len) {
    const diffu_json *v = diffu_json_get(o, "id");
    if (!v) v = diffu_json_get(o, "task_id");
    if (!v) return 1;
    if (v->type == DJ_STR && v->u.str.len > 0) {
        *id = v->u.str.s;
        *len = v->u.str.len;
        return 0;
    }
    if (v->type == DJ_NUM && v->u.num.is_int) {
        *len = (size_t)snprintf(buf, cap, "%lld", (long long)v->u.num.i);
        *id = buf;
        return 0;
    }
    return -1;
}

/* A request line parsed for its id, as the job reads it: without a UTF-8 BOM
 * on the file's first line (the job skips it there). */
typedef struct {
    diffu_json_doc *doc;
    const diffu_json *obj; /* the line's object, NULL if it is not one */
    const char *id;        /* NULL: no readable id */
    size_t len;
    char num[32];
} req_line;

static void req_parse(req_line *q, const char *line, size_t len, long lineno) {
    if (lineno == 1 && len >= 3 && !memcmp(line, "\xef\xbb\xbf", 3)) line += 3, len -= 3;
    diffu_err perr;
    q->doc = diffu_json_parse(line, len, &perr);
    const diffu_json *o = q->doc ? diffu_json_root(q->doc) : NULL;
    q->obj = o && o->type == DJ_OBJ ? o : NULL;
    q->id = NULL;
    if (q->obj && read_id(q->obj, q->num, sizeof q->num, &q->id, &q->len) != 0) q->id = NULL;
}

static void req_done(req_line *q) { diffu_json_free(q->doc); }

/* ---- split ----------------------------------------------------------------- */

void diffu_job_split_shard_name(char *buf, size_t cap, const char *prefix, int i, int k, int gz) {
    snprintf(buf, cap, "%s-%05d-of-%05d.jsonl%s", prefix, i, k, gz ? ".gz" : "");
}

/* Pass 1: count the non-blank lines with distinct ids, the blank ones and the
 * repeats, and learn whether IN is gzip. */
static int split_count(const char *in, diffu_job_split_result *res, diffu_err *err) {
    diffu_job_util_lines *r = diffu_job_util_lines_open(in, err);
    if (!r) return -1;
    diffu_job_util_map *seen = diffu_job_util_map_new();
    const char *line;
    size_t len;
    int rc;
    while ((rc = diffu_job_util_lines_next(r, &line, &len, err)) == 1) {
        if (is_blank(line, len)) {
            res->blank++;
            continue;
        }
        req_line q;
        req_parse(&q, line, len, diffu_job_util_lines_lineno(r));
        if (q.id && !diffu_job_util_map_put(seen, q.id, q.len, 0)) res->repeats++;
        else res->lines++;
        req_done(&q);
    }
    res->gz = diffu_job_util_lines_is_gz(r);
    diffu_job_util_lines_close(&r);
    diffu_job_util_map_free(&seen);
    return rc < 0 ? -1 : 0;
}

/* Pass 2: deal the lines to the open shards w[0..K). */
static int split_deal(const diffu_job_split_opts *o, const diffu_job_split_result *res, diffu_job_util_afile **w,
                      diffu_err *err) {
    diffu_job_util_lines *r = diffu_job_util_lines_open(o->input, err);
    if (!r) return -1;
    diffu_job_util_map *seen = diffu_job_util_map_new(); /* id -> its shard */
    const int K = o->shards;
    long idx = 0, nrep = 0, cut = res->extra * (res->per + 1);
    const char *line;
    size_t len;
    int rc, werr = 0;
    while (!werr && (rc = diffu_job_util_lines_next(r, &line, &len, err)) == 1) {
        if (is_blank(line, len)) continue;
        req_line q;
        req_parse(&q, line, len, diffu_job_util_lines_lineno(r));
        int64_t s;
        if (q.id && diffu_job_util_map_get(seen, q.id, q.len, &s)) { /* a repeated id goes where its first line went */
            nrep++;
        } else {
            if (!o->contiguous) s = idx % K; /* contiguous: the first `extra` shards get per + 1 */
            else s = idx < cut ? idx / (res->per + 1) : res->extra + (idx - cut) / res->per;
            idx++;
            if (q.id) diffu_job_util_map_put(seen, q.id, q.len, s);
        }
        req_done(&q);
        werr = diffu_job_util_afile_write(w[s], line, len, err) != 0 ||
               (line[len - 1] != '\n' && diffu_job_util_afile_write(w[s], "\n", 1, err) != 0);
    }
    diffu_job_util_lines_close(&r);
    diffu_job_util_map_free(&seen);
    if (werr || rc < 0) return -1;
    if (idx != res->lines || nrep != res->repeats) /* the file changed between the passes */
        return diffu_err_set(err, "%s changed while being split (%ld non-blank lines, then %ld)", o->input,
                             res->lines + res->repeats, idx + nrep);
    return 0;
}

int diffu_job_split_run(const diffu_job_split_opts *o, diffu_job_split_result *res, diffu_err *err) {
    memset(res, 0, sizeof *res);
    if (split_count(o->input, res, err)) return -1;
    const int K = o->shards;
    if (res->lines < K)
        return diffu_err_set(err, "%s: %ld non-blank line(s) with distinct ids, fewer than --shards %d (no shard may be empty)",
                             o->input, res->lines, K);
    res->per = res->lines / K;
    res->extra = res->lines % K;
    diffu_job_util_afile **w = diffu_xcalloc((size_t)K, sizeof *w);
    char name[4200];
    int rc = 0, i = 0;
    for (; i < K && !rc; i++) {
        diffu_job_split_shard_name(name, sizeof name, o->prefix, i, K, res->gz);
        struct stat st;
        if (!o->force && stat(name, &st) == 0) rc = diffu_err_set(err, "%s exists (--force replaces it)", name);
        else if (!(w[i] = diffu_job_util_afile_open(name, res->gz, err))) rc = -1;
    }
    if (!rc) rc = split_deal(o, res, w, err);
    for (i = 0; i < K && !rc; i++) rc = diffu_job_util_afile_commit(&w[i], err);
    for (; i < K; i++) diffu_job_util_afile_abort(&w[i]);
    free(w);
    return rc;
}

/* ---- merge ------------------------------------------------------------------- */

#define MAX_EXAMPLES 10

typedef struct {
    size_t off, len;      /* the id's bytes in merge_ctx.names */
    long line;            /* input line (with an input), else 0 */
    int n;                /* expected samples; -1 unknown (no input) */
    int ncounts;          /* size of counts */
    uint8_t *counts;      /* records seen per sample (saturating) */
} id_entry;

/* The run of every record ("run": {"id", "model", ...}, coordinator/job_manifest.h;
 * records of an older diffu have none): all must be one run unless mixed_ok. */
typedef struct {
    int seen;
    char id[64], model[256], where[600];
    long mixed;
} run_state;

typedef struct {
    const diffu_job_split_merge_opts *o;
    diffu_job_util_map *ids; /* id -> index in e */
    id_entry *e;
    size_t n, cap;
    diffu_text names;
    run_state run;
    diffu_job_util_afile *w;
    long in_lines, in_unreadable, in_dup, expected;
    long records, dups, unexpected, written, missing, n_examples;
} merge_ctx;

static int example(merge_ctx *m) { return m->n_examples++ < MAX_EXAMPLES; }

static id_entry *entry_find(merge_ctx *m, const char *id, size_t len, int create, int *created) {
    int64_t ix;
    if (created) *created = 0;
    if (diffu_job_util_map_get(m->ids, id, len, &ix)) return &m->e[ix];
    if (!create) return NULL;
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 1024;
        m->e = diffu_xrealloc(m->e, m->cap * sizeof *m->e);
    }
    id_entry *e = &m->e[m->n];
    memset(e, 0, sizeof *e);
    e->off = m->names.len;
    e->len = len;
    e->n = -1;
    diffu_text_append(&m->names, id, len);
    diffu_job_util_map_put(m->ids, id, len, (int64_t)m->n++);
    if (created) *created = 1;
    return e;
}

static void printable(char *out, size_t cap, const char *s, size_t n) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 8 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == '"' || ch == '\\') o += (size_t)snprintf(out + o, cap - o, "\\x%02x", ch);
        else out[o++] = (char)ch;
    }
    if (o + 8 >= cap) o += (size_t)snprintf(out + o, cap - o, "...");
    out[o] = 0;
}

static void run_of(const diffu_json *o, char *id, size_t idc, char *model, size_t mc) {
    const diffu_json *run = diffu_json_get(o, "run");
    const diffu_json *v = run && run->type == DJ_OBJ ? diffu_json_get(run, "id") : NULL;
    const diffu_json *mv = run && run->type == DJ_OBJ ? diffu_json_get(run, "model") : NULL;
    snprintf(id, idc, "%s", v && v->type == DJ_STR ? v->u.str.s : "(none: no \"run\")");
    snprintf(model, mc, "%s", mv && mv->type == DJ_STR ? mv->u.str.s : "?");
}

static int run_check(merge_ctx *m, const diffu_json *o, const char *path, long line, diffu_err *err) {
    run_state *st = &m->run;
    char id[64], model[256];
    run_of(o, id, sizeof id, model, sizeof model);
    if (!st->seen) {
        st->seen = 1;
        snprintf(st->id, sizeof st->id, "%s", id);
        snprintf(st->model, sizeof st->model, "%s", model);
        snprintf(st->where, sizeof st->where, "%s:%ld", path, line);
        return 0;
    }
    if (!strcmp(id, st->id)) return 0;
    if (st->mixed++ == 0 || !m->o->mixed_ok) {
        if (!m->o->mixed_ok)
            return diffu_err_set(err, "records of different runs: %s:%ld is run %s (model %s), %s is run %s (model %s): another"
                                      " model or other generation settings (see each output's .manifest.json);"
                                      " --allow-mixed-runs merges them anyway",
                                 path, line, id, model, st->where, st->id, st->model);
        fprintf(m->o->log, "[diffu] merge: %s:%ld: run %s (model %s) differs from %s's run %s: merged (--allow-mixed-runs)\n",
                path, line, id, model, st->where, st->id);
    }
    return 0;
}

/* The expected (id, sample) pairs from the input's lines. */
static int merge_expect(merge_ctx *m, diffu_err *err) {
    const char *in = m->o->input;
    diffu_job_util_lines *r = diffu_job_util_lines_open(in, err);
    if (!r) return -1;
    const char *line;
    size_t len;
    int rc;
    while ((rc = diffu_job_util_lines_next(r, &line, &len, err)) == 1) {
        if (is_blank(line, len)) continue;
        m->in_lines++;
        long lineno = diffu_job_util_lines_lineno(r);
        req_line q;
        req_parse(&q, line, len, lineno);
        int64_t n = m->o->n_default;
        int bad = !q.id;
        const diffu_json *nv = bad ? NULL : diffu_json_get(q.obj, "n");
        if (nv && nv->type != DJ_NULL) {
            if (nv->type == DJ_NUM && nv->u.num.is_int && nv->u.num.i >= 1 && nv->u.num.i <= 65536) n = nv->u.num.i;
            else bad = 1;
        }
        if (bad) {
            m->in_unreadable++;
            if (example(m))
                fprintf(m->o->log, "[diffu] merge: %s:%ld: no readable id / n: not expected in the output\n", in, lineno);
        } else {
            int created;
            id_entry *e = entry_find(m, q.id, q.len, 1, &created);
            if (!created) m->in_dup++; /* the job rejects every later line with the same id */
            else {
                e->n = (int)n;
                e->line = lineno;
                e->ncounts = (int)n;
                e->counts = diffu_xcalloc((size_t)n, 1);
                m->expected += n;
            }
        }
        req_done(&q);
    }
    diffu_job_util_lines_close(&r);
    return rc < 0 ? -1 : 0;
}

/* Count record (id, sample) of path:lineno; 1 if it is kept (written). */
static int merge_count(merge_ctx *m, const char *id, size_t len, int64_t sample, const char *path, long lineno) {
    char shown[256];
    id_entry *e = entry_find(m, id, len, !m->o->input, NULL);
    if (!e || (e->n >= 0 && sample >= e->n)) {
        m->unexpected++;
        printable(shown, sizeof shown, id, len);
        if (example(m))
            fprintf(m->o->log, "[diffu] merge: %s:%ld: id \"%s\" sample %lld is not asked for by %s%s\n", path, lineno,
                    shown, (long long)sample, m->o->input, !e ? " (unknown id)" : "");
        return 0;
    }
    int keep = 1;
    if (sample >= e->ncounts) {
        int nc = e->ncounts ? e->ncounts : 1;
        while (nc <= sample) nc *= 2;
        e->counts = diffu_xrealloc(e->counts, (size_t)nc);
        memset(e->counts + e->ncounts, 0, (size_t)(nc - e->ncounts));
        e->ncounts = nc;
    }
    if (e->counts[sample] >= 1) {
        m->dups++;
        keep = 0;
        printable(shown, sizeof shown, id, len);
        if (example(m))
            fprintf(m->o->log, "[diffu] merge: %s:%ld: duplicate: id \"%s\" sample %lld%s\n", path, lineno, shown,
                    (long long)sample, m->o->dedupe ? " (dropped: --dedupe)" : "");
    }
    if (e->counts[sample] < 255) e->counts[sample]++;
    return keep;
}

/* One line of a shard output: 0, or -1 with err (not a record, another run, a write error). */
static int merge_line(merge_ctx *m, const char *path, long lineno, const char *line, size_t len, diffu_err *err) {
    if (line[len - 1] != '\n')
        return diffu_err_set(err, "%s:%ld: torn last record (%zu bytes without a line end): the shard's job did not "
                                  "finish; rerun it, or drop the tail with `diffu jobcheck --repair %s`",
                             path, lineno, len, path);
    diffu_err perr, gerr;
    diffu_json_doc *doc = diffu_json_parse(line, len, &perr);
    const diffu_json *o = doc ? diffu_json_root(doc) : NULL;
    const char *id;
    size_t idlen;
    char num[32];
    int64_t sample = -1;
    if (!o || o->type != DJ_OBJ || read_id(o, num, sizeof num, &id, &idlen) != 0 ||
        diffu_json_get_int(o, "sample", 0, 1 << 30, &sample, &gerr) != 0) {
        diffu_err_set(err, "%s:%ld: not a job record (%s)", path, lineno,
                      !doc ? perr.msg : !o || o->type != DJ_OBJ ? "not a JSON object"
                                    : sample < 0 && diffu_json_get(o, "sample") == NULL ? "no \"sample\""
                                    : "needs \"id\" or \"task_id\" (string or integer) and an integer \"sample\" >= 0");
        diffu_json_free(doc);
        return -1;
    }
    m->records++;
    if (run_check(m, o, path, lineno, err)) {
        diffu_json_free(doc);
        return -1;
    }
    int keep = merge_count(m, id, idlen, sample, path, lineno);
    diffu_json_free(doc);
    if (keep && m->w) {
        if (diffu_job_util_afile_write(m->w, line, len, err)) return -1;
        m->written++;
    }
    return 0;
}

static int merge_shard(merge_ctx *m, const char *path, diffu_err *err) {
    diffu_job_util_lines *r = diffu_job_util_lines_open(path, err);
    if (!r) return -1;
    const char *line;
    size_t len;
    int rc;
    while ((rc = diffu_job_util_lines_next(r, &line, &len, err)) == 1)
        if (merge_line(m, path, diffu_job_util_lines_lineno(r), line, len, err)) {
            rc = -1;
            break;
        }
    diffu_job_util_lines_close(&r);
    return rc < 0 ? -1 : 0;
}

/* The missing pairs, the summary, and the verdict. */
static int merge_verdict(merge_ctx *m, diffu_err *err) {
    const diffu_job_split_merge_opts *o = m->o;
    char shown[256];
    for (size_t i = 0; o->input && i < m->n; i++) {
        id_entry *e = &m->e[i];
        for (int s = 0; s < e->n; s++)
            if (!e->counts[s]) {
                m->missing++;
                printable(shown, sizeof shown, m->names.data + e->off, e->len);
                if (example(m))
                    fprintf(o->log, "[diffu] merge: missing: id \"%s\" sample %d (%s:%ld)\n", shown, s, o->input, e->line);
            }
    }
    if (o->input)
        fprintf(o->log, "[diffu] merge: %s: %ld request line(s), %ld id(s), %ld (id, sample) expected%s", o->input,
                m->in_lines, (long)m->n, m->expected, m->in_unreadable || m->in_dup ? ";" : "\n");
    if (o->input && (m->in_unreadable || m->in_dup))
        fprintf(o->log, " %ld line(s) without a readable id, %ld repeated id(s) (the job rejects them)\n",
                m->in_unreadable, m->in_dup);
    fprintf(o->log, "[diffu] merge: %d shard output(s): %ld record(s), %ld duplicate(s), %ld unexpected, %ld missing\n",
            o->n_shards, m->records, m->dups, m->unexpected, m->missing);
    if (m->unexpected)
        return diffu_err_set(err, "%ld record(s) not asked for by %s (another input, or the wrong --n?)", m->unexpected,
                             o->input);
    if (m->dups && !o->dedupe)
        return diffu_err_set(err, "%ld duplicate (id, sample) record(s) (--dedupe keeps the first of each)", m->dups);
    if (m->missing && !o->missing_ok)
        return diffu_err_set(err, "%ld of %ld (id, sample) pair(s) missing (rerun the shards' jobs to resume them; "
                                  "--missing-ok if the job rejected those lines)",
                             m->missing, m->expected);
    return 0;
}

int diffu_job_split_merge(const diffu_job_split_merge_opts *o, diffu_err *err) {
    merge_ctx m = {.o = o, .ids = diffu_job_util_map_new()};
    int rc = o->input ? merge_expect(&m, err) : 0;
    if (!rc && o->output) {
        int gz = strlen(o->output) > 3 && diffu_job_util_is_gz_name(o->output);
        if (!(m.w = diffu_job_util_afile_open(o->output, gz, err))) rc = -1;
    }
    for (int a = 0; a < o->n_shards && !rc; a++) rc = merge_shard(&m, o->shards[a], err);
    if (!rc) rc = merge_verdict(&m, err);
    if (!rc && m.w) {
        rc = diffu_job_util_afile_commit(&m.w, err);
        if (!rc)
            fprintf(o->log, "[diffu] merge: wrote %ld record(s) to %s%s\n", m.written, o->output,
                    m.dups ? " (duplicates dropped)" : "");
    }
    diffu_job_util_afile_abort(&m.w);
    for (size_t i = 0; i < m.n; i++) free(m.e[i].counts);
    free(m.e);
    diffu_text_free(&m.names);
    diffu_job_util_map_free(&m.ids);
    return rc;
}
