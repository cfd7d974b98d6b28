/* device — which accelerators this build and this machine have. Without a CUDA build, or on a
 * machine without a GPU, the count is 0 and the CPU backend is used. */
#ifndef QE_DEVICE_H
#define QE_DEVICE_H

#include <stddef.h>

#include "qe_error.h"

typedef struct {
    char name[256];            /* e.g. "NVIDIA H200"                    */
    size_t total_memory_bytes;
    int compute_capability;    /* major*10 + minor, e.g. 90             */
    int driver_version;        /* as cudaDriverGetVersion: 12040 = 12.4 */
} qe_gpu_info;

/* Number of usable CUDA devices; 0 without a CUDA build or GPU. */
int qe_gpu_count(void);

qe_status qe_gpu_describe(int index, qe_gpu_info *info, qe_error *err);

#endif
