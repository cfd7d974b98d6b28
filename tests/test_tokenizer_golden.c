/* Tokenizer against Hugging Face `tokenizers` on the golden files of tests/data/tokenizers
 * (made by make_golden.py there): hard strings through the shared Qwen2 tokenizer, and three
 * small tokenizers in the Llama-3, Llama-2 and Metaspace tokenizer.json shapes. Each row: ids
 * without and with special tokens, decode with and without skip_special_tokens. Every file is
 * read twice with one tokenizer: the second time its pieces come from the piece cache. */
#include <stdint.h>

#include "tokenizer_check.h"

static void check_rows(const qe_tokenizer *tok, const char *golden_path, const char *label)
{
    char *golden = tokenizer_check_read(golden_path);
    CHECK(golden != NULL);
    int n_rows = 0;
    for (char *line = golden, *next; tok && line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = 0;
        cJSON *row = cJSON_Parse(line);
        CHECK(row != NULL);
        if (!row)
            continue;
        const char *text = cJSON_GetObjectItem(row, "text")->valuestring;
        const cJSON *ids_special = cJSON_GetObjectItem(row, "ids_special");
        tokenizer_check_json(tok, text, false, cJSON_GetObjectItem(row, "ids"), label);
        tokenizer_check_json(tok, text, true, ids_special, label);
        tokenizer_check_decode(tok, ids_special, false, cJSON_GetObjectItem(row, "decoded")->valuestring);
        tokenizer_check_decode(tok, ids_special, true, cJSON_GetObjectItem(row, "decoded_skip")->valuestring);
        cJSON_Delete(row);
        n_rows++;
    }
    CHECK(n_rows >= 50);
    free(golden);
}

static void run_golden(const char *tokenizer_dir, const char *golden_path, const char *label)
{
    qe_tokenizer *tok = NULL;
    qe_error err = {0};
    qe_status rc = qe_tokenizer_load_hf(tokenizer_dir, &tok, &err);
    if (rc != QE_OK)
        fprintf(stderr, "%s: %s\n", label, err.msg);
    CHECK_INT_EQ(QE_OK, rc);
    for (int pass = 0; pass < 2; pass++)
        check_rows(tok, golden_path, label);
    qe_tokenizer_free(tok);
}

int main(void)
{
    const char *data = QEVAL_SOURCE_DIR "/tests/data/tokenizers";
    static const char *const shapes[] = {"llama3_style", "spm_style", "spm_metaspace"};
    char dir[4096], golden[4096];
    for (int i = 0; i < 3; i++) {
        snprintf(dir, sizeof dir, "%s/%s", data, shapes[i]);
        snprintf(golden, sizeof golden, "%s/golden.jsonl", dir);
        run_golden(dir, golden, shapes[i]);
    }
    char probe[4200];
    if (check_shared_path(probe, sizeof probe, "tokenizers/qwen2/tokenizer.json")) {
        snprintf(dir, sizeof dir, "%s/tokenizers/qwen2", check_shared_dir());
        snprintf(golden, sizeof golden, "%s/qwen2_stress.jsonl", data);
        run_golden(dir, golden, "qwen2_stress");
    }
    return check_summary();
}
