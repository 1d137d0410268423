/* signals.c — see signals.h. */
#include "signals.h"

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char g_sig_rank[32] = "[diffu]";
static char g_sig_host[256] = "?";
static char g_sig_pid[24] = "?";

static size_t cat(char *buf, size_t at, size_t cap, const char *s) {
    while (*s && at + 1 < cap) buf[at++] = *s++;
    buf[at] = 0;
    return at;
}

static void utoa(unsigned long v, char *out, int base) {
    char tmp[24];
    int n = 0;
    do {
        int d = (int)(v % (unsigned)base);
        tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
        v /= (unsigned)base;
    } while (v && n < 23);
    for (int i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    out[n] = 0;
}

static const char *sig_name(int sig, const char **what) {
    switch (sig) {
    case SIGTERM: *what = "terminate request"; return "SIGTERM";
    case SIGINT: *what = "interrupt"; return "SIGINT";
    case SIGHUP: *what = "hang-up"; return "SIGHUP";
    case SIGSEGV: *what = "invalid memory access"; return "SIGSEGV";
    case SIGBUS: *what = "bus error (e.g. a mapped checkpoint file shrank or an I/O error)"; return "SIGBUS";
    case SIGFPE: *what = "arithmetic exception"; return "SIGFPE";
    case SIGILL: *what = "illegal instruction (binary built for another CPU? see DIFFU_NATIVE)"; return "SIGILL";
    case SIGABRT: *what = "abort"; return "SIGABRT";
    default: *what = "signal"; return "signal";
    }
}

static void on_signal(int sig, siginfo_t *si, void *uc) {
    (void)uc;
    char buf[640], num[24];
    size_t n = 0;
    const char *what, *name = sig_name(sig, &what);
    int fatal = !(sig == SIGTERM || sig == SIGINT || sig == SIGHUP);
    n = cat(buf, n, sizeof buf, g_sig_rank);
    n = cat(buf, n, sizeof buf, fatal ? " fatal: " : " ");
    n = cat(buf, n, sizeof buf, name);
    n = cat(buf, n, sizeof buf, " (");
    n = cat(buf, n, sizeof buf, what);
    n = cat(buf, n, sizeof buf, ")");
    if (fatal && si && (sig == SIGSEGV || sig == SIGBUS)) {
        utoa((unsigned long)(uintptr_t)si->si_addr, num, 16);
        n = cat(buf, n, sizeof buf, " at address 0x");
        n = cat(buf, n, sizeof buf, num);
    }
    n = cat(buf, n, sizeof buf, " on host ");
    n = cat(buf, n, sizeof buf, g_sig_host);
    n = cat(buf, n, sizeof buf, ", pid ");
    n = cat(buf, n, sizeof buf, g_sig_pid);
    n = cat(buf, n, sizeof buf, fatal ? "; this rank dies and mpirun ends the job\n"
                                      : " received: the job is being ended (by mpirun after another rank failed, or by"
                                        " the user or the batch system); exiting\n");
    ssize_t w = write(STDERR_FILENO, buf, n);
    (void)w;
    if (!fatal) _exit(128 + sig);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
    raise(sig);
}

static const int g_sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};

/* After MPI_Finalize: mpirun may still SIGTERM a rank that is on its way out
 * (when another rank returns non-zero); nothing to report then. */
void diffu_signals_restore(void) {
    for (size_t i = 0; i < sizeof g_sigs / sizeof g_sigs[0]; i++) signal(g_sigs[i], SIG_DFL);
}

static void install_fatal(void) {
    static char altstack[1 << 16];
    stack_t ss = {.ss_sp = altstack, .ss_size = sizeof altstack, .ss_flags = 0};
    sigaltstack(&ss, NULL);
    for (size_t i = 0; i < sizeof g_sigs / sizeof g_sigs[0]; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_signal;
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        sigaction(g_sigs[i], &sa, NULL);
    }
}

static volatile sig_atomic_t g_stop;
static enum { STOP_EXIT, STOP_GRACEFUL, STOP_IGNORE } g_policy; /* what SIGTERM / SIGINT / SIGUSR1 do */

static void install_stop(void);

void diffu_signals_fatal(int rank, const char *host) {
    snprintf(g_sig_rank, sizeof g_sig_rank, "[diffu r%d]", rank);
    snprintf(g_sig_host, sizeof g_sig_host, "%s", host);
    snprintf(g_sig_pid, sizeof g_sig_pid, "%d", (int)getpid());
    install_fatal();
    if (g_policy != STOP_EXIT) install_stop(); /* a batch job's policy, set before, stays: the order does not matter */
}

static void on_stop(int sig) {
    (void)sig;
    g_stop++;
}

static void set_stop_handler(void (*fn)(int)) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

static void install_stop(void) { set_stop_handler(g_policy == STOP_GRACEFUL ? on_stop : SIG_IGN); }

void diffu_signals_graceful(void) {
    g_policy = STOP_GRACEFUL;
    install_stop();
    signal(SIGXFSZ, SIG_IGN);
}

void diffu_signals_ignore_stop(void) {
    g_policy = STOP_IGNORE;
    install_stop();
}

int diffu_signals_stop_requested(void) { return g_stop; }
