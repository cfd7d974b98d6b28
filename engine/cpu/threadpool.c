/* The thread pool (threadpool.h): workers spin briefly, then sleep, between loops; a loop is
 * cut into chunks that the threads claim one at a time from a shared ticket. */
#include "threadpool.h"

#include <immintrin.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

struct qe_pool {
    int n_threads;              /* including the caller */
    pthread_t *workers;         /* [n_threads - 1] */
    int n_started;
    pthread_mutex_t lock;
    pthread_cond_t work_ready;
    /* The ticket holds the loop's generation (high 32 bits), its number of chunks (16) and its
     * next unclaimed chunk (low 16): a thread claims a chunk by moving the ticket on with
     * compare-and-swap, which fails once a new loop has started, so a late worker never runs a
     * chunk of a loop it did not see begin. The loop below is read only after a successful
     * claim of a chunk that exists: its caller cannot return, and so cannot start another
     * loop, before that chunk is done. */
    _Atomic uint64_t ticket;
    atomic_int n_done;          /* chunks finished in the current loop */
    atomic_int n_sleeping;      /* workers waiting on work_ready */
    bool stopping;              /* under lock */
    /* the current loop */
    qe_pool_fn fn;
    void *ctx;
    int n_items, grain, blocks_per_chunk, extra_blocks;
};

/* How long a worker polls before it sleeps, in time-stamp counter ticks (about 50 us at 2 GHz):
 * longer than the gap between two loops of a forward pass, short enough that an idle pool
 * does not burn a core another process (or our own caller) could use. Timed, not counted:
 * one pause instruction takes from 10 to 140 cycles depending on the CPU. */
#define SPIN_TICKS 100000

typedef struct {
    qe_pool *pool;
    int index;                  /* 1..n_threads-1; the caller is 0 */
} worker_arg;

#define MAX_CHUNKS 65000 /* the low 16 bits count claims, at most one per thread past the end */

static inline uint32_t generation_of(uint64_t ticket) { return (uint32_t)(ticket >> 32); }
static inline int chunks_of(uint64_t ticket) { return (int)((ticket >> 16) & 0xFFFF); }
static inline int next_of(uint64_t ticket) { return (int)(ticket & 0xFFFF); }

/* Runs chunk c of the current loop: blocks of grain items, the first extra_blocks chunks one
 * block longer, so the split depends only on n_items, grain and n_chunks. */
static void run_chunk(qe_pool *pool, int c, int thread)
{
    int per = pool->blocks_per_chunk, extra = pool->extra_blocks;
    int first = c * per + (c < extra ? c : extra), count = per + (c < extra);
    int begin = first * pool->grain, end = (first + count) * pool->grain;
    if (end > pool->n_items)
        end = pool->n_items;
    if (begin < end)
        pool->fn(pool->ctx, begin, end, thread);
}

/* Claims and runs chunks of loop `generation` until none is left (or a newer loop started). */
static void work_on(qe_pool *pool, uint32_t generation, int thread)
{
    uint64_t t = atomic_load_explicit(&pool->ticket, memory_order_acquire);
    while (generation_of(t) == generation) {
        if (atomic_compare_exchange_weak_explicit(&pool->ticket, &t, t + 1, memory_order_acq_rel,
                                                  memory_order_acquire)) {
            int c = next_of(t);
            if (c >= chunks_of(t)) /* claimed past the end: nothing to run, nothing counted */
                return;
            run_chunk(pool, c, thread);
            atomic_fetch_add_explicit(&pool->n_done, 1, memory_order_acq_rel);
            t = atomic_load_explicit(&pool->ticket, memory_order_acquire);
        }
    }
}

static void *worker_main(void *p)
{
    worker_arg *arg = p;
    qe_pool *pool = arg->pool;
    int index = arg->index;
    free(arg);
    uint32_t seen = 0;
    for (;;) {
        uint32_t g = seen;
        for (uint64_t start = __rdtsc(), i = 0;; i++) {
            g = generation_of(atomic_load_explicit(&pool->ticket, memory_order_acquire));
            if (g != seen || (i % 16 == 15 && __rdtsc() - start > SPIN_TICKS))
                break;
            _mm_pause();
        }
        if (g == seen) {
            pthread_mutex_lock(&pool->lock);
            atomic_fetch_add(&pool->n_sleeping, 1);
            while ((g = generation_of(atomic_load(&pool->ticket))) == seen && !pool->stopping)
                pthread_cond_wait(&pool->work_ready, &pool->lock);
            atomic_fetch_sub(&pool->n_sleeping, 1);
            bool stop = pool->stopping;
            pthread_mutex_unlock(&pool->lock);
            if (stop)
                break;
        }
        seen = g;
        work_on(pool, g, index);
    }
    return NULL;
}

