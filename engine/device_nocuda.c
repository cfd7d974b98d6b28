/* The CPU-only build's answers to device.h; the CUDA build compiles engine/cuda/device.cu. */
#ifndef QEVAL_HAVE_CUDA
#include "device.h"

int qe_gpu_count(void) { return 0; }

qe_status qe_gpu_describe(int index, qe_gpu_info *info, qe_error *err)
{
    return qe_fail(err, QE_EUNSUPPORTED, "GPU %d: this qeval was built without CUDA", index);
}
#endif
