/* checkpoint.h — a Hugging Face model directory, opened and validated.
 *
 * Reads config.json and either model.safetensors or the shards listed in
 * model.safetensors.index.json (model-XXXXX-of-YYYYY.safetensors). Every shard
 * is mmap'd read-only (nothing is read until used). diffu_ckpt_open validates
 * before anything uses the weights: each file's header (see safetensors.h),
 * the index (every listed file exists, every tensor is where the index says),
 * every tensor the config implies present with its shape and a supported
 * dtype, the vocabulary of the tensors equal to config vocab_size. Tensors the
 * model does not use are listed in a warning. All errors are one line naming
 * the file and the tensor or field.
 * Not collective. Read-only after open; safe to share between threads. */
#ifndef DIFFU_CHECKPOINT_H
#define DIFFU_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "log.h"
#include "safetensors.h"

typedef struct diffu_ckpt diffu_ckpt;

int diffu_ckpt_open(const char *dir, diffu_ckpt **out, diffu_err *err);
void diffu_ckpt_close(diffu_ckpt *c);

const diffu_config *diffu_ckpt_config(const diffu_ckpt *c);
/* A tensor by Hugging Face name, or NULL; *file (optional) gets its path. */
const diffu_st_tensor *diffu_ckpt_tensor(const diffu_ckpt *c, const char *name, const char **file);

/* Totals over the tensors the model uses. bytes_by_dtype indexed by diffu_dtype. */
typedef struct {
    int64_t params;
    uint64_t bytes_by_dtype[3];
    uint64_t bytes_total;
    int n_files;
    int n_tensors;
} diffu_ckpt_stats;
void diffu_ckpt_get_stats(const diffu_ckpt *c, diffu_ckpt_stats *s);

/* 64-bit fingerprint of the config and every tensor header (name, dtype,
 * shape, size) — the distributed handshake compares it across ranks. */
uint64_t diffu_ckpt_fingerprint(const diffu_ckpt *c);

#endif
