/* job_inflight.c — see job_inflight.h. */
#include "job_inflight.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "hash.h"
#include "denoise.h"
#include "job_util.h"

#define MAGIC "DIFFUINF"
#define VERSION 1u
#define HEAD_BYTES (8 + 4 + 4 + 16 + 8)
#define MAX_FILE_BYTES (1ull << 34) /* 16 GiB: far beyond any job's in-flight state */

int diffu_jobinf_path(const char *output, char *buf, size_t cap) { return snprintf(buf, cap, "%s.inflight", output); }

uint32_t diffu_jobinf_prompt_hash(const int32_t *ids, int n) {
    return diffu_fnv32(DIFFU_FNV32_INIT, ids, (size_t)(n > 0 ? n : 0) * sizeof *ids);
}

static void put_u32(diffu_text *t, uint32_t v) {
    unsigned char b[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    diffu_text_append(t, (const char *)b, 4);
}

static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ------------------------------------------------------------ writer */

struct diffu_jobinf_writer {
    char run_id[17];
    diffu_text buf;
    int entries;
};

diffu_jobinf_writer *diffu_jobinf_writer_new(const char *run_id) {
    diffu_jobinf_writer *w = diffu_xcalloc(1, sizeof *w);
    snprintf(w->run_id, sizeof w->run_id, "%s", run_id ? run_id : "");
    diffu_jobinf_writer_reset(w, 0);
    return w;
}

void diffu_jobinf_writer_reset(diffu_jobinf_writer *w, long records) {
    w->buf.len = 0;
    w->entries = 0;
    diffu_text_append(&w->buf, MAGIC, 8);
    put_u32(&w->buf, VERSION);
    put_u32(&w->buf, 0); /* entries: patched at commit */
    char id[16];
    memset(id, '0', sizeof id);
    memcpy(id, w->run_id, strlen(w->run_id) < 16 ? strlen(w->run_id) : 16);
    diffu_text_append(&w->buf, id, 16);
    uint64_t r = records > 0 ? (uint64_t)records : 0;
    put_u32(&w->buf, (uint32_t)r);
    put_u32(&w->buf, (uint32_t)(r >> 32));
}

void diffu_jobinf_writer_add(diffu_jobinf_writer *w, const char *key, size_t key_len, uint32_t prompt_hash,
                             const uint8_t *state, size_t state_len) {
    DIFFU_ASSERT(key_len <= UINT32_MAX && state_len <= UINT32_MAX);
    put_u32(&w->buf, (uint32_t)key_len);
    diffu_text_append(&w->buf, key, key_len);
    put_u32(&w->buf, prompt_hash);
    put_u32(&w->buf, (uint32_t)state_len);
    diffu_text_append(&w->buf, (const char *)state, state_len);
    w->entries++;
}

int diffu_jobinf_writer_entries(const diffu_jobinf_writer *w) { return w->entries; }

int diffu_jobinf_writer_commit(diffu_jobinf_writer *w, const char *output, diffu_err *err) {
    uint8_t *p = (uint8_t *)w->buf.data;
    uint32_t e = (uint32_t)w->entries;
    p[12] = (uint8_t)e, p[13] = (uint8_t)(e >> 8), p[14] = (uint8_t)(e >> 16), p[15] = (uint8_t)(e >> 24);
    size_t body = w->buf.len;
    put_u32(&w->buf, (uint32_t)crc32(0L, (const Bytef *)w->buf.data, (uInt)body));
    char path[4200];
    diffu_jobinf_path(output, path, sizeof path);
    int rc = diffu_job_util_write_atomic(path, w->buf.data, w->buf.len, "the in-flight checkpoint", err);
    w->buf.len = body; /* the CRC again at the next commit */
    return rc;
}

void diffu_jobinf_writer_free(diffu_jobinf_writer **wp) {
    if (!wp || !*wp) return;
    diffu_text_free(&(*wp)->buf);
    free(*wp);
    *wp = NULL;
}

/* ------------------------------------------------------------ reader */

typedef struct {
    size_t key_off, key_len, state_off, state_len;
    uint32_t prompt_hash;
} entry;

struct diffu_jobinf {
    uint8_t *data; /* the file's bytes (owned) */
    size_t n;
    long records;
    int count;
    entry *e;
    diffu_job_util_map *by_key;
};

void diffu_jobinf_free(diffu_jobinf **fp) {
    if (!fp || !*fp) return;
    free((*fp)->data);
    free((*fp)->e);
    diffu_job_util_map_free(&(*fp)->by_key);
    free(*fp);
    *fp = NULL;
}

diffu_jobinf *diffu_jobinf_parse(const uint8_t *data, size_t n, const char *name, const char *run_id, diffu_err *err) {
    if (n < HEAD_BYTES + 4 || memcmp(data, MAGIC, 8)) {
        diffu_err_set(err, "%s: not an in-flight checkpoint (%zu bytes, no \"" MAGIC "\" header)", name, n);
        return NULL;
    }
    uint32_t crc = (uint32_t)crc32(0L, (const Bytef *)data, (uInt)(n - 4));
    if (crc != get_u32(data + n - 4)) {
        diffu_err_set(err, "%s: the checksum does not match (a torn or corrupted file)", name);
        return NULL;
    }
    if (get_u32(data + 8) != VERSION) {
        diffu_err_set(err, "%s: format version %u, this diffu reads %u", name, get_u32(data + 8), VERSION);
        return NULL;
    }
    uint32_t count = get_u32(data + 12);
    char id[17];
    memcpy(id, data + 16, 16);
    id[16] = 0;
    for (int i = 0; i < 16; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f'))) {
            diffu_err_set(err, "%s: the run id is not 16 hex digits", name);
            return NULL;
        }
    if (run_id && strcmp(id, run_id)) {
        diffu_err_set(err, "%s: written by run %s, this is run %s (the settings changed): its samples start over", name,
                      id, run_id);
        return NULL;
    }
    uint64_t records = (uint64_t)get_u32(data + 32) | (uint64_t)get_u32(data + 36) << 32;
    if (records > (uint64_t)1 << 48) {
        diffu_err_set(err, "%s: %llu records is not a count", name, (unsigned long long)records);
        return NULL;
    }
    size_t end = n - 4, off = HEAD_BYTES;
    /* every entry takes at least 12 bytes */
    if (count > (end - off) / 12) {
        diffu_err_set(err, "%s: %u entries do not fit in %zu bytes", name, count, n);
        return NULL;
    }
    diffu_jobinf *f = diffu_xcalloc(1, sizeof *f);
    f->e = diffu_xcalloc(count ? count : 1, sizeof *f->e);
    f->by_key = diffu_job_util_map_new();
    for (uint32_t i = 0; i < count; i++) {
        entry *e = &f->e[i];
        if (end - off < 4) goto trunc;
        e->key_len = get_u32(data + off);
        off += 4;
        if (e->key_len == 0 || e->key_len > end - off) goto trunc;
        e->key_off = off;
        off += e->key_len;
        if (end - off < 8) goto trunc;
        e->prompt_hash = get_u32(data + off);
        e->state_len = get_u32(data + off + 4);
        off += 8;
        if (e->state_len > end - off) goto trunc;
        e->state_off = off;
        off += e->state_len;
        int64_t prev;
        if (diffu_job_util_map_get(f->by_key, (const char *)data + e->key_off, e->key_len, &prev)) {
            diffu_err_set(err, "%s: entries %lld and %u are the same sample", name, (long long)prev, i);
            goto fail;
        }
        diffu_job_util_map_put(f->by_key, (const char *)data + e->key_off, e->key_len, (int64_t)i);
    }
    if (off != end) {
        diffu_err_set(err, "%s: %zu bytes after the last of %u entries", name, end - off, count);
        goto fail;
    }
    f->data = diffu_xmalloc(n ? n : 1);
    memcpy(f->data, data, n);
    f->n = n;
    f->count = (int)count;
    f->records = (long)records;
    return f;
trunc:
    diffu_err_set(err, "%s: the entries end before the file says (%u entries)", name, count);
fail:
    diffu_jobinf_free(&f);
    return NULL;
}

/* Temporary files of checkpoints that a kill cut short (OUTPUT.inflight.tmp.PID, diffu_job_util_write_atomic). */
static void remove_stale_tmp(const char *path) {
    char dir[4200], pre[4300];
    const char *slash = strrchr(path, '/');
    if (slash) snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    else snprintf(dir, sizeof dir, ".");
    if (!dir[0]) snprintf(dir, sizeof dir, "/");
    snprintf(pre, sizeof pre, "%s.tmp.", slash ? slash + 1 : path);
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    size_t pl = strlen(pre);
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, pre, pl)) {
            char p[8400];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
    closedir(d);
}

