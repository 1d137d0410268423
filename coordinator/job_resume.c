/* job_resume.c — see job_resume.h. */
#include "job_resume.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "job_util.h"
#include "json.h"

#define MAX_RECORD_LINE ((size_t)256 << 20)

struct diffu_jobresume {
    diffu_jobresume_report rep;
    diffu_job_util_map *done; /* sample key -> times seen */
};

diffu_jobresume *diffu_jobresume_empty(int gz) {
    diffu_jobresume *r = diffu_xcalloc(1, sizeof *r);
    r->done = diffu_job_util_map_new();
    r->rep.gz = gz;
    return r;
}

void diffu_jobresume_free(diffu_jobresume **rp) {
    if (!rp || !*rp) return;
    diffu_job_util_map_free(&(*rp)->done);
    free(*rp);
    *rp = NULL;
}

const diffu_jobresume_report *diffu_jobresume_get_report(const diffu_jobresume *r) { return &r->rep; }

/* the done-set key of (id, sample) in stackbuf, or in *heap (caller frees) when it does not fit */
static void key_of(char *stackbuf, size_t cap, char **heap, const char *id, size_t id_len, int sample, size_t *klen) {
    size_t need = diffu_job_util_sample_key(stackbuf, cap, id, id_len, sample);
    *heap = NULL;
    if (need > cap) {
        *heap = diffu_xmalloc(need);
        diffu_job_util_sample_key(*heap, need, id, id_len, sample);
    }
    *klen = need;
}

int diffu_jobresume_done(const diffu_jobresume *r, const char *id, size_t id_len, int sample) {
    char buf[256], *heap;
    size_t kl;
    key_of(buf, sizeof buf, &heap, id, id_len, sample, &kl);
    int hit = diffu_job_util_map_get(r->done, heap ? heap : buf, kl, NULL);
    free(heap);
    return hit;
}

int diffu_jobresume_mark(diffu_jobresume *r, const char *id, size_t id_len, int sample) {
    char buf[256], *heap;
    size_t kl;
    key_of(buf, sizeof buf, &heap, id, id_len, sample, &kl);
    const char *k = heap ? heap : buf;
    int64_t seen = 0;
    diffu_job_util_map_get(r->done, k, kl, &seen);
    diffu_job_util_map_put(r->done, k, kl, seen + 1);
    free(heap);
    r->rep.records++;
    if (seen) r->rep.duplicates++;
    else r->rep.distinct++;
    return !seen;
}

/* ------------------------------------------------------------ scanning */

/* A complete line of the member being read. It is judged only when the
 * member turns out complete: a torn member's text may inflate in full (only
 * its trailer missing) and must be dropped, not refused. */
typedef struct {
    char *key;          /* sample key, or NULL when the line is not a record */
    size_t klen;
    diffu_jobresume_key kind;
    char *why;          /* the refusal, for a line that is not a record */
} pend;

typedef struct {
    diffu_jobresume *r;
    const char *path;
    long line;          /* decompressed line number */
    pend *p;            /* records of the current member, committed at its end */
    size_t np, cap;
} scan_ctx;

static void push_pend(scan_ctx *c, char *key, size_t klen, diffu_jobresume_key kind, const char *why) {
    if (c->np == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 16;
        c->p = diffu_xrealloc(c->p, c->cap * sizeof *c->p);
    }
    c->p[c->np].key = key;
    c->p[c->np].klen = klen;
    c->p[c->np].kind = kind;
    c->p[c->np].why = why ? diffu_xstrdup(why) : NULL;
    c->np++;
}

