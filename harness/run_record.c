#include "run_record.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void qh_doc_record_clear(qh_doc_record *record)
{
    if (!record)
        return;
    free(record->loglikelihoods);
    free(record->is_greedy);
    free(record->argmax);
    free(record->p_target);
    free(record->text);
    memset(record, 0, sizeof *record);
}

const char *qh_exec_result_name(qt_exec_result result)
{
    switch (result) {
    case QT_EXEC_PASSED: return "passed";
    case QT_EXEC_FAILED: return "failed";
    case QT_EXEC_NOT_RUN: break;
    }
    return "not_run";
}

/* v as the shortest %.Ng that reads back as exactly v: cJSON prints 15 digits whenever they read
 * back within an epsilon, so a cached log-likelihood came back an ulp off the computed one (and a
 * metric from it differed in its last digits). Non-finite values as cJSON writes them (null). */
static cJSON *exact_number(double v)
{
    if (!isfinite(v))
        return cJSON_CreateNumber(v);
    char text[32];
    for (int digits = 15; digits <= 17; digits++) {
        snprintf(text, sizeof text, "%.*g", digits, v);
        if (strtod(text, NULL) == v)
            break;
    }
    return cJSON_CreateRaw(text);
}

qe_status qh_doc_record_to_json(const qh_doc_record *record, char **json, qe_error *err)
{
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;
    if (ok && record->type == QT_REQUEST_LOGLIKELIHOOD) {
        cJSON *ll = cJSON_AddArrayToObject(root, "ll"), *greedy = cJSON_AddArrayToObject(root, "greedy");
        cJSON *argmax = cJSON_AddArrayToObject(root, "argmax"), *p = cJSON_AddArrayToObject(root, "p");
        ok = ll && greedy && argmax && p;
        for (int i = 0; ok && i < record->n_choices; i++) {
            ok = cJSON_AddItemToArray(ll, exact_number(record->loglikelihoods[i])) &&
                 cJSON_AddItemToArray(greedy, cJSON_CreateBool(record->is_greedy[i]));
        }
        for (int i = 0; ok && i < record->n_positions; i++)
            ok = cJSON_AddItemToArray(argmax, cJSON_CreateNumber(record->argmax[i])) &&
                 cJSON_AddItemToArray(p, exact_number(record->p_target[i]));
    } else if (ok) {
        ok = cJSON_AddStringToObject(root, "text", record->text ? record->text : "") &&
             cJSON_AddStringToObject(root, "exec", qh_exec_result_name(record->exec_result));
    }
    ok = ok && cJSON_AddBoolToObject(root, "truncated", record->was_truncated);
    *json = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    return *json ? QE_OK : qe_fail(err, QE_ENOMEM, "out of memory encoding a sample");
}

/* The numbers of a JSON array into a malloc'd array of n; NULL array gives n = 0. */
static bool read_numbers(const cJSON *array, double **out, int *n)
{
    *out = NULL;
    *n = 0;
    if (!array)
        return true;
    if (!cJSON_IsArray(array))
        return false;
    int count = cJSON_GetArraySize(array);
    *out = malloc((size_t)(count ? count : 1) * sizeof **out);
    if (!*out)
        return false;
    const cJSON *item;
    cJSON_ArrayForEach(item, array) {
        if (!cJSON_IsNumber(item) && !cJSON_IsBool(item))
            return false;
        (*out)[(*n)++] = cJSON_IsBool(item) ? cJSON_IsTrue(item) : item->valuedouble;
    }
    return true;
}

qe_status qh_doc_record_from_json(const char *json, qt_request_type type, qh_doc_record *record, qe_error *err)
{
    memset(record, 0, sizeof *record);
    record->type = type;
    cJSON *root = cJSON_Parse(json);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return qe_fail(err, QE_EFORMAT, "stored response is not a JSON object: %.60s", json);
    }
    bool ok = true;
    record->was_truncated = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "truncated"));
    if (type == QT_REQUEST_LOGLIKELIHOOD) {
        double *greedy = NULL, *argmax = NULL;
        int n_greedy = 0, n_argmax = 0;
        ok = read_numbers(cJSON_GetObjectItemCaseSensitive(root, "ll"), &record->loglikelihoods, &record->n_choices) &&
             read_numbers(cJSON_GetObjectItemCaseSensitive(root, "greedy"), &greedy, &n_greedy) &&
             read_numbers(cJSON_GetObjectItemCaseSensitive(root, "argmax"), &argmax, &n_argmax) &&
             read_numbers(cJSON_GetObjectItemCaseSensitive(root, "p"), &record->p_target, &record->n_positions) &&
             n_greedy == record->n_choices && n_argmax == record->n_positions;
        if (ok) {
            record->is_greedy = malloc((size_t)(n_greedy ? n_greedy : 1) * sizeof *record->is_greedy);
            record->argmax = malloc((size_t)(n_argmax ? n_argmax : 1) * sizeof *record->argmax);
            ok = record->is_greedy && record->argmax;
            for (int i = 0; ok && i < n_greedy; i++)
                record->is_greedy[i] = greedy[i] != 0;
            for (int i = 0; ok && i < n_argmax; i++)
                record->argmax[i] = (int)argmax[i];
        }
        free(greedy);
        free(argmax);
    } else {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(root, "text");
        const cJSON *exec = cJSON_GetObjectItemCaseSensitive(root, "exec");
        ok = cJSON_IsString(text) && (record->text = strdup(text->valuestring)) != NULL;
        if (ok && cJSON_IsString(exec))
            record->exec_result = !strcmp(exec->valuestring, "passed")   ? QT_EXEC_PASSED
                                  : !strcmp(exec->valuestring, "not_run") ? QT_EXEC_NOT_RUN
                                                                          : QT_EXEC_FAILED;
    }
    cJSON_Delete(root);
    if (!ok) {
        qh_doc_record_clear(record);
        return qe_fail(err, QE_EFORMAT, "stored response has missing or mismatched fields: %.60s", json);
    }
    return QE_OK;
}

qt_response qh_doc_record_response(const qh_doc_record *record)
{
    qt_response response = {
        .loglikelihoods = record->loglikelihoods,
        .is_greedy = record->is_greedy,
        .n_loglikelihoods = record->n_choices,
        .generated_text = record->text,
        .exec_result = record->exec_result,
        .was_truncated = record->was_truncated,
    };
    return response;
}
