/* job_util.c — see job_util.h. */
#include "job_util.h"

#include "hash.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ------------------------------------------------------------ reader */

#define RD_CHUNK (256u << 10)

struct diffu_job_util_reader {
    int fd, gz;
    const char *name;
    z_stream zs;
    int zinit;
    unsigned char *ibuf;
    uint64_t in_pos;      /* bytes read from fd */
    int eof;              /* read() returned 0 */
    int in_member;        /* inflating a member (its first byte was consumed) */
    uint64_t member_start;
    uint64_t data_member; /* start of the member the last returned bytes came from */
    int member_ended;
    int fail_kind;
};

diffu_job_util_reader *diffu_job_util_reader_new(int fd, int gz, const char *name) {
    diffu_job_util_reader *r = diffu_xcalloc(1, sizeof *r);
    r->fd = fd;
    r->gz = gz;
    r->name = name;
    r->ibuf = diffu_xmalloc(RD_CHUNK);
    if (gz) {
        /* 16 + 15: gzip wrapper only (a zlib or raw stream is an error), 32 KiB window */
        int rc = inflateInit2(&r->zs, 16 + 15);
        DIFFU_ASSERTF(rc == Z_OK, "inflateInit2: %d", rc);
        r->zinit = 1;
    }
    return r;
}

void diffu_job_util_reader_free(diffu_job_util_reader **rp) {
    if (!rp || !*rp) return;
    diffu_job_util_reader *r = *rp;
    if (r->zinit) inflateEnd(&r->zs);
    free(r->ibuf);
    free(r);
    *rp = NULL;
}

int diffu_job_util_reader_member_ended(const diffu_job_util_reader *r) { return r->member_ended; }
uint64_t diffu_job_util_reader_member_start(const diffu_job_util_reader *r) {
    return r->gz ? r->member_start : r->in_pos;
}
uint64_t diffu_job_util_reader_data_member(const diffu_job_util_reader *r) { return r->gz ? r->data_member : 0; }
int diffu_job_util_reader_fail_kind(const diffu_job_util_reader *r) { return r->fail_kind; }

static long read_full(int fd, unsigned char *buf, size_t cap) {
    for (;;) {
        ssize_t n = read(fd, buf, cap);
        if (n < 0 && errno == EINTR) continue;
        return (long)n;
    }
}

/* offset of the next unconsumed compressed byte */
static uint64_t rd_pos(const diffu_job_util_reader *r) { return r->in_pos - r->zs.avail_in; }

long diffu_job_util_reader_read(diffu_job_util_reader *r, char *buf, size_t cap, diffu_err *err) {
    r->member_ended = 0;
    if (r->fail_kind) return diffu_err_set(err, "%s: read after a failure", r->name);
    if (!r->gz) {
        long n = read_full(r->fd, (unsigned char *)buf, cap);
        if (n < 0) {
            r->fail_kind = 3;
            return diffu_err_set(err, "%s: read error: %s", r->name, strerror(errno));
        }
        r->in_pos += (uint64_t)n;
        return n;
    }
    for (;;) {
        if (r->zs.avail_in == 0 && !r->eof) {
            long n = read_full(r->fd, r->ibuf, RD_CHUNK);
            if (n < 0) {
                r->fail_kind = 3;
                return diffu_err_set(err, "%s: read error: %s", r->name, strerror(errno));
            }
            if (n == 0) r->eof = 1;
            r->in_pos += (uint64_t)n;
            r->zs.next_in = r->ibuf;
            r->zs.avail_in = (uInt)n;
        }
        if (!r->in_member) {
            if (r->zs.avail_in == 0 && r->eof) return 0; /* clean end, between members */
            r->member_start = rd_pos(r);
            r->in_member = 1;
        }
        r->zs.next_out = (unsigned char *)buf;
        r->zs.avail_out = (uInt)(cap > (1u << 30) ? (1u << 30) : cap);
        int rc = inflate(&r->zs, Z_NO_FLUSH);
        long produced = (long)((char *)r->zs.next_out - buf);
        r->data_member = r->member_start;
        if (rc == Z_STREAM_END) {
            r->in_member = 0;
            r->member_ended = 1;
            uint64_t end = rd_pos(r);
            inflateReset(&r->zs);
            r->member_start = end;
            return produced; /* maybe 0: the caller still learns where the member ended */
        }
        if (rc == Z_OK || rc == Z_BUF_ERROR) {
            if (produced > 0) return produced;
            if (r->zs.avail_in == 0 && r->eof) {
                r->fail_kind = 1;
                return diffu_err_set(err,
                                     "%s: gzip data truncated: the file ends inside the gzip member that starts at "
                                     "byte %llu (file size %llu)",
                                     r->name, (unsigned long long)r->member_start, (unsigned long long)r->in_pos);
            }
            continue;
        }
        r->fail_kind = 2;
        if (rd_pos(r) == r->member_start || (rc == Z_DATA_ERROR && r->zs.msg && strstr(r->zs.msg, "header")))
            return diffu_err_set(err, "%s: byte %llu is not the start of a gzip member (%s)", r->name,
                                 (unsigned long long)r->member_start, r->zs.msg ? r->zs.msg : "bad header");
        return diffu_err_set(err, "%s: gzip data corrupt in the member that starts at byte %llu: %s", r->name,
                             (unsigned long long)r->member_start, r->zs.msg ? r->zs.msg : "inflate error");
    }
}