int diffu_jobinf_load(const char *output, const char *run_id, diffu_jobinf **out, diffu_err *err) {
    *out = NULL;
    char path[4200];
    diffu_jobinf_path(output, path, sizeof path);
    remove_stale_tmp(path);
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        if (errno == ENOENT) return 0;
        return diffu_err_set(err, "%s: cannot read: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fileno(fp), &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAX_FILE_BYTES) {
        fclose(fp);
        return diffu_err_set(err, "%s: not a regular file of at most 16 GiB", path);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *buf = diffu_xmalloc(n ? n : 1);
    size_t got = fread(buf, 1, n, fp);
    int rerr = ferror(fp);
    fclose(fp);
    if (rerr || got != n) {
        free(buf);
        return diffu_err_set(err, "%s: cannot read: %s", path, rerr ? strerror(errno) : "short read");
    }
    *out = diffu_jobinf_parse(buf, n, path, run_id, err);
    free(buf);
    return *out ? 0 : -1;
}

int diffu_jobinf_count(const diffu_jobinf *f) { return f ? f->count : 0; }
long diffu_jobinf_records(const diffu_jobinf *f) { return f ? f->records : 0; }

void diffu_jobinf_entry(const diffu_jobinf *f, int i, const char **key, size_t *key_len, uint32_t *prompt_hash,
                        const uint8_t **state, size_t *state_len) {
    DIFFU_ASSERT(i >= 0 && i < f->count);
    const entry *e = &f->e[i];
    *key = (const char *)f->data + e->key_off;
    *key_len = e->key_len;
    *prompt_hash = e->prompt_hash;
    *state = f->data + e->state_off;
    *state_len = e->state_len;
}

int diffu_jobinf_find(const diffu_jobinf *f, const char *key, size_t key_len) {
    int64_t i;
    if (!f || !diffu_job_util_map_get(f->by_key, key, key_len, &i)) return -1;
    return (int)i;
}

int diffu_jobinf_remove(const char *output, diffu_err *err) {
    char path[4200];
    diffu_jobinf_path(output, path, sizeof path);
    if (unlink(path) && errno != ENOENT) return diffu_err_set(err, "%s: cannot remove: %s", path, strerror(errno));
    return 0;
}

/* ------------------------------------------------------------ live set */

typedef struct {
    const diffu_denoise *d;
    char *key;
    size_t key_len;
    uint32_t prompt_hash;
} live_entry;

struct diffu_jobinf_live {
    char output[4096];
    int cap, n;
    live_entry *e;
    diffu_jobinf *resume;
    diffu_jobinf_writer *w;
    uint8_t *state;
    size_t state_cap;
    int restored;
    long restored_steps;
    int trace;       /* $DIFFU_TRACE names "inflight": a line before and after every write (below) */
    int trace_fd;    /* $DIFFU_TRACE_FILE (O_APPEND), else 2 */
    char *tline;     /* one trace line, written with one write() */
    size_t tline_cap;
};

diffu_jobinf_live *diffu_jobinf_live_new(const char *output, const char *run_id, int max_active, diffu_jobinf *resume) {
    DIFFU_ASSERT(max_active >= 1);
    diffu_jobinf_live *l = diffu_xcalloc(1, sizeof *l);
    snprintf(l->output, sizeof l->output, "%s", output);
    l->cap = max_active;
    l->e = diffu_xcalloc((size_t)max_active, sizeof *l->e);
    l->resume = resume;
    l->w = diffu_jobinf_writer_new(run_id);
    const char *tr = getenv("DIFFU_TRACE");
    l->trace = tr && strstr(tr, "inflight") != NULL;
    l->trace_fd = 2;
    const char *tf = getenv("DIFFU_TRACE_FILE");
    if (l->trace && tf && *tf) {
        int fd = open(tf, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd >= 0)
            l->trace_fd = fd;
        else
            DLOG_WARN("DIFFU_TRACE_FILE %s: cannot open (%s); the trace goes to stderr", tf, strerror(errno));
    }
    return l;
}

int diffu_jobinf_live_enter(diffu_jobinf_live *l, diffu_denoise *d, const char *key, size_t key_len, const int32_t *prompt,
                            int prompt_len, diffu_err *err) {
    DIFFU_ASSERTF(l->n < l->cap, "more than %d samples in flight", l->cap);
    live_entry *e = &l->e[l->n++];
    e->d = d;
    e->key = diffu_xmalloc(key_len ? key_len : 1);
    memcpy(e->key, key, key_len);
    e->key_len = key_len;
    e->prompt_hash = diffu_jobinf_prompt_hash(prompt, prompt_len);
    int i = diffu_jobinf_find(l->resume, key, key_len);
    if (i < 0) return 0;
    const char *k;
    size_t kl, sn;
    uint32_t ph;
    const uint8_t *s;
    diffu_jobinf_entry(l->resume, i, &k, &kl, &ph, &s, &sn);
    if (ph != e->prompt_hash)
        return diffu_err_set(err, "in-flight checkpoint: sample %.*s had another prompt: it starts over", (int)strnlen(key, key_len),
                             key);
    diffu_err rerr;
    if (diffu_denoise_restore(d, s, sn, &rerr))
        return diffu_err_set(err, "in-flight checkpoint: sample %.*s: %s: it starts over", (int)strnlen(key, key_len), key,
                             rerr.msg);
    l->restored++;
    l->restored_steps += diffu_denoise_steps_taken(d);
    return 1;
}

void diffu_jobinf_live_leave(diffu_jobinf_live *l, const diffu_denoise *d) {
    for (int i = 0; i < l->n; i++)
        if (l->e[i].d == d) {
            free(l->e[i].key);
            l->e[i] = l->e[--l->n];
            return;
        }
    DIFFU_ASSERTF(0, "a sample left that never entered");
}

int diffu_jobinf_live_count(const diffu_jobinf_live *l) { return l->n; }

/* The trace ($DIFFU_TRACE=inflight, for measuring the work a kill costs: tests/job/check_generate_job.py):
 * "trace inflight begin T KEY@STEPS/FORWARDS ..." with every sample's steps taken and forwards run (the
 * steps that needed logits: the work) as this checkpoint starts, and
 * "trace inflight written T" once it is durable; T is the wall clock (CLOCK_REALTIME, seconds), KEY the
 * sample's id (bytes outside printable ASCII, space and '@' as '?') and '#' its sample index. The lines go
 * to $DIFFU_TRACE_FILE (appended) when it is set, else to stderr. */
static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Append to the trace line (grown as needed; the trace is a measuring aid, off in production). */
static void tput(diffu_jobinf_live *l, size_t *n, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(l->tline + *n, l->tline_cap - *n, fmt, ap);
        va_end(ap);
        DIFFU_ASSERT(k >= 0);
        if (*n + (size_t)k < l->tline_cap) {
            *n += (size_t)k;
            return;
        }
        l->tline_cap = 2 * (l->tline_cap + (size_t)k + 64);
        l->tline = diffu_xrealloc(l->tline, l->tline_cap);
    }
}

