#include "gguf_tokenizer.h"

#include <stdlib.h>
#include <string.h>

/* GPT-2's split, as in the Hugging Face ByteLevel pre-tokenizer (with its final \s+). */
#define GPT2_REGEX "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

/* tokenizer.ggml.pre -> the core's regex name, or an explicit "\n"-separated list of regexes
 * applied one after the other (llama.cpp's split for that pre-tokenizer type). */
static const struct {
    const char *pre;
    const char *name;
    const char *regexes;
} pre_tokenizers[] = {
    {"gpt-2", "gpt2", NULL}, {"gpt2", "gpt2", NULL}, {"mpt", "gpt2", NULL}, {"olmo", "gpt2", NULL},
    {"llama3", "llama3", NULL}, {"llama-v3", "llama3", NULL}, {"llama-bpe", "llama3", NULL},
    {"qwen2", "qwen2", NULL}, {"stablelm2", "qwen2", NULL}, {"deepseek-r1-qwen", "qwen2", NULL},
    /* digits split one by one, then GPT-2's split (Hugging Face: Digits(individual) + ByteLevel) */
    {"smollm", NULL, "\\p{N}\n" GPT2_REGEX}, {"starcoder", NULL, "\\p{N}\n" GPT2_REGEX},
    {"refact", NULL, "\\p{N}\n" GPT2_REGEX}, {"command-r", NULL, "\\p{N}\n" GPT2_REGEX},
    {"codeshell", NULL, "\\p{N}\n" GPT2_REGEX}, {"exaone", NULL, "\\p{N}\n" GPT2_REGEX},
    /* llama.cpp's BPE default when a file names no known pre-tokenizer */
    {"default", NULL, "[\\p{P}\\$\\+<=>\\^~\\|]+\n" GPT2_REGEX "\n\\p{N}+\n[0-9][0-9][0-9]"},
};

/* An optional integer id: -1 when the key is absent; must name a token when present. */
static qe_status optional_id(const qe_gguf *g, const char *key, int n_vocab, int *id, qe_error *err)
{
    *id = -1;
    if (!qe_gguf_find_kv(g, key))
        return QE_OK;
    int64_t v;
    qe_status rc = qe_gguf_get_int(g, key, &v, err);
    if (rc != QE_OK)
        return rc;
    if (v < 0 || v >= n_vocab)
        return qe_fail(err, QE_EFORMAT, "%s: %s = %lld is outside the vocabulary of %d tokens", g->path, key,
                       (long long)v, n_vocab);
    *id = (int)v;
    return QE_OK;
}

static qe_status optional_bool(const qe_gguf *g, const char *key, bool fallback, bool *out, qe_error *err)
{
    *out = fallback;
    return qe_gguf_find_kv(g, key) ? qe_gguf_get_bool(g, key, out, err) : QE_OK;
}

static qe_status check_length(const qe_gguf *g, const char *key, uint64_t n, int n_vocab, qe_error *err)
{
    if (n != (uint64_t)n_vocab)
        return qe_fail(err, QE_EFORMAT, "%s: %s has %llu entries for %d tokens", g->path, key,
                       (unsigned long long)n, n_vocab);
    return QE_OK;
}

