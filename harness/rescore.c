#include "rescore.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "run_record.h"
#include "run_score.h"
#include "task.h"

/* The task options the run loaded its tasks with, from its options_json. */
static qe_status run_task_options(const qh_run *run, const char *data_dir, qt_task_options *topts, cJSON **options,
                                  qe_error *err)
{
    qt_task_options_default(topts);
    topts->data_dir = data_dir;
    topts->subsets_where_defined = true;
    *options = run->options_json ? cJSON_Parse(run->options_json) : NULL;
    if (!cJSON_IsObject(*options))
        return qe_fail(err, QE_EFORMAT, "run %lld: options_json is not a JSON object", (long long)run->id);
    const cJSON *limit = cJSON_GetObjectItemCaseSensitive(*options, "limit");
    const cJSON *shots = cJSON_GetObjectItemCaseSensitive(*options, "num_fewshot");
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(*options, "seed");
    const cJSON *subjects = cJSON_GetObjectItemCaseSensitive(*options, "subjects");
    const cJSON *skip = cJSON_GetObjectItemCaseSensitive(*options, "skip_bad_rows");
    if (!cJSON_IsNumber(limit) || !cJSON_IsNumber(shots) || !cJSON_IsNumber(seed))
        return qe_fail(err, QE_EFORMAT, "run %lld: options_json lacks limit, num_fewshot or seed", (long long)run->id);
    if (!(fabs(seed->valuedouble) < 9e18)) /* converting past int64's range is undefined */
        return qe_fail(err, QE_EFORMAT, "run %lld: options_json's seed %g is not a 64-bit integer", (long long)run->id,
                       seed->valuedouble);
    topts->limit = limit->valueint;
    topts->num_fewshot = shots->valueint;
    topts->seed = (int64_t)seed->valuedouble;
    topts->subsets = cJSON_IsString(subjects) ? subjects->valuestring : NULL;
    topts->skip_bad_rows = cJSON_IsTrue(skip);
    return QE_OK;
}

/* Loads the task as the run did and checks it reads the same documents. */
static qe_status load_same_task(const qh_run *run, const cJSON *entry, const char *tasks_dir,
                                const qt_task_options *topts, FILE *log, qt_task **task, qe_error *err)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(entry, "task");
    const cJSON *n_docs = cJSON_GetObjectItemCaseSensitive(entry, "n_docs");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(entry, "data_sha256");
    const cJSON *definition = cJSON_GetObjectItemCaseSensitive(entry, "definition_sha256");
    if (!cJSON_IsString(name) || !cJSON_IsNumber(n_docs))
        return qe_fail(err, QE_EFORMAT, "run %lld: tasks_json has an entry without task or n_docs", (long long)run->id);
    qe_status rc = qt_task_load(name->valuestring, tasks_dir, topts, task, err);
    if (rc != QE_OK)
        return rc;
    if (qt_task_n_docs(*task) != n_docs->valueint)
        return qe_fail(err, QE_EFORMAT, "%s: %d documents now, %d when run %lld ran: not the same data",
                       name->valuestring, qt_task_n_docs(*task), n_docs->valueint, (long long)run->id);
    char hash[65];
    if (cJSON_IsString(data)) {
        if ((rc = qt_task_data_sha256(*task, hash, err)) != QE_OK)
            return rc;
        if (strcmp(hash, data->valuestring))
            return qe_fail(err, QE_EFORMAT, "%s: the data files differ from those run %lld read (sha256 %.12s..., "
                           "then %.12s...)", name->valuestring, (long long)run->id, hash, data->valuestring);
    }
    if (log && cJSON_IsString(definition) && qt_task_definition_sha256(*task, hash) == QE_OK &&
        strcmp(hash, definition->valuestring))
        fprintf(log, "%s: the task definition changed since run %lld; scoring with the current one\n",
                name->valuestring, (long long)run->id);
    return QE_OK;
}

/* Before schema v4 a task with subsets (MMLU) stored its samples under its own name, doc_id
 * counting over the documents the run selected. Moves them to the key runs use now: the subtask
 * and the index in its split (qt_task_sample_key), so they join with other runs' samples. */
static qe_status rekey_pre_v4_samples(qh_store *store, int64_t run_id, const char *variant, const qt_task *task,
                                      FILE *log, qe_error *err)
{
    const char *name = qt_task_name(task);
    qh_sample_row *rows = NULL;
    size_t n = 0, n_moved = 0;
    qe_status rc = qh_store_get_samples(store, run_id, variant, name, &rows, &n, err);
    for (size_t i = 0; rc == QE_OK && i < n; i++) {
        int doc_index, doc_id;
        const char *subtask;
        if (qt_task_find_sample_doc(task, rows[i].task, rows[i].doc_id, &doc_index))
            continue; /* a task without subsets: already its key */
        if (rows[i].doc_id < 0 || rows[i].doc_id >= qt_task_n_docs(task)) {
            rc = qe_fail(err, QE_EFORMAT, "run %lld: sample %s/%s doc %lld is outside the task's %d documents",
                         (long long)run_id, variant, name, (long long)rows[i].doc_id, qt_task_n_docs(task));
            break;
        }
        if ((rc = qt_task_sample_key(task, (int)rows[i].doc_id, &subtask, &doc_id, err)) != QE_OK)
            break;
        char *owned = strdup(subtask);
        if (!owned) {
            rc = qe_fail(err, QE_ENOMEM, "out of memory");
            break;
        }
        free((char *)rows[i].task);
        rows[i].task = owned;
        rows[i].doc_id = doc_id;
        n_moved++;
    }
    if (rc == QE_OK && n_moved > 0)
        rc = qh_store_delete_samples(store, run_id, variant, name, err);
    if (rc == QE_OK && n_moved > 0)
        rc = qh_store_put_samples(store, rows, n, err);
    if (rc == QE_OK && n_moved > 0 && log)
        fprintf(log, "%s/%s: %zu samples stored before schema v4 now keyed by subtask and index in its split\n",
                variant, name, n_moved);
    qh_sample_rows_free(rows, n);
    return rc;
}

