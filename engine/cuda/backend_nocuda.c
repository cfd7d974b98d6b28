/* The CPU-only build's answers for the CUDA backend (backend_cuda.h): no backend, no memory. */
#include <string.h>

#include "cuda/backend_cuda.h"

qe_status qe_backend_cuda_create(int device_index, qe_backend **out, qe_error *err)
{
    *out = NULL;
    return qe_fail(err, QE_EUNSUPPORTED,
                   "--device cuda:%d: this qeval was built without CUDA (configure with -DQEVAL_CUDA=ON where the "
                   "CUDA toolkit is installed): use --device cpu",
                   device_index);
}

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

void qe_backend_cuda_allow_tf32(qe_backend *be, bool allow) {}