int qe_pool_resolve_threads(int n_threads)
{
    if (n_threads > 0)
        return n_threads;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores > 0 ? (int)cores : 1;
}

qe_status qe_pool_create(int n_threads, qe_pool **out, qe_error *err)
{
    *out = NULL;
    n_threads = qe_pool_resolve_threads(n_threads);
    if (n_threads > 256)
        return qe_fail(err, QE_EINVAL, "--threads %d: at most 256", n_threads);
    qe_pool *pool = calloc(1, sizeof *pool);
    if (!pool || !(pool->workers = calloc(n_threads, sizeof *pool->workers))) {
        free(pool);
        return qe_fail(err, QE_ENOMEM, "thread pool: out of memory");
    }
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->work_ready, NULL);
    for (int i = 1; i < n_threads; i++) {
        worker_arg *arg = malloc(sizeof *arg);
        if (!arg) {
            qe_pool_free(pool);
            return qe_fail(err, QE_ENOMEM, "thread pool: out of memory");
        }
        arg->pool = pool;
        arg->index = i;
        if (pthread_create(&pool->workers[pool->n_started], NULL, worker_main, arg) != 0) {
            free(arg);
            qe_pool_free(pool);
            return qe_fail(err, QE_EIO, "thread pool: cannot start thread %d of %d", i + 1, n_threads);
        }
        pool->n_started++;
    }
    *out = pool;
    return QE_OK;
}

void qe_pool_free(qe_pool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = true;
    pthread_cond_broadcast(&pool->work_ready);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < pool->n_started; i++)
        pthread_join(pool->workers[i], NULL);
    pthread_mutex_destroy(&pool->lock);
    pthread_cond_destroy(&pool->work_ready);
    free(pool->workers);
    free(pool);
}

int qe_pool_threads(const qe_pool *pool) { return pool ? pool->n_threads : 1; }

void qe_pool_run_chunks(qe_pool *pool, int n_items, int grain, int chunks_per_thread, qe_pool_fn fn, void *ctx)
{
    if (n_items <= 0)
        return;
    if (grain < 1)
        grain = 1;
    if (chunks_per_thread < 1)
        chunks_per_thread = 1;
    /* too little work to be worth waking anyone */
    if (!pool || pool->n_threads == 1 || n_items <= grain) {
        fn(ctx, 0, n_items, 0);
        return;
    }
    int n_blocks = (n_items + grain - 1) / grain;
    int n_chunks = pool->n_threads * chunks_per_thread;
    if (n_chunks > n_blocks)
        n_chunks = n_blocks;
    if (n_chunks > MAX_CHUNKS)
        n_chunks = MAX_CHUNKS;
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n_items = n_items;
    pool->grain = grain;
    pool->blocks_per_chunk = n_blocks / n_chunks;
    pool->extra_blocks = n_blocks % n_chunks;
    atomic_store_explicit(&pool->n_done, 0, memory_order_relaxed);
    uint32_t generation = generation_of(atomic_load_explicit(&pool->ticket, memory_order_relaxed)) + 1;
    atomic_store(&pool->ticket, (uint64_t)generation << 32 | (uint64_t)n_chunks << 16); /* publishes the loop */
    if (atomic_load(&pool->n_sleeping) > 0) {
        pthread_mutex_lock(&pool->lock);
        pthread_cond_broadcast(&pool->work_ready);
        pthread_mutex_unlock(&pool->lock);
    }
    work_on(pool, generation, 0);
    /* the rest is being run by threads that claimed it; one that was descheduled mid-chunk
     * gets the CPU back sooner if we yield now and then */
    for (unsigned i = 1; atomic_load_explicit(&pool->n_done, memory_order_acquire) < n_chunks; i++) {
        _mm_pause();
        if (i % 256 == 0)
            sched_yield();
    }
}

void qe_pool_run(qe_pool *pool, int n_items, int grain, qe_pool_fn fn, void *ctx)
{
    qe_pool_run_chunks(pool, n_items, grain, 1, fn, ctx);
}
