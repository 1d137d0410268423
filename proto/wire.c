/* wire.c — see wire.h. */
#include "wire.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "log.h"

static void *arena_alloc(void *user, size_t n) {
    diffu_wire_arena *a = user;
    size_t at = (a->used + 15) & ~(size_t)15;
    if (at + n > a->cap) {
        a->overflow = 1;
        return NULL;
    }
    a->used = at + n;
    return a->mem + at;
}

static void arena_nofree(void *user, void *p) {
    (void)user;
    (void)p;
}

void diffu_wire_arena_init(diffu_wire_arena *a, size_t cap) {
    memset(a, 0, sizeof *a);
    a->cap = cap < 4096 ? 4096 : cap;
    a->mem = diffu_xaligned(a->cap);
    a->pa.alloc = arena_alloc;
    a->pa.free = arena_nofree;
    a->pa.allocator_data = a;
}

void diffu_wire_arena_free(diffu_wire_arena *a) {
    if (!a) return;
    free(a->mem);
    memset(a, 0, sizeof *a);
}

void *diffu_wire_arena_unpack(diffu_wire_arena *a, const ProtobufCMessageDescriptor *desc, size_t len, const uint8_t *data) {
    for (;;) {
        a->used = 0;
        a->overflow = 0;
        ProtobufCMessage *m = protobuf_c_message_unpack(desc, &a->pa, len, data);
        if (m) return m;
        if (!a->overflow) return NULL; /* does not parse */
        free(a->mem);
        a->cap *= 2;
        a->mem = diffu_xaligned(a->cap);
    }
}

size_t diffu_wire_pack(diffu_wire_packbuf *b, const ProtobufCMessage *msg) {
    size_t n = protobuf_c_message_get_packed_size(msg);
    if (n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < n + 1) cap *= 2;
        free(b->data);
        b->data = diffu_xmalloc(cap);
        b->cap = cap;
    }
    b->len = protobuf_c_message_pack(msg, b->data);
    DIFFU_ASSERT(b->len == n);
    return n;
}

void diffu_wire_packbuf_free(diffu_wire_packbuf *b) {
    if (!b) return;
    free(b->data);
    memset(b, 0, sizeof *b);
}

uint64_t diffu_wire_hash_i32(const int32_t *v, size_t n) {
    return diffu_fnv64(DIFFU_FNV64_INIT, v, n * sizeof *v);
}
