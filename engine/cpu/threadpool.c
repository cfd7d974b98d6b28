#include "threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

struct qe_pool {
    int n_threads;              /* including the caller */
    pthread_t *workers;         /* [n_threads - 1] */
    int n_started;
    pthread_mutex_t lock;
    pthread_cond_t work_ready, work_done;
    /* Both are written under lock (so sleepers are woken reliably) but read while spinning:
     * a forward pass runs hundreds of small loops back to back, and a worker that spins a
     * little between them avoids a sleep/wake round trip each time. */
    atomic_ulong generation;    /* bumped for each qe_pool_run */
    atomic_int n_pending;       /* workers still busy with the current generation */
    bool stopping;
    /* the current loop */
    qe_pool_fn fn;
    void *ctx;
    int n_items, grain;
};

/* Polls before sleeping: about 20-50 microseconds on current CPUs. */
#define SPIN_POLLS 20000

typedef struct {
    qe_pool *pool;
    int index;                  /* 1..n_threads-1; the caller is 0 */
} worker_arg;

static void run_share(qe_pool *pool, int index)
{
    int n_blocks = (pool->n_items + pool->grain - 1) / pool->grain;
    int per = n_blocks / pool->n_threads, extra = n_blocks % pool->n_threads;
    int first = index * per + (index < extra ? index : extra);
    int count = per + (index < extra);
    int begin = first * pool->grain, end = (first + count) * pool->grain;
    if (end > pool->n_items)
        end = pool->n_items;
    if (begin < end)
        pool->fn(pool->ctx, begin, end, index);
}

static void *worker_main(void *p)
{
    worker_arg *arg = p;
    qe_pool *pool = arg->pool;
    int index = arg->index;
    free(arg);
    unsigned long seen = 0;
    for (;;) {
        for (int i = 0; i < SPIN_POLLS && atomic_load_explicit(&pool->generation, memory_order_acquire) == seen; i++)
            ;
        pthread_mutex_lock(&pool->lock);
        while (atomic_load(&pool->generation) == seen && !pool->stopping)
            pthread_cond_wait(&pool->work_ready, &pool->lock);
        bool stop = pool->stopping;
        seen = atomic_load(&pool->generation);
        pthread_mutex_unlock(&pool->lock);
        if (stop)
            break;
        run_share(pool, index);
        if (atomic_fetch_sub_explicit(&pool->n_pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool->lock);
            pthread_cond_signal(&pool->work_done);
            pthread_mutex_unlock(&pool->lock);
        }
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
    pthread_cond_init(&pool->work_done, NULL);
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
    pthread_cond_destroy(&pool->work_done);
    free(pool->workers);
    free(pool);
}

int qe_pool_threads(const qe_pool *pool) { return pool ? pool->n_threads : 1; }

void qe_pool_run(qe_pool *pool, int n_items, int grain, qe_pool_fn fn, void *ctx)
{
    if (n_items <= 0)
        return;
    if (grain < 1)
        grain = 1;
    /* too little work to be worth waking anyone */
    if (!pool || pool->n_threads == 1 || n_items <= grain) {
        fn(ctx, 0, n_items, 0);
        return;
    }
    pthread_mutex_lock(&pool->lock);
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n_items = n_items;
    pool->grain = grain;
    atomic_store(&pool->n_pending, pool->n_threads - 1);
    atomic_fetch_add_explicit(&pool->generation, 1, memory_order_release);
    pthread_cond_broadcast(&pool->work_ready);
    pthread_mutex_unlock(&pool->lock);
    run_share(pool, 0);
    for (int i = 0; i < SPIN_POLLS && atomic_load_explicit(&pool->n_pending, memory_order_acquire) > 0; i++)
        ;
    pthread_mutex_lock(&pool->lock);
    while (atomic_load(&pool->n_pending) > 0)
        pthread_cond_wait(&pool->work_done, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
}
