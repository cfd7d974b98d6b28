/* The tokenizer built from GGUF metadata against llama.cpp's own test vectors: every text of
 * X.gguf.inp must encode (no BOS) to exactly line k of X.gguf.out; SmolLM2's GGUF (when
 * `qeval model fetch smollm2-135m` has cached it) against Hugging Face tokenizers
 * (tests/golden/gguf/smollm2_tokens.jsonl); then hostile metadata. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <unistd.h>

#include "check.h"
#include "gguf.h"
#include "gguf_tokenizer.h"
#include "model_cache.h"

static char *read_all(const char *path, size_t *n_bytes)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    fclose(f);
    if (s)
        s[n] = '\0';
    *n_bytes = (size_t)n;
    return s;
}

static void test_vectors(const char *vocab)
{
    char path[1024];
    char relative[128];
    snprintf(relative, sizeof relative, "tokenizers/llamacpp/ggml-vocab-%s.gguf", vocab);
    if (!check_shared_path(path, sizeof path, relative))
        return;
    qe_gguf *g = NULL;
    qe_tokenizer *tok = NULL;
    qe_error err = {0};
    if (qe_gguf_open(path, &g, &err) != QE_OK || qe_gguf_tokenizer_load(g, &tok, &err) != QE_OK) {
        check_n_failed++;
        fprintf(stderr, "%s\n", err.msg);
        qe_gguf_close(g);
        return;
    }
    if (!tok) {
        printf("skipped: the tokenizer core is still a placeholder\n");
        exit(77);
    }
    size_t n_inp, n_out;
    char inp_path[1100], out_path[1100];
    snprintf(inp_path, sizeof inp_path, "%s.inp", path);
    snprintf(out_path, sizeof out_path, "%s.out", path);
    char *inp = read_all(inp_path, &n_inp), *out = read_all(out_path, &n_out);
    CHECK(inp && out);
    const char *marker = "\n__ggml_vocab_test__\n";
    char *text = inp, *line = out;
    int n_texts = 0, n_exact = 0;
    while (inp && out && *text && *line) {
        char *end = strstr(text, marker), *line_end = strchr(line, '\n');
        if (!end || !line_end)
            break;
        *end = '\0';
        *line_end = '\0';
        int32_t *ids = NULL;
        int n_ids = 0;
        char got[4096] = "";
        if (qe_tokenizer_encode(tok, text, strlen(text), false, &ids, &n_ids, &err) == QE_OK) {
            size_t used = 0;
            for (int i = 0; i < n_ids && used < sizeof got - 16; i++)
                used += (size_t)snprintf(got + used, sizeof got - used, " %d", ids[i]);
        } else {
            snprintf(got, sizeof got, "error: %s", err.msg);
        }
        free(ids);
        if (!strcmp(got, line))
            n_exact++;
        else
            fprintf(stderr, "%s text %d '%s':\n  expected%s\n  got     %s\n", vocab, n_texts, text, line, got);
        n_texts++;
        text = end + strlen(marker);
        line = line_end + 1;
    }
    printf("%s: %d/%d texts exact\n", vocab, n_exact, n_texts);
    CHECK_INT_EQ(46, n_texts);
    CHECK_INT_EQ(n_texts, n_exact);
    if (!strcmp(vocab, "llama-spm")) {
        CHECK_INT_EQ(1, qe_tokenizer_bos_id(tok));
        CHECK_INT_EQ(2, qe_tokenizer_eos_id(tok));
        CHECK(qe_tokenizer_adds_bos(tok));
    } else {
        CHECK_INT_EQ(50256, qe_tokenizer_bos_id(tok));
        CHECK(!qe_tokenizer_adds_bos(tok));
    }
    CHECK_INT_EQ(strcmp(vocab, "gpt-2") ? 32000 : 50257, qe_tokenizer_n_vocab(tok));
    free(inp);
    free(out);
    qe_tokenizer_free(tok);
    qe_gguf_close(g);
}

/* A tiny GGUF with the given tokenizer keys (each entry a complete kv: key, type, value). */
typedef struct { uint8_t bytes[2048]; size_t n; } buffer;
static void put(buffer *b, const void *p, size_t n) { memcpy(b->bytes + b->n, p, n); b->n += n; }
static void put_u32(buffer *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buffer *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buffer *b, const char *s) { put_u64(b, strlen(s)); put(b, s, strlen(s)); }
static void kv_str(buffer *b, const char *k, const char *v) { put_str(b, k); put_u32(b, QE_GGUF_STRING); put_str(b, v); }
static void kv_tokens(buffer *b) {
    put_str(b, "tokenizer.ggml.tokens"); put_u32(b, QE_GGUF_ARRAY); put_u32(b, QE_GGUF_STRING); put_u64(b, 3);
    put_str(b, "<s>"); put_str(b, "a"); put_str(b, "b");
}

static void expect_load_error(buffer *b, uint64_t n_kv, qe_status code, const char *needle)
{
    memcpy(b->bytes + 16, &n_kv, 8);
    qe_gguf *g = NULL;
    qe_tokenizer *tok = NULL;
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qe_gguf_open_memory(b->bytes, b->n, "tok.gguf", &g, &err));
    if (!g)
        return;
    CHECK_INT_EQ(code, qe_gguf_tokenizer_load(g, &tok, &err));
    CHECK(tok == NULL);
    if (!strstr(err.msg, needle) || !strstr(err.msg, "tok.gguf")) {
        check_n_failed++;
        fprintf(stderr, "message '%s' lacks '%s'\n", err.msg, needle);
    }
    qe_gguf_close(g);
}

