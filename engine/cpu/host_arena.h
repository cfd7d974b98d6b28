/* host_arena — the CPU backend's home for weights: one anonymous mapping, reserved once at the
 * machine's memory size and backed only as it fills, that asks the kernel for transparent huge
 * pages (madvise; the default "madvise" THP mode gives none otherwise). Decode streams every
 * weight once a token; on 4 KiB pages that stream takes a TLB miss every 4 KiB (a 538 MB model:
 * 131k of them a token), on 2 MiB pages a few hundred. Allocation bumps a pointer; nothing goes
 * back before qe_host_arena_free, which the backend calls when the model (its only user) goes. */
#ifndef QE_CPU_HOST_ARENA_H
#define QE_CPU_HOST_ARENA_H

#include <stddef.h>

typedef struct {
    char *base;                 /* the mapping, or NULL before the first allocation */
    size_t reserved_bytes, used_bytes;
} qe_host_arena;

/* bytes (64-byte aligned) from the arena, or NULL when the mapping fails or is full: the caller
 * then keeps the memory it has. */
void *qe_host_arena_take(qe_host_arena *a, size_t bytes);
void qe_host_arena_free(qe_host_arena *a); /* unmaps; leaves *a zeroed */

#endif