qe_status qe_gguf_tokenizer_load(const qe_gguf *g, qe_tokenizer **out, qe_error *err)
{
    *out = NULL;
    qe_tokenizer_spec spec = {0};
    const char *model = NULL, *pre = NULL;
    const char *const *tokens = NULL, *const *merges = NULL;
    uint64_t n_tokens = 0, n = 0;
    float *scores = NULL;
    int32_t *token_types = NULL;
    qe_status rc;
    if ((rc = qe_gguf_get_string(g, "tokenizer.ggml.model", &model, err)) != QE_OK ||
        (rc = qe_gguf_get_string_array(g, "tokenizer.ggml.tokens", &tokens, &n_tokens, err)) != QE_OK)
        return rc;
    if (n_tokens == 0 || n_tokens > INT32_MAX)
        return qe_fail(err, QE_EFORMAT, "%s: tokenizer.ggml.tokens holds %llu tokens", g->path,
                       (unsigned long long)n_tokens);
    spec.n_vocab = (int)n_tokens;
    spec.tokens = tokens;
    bool is_spm = !strcmp(model, "llama");
    if (!is_spm && strcmp(model, "gpt2") != 0)
        return qe_fail(err, QE_EUNSUPPORTED, "%s: tokenizer.ggml.model '%s' is not supported (gpt2, llama are)",
                       g->path, model);

    if (qe_gguf_find_kv(g, "tokenizer.ggml.token_type")) {
        if ((rc = qe_gguf_get_i32_array(g, "tokenizer.ggml.token_type", &token_types, &n, err)) != QE_OK ||
            (rc = check_length(g, "tokenizer.ggml.token_type", n, spec.n_vocab, err)) != QE_OK)
            goto out;
        for (uint64_t i = 0; i < n; i++)
            if (token_types[i] < QE_TOKEN_NORMAL || token_types[i] > QE_TOKEN_BYTE) {
                rc = qe_fail(err, QE_EFORMAT, "%s: tokenizer.ggml.token_type[%llu] = %d is not a token type (1..6)",
                             g->path, (unsigned long long)i, token_types[i]);
                goto out;
            }
        spec.token_types = token_types;
    }
    if (is_spm) {
        spec.kind = QE_TOKENIZER_SPM_BPE;
        spec.byte_fallback = true;
        if (qe_gguf_find_kv(g, "tokenizer.ggml.scores")) {
            if ((rc = qe_gguf_get_f32_array(g, "tokenizer.ggml.scores", &scores, &n, err)) != QE_OK ||
                (rc = check_length(g, "tokenizer.ggml.scores", n, spec.n_vocab, err)) != QE_OK)
                goto out;
            spec.scores = scores;
        }
        if ((rc = optional_bool(g, "tokenizer.ggml.add_space_prefix", true, &spec.spm_add_dummy_prefix, err)) != QE_OK)
            goto out;
    } else {
        spec.kind = QE_TOKENIZER_BYTE_BPE;
        if ((rc = qe_gguf_get_string_array(g, "tokenizer.ggml.merges", &merges, &n, err)) != QE_OK)
            goto out;
        if (n > INT32_MAX) {
            rc = qe_fail(err, QE_EFORMAT, "%s: %llu merges", g->path, (unsigned long long)n);
            goto out;
        }
        spec.merges = merges;
        spec.n_merges = (int)n;
        pre = "default";
        if (qe_gguf_find_kv(g, "tokenizer.ggml.pre") && (rc = qe_gguf_get_string(g, "tokenizer.ggml.pre", &pre, err)) != QE_OK)
            goto out;
        size_t k = 0, n_pre = sizeof pre_tokenizers / sizeof pre_tokenizers[0];
        while (k < n_pre && strcmp(pre_tokenizers[k].pre, pre) != 0)
            k++;
        if (k == n_pre) {
            rc = qe_fail(err, QE_EUNSUPPORTED, "%s: tokenizer.ggml.pre '%s' is not supported (gpt-2, llama-bpe, "
                         "qwen2, smollm, starcoder, default and their aliases are)", g->path, pre);
            goto out;
        }
        spec.pre_tokenizer = pre_tokenizers[k].name;
        spec.pre_tokenizer_regex = pre_tokenizers[k].regexes;
    }
    if ((rc = optional_id(g, "tokenizer.ggml.bos_token_id", spec.n_vocab, &spec.bos_id, err)) != QE_OK ||
        (rc = optional_id(g, "tokenizer.ggml.eos_token_id", spec.n_vocab, &spec.eos_id, err)) != QE_OK ||
        (rc = optional_id(g, "tokenizer.ggml.unknown_token_id", spec.n_vocab, &spec.unk_id, err)) != QE_OK ||
        (rc = optional_id(g, "tokenizer.ggml.padding_token_id", spec.n_vocab, &spec.pad_id, err)) != QE_OK ||
        (rc = optional_bool(g, "tokenizer.ggml.add_bos_token", is_spm, &spec.add_bos, err)) != QE_OK ||
        (rc = optional_bool(g, "tokenizer.ggml.add_eos_token", false, &spec.add_eos, err)) != QE_OK)
        goto out;
    if (spec.add_bos && spec.bos_id < 0) {
        rc = qe_fail(err, QE_EFORMAT, "%s: tokenizer.ggml.add_bos_token is set but there is no bos_token_id", g->path);
        goto out;
    }
    if ((rc = qe_tokenizer_build(&spec, out, err)) != QE_OK)
        qe_fail_context(err, "%s: tokenizer", g->path);
out:
    free(scores);
    free(token_types);
    return rc;
}
