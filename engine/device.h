/* device — the engine's side of its accelerators. What the rest of qeval may ask (how many GPUs,
 * which) is public, in qeval_engine.h; without a CUDA build, or on a machine without a GPU, the
 * count is 0 and the CPU backend is used. */
#ifndef QE_DEVICE_H
#define QE_DEVICE_H

#include "qeval_engine.h"

#endif
