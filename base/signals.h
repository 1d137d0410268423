/* signals.h — the one owner of diffu's signal handlers. Who installs what,
 * in the order a run does it (the last call for a signal wins, by design):
 *
 *   diffu_signals_fatal(rank, host)  node/comm.c at MPI start-up, every rank:
 *       SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT print
 *       "[diffu rN] fatal: SIGSEGV (invalid memory access) at address 0x... on
 *       host H, pid P; ..." and re-raise (the rank dies by the signal; mpirun
 *       names it and ends the job); SIGTERM/SIGINT/SIGHUP print
 *       "[diffu rN] SIGTERM (terminate request) ... exiting" and _exit(128+sig).
 *   diffu_signals_graceful()         the batch job's coordinator (one process or
 *       rank 0), first thing in the job (cli/generate_job.c:gen_job_open; under
 *       mpirun before MPI start-up), so a signal during the set-up is a stop
 *       too: SIGTERM, SIGINT, SIGUSR1 only ask the job to stop
 *       (diffu_signals_stop_requested): it admits nothing more, finishes the
 *       samples in flight, writes them and exits 1 with a resume hint.
 *       SIGXFSZ is ignored (a file-size limit is an I/O error, not a death).
 *   diffu_signals_ignore_stop()      the other ranks of a batch job, before MPI
 *       start-up: SIGTERM,
 *       SIGINT, SIGUSR1 ignored (rank 0 decides when to stop, they wait for
 *       its Shutdown).
 *   diffu_signals_restore()          after MPI_Finalize: back to the defaults.
 * The stop policy (graceful / ignore) is state of this module: set before or
 * after diffu_signals_fatal, it holds either way (no call order decides).
 * Handlers use only async-signal-safe calls (write, _exit, raise, sigaction);
 * their text is prepared by diffu_signals_fatal. Main thread; not collective. */
#ifndef DIFFU_SIGNALS_H
#define DIFFU_SIGNALS_H

void diffu_signals_fatal(int rank, const char *host);
void diffu_signals_graceful(void);
void diffu_signals_ignore_stop(void);
void diffu_signals_restore(void);
/* A stop signal arrived since diffu_signals_graceful (the count, 0 none). */
int diffu_signals_stop_requested(void);

#endif
