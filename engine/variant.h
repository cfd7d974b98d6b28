/* variant — everything the engine knows about a numeric variant (qe_variant, qeval_engine.h):
 * its names, the compute dtype transformers runs it in, which tensors bitsandbytes quantizes,
 * how each tensor is stored, and the footprint rules. At the bottom of the engine: it calls
 * nothing above it. qe_variant_parse / qe_variant_name are declared in qeval_engine.h. */
#ifndef QE_VARIANT_H
#define QE_VARIANT_H

#include <stdbool.h>
#include <stdint.h>

#include "dtype.h"
#include "qeval_engine.h"

/* The dtype activations are rounded to between ops: BF16 for bf16 and nf4
 * (bnb_4bit_compute_dtype=torch.bfloat16), F16 for int8 (LLM.int8()'s 16-bit path), F32 for fp32. */
qe_dtype qe_variant_compute_dtype(const qe_variant *variant);

/* Whether name is one of the seven linears of a decoder block (q/k/v/o/gate/up/down_proj
 * weights under model.layers.N.), the ones bitsandbytes quantizes. */
bool qe_variant_is_quantized_tensor(const char *name);

/* How the variant stores a tensor (qe_tensor_info.stored_dtype / stored_bytes): INT8 q + fp32
 * row scales, NF4 codes + absmax state, or the compute dtype. rows = shape[0]. */
void qe_variant_stored_form(const qe_variant *variant, const char *name, int n_dims, uint64_t n_elements,
                            int64_t rows, const char **dtype, uint64_t *bytes);

/* One tensor's share of transformers' get_memory_footprint(): numel x element size (Int8Params
 * 1 byte, Params4bit's packed uint8 ceil(n/2) bytes, neither SCB nor the quant_state absmax
 * counted; everything else in the compute dtype). */
uint64_t qe_variant_hf_tensor_bytes(const qe_variant *variant, const char *name, uint64_t n_elements);

/* parameters x the variant's nominal bytes per parameter */
uint64_t qe_variant_estimate_bytes(const qe_variant *variant, uint64_t n_params);

#endif
