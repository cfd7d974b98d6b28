/* threadpool — a fixed set of pthreads that run one parallel loop at a time.
 *
 * qe_pool_run(pool, n_items, grain, fn, ctx) cuts [0, n_items) into contiguous chunks (one per
 * thread, or more with qe_pool_run_chunks), which the threads, the caller among them, claim one
 * at a time; it returns when every chunk is done. Which thread runs a chunk varies from run to
 * run (a thread the OS has descheduled simply claims fewer), so fn must give an item the same
 * result whichever range and thread it runs in: every loop of the CPU backend does, so results
 * stay deterministic. Between loops the workers spin briefly, then sleep. */
#ifndef QE_THREADPOOL_H
#define QE_THREADPOOL_H

#include <stddef.h>

#include "qe_error.h"

typedef struct qe_pool qe_pool;

/* fn handles items [begin, end) on thread `thread` in [0, qe_pool_threads(pool)) (0: the
 * caller), so per-thread scratch can be indexed by it. */
typedef void (*qe_pool_fn)(void *ctx, int begin, int end, int thread);

/* n_threads <= 0: the machine's online cores. */
/* The threads a pool asked for n_threads has: n_threads, or the machine's cores for <= 0. */
int qe_pool_resolve_threads(int n_threads);
qe_status qe_pool_create(int n_threads, qe_pool **out, qe_error *err);
void qe_pool_free(qe_pool *pool); /* NULL-safe */
int qe_pool_threads(const qe_pool *pool);

/* Runs fn over [0, n_items); pool may be NULL (then fn runs once, here). Items are split so
 * that each range is a multiple of grain (except the last), which keeps SIMD blocks whole. */
void qe_pool_run(qe_pool *pool, int n_items, int grain, qe_pool_fn fn, void *ctx);
/* The same with chunks_per_thread chunks per thread: finer load balancing for loops whose fn
 * costs nothing to start (decode's matrix-vector products). */
void qe_pool_run_chunks(qe_pool *pool, int n_items, int grain, int chunks_per_thread, qe_pool_fn fn, void *ctx);

/* Waking the workers costs about as much as this many multiply-adds; a loop with less work
 * runs on the calling thread alone (pass NULL as the pool). */
#define QE_POOL_MIN_WORK 32768

/* pool when work (multiply-adds or so) is worth splitting, else NULL. */
static inline qe_pool *qe_pool_for(qe_pool *pool, double work) { return work >= QE_POOL_MIN_WORK ? pool : NULL; }

#endif
