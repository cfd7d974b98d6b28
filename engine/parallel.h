/* parallel.h — loops over the elements of one weight at load time (bf16 -> f32 conversion,
 * rounding, quantization) and over the strings a scoring batch tokenizes, spread over the host's
 * cores with OpenMP where the compiler has it. Every iteration writes only its own outputs, so
 * the results do not depend on the number of threads; without OpenMP the loops run as written.
 * The forward pass does not use this: its threads are the CPU backend's pool
 * (engine/cpu/threadpool.h). */
#ifndef QE_PARALLEL_H
#define QE_PARALLEL_H

#define QE_PRAGMA(x) _Pragma(#x)
#ifdef _OPENMP
/* a loop worth threads: below ~1M elements the start-up cost outweighs the work */
#define QE_PARALLEL_FOR(n_elements) QE_PRAGMA(omp parallel for schedule(static) if ((n_elements) > (1 << 20)))
/* items of uneven cost and ~0.1 ms each (strings to tokenize: a scoring block has 16 contexts
 * and 64 requests), handed out one at a time */
#define QE_PARALLEL_FOR_ITEMS(n_items) QE_PRAGMA(omp parallel for schedule(dynamic, 1) if ((n_items) >= 4))
#else
#define QE_PARALLEL_FOR(n_elements)
#define QE_PARALLEL_FOR_ITEMS(n_items)
#endif

#endif
