/* Tokenizer against Hugging Face `tokenizers` on the golden files of tests/data/tokenizers
 * (made by make_golden.py there): hard strings through the shared Qwen2 tokenizer, and three
 * small tokenizers in the Llama-3, Llama-2 and Metaspace tokenizer.json shapes. Each row: ids
 * without and with special tokens, decode with and without skip_special_tokens. */
#include <cjson/cJSON.h>
#include <stdint.h>

#include "check.h"
#include "tokenizer.h"

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc(n + 1);
    if (buf && fread(buf, 1, n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf)
        buf[n] = 0;
    return buf;
}

static void check_ids(const qe_tokenizer *tok, const char *text, bool add_special, const cJSON *expected,
                      const char *label, int row)
{
    int32_t *ids = NULL;
    int n = 0;
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qe_tokenizer_encode(tok, text, strlen(text), add_special, &ids, &n, &err));
    bool same = cJSON_GetArraySize(expected) == n;
    for (int i = 0; same && i < n; i++)
        same = cJSON_GetArrayItem(expected, i)->valueint == ids[i];
    CHECK(same);
    if (!same) {
        char *e = cJSON_PrintUnformatted(expected);
        fprintf(stderr, "  %s row %d (add_special %d): text \"%s\"\n  expected %s\n  got     ", label, row,
                add_special, text, e);
        for (int i = 0; i < n; i++)
            fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
        free(e);
    }
    free(ids);
}

static void check_decode(const qe_tokenizer *tok, const cJSON *ids_json, bool skip_special, const char *expected)
{
    int n = cJSON_GetArraySize(ids_json);
    int32_t *ids = malloc((n + 1) * sizeof *ids);
    for (int i = 0; i < n; i++)
        ids[i] = cJSON_GetArrayItem(ids_json, i)->valueint;
    char *text = NULL;
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qe_tokenizer_decode_ex(tok, ids, n, skip_special, &text, &err));
    CHECK_STR_EQ(expected, text);
    free(text);
    free(ids);
}

static void run_golden(const char *tokenizer_dir, const char *golden_path, const char *label)
{
    qe_tokenizer *tok = NULL;
    qe_error err = {0};
    qe_status rc = qe_tokenizer_load_hf(tokenizer_dir, &tok, &err);
    if (rc != QE_OK)
        fprintf(stderr, "%s: %s\n", label, err.msg);
    CHECK_INT_EQ(QE_OK, rc);
    char *golden = read_all(golden_path);
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
        check_ids(tok, text, false, cJSON_GetObjectItem(row, "ids"), label, n_rows);
        check_ids(tok, text, true, ids_special, label, n_rows);
        check_decode(tok, ids_special, false, cJSON_GetObjectItem(row, "decoded")->valuestring);
        check_decode(tok, ids_special, true, cJSON_GetObjectItem(row, "decoded_skip")->valuestring);
        cJSON_Delete(row);
        n_rows++;
    }
    CHECK(n_rows >= 50);
    free(golden);
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
    snprintf(dir, sizeof dir, "%s/tokenizers/qwen2", check_shared_dir());
    snprintf(golden, sizeof golden, "%s/qwen2_stress.jsonl", data);
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/tokenizer.json", dir);
    FILE *f = fopen(probe, "rb");
    if (f) {
        fclose(f);
        run_golden(dir, golden, "qwen2_stress");
    } else {
        printf("qwen2_stress skipped: no %s\n", probe);
    }
    return check_summary();
}
