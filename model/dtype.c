/* dtype.c — see dtype.h. The loops are written for auto-vectorization. */
#include "dtype.h"

const char *diffu_dtype_name(diffu_dtype t) {
    switch (t) {
    case DIFFU_F32: return "F32";
    case DIFFU_F16: return "F16";
    case DIFFU_BF16: return "BF16";
    }
    return "?";
}

int diffu_dtype_parse(const char *s, diffu_dtype *out) {
    if (!strcmp(s, "F32")) *out = DIFFU_F32;
    else if (!strcmp(s, "F16")) *out = DIFFU_F16;
    else if (!strcmp(s, "BF16")) *out = DIFFU_BF16;
    else return -1;
    return 0;
}

void diffu_widen(float *restrict dst, const void *restrict src, diffu_dtype t, size_t n) {
    if (t == DIFFU_F32) {
        memcpy(dst, src, n * 4);
    } else if (t == DIFFU_BF16) {
        const uint16_t *s = src;
        uint32_t *d = (uint32_t *)dst;
        for (size_t i = 0; i < n; i++) d[i] = (uint32_t)s[i] << 16;
    } else {
        const diffu_half_ *s = src; /* _Float16 (dtype.h) */
        for (size_t i = 0; i < n; i++) dst[i] = (float)s[i];
    }
}