/* Parse one complete line into a pending entry (blank lines are skipped). */
static void take_line(scan_ctx *c, const char *s, size_t n) {
    c->line++;
    int blank = 1;
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r') blank = 0;
    if (blank) return;
    diffu_err e, why;
    diffu_json_doc *d = diffu_json_parse(s, n, &e);
    char ex[128];
    diffu_job_util_excerpt(ex, sizeof ex, s, n, 60);
    if (!d) {
        diffu_err_set(&why,
                      "%s: line %ld is not JSON (%s): \"%s\"; this is not a torn tail but a damaged or foreign file: "
                      "refusing to append to it (move it away, or fix that line)",
                      c->path, c->line, e.msg, ex);
        push_pend(c, NULL, 0, DIFFU_JOBRESUME_KEY_NONE, why.msg);
        return;
    }
    const diffu_json *o = diffu_json_root(d);
    const diffu_json *id = NULL, *smp = NULL;
    diffu_jobresume_key key = DIFFU_JOBRESUME_KEY_NONE;
    if (o->type == DJ_OBJ) {
        smp = diffu_json_get(o, "sample");
        if ((id = diffu_json_get(o, "id"))) key = DIFFU_JOBRESUME_KEY_ID;
        else if ((id = diffu_json_get(o, "task_id"))) key = DIFFU_JOBRESUME_KEY_TASK_ID;
    }
    int ok = id && smp && smp->type == DJ_NUM && smp->u.num.is_int && smp->u.num.i >= 0 &&
             smp->u.num.i < (1 << 30) &&
             ((id->type == DJ_STR && id->u.str.len > 0) || (id->type == DJ_NUM && id->u.num.is_int));
    if (!ok) {
        diffu_err_set(&why,
                      "%s: line %ld is not a diffu record (it needs \"id\" or \"task_id\" and an integer "
                      "\"sample\"): \"%s\"; refusing to append to it (move it away or choose another output)",
                      c->path, c->line, ex);
        push_pend(c, NULL, 0, DIFFU_JOBRESUME_KEY_NONE, why.msg);
        diffu_json_free(d);
        return;
    }
    char idbuf[32];
    const char *ids;
    size_t idl;
    if (id->type == DJ_STR) {
        ids = id->u.str.s;
        idl = id->u.str.len;
    } else {
        snprintf(idbuf, sizeof idbuf, "%lld", (long long)id->u.num.i);
        ids = idbuf;
        idl = strlen(idbuf);
    }
    size_t need = diffu_job_util_sample_key(NULL, 0, ids, idl, (int)smp->u.num.i);
    char *k = diffu_xmalloc(need);
    diffu_job_util_sample_key(k, need, ids, idl, (int)smp->u.num.i);
    diffu_json_free(d);
    push_pend(c, k, need, key, NULL);
}

static void drop_pending(scan_ctx *c) {
    for (size_t i = 0; i < c->np; i++) {
        free(c->p[i].key);
        free(c->p[i].why);
    }
    c->np = 0;
}

/* The pending lines are part of the file for good: judge and count them.
 * -1 with err when one is not a record, or the formats mix. */
static int commit(scan_ctx *c, diffu_err *err) {
    diffu_jobresume *r = c->r;
    int rc = 0;
    for (size_t i = 0; i < c->np && rc == 0; i++) {
        pend *p = &c->p[i];
        if (!p->key) {
            rc = diffu_err_set(err, "%s", p->why);
            break;
        }
        if (r->rep.key == DIFFU_JOBRESUME_KEY_NONE) {
            r->rep.key = p->kind;
        } else if (r->rep.key != p->kind) {
            rc = diffu_err_set(err, "%s: records with \"id\" and with \"task_id\" in one file (two formats); "
                                    "refusing to append to it",
                               c->path);
            break;
        }
        int64_t seen = 0;
        diffu_job_util_map_get(r->done, p->key, p->klen, &seen);
        diffu_job_util_map_put(r->done, p->key, p->klen, seen + 1);
        r->rep.records++;
        if (seen) r->rep.duplicates++;
        else r->rep.distinct++;
    }
    drop_pending(c);
    return rc;
}

/* Copy [from, to) of fd to a new PATH.torn[.k]; the name goes to out. */
static int save_tail(int fd, const char *path, uint64_t from, uint64_t to, char *out, size_t cap, diffu_err *err) {
    int ofd = -1;
    for (int k = 0; k < 1000 && ofd < 0; k++) {
        if (k) snprintf(out, cap, "%s.torn.%d", path, k);
        else snprintf(out, cap, "%s.torn", path);
        ofd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (ofd < 0 && errno != EEXIST)
            return diffu_err_set(err, "%s: cannot create %s to keep the torn tail: %s", path, out, strerror(errno));
    }
    if (ofd < 0) return diffu_err_set(err, "%s: %s.torn.1 .. .999 all exist", path, path);
    char *buf = diffu_xmalloc(1 << 16);
    uint64_t off = from;
    int rc = 0;
    while (off < to && rc == 0) {
        size_t want = to - off < (1u << 16) ? (size_t)(to - off) : (1u << 16);
        ssize_t n = pread(fd, buf, want, (off_t)off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            rc = diffu_err_set(err, "%s: read error while saving the torn tail: %s", path,
                               n < 0 ? strerror(errno) : "unexpected end of file");
            break;
        }
        size_t w = 0;
        while (w < (size_t)n) {
            ssize_t k = write(ofd, buf + w, (size_t)n - w);
            if (k < 0 && errno == EINTR) continue;
            if (k <= 0) {
                rc = diffu_err_set(err, "%s: cannot write %s: %s", path, out, k < 0 ? strerror(errno) : "no progress");
                break;
            }
            w += (size_t)k;
        }
        off += (uint64_t)n;
    }
    free(buf);
    if (rc == 0 && fsync(ofd) != 0) rc = diffu_err_set(err, "%s: cannot sync %s: %s", path, out, strerror(errno));
    if (close(ofd) != 0 && rc == 0) rc = diffu_err_set(err, "%s: cannot close %s: %s", path, out, strerror(errno));
    if (rc) unlink(out);
    return rc;
}

