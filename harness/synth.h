/* synth — a random-weight model with the exact shapes of a real one (synth_shapes.h), written as a
 * Hugging Face directory, so that speed, memory and footprint can be measured at real scale with
 * nothing downloaded:
 *   config.json            the released config.json's fields and values (transformers 4 form),
 *                          plus "qeval_synth": {like, source, seed} saying the weights are random;
 *   model.safetensors      BF16 as released checkpoints are; above 5 GB sharded as transformers'
 *                          save_pretrained does (model-0000N-of-0000M.safetensors, filled in
 *                          state-dict order, + model.safetensors.index.json);
 *   tokenizer.json         a byte-level BPE with exactly the model's vocabulary size: the 256 byte
 *                          tokens, the model's BOS/EOS/PAD ids as special tokens, and synthetic
 *                          merges (words over "a".."z", optionally opened by a space) for every
 *                          other id. The real vocabularies are not available offline, so token
 *                          counts of real text differ from the real model's;
 *   tokenizer_config.json  BOS/EOS and whether BOS is prepended, as the real tokenizer does.
 * Weights are uniform with a fixed seed, at O(1) scale so that logits are far from uniform:
 * linear layers with standard deviation 1/sqrt(fan_in) (activations keep their scale through the
 * layers), embedding and head 4/sqrt(hidden) (logits with standard deviation about 4), norm
 * weights 1 ± 0.1 (gemma's, stored as offsets from 1, ± 0.1), biases ± 0.1. Each tensor is drawn
 * from its own stream (seed, tensor index) and written as it is drawn: memory stays at one buffer. */
#ifndef QH_SYNTH_H
#define QH_SYNTH_H

#include <stdint.h>

#include "qe_error.h"
#include "synth_shapes.h"

typedef struct {
    uint64_t n_params;         /* elements of every tensor in the files */
    uint64_t n_weight_bytes;   /* their BF16 bytes                      */
    int n_tensors, n_files;    /* safetensors files written             */
} qh_synth_summary;

/* What qh_synth_write would write for shape, without writing anything. */
qe_status qh_synth_plan(const qh_synth_shape *shape, qh_synth_summary *summary, qe_error *err);

/* The config.json qh_synth_write writes for shape (seed 0), as text: malloc'd, NULL when out of
 * memory. `qeval estimate SHAPE` estimates from it without writing anything. */
char *qh_synth_config_json(const qh_synth_shape *shape);

/* Writes the directory (created, with its parents, when missing; files already there are replaced). */
qe_status qh_synth_write(const qh_synth_shape *shape, const char *out_dir, uint64_t seed, qh_synth_summary *summary,
                         qe_error *err);

#endif
