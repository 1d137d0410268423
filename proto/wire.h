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

/* Where the step protocol's messages go: a backend of the coordinator's loop
 * (coordinator/engine.h) that speaks in packed messages. It is declared here,
 * beside the schema, because both sides see proto/: node/pipeline.h makes one
 * of the MPI stages, coordinator/engine.h drives one. One thread. */
typedef struct diffu_wire_backend {
    void *self;
    /* Start microbatch id: control[role] is its packed Control for a role
     * mask (0..3, scheduler.h), each valid until M + 1 more microbatches have
     * been submitted (so the sends of one may still be in flight). */
    void (*submit)(void *self, long id, const uint8_t *const control[4], const size_t control_len[4]);
    /* The packed StepResult of the oldest microbatch in flight: 1 with *msg
     * (valid until the next poll), 0 when none has arrived (wait == 0 only;
     * wait != 0 blocks until one does). */
    int (*poll)(void *self, int wait, const uint8_t **msg, size_t *len);
    /* After the last result: deliver the packed Shutdown, then drain. */
    void (*shutdown)(void *self, const uint8_t *msg, size_t len);
    /* Optional (NULL): each stage's busy / elapsed so far, util[*n] (< 0:
     * unknown), valid until the next call. */
    const double *(*util)(void *self, int *n);
    /* A result the coordinator refuses (a bug or a foreign peer): end the job
     * with this exit code and message. Does not return. */
    void (*fail)(void *self, int code, const char *msg);
    /* Seconds spent blocked in poll(wait != 0) so far. */
    double (*waited)(void *self);
} diffu_wire_backend;

#endif