/* The records of the output, line by line through take_line / commit: *good is the end of the last complete
 * record (plain: its newline; gzip: the end of the member holding it), cur the partial line left at the end,
 * *rkind / *fail_member / rerr the reader's failure (kind 0: none). 0, or -1 with err (refused, I/O). */
static int scan_records(diffu_jobresume *r, int fd, const char *path, int gz, diffu_text *cur_out, uint64_t *good_out,
                        int *rkind_out, uint64_t *fail_member_out, diffu_err *rerr_out, diffu_err *err) {
    diffu_job_util_reader *rd = diffu_job_util_reader_new(fd, gz, path);
    scan_ctx c = {r, path, 0, NULL, 0, 0};
    diffu_text cur = *cur_out;
    const size_t CH = 1u << 16;
    char *chunk = diffu_xmalloc(CH);
    uint64_t good = 0;   /* end of the last complete record */
    uint64_t plain_pos = 0;
    int fail = 0;        /* 1 refused / I/O error (err set) */
    int rkind = 0;       /* reader failure kind */
    diffu_err rerr;
    rerr.msg[0] = 0;
    uint64_t fail_member = 0;
    for (;;) {
        long n = diffu_job_util_reader_read(rd, chunk, CH, &rerr);
        if (n < 0) {
            rkind = diffu_job_util_reader_fail_kind(rd);
            fail_member = diffu_job_util_reader_member_start(rd);
            if (rkind == 3) {
                diffu_err_set(err, "%s", rerr.msg);
                fail = 1;
            }
            break;
        }
        if (n == 0 && !diffu_job_util_reader_member_ended(rd)) break; /* clean end */
        const char *p = chunk, *end = chunk + n;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t seg = (size_t)((nl ? nl : end) - p);
            if (cur.len + seg > MAX_RECORD_LINE) {
                diffu_err_set(err, "%s: line %ld is longer than %zu bytes: not a diffu output; refusing to append to it",
                              path, c.line + 1, MAX_RECORD_LINE);
                fail = 1;
                break;
            }
            diffu_text_append(&cur, p, seg);
            if (!nl) break;
            take_line(&c, cur.data, cur.len);
            cur.len = 0;
            p = nl + 1;
            if (!gz) { /* plain: every '\n' ends a record */
                good = plain_pos + (uint64_t)(p - chunk);
                if (commit(&c, err)) {
                    fail = 1;
                    break;
                }
            }
        }
        if (fail) break;
        plain_pos += (uint64_t)n;
        if (gz && diffu_job_util_reader_member_ended(rd) && cur.len == 0) {
            good = diffu_job_util_reader_member_start(rd); /* just past the member */
            if (commit(&c, err)) {
                fail = 1;
                break;
            }
        }
    }
    free(chunk);
    diffu_job_util_reader_free(&rd);
    drop_pending(&c); /* lines of a member that did not complete */
    free(c.p);
    *cur_out = cur;
    *good_out = good;
    *rkind_out = rkind;
    *fail_member_out = fail_member;
    *rerr_out = rerr;
    return fail ? -1 : 0;
}

/* The bytes after the last complete record: described in the report, refused when longer than a record can
 * be, and with repair saved to OUTPUT.torn and cut off (gzip: an empty member keeps the file valid).
 * 0, or -1 with err. */