/* Recomputes and stores the filtered answer and outcome of every stored sample of (variant, task). */
static qe_status rescore_samples(qh_store *store, int64_t run_id, const char *variant, qt_task *task,
                                 qe_error *err)
{
    qh_sample_row *rows = NULL;
    size_t n_rows = 0, n = 0;
    qt_scores *scores = NULL;
    qe_status rc = qh_task_samples(store, run_id, variant, task, &rows, &n_rows, &n, err);
    if (rc == QE_OK)
        rc = qt_scores_create(task, &scores, err);
    for (size_t i = 0; rc == QE_OK && i < n; i++) {
        qh_doc_record record;
        int doc_index = 0;
        qt_task_find_sample_doc(task, rows[i].task, rows[i].doc_id, &doc_index); /* true: qh_task_samples kept it */
        rc = qh_doc_record_from_json(rows[i].response_json, qt_task_request_type(task), &record, err);
        if (rc != QE_OK) {
            qe_fail_context(err, "run %lld: sample %s/%s doc %lld", (long long)run_id, variant, rows[i].task,
                            (long long)rows[i].doc_id);
            break;
        }
        char *filtered = NULL, *outcome_json = NULL;
        rc = qh_sample_outcome(task, scores, doc_index, &record, &filtered, &outcome_json, err);
        qh_doc_record_clear(&record);
        /* the row owns its strings (qh_sample_rows_free frees them): swap the new ones in */
        free((char *)rows[i].filtered);
        free((char *)rows[i].outcome_json);
        rows[i].filtered = filtered;
        rows[i].outcome_json = outcome_json;
    }
    if (rc == QE_OK && n > 0)
        rc = qh_store_put_samples(store, rows, n, err);
    qt_scores_free(scores);
    qh_sample_rows_free(rows, n_rows);
    return rc;
}

qe_status qh_rescore_run(qh_store *store, int64_t run_id, const char *tasks_dir, const char *data_dir, FILE *log,
                         qe_error *err)
{
    qh_run run = {0};
    qh_variant_row *variants = NULL;
    size_t n_variants = 0;
    cJSON *options = NULL, *tasks_json = NULL;
    qt_task *tasks[64] = {0};
    int n_tasks = 0;
    qt_task_options topts;
    qe_status rc = qh_store_get_run(store, run_id, &run, err);
    if (rc == QE_OK)
        rc = qh_store_get_variants(store, run_id, &variants, &n_variants, err);
    if (rc == QE_OK)
        rc = run_task_options(&run, data_dir, &topts, &options, err);
    if (rc == QE_OK && !cJSON_IsArray(tasks_json = run.tasks_json ? cJSON_Parse(run.tasks_json) : NULL))
        rc = qe_fail(err, QE_EFORMAT, "run %lld: tasks_json is not a JSON array", (long long)run_id);
    /* every task loaded and checked before the first write */
    const cJSON *entry;
    cJSON_ArrayForEach(entry, tasks_json) {
        if (rc != QE_OK)
            break;
        if (n_tasks == 64) {
            rc = qe_fail(err, QE_EUNSUPPORTED, "run %lld: more than 64 tasks", (long long)run_id);
            break;
        }
        rc = load_same_task(&run, entry, tasks_dir, &topts, log, &tasks[n_tasks++], err);
    }
    /* One transaction: the run is rescored whole or left as it was. fp32 goes first (the
     * variants come largest first), so fidelity compares with its new answers. */
    if (rc == QE_OK)
        rc = qh_store_begin(store, err);
    for (size_t v = 0; rc == QE_OK && v < n_variants; v++)
        for (int t = 0; rc == QE_OK && t < n_tasks; t++) {
            rc = rekey_pre_v4_samples(store, run_id, variants[v].variant, tasks[t], log, err);
            if (rc == QE_OK)
                rc = rescore_samples(store, run_id, variants[v].variant, tasks[t], err);
            if (rc == QE_OK)
                rc = qh_score_task(store, run_id, variants[v].variant, tasks[t], NULL, 0, err);
        }
    if (rc == QE_OK)
        rc = qh_store_commit(store, err);
    else
        qh_store_rollback(store);
    for (int t = 0; t < n_tasks; t++)
        qt_task_free(tasks[t]);
    cJSON_Delete(tasks_json);
    cJSON_Delete(options);
    qh_variant_rows_free(variants, n_variants);
    qh_run_free(&run);
    return rc;
}