int diffu_job_util_sniff_gzip(int fd, uint64_t *size) {
    struct stat st;
    if (fstat(fd, &st) != 0) return -1;
    if (size) *size = (uint64_t)st.st_size;
    unsigned char m[2];
    ssize_t n;
    do n = pread(fd, m, 2, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) return -1;
    return n == 2 && m[0] == 0x1f && m[1] == 0x8b;
}

int diffu_job_util_is_gz_name(const char *name) {
    size_t n = strlen(name);
    return n >= 3 && !strcmp(name + n - 3, ".gz");
}

/* ------------------------------------------------------------ lines */

#define LN_CHUNK (1u << 16)

struct diffu_job_util_lines {
    int fd, gz, eof;
    char *path;
    diffu_job_util_reader *rd;
    char *buf;            /* read-ahead */
    size_t pos, end;
    diffu_text line;      /* the current line, with its terminator when it had one */
    long lineno;
};

diffu_job_util_lines *diffu_job_util_lines_open(const char *path, diffu_err *err) {
    struct stat st;
    if (stat(path, &st) != 0) {
        diffu_err_set(err, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode)) {
        diffu_err_set(err, "%s: not a regular file", path);
        return NULL;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    int gz = fd < 0 ? -1 : S_ISREG(st.st_mode) ? diffu_job_util_sniff_gzip(fd, NULL) : diffu_job_util_is_gz_name(path);
    if (gz < 0) {
        diffu_err_set(err, "%s: %s", path, strerror(errno));
        if (fd >= 0) close(fd);
        return NULL;
    }
    diffu_job_util_lines *l = diffu_xcalloc(1, sizeof *l);
    l->fd = fd;
    l->gz = gz;
    l->path = diffu_xstrdup(path);
    l->rd = diffu_job_util_reader_new(fd, gz, l->path);
    l->buf = diffu_xmalloc(LN_CHUNK);
    return l;
}

void diffu_job_util_lines_close(diffu_job_util_lines **lp) {
    if (!lp || !*lp) return;
    diffu_job_util_lines *l = *lp;
    diffu_job_util_reader_free(&l->rd);
    close(l->fd);
    free(l->buf);
    free(l->path);
    diffu_text_free(&l->line);
    free(l);
    *lp = NULL;
}

long diffu_job_util_lines_lineno(const diffu_job_util_lines *l) { return l->lineno; }
int diffu_job_util_lines_is_gz(const diffu_job_util_lines *l) { return l->gz; }

/* The reader's failure as the line reader reports it: the reason without its
 * "PATH: " prefix, after how many lines. */
static int lines_fail(diffu_job_util_lines *l, diffu_err *err) {
    int kind = diffu_job_util_reader_fail_kind(l->rd);
    if (kind == 3 || !err) return -1; /* a read error: the reader's message as it is */
    char why[sizeof err->msg];
    size_t pl = strlen(l->path);
    const char *m = err->msg;
    if (!strncmp(m, l->path, pl) && !strncmp(m + pl, ": ", 2)) m += pl + 2;
    snprintf(why, sizeof why, "%s", m);
    return diffu_err_set(err, "%s: %s gzip data after %ld line(s) (%.900s)", l->path,
                         kind == 1 ? "truncated or corrupt" : "corrupt", l->lineno, why);
}

int diffu_job_util_lines_next(diffu_job_util_lines *l, const char **line, size_t *len, diffu_err *err) {
    l->line.len = 0;
    for (;;) {
        if (l->pos == l->end) {
            if (l->eof) break;
            long n = diffu_job_util_reader_read(l->rd, l->buf, LN_CHUNK, err);
            if (n < 0) return lines_fail(l, err);
            if (n == 0 && !diffu_job_util_reader_member_ended(l->rd)) l->eof = 1;
            l->pos = 0;
            l->end = (size_t)n;
            continue;
        }
        char *nl = memchr(l->buf + l->pos, '\n', l->end - l->pos);
        size_t take = nl ? (size_t)(nl - (l->buf + l->pos)) + 1 : l->end - l->pos;
        diffu_text_append(&l->line, l->buf + l->pos, take);
        l->pos += take;
        if (nl) break;
    }
    if (!l->line.len) return 0;
    l->lineno++;
    *line = l->line.data;
    *len = l->line.len;
    return 1;
}

/* ------------------------------------------------------------ deflater */

struct diffu_job_util_deflater {
    z_stream zs;
};

diffu_job_util_deflater *diffu_job_util_deflater_new(int level) {
    diffu_job_util_deflater *d = diffu_xcalloc(1, sizeof *d);
    int rc = deflateInit2(&d->zs, level, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY);
    DIFFU_ASSERTF(rc == Z_OK, "deflateInit2: %d", rc);
    return d;
}

void diffu_job_util_deflater_free(diffu_job_util_deflater **dp) {
    if (!dp || !*dp) return;
    deflateEnd(&(*dp)->zs);
    free(*dp);
    *dp = NULL;
}

void diffu_job_util_gz_member(diffu_job_util_deflater *d, const char *in, size_t n, diffu_text *out) {
    DIFFU_ASSERT(n < (1u << 30));
    deflateReset(&d->zs);
    size_t bound = deflateBound(&d->zs, (uLong)n) + 64;
    out->len = 0;
    if (out->cap < bound + 1) {
        diffu_text_append(out, NULL, 0); /* make data non-NULL */
        out->data = diffu_xrealloc(out->data, bound + 1);
        out->cap = bound + 1;
    }
    d->zs.next_in = (unsigned char *)in;
    d->zs.avail_in = (uInt)n;
    d->zs.next_out = (unsigned char *)out->data;
    d->zs.avail_out = (uInt)bound;
    int rc = deflate(&d->zs, Z_FINISH);
    DIFFU_ASSERTF(rc == Z_STREAM_END, "deflate: %d", rc);
    out->len = bound - d->zs.avail_out;
    out->data[out->len] = 0;
}

int diffu_job_util_write_empty_member(int fd, uint64_t off, uint64_t *len) {
    diffu_job_util_deflater *d = diffu_job_util_deflater_new(6);
    diffu_text m = {0};
    diffu_job_util_gz_member(d, "", 0, &m);
    diffu_job_util_deflater_free(&d);
    size_t done = 0;
    int rc = 0;
    while (done < m.len) {
        ssize_t n = pwrite(fd, m.data + done, m.len - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n == 0) errno = ENOSPC;
            rc = -1;
            break;
        }
        done += (size_t)n;
    }
    if (len) *len = m.len;
    diffu_text_free(&m);
    return rc;
}

