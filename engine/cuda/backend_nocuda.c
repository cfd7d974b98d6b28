/* The CPU-only build's answers to backend_cuda.h: no CUDA backend, so no device memory.
 * (qe_backend_cuda_create's stub is in engine/device_nocuda.c.) */
#include <string.h>

#include "cuda/backend_cuda.h"

const char *qe_mem_class_name(qe_mem_class cls)
{
    static const char *const names[QE_MEM_CLASSES] = {"linear",   "embedding", "norm",
                                                      "kv_cache", "workspace", "activations"};
    return cls >= 0 && cls < QE_MEM_CLASSES ? names[cls] : "?";
}

bool qe_backend_cuda_memory(const qe_backend *be, qe_backend_memory *out)
{
    memset(out, 0, sizeof *out);
    return false;
}
