/* libFuzzer target: tokenizer.json bytes -> loader; a tokenizer that loads encodes and decodes
 * a fixed text with added tokens, spaces, digits, contractions and non-ASCII. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char text[] = "<s>Hello  world's 12345 \xc3\xa9t\xc3\xa9 \xe4\xb8\xad\n\t<|im_end|> end ";
    qe_tokenizer *tok = NULL;
    qe_error err;
    if (qe_tokenizer_load_hf_json("fuzz.json", (const char *)data, size, NULL, &tok, &err) != QE_OK)
        return 0;
    int32_t *ids = NULL;
    int n_ids = 0;
    if (qe_tokenizer_encode(tok, text, sizeof text - 1, true, &ids, &n_ids, &err) == QE_OK) {
        char *decoded = NULL;
        if (qe_tokenizer_decode_ex(tok, ids, n_ids, true, &decoded, &err) == QE_OK)
            free(decoded);
        free(ids);
    }
    qe_tokenizer_free(tok);
    return 0;
}
