/* cmd_split.c — `diffu split` and `diffu merge`: one batch-job input cut into
 * K shards for a job array, and the shards' outputs put back together with
 * every (id, sample) checked to be there exactly once.
 *
 *   diffu split --input IN.jsonl[.gz] --shards K --out-prefix P [--contiguous] [--force]
 *     writes P-00000-of-0000K.jsonl[.gz] ... (gzip when IN is gzip, by its
 *     content, as the job reads it) and prints their paths on stdout. Lines are
 *     dealt round-robin (line i to shard i mod K; --contiguous: K consecutive
 *     blocks, sizes differing by at most one). Every non-blank line is copied
 *     byte for byte with its own line ending (CRLF stays CRLF; a last line
 *     without one gets '\n'), whether or not the job will accept it: the job
 *     validates and rejects, not the splitter. Whitespace-only lines carry no
 *     request (the job skips them) and are dropped, so no shard is blank;
 *     fewer non-blank lines than K is an error. A UTF-8 BOM stays on the
 *     first line (the job skips a BOM before a file's first line). Each shard
 *     is written to a temporary file and renamed; an existing shard is an
 *     error without --force. Deterministic: the same input gives the same
 *     shards.
 *
 *   diffu merge [--output OUT.jsonl[.gz]] [--input IN.jsonl[.gz] [--n N]] [--missing-ok] [--dedupe] SHARD_OUT...
 *     reads the shard outputs (plain or gzip, any number of gzip members), in
 *     the order given, and checks every line is a complete job record (a JSON
 *     object with "id" or "task_id" — string or integer, 7 and "7" being the
 *     same id, as the job reads them — and "sample", an integer >= 0, ending
 *     in '\n'; a torn last record is an error: finish or repair that shard).
 *     Every (id, sample) must appear exactly once (--dedupe: keep the first,
 *     drop and count the others). With --input: the expected pairs are, for
 *     every input line with a readable id (the first line of an id, as the
 *     job does), samples 0 .. n-1 with n the line's "n" or --n (default 1);
 *     a missing pair fails (--missing-ok: reported, not fatal — e.g. lines
 *     the job rejected), a record the input does not ask for always fails.
 *     With --output the records are written byte for byte, in shard order,
 *     to a temporary file renamed to OUT only when every check passed
 *     (gzip when OUT ends in .gz). Without --output: check only.
 *     Exit 0 ok; 1 with a one-line reason as the last line on stderr (up to 10
 *     examples before it); 2 usage.
 *
 * Memory: one line at a time, plus a hash map of ids (with a count per
 * sample). zlib reads plain files transparently (gzdirect), so one path reads
 * both. Not collective; single-threaded. */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "args.h"
#include "commands.h"
#include "hash.h"
#include "json.h"
#include "log.h"

/* ---- a line reader over zlib (plain or gzip) ------------------------------ */

typedef struct {
    gzFile gz;
    const char *path;
    char *buf;            /* read-ahead */
    size_t cap, pos, end;
    int eof;
    char *line;           /* the current line, with its terminator when it had one */
    size_t len, lcap;
    long lineno;
    int is_gz;            /* known after the first read */
} lreader;

static int lr_open(lreader *r, const char *path, diffu_err *err) {
    memset(r, 0, sizeof *r);
    r->path = path;
    struct stat st;
    if (stat(path, &st) != 0) return diffu_err_set(err, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode)) return diffu_err_set(err, "%s: not a regular file", path);
    r->gz = gzopen(path, "rb");
    if (!r->gz) return diffu_err_set(err, "%s: %s", path, errno ? strerror(errno) : "cannot open");
    gzbuffer(r->gz, 1 << 17);
    r->cap = 1 << 16;
    r->buf = diffu_xmalloc(r->cap);
    r->is_gz = -1;
    return 0;
}

static void lr_close(lreader *r) {
    if (r->gz) gzclose(r->gz);
    free(r->buf);
    free(r->line);
    memset(r, 0, sizeof *r);
}

/* 1: a line in r->line/r->len (with '\n' unless it is a last unterminated
 * line); 0: end of file; -1: error (err). */
