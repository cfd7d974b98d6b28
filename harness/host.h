/* host — the facts a stored run needs to be trusted later: what machine ran it (CPU, cores,
 * RAM, GPU, driver), which exact weights (sha256 of every weight file), and how much memory
 * the process held at its peak. */
#ifndef QH_HOST_H
#define QH_HOST_H

#include <stdint.h>

#include "qe_error.h"

typedef struct {
    char cpu_model[256];
    int64_t n_cores;
    int64_t ram_bytes;
    char gpu_name[256];        /* "" without a GPU */
    char gpu_driver[32];       /* "" without a GPU */
    int64_t gpu_memory_bytes;  /* -1 without a GPU */
} qh_host_facts;

void qh_host_facts_read(qh_host_facts *facts);

/* sha256 of the model's weight files: for a directory every *.safetensors file (sorted), for a
 * file the file itself. *files_json (malloc'd) is [{"file","bytes","sha256"}]; model_sha256 is
 * the digest of those lines, one name for the weights as a whole. */
qe_status qh_hash_model_weights(const char *model_path, char model_sha256[65], char **files_json, qe_error *err);

/* Peak resident set size since the last reset (VmHWM), bytes; -1 when unknown. */
int64_t qh_peak_rss_bytes(void);
/* Starts a new peak (Linux: writes 5 to /proc/self/clear_refs); a no-op where unsupported. */
void qh_reset_peak_rss(void);

#endif