/* ------------------------------------------------------------ map */

typedef struct {
    char *k;
    size_t klen;
    uint64_t h;
    int64_t v;
} map_slot;

struct diffu_job_util_map {
    map_slot *s;
    size_t cap, n;
};

static uint64_t hash64(const char *s, size_t n) {
    uint64_t h = diffu_fnv64(DIFFU_FNV64_INIT, s, n);
    return h ^ (h >> 29);
}

diffu_job_util_map *diffu_job_util_map_new(void) {
    diffu_job_util_map *m = diffu_xcalloc(1, sizeof *m);
    m->cap = 64;
    m->s = diffu_xcalloc(m->cap, sizeof *m->s);
    return m;
}

void diffu_job_util_map_free(diffu_job_util_map **mp) {
    if (!mp || !*mp) return;
    diffu_job_util_map *m = *mp;
    for (size_t i = 0; i < m->cap; i++) free(m->s[i].k);
    free(m->s);
    free(m);
    *mp = NULL;
}

static map_slot *map_find(const diffu_job_util_map *m, const char *k, size_t klen, uint64_t h) {
    size_t i = (size_t)h & (m->cap - 1);
    for (;;) {
        map_slot *s = &m->s[i];
        if (!s->k || (s->h == h && s->klen == klen && !memcmp(s->k, k, klen))) return s;
        i = (i + 1) & (m->cap - 1);
    }
}

