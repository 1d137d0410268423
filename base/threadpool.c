/* threadpool.c — see threadpool.h. Work is handed out by an atomic counter;
 * a generation number wakes the workers. */
#include "threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "log.h"

#if defined(__x86_64__) || defined(__i386__)
#define CPU_RELAX() __builtin_ia32_pause()
#else
#define CPU_RELAX() sched_yield()
#endif

struct diffu_pool {
    int n;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    atomic_uint gen;      /* bumped for every run */
    atomic_int next;      /* next task index */
    atomic_int active;    /* workers still in the current run */
    int n_tasks;
    diffu_pool_fn fn;
    void *arg;
    int stop;
};

typedef struct { diffu_pool *p; int tid; } worker_arg;

static void drain(diffu_pool *p, int tid) {
    for (;;) {
        int i = atomic_fetch_add(&p->next, 1);
        if (i >= p->n_tasks) break;
        p->fn(p->arg, i, tid);
    }
}

static void *worker(void *v) {
    worker_arg *wa = v;
    diffu_pool *p = wa->p;
    int tid = wa->tid;
    free(wa);
    unsigned seen = 0;
    for (;;) {
        /* spin a little for low latency between back-to-back runs, then sleep */
        int spins = 0;
        while (atomic_load_explicit(&p->gen, memory_order_acquire) == seen && spins < 4000) {
            spins++;
            if (spins < 2000) CPU_RELAX();
            else sched_yield(); /* oversubscribed ranks: let the others run */
        }
        if (atomic_load_explicit(&p->gen, memory_order_acquire) == seen) {
            pthread_mutex_lock(&p->mu);
            while (atomic_load(&p->gen) == seen && !p->stop) pthread_cond_wait(&p->cv_work, &p->mu);
            pthread_mutex_unlock(&p->mu);
        }
        if (p->stop) return NULL;
        seen = atomic_load(&p->gen);
        drain(p, tid);
        if (atomic_fetch_sub(&p->active, 1) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->cv_done);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

diffu_pool *diffu_pool_create(int n_threads) {
    if (n_threads < 1) n_threads = 1;
    diffu_pool *p = diffu_xcalloc(1, sizeof *p);
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv_work, NULL);
    pthread_cond_init(&p->cv_done, NULL);
    p->threads = diffu_xcalloc((size_t)n_threads, sizeof *p->threads);
    for (int t = 1; t < n_threads; t++) {
        worker_arg *wa = diffu_xmalloc(sizeof *wa);
        wa->p = p;
        wa->tid = t;
        DIFFU_ASSERT(pthread_create(&p->threads[t], NULL, worker, wa) == 0);
    }
    return p;
}

void diffu_pool_free(diffu_pool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    atomic_fetch_add(&p->gen, 1);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    for (int t = 1; t < p->n; t++) pthread_join(p->threads[t], NULL);
    free(p->threads);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv_work);
    pthread_cond_destroy(&p->cv_done);
    free(p);
}

int diffu_pool_size(const diffu_pool *p) { return p->n; }

void diffu_pool_run(diffu_pool *p, diffu_pool_fn fn, void *arg, int n) {
    if (n <= 0) return;
    if (p->n == 1 || n == 1) {
        for (int i = 0; i < n; i++) fn(arg, i, 0);
        return;
    }
    p->fn = fn;
    p->arg = arg;
    p->n_tasks = n;
    atomic_store(&p->next, 0);
    atomic_store(&p->active, p->n - 1);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->gen, 1, memory_order_release);
    pthread_cond_broadcast(&p->cv_work);
    pthread_mutex_unlock(&p->mu);
    drain(p, 0);
    /* wait for the workers to leave this run */
    int spins = 0;
    while (atomic_load(&p->active) > 0 && spins < 20000) {
        spins++;
        if (spins < 10000) CPU_RELAX();
        else sched_yield();
    }
    if (atomic_load(&p->active) > 0) {
        pthread_mutex_lock(&p->mu);
        while (atomic_load(&p->active) > 0) pthread_cond_wait(&p->cv_done, &p->mu);
        pthread_mutex_unlock(&p->mu);
    }
}

int diffu_affinity_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 1;
    int n = CPU_COUNT(&set);
    return n > 0 ? n : 1;
}
