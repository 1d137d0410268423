/* threadpool.h — a fixed set of worker threads for parallel-for loops.
 *
 * diffu_pool_run(p, fn, arg, n) calls fn(arg, i, tid) for every i in [0, n),
 * spread over the pool's threads (the caller is thread 0 and works too), and
 * returns when all are done. tid in [0, diffu_pool_size(p)) indexes per-thread
 * scratch. Workers spin briefly, then sleep, between runs. One run at a time:
 * call from one thread only (the owner). Created at load time; the step loop
 * only calls run. Not collective. */
#ifndef DIFFU_THREADPOOL_H
#define DIFFU_THREADPOOL_H

typedef struct diffu_pool diffu_pool;
typedef void (*diffu_pool_fn)(void *arg, int i, int tid);

diffu_pool *diffu_pool_create(int n_threads);
void diffu_pool_free(diffu_pool *p);
int diffu_pool_size(const diffu_pool *p);
void diffu_pool_run(diffu_pool *p, diffu_pool_fn fn, void *arg, int n);

/* Threads this process may use: the CPUs in its affinity mask. */
int diffu_affinity_cpus(void);

#endif