static int lr_next(lreader *r, diffu_err *err) {
    r->len = 0;
    for (;;) {
        if (r->pos == r->end) {
            if (r->eof) break;
            int n = gzread(r->gz, r->buf, (unsigned)r->cap);
            if (r->is_gz < 0) r->is_gz = !gzdirect(r->gz);
            if (n < 0) {
                int zerr;
                const char *m = gzerror(r->gz, &zerr);
                return diffu_err_set(err, "%s: corrupt gzip data after %ld line(s) (zlib: %s)", r->path, r->lineno, m);
            }
            if (n == 0) {
                int zerr;
                const char *m = gzerror(r->gz, &zerr);
                if (zerr != Z_OK && zerr != Z_STREAM_END)
                    return diffu_err_set(err, "%s: truncated or corrupt gzip data after %ld line(s) (zlib: %s)", r->path,
                                         r->lineno, m);
                r->eof = 1;
                break;
            }
            r->pos = 0;
            r->end = (size_t)n;
        }
        char *nl = memchr(r->buf + r->pos, '\n', r->end - r->pos);
        size_t take = nl ? (size_t)(nl - (r->buf + r->pos)) + 1 : r->end - r->pos;
        if (r->len + take + 1 > r->lcap) {
            while (r->len + take + 1 > r->lcap) r->lcap = r->lcap ? r->lcap * 2 : 4096;
            r->line = diffu_xrealloc(r->line, r->lcap);
        }
        memcpy(r->line + r->len, r->buf + r->pos, take);
        r->len += take;
        r->line[r->len] = 0;
        r->pos += take;
        if (nl) break;
    }
    if (!r->len) return 0;
    r->lineno++;
    return 1;
}

/* The current line as JSON text: without a UTF-8 BOM on the file's first line
 * (the job skips it there, and so must the id it reads). */
static const char *lr_json(const lreader *r, size_t *n) {
    if (r->lineno == 1 && r->len >= 3 && !memcmp(r->line, "\xef\xbb\xbf", 3)) {
        *n = r->len - 3;
        return r->line + 3;
    }
    *n = r->len;
    return r->line;
}

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

/* ---- writing a plain or gzip file through a temporary + rename ------------ */

typedef struct {
    char final[4096], tmp[4200];
    int gz;
    gzFile g;
    FILE *f;
} wfile;

static int wf_open(wfile *w, const char *path, int gz, diffu_err *err) {
    memset(w, 0, sizeof *w);
    if (strlen(path) >= sizeof w->final) return diffu_err_set(err, "%s: path too long", path);
    snprintf(w->final, sizeof w->final, "%s", path);
    snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%ld", path, (long)getpid());
    w->gz = gz;
    if (gz) w->g = gzopen(w->tmp, "wb6");
    else w->f = fopen(w->tmp, "wb");
    if (!w->g && !w->f) return diffu_err_set(err, "%s: cannot create: %s", w->tmp, strerror(errno));
    return 0;
}

static int wf_write(wfile *w, const char *s, size_t n, diffu_err *err) {
    if (!n) return 0;
    if (w->gz ? gzwrite(w->g, s, (unsigned)n) != (int)n : fwrite(s, 1, n, w->f) != n)
        return diffu_err_set(err, "%s: write failed: %s", w->tmp, strerror(errno));
    return 0;
}

static void wf_abort(wfile *w) {
    if (w->g) gzclose(w->g);
    if (w->f) fclose(w->f);
    w->g = NULL;
    w->f = NULL;
    unlink(w->tmp);
}

static int wf_commit(wfile *w, diffu_err *err) {
    int bad = 0;
    if (w->gz) bad = gzclose(w->g) != Z_OK;
    else bad = fflush(w->f) != 0 || fsync(fileno(w->f)) != 0 || fclose(w->f) != 0;
    w->g = NULL;
    w->f = NULL;
    if (bad) {
        unlink(w->tmp);
        return diffu_err_set(err, "%s: write failed: %s", w->tmp, strerror(errno));
    }
    if (rename(w->tmp, w->final) != 0) {
        int e = errno;
        unlink(w->tmp);
        return diffu_err_set(err, "%s: cannot rename to %s: %s", w->tmp, w->final, strerror(e));
    }
    return 0;
}

/* ---- the id map (split: which shard an id went to; merge: samples seen) ----------------------------------------------------- */

typedef struct {
    char *id;
    size_t len;
    long line;            /* input line (with --input), else 0 */
    int n;                /* expected samples; -1 unknown (no --input) */
    int ncounts;          /* size of counts */
    uint8_t *counts;      /* records seen per sample (saturating) */
} id_entry;

