/* weight_set — the safetensors files of one Hugging Face model directory, as one set of named
 * tensors: model.safetensors, or the shards listed by model.safetensors.index.json
 * ("weight_map": {tensor name: shard file}). Every index entry must be found in the shard it
 * names, shard names must be plain file names, and no tensor may appear in two shards.
 * A set may instead hold tensors under their Hugging Face names that are made in memory on
 * demand (a GGUF model, dequantized to float32 by gguf_model.c one tensor at a time, so a load
 * never holds a float32 copy of the whole model); the loader sees no difference as long as it
 * reads tensors through qe_weight_set_read_f32.
 *
 * A multimodal checkpoint (Gemma3ForConditionalGeneration) keeps its text model under a prefix:
 * "language_model.model." with "language_model.lm_head." (transformers < 4.52) or
 * "model.language_model." with "lm_head." (>= 4.52). Such a set lists its text tensors under
 * the plain names ("model.layers.0...", "lm_head.weight") and leaves out the vision tower and
 * projector ones, which it only counts. */
#ifndef QE_WEIGHT_SET_H
#define QE_WEIGHT_SET_H

#include "safetensors.h"

typedef struct {
    int n_files;
    qe_safetensors **files;     /* [n_files] */
    int n_memory;
    qe_tensor_view *memory;     /* [n_memory] made-on-demand tensors: data NULL, dtype F32; their
                                   names are owned by the set, file_path points at memory_source */
    char *memory_source;        /* the file they came from */
    /* Fills out[n_elements] with memory[index] as float32; source (owned by the set) is
     * released by close_source. NULL for a set of names and shapes only. */
    qe_status (*make_f32)(void *source, int index, float *out, qe_error *err);
    void (*close_source)(void *source);
    void *source;
    /* A multimodal checkpoint's text model (see above); n_text == 0 otherwise. When n_text > 0
     * these views (the files' data, names owned by the set) stand for the files' tensors. */
    int n_text;
    qe_tensor_view *text;       /* [n_text] */
    const char *text_prefix;    /* static: "model.language_model." or "language_model.model."; NULL */
    int n_ignored;              /* vision tower / multi-modal projector tensors left out */
} qe_weight_set;

qe_status qe_weight_set_open(const char *dir, qe_weight_set *set, qe_error *err);
void qe_weight_set_close(qe_weight_set *set); /* NULL-safe; leaves set empty */

/* NULL when no file holds name. */
const qe_tensor_view *qe_weight_set_find(const qe_weight_set *set, const char *name);

/* Every tensor of the set, files first, then in-memory ones: index in [0, count). */
int qe_weight_set_count(const qe_weight_set *set);
const qe_tensor_view *qe_weight_set_at(const qe_weight_set *set, int index);

/* Tensor t of the set as float32: *data points into the mapping when t is an aligned F32 file
 * tensor, else at a buffer stored in *owned (caller frees): converted from BF16/F16, or made now
 * for an in-memory tensor. Fails for non-float dtypes and for a set without data. */
qe_status qe_weight_set_read_f32(const qe_weight_set *set, const qe_tensor_view *t, const float **data,
                                 float **owned, qe_error *err);

#endif
