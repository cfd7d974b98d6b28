/* tokenizer_check.h — helpers the tokenizer tests share (on top of check.h): reading a golden
 * file and comparing an encoding or a decoding with the expected one. */
#ifndef QE_TOKENIZER_CHECK_H
#define QE_TOKENIZER_CHECK_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "check.h"
#include "file_util.h"
#include "tokenizer.h"

/* The whole file, NUL-terminated, or NULL. */
static inline char *tokenizer_check_read(const char *path)
{
    char *text = NULL;
    qe_error err;
    return qe_read_file(path, &text, NULL, &err) == QE_OK ? text : NULL;
}

/* Encodes text and checks the ids one by one; prints both lists on a mismatch. */
static inline void tokenizer_check_ids(const qe_tokenizer *tok, const char *text, bool add_special,
                                       const int32_t *expected, int n_expected, const char *label)
{
    int32_t *ids = NULL;
    int n = 0;
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qe_tokenizer_encode(tok, text, strlen(text), add_special, &ids, &n, &err));
    bool same = n == n_expected;
    for (int i = 0; same && i < n; i++)
        same = ids[i] == expected[i];
    CHECK(same);
    if (!same) {
        fprintf(stderr, "  %s (add_special %d): text \"%.300s\"\n  expected", label, add_special, text);
        for (int i = 0; i < n_expected; i++)
            fprintf(stderr, " %d", expected[i]);
        fprintf(stderr, "\n  got     ");
        for (int i = 0; i < n; i++)
            fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    free(ids);
}

/* A JSON array of ids as a malloc'd array. */
static inline int32_t *tokenizer_check_json_ids(const cJSON *array, int *n)
{
    *n = cJSON_GetArraySize(array);
    int32_t *ids = malloc((*n + 1) * sizeof *ids);
    for (int i = 0; i < *n; i++)
        ids[i] = cJSON_GetArrayItem(array, i)->valueint;
    return ids;
}

static inline void tokenizer_check_json(const qe_tokenizer *tok, const char *text, bool add_special,
                                        const cJSON *expected, const char *label)
{
    int n;
    int32_t *ids = tokenizer_check_json_ids(expected, &n);
    tokenizer_check_ids(tok, text, add_special, ids, n, label);
    free(ids);
}

/* Decodes a JSON array of ids and checks the text. */
static inline void tokenizer_check_decode(const qe_tokenizer *tok, const cJSON *ids_json, bool skip_special,
                                          const char *expected)
{
    int n;
    int32_t *ids = tokenizer_check_json_ids(ids_json, &n);
    char *text = NULL;
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qe_tokenizer_decode_ex(tok, ids, n, skip_special, &text, &err));
    CHECK_STR_EQ(expected, text);
    free(text);
    free(ids);
}

#define EXPECT_IDS(tok, text, add_special, ...)                                                       \
    do {                                                                                              \
        const int32_t e_[] = {__VA_ARGS__};                                                           \
        tokenizer_check_ids(tok, text, add_special, e_, (int)(sizeof e_ / sizeof e_[0]), text);       \
    } while (0)

#endif
