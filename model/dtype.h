/* dtype.h — checkpoint element types and their conversion to fp32.
 * Pure functions, thread-safe. */
#ifndef DIFFU_DTYPE_H
#define DIFFU_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef enum { DIFFU_F32 = 0, DIFFU_F16 = 1, DIFFU_BF16 = 2 } diffu_dtype;

/* "F32" / "F16" / "BF16" (safetensors spelling). */
const char *diffu_dtype_name(diffu_dtype t);
/* Parse the safetensors spelling; returns -1 for anything else. */
int diffu_dtype_parse(const char *s, diffu_dtype *out);
static inline size_t diffu_dtype_size(diffu_dtype t) { return t == DIFFU_F32 ? 4 : 2; }

static inline float diffu_bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
/* Round to nearest even (NaN kept quiet), as torch does. */
static inline uint16_t diffu_f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
/* clang before 15 has _Float16 on x86 only with AVX512-FP16; its __fp16 is the
 * same IEEE half as a storage type on every target (the fuzz build, tests/fuzz) */
#if defined(__clang__) && __clang_major__ < 15 && !defined(__AVX512FP16__)
typedef __fp16 diffu_half_;
#else
typedef _Float16 diffu_half_;
#endif
static inline float diffu_f16_to_f32(uint16_t h) {
    diffu_half_ x;
    memcpy(&x, &h, 2);
    return (float)x;
}
static inline uint16_t diffu_f32_to_f16(float f) {
    diffu_half_ x = (diffu_half_)f;
    uint16_t h;
    memcpy(&h, &x, 2);
    return h;
}

/* dst[i] = (float)src[i] for n elements of type t. */
void diffu_widen(float *dst, const void *src, diffu_dtype t, size_t n);

#endif
