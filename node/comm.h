/* comm.h — the communication module: the only place diffu calls MPI.
 *
 * Start-up (diffu_comm_init, collective over MPI_COMM_WORLD):
 *   MPI_Init_thread with MPI_THREAD_FUNNELED (only the main thread calls MPI;
 *   the model's pool threads never do), a private duplicate of the world
 *   communicator with an error handler that logs the rank and ends the job,
 *   the log prefix "[diffu rN]", the assertion hook (DIFFU_ASSERT -> MPI_Abort),
 *   and signal handlers: SIGTERM/SIGINT/SIGHUP print "[diffu rN] ... received
 *   SIGTERM ..." and exit 128+sig (mpirun then ends the others); SIGSEGV,
 *   SIGBUS, SIGFPE, SIGILL, SIGABRT print the rank, host, pid and cause and
 *   re-raise (the rank dies by the signal; mpirun names it and ends the job).
 *
 * Liveness: no rank waits forever. Every wait in here is a polling loop
 *   (MPI_Test: tight for 100 us, then yielding the CPU up to 2 ms, then
 *   sleeps backing off from 20 us to 1 ms) with a deadline
 *   (diffu_comm_set_timeout, default 300 s, env DIFFU_COMM_TIMEOUT): past it
 *   the rank logs what it waited for and from whom (rank, stage, host) and
 *   calls MPI_Abort, which ends the whole job. A rank that dies (crash,
 *   SIGKILL, OOM killer) is handled by mpirun: Open MPI 4.1 has no ULFM, and
 *   mpirun kills the job as soon as any rank exits abnormally, printing
 *   "mpirun noticed that process rank R with PID P on node N exited on signal 9
 *   (Killed)" — within about a second here (see docs/README-dist.md).
 *
 * Layout (diffu_comm_set_layout, collective): the stage communicator of each
 *   rank (its stage's T ranks, ordered by tp rank) for the TP all-reduce and the
 *   last stage's vocabulary reductions; activations go point to point on the
 *   world duplicate between the same tp rank of adjacent stages.
 *
 * Which calls are collective is said at each one; "local" = not collective.
 * Everything here must be called from the thread that called diffu_comm_init. */
#ifndef DIFFU_COMM_H
#define DIFFU_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "layout.h"
#include "log.h"

typedef struct diffu_comm diffu_comm;

/* Collective (world). Initializes MPI (MPI_Init_thread(NULL, NULL, ...)) and
 * installs the hooks above. Returns 0, or -1 with err (MPI could not give
 * MPI_THREAD_FUNNELED). At most once per process. */
int diffu_comm_init(diffu_comm **out, diffu_err *err);
/* Collective (world): a polling barrier, free the communicators, MPI_Finalize. */
void diffu_comm_finalize(diffu_comm *c);

/* Local. */
int diffu_comm_rank(const diffu_comm *c);
int diffu_comm_size(const diffu_comm *c);
const char *diffu_comm_hostname(const diffu_comm *c);
void diffu_comm_set_timeout(diffu_comm *c, double seconds);
/* Hostnames of all ranks (rank 0 learns them in the handshake and sends them
 * back): used to name peers in timeout messages. hosts[world]; copied. */
void diffu_comm_set_hosts(diffu_comm *c, const char *const *hosts);
const char *diffu_comm_host_of(const diffu_comm *c, int rank);

/* Local: log "fatal: <message>" with the rank, then MPI_Abort(world, code).
 * Ends the whole job; never returns. */
void diffu_comm_abort(diffu_comm *c, int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 3, 4)));

/* Collective (world): every rank reports its status (0 or not) and a one-line
 * message. Returns 0 when every rank reported 0; otherwise -1 on every rank,
 * with err = "rank R (host H): <message>" of the lowest failing rank. */
int diffu_comm_agree(diffu_comm *c, int local_rc, const char *local_msg, diffu_err *err);

/* Collective (world): bytes from rank 0 to every rank. Rank 0 passes *buf and
 * *len; the others get a malloc'd *buf (free it) and *len. */
void diffu_comm_bcast_bytes(diffu_comm *c, uint8_t **buf, size_t *len);
/* Collective (world): every rank's bytes to rank 0. On rank 0, *all gets
 * world malloc'd buffers and *lens their sizes (free each, then both arrays);
 * elsewhere they are set to NULL. */
void diffu_comm_gather_bytes(diffu_comm *c, const uint8_t *buf, size_t len, uint8_t ***all, size_t **lens);

/* Collective (world): build the stage communicators of the layout (which
 * must have been made for this world size). Keeps a pointer to l. */
int diffu_comm_set_layout(diffu_comm *c, const diffu_layout *l, diffu_err *err);
const diffu_rank_plan *diffu_comm_plan(const diffu_comm *c); /* this rank's plan; local */

/* Collective over the stage communicator: in-place sum of buf[n] over the
 * stage's TP ranks (non-blocking all-reduce + polling wait). Has the
 * signature of diffu_allreduce_fn: install with
 * diffu_model_set_allreduce(m, diffu_comm_tp_allreduce, comm). */
void diffu_comm_tp_allreduce(float *buf, size_t n, void *comm);

/* ---------------------------------------------------------- point to point
 * A transfer is a pending non-blocking send or receive; allocate them at
 * start-up (diffu_xfer_new), reuse them in the step loop. A buffer handed to
 * a transfer must not be touched until the transfer is waited for.
 *
 * Activations travel as two messages on the world duplicate, in order: a
 * header {id, tokens, hidden} and the raw floats [tokens x hidden]. */
typedef struct diffu_xfer diffu_xfer;
diffu_xfer *diffu_xfer_new(void);
void diffu_xfer_free(diffu_xfer *x);
/* Local: is a transfer started and not yet waited for? */
int diffu_xfer_pending(const diffu_xfer *x);

