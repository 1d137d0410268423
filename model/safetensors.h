/* safetensors.h — one .safetensors file: validated header + read-only mmap.
 *
 * Layout: u64 little-endian header length N, N bytes of JSON
 * {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
 * then the data section; offsets are relative to the data section.
 *
 * diffu_st_open checks everything a corrupt file can get wrong before any
 * tensor is touched: the header length against the file size, the JSON, each
 * entry's fields, the dtype (F32/F16/BF16 only), end - begin == numel * size,
 * every range inside the data section, no two ranges overlapping, no
 * duplicate names. Errors name the file and the tensor.
 * The mapping is shared and read-only; pages are read from disk only when a
 * tensor's bytes are touched (so a rank that uses a slice reads only that).
 * Not collective. Read-only after open: safe to share between threads. */
#ifndef DIFFU_SAFETENSORS_H
#define DIFFU_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "log.h"

#define DIFFU_MAX_DIMS 4

typedef struct diffu_st_tensor {
    char *name;
    diffu_dtype dtype;
    int ndim;
    int64_t shape[DIFFU_MAX_DIMS];
    uint64_t begin, end;  /* byte range inside the data section */
    const void *data;     /* points into the mapping */
} diffu_st_tensor;

typedef struct diffu_st_file {
    char *path;
    size_t file_size;
    const uint8_t *map;     /* whole file, PROT_READ */
    uint64_t data_start;    /* 8 + header length */
    diffu_st_tensor *tensors; /* sorted by name */
    size_t n_tensors;
} diffu_st_file;

int diffu_st_open(const char *path, diffu_st_file **out, diffu_err *err);
void diffu_st_close(diffu_st_file *f);
/* Binary search by name; NULL if absent. */
const diffu_st_tensor *diffu_st_find(const diffu_st_file *f, const char *name);
int64_t diffu_st_numel(const diffu_st_tensor *t);

/* Writer used by `diffu mkmodel`: the header for n tensors, padded with spaces
 * to a multiple of 8 as the reference writer does. Returns a malloc'd buffer
 * (8-byte length prefix included) and its size; tensors' begin/end are filled
 * in order, packed back to back. */
uint8_t *diffu_st_make_header(diffu_st_tensor *tensors, size_t n, size_t *out_size);

#endif