int diffu_job_util_map_get(const diffu_job_util_map *m, const char *k, size_t klen, int64_t *val) {
    map_slot *s = map_find(m, k, klen, hash64(k, klen));
    if (!s->k) return 0;
    if (val) *val = s->v;
    return 1;
}

int diffu_job_util_map_put(diffu_job_util_map *m, const char *k, size_t klen, int64_t val) {
    if (2 * (m->n + 1) > m->cap) {
        map_slot *old = m->s;
        size_t oc = m->cap;
        m->cap *= 2;
        m->s = diffu_xcalloc(m->cap, sizeof *m->s);
        for (size_t i = 0; i < oc; i++)
            if (old[i].k) *map_find(m, old[i].k, old[i].klen, old[i].h) = old[i];
        free(old);
    }
    uint64_t h = hash64(k, klen);
    map_slot *s = map_find(m, k, klen, h);
    if (s->k) {
        s->v = val;
        return 0;
    }
    s->k = diffu_xmalloc(klen + 1);
    memcpy(s->k, k, klen);
    s->k[klen] = 0;
    s->klen = klen;
    s->h = h;
    s->v = val;
    m->n++;
    return 1;
}

size_t diffu_job_util_map_size(const diffu_job_util_map *m) { return m->n; }

size_t diffu_job_util_sample_key(char *buf, size_t cap, const char *id, size_t id_len, int sample) {
    size_t need = id_len + 5;
    if (need > cap) return need;
    memcpy(buf, id, id_len);
    buf[id_len] = 0;
    uint32_t s = (uint32_t)sample;
    memcpy(buf + id_len + 1, &s, 4);
    return need;
}

uint32_t diffu_job_util_fnv1a(const char *s, size_t n) {
    return diffu_fnv32(DIFFU_FNV32_INIT, s, n);
}

/* ------------------------------------------------------------ JSON writing */

void diffu_job_util_put(diffu_text *t, const char *s) { diffu_text_append(t, s, strlen(s)); }

void diffu_job_util_put_str(diffu_text *t, const char *s, size_t n) {
    /* escape in bounded pieces (diffu_json_escape writes into a buffer) */
    diffu_text_append(t, "\"", 1);
    char tmp[1024];
    size_t i = 0;
    while (i < n) {
        size_t run = 0;
        while (i + run < n && run < 128) run++;
        /* never split a UTF-8 sequence: diffu_json_escape copies bytes as is, so splitting is harmless */
        size_t k = diffu_json_escape(tmp, sizeof tmp, s + i, run);
        DIFFU_ASSERT(k < sizeof tmp);
        diffu_text_append(t, tmp + 1, k - 2); /* drop the quotes it adds */
        i += run;
    }
    diffu_text_append(t, "\"", 1);
}

void diffu_job_util_put_str_lossy(diffu_text *t, const char *s, size_t n) {
    if (diffu_job_util_utf8_check(s, n) == n) {
        diffu_job_util_put_str(t, s, n);
        return;
    }
    diffu_text fixed = {0};
    diffu_utf8_lossy(s, n, &fixed, NULL);
    diffu_job_util_put_str(t, fixed.data ? fixed.data : "", fixed.len);
    diffu_text_free(&fixed);
}

void diffu_job_util_put_int(diffu_text *t, long long v) {
    char b[32];
    int k = snprintf(b, sizeof b, "%lld", v);
    diffu_text_append(t, b, (size_t)k);
}

