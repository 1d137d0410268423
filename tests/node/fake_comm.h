/* fake_comm.h — an in-process stand-in for node/comm.c: the whole of
 * node/comm.h implemented over threads of one process, so that the stages,
 * workers and the pipeline backend (node/) run and are tested without MPI
 * (tests/node/test_node_fake.c). A test program links fake_comm.c and the
 * node library: every symbol of comm.h is defined here, so the archive's
 * comm.o (the only MPI caller) is never pulled in.
 *
 * A world of N ranks is N threads; rank r's thread uses fake_world_comm(w, r)
 * wherever the real code takes a diffu_comm. The semantics are MPI's, made
 * strict on purpose:
 *   - point to point is rendezvous: a send completes only once the receiver
 *     has taken the message (copied straight from the sender's buffer at that
 *     moment), so code that relies on MPI's buffering deadlocks here, and code
 *     that touches a send buffer before waiting sends the wrong bytes;
 *   - messages between one sender and one receiver match in the order sent,
 *     posted receives in the order posted, before any probe;
 *   - every wait has a deadline (DIFFU_COMM_TIMEOUT, default 120 s): past it
 *     the rank prints what it waited for and from whom, and the process aborts
 *     (a deadlock fails the test instead of hanging it);
 *   - collectives (bcast, gather, agree, the stage's all-reduce and
 *     allgather) are barriers over the world or the rank's stage; the
 *     all-reduce sums in tp order, the same bits on every member.
 * diffu_comm_init is refused (one process cannot be N ranks that way);
 * diffu_comm_abort prints the message and aborts the process. One mutex and
 * one condition variable guard the whole world. */
#ifndef DIFFU_FAKE_COMM_H
#define DIFFU_FAKE_COMM_H

#include "comm.h"

typedef struct fake_world fake_world;

/* A world of size ranks (1..64). */
fake_world *fake_world_create(int size);
/* After every rank's diffu_comm_finalize (or never used). */
void fake_world_free(fake_world *w);
/* Rank r's communicator (owned by the world). */
diffu_comm *fake_world_comm(fake_world *w, int rank);

#endif
