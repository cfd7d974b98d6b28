/* The CPU backend's weight arena (host_arena.h). */
#include "cpu/host_arena.h"

#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void *qe_host_arena_take(qe_host_arena *a, size_t bytes)
{
    if (!a->base) {
        long pages = sysconf(_SC_PHYS_PAGES), page_bytes = sysconf(_SC_PAGESIZE);
        if (pages <= 0 || page_bytes <= 0)
            return NULL;
        /* NORESERVE: the range costs nothing until written, and a model cannot outgrow the RAM */
        size_t reserved = (size_t)pages * (size_t)page_bytes;
        void *p = mmap(NULL, reserved, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED)
            return NULL;
        madvise(p, reserved, MADV_HUGEPAGE); /* a kernel without THP refuses: small pages then */
        *a = (qe_host_arena){p, reserved, 0};
    }
    size_t at = (a->used_bytes + 63) & ~(size_t)63;
    if (at > a->reserved_bytes || bytes > a->reserved_bytes - at)
        return NULL;
    a->used_bytes = at + bytes;
    return a->base + at;
}

void qe_host_arena_free(qe_host_arena *a)
{
    if (a->base)
        munmap(a->base, a->reserved_bytes);
    memset(a, 0, sizeof *a);
}
