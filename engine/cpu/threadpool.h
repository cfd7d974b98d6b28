/* threadpool — a fixed set of pthreads that run one parallel loop at a time.
 *
 * qe_pool_run(pool, n_items, fn, ctx) splits [0, n_items) into one contiguous range per
 * thread (the calling thread takes the first) and returns when every range is done. The
 * split depends only on n_items and the thread count, so results are deterministic. */
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

/* Waking the workers costs about as much as this many multiply-adds; a loop with less work
 * runs on the calling thread alone (pass NULL as the pool). */
#define QE_POOL_MIN_WORK 32768

/* pool when work (multiply-adds or so) is worth splitting, else NULL. */
static inline qe_pool *qe_pool_for(qe_pool *pool, double work) { return work >= QE_POOL_MIN_WORK ? pool : NULL; }

#endif
