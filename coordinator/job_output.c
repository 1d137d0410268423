/* job_output.c — see job_output.h. */
#include "job_output.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "job_util.h"

struct diffu_jobout {
    char *path;
    diffu_jobout_opts o;
    int fd;
    int gz;
    uint64_t off;    /* end of the last complete record = file size */
    int failed;
    char fail_msg[1024];
    long written;
    diffu_jobresume *rs;
    diffu_job_util_deflater *dfl;
    diffu_text line, member;
    pthread_mutex_t mu;
};

static const char *const FORMATS[] = {"diffu", "evalplus", "humaneval"};

int diffu_jobout_format_parse(const char *s) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, FORMATS[i])) return i;
    return -1;
}
const char *diffu_jobout_format_name(diffu_jobout_format f) { return (unsigned)f < 3 ? FORMATS[f] : "?"; }
const char *diffu_jobout_finish_name(diffu_jobout_finish f) { return f == DIFFU_FINISH_STOP ? "stop" : "length"; }

void diffu_jobout_opts_default(diffu_jobout_opts *o) {
    memset(o, 0, sizeof *o);
    o->format = DIFFU_JOBOUT_DIFFU;
    o->gzip = -1;
    o->level = 6;
    o->sync = 1;
}

/* ------------------------------------------------------------ code extraction */

/* i is at a line start: does the line open/close a fence (optional indent, ```)? */
static int fence_at(const char *s, size_t n, size_t i) {
    while (i < n && (s[i] == ' ' || s[i] == '\t')) i++;
    return n - i >= 3 && !memcmp(s + i, "```", 3);
}

/* start of the first fence line at or after from, or n */
static size_t next_fence(const char *s, size_t n, size_t from) {
    size_t i = from;
    while (i < n) {
        if ((i == 0 || s[i - 1] == '\n') && fence_at(s, n, i)) return i;
        const char *nl = memchr(s + i, '\n', n - i);
        if (!nl) break;
        i = (size_t)(nl - s) + 1;
    }
    return n;
}

size_t diffu_jobout_extract_code(const char *prefill, const char *text, size_t n, size_t *start) {
    int open_in_prefill = 0;
    if (prefill) {
        size_t pl = strlen(prefill);
        if (pl && prefill[pl - 1] == '\n') {
            size_t ls = pl - 1;
            while (ls > 0 && prefill[ls - 1] != '\n') ls--;
            open_in_prefill = fence_at(prefill, pl - 1, ls);
        }
    }
    if (open_in_prefill) {
        *start = 0;
        return next_fence(text, n, 0);
    }
    size_t f = next_fence(text, n, 0);
    if (f == n) {
        *start = 0;
        return n;
    }
    const char *nl = memchr(text + f, '\n', n - f);
    size_t b = nl ? (size_t)(nl - text) + 1 : n;
    size_t e = next_fence(text, n, b);
    *start = b;
    return e - b;
}

/* ------------------------------------------------------------ encoding */

static void put_id(diffu_text *t, const diffu_jobin_req *r, int force_str) {
    if (r->id_is_int && !force_str) diffu_job_util_put(t, r->id);
    else diffu_job_util_put_str(t, r->id, r->id_len);
}

static void put_ids(diffu_text *t, const char *key, const int32_t *v, int n) {
    diffu_job_util_put_key(t, key, 0);
    diffu_job_util_put(t, "[");
    for (int i = 0; i < n; i++) {
        if (i) diffu_job_util_put(t, ",");
        diffu_job_util_put_int(t, v[i]);
    }
    diffu_job_util_put(t, "]");
}