typedef struct {
    id_entry *e;
    size_t n, cap;
    int32_t *slots;       /* index + 1, 0 empty */
    size_t nslots;
} id_map;

static uint64_t fnv64(const char *s, size_t n) { return diffu_fnv64(DIFFU_FNV64_INIT, s, n); }

static id_entry *map_find(id_map *m, const char *id, size_t len, int create, int *created) {
    if (created) *created = 0;
    if (!m->nslots) {
        m->nslots = 1024;
        m->slots = diffu_xcalloc(m->nslots, sizeof *m->slots);
    }
    size_t mask = m->nslots - 1, i = (size_t)fnv64(id, len) & mask;
    for (;; i = (i + 1) & mask) {
        int32_t s = m->slots[i];
        if (!s) break;
        id_entry *e = &m->e[s - 1];
        if (e->len == len && !memcmp(e->id, id, len)) return e;
    }
    if (!create) return NULL;
    if (m->n == m->cap) {
        m->cap = m->cap ? m->cap * 2 : 1024;
        m->e = diffu_xrealloc(m->e, m->cap * sizeof *m->e);
    }
    id_entry *e = &m->e[m->n];
    memset(e, 0, sizeof *e);
    e->id = diffu_xmalloc(len + 1);
    memcpy(e->id, id, len);
    e->id[len] = 0;
    e->len = len;
    e->n = -1;
    m->n++;
    m->slots[i] = (int32_t)m->n;
    if (created) *created = 1;
    if (m->n * 2 > m->nslots) { /* grow and rehash */
        size_t ns = m->nslots * 2;
        int32_t *sl = diffu_xcalloc(ns, sizeof *sl);
        for (size_t j = 0; j < m->n; j++) {
            size_t p = (size_t)fnv64(m->e[j].id, m->e[j].len) & (ns - 1);
            while (sl[p]) p = (p + 1) & (ns - 1);
            sl[p] = (int32_t)(j + 1);
        }
        free(m->slots);
        m->slots = sl;
        m->nslots = ns;
        return &m->e[m->n - 1];
    }
    return e;
}

static void map_free(id_map *m) {
    for (size_t i = 0; i < m->n; i++) {
        free(m->e[i].id);
        free(m->e[i].counts);
    }
    free(m->e);
    free(m->slots);
}

/* The id of a record or request: "id", else "task_id"; a string or an
 * integer (decimal text). 0 ok, 1 absent, -1 wrong type. */
