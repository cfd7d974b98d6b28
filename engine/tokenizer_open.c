/* tokenizer_open — qe_text_tokenizer (qeval_engine.h): a tokenizer found at a path without
 * loading a model. A GGUF is recognised by its magic, not its name; anything else that is a
 * file is taken as a tokenizer.json. The front-ends are the ones qe_model_load uses
 * (qe_tokenizer_load_hf_json, qe_gguf_tokenizer_load), so both give the same ids. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "file_util.h"
#include "gguf.h"
#include "gguf_tokenizer.h"
#include "qeval_engine.h"
#include "tokenizer.h"

struct qe_text_tokenizer {
    qe_tokenizer *core;
};

static bool starts_with_gguf_magic(const char *path)
{
    FILE *f = fopen(path, "rb");
    char magic[4] = {0};
    bool is_gguf = f && fread(magic, 1, sizeof magic, f) == sizeof magic && !memcmp(magic, "GGUF", 4);
    if (f)
        fclose(f);
    return is_gguf;
}

static qe_status open_gguf(const char *path, qe_tokenizer **out, qe_error *err)
{
    qe_gguf *gguf = NULL;
    qe_status rc = qe_gguf_open(path, &gguf, err);
    if (rc == QE_OK && !qe_gguf_find_kv(gguf, "tokenizer.ggml.model"))
        rc = qe_fail(err, QE_EFORMAT, "%s: no tokenizer.ggml.model key, so this GGUF holds no tokenizer", path);
    if (rc == QE_OK)
        rc = qe_gguf_tokenizer_load(gguf, out, err);
    qe_gguf_close(gguf); /* the tokenizer keeps copies */
    return rc;
}

/* json_path is a tokenizer.json; tokenizer_config.json beside it is read when present, as
 * transformers reads it from a model directory. */
static qe_status open_tokenizer_json(const char *json_path, qe_tokenizer **out, qe_error *err)
{
    char dir[4096], config_path[4096];
    const char *slash = strrchr(json_path, '/');
    if (slash) /* "/" itself for a file at the root */
        snprintf(dir, sizeof dir, "%.*s", slash == json_path ? 1 : (int)(slash - json_path), json_path);
    else
        snprintf(dir, sizeof dir, ".");
    char *json = NULL, *config = NULL;
    size_t json_bytes = 0;
    qe_status rc = qe_path_join(config_path, sizeof config_path, dir, "tokenizer_config.json", err);
    if (rc == QE_OK)
        rc = qe_read_file(json_path, &json, &json_bytes, err);
    if (rc == QE_OK && qe_file_exists(config_path))
        rc = qe_read_file(config_path, &config, NULL, err);
    if (rc == QE_OK)
        rc = qe_tokenizer_load_hf_json(json_path, json, json_bytes, config, out, err);
    free(json);
    free(config);
    return rc;
}

qe_status qe_text_tokenizer_open(const char *path, qe_text_tokenizer **out, qe_error *err)
{
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0)
        return qe_fail(err, QE_EIO, "%s: cannot open: %s", path, strerror(errno));
    qe_text_tokenizer *tokenizer = calloc(1, sizeof *tokenizer);
    if (!tokenizer)
        return qe_fail(err, QE_ENOMEM, "%s: out of memory", path);
    qe_status rc;
    if (S_ISDIR(st.st_mode)) {
        char json_path[4096];
        if ((rc = qe_path_join(json_path, sizeof json_path, path, "tokenizer.json", err)) == QE_OK) {
            if (qe_file_exists(json_path))
                rc = open_tokenizer_json(json_path, &tokenizer->core, err);
            else
                rc = qe_fail(err, QE_EUNSUPPORTED, "%s: no tokenizer.json, so text cannot be tokenized", path);
        }
    } else if (starts_with_gguf_magic(path)) {
        rc = open_gguf(path, &tokenizer->core, err);
    } else {
        rc = open_tokenizer_json(path, &tokenizer->core, err);
    }
    if (rc != QE_OK) {
        qe_text_tokenizer_free(tokenizer);
        return rc;
    }
    *out = tokenizer;
    return QE_OK;
}

void qe_text_tokenizer_free(qe_text_tokenizer *tokenizer)
{
    if (!tokenizer)
        return;
    qe_tokenizer_free(tokenizer->core);
    free(tokenizer);
}

qe_status qe_text_tokenizer_encode(const qe_text_tokenizer *tokenizer, const char *text, bool add_special,
                                   int32_t **ids, int *n_ids, qe_error *err)
{
    return qe_tokenizer_encode(tokenizer->core, text, strlen(text), add_special, ids, n_ids, err);
}

qe_status qe_text_tokenizer_decode(const qe_text_tokenizer *tokenizer, const int32_t *ids, int n_ids,
                                   bool skip_special, char **text, qe_error *err)
{
    return qe_tokenizer_decode_ex(tokenizer->core, ids, n_ids, skip_special, text, err);
}