void diffu_job_util_put_uint(diffu_text *t, unsigned long long v) {
    char b[32];
    int k = snprintf(b, sizeof b, "%llu", v);
    diffu_text_append(t, b, (size_t)k);
}

void diffu_job_util_put_num(diffu_text *t, double v) {
    if (!isfinite(v)) {
        diffu_job_util_put(t, "null");
        return;
    }
    char b[40];
    for (int p = 15; p <= 17; p++) {
        snprintf(b, sizeof b, "%.*g", p, v);
        if (strtod(b, NULL) == v) break;
    }
    diffu_job_util_put(t, b);
}

void diffu_job_util_put_key(diffu_text *t, const char *key, int first) {
    if (!first) diffu_text_append(t, ",", 1);
    diffu_job_util_put_str(t, key, strlen(key));
    diffu_text_append(t, ":", 1);
}

void diffu_job_util_put_json(diffu_text *t, const diffu_json *v) {
    switch (v->type) {
    case DJ_NULL: diffu_job_util_put(t, "null"); break;
    case DJ_BOOL: diffu_job_util_put(t, v->u.b ? "true" : "false"); break;
    case DJ_NUM:
        if (v->u.num.is_int) diffu_job_util_put_int(t, (long long)v->u.num.i);
        else diffu_job_util_put_num(t, v->u.num.d);
        break;
    case DJ_STR: diffu_job_util_put_str(t, v->u.str.s, v->u.str.len); break;
    case DJ_ARR:
        diffu_text_append(t, "[", 1);
        for (size_t i = 0; i < v->u.kids.n; i++) {
            if (i) diffu_text_append(t, ",", 1);
            diffu_job_util_put_json(t, v->u.kids.items[i]);
        }
        diffu_text_append(t, "]", 1);
        break;
    case DJ_OBJ:
        diffu_text_append(t, "{", 1);
        for (size_t i = 0; i < v->u.kids.n; i++) {
            if (i) diffu_text_append(t, ",", 1);
            diffu_job_util_put_str(t, v->u.kids.keys[i], v->u.kids.klen[i]);
            diffu_text_append(t, ":", 1);
            diffu_job_util_put_json(t, v->u.kids.items[i]);
        }
        diffu_text_append(t, "}", 1);
        break;
    }
}

void diffu_job_util_put_base64(diffu_text *t, const unsigned char *s, size_t n) {
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    diffu_text_append(t, "\"", 1);
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)s[i] << 16;
        if (i + 1 < n) v |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n) v |= s[i + 2];
        q[0] = A[(v >> 18) & 63];
        q[1] = A[(v >> 12) & 63];
        q[2] = i + 1 < n ? A[(v >> 6) & 63] : '=';
        q[3] = i + 2 < n ? A[v & 63] : '=';
        diffu_text_append(t, q, 4);
    }
    diffu_text_append(t, "\"", 1);
}

/* ------------------------------------------------------------ text helpers */

size_t diffu_job_util_utf8_check(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int len;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
        else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
        else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
        else return i;
        if (n - i < (size_t)len) return i;
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += (size_t)len;
    }
    return n;
}

int diffu_job_util_edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 255;
    int prev[65], cur[65];
    for (size_t j = 0; j <= lb; j++) prev[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int c = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < c) c = prev[j] + 1;
            if (cur[j - 1] + 1 < c) c = cur[j - 1] + 1;
            cur[j] = c;
        }
        memcpy(prev, cur, sizeof cur);
    }
    return prev[lb] > 255 ? 255 : prev[lb];
}

void diffu_job_util_excerpt(char *buf, size_t cap, const char *s, size_t n, size_t max) {
    size_t o = 0;
    if (!cap) return;
    for (size_t i = 0; i < n && i < max; i++) {
        unsigned char c = (unsigned char)s[i];
        char tmp[8];
        int k;
        if (c >= 0x20 && c < 0x7f) tmp[0] = (char)c, k = 1;
        else k = snprintf(tmp, sizeof tmp, "\\x%02x", c);
        if (o + (size_t)k + 4 >= cap) break;
        memcpy(buf + o, tmp, (size_t)k);
        o += (size_t)k;
    }
    if (n > max && o + 4 < cap) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o] = 0;
}