static void start(buffer *b)
{
    b->n = 0;
    put(b, "GGUF", 4); put_u32(b, 3); put_u64(b, 0); put_u64(b, 0);
}

static void test_hostile(void)
{
    buffer b;
    start(&b); kv_str(&b, "tokenizer.ggml.model", "bert"); kv_tokens(&b);
    expect_load_error(&b, 2, QE_EUNSUPPORTED, "tokenizer.ggml.model 'bert' is not supported");
    start(&b); kv_str(&b, "tokenizer.ggml.model", "gpt2"); kv_tokens(&b);
    expect_load_error(&b, 2, QE_EFORMAT, "'tokenizer.ggml.merges'");
    start(&b); kv_str(&b, "tokenizer.ggml.model", "llama");
    expect_load_error(&b, 1, QE_EFORMAT, "'tokenizer.ggml.tokens' (an ARRAY of STRING) is missing");
    start(&b); kv_str(&b, "tokenizer.ggml.model", "llama"); kv_tokens(&b);
    put_str(&b, "tokenizer.ggml.bos_token_id"); put_u32(&b, QE_GGUF_UINT32); put_u32(&b, 7);
    expect_load_error(&b, 3, QE_EFORMAT, "bos_token_id = 7 is outside the vocabulary of 3 tokens");
    start(&b); kv_str(&b, "tokenizer.ggml.model", "llama"); kv_tokens(&b);
    put_str(&b, "tokenizer.ggml.scores"); put_u32(&b, QE_GGUF_ARRAY); put_u32(&b, QE_GGUF_FLOAT32); put_u64(&b, 2);
    put_u32(&b, 0); put_u32(&b, 0);
    expect_load_error(&b, 3, QE_EFORMAT, "tokenizer.ggml.scores has 2 entries for 3 tokens");
    start(&b); kv_str(&b, "tokenizer.ggml.model", "llama"); kv_tokens(&b);
    put_str(&b, "tokenizer.ggml.token_type"); put_u32(&b, QE_GGUF_ARRAY); put_u32(&b, QE_GGUF_INT32); put_u64(&b, 3);
    put_u32(&b, 3); put_u32(&b, 1); put_u32(&b, 9);
    expect_load_error(&b, 3, QE_EFORMAT, "token_type[2] = 9 is not a token type");
    start(&b); kv_str(&b, "tokenizer.ggml.model", "gpt2"); kv_tokens(&b); kv_str(&b, "tokenizer.ggml.pre", "klingon");
    put_str(&b, "tokenizer.ggml.merges"); put_u32(&b, QE_GGUF_ARRAY); put_u32(&b, QE_GGUF_STRING); put_u64(&b, 1);
    put_str(&b, "a b");
    expect_load_error(&b, 4, QE_EUNSUPPORTED, "tokenizer.ggml.pre 'klingon' is not supported");
}

static void test_smollm2(void)
{
    char *model_path = NULL, golden_path[1024];
    qe_error err = {0};
    if (qh_model_cached_path(qh_model_lookup("smollm2-135m"), &model_path, &err) != QE_OK ||
        access(model_path, R_OK) != 0) {
        printf("smollm2: not in the model cache, skipped (qeval model fetch smollm2-135m puts it there)\n");
        free(model_path);
        return;
    }
    qe_gguf *g = NULL;
    qe_tokenizer *tok = NULL;
    CHECK_INT_EQ(QE_OK, qe_gguf_open(model_path, &g, &err));
    CHECK_INT_EQ(QE_OK, g ? qe_gguf_tokenizer_load(g, &tok, &err) : QE_EFORMAT);
    free(model_path);
    snprintf(golden_path, sizeof golden_path, "%s/tests/golden/gguf/smollm2_tokens.jsonl", QEVAL_SOURCE_DIR);
    size_t n;
    char *lines = read_all(golden_path, &n);
    CHECK(lines != NULL);
    int n_texts = 0;
    for (char *line = lines, *end; tok && line && *line; line = end + 1, n_texts++) {
        end = strchr(line, '\n');
        if (!end)
            break;
        *end = '\0';
        cJSON *row = cJSON_Parse(line);
        const char *text = cJSON_GetObjectItem(row, "text")->valuestring;
        const cJSON *ids = cJSON_GetObjectItem(row, "ids");
        int32_t *got = NULL;
        int n_got = 0;
        CHECK_INT_EQ(QE_OK, qe_tokenizer_encode(tok, text, strlen(text), false, &got, &n_got, &err));
        bool same = n_got == cJSON_GetArraySize(ids);
        for (int i = 0; same && i < n_got; i++)
            same = got[i] == cJSON_GetArrayItem(ids, i)->valueint;
        if (!same)
            fprintf(stderr, "smollm2 text %d differs: '%s'\n", n_texts, text);
        CHECK(same);
        free(got);
        cJSON_Delete(row);
    }
    CHECK_INT_EQ(12, n_texts);
    free(lines);
    qe_tokenizer_free(tok);
    qe_gguf_close(g);
}

int main(void)
{
    test_vectors("gpt-2");
    test_vectors("llama-spm");
    test_smollm2();
    test_hostile();
    return check_summary();
}