static int handle_tail(diffu_jobresume *r, int fd, const char *path, int gz, int repair, uint64_t good,
                       const diffu_text *cur, int rkind, uint64_t fail_member, const diffu_err *rerr, diffu_err *err) {
    uint64_t size = r->rep.file_bytes;
    r->rep.good_bytes = good;
    r->rep.dropped_bytes = size - good;
    if (good < size) {
        uint64_t tail = size - good;
        char *what = r->rep.dropped_what;
        size_t wc = sizeof r->rep.dropped_what;
        if (!gz) {
            char ex[200];
            diffu_job_util_excerpt(ex, sizeof ex, cur->data ? cur->data : "", cur->len, 80);
            snprintf(what, wc, "a partial last line of %llu bytes at offset %llu: \"%s\"", (unsigned long long)tail,
                     (unsigned long long)good, ex);
        } else if (rkind == 1) {
            snprintf(what, wc, "%llu bytes from offset %llu: the file ends inside the gzip member that starts at %llu "
                               "(an incomplete record)",
                     (unsigned long long)tail, (unsigned long long)good, (unsigned long long)fail_member);
        } else if (rkind == 2) {
            snprintf(what, wc, "%llu bytes from offset %llu: %.400s", (unsigned long long)tail, (unsigned long long)good,
                     rerr->msg);
        } else {
            snprintf(what, wc, "%llu bytes from offset %llu: complete gzip members whose text ends inside a line "
                               "(a partial record)",
                     (unsigned long long)tail, (unsigned long long)good);
        }
        if (tail > DIFFU_JOBRESUME_MAX_TAIL) {
            diffu_err_set(err, "%s: the damaged tail is %llu bytes, more than one record can be (%s); refusing to "
                               "truncate it: inspect the file or move it away",
                          path, (unsigned long long)tail, what);
            return -1;
        }
        if (repair) {
            if (save_tail(fd, path, good, size, r->rep.saved_to, sizeof r->rep.saved_to, err)) {
                return -1;
            }
            uint64_t hdr = 0;
            if (ftruncate(fd, (off_t)good) != 0 || (gz && good == 0 && diffu_job_util_write_empty_member(fd, 0, &hdr)) ||
                fsync(fd) != 0) {
                diffu_err_set(err, "%s: cannot truncate the torn tail (%s) at offset %llu: %s", path, what,
                              (unsigned long long)good, strerror(errno));
                return -1;
            }
            r->rep.good_bytes = good + hdr; /* gzip: an empty member keeps the file valid for zcat */
            r->rep.repaired = 1;
            DLOG_WARN("%s: dropped a torn tail: %s; the bytes are saved in %s", path, what, r->rep.saved_to);
        }
    }
    return 0;
}

diffu_jobresume *diffu_jobresume_scan_fd(int fd, const char *path, int gz, int repair, diffu_err *err) {
    struct stat st;
    if (fstat(fd, &st) != 0) {
        diffu_err_set(err, "%s: cannot stat: %s", path, strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        diffu_err_set(err, "%s: not a regular file (a job output must be a file it can resume)", path);
        return NULL;
    }
    diffu_jobresume *r = diffu_jobresume_empty(gz);
    r->rep.file_bytes = (uint64_t)st.st_size;
    if (st.st_size == 0) {
        if (gz && repair) { /* created but killed before its first member: make it valid gzip */
            if (diffu_job_util_write_empty_member(fd, 0, &r->rep.good_bytes) || fsync(fd) != 0) {
                diffu_err_set(err, "%s: cannot write: %s", path, strerror(errno));
                diffu_jobresume_free(&r);
                return NULL;
            }
            r->rep.repaired = 1;
        }
        return r;
    }
    if (gz) {
        int g = diffu_job_util_sniff_gzip(fd, NULL);
        unsigned char b0 = 0;
        if (g == 0 && st.st_size == 1 && pread(fd, &b0, 1, 0) == 1 && b0 == 0x1f) g = 1; /* a torn first byte */
        if (g <= 0) {
            unsigned char head[16];
            ssize_t k = pread(fd, head, sizeof head, 0);
            char ex[80];
            diffu_job_util_excerpt(ex, sizeof ex, (const char *)head, k > 0 ? (size_t)k : 0, 12);
            diffu_err_set(err, "%s: named .gz but not gzip data (it starts with \"%s\"); refusing to append to it",
                          path, ex);
            diffu_jobresume_free(&r);
            return NULL;
        }
    }
    if (lseek(fd, 0, SEEK_SET) != 0) {
        diffu_err_set(err, "%s: cannot seek: %s", path, strerror(errno));
        diffu_jobresume_free(&r);
        return NULL;
    }
    diffu_text cur = {0};
    uint64_t good = 0, fail_member = 0;
    int rkind = 0;
    diffu_err rerr;
    int rc = scan_records(r, fd, path, gz, &cur, &good, &rkind, &fail_member, &rerr, err);
    if (!rc) rc = handle_tail(r, fd, path, gz, repair, good, &cur, rkind, fail_member, &rerr, err);
    diffu_text_free(&cur);
    if (rc) diffu_jobresume_free(&r);
    return r;
}

diffu_jobresume *diffu_jobresume_scan_path(const char *path, int repair, diffu_err *err) {
    int fd = open(path, (repair ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) {
        diffu_err_set(err, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (flock(fd, (repair ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
        diffu_err_set(err, "%s: %s", path,
                      errno == EWOULDBLOCK ? "another process is writing it (locked); wait for it to finish"
                                           : strerror(errno));
        close(fd);
        return NULL;
    }
    int gz = diffu_job_util_is_gz_name(path);
    if (!gz) {
        int g = diffu_job_util_sniff_gzip(fd, NULL);
        gz = g > 0;
    }
    diffu_jobresume *r = diffu_jobresume_scan_fd(fd, path, gz, repair, err);
    close(fd); /* releases the lock */
    return r;
}