/* ---- durable files ------------------------------------------------------- */

/* 0, -1 with errno, or 1 when write() wrote nothing. */
static int write_all(int fd, const char *bytes, size_t len) {
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, bytes + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? -1 : 1;
        off += (size_t)w;
    }
    return 0;
}

/* fsync the directory holding path (a rename there is durable after it). */
static void fsync_parent(const char *path) {
    char dir[4300];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) *(slash == dir ? slash + 1 : slash) = 0;
    else snprintf(dir, sizeof dir, ".");
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
}

int diffu_job_util_write_atomic(const char *path, const void *data, size_t len, const char *what, diffu_err *err) {
    char tmp[4300];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        diffu_err_set(err, "%s: cannot write %s: %s", tmp, what, strerror(errno));
        return -1;
    }
    int w = write_all(fd, data, len);
    if (w) {
        diffu_err_set(err, "%s: cannot write %s: %s", tmp, what, w < 0 ? strerror(errno) : "short write");
        close(fd);
        unlink(tmp);
        return -1;
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        diffu_err_set(err, "%s: cannot write %s: %s", tmp, what, strerror(errno));
        unlink(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        diffu_err_set(err, "%s: cannot write %s: rename: %s", path, what, strerror(errno));
        unlink(tmp);
        return -1;
    }
    fsync_parent(path);
    return 0;
}

struct diffu_job_util_afile {
    char *path, *tmp;
    int fd;
    gzFile g;             /* on a dup of fd: gzip level 6, or "T" (plain bytes, buffered) */
};

diffu_job_util_afile *diffu_job_util_afile_open(const char *path, int gz, diffu_err *err) {
    size_t n = strlen(path) + 32;
    char *tmp = diffu_xmalloc(n);
    snprintf(tmp, n, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    int d = fd < 0 ? -1 : dup(fd);
    gzFile g = d < 0 ? NULL : gzdopen(d, gz ? "wb6" : "wbT");
    if (!g) {
        diffu_err_set(err, "%s: cannot create: %s", tmp, strerror(errno));
        if (d >= 0) close(d);
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        free(tmp);
        return NULL;
    }
    diffu_job_util_afile *f = diffu_xcalloc(1, sizeof *f);
    f->path = diffu_xstrdup(path);
    f->tmp = tmp;
    f->fd = fd;
    f->g = g;
    return f;
}

int diffu_job_util_afile_write(diffu_job_util_afile *f, const void *s, size_t n, diffu_err *err) {
    if (!n) return 0;
    DIFFU_ASSERT(n < (1u << 31));
    if (gzwrite(f->g, s, (unsigned)n) != (int)n)
        return diffu_err_set(err, "%s: write failed: %s", f->tmp, strerror(errno));
    return 0;
}

const char *diffu_job_util_afile_path(const diffu_job_util_afile *f) { return f->path; }

static void afile_free(diffu_job_util_afile **fp) {
    diffu_job_util_afile *f = *fp;
    free(f->path);
    free(f->tmp);
    free(f);
    *fp = NULL;
}

void diffu_job_util_afile_abort(diffu_job_util_afile **fp) {
    if (!fp || !*fp) return;
    diffu_job_util_afile *f = *fp;
    gzclose(f->g);
    close(f->fd);
    unlink(f->tmp);
    afile_free(fp);
}

int diffu_job_util_afile_commit(diffu_job_util_afile **fp, diffu_err *err) {
    diffu_job_util_afile *f = *fp;
    int rc = 0;
    int bad = gzclose(f->g) != Z_OK;
    bad = bad || fsync(f->fd) != 0;
    bad = close(f->fd) != 0 || bad;
    if (bad) {
        diffu_err_set(err, "%s: write failed: %s", f->tmp, strerror(errno));
        unlink(f->tmp);
        rc = -1;
    } else if (rename(f->tmp, f->path) != 0) {
        int e = errno;
        unlink(f->tmp);
        rc = diffu_err_set(err, "%s: cannot rename to %s: %s", f->tmp, f->path, strerror(e));
    } else {
        fsync_parent(f->path);
    }
    afile_free(fp);
    return rc;
}
