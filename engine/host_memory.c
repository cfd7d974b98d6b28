/* The memory this process may still take (host_memory.h). */
#include "host_memory.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The number a one-line file holds (memory.max, memory.current, ...); false for a missing file,
 * "max" (no limit) or anything else. */
static bool read_number(const char *dir, const char *cgroup, const char *name, uint64_t *value)
{
    char path[4096], line[64];
    if (snprintf(path, sizeof path, "%s%s/%s", dir, cgroup, name) >= (int)sizeof path)
        return false;
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    bool ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    char *end;
    if (ok) {
        *value = strtoull(line, &end, 10);
        ok = end != line && (*end == '\n' || *end == 0);
    }
    return ok;
}

/* limit - usage of one cgroup directory when it has a limit, capping *most. */
static void cap_by(const char *dir, const char *cgroup, const char *limit_name, const char *usage_name,
                   uint64_t *most)
{
    uint64_t limit, usage;
    if (!read_number(dir, cgroup, limit_name, &limit))
        return;
    if (!read_number(dir, cgroup, usage_name, &usage))
        usage = 0;
    uint64_t left = limit > usage ? limit - usage : 0;
    if (left < *most)
        *most = left;
}

/* Caps *most by the cgroup at path under dir and each of its ancestors (a job's limit is often
 * set on a parent of the cgroup its processes run in). */
static void cap_along(const char *dir, char *cgroup, const char *limit_name, const char *usage_name, uint64_t *most)
{
    for (;;) {
        cap_by(dir, cgroup, limit_name, usage_name, most);
        char *slash = strrchr(cgroup, '/');
        if (!slash || slash == cgroup)
            break;
        *slash = 0;
    }
    cap_by(dir, "", limit_name, usage_name, most);
}

static uint64_t mem_available(const char *proc_dir)
{
    char path[4096], line[256];
    snprintf(path, sizeof path, "%s/meminfo", proc_dir);
    FILE *f = fopen(path, "r");
    uint64_t kib = 0;
    bool found = false;
    while (f && !found && fgets(line, sizeof line, f))
        found = sscanf(line, "MemAvailable: %" SCNu64 " kB", &kib) == 1;
    if (f)
        fclose(f);
    return found ? kib * 1024 : 0;
}

uint64_t qe_host_available_bytes_at(const char *proc_dir, const char *cgroup_dir)
{
    uint64_t most = mem_available(proc_dir);
    char path[4096], line[4096], v1_dir[4096];
    snprintf(path, sizeof path, "%s/self/cgroup", proc_dir);
    snprintf(v1_dir, sizeof v1_dir, "%s/memory", cgroup_dir);
    FILE *f = fopen(path, "r");
    while (f && most > 0 && fgets(line, sizeof line, f)) {
        /* "0::/path" (v2), or "N:controller,...:/path" (v1) */
        line[strcspn(line, "\n")] = 0;
        char *first = strchr(line, ':'), *second = first ? strchr(first + 1, ':') : NULL;
        if (!second || second[1] != '/')
            continue;
        *second = 0;
        const char *controllers = first + 1;
        char *cgroup = second + 1;
        if (!controllers[0])
            cap_along(cgroup_dir, cgroup, "memory.max", "memory.current", &most);
        else if (strstr(controllers, "memory"))
            cap_along(v1_dir, cgroup, "memory.limit_in_bytes", "memory.usage_in_bytes", &most);
    }
    if (f)
        fclose(f);
    return most;
}

uint64_t qe_host_available_bytes(void) { return qe_host_available_bytes_at("/proc", "/sys/fs/cgroup"); }
