/* handshake.h — the versioned start-up handshake of a distributed job.
 *
 * Every rank packs a diffu.Handshake (proto/diffu.proto, protobuf-c): protocol
 * version, build id, model fingerprint (diffu_ckpt_fingerprint), world size,
 * pp, tp, the row panel its forward uses (diffu_forward_panel, for the log
 * only: activations travel between stages one row per token, so stages of
 * different panels line up, model/forward.h), its own view of the layout (stage, tp rank, layers, and the hash of
 * the whole plan), hostname, pid, and the error it hit opening the model or
 * making the layout, if any. Rank 0 gathers them and compares every rank's
 * fields with its own; the first mismatch (lowest rank) becomes a one-line
 * reason, e.g. "rank 3 (host h2): model fingerprint 1a2b... differs from rank
 * 0's 9f8e... (another checkpoint or config.json)". The verdict and every
 * rank's hostname go back in a diffu.HandshakeReply; on refusal every rank
 * returns -1 with that reason (the caller prints it on rank 0 and exits
 * non-zero, so mpirun ends the job non-zero).
 *
 * Test hook (tests only): DIFFU_DEBUG_HANDSHAKE=RANK:FIELD=VALUE makes that rank
 * claim another value, FIELD one of fingerprint (hex), build (string),
 * protocol (integer), layout (hex hash), panel (integer), precision. It logs
 * a warning when used. */
#ifndef DIFFU_HANDSHAKE_H
#define DIFFU_HANDSHAKE_H

#include <stddef.h>
#include <stdint.h>

#include "comm.h"
#include "layout.h"
#include "log.h"

/* The protocol version this build speaks (diffu.proto PROTOCOL_VERSION). */
unsigned diffu_protocol_version(void);
/* "diffu <version>+<git revision>" as configured by CMake. */
const char *diffu_build_id(void);

/* Collective (world). layout may be NULL (and local_error set) when this rank
 * could not make it; local_error NULL or "" when all is well; threads: the
 * compute threads this rank will run (0 unknown). Returns 0 when rank 0
 * accepts every rank (and the comm learns every rank's hostname), else -1
 * with err the reason, the same on every rank. Rank 0 logs a summary line, and
 * a warning for every host whose ranks run more threads than it has CPUs. */
int diffu_handshake(diffu_comm *c, uint64_t fingerprint, const diffu_layout *layout, const char *local_error,
                    int threads, diffu_err *err);

/* Rank 0's check of one rank's packed handshake against its own (mine), as
 * diffu_handshake does for every rank; for tests and tests/fuzz. 0 when
 * accepted, else -1 with the one-line reason in why[n]. Not collective. */
int diffu_handshake_verify(const uint8_t *mine, size_t mine_len, const uint8_t *theirs, size_t len, int i, int world,
                           const diffu_layout *l, char *why, size_t n);

#endif
