/* qeval tokenize MODEL [--text T | --jsonl FILE] — token ids without special tokens.
 * --text prints one line {"ids":[...]}; --jsonl reads lines {"text": ...} and writes one
 * {"ids":[...]} line for each. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model_cache.h"
#include "qeval_engine.h"

static qe_status print_ids(const qe_model *model, const char *text, qe_error *err)
{
    int32_t *ids = NULL;
    int n = 0;
    qe_status rc = qe_tokenize(model, text, false, &ids, &n, err);
    if (rc != QE_OK)
        return rc;
    fputs("{\"ids\":[", stdout);
    for (int i = 0; i < n; i++)
        printf("%s%d", i ? "," : "", ids[i]);
    fputs("]}\n", stdout);
    free(ids);
    return QE_OK;
}

static qe_status tokenize_jsonl(const qe_model *model, const char *path, qe_error *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return qe_fail(err, QE_EIO, "%s: cannot open", path);
    char *line = NULL;
    size_t cap = 0;
    long line_no = 0;
    qe_status rc = QE_OK;
    while (rc == QE_OK && getline(&line, &cap, f) >= 0) {
        line_no++;
        if (strspn(line, " \t\r\n") == strlen(line))
            continue;
        cJSON *obj = cJSON_Parse(line);
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(obj, "text");
        if (!cJSON_IsString(text))
            rc = qe_fail(err, QE_EFORMAT, "%s:%ld: not a JSON object with a string \"text\"", path, line_no);
        else
            rc = print_ids(model, text->valuestring, err);
        cJSON_Delete(obj);
    }
    free(line);
    fclose(f);
    return rc;
}

int qh_cmd_tokenize(int argc, char **argv)
{
    const char *path = NULL, *text = NULL, *jsonl = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: qeval tokenize MODEL [--text T | --jsonl FILE]\n");
            return QH_EXIT_OK;
        } else if (!strcmp(argv[i], "--text") && i + 1 < argc)
            text = argv[++i];
        else if (!strcmp(argv[i], "--jsonl") && i + 1 < argc)
            jsonl = argv[++i];
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else
            return qh_usage_error("tokenize", "unexpected argument '%s'", argv[i]);
    }
    if (!path || !!text == !!jsonl)
        return qh_usage_error("tokenize", "MODEL and exactly one of --text T or --jsonl FILE are required");
    qe_load_options options = {.variant = {.kind = QE_VARIANT_FP32}, .n_threads = 1, .metadata_only = true};
    qe_model *model = NULL;
    qe_error err = {0};
    int rc = QH_EXIT_OK;
    if (qh_model_open(path, &options, &model, &err) ||
        (text ? print_ids(model, text, &err) : tokenize_jsonl(model, jsonl, &err)))
        rc = qh_report_error(&err);
    qe_model_free(model);
    return rc;
}
