/* weight_set — the safetensors files of one Hugging Face model directory, as one set of named
 * tensors: model.safetensors, or the shards listed by model.safetensors.index.json
 * ("weight_map": {tensor name: shard file}). Every index entry must be found in the shard it
 * names, shard names must be plain file names, and no tensor may appear in two shards.
 * A set may instead hold tensors in memory under their Hugging Face names (a GGUF model,
 * dequantized to float32 by gguf_model.c); the loader sees no difference. */
#ifndef QE_WEIGHT_SET_H
#define QE_WEIGHT_SET_H

#include "safetensors.h"

typedef struct {
    int n_files;
    qe_safetensors **files;     /* [n_files] */
    int n_memory;
    qe_tensor_view *memory;     /* [n_memory] in-memory tensors; their names and data are owned
                                   by the set, file_path points at memory_source */
    char *memory_source;        /* the file they came from */
} qe_weight_set;

qe_status qe_weight_set_open(const char *dir, qe_weight_set *set, qe_error *err);
void qe_weight_set_close(qe_weight_set *set); /* NULL-safe; leaves set empty */

/* NULL when no file holds name. */
const qe_tensor_view *qe_weight_set_find(const qe_weight_set *set, const char *name);

/* Every tensor of the set, files first, then in-memory ones: index in [0, count). */
int qe_weight_set_count(const qe_weight_set *set);
const qe_tensor_view *qe_weight_set_at(const qe_weight_set *set, int index);

#endif
