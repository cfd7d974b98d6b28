/* safetensors_write — the writing side of the .safetensors format (the engine only reads it), for
 * qeval synth. The header is written first from the tensors' names, dtypes and shapes, so the data
 * can then be streamed tensor by tensor, in the order given, without holding a tensor twice.
 * Layout as the safetensors library writes it: an 8-byte little-endian header length, the JSON
 * header {"__metadata__": {"format": "pt"}, name: {dtype, shape, data_offsets}} padded with spaces
 * to a multiple of 8 bytes, then the tensors back to back. */
#ifndef QH_SAFETENSORS_WRITE_H
#define QH_SAFETENSORS_WRITE_H

#include <stdint.h>
#include <stdio.h>

#include "qe_error.h"

typedef struct {
    char name[128];
    const char *dtype;         /* safetensors spelling: "BF16", "F32", ...  */
    int n_dims;                /* 1 or 2                                   */
    int64_t shape[2];
    uint64_t n_bytes;          /* elements x element size                  */
} qh_tensor_entry;

/* Writes the header for entries[n_entries] (data in that order) to f; path names f in errors. */
qe_status qh_safetensors_write_header(FILE *f, const char *path, const qh_tensor_entry *entries, int n_entries,
                                      qe_error *err);

#endif