void diffu_jobout_encode(const diffu_jobout_opts *o, const diffu_jobout_rec *rec, diffu_text *t) {
    const diffu_jobin_req *r = rec->req;
    const char *comp = rec->completion ? rec->completion : "";
    size_t clen = rec->completion ? rec->completion_len : 0;
    diffu_job_util_put(t, "{");
    if (o->format == DIFFU_JOBOUT_DIFFU) {
        diffu_job_util_put_key(t, "id", 1);
        put_id(t, r, 0);
        diffu_job_util_put_key(t, "sample", 0);
        diffu_job_util_put_int(t, rec->sample);
        diffu_job_util_put_key(t, "completion", 0);
        diffu_job_util_put_str_lossy(t, comp, clen);
        diffu_job_util_put_key(t, "finish_reason", 0);
        diffu_job_util_put_str(t, diffu_jobout_finish_name(rec->finish), strlen(diffu_jobout_finish_name(rec->finish)));
        diffu_job_util_put_key(t, "prompt_tokens", 0);
        diffu_job_util_put_int(t, rec->prompt_tokens);
        diffu_job_util_put_key(t, "generated_tokens", 0);
        diffu_job_util_put_int(t, rec->generated_tokens);
        diffu_job_util_put_key(t, "steps", 0);
        diffu_job_util_put_int(t, rec->steps);
        diffu_job_util_put_key(t, "forwards", 0);
        diffu_job_util_put_int(t, rec->forwards);
        diffu_job_util_put_key(t, "seconds", 0);
        diffu_job_util_put_num(t, round(rec->seconds * 1000.0) / 1000.0);
        if (rec->arness) {
            const diffu_arness *a = rec->arness;
            diffu_job_util_put_key(t, "arness", 0);
            diffu_job_util_put(t, "{\"n\":");
            diffu_job_util_put_int(t, a->n);
            diffu_job_util_put(t, ",\"local\":[");
            for (int k = 0; k < DIFFU_ARNESS_K; k++) {
                if (k) diffu_job_util_put(t, ",");
                diffu_job_util_put_num(t, round(a->local[k] * 1e6) / 1e6);
            }
            diffu_job_util_put(t, "],\"global\":[");
            for (int k = 0; k < DIFFU_ARNESS_K; k++) {
                if (k) diffu_job_util_put(t, ",");
                diffu_job_util_put_num(t, round(a->global[k] * 1e6) / 1e6);
            }
            diffu_job_util_put(t, "]}");
        }
        diffu_job_util_put_key(t, "params", 0);
        diffu_jobin_params_json(r, t);
        if (o->keep_meta && r->meta) {
            diffu_job_util_put_key(t, "meta", 0);
            diffu_text_append(t, r->meta, r->meta_len);
        }
    } else {
        diffu_job_util_put_key(t, "task_id", 1);
        put_id(t, r, o->format == DIFFU_JOBOUT_EVALPLUS);
        diffu_job_util_put_key(t, "sample", 0);
        diffu_job_util_put_int(t, rec->sample);
        size_t s = 0, n = clen;
        if (r->kind == DIFFU_JOBIN_CHAT) n = diffu_jobout_extract_code(r->prefill, comp, clen, &s);
        diffu_job_util_put_key(t, o->format == DIFFU_JOBOUT_EVALPLUS && r->kind == DIFFU_JOBIN_CHAT ? "solution"
                                                                                                 : "completion",
                           0);
        diffu_job_util_put_str_lossy(t, comp + s, n);
    }
    if (o->run_json) {
        diffu_job_util_put_key(t, "run", 0);
        diffu_job_util_put(t, o->run_json);
    }
    if (o->emit_ids) {
        put_ids(t, "prompt_ids", rec->prompt_ids, rec->prompt_ids ? rec->n_prompt_ids : 0);
        put_ids(t, "generated_ids", rec->generated_ids, rec->generated_ids ? rec->n_generated_ids : 0);
    }
    diffu_job_util_put(t, "}\n");
}

/* ------------------------------------------------------------ open / close */