/* Local (non-blocking start): send x[n_tokens x hidden] with its microbatch id. */
void diffu_comm_send_act(diffu_comm *c, diffu_xfer *t, int to, const float *x, int n_tokens, int hidden, uint64_t id);
/* Local (non-blocking start): receive up to max_tokens x hidden floats into x. */
void diffu_comm_recv_act(diffu_comm *c, diffu_xfer *t, int from, float *x, int max_tokens, int hidden);
/* Local (non-blocking start): n raw floats with a tag, 0 <= tag <
 * DIFFU_FLOAT_TAG_MAX (sent as MPI tag 1000 + tag: below 32767, the largest
 * tag every MPI library must accept). */
enum { DIFFU_FLOAT_TAG_MAX = 30000 };
void diffu_comm_send_floats(diffu_comm *c, diffu_xfer *t, int to, const float *buf, size_t n, int tag);
void diffu_comm_recv_floats(diffu_comm *c, diffu_xfer *t, int from, float *buf, size_t n, int tag);
/* Local: 1 if the transfer completed (then it is no longer pending), else 0. */
int diffu_comm_test(diffu_comm *c, diffu_xfer *t);
/* Local: polling wait with the timeout. For a received activation, *n_tokens
 * and *id (either may be NULL) get the header's values; the float count is
 * checked against the header (DIFFU_ASSERT). A no-op if nothing is pending. */
void diffu_comm_wait(diffu_comm *c, diffu_xfer *t, int *n_tokens, uint64_t *id);

/* Local: let MPI progress every pending transfer of this rank (one
 * MPI_Iprobe). Cheap; called between layers while a stage computes. */
void diffu_comm_progress(diffu_comm *c);

/* Local: cancel a pending receive (e.g. the activations a stage pre-posted
 * for a microbatch that will never come, at shutdown). A no-op if nothing is
 * pending; a pending send is waited for instead. */
void diffu_comm_cancel(diffu_comm *c, diffu_xfer *t);

/* ---------------------------------------------------------- control messages
 * Protobuf-packed control messages (proto/diffu.proto) of a size the receiver
 * does not know: rank 0 -> every rank (DIFFU_TAG_CONTROL: Control), the last
 * stage's tp-0 rank -> rank 0 (DIFFU_TAG_RESULT: StepResult). Between one
 * sender and one receiver they arrive in the order sent (MPI non-overtaking). */
enum { DIFFU_TAG_CONTROL = 10, DIFFU_TAG_RESULT = 11 };

/* A receive buffer that grows to the largest message and is reused. */
typedef struct diffu_bytes {
    uint8_t *data;
    size_t len, cap;
} diffu_bytes;
void diffu_bytes_free(diffu_bytes *b);

/* Local (non-blocking start): send len bytes; buf must stay untouched until
 * the transfer is waited for. */
void diffu_comm_send_bytes(diffu_comm *c, diffu_xfer *t, int to, const uint8_t *buf, size_t len, int tag);
/* Local, non-blocking: if a message from `from` with `tag` has arrived,
 * receive it into b (b->len its size) and return 1; else 0. */
int diffu_comm_try_recv_bytes(diffu_comm *c, int from, int tag, diffu_bytes *b);
/* Local: the same, waiting (polling, with the deadline; `what` names the
 * message in the timeout error: "the next step command from"). */
void diffu_comm_recv_bytes(diffu_comm *c, int from, int tag, diffu_bytes *b, const char *what);

/* Collective over the stage communicator: every TP rank's n doubles, in tp
 * order: recv[tp * n + i]. The vocabulary-parallel sampler's only
 * communication (sampling/sampler_vp.h, diffu_vp_allgather_fn). */
void diffu_comm_stage_allgather(void *comm, const double *send, size_t n, double *recv);

/* ---------------------------------------------------------- accounting
 * Where this rank's communication time and bytes went since the last reset
 * (for the per-stage summary of a run). Waits are the polling waits above;
 * bytes are payload sent by this rank (all-reduce and allgather: the payload
 * this rank contributes). Local. */
typedef struct diffu_comm_stats {
    double wait_act;      /* activations from the previous stage */
    double wait_send;     /* a send of activations to complete (the next stage busy) */
    double wait_ctrl;     /* control messages: the next command (stages) */
    double wait_result;   /* step results (rank 0) */
    double wait_tp;       /* inside the tp all-reduce */
    double wait_vocab;    /* inside the vocab-parallel reductions */
    uint64_t act_bytes, ctrl_bytes, result_bytes, tp_bytes, vocab_bytes;
    uint64_t tp_calls, vocab_calls;
} diffu_comm_stats;
const diffu_comm_stats *diffu_comm_get_stats(const diffu_comm *c);
void diffu_comm_reset_stats(diffu_comm *c);

/* ---------------------------------------------------------- test hooks
 * DIFFU_DEBUG_STALL=RANK[:SECONDS][@MB[+EVERYxCOUNT]] (tests only): on that
 * rank, diffu_comm_debug_stall(c, mb, where) with the microbatch index MB
 * (default 0: before its first forward; with +EVERYxCOUNT at MB, MB+EVERY,
 * ..., COUNT times) logs "debug: rank R (pid P) stalls SECONDS s at WHERE"
 * and sleeps (default 60 s, in 100 ms steps), so that a test can kill it
 * (mid-run with @MB > 0), let its peers time out, or make a stage slow but
 * alive at points that do not depend on the machine's speed. No effect when
 * unset. Local. */
void diffu_comm_debug_stall(diffu_comm *c, long mb, const char *where);

#endif