static int read_id(const diffu_json *o, char *buf, size_t cap, const char **id, size_t *len, const char **field) {
    const diffu_json *v = diffu_json_get(o, "id");
    *field = "id";
    if (!v) {
        v = diffu_json_get(o, "task_id");
        *field = "task_id";
    }
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

/* Split: 1 if the line's id (as the job reads it) was seen on an earlier
 * line (*e: that id's entry, whose .line holds its shard); 0 otherwise, with
 * the id recorded (*e: the new entry, NULL when the line has no readable id:
 * such a line is dealt like any other, the job will reject it). */
static int line_id_repeat(id_map *m, const lreader *r, id_entry **e) {
    if (e) *e = NULL;
    diffu_err perr;
    size_t len;
    const char *line = lr_json(r, &len);
    diffu_json_doc *doc = diffu_json_parse(line, len, &perr);
    const diffu_json *o = doc ? diffu_json_root(doc) : NULL;
    const char *id, *field;
    size_t idlen;
    char num[32];
    int rep = 0;
    if (o && o->type == DJ_OBJ && read_id(o, num, sizeof num, &id, &idlen, &field) == 0) {
        int created;
        id_entry *x = map_find(m, id, idlen, 1, &created);
        rep = !created;
        if (e) *e = x;
    }
    diffu_json_free(doc);
    return rep;
}

/* ---- split ----------------------------------------------------------------- */

static void split_usage(FILE *f) {
    fprintf(f,
            "usage: diffu split --input IN.jsonl[.gz] --shards K --out-prefix P [--contiguous] [--force]\n"
            "  Cuts a batch-job input into K shards P-00000-of-0000K.jsonl[.gz] (gzip when IN is gzip) for a job array;\n"
            "  prints their paths. Lines round-robin (--contiguous: consecutive blocks), copied byte for byte;\n"
            "  whitespace-only lines are dropped. --force replaces existing shards.\n");
}

static void shard_name(char *buf, size_t cap, const char *prefix, int i, int k, int gz) {
    snprintf(buf, cap, "%s-%05d-of-%05d.jsonl%s", prefix, i, k, gz ? ".gz" : "");
}

int cmd_split(int argc, char **argv) {
    static const struct option opts[] = {{"input", 1, 0, 'i'},      {"shards", 1, 0, 'k'}, {"out-prefix", 1, 0, 'o'},
                                         {"contiguous", 0, 0, 'c'}, {"force", 0, 0, 'f'},  {"help", 0, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *in = NULL, *prefix = NULL;
    long long k = 0;
    int contiguous = 0, force = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'i': in = optarg; break;
        case 'k': if (arg_int("split", "--shards", optarg, 1, 99999, &k)) return 2; break;
        case 'o': prefix = optarg; break;
        case 'c': contiguous = 1; break;
        case 'f': force = 1; break;
        case 'h': split_usage(stdout); return 0;
        default: split_usage(stderr); return 2;
        }
    }
    if (!in || !k || !prefix || optind != argc) {
        fprintf(stderr, "diffu split: --input, --shards and --out-prefix are required (and no other arguments)\n");
        return 2;
    }
    diffu_err err;
    lreader r;
    /* pass 1: count the non-blank lines (and learn whether IN is gzip) */
    long total = 0, blank = 0, repeats = 0;
    id_map seen = {0};
    if (lr_open(&r, in, &err)) goto fail;
    int rc;
    while ((rc = lr_next(&r, &err)) == 1) {
        if (is_blank(r.line, r.len)) blank++;
        else if (line_id_repeat(&seen, &r, NULL)) repeats++;
        else total++;
    }
    int gz = r.is_gz > 0;
    lr_close(&r);
    map_free(&seen);
    memset(&seen, 0, sizeof seen);
    if (rc < 0) goto fail;
    if (total < k) {
        diffu_err_set(&err, "%s: %ld non-blank line(s) with distinct ids, fewer than --shards %lld (no shard may be empty)", in,
                      total, k);
        goto fail;
    }
    int K = (int)k;
    wfile *w = diffu_xcalloc((size_t)K, sizeof *w);
    long *counts = diffu_xcalloc((size_t)K, sizeof *counts);
    char name[4096];
    int opened = 0;
    for (int i = 0; i < K; i++) {
        shard_name(name, sizeof name, prefix, i, K, gz);
        struct stat st;
        if (!force && stat(name, &st) == 0) {
            diffu_err_set(&err, "%s exists (--force replaces it)", name);
            goto fail_w;
        }
        if (wf_open(&w[i], name, gz, &err)) goto fail_w;
        opened = i + 1;
    }
    /* pass 2: deal the lines */
    if (lr_open(&r, in, &err)) goto fail_w;
    long idx = 0;
    long per = total / K, extra = total % K; /* contiguous: the first `extra` shards get per + 1 */
    int werr = 0;
    long nrep = 0;
    while (!werr && (rc = lr_next(&r, &err)) == 1) {
        if (is_blank(r.line, r.len)) continue;
        id_entry *e = NULL;
        int s;
        if (line_id_repeat(&seen, &r, &e)) { /* a repeated id goes where its first line went */
            s = (int)e->line;
            nrep++;
        } else {
            if (!contiguous) s = (int)(idx % K);
            else {
                long cut = extra * (per + 1);
                s = idx < cut ? (int)(idx / (per + 1)) : (int)(extra + (idx - cut) / per);
            }
            idx++;
            if (e) e->line = s;
        }
        werr = wf_write(&w[s], r.line, r.len, &err) != 0 ||
               (r.line[r.len - 1] != '\n' && wf_write(&w[s], "\n", 1, &err) != 0);
        counts[s]++;
    }
    lr_close(&r);
    map_free(&seen);
    memset(&seen, 0, sizeof seen);
    if (werr || rc < 0) goto fail_w;
    if (idx != total || nrep != repeats) { /* the file changed between the passes */
        diffu_err_set(&err, "%s changed while being split (%ld non-blank lines, then %ld)", in, total + repeats, idx + nrep);
        goto fail_w;
    }
    for (int i = 0; i < K; i++)
        if (wf_commit(&w[i], &err)) {
            for (int j = i + 1; j < K; j++) wf_abort(&w[j]);
            free(w);
            free(counts);
            goto fail;
        }
    for (int i = 0; i < K; i++) printf("%s\n", w[i].final);
    fprintf(stderr, "[diffu] split %s: %ld line(s) into %d %s%s shard(s) of %ld..%ld line(s)\n", in, total, K,
            gz ? "gzip " : "", contiguous ? "contiguous" : "round-robin", per, per + (extra ? 1 : 0));
    if (blank) fprintf(stderr, "[diffu] split %s: %ld whitespace-only line(s) dropped\n", in, blank);
    if (repeats)
        fprintf(stderr, "[diffu] split %s: %ld line(s) repeat an earlier line's id: each went to that line's shard, after it "
                        "(the job rejects them as it would unsplit)\n", in, repeats);
    free(w);
    free(counts);
    return 0;

fail_w:
    map_free(&seen);
    for (int i = 0; i < opened; i++) wf_abort(&w[i]);
    free(w);
    free(counts);
fail:
    fprintf(stderr, "diffu split: error: %s\n", err.msg);
    return 1;
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

static void merge_usage(FILE *f) {
    fprintf(f,
            "usage: diffu merge [--output OUT.jsonl[.gz]] [--input IN.jsonl[.gz] [--n N]] [--missing-ok] [--dedupe]\n"
            "                   [--allow-mixed-runs] SHARD_OUT...\n"
            "  Concatenates job outputs (plain or gzip) byte for byte, checking every line is a job record and every\n"
            "  (id, sample) appears exactly once. With --input, every input line's id must have samples 0..n-1 (n from\n"
            "  the line, else --n, default 1), and nothing else. Writes OUT (gzip if it ends in .gz) only when all\n"
            "  checks pass; without --output it only checks.\n"
            "  --missing-ok   report missing (id, sample) pairs but do not fail (e.g. lines the job rejected)\n"
            "  --dedupe       keep the first copy of a duplicated (id, sample), drop the others (counted)\n"
            "  --allow-mixed-runs  merge records of different runs (their \"run\" ids differ: another model or\n"
            "                 other generation settings; coordinator/job_manifest.h); refused otherwise\n"
            "  exit: 0 ok, 1 a check failed (the reason is the last line on stderr), 2 usage\n");
}

#define MAX_EXAMPLES 10

/* The run of every record ("run": {"id", "model", ...}, coordinator/job_manifest.h;
 * records of an older diffu have none): all must be one run unless mixed_ok. */
typedef struct {
    int seen;
    char id[64], model[256], where[600];
    long mixed;
} run_state;

static void run_of(const diffu_json *o, char *id, size_t idc, char *model, size_t mc) {
    const diffu_json *run = diffu_json_get(o, "run");
    const diffu_json *v = run && run->type == DJ_OBJ ? diffu_json_get(run, "id") : NULL;
    const diffu_json *mv = run && run->type == DJ_OBJ ? diffu_json_get(run, "model") : NULL;
    snprintf(id, idc, "%s", v && v->type == DJ_STR ? v->u.str.s : "(none: no \"run\")");
    snprintf(model, mc, "%s", mv && mv->type == DJ_STR ? mv->u.str.s : "?");
}

static int run_check(run_state *st, const diffu_json *o, const char *path, long line, int mixed_ok, diffu_err *err) {
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
    if (st->mixed++ == 0 || !mixed_ok) {
        if (!mixed_ok) {
            diffu_err_set(err, "records of different runs: %s:%ld is run %s (model %s), %s is run %s (model %s): another"
                               " model or other generation settings (see each output's .manifest.json);"
                               " --allow-mixed-runs merges them anyway",
                          path, line, id, model, st->where, st->id, st->model);
            return -1;
        }
        fprintf(stderr, "[diffu] merge: %s:%ld: run %s (model %s) differs from %s's run %s: merged (--allow-mixed-runs)\n",
                path, line, id, model, st->where, st->id);
    }
    return 0;
}

int cmd_merge(int argc, char **argv) {
    static const struct option opts[] = {{"output", 1, 0, 'o'}, {"input", 1, 0, 'i'},      {"n", 1, 0, 'n'},
                                         {"dedupe", 0, 0, 'd'}, {"missing-ok", 0, 0, 'm'}, {"help", 0, 0, 'h'},
                                         {"allow-mixed-runs", 0, 0, 'x'}, {0, 0, 0, 0}};
    const char *out = NULL, *in = NULL;
    long long defn = 1;
    int dedupe = 0, missing_ok = 0, mixed_ok = 0;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'i': in = optarg; break;
        case 'n': if (arg_int("merge", "--n", optarg, 1, 65536, &defn)) return 2; break;
        case 'd': dedupe = 1; break;
        case 'm': missing_ok = 1; break;
        case 'x': mixed_ok = 1; break;
        case 'h': merge_usage(stdout); return 0;
        default: merge_usage(stderr); return 2;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "diffu merge: give at least one shard output (diffu merge --help)\n");
        return 2;
    }
    diffu_err err = {""};
    id_map m = {0};
    run_state rc_state = {0};
    lreader r;
    wfile w;
    int wopen = 0, rc, fatal = 0;
    char num[32], shown[256];
    long in_lines = 0, in_unreadable = 0, in_dup = 0, expected = 0;
    long records = 0, dups = 0, unexpected = 0, written = 0, n_examples = 0;

    if (in) {
        if (lr_open(&r, in, &err)) goto fail;
        while ((rc = lr_next(&r, &err)) == 1) {
            if (is_blank(r.line, r.len)) continue;
            in_lines++;
            diffu_err perr;
            size_t jn;
            const char *js = lr_json(&r, &jn);
            diffu_json_doc *doc = diffu_json_parse(js, jn, &perr);
            const diffu_json *o = doc ? diffu_json_root(doc) : NULL;
            const char *id, *field;
            size_t len;
            int64_t n = defn;
            int bad = !o || o->type != DJ_OBJ || read_id(o, num, sizeof num, &id, &len, &field) != 0;
            if (!bad) {
                const diffu_json *nv = diffu_json_get(o, "n");
                if (nv && nv->type != DJ_NULL) {
                    if (nv->type == DJ_NUM && nv->u.num.is_int && nv->u.num.i >= 1 && nv->u.num.i <= 65536) n = nv->u.num.i;
                    else bad = 1;
                }
            }
            if (bad) {
                in_unreadable++;
                if (n_examples++ < MAX_EXAMPLES)
                    fprintf(stderr, "[diffu] merge: %s:%ld: no readable id / n: not expected in the output\n", in, r.lineno);
            } else {
                int created;
                id_entry *e = map_find(&m, id, len, 1, &created);
                if (!created) in_dup++; /* the job rejects every later line with the same id */
                else {
                    e->n = (int)n;
                    e->line = r.lineno;
                    e->ncounts = (int)n;
                    e->counts = diffu_xcalloc((size_t)n, 1);
                    expected += n;
                }
            }
            diffu_json_free(doc);
        }
        lr_close(&r);
        if (rc < 0) goto fail;
    }
    if (out) {
        size_t ol = strlen(out);
        if (wf_open(&w, out, ol > 3 && !strcmp(out + ol - 3, ".gz"), &err)) goto fail;
        wopen = 1;
    }
    for (int a = optind; a < argc && !fatal; a++) {
        const char *path = argv[a];
        if (lr_open(&r, path, &err)) goto fail;
        while ((rc = lr_next(&r, &err)) == 1) {
            if (r.line[r.len - 1] != '\n') {
                diffu_err_set(&err, "%s:%ld: torn last record (%zu bytes without a line end): the shard's job did not "
                                    "finish; rerun it, or drop the tail with `diffu jobcheck --repair %s`",
                              path, r.lineno, r.len, path);
                rc = -1;
                break;
            }
            diffu_err perr;
            diffu_json_doc *doc = diffu_json_parse(r.line, r.len, &perr);
            const diffu_json *o = doc ? diffu_json_root(doc) : NULL;
            const char *id, *field;
            size_t len;
            int64_t sample = -1;
            diffu_err gerr;
            if (!o || o->type != DJ_OBJ || read_id(o, num, sizeof num, &id, &len, &field) != 0 ||
                diffu_json_get_int(o, "sample", 0, 1 << 30, &sample, &gerr) != 0) {
                diffu_err_set(&err, "%s:%ld: not a job record (%s)", path, r.lineno,
                              !doc ? perr.msg : !o || o->type != DJ_OBJ ? "not a JSON object"
                                            : sample < 0 && diffu_json_get(o, "sample") == NULL ? "no \"sample\""
                                            : "needs \"id\" or \"task_id\" (string or integer) and an integer \"sample\" >= 0");
                diffu_json_free(doc);
                rc = -1;
                break;
            }
            records++;
            if (run_check(&rc_state, o, path, r.lineno, mixed_ok, &err)) {
                diffu_json_free(doc);
                rc = -1;
                break;
            }
            id_entry *e = map_find(&m, id, len, !in, NULL);
            int keep = 1;
            if (!e || (e->n >= 0 && sample >= e->n)) {
                unexpected++;
                printable(shown, sizeof shown, id, len);
                if (n_examples++ < MAX_EXAMPLES)
                    fprintf(stderr, "[diffu] merge: %s:%ld: id \"%s\" sample %lld is not asked for by %s%s\n", path,
                            r.lineno, shown, (long long)sample, in, !e ? " (unknown id)" : "");
                keep = 0;
            } else {
                if (sample >= e->ncounts) {
                    int nc = e->ncounts ? e->ncounts : 1;
                    while (nc <= sample) nc *= 2;
                    e->counts = diffu_xrealloc(e->counts, (size_t)nc);
                    memset(e->counts + e->ncounts, 0, (size_t)(nc - e->ncounts));
                    e->ncounts = nc;
                }
                if (e->counts[sample] >= 1) {
                    dups++;
                    keep = 0;
                    printable(shown, sizeof shown, id, len);
                    if (n_examples++ < MAX_EXAMPLES)
                        fprintf(stderr, "[diffu] merge: %s:%ld: duplicate: id \"%s\" sample %lld%s\n", path, r.lineno,
                                shown, (long long)sample, dedupe ? " (dropped: --dedupe)" : "");
                }
                if (e->counts[sample] < 255) e->counts[sample]++;
            }
            diffu_json_free(doc);
            if (keep && wopen) {
                if (wf_write(&w, r.line, r.len, &err)) {
                    rc = -1;
                    break;
                }
                written++;
            }
        }
        lr_close(&r);
        if (rc < 0) goto fail;
    }
    /* missing pairs */
    long missing = 0;
    if (in) {
        for (size_t i = 0; i < m.n; i++) {
            id_entry *e = &m.e[i];
            for (int s = 0; s < e->n; s++)
                if (!e->counts[s]) {
                    missing++;
                    printable(shown, sizeof shown, e->id, e->len);
                    if (n_examples++ < MAX_EXAMPLES)
                        fprintf(stderr, "[diffu] merge: missing: id \"%s\" sample %d (%s:%ld)\n", shown, s, in, e->line);
                }
        }
    }
    if (in)
        fprintf(stderr, "[diffu] merge: %s: %ld request line(s), %ld id(s), %ld (id, sample) expected%s", in, in_lines,
                (long)m.n, expected, in_unreadable || in_dup ? ";" : "\n");
    if (in && (in_unreadable || in_dup))
        fprintf(stderr, " %ld line(s) without a readable id, %ld repeated id(s) (the job rejects them)\n", in_unreadable,
                in_dup);
    fprintf(stderr, "[diffu] merge: %d shard output(s): %ld record(s), %ld duplicate(s), %ld unexpected, %ld missing\n",
            argc - optind, records, dups, unexpected, missing);
    if (unexpected) {
        diffu_err_set(&err, "%ld record(s) not asked for by %s (another input, or the wrong --n?)", unexpected, in);
        goto fail;
    }
    if (dups && !dedupe) {
        diffu_err_set(&err, "%ld duplicate (id, sample) record(s) (--dedupe keeps the first of each)", dups);
        goto fail;
    }
    if (missing && !missing_ok) {
        diffu_err_set(&err, "%ld of %ld (id, sample) pair(s) missing (rerun the shards' jobs to resume them; --missing-ok "
                            "if the job rejected those lines)",
                      missing, expected);
        goto fail;
    }
    if (wopen) {
        wopen = 0;
        if (wf_commit(&w, &err)) goto fail;
        fprintf(stderr, "[diffu] merge: wrote %ld record(s) to %s%s\n", written, out,
                dups ? " (duplicates dropped)" : "");
    }
    map_free(&m);
    return 0;

fail:
    if (wopen) wf_abort(&w);
    map_free(&m);
    fprintf(stderr, "diffu merge: error: %s\n", err.msg);
    return 1;
}
