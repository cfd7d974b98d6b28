/* qeval tokenize PATH [--text T | --jsonl FILE] [--special] [--decode] — token ids of text.
 * PATH is anything qe_text_tokenizer_open takes (a model or tokenizer directory, a
 * tokenizer.json, a GGUF: a whole model or a vocab-only file) or a known short model name;
 * no weights are loaded. --text prints one line {"ids":[...]}; --jsonl reads lines
 * {"text": ...} and writes one such line for each. Ids come without BOS/EOS unless --special;
 * --decode adds "decoded": the text of those ids (special tokens as their text). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model_cache.h"
#include "qeval_engine.h"

typedef struct {
    const qe_text_tokenizer *tokenizer;
    bool add_special;    /* BOS/EOS as the tokenizer adds them                */
    bool with_decoded;   /* each line also carries the decoded text of its ids */
} tokenize_output;

static qe_status print_ids(const tokenize_output *o, const char *text, qe_error *err)
{
    int32_t *ids = NULL;
    int n_ids = 0;
    char *decoded = NULL, *line = NULL;
    qe_status rc = qe_text_tokenizer_encode(o->tokenizer, text, o->add_special, &ids, &n_ids, err);
    if (rc == QE_OK && o->with_decoded)
        rc = qe_text_tokenizer_decode(o->tokenizer, ids, n_ids, false, &decoded, err);
    if (rc == QE_OK) {
        cJSON *row = cJSON_CreateObject(), *id_list = cJSON_AddArrayToObject(row, "ids");
        for (int i = 0; id_list && i < n_ids; i++)
            cJSON_AddItemToArray(id_list, cJSON_CreateNumber(ids[i]));
        if (decoded)
            cJSON_AddStringToObject(row, "decoded", decoded);
        if (!(line = cJSON_PrintUnformatted(row)))
            rc = qe_fail(err, QE_ENOMEM, "tokenize: out of memory printing %d ids", n_ids);
        cJSON_Delete(row);
    }
    if (line)
        puts(line);
    cJSON_free(line);
    free(decoded);
    free(ids);
    return rc;
}

static qe_status tokenize_jsonl(const tokenize_output *o, const char *path, qe_error *err)
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
            rc = print_ids(o, text->valuestring, err);
        cJSON_Delete(obj);
    }
    free(line);
    fclose(f);
    return rc;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: qeval tokenize PATH (--text T | --jsonl FILE) [--special] [--decode]\n"
                 "  PATH: a model or tokenizer directory (tokenizer.json [+ tokenizer_config.json]), a\n"
                 "  tokenizer.json file, a .gguf (a model or a vocab-only file such as llama.cpp's\n"
                 "  ggml-vocab-*.gguf), or a known model name (qeval model list). No weights are loaded.\n"
                 "  Prints {\"ids\":[...]} per text, without BOS/EOS unless --special; --decode adds\n"
                 "  \"decoded\", the text of those ids.\n");
}

int qh_cmd_tokenize(int argc, char **argv)
{
    const char *name = NULL, *text = NULL, *jsonl = NULL;
    tokenize_output output = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return QH_EXIT_OK;
        } else if (!strcmp(argv[i], "--text") && i + 1 < argc)
            text = argv[++i];
        else if (!strcmp(argv[i], "--jsonl") && i + 1 < argc)
            jsonl = argv[++i];
        else if (!strcmp(argv[i], "--special"))
            output.add_special = true;
        else if (!strcmp(argv[i], "--decode"))
            output.with_decoded = true;
        else if (argv[i][0] != '-' && !name)
            name = argv[i];
        else
            return qh_usage_error("tokenize", "unexpected argument '%s'", argv[i]);
    }
    if (!name || !!text == !!jsonl)
        return qh_usage_error("tokenize", "PATH and exactly one of --text T or --jsonl FILE are required");
    char *path = NULL;
    qe_text_tokenizer *tokenizer = NULL;
    qe_error err = {0};
    int rc = QH_EXIT_OK;
    if (qh_model_locate(name, &path, &err) || qe_text_tokenizer_open(path, &tokenizer, &err))
        rc = qh_report_error(&err);
    else {
        output.tokenizer = tokenizer;
        if (text ? print_ids(&output, text, &err) : tokenize_jsonl(&output, jsonl, &err))
            rc = qh_report_error(&err);
    }
    qe_text_tokenizer_free(tokenizer);
    free(path);
    return rc;
}
