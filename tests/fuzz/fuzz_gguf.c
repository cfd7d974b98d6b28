/* libFuzzer target for the GGUF reader: any bytes must parse or fail with an error, never
 * crash, leak or read out of bounds; whatever parses is walked through the getters and the
 * dequantizer. Seeds: tests/fuzz/corpus/gguf/. */
#include <stdint.h>
#include <stdlib.h>

#include "ggml_dequant.h"
#include "gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qe_gguf *g = NULL;
    qe_error err;
    if (qe_gguf_open_memory(data, size, "fuzz.gguf", &g, &err) != QE_OK)
        return 0;
    for (uint64_t i = 0; i < g->n_kv; i++) {
        const char *key = g->kv[i].key, *s;
        const char *const *strs;
        int64_t n64;
        double f;
        bool b;
        uint64_t n;
        float *floats = NULL;
        int32_t *ints = NULL;
        qe_gguf_get_int(g, key, &n64, &err);
        qe_gguf_get_float(g, key, &f, &err);
        qe_gguf_get_bool(g, key, &b, &err);
        qe_gguf_get_string(g, key, &s, &err);
        qe_gguf_get_string_array(g, key, &strs, &n, &err);
        if (qe_gguf_get_f32_array(g, key, &floats, &n, &err) == QE_OK)
            free(floats);
        if (qe_gguf_get_i32_array(g, key, &ints, &n, &err) == QE_OK)
            free(ints);
    }
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const qe_gguf_tensor *t = &g->tensors[i];
        if (t->n_elements > (1 << 20))
            continue;
        float *out = malloc((size_t)t->n_elements * sizeof(float) + 1);
        if (out)
            qe_ggml_dequantize(t->type, t->data, out, t->n_elements, t->name, &err);
        free(out);
    }
    qe_gguf_close(g);
    return 0;
}
