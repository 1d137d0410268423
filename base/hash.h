/* hash.h — the one FNV-1a of diffu (64- and 32-bit), for fingerprints
 * (model/checkpoint, node/layout), the step protocol's canvas check
 * (proto/wire), mkmodel's per-tensor seeds, the request key of a batch job
 * (coordinator/job_input) and the id hash maps (coordinator/job_util,
 * cli/cmd_split). Pure functions; reentrant. Not collective.
 *
 *   uint64_t h = DIFFU_FNV64_INIT;
 *   h = diffu_fnv64(h, bytes, n);   // chain over several pieces
 */
#ifndef DIFFU_HASH_H
#define DIFFU_HASH_H

#include <stddef.h>
#include <stdint.h>

#define DIFFU_FNV64_INIT 0xcbf29ce484222325ull
#define DIFFU_FNV32_INIT 2166136261u

/* FNV-1a 64 of n bytes, continuing from h (DIFFU_FNV64_INIT to start). */
static inline uint64_t diffu_fnv64(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* FNV-1a 32 of n bytes, continuing from h (DIFFU_FNV32_INIT to start). */
static inline uint32_t diffu_fnv32(uint32_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 16777619u;
    return h;
}

#endif
