// device.h answered by the CUDA runtime.
#include <cuda_runtime.h>
#include <stdio.h>
#include <string.h>

extern "C" {
#include "device.h"
}

extern "C" int qe_gpu_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();  // a machine without a driver is a CPU machine, not an error
        return 0;
    }
    return n;
}

extern "C" qe_status qe_gpu_describe(int index, qe_gpu_info *info, qe_error *err)
{
    cudaDeviceProp prop;
    cudaError_t rc = cudaGetDeviceProperties(&prop, index);
    if (rc != cudaSuccess)
        return qe_fail(err, QE_EIO, "GPU %d: %s", index, cudaGetErrorString(rc));
    memset(info, 0, sizeof *info);
    snprintf(info->name, sizeof info->name, "%s", prop.name);
    info->total_memory_bytes = prop.totalGlobalMem;
    info->compute_capability = prop.major * 10 + prop.minor;
    cudaDriverGetVersion(&info->driver_version);
    return QE_OK;
}
