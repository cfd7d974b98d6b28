/* Placeholder until the tokenizer branch lands: every entry point of tokenizer.h fails. */
#include "tokenizer.h"

qe_status qe_tokenizer_load_hf(const char *model_dir, qe_tokenizer **out, qe_error *err)
{
    *out = NULL;
    return QE_OK; /* no tokenizer yet */
}
void qe_tokenizer_free(qe_tokenizer *tok) {}
qe_status qe_tokenizer_encode(const qe_tokenizer *tok, const char *text, size_t text_len, bool add_special,
                              int32_t **ids, int *n_ids, qe_error *err)
{
    return qe_fail(err, QE_EUNSUPPORTED, "tokenizer not built yet");
}
qe_status qe_tokenizer_decode(const qe_tokenizer *tok, const int32_t *ids, int n_ids, char **text, qe_error *err)
{
    return qe_fail(err, QE_EUNSUPPORTED, "tokenizer not built yet");
}
int qe_tokenizer_bos_id(const qe_tokenizer *tok) { return -1; }
int qe_tokenizer_eos_id(const qe_tokenizer *tok) { return -1; }
bool qe_tokenizer_adds_bos(const qe_tokenizer *tok) { return false; }
qe_status qe_tokenizer_build(const qe_tokenizer_spec *spec, qe_tokenizer **out, qe_error *err)
{
    *out = NULL;
    return QE_OK; /* no tokenizer yet */
}
int qe_tokenizer_n_vocab(const qe_tokenizer *tok) { return 0; }
int qe_tokenizer_token_id(const qe_tokenizer *tok, const char *text) { return -1; }
