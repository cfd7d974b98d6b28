#include "synth_shapes.h"

#include <stdio.h>
#include <string.h>

/* Each entry copies its source's config.json (https://huggingface.co/<source>/blob/main/config.json).
 * The parameter count in each comment is the released checkpoint's, which `qeval synth --list`
 * recomputes from these shapes (tests/test_synth_cli.sh checks the ones the model cards state). */
static const qh_synth_shape shapes[] = {
    /* HuggingFaceTB/SmolLM2-135M: 134,515,008 parameters. */
    {.name = "smollm2-135m", .source = "HuggingFaceTB/SmolLM2-135M", .model_type = "llama",
     .architecture = "LlamaForCausalLM", .hidden = 576, .intermediate = 1536, .n_layers = 30, .n_heads = 9,
     .n_kv_heads = 3, .head_dim = 64, .n_vocab = 49152, .max_position = 8192, .rope_theta = 100000.0,
     .rms_norm_eps = 1e-5, .tie_embeddings = true, .adds_bos = false, .bos_id = 0, .eos_id = 0, .pad_id = -1},
    /* Qwen/Qwen2.5-0.5B: 494,032,768 parameters; q/k/v biases; sliding_window 32768 written with
     * use_sliding_window false, so every layer attends to the whole context. */
    {.name = "qwen2.5-0.5b", .source = "Qwen/Qwen2.5-0.5B", .model_type = "qwen2", .architecture = "Qwen2ForCausalLM",
     .hidden = 896, .intermediate = 4864, .n_layers = 24, .n_heads = 14, .n_kv_heads = 2, .head_dim = 64,
     .n_vocab = 151936, .max_position = 32768, .rope_theta = 1000000.0, .rms_norm_eps = 1e-6, .has_qkv_bias = true,
     .tie_embeddings = true, .adds_bos = false, .bos_id = 151643, .eos_id = 151643, .pad_id = -1},
    /* meta-llama/Llama-3.2-1B: 1,235,814,400 parameters; llama3 rope scaling x32. */
    {.name = "llama-3.2-1b", .source = "meta-llama/Llama-3.2-1B", .model_type = "llama",
     .architecture = "LlamaForCausalLM", .hidden = 2048, .intermediate = 8192, .n_layers = 16, .n_heads = 32,
     .n_kv_heads = 8, .head_dim = 64, .n_vocab = 128256, .max_position = 131072, .rope_theta = 500000.0,
     .rms_norm_eps = 1e-5, .rope_llama3_factor = 32.0, .rope_original_max_position = 8192, .tie_embeddings = true,
     .adds_bos = true, .bos_id = 128000, .eos_id = 128001, .pad_id = -1},
    /* meta-llama/Llama-3.1-8B: 8,030,261,248 parameters; llama3 rope scaling x8; untied head. */
    {.name = "llama-3.1-8b", .source = "meta-llama/Llama-3.1-8B", .model_type = "llama",
     .architecture = "LlamaForCausalLM", .hidden = 4096, .intermediate = 14336, .n_layers = 32, .n_heads = 32,
     .n_kv_heads = 8, .head_dim = 128, .n_vocab = 128256, .max_position = 131072, .rope_theta = 500000.0,
     .rms_norm_eps = 1e-5, .rope_llama3_factor = 8.0, .rope_original_max_position = 8192, .tie_embeddings = false,
     .adds_bos = true, .bos_id = 128000, .eos_id = 128001, .pad_id = -1},
    /* mistralai/Mistral-7B-v0.3: 7,248,023,552 parameters; vocabulary 32768, no sliding window
     * (v0.1's was 4096 with vocabulary 32000). */
    {.name = "mistral-7b", .source = "mistralai/Mistral-7B-v0.3", .model_type = "mistral",
     .architecture = "MistralForCausalLM", .hidden = 4096, .intermediate = 14336, .n_layers = 32, .n_heads = 32,
     .n_kv_heads = 8, .head_dim = 128, .n_vocab = 32768, .max_position = 32768, .rope_theta = 1000000.0,
     .rms_norm_eps = 1e-5, .tie_embeddings = false, .adds_bos = true, .bos_id = 1, .eos_id = 2, .pad_id = -1},
    /* google/gemma-3-4b-pt, its text_config (the language model without the vision tower):
     * five sliding-window layers (1024 tokens, rope base 10000) then one full-attention layer
     * (rope base 1e6, linear scaling x8); query_pre_attn_scalar 256; tied embeddings. */
    {.name = "gemma-3-4b", .source = "google/gemma-3-4b-pt", .model_type = "gemma3_text",
     .architecture = "Gemma3ForCausalLM", .hidden = 2560, .intermediate = 10240, .n_layers = 34, .n_heads = 8,
     .n_kv_heads = 4, .head_dim = 256, .n_vocab = 262208, .max_position = 131072, .rope_theta = 1000000.0,
     .rms_norm_eps = 1e-6, .rope_linear_factor = 8.0, .rope_local_theta = 10000.0, .sliding_window = 1024,
     .sliding_window_pattern = 6, .query_pre_attn_scalar = 256, .tie_embeddings = true, .adds_bos = true,
     .bos_id = 2, .eos_id = 1, .pad_id = 0},
};

void qh_synth_shape_names(char *buf, size_t buf_bytes)
{
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; qh_synth_shape_at(i) && n < buf_bytes; i++) {
        int w = snprintf(buf + n, buf_bytes - n, "%s%s", i ? ", " : "", qh_synth_shape_at(i)->name);
        n += w > 0 ? (size_t)w : 0;
    }
}

qe_status qh_synth_shape_find(const char *name, const qh_synth_shape **out, qe_error *err)
{
    *out = NULL;
    for (int i = 0; qh_synth_shape_at(i); i++)
        if (name && !strcmp(qh_synth_shape_at(i)->name, name)) {
            *out = qh_synth_shape_at(i);
            return QE_OK;
        }
    char names[256];
    qh_synth_shape_names(names, sizeof names);
    return qe_fail(err, QE_EINVAL, "unknown model shape '%s' (known: %s)", name ? name : "", names);
}

const qh_synth_shape *qh_synth_shape_at(int i)
{
    return i >= 0 && i < (int)(sizeof shapes / sizeof shapes[0]) ? &shapes[i] : NULL;
}
