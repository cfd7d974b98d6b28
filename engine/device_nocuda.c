/* The CPU-only build's answers to device.h and qe_backend_cuda_create (backend.h); the CUDA
 * build compiles engine/cuda/ instead. */
#ifndef QEVAL_HAVE_CUDA
#include "backend.h"
#include "device.h"

int qe_gpu_count(void) { return 0; }

qe_status qe_gpu_describe(int index, qe_gpu_info *info, qe_error *err)
{
    return qe_fail(err, QE_EUNSUPPORTED, "GPU %d: this qeval was built without CUDA", index);
}

qe_status qe_backend_cuda_create(int device_index, qe_backend **out, qe_error *err)
{
    *out = NULL;
    return qe_fail(err, QE_EUNSUPPORTED, "CUDA device %d: this qeval was built without CUDA", device_index);
}
#endif
