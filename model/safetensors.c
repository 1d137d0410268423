/* safetensors.c — see safetensors.h. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json.h"

#define MAX_HEADER (100u << 20) /* the reference implementation's limit */

int64_t diffu_st_numel(const diffu_st_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

static int cmp_name(const void *a, const void *b) {
    return strcmp(((const diffu_st_tensor *)a)->name, ((const diffu_st_tensor *)b)->name);
}
static int cmp_begin(const void *a, const void *b) {
    const diffu_st_tensor *x = *(const diffu_st_tensor *const *)a, *y = *(const diffu_st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

static int parse_entry(const char *name, const diffu_json *e, diffu_st_tensor *t, uint64_t data_len, diffu_err *err) {
    if (e->type != DJ_OBJ) return diffu_err_set(err, "tensor '%s': header entry is not an object", name);
    const char *dt = NULL;
    if (diffu_json_get_str(e, "dtype", &dt, err) < 0) return diffu_err_prefix(err, "tensor '%s'", name);
    if (!dt) return diffu_err_set(err, "tensor '%s': missing 'dtype'", name);
    if (diffu_dtype_parse(dt, &t->dtype))
        return diffu_err_set(err, "tensor '%s': dtype %s is not supported (F32, F16, BF16)", name, dt);
    const diffu_json *sh = diffu_json_get(e, "shape");
    if (!sh || sh->type != DJ_ARR) return diffu_err_set(err, "tensor '%s': missing or non-array 'shape'", name);
    if (sh->u.kids.n > DIFFU_MAX_DIMS)
        return diffu_err_set(err, "tensor '%s': %zu dimensions (at most %d supported)", name, sh->u.kids.n, DIFFU_MAX_DIMS);
    t->ndim = (int)sh->u.kids.n;
    uint64_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        const diffu_json *d = sh->u.kids.items[i];
        if (d->type != DJ_NUM || !d->u.num.is_int || d->u.num.i < 0 || d->u.num.i > (1ll << 40))
            return diffu_err_set(err, "tensor '%s': shape[%d] is not a valid dimension", name, i);
        t->shape[i] = d->u.num.i;
        /* check before multiplying: the product of two dims up to 2^40 can wrap to 0 */
        if (d->u.num.i && numel > (1ull << 42) / (uint64_t)d->u.num.i)
            return diffu_err_set(err, "tensor '%s': shape too large", name);
        numel *= (uint64_t)d->u.num.i;
    }
    const diffu_json *off = diffu_json_get(e, "data_offsets");
    if (!off || off->type != DJ_ARR || off->u.kids.n != 2)
        return diffu_err_set(err, "tensor '%s': 'data_offsets' must be [begin, end]", name);
    int64_t be[2];
    for (int i = 0; i < 2; i++) {
        const diffu_json *d = off->u.kids.items[i];
        if (d->type != DJ_NUM || !d->u.num.is_int || d->u.num.i < 0)
            return diffu_err_set(err, "tensor '%s': data_offsets[%d] is not a non-negative integer", name, i);
        be[i] = d->u.num.i;
    }
    t->begin = (uint64_t)be[0];
    t->end = (uint64_t)be[1];
    if (t->end < t->begin) return diffu_err_set(err, "tensor '%s': data_offsets end %llu < begin %llu", name,
                                                (unsigned long long)t->end, (unsigned long long)t->begin);
    if (t->end - t->begin != numel * diffu_dtype_size(t->dtype))
        return diffu_err_set(err, "tensor '%s': data_offsets span %llu bytes but %s shape needs %llu", name,
                             (unsigned long long)(t->end - t->begin), dt,
                             (unsigned long long)(numel * diffu_dtype_size(t->dtype)));
    if (t->end > data_len)
        return diffu_err_set(err,
                             "tensor '%s': data_offsets [%llu, %llu) run past the end of the data section (%llu bytes; file truncated?)",
                             name, (unsigned long long)t->begin, (unsigned long long)t->end,
                             (unsigned long long)data_len);
    return 0;
}

static int parse_header(diffu_st_file *f, const char *hdr, size_t hlen, diffu_err *err) {
    diffu_json_doc *doc = diffu_json_parse(hdr, hlen, err);
    if (!doc) return diffu_err_prefix(err, "header is not valid JSON");
    const diffu_json *root = diffu_json_root(doc);
    int rc = -1;
    if (root->type != DJ_OBJ) {
        diffu_err_set(err, "header is not a JSON object");
        goto out;
    }
    uint64_t data_len = f->file_size - f->data_start;
    f->tensors = diffu_xcalloc(root->u.kids.n ? root->u.kids.n : 1, sizeof *f->tensors);
    size_t n = 0;
    for (size_t i = 0; i < root->u.kids.n; i++) {
        const char *name = root->u.kids.keys[i];
        if (!strcmp(name, "__metadata__")) continue;
        if (strlen(name) != root->u.kids.klen[i]) {
            diffu_err_set(err, "tensor '%s\\u0000...': NUL byte in the tensor name", name);
            goto out;
        }
        diffu_st_tensor *t = &f->tensors[n];
        t->name = diffu_xstrdup(name);
        n++;
        f->n_tensors = n;
        if (parse_entry(name, root->u.kids.items[i], t, data_len, err)) goto out;
        t->data = f->map + f->data_start + t->begin;
    }
    qsort(f->tensors, n, sizeof *f->tensors, cmp_name);
    for (size_t i = 1; i < n; i++)
        if (!strcmp(f->tensors[i - 1].name, f->tensors[i].name)) {
            diffu_err_set(err, "tensor '%s' appears twice in the header", f->tensors[i].name);
            goto out;
        }
    /* overlap check on ranges sorted by begin (empty tensors cannot overlap) */
    diffu_st_tensor **by = diffu_xmalloc((n ? n : 1) * sizeof *by);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (f->tensors[i].end > f->tensors[i].begin) by[m++] = &f->tensors[i];
    qsort(by, m, sizeof *by, cmp_begin);
    for (size_t i = 1; i < m; i++)
        if (by[i]->begin < by[i - 1]->end) {
            diffu_err_set(err, "tensors '%s' and '%s' overlap (bytes [%llu, %llu) and [%llu, %llu))", by[i - 1]->name,
                          by[i]->name, (unsigned long long)by[i - 1]->begin, (unsigned long long)by[i - 1]->end,
                          (unsigned long long)by[i]->begin, (unsigned long long)by[i]->end);
            free(by);
            goto out;
        }
    free(by);
    rc = 0;
out:
    diffu_json_free(doc);
    return rc;
}

int diffu_st_open(const char *path, diffu_st_file **out, diffu_err *err) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* NONBLOCK: a FIFO must not hang the open */
    if (fd < 0) return diffu_err_set(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return diffu_err_set(err, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (size < 8) {
        close(fd);
        return diffu_err_set(err, "%s: file is %zu bytes, too short for a safetensors header (truncated?)", path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return diffu_err_set(err, "%s: mmap failed: %s", path, strerror(errno));
    diffu_st_file *f = diffu_xcalloc(1, sizeof *f);
    f->path = diffu_xstrdup(path);
    f->file_size = size;
    f->map = map;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->map[i];
    if (hlen > size - 8) {
        diffu_err_set(err, "%s: header length %llu runs past the end of the file (%zu bytes; truncated?)", path,
                      (unsigned long long)hlen, size);
        goto fail;
    }
    if (hlen > MAX_HEADER) {
        diffu_err_set(err, "%s: header length %llu exceeds the %u-byte limit", path, (unsigned long long)hlen, MAX_HEADER);
        goto fail;
    }
    f->data_start = 8 + hlen;
    if (parse_header(f, (const char *)f->map + 8, (size_t)hlen, err)) {
        diffu_err_prefix(err, "%s", path);
        goto fail;
    }
    *out = f;
    return 0;
fail:
    diffu_st_close(f);
    return -1;
}

void diffu_st_close(diffu_st_file *f) {
    if (!f) return;
    if (f->map) munmap((void *)f->map, f->file_size);
    for (size_t i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    free(f->path);
    free(f);
}

const diffu_st_tensor *diffu_st_find(const diffu_st_file *f, const char *name) {
    diffu_st_tensor key = {.name = (char *)name};
    return bsearch(&key, f->tensors, f->n_tensors, sizeof key, cmp_name);
}

uint8_t *diffu_st_make_header(diffu_st_tensor *t, size_t n, size_t *out_size) {
    size_t cap = 256 + n * 256, len = 0;
    char *js = diffu_xmalloc(cap);
    uint64_t off = 0;
    len += (size_t)snprintf(js + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < n; i++) {
        uint64_t bytes = (uint64_t)diffu_st_numel(&t[i]) * diffu_dtype_size(t[i].dtype);
        t[i].begin = off;
        t[i].end = off + bytes;
        off += bytes;
        if (cap - len < 512 + strlen(t[i].name)) js = diffu_xrealloc(js, cap = cap * 2 + strlen(t[i].name) + 512);
        len += (size_t)snprintf(js + len, cap - len, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t[i].name,
                                diffu_dtype_name(t[i].dtype));
        for (int d = 0; d < t[i].ndim; d++)
            len += (size_t)snprintf(js + len, cap - len, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
        len += (size_t)snprintf(js + len, cap - len, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)t[i].begin,
                                (unsigned long long)t[i].end);
    }
    len += (size_t)snprintf(js + len, cap - len, "}");
    size_t padded = (len + 7) & ~(size_t)7;
    uint8_t *buf = diffu_xmalloc(8 + padded);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    memcpy(buf + 8, js, len);
    memset(buf + 8 + len, ' ', padded - len);
    free(js);
    *out_size = 8 + padded;
    return buf;
}
