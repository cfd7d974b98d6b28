/* libFuzzer target for the safetensors header parser: any bytes must parse or fail with an
 * error, never crash, leak or read outside the buffer; a parsed file's tensors must lie
 * inside it. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qe_safetensors *st = NULL;
    qe_error err = {0};
    if (qe_safetensors_parse("fuzz.safetensors", data, size, &st, &err) != QE_OK)
        return 0;
    for (int i = 0; i < qe_safetensors_count(st); i++) {
        const qe_tensor_view *t = qe_safetensors_at(st, i);
        const uint8_t *begin = t->data;
        if (begin < data || begin + t->n_bytes > data + size || qe_safetensors_find(st, t->name) != t)
            abort(); /* a broken invariant is the finding the fuzzer reports */
    }
    qe_safetensors_close(st);
    return 0;
}
