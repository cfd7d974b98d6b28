/* humaneval_file — see humaneval_file.h. */
#include "humaneval_file.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

qe_status qh_read_gz_file(const char *path, char **text, size_t *n_bytes, qe_error *err)
{
    *text = NULL;
    *n_bytes = 0;
    gzFile gz = gzopen(path, "rb");
    if (!gz)
        return qe_fail(err, QE_EIO, "%s: cannot open: %s", path, errno ? strerror(errno) : "gzopen failed");
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    qe_status rc = QE_OK;
    while (buf) {
        if (cap - len < 65536) {
            if (cap >= (1u << 30)) {
                rc = qe_fail(err, QE_EFORMAT, "%s: larger than 1 GiB uncompressed", path);
                break;
            }
            char *grown = realloc(buf, cap * 2);
            if (!grown)
                break;
            buf = grown;
            cap *= 2;
        }
        int n = gzread(gz, buf + len, (unsigned)(cap - len - 1));
        if (n < 0) {
            int zerr;
            rc = qe_fail(err, QE_EFORMAT, "%s: corrupt gzip data after %zu bytes: %s", path, len, gzerror(gz, &zerr));
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    gzclose(gz);
    if (!buf)
        return qe_fail(err, QE_ENOMEM, "%s: no memory after %zu bytes", path, len);
    if (rc != QE_OK) {
        free(buf);
        return rc;
    }
    buf[len] = '\0';
    *text = buf;
    *n_bytes = len;
    return QE_OK;
}

void qh_humaneval_free(qh_humaneval_problem *problems, size_t n_problems)
{
    if (!problems)
        return;
    for (size_t i = 0; i < n_problems; i++) {
        free(problems[i].task_id);
        free(problems[i].prompt);
        free(problems[i].entry_point);
        free(problems[i].canonical_solution);
        free(problems[i].test);
    }
    free(problems);
}

static qe_status take_string(const cJSON *rec, const char *field, char **out, const char *path, size_t line_no, qe_error *err)
{
    const cJSON *item = cJSON_GetObjectItemCaseSensitive(rec, field);
    if (!cJSON_IsString(item))
        return qe_fail(err, QE_EFORMAT, "%s: line %zu: field \"%s\" is missing or not a string", path, line_no, field);
    *out = strdup(item->valuestring);
    return *out ? QE_OK : qe_fail(err, QE_ENOMEM, "%s: line %zu: no memory", path, line_no);
}

qe_status qh_humaneval_load(const char *path, qh_humaneval_problem **problems, size_t *n_problems, qe_error *err)
{
    *problems = NULL;
    *n_problems = 0;
    char *text = NULL;
    size_t n_bytes = 0;
    qe_status rc = qh_read_gz_file(path, &text, &n_bytes, err);
    if (rc != QE_OK)
        return rc;
    size_t n_lines = 1;
    for (size_t i = 0; i < n_bytes; i++)
        n_lines += text[i] == '\n';
    qh_humaneval_problem *out = calloc(n_lines, sizeof *out);
    size_t n = 0, line_no = 0;
    if (!out)
        rc = qe_fail(err, QE_ENOMEM, "%s: no memory for %zu records", path, n_lines);
    for (char *line = text; rc == QE_OK && line && *line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        line_no++;
        if (strspn(line, " \t\r") == strlen(line)) {
            line = next;
            continue;
        }
        cJSON *rec = cJSON_Parse(line);
        if (!cJSON_IsObject(rec)) {
            rc = qe_fail(err, QE_EFORMAT, "%s: line %zu: not a JSON object", path, line_no);
        } else {
            qh_humaneval_problem *p = &out[n++];
            if ((rc = take_string(rec, "task_id", &p->task_id, path, line_no, err)) == QE_OK &&
                (rc = take_string(rec, "prompt", &p->prompt, path, line_no, err)) == QE_OK &&
                (rc = take_string(rec, "entry_point", &p->entry_point, path, line_no, err)) == QE_OK &&
                (rc = take_string(rec, "canonical_solution", &p->canonical_solution, path, line_no, err)) == QE_OK)
                rc = take_string(rec, "test", &p->test, path, line_no, err);
        }
        cJSON_Delete(rec);
        line = next;
    }
    if (rc == QE_OK && n == 0)
        rc = qe_fail(err, QE_EFORMAT, "%s: no records", path);
    free(text);
    if (rc != QE_OK) {
        qh_humaneval_free(out, n);
        return rc;
    }
    *problems = out;
    *n_problems = n;
    return QE_OK;
}
