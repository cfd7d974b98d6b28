/* test_host_memory — what the process may still take on the host (engine/host_memory.h), read
 * from fake /proc and /sys/fs/cgroup trees: MemAvailable alone; capped by a cgroup v2 limit on
 * the process's cgroup or on an ancestor (the smallest room wins), "max" meaning none; a v1
 * memory cgroup's limit (the unlimited huge number, as such machines report it, changes
 * nothing); a usage above its limit leaves 0; and hostile files: no meminfo or no MemAvailable
 * line (0), a cgroup line without a path, limits that are not numbers (ignored). */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "host_memory.h"

static char root[256];

/* root/rel (its parent directories made) holding text; text NULL removes it. */
static void put(const char *rel, const char *text)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    if (!text) {
        unlink(path);
        return;
    }
    for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')); p++) {
        *p = 0;
        mkdir(path, 0700);
        *p = '/';
    }
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static uint64_t available(void)
{
    char proc[512], cgroup[512];
    snprintf(proc, sizeof proc, "%s/proc", root);
    snprintf(cgroup, sizeof cgroup, "%s/cgroup", root);
    return qe_host_available_bytes_at(proc, cgroup);
}

int main(void)
{
    snprintf(root, sizeof root, "%s/qeval-host-memory-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(root)) {
        perror("mkdtemp");
        return 1;
    }
    enum { GIB = 1 << 30 };
    put("proc/meminfo", "MemTotal:       25000000 kB\nMemFree:         1000000 kB\nMemAvailable:   20971520 kB\n");
    CHECK_INT_EQ(20ull * GIB, available()); /* no self/cgroup: MemAvailable alone */

    put("proc/self/cgroup", "0::/slurm/job_7/step_0\n");
    put("cgroup/slurm/job_7/step_0/memory.max", "max\n");
    put("cgroup/slurm/job_7/step_0/memory.current", "1000\n");
    CHECK_INT_EQ(20ull * GIB, available()); /* "max": no limit */
    put("cgroup/slurm/job_7/memory.max", "8589934592\n"); /* the job's 8 GiB, on the parent */
    put("cgroup/slurm/job_7/memory.current", "2147483648\n");
    CHECK_INT_EQ(6ull * GIB, available());
    put("cgroup/slurm/job_7/step_0/memory.max", "4294967296\n"); /* a tighter step: 4 GiB - 1000 */
    CHECK_INT_EQ(4ull * GIB - 1000, available());
    put("cgroup/memory.max", "1073741824\n"); /* the root's, read too, and without a usage file */
    CHECK_INT_EQ(1ull * GIB, available());
    put("cgroup/memory.max", NULL);
    put("cgroup/slurm/job_7/memory.current", "9000000000\n"); /* over its limit */
    CHECK_INT_EQ(0, available());
    put("cgroup/slurm/job_7/memory.current", "2147483648\n");
    put("cgroup/slurm/job_7/memory.max", "8 GiB\n"); /* not the kernel's format: ignored */
    put("cgroup/slurm/job_7/step_0/memory.max", "\n");
    CHECK_INT_EQ(20ull * GIB, available());

    /* v1, as this project's CI machines have it: the unlimited huge number, then a limit */
    put("proc/self/cgroup", "4:memory:/process_api/abc\n9:name=systemd:/\n0::/\n");
    put("cgroup/memory/process_api/abc/memory.limit_in_bytes", "9223372036854771712\n");
    put("cgroup/memory/process_api/abc/memory.usage_in_bytes", "976859136\n");
    CHECK_INT_EQ(20ull * GIB, available());
    put("cgroup/memory/process_api/memory.limit_in_bytes", "3221225472\n");
    put("cgroup/memory/process_api/memory.usage_in_bytes", "1073741824\n");
    CHECK_INT_EQ(2ull * GIB, available());
    put("proc/self/cgroup", "garbage\n4:memory\n4:memory:relative/path\n:\n");
    CHECK_INT_EQ(20ull * GIB, available()); /* lines without a cgroup path: no limit read */

    put("proc/meminfo", "MemTotal:       25000000 kB\nMemFree:         1000000 kB\n");
    CHECK_INT_EQ(0, available()); /* an old kernel without MemAvailable: nothing known */
    put("proc/meminfo", NULL);
    CHECK_INT_EQ(0, available());
    CHECK(qe_host_available_bytes() > 0); /* this machine's own */

    char command[600];
    snprintf(command, sizeof command, "rm -rf '%s'", root);
    CHECK_INT_EQ(0, system(command));
    return check_summary();
}
