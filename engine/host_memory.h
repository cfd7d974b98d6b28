/* host_memory — how much more memory this process may take on the host: the kernel's
 * MemAvailable (/proc/meminfo: free memory plus what it can reclaim), capped by the limits of the
 * cgroups the process runs in (v2: memory.max - memory.current, v1: memory.limit_in_bytes -
 * memory.usage_in_bytes; of its cgroup and every ancestor), as a Slurm job or a container sets them: the machine's free memory is not what such a job may use. */
#ifndef QE_HOST_MEMORY_H
#define QE_HOST_MEMORY_H

#include <stdint.h>

/* Bytes this process may still take; 0 when nothing could be read. */
uint64_t qe_host_available_bytes(void);

/* The same read from other roots (tests): proc_dir holds meminfo and self/cgroup (as /proc does),
 * cgroup_dir is the cgroup file system's root (as /sys/fs/cgroup is). Files missing or not in
 * the kernel's format count as no limit; without a MemAvailable line, 0. */
uint64_t qe_host_available_bytes_at(const char *proc_dir, const char *cgroup_dir);

#endif
