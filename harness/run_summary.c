#include "run_summary.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* A row is a headline when it is a whole task (not an MMLU subject or category). */
static bool is_headline(const qh_task_result_row *row, const char *const *tasks, size_t n_tasks)
{
    for (size_t i = 0; i < n_tasks; i++)
        if (!strcmp(row->task, tasks[i]))
            return true;
    return false;
}

void qh_run_chat_template(const qh_run *run, char *out, size_t cap)
{
    out[0] = '\0';
    cJSON *options = run->options_json ? cJSON_Parse(run->options_json) : NULL;
    const cJSON *asked = cJSON_GetObjectItemCaseSensitive(options, "chat_template");
    const cJSON *family = cJSON_GetObjectItemCaseSensitive(options, "chat_template_family");
    if (cJSON_IsString(asked) && cJSON_IsString(family) && strcmp(asked->valuestring, family->valuestring))
        snprintf(out, cap, "%s (%s)", asked->valuestring, family->valuestring);
    else if (cJSON_IsString(family))
        snprintf(out, cap, "%s", family->valuestring);
    cJSON_Delete(options);
}

qe_status qh_print_run_summary(qh_store *store, int64_t run_id, bool as_json, FILE *out, qe_error *err)
{
    qh_run run = {0};
    qh_variant_row *variants = NULL;
    qh_task_result_row *results = NULL;
    size_t n_variants = 0, n_results = 0;
    qe_status rc = qh_store_get_run(store, run_id, &run, err);
    if (rc == QE_OK)
        rc = qh_store_get_variants(store, run_id, &variants, &n_variants, err);
    if (rc == QE_OK)
        rc = qh_store_get_task_results(store, run_id, &results, &n_results, err);
    /* The tasks of the run, in the order they ran, from the stored task list. */
    const char *task_names[64];
    size_t n_tasks = 0;
    cJSON *tasks = rc == QE_OK && run.tasks_json ? cJSON_Parse(run.tasks_json) : NULL;
    const cJSON *entry;
    cJSON_ArrayForEach(entry, tasks) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(entry, "task");
        if (cJSON_IsString(name) && n_tasks < 64)
            task_names[n_tasks++] = name->valuestring;
    }
    char chat_template[64] = "";
    if (rc == QE_OK)
        qh_run_chat_template(&run, chat_template, sizeof chat_template);
    if (rc == QE_OK && as_json) {
        cJSON *root = cJSON_CreateObject();
        cJSON_AddNumberToObject(root, "run_id", (double)run_id);
        cJSON_AddStringToObject(root, "status", qh_run_status_name(run.status));
        cJSON_AddStringToObject(root, "model", run.model_path ? run.model_path : "");
        if (chat_template[0])
            cJSON_AddStringToObject(root, "chat_template", chat_template);
        cJSON *vs = cJSON_AddObjectToObject(root, "variants");
        for (size_t v = 0; v < n_variants; v++) {
            cJSON *vo = cJSON_AddObjectToObject(vs, variants[v].variant);
            cJSON_AddNumberToObject(vo, "footprint_bytes", (double)variants[v].footprint_bytes);
            cJSON_AddNumberToObject(vo, "hf_footprint_bytes", (double)variants[v].hf_footprint_bytes);
            cJSON_AddNumberToObject(vo, "estimate_bytes", (double)variants[v].estimate_bytes);
            cJSON_AddNumberToObject(vo, "peak_rss_bytes", (double)variants[v].peak_rss_bytes);
            cJSON *scores = cJSON_AddObjectToObject(vo, "results");
            for (size_t r = 0; r < n_results; r++) {
                const qh_task_result_row *row = &results[r];
                if (strcmp(row->variant, variants[v].variant) || !is_headline(row, task_names, n_tasks))
                    continue;
                char key[256];
                snprintf(key, sizeof key, "%s/%s", row->task, row->metric);
                cJSON *m = cJSON_AddObjectToObject(scores, key);
                cJSON_AddNumberToObject(m, "value", row->value);
                if (!isnan(row->std_error))
                    cJSON_AddNumberToObject(m, "stderr", row->std_error);
                cJSON_AddNumberToObject(m, "n", (double)row->n);
                cJSON_AddNumberToObject(m, "n_truncated", (double)row->n_truncated);
            }
        }
        char *text = cJSON_Print(root);
        if (text)
            fprintf(out, "%s\n", text);
        cJSON_free(text);
        cJSON_Delete(root);
    } else if (rc == QE_OK) {
        if (chat_template[0])
            fprintf(out, "chat template: %s\n", chat_template);
        fprintf(out, "%-8s %12s  %-34s %8s %8s %6s\n", "variant", "footprint", "task/metric", "value", "stderr", "n");
        for (size_t v = 0; v < n_variants; v++) {
            bool first = true;
            for (size_t r = 0; r < n_results; r++) {
                const qh_task_result_row *row = &results[r];
                if (strcmp(row->variant, variants[v].variant) || !is_headline(row, task_names, n_tasks))
                    continue;
                char name[256], footprint[32] = "";
                snprintf(name, sizeof name, "%s/%s", row->task, row->metric);
                if (first)
                    snprintf(footprint, sizeof footprint, "%.1f MiB", variants[v].footprint_bytes / 1048576.0);
                char std_error[32] = "n/a"; /* one item has no standard error */
                if (!isnan(row->std_error))
                    snprintf(std_error, sizeof std_error, "%.4f", row->std_error);
                fprintf(out, "%-8s %12s  %-34s %8.4f %8s %6lld%s\n", first ? variants[v].variant : "", footprint,
                        name, row->value, std_error, (long long)row->n,
                        row->n_truncated ? "  (truncated contexts)" : "");
                first = false;
            }
        }
    }
    cJSON_Delete(tasks);
    qh_task_result_rows_free(results, n_results);
    qh_variant_rows_free(variants, n_variants);
    qh_run_free(&run);
    return rc;
}
