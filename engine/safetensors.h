/* safetensors — strict reader of one .safetensors file, memory-mapped, never copied.
 *
 * Layout: 8-byte little-endian header length N, N bytes of JSON header
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the data
 * region; offsets are relative to its start. Every tensor must name a known dtype, have a
 * shape whose element count times the dtype size equals end - begin, lie inside the data
 * region, and overlap no other tensor; names are unique. Anything else fails with one line
 * naming the file, the tensor and the numbers. */
#ifndef QE_SAFETENSORS_H
#define QE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "dtype.h"
#include "qeval_engine.h"

#define QE_MAX_DIMS 8

/* One tensor as it lies in the file; data points into the mapping (may be unaligned). */
typedef struct {
    const char *name;
    qe_dtype dtype;
    int n_dims;
    int64_t shape[QE_MAX_DIMS];
    uint64_t n_elements;
    const void *data;
    size_t n_bytes;
    const char *file_path;      /* the file that holds it (owned by the qe_safetensors) */
} qe_tensor_view;

/* qe_safetensors_open (qeval_engine.h) maps path read-only and parses its header. */

/* Parses bytes[n_bytes] already in memory (borrowed: must outlive the result). path only
 * names the source in error messages. Used by the fuzzer and by open(). */
qe_status qe_safetensors_parse(const char *path, const void *bytes, size_t n_bytes,
                               qe_safetensors **out, qe_error *err);

int qe_safetensors_count(const qe_safetensors *st);
/* The i-th tensor in data-offset order, which is the order writers store them. */
const qe_tensor_view *qe_safetensors_at(const qe_safetensors *st, int i);
/* NULL when absent. */
const qe_tensor_view *qe_safetensors_find(const qe_safetensors *st, const char *name);

#endif
