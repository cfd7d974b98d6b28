/* Tokenizer against Hugging Face `tokenizers` output: the Qwen2 byte-level BPE golden file
 * (ids without special tokens, and their decoding), llama.cpp's test vectors for the same
 * tokenizer.json, and stories260K's SentencePiece-style BPE with BOS from its golden.json.
 * Prints the encode speed over golden.jsonl. */
#include <stdint.h>
#include <time.h>

#include "tokenizer_check.h"

static void test_qwen2_golden(const char *shared)
{
    char dir[4096], path[4096];
    snprintf(dir, sizeof dir, "%s/tokenizers/qwen2", shared);
    snprintf(path, sizeof path, "%s/golden.jsonl", dir);
    qe_tokenizer *tok = NULL;
    qe_error err = {0};
    qe_status rc = qe_tokenizer_load_hf(dir, &tok, &err);
    if (rc != QE_OK)
        fprintf(stderr, "%s\n", err.msg);
    CHECK_INT_EQ(QE_OK, rc);
    if (!tok)
        return;
    CHECK_INT_EQ(151669, qe_tokenizer_n_vocab(tok)); /* 151643 BPE tokens + 26 added */
    CHECK_INT_EQ(-1, qe_tokenizer_bos_id(tok));
    CHECK_INT_EQ(151645, qe_tokenizer_eos_id(tok)); /* <|im_end|>, from tokenizer_config.json */
    CHECK(!qe_tokenizer_adds_bos(tok));
    CHECK_INT_EQ(151643, qe_tokenizer_token_id(tok, "<|endoftext|>"));

    char *golden = tokenizer_check_read(path);
    CHECK(golden != NULL);
    if (!golden) {
        qe_tokenizer_free(tok);
        return;
    }
    int n_rows = 0, n_tokens = 0;
    for (char *line = golden, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        cJSON *row = cJSON_Parse(line);
        if (!row)
            continue;
        const char *text = cJSON_GetObjectItem(row, "text")->valuestring;
        const cJSON *ids = cJSON_GetObjectItem(row, "ids");
        tokenizer_check_json(tok, text, false, ids, "qwen2 golden");
        tokenizer_check_decode(tok, ids, false, cJSON_GetObjectItem(row, "decoded")->valuestring);
        n_tokens += cJSON_GetArraySize(ids);
        n_rows++;
        cJSON_Delete(row);
    }
    CHECK(n_rows >= 300);

    /* speed: all rows' texts encoded again, 5 times over, timing only the encoder */
    free(golden);
    golden = tokenizer_check_read(path);
    char **texts = calloc(n_rows, sizeof *texts);
    int n_texts = 0;
    for (char *line = golden; line && *line && n_texts < n_rows;) {
        char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        cJSON *row = cJSON_ParseWithLength(line, len);
        if (row)
            texts[n_texts++] = strdup(cJSON_GetObjectItem(row, "text")->valuestring);
        cJSON_Delete(row);
        line = end ? end + 1 : NULL;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long n_encoded = 0;
    for (int rep = 0; rep < 5; rep++) {
        for (int i = 0; i < n_texts; i++) {
            int32_t *ids;
            int n;
            if (qe_tokenizer_encode(tok, texts[i], strlen(texts[i]), false, &ids, &n, &err) == QE_OK) {
                n_encoded += n;
                free(ids);
            }
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double seconds = (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
    printf("qwen2 golden: %d rows, %d tokens; encode %.0f tokens/s\n", n_rows, n_tokens, n_encoded / seconds);
    for (int i = 0; i < n_texts; i++)
        free(texts[i]);
    free(texts);
    free(golden);
    qe_tokenizer_free(tok);
}

/* llama.cpp's vectors: texts separated by "\n__ggml_vocab_test__\n", ids one line per text. */
static void test_llamacpp_vectors(const char *shared, const char *dir, const char *vectors)
{
    char path[4096];
    qe_tokenizer *tok = NULL;
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qe_tokenizer_load_hf(dir, &tok, &err));
    snprintf(path, sizeof path, "%s/tokenizers/llamacpp/%s.inp", shared, vectors);
    char *inp = tokenizer_check_read(path);
    snprintf(path, sizeof path, "%s/tokenizers/llamacpp/%s.out", shared, vectors);
    char *outp = tokenizer_check_read(path);
    CHECK(tok && inp && outp);
    int n_cases = 0;
    const char *sep = "\n__ggml_vocab_test__\n";
    char *text = inp, *line = outp;
    while (tok && inp && outp && *text && line && *line) {
        char *end = strstr(text, sep);
        if (!end)
            break;
        *end = 0;
        char *line_end = strchr(line, '\n');
        if (line_end)
            *line_end = 0;
        cJSON *expected = cJSON_CreateArray();
        for (char *p = line, *q; *p; p = q) {
            long v = strtol(p, &q, 10);
            if (q == p)
                break;
            cJSON_AddItemToArray(expected, cJSON_CreateNumber((double)v));
        }
        tokenizer_check_json(tok, text, false, expected, vectors);
        cJSON_Delete(expected);
        n_cases++;
        text = end + strlen(sep);
        line = line_end ? line_end + 1 : NULL;
    }
    CHECK(n_cases >= 40);
    free(inp);
    free(outp);
    qe_tokenizer_free(tok);
}

static void test_stories260k(const char *shared)
{
    char dir[4096], path[4096];
    snprintf(dir, sizeof dir, "%s/models/stories260K", shared);
    snprintf(path, sizeof path, "%s/golden.json", dir);
    qe_tokenizer *tok = NULL;
    qe_error err = {0};
    qe_status rc = qe_tokenizer_load_hf(dir, &tok, &err);
    if (rc != QE_OK)
        fprintf(stderr, "%s\n", err.msg);
    CHECK_INT_EQ(QE_OK, rc);
    char *text = tokenizer_check_read(path);
    cJSON *golden = text ? cJSON_Parse(text) : NULL;
    free(text);
    CHECK(golden != NULL);
    if (!tok || !golden) {
        cJSON_Delete(golden);
        qe_tokenizer_free(tok);
        return;
    }
    CHECK_INT_EQ(512, qe_tokenizer_n_vocab(tok));
    CHECK_INT_EQ(1, qe_tokenizer_bos_id(tok));
    CHECK_INT_EQ(2, qe_tokenizer_eos_id(tok));
    CHECK(qe_tokenizer_adds_bos(tok));
    const cJSON *item;
    cJSON_ArrayForEach(item, cJSON_GetObjectItem(golden, "sequences"))
        tokenizer_check_json(tok, cJSON_GetObjectItem(item, "text")->valuestring, true, cJSON_GetObjectItem(item, "input_ids"),
                     "stories260K sequence");
    cJSON_ArrayForEach(item, cJSON_GetObjectItem(golden, "greedy")) {
        tokenizer_check_json(tok, cJSON_GetObjectItem(item, "prompt_text")->valuestring, true,
                     cJSON_GetObjectItem(item, "prompt_ids"), "stories260K prompt");
        /* output_text is transformers' decode with skip_special_tokens: BOS left out */
        tokenizer_check_decode(tok, cJSON_GetObjectItem(item, "output_ids"), true,
                     cJSON_GetObjectItem(item, "output_text")->valuestring);
    }
    /* byte fallback: "\n" is <0x0A> (id 13); an unknown character decays to its UTF-8 bytes */
    int32_t *ids = NULL;
    int n = 0;
    CHECK_INT_EQ(QE_OK, qe_tokenizer_encode(tok, "\xe4\xb8\xad", 3, false, &ids, &n, &err)); /* U+4E2D */
    CHECK_INT_EQ(4, n); /* "▁" (410) then <0xE4> <0xB8> <0xAD>; byte b is id 3 + b */
    if (n == 4) {
        CHECK_INT_EQ(410, ids[0]);
        CHECK_INT_EQ(3 + 0xE4, ids[1]);
        CHECK_INT_EQ(3 + 0xB8, ids[2]);
        CHECK_INT_EQ(3 + 0xAD, ids[3]);
    }
    char *decoded = NULL;
    CHECK_INT_EQ(QE_OK, qe_tokenizer_decode(tok, ids, n, &decoded, &err));
    CHECK_STR_EQ("\xe4\xb8\xad", decoded);
    free(decoded);
    free(ids);
    int32_t lone_byte[] = {3 + 0xC3, 447}; /* <0xC3>, "A" */
    CHECK_INT_EQ(QE_OK, qe_tokenizer_decode(tok, lone_byte, 2, &decoded, &err));
    CHECK_STR_EQ("\xef\xbf\xbd" "A", decoded); /* HF's ByteFallback: U+FFFD per invalid byte */
    free(decoded);
    cJSON_Delete(golden);
    qe_tokenizer_free(tok);
}

int main(void)
{
    const char *shared = check_shared_dir();
    char probe[4096];
    if (!check_shared_path(probe, sizeof probe, "tokenizers/qwen2/tokenizer.json") ||
        !check_shared_path(probe, sizeof probe, "tokenizers/llamacpp/ggml-vocab-qwen2.gguf.inp") ||
        !check_shared_path(probe, sizeof probe, "models/stories260K/tokenizer.json"))
        return check_summary();
    test_qwen2_golden(shared);
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tokenizers/qwen2", shared);
    test_llamacpp_vectors(shared, dir, "ggml-vocab-qwen2.gguf");
    test_stories260k(shared);
    return check_summary();
}
