/* wire.h — beside the schema (proto/diffu.proto): protobuf-c helpers for the control plane's step loop: an arena
 * allocator for unpacking (a message's memory is one bump region, reset per
 * message, so the step loop does not call malloc once the arena has grown to
 * the largest message) and a growable pack buffer. Not collective; one thread. */
#ifndef DIFFU_WIRE_H
#define DIFFU_WIRE_H

#include <protobuf-c/protobuf-c.h>
#include <stddef.h>
#include <stdint.h>

typedef struct diffu_wire_arena {
    ProtobufCAllocator pa; /* hand &a->pa to *_unpack */
    uint8_t *mem;
    size_t cap, used;
    int overflow;          /* an allocation did not fit: grow and unpack again */
} diffu_wire_arena;

void diffu_wire_arena_init(diffu_wire_arena *a, size_t cap);
void diffu_wire_arena_free(diffu_wire_arena *a);

/* Unpack with the arena, growing it (and retrying) when the message needs
 * more; NULL when the bytes do not parse. The result lives until the next
 * call with this arena. */
void *diffu_wire_arena_unpack(diffu_wire_arena *a, const ProtobufCMessageDescriptor *desc, size_t len, const uint8_t *data);

/* A pack buffer: pack msg into b (grown when needed); returns the length. */
typedef struct diffu_wire_packbuf {
    uint8_t *data;
    size_t len, cap;
} diffu_wire_packbuf;
size_t diffu_wire_pack(diffu_wire_packbuf *b, const ProtobufCMessage *msg);
void diffu_wire_packbuf_free(diffu_wire_packbuf *b);

/* FNV-1a 64 of n int32 (the canvas check of the step protocol). */
uint64_t diffu_wire_hash_i32(const int32_t *v, size_t n);

#endif