diffu_jobout *diffu_jobout_open(const char *path, const diffu_jobout_opts *o, diffu_err *err) {
    if ((unsigned)o->format > 2) {
        diffu_err_set(err, "%s: unknown output format %d", path, (int)o->format);
        return NULL;
    }
    int gz = o->gzip < 0 ? diffu_job_util_is_gz_name(path) : o->gzip;
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        diffu_err_set(err, "%s: not a regular file (%s); the output must be a file so it can be resumed", path,
                      S_ISDIR(st.st_mode) ? "a directory" : S_ISCHR(st.st_mode) ? "a character device"
                                                          : S_ISFIFO(st.st_mode) ? "a pipe" : "special");
        return NULL;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        diffu_err_set(err, "%s: cannot create or open for writing: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        diffu_err_set(err, "%s: not a regular file; the output must be a file so it can be resumed", path);
        close(fd);
        return NULL;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            diffu_err_set(err, "%s: another process is writing this file (it holds the lock); wait for it to finish "
                               "or choose another output",
                          path);
        else
            diffu_err_set(err, "%s: cannot lock: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    diffu_jobresume *rs;
    if (o->overwrite) {
        if (ftruncate(fd, 0) != 0) {
            diffu_err_set(err, "%s: cannot truncate: %s", path, strerror(errno));
            close(fd);
            return NULL;
        }
        rs = diffu_jobresume_empty(gz);
    } else {
        rs = diffu_jobresume_scan_fd(fd, path, gz, 1, err);
        if (!rs) {
            close(fd);
            return NULL;
        }
        diffu_jobresume_key want = o->format == DIFFU_JOBOUT_DIFFU ? DIFFU_JOBRESUME_KEY_ID : DIFFU_JOBRESUME_KEY_TASK_ID;
        diffu_jobresume_key have = diffu_jobresume_get_report(rs)->key;
        if (have != DIFFU_JOBRESUME_KEY_NONE && have != want) {
            diffu_err_set(err, "%s: its records carry \"%s\", i.e. another --format than %s; rerun with the format it "
                               "was written with, or choose another output",
                          path, have == DIFFU_JOBRESUME_KEY_ID ? "id" : "task_id", diffu_jobout_format_name(o->format));
            diffu_jobresume_free(&rs);
            close(fd);
            return NULL;
        }
    }
    off_t end = lseek(fd, 0, SEEK_END);
    if (end < 0) {
        diffu_err_set(err, "%s: cannot seek: %s", path, strerror(errno));
        diffu_jobresume_free(&rs);
        close(fd);
        return NULL;
    }
    if (gz && end == 0) { /* a new gzip file starts with an empty member: valid for zcat before any record */
        uint64_t hl;
        if (diffu_job_util_write_empty_member(fd, 0, &hl) || fdatasync(fd) != 0) {
            diffu_err_set(err, "%s: cannot write: %s", path, strerror(errno));
            if (ftruncate(fd, 0)) { /* best effort: leave it empty */
            }
            diffu_jobresume_free(&rs);
            close(fd);
            return NULL;
        }
        end = (off_t)hl;
    }
    diffu_jobout *out = diffu_xcalloc(1, sizeof *out);
    out->path = diffu_xstrdup(path);
    out->o = *o;
    if (out->o.level < 1 || out->o.level > 9) out->o.level = 6;
    out->fd = fd;
    out->gz = gz;
    out->off = (uint64_t)end;
    out->rs = rs;
    if (gz) out->dfl = diffu_job_util_deflater_new(out->o.level);
    pthread_mutex_init(&out->mu, NULL);
    return out;
}

const diffu_jobresume_report *diffu_jobout_resume_report(const diffu_jobout *out) {
    return diffu_jobresume_get_report(out->rs);
}

int diffu_jobout_done(diffu_jobout *out, const char *id, size_t id_len, int sample) {
    pthread_mutex_lock(&out->mu);
    int d = diffu_jobresume_done(out->rs, id, id_len, sample);
    pthread_mutex_unlock(&out->mu);
    return d;
}

long diffu_jobout_written(const diffu_jobout *out) { return out->written; }
uint64_t diffu_jobout_size(const diffu_jobout *out) { return out->off; }

int diffu_jobout_sync(diffu_jobout *out) { return fdatasync(out->fd); }

/* Write buf at out->off completely, or undo. Caller holds mu. */
static int write_record(diffu_jobout *out, const char *buf, size_t len, const diffu_jobin_req *r, int sample,
                        diffu_err *err) {
    size_t done = 0;
    int e = 0;
    while (done < len) {
        ssize_t n = pwrite(out->fd, buf + done, len - done, (off_t)(out->off + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            e = n < 0 ? errno : ENOSPC; /* a 0-byte write of a non-empty buffer: treat as full */
            break;
        }
        done += (size_t)n;
    }
    const char *stage = "writing";
    if (!e && out->o.sync && fdatasync(out->fd) != 0) {
        e = errno;
        stage = "syncing";
    }
    if (!e) {
        out->off += len;
        return 0;
    }
    char undo[256];
    if (ftruncate(out->fd, (off_t)out->off) == 0)
        snprintf(undo, sizeof undo, "the file was cut back to its last complete record (%llu bytes)",
                 (unsigned long long)out->off);
    else
        snprintf(undo, sizeof undo, "cutting the file back to %llu bytes failed too (%s); the next run drops the "
                                    "partial record",
                 (unsigned long long)out->off, strerror(errno));
    out->failed = 1;
    diffu_err_set(err, "%s: %s the record of id '%s' sample %d failed after %zu of %zu bytes: %s; %s", out->path, stage,
                  r->id, sample, done, len, strerror(e), undo);
    snprintf(out->fail_msg, sizeof out->fail_msg, "%s", err ? err->msg : "write failed");
    return -1;
}

int diffu_jobout_write(diffu_jobout *out, const diffu_jobout_rec *rec, diffu_err *err) {
    DIFFU_ASSERT(rec && rec->req);
    const diffu_jobin_req *r = rec->req;
    pthread_mutex_lock(&out->mu);
    int rc = -1;
    if (out->failed) {
        diffu_err_set(err, "%s: an earlier write failed; no more records are written (%s)", out->path, out->fail_msg);
        goto out;
    }
    if (rec->sample < 0 || rec->sample >= (1 << 30)) {
        diffu_err_set(err, "%s: id '%s': sample %d out of range", out->path, r->id, rec->sample);
        goto out;
    }
    if (diffu_jobresume_done(out->rs, r->id, r->id_len, rec->sample)) {
        diffu_err_set(err, "%s: id '%s' sample %d is already in the file; not written twice", out->path, r->id,
                      rec->sample);
        goto out;
    }
    out->line.len = 0;
    diffu_jobout_encode(&out->o, rec, &out->line);
    const char *buf = out->line.data;
    size_t len = out->line.len;
    if (out->gz) {
        diffu_job_util_gz_member(out->dfl, out->line.data, out->line.len, &out->member);
        buf = out->member.data;
        len = out->member.len;
    }
    if (write_record(out, buf, len, r, rec->sample, err)) goto out;
    diffu_jobresume_mark(out->rs, r->id, r->id_len, rec->sample);
    out->written++;
    rc = 0;
out:
    pthread_mutex_unlock(&out->mu);
    return rc;
}

int diffu_jobout_close(diffu_jobout **outp, diffu_err *err) {
    if (!outp || !*outp) return 0;
    diffu_jobout *out = *outp;
    int rc = 0;
    if (out->failed) rc = diffu_err_set(err, "%s", out->fail_msg);
    if (fsync(out->fd) != 0 && !rc) rc = diffu_err_set(err, "%s: final sync failed: %s", out->path, strerror(errno));
    if (close(out->fd) != 0 && !rc) rc = diffu_err_set(err, "%s: close failed: %s", out->path, strerror(errno));
    pthread_mutex_destroy(&out->mu);
    diffu_job_util_deflater_free(&out->dfl);
    diffu_text_free(&out->line);
    diffu_text_free(&out->member);
    diffu_jobresume_free(&out->rs);
    free(out->path);
    free(out);
    *outp = NULL;
    return rc;
}