/* One line with one write(): a SIGKILL cannot leave half a line, and with $DIFFU_TRACE_FILE the line is in
 * the file the moment it is written (stderr under mpirun goes through its forwarding, which a kill can cut). */
static void tflush(diffu_jobinf_live *l, size_t n) {
    for (size_t off = 0; off < n;) {
        ssize_t w = write(l->trace_fd, l->tline + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        off += (size_t)w;
    }
}

static void trace_begin(diffu_jobinf_live *l) {
    size_t n = 0;
    if (!l->tline) {
        l->tline_cap = 256;
        l->tline = diffu_xmalloc(l->tline_cap);
    }
    tput(l, &n, "[diffu] trace inflight begin %.6f", wall_now());
    for (int i = 0; i < l->n; i++) {
        const live_entry *e = &l->e[i];
        size_t idl = e->key_len >= 5 ? e->key_len - 5 : e->key_len; /* id, 0, sample as 4 bytes (job_util.h) */
        tput(l, &n, " ");
        for (size_t j = 0; j < idl; j++) {
            unsigned char c = (unsigned char)e->key[j];
            tput(l, &n, "%c", c > ' ' && c < 127 && c != '@' ? c : '?');
        }
        uint32_t si = 0;
        if (e->key_len >= 5) memcpy(&si, e->key + e->key_len - 4, 4);
        tput(l, &n, "#%u@%d/%d", si, diffu_denoise_steps_taken(e->d), diffu_denoise_forwards(e->d));
    }
    tput(l, &n, "\n");
    tflush(l, n);
}

int diffu_jobinf_live_checkpoint(diffu_jobinf_live *l, long records, diffu_err *err) {
    if (l->trace) trace_begin(l);
    diffu_jobinf_writer_reset(l->w, records);
    for (int i = 0; i < l->n; i++) {
        const live_entry *e = &l->e[i];
        size_t n = diffu_denoise_state_bytes(e->d);
        if (n > l->state_cap) {
            free(l->state);
            l->state_cap = 2 * n;
            l->state = diffu_xmalloc(l->state_cap);
        }
        diffu_denoise_save(e->d, l->state);
        diffu_jobinf_writer_add(l->w, e->key, e->key_len, e->prompt_hash, l->state, n);
    }
    int rc = diffu_jobinf_writer_commit(l->w, l->output, err);
    if (l->trace && !rc) {
        size_t n = 0;
        tput(l, &n, "[diffu] trace inflight written %.6f\n", wall_now());
        tflush(l, n);
    }
    return rc;
}

int diffu_jobinf_live_restored(const diffu_jobinf_live *l, long *steps) {
    if (steps) *steps = l->restored_steps;
    return l->restored;
}

void diffu_jobinf_live_free(diffu_jobinf_live **lp) {
    if (!lp || !*lp) return;
    diffu_jobinf_live *l = *lp;
    for (int i = 0; i < l->n; i++) free(l->e[i].key);
    free(l->e);
    free(l->state);
    diffu_jobinf_free(&l->resume);
    diffu_jobinf_writer_free(&l->w);
    free(l->tline);
    if (l->trace_fd > 2) close(l->trace_fd);
    free(l);
    *lp = NULL;
}
