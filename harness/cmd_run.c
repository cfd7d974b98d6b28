/* qeval run — the variant x task matrix for one model into the results store. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_prompt.h"
#include "cli.h"
#include "model_cache.h"
#include "run.h"
#include "run_summary.h"

#define QH_MAX_LIST 64

static const char *const default_variants[] = {"fp32", "bf16", "int8", "nf4"};
static const char *const default_tasks[] = {"mmlu", "gsm8k", "humaneval", "truthfulqa_mc1", "truthfulqa_mc2"};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: qeval run MODEL [options]\n"
            "  --variants LIST     fp32,bf16,int8,nf4 (default: all four; also nf4-nodq)\n"
            "  --tasks LIST        mmlu,gsm8k,humaneval,truthfulqa_mc1,truthfulqa_mc2 (default: all)\n"
            "  --limit N           documents per (sub)task (default: all)\n"
            "  --num-fewshot K     override each task's few-shot count\n"
            "  --subjects LIST     MMLU subjects to run (default: all 57)\n"
            "  --seed S            few-shot sampler seed (default: each task's, 1234)\n"
            "  --chat-template T   none: plain prompts, as lm-eval without --apply_chat_template (default);\n"
            "                      auto: the model's own template; or a family: " QE_CHAT_FAMILY_NAMES "\n"
            "  --db FILE           results file (default: $QEVAL_DB, else ./results.db)\n"
            "  --data-dir DIR      benchmark files (default: $QEVAL_DATA)\n"
            "  --tasks-dir DIR     task definitions (default: $QEVAL_TASKS, else the built-in ones)\n"
            "  --device cpu|cuda|cuda:N   (default: cuda when built with CUDA and a GPU is present)\n"
            "  --threads N         CPU threads (default: all cores)\n"
            "  --batch-size N      documents per engine call and stored block (default 16): scored, or\n"
            "                      generated together (as many at once as fit in memory); the results\n"
            "                      do not depend on it, a stop loses at most one block\n"
            "  --shard I/N         run the I-th of N deterministic shares of the documents, of similar work\n"
            "  --resume RUN_ID     continue an interrupted run (the same command line also resumes)\n"
            "  --no-cache          recompute requests the store has already answered\n"
            "  --skip-complete     exit 0 at once when the results file holds a complete run of this\n"
            "                      command line (a resubmitted job array redoes nothing)\n"
            "  --exec-timeout S    HumanEval: wall-clock seconds per program (default 10)\n"
            "  --skip-bad-rows     count malformed data rows instead of stopping\n"
            "  --quiet             no progress lines\n"
            "  --json              print a JSON summary on stdout at the end\n"
            "exit codes: 0 ok, 1 error, 2 usage, 3 interrupted (resume with --resume RUN_ID)\n");
}

/* Splits a comma-separated list in place into items[]; returns the count or -1 when too many. */
static int split_list(char *list, const char **items, int max_items)
{
    int n = 0;
    for (char *save = NULL, *item = strtok_r(list, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        if (n == max_items)
            return -1;
        items[n++] = item;
    }
    return n;
}

/* The command line as a JSON array, without --resume and its value: the run's identity. */
static char *command_line_json(int argc, char **argv)
{
    cJSON *array = cJSON_CreateArray();
    cJSON_AddItemToArray(array, cJSON_CreateString("run"));
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--resume") || !strcmp(argv[i], "--batch-size")) { /* not what is computed */
            i++;
            continue;
        }
        if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "--json") || !strcmp(argv[i], "--skip-complete"))
            continue;
        cJSON_AddItemToArray(array, cJSON_CreateString(argv[i]));
    }
    char *json = cJSON_PrintUnformatted(array);
    cJSON_Delete(array);
    return json;
}

static char *options_json(const qh_run_options *o)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(root, "limit", o->limit);
    cJSON_AddNumberToObject(root, "num_fewshot", o->num_fewshot);
    if (o->subjects)
        cJSON_AddStringToObject(root, "subjects", o->subjects);
    cJSON_AddNumberToObject(root, "seed", (double)o->seed);
    cJSON_AddBoolToObject(root, "skip_bad_rows", o->skip_bad_rows);
    if (o->chat_family) {
        cJSON_AddStringToObject(root, "chat_template", o->chat_template);
        cJSON_AddStringToObject(root, "chat_template_family", o->chat_family);
    }
    cJSON_AddStringToObject(root, "device", o->device == QE_DEVICE_CUDA ? "cuda" : "cpu");
    cJSON_AddNumberToObject(root, "threads", o->n_threads);
    cJSON_AddNumberToObject(root, "batch_size", o->batch_docs);
    char shard[32];
    snprintf(shard, sizeof shard, "%d/%d", o->shard_index, o->shard_count);
    cJSON_AddStringToObject(root, "shard", shard);
    cJSON_AddBoolToObject(root, "cache", o->use_cache);
    cJSON_AddNumberToObject(root, "exec_timeout_s", o->exec_timeout_s);
    cJSON *variants = cJSON_AddArrayToObject(root, "variants"), *tasks = cJSON_AddArrayToObject(root, "tasks");
    for (int i = 0; i < o->n_variants; i++)
        cJSON_AddItemToArray(variants, cJSON_CreateString(o->variants[i]));
    for (int i = 0; i < o->n_tasks; i++)
        cJSON_AddItemToArray(tasks, cJSON_CreateString(o->tasks[i]));
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return json;
}

/* The newest run with this exact command line that is unfinished (or, is_complete, complete), or 0. */
static int64_t find_run(qh_store *store, const char *command_line, bool is_complete)
{
    qh_run *runs = NULL;
    size_t n = 0;
    int64_t found = 0;
    if (qh_store_list_runs(store, &runs, &n, NULL) != QE_OK)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((runs[i].status == QH_RUN_COMPLETE) == is_complete && runs[i].command_line &&
            !strcmp(runs[i].command_line, command_line))
            found = runs[i].id;
    qh_runs_free(runs, n);
    return found;
}

int qh_cmd_run(int argc, char **argv)
{
    qh_run_options o = {
        .num_fewshot = -1, .seed = -1, .shard_count = 1, .use_cache = true, .exec_timeout_s = 10,
        .device = qe_default_device(),
    };
    const char *variants[QH_MAX_LIST], *tasks[QH_MAX_LIST], *db_path = qh_default_db_path();
    int64_t resume_run_id = 0;
    bool want_json = false, skip_complete = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        bool takes_value = true;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return QH_EXIT_OK;
        } else if (a[0] != '-') {
            if (o.model)
                return qh_usage_error("run", "one model only (got '%s' and '%s')", o.model, a);
            o.model = a;
            takes_value = false;
        } else if (!strcmp(a, "--quiet")) {
            o.is_quiet = true;
            takes_value = false;
        } else if (!strcmp(a, "--json")) {
            want_json = true;
            takes_value = false;
        } else if (!strcmp(a, "--no-cache")) {
            o.use_cache = false;
            takes_value = false;
        } else if (!strcmp(a, "--skip-complete")) {
            skip_complete = true;
            takes_value = false;
        } else if (!strcmp(a, "--skip-bad-rows")) {
            o.skip_bad_rows = true;
            takes_value = false;
        } else if (!value) {
            return qh_usage_error("run", "%s needs a value", a);
        } else if (!strcmp(a, "--variants")) {
            if ((o.n_variants = split_list(argv[i + 1], variants, QH_MAX_LIST)) <= 0)
                return qh_usage_error("run", "--variants: give 1 to %d names", QH_MAX_LIST);
        } else if (!strcmp(a, "--tasks")) {
            if ((o.n_tasks = split_list(argv[i + 1], tasks, QH_MAX_LIST)) <= 0)
                return qh_usage_error("run", "--tasks: give 1 to %d names", QH_MAX_LIST);
        } else if (!strcmp(a, "--limit")) {
            o.limit = atoi(value);
            if (o.limit < 0)
                return qh_usage_error("run", "--limit must be >= 0");
        } else if (!strcmp(a, "--num-fewshot")) {
            o.num_fewshot = atoi(value);
        } else if (!strcmp(a, "--subjects")) {
            o.subjects = value;
        } else if (!strcmp(a, "--seed")) {
            o.seed = atoll(value);
        } else if (!strcmp(a, "--chat-template")) {
            qh_chat chat;
            qe_error chat_err;
            if (qh_chat_parse(value, &chat, &chat_err) != QE_OK)
                return qh_usage_error("run", "--chat-template: %s", chat_err.msg);
            o.chat_template = value;
        } else if (!strcmp(a, "--db")) {
            db_path = value;
        } else if (!strcmp(a, "--data-dir")) {
            o.data_dir = value;
        } else if (!strcmp(a, "--tasks-dir")) {
            o.tasks_dir = value;
        } else if (!strcmp(a, "--threads")) {
            o.n_threads = atoi(value);
        } else if (!strcmp(a, "--batch-size")) {
            o.batch_docs = atoi(value);
            if (o.batch_docs < 1)
                return qh_usage_error("run", "--batch-size must be >= 1, not '%s'", value);
        } else if (!strcmp(a, "--device")) {
            if (!qh_parse_device(value, &o.device, &o.device_index))
                return qh_usage_error("run", "--device must be cpu, cuda or cuda:N, not '%s'", value);
        } else if (!strcmp(a, "--shard")) {
            if (sscanf(value, "%d/%d", &o.shard_index, &o.shard_count) != 2 || o.shard_count < 1 ||
                o.shard_index < 0 || o.shard_index >= o.shard_count)
                return qh_usage_error("run", "--shard wants I/N with 0 <= I < N, not '%s'", value);
        } else if (!strcmp(a, "--resume")) {
            resume_run_id = atoll(value);
            if (resume_run_id <= 0)
                return qh_usage_error("run", "--resume wants a run id, not '%s'", value);
        } else if (!strcmp(a, "--exec-timeout")) {
            o.exec_timeout_s = atof(value);
            if (o.exec_timeout_s <= 0)
                return qh_usage_error("run", "--exec-timeout must be positive");
        } else {
            return qh_usage_error("run", "unknown option '%s' (see qeval run --help)", a);
        }
        i += takes_value;
    }
    if (!o.model)
        return qh_usage_error("run", "no model given (see qeval run --help)");
    if (!o.n_variants) {
        o.n_variants = 4;
        memcpy(variants, default_variants, sizeof default_variants);
    }
    if (!o.n_tasks) {
        o.n_tasks = 5;
        memcpy(tasks, default_tasks, sizeof default_tasks);
    }
    o.variants = variants;
    o.tasks = tasks;
    o.tasks_dir = qh_tasks_dir(o.tasks_dir);
    for (int v = 0; v < o.n_variants; v++) {
        qe_variant parsed;
        qe_error err;
        if (qe_variant_parse(variants[v], &parsed, &err) != QE_OK)
            return qh_report_error(&err);
    }
    char *resolved_model = NULL;
    qe_error err = {0};
    if (qh_model_locate(o.model, &resolved_model, &err) != QE_OK)
        return qh_report_error(&err);
    o.model = resolved_model;
    qh_chat chat;
    if (qh_chat_parse(o.chat_template, &chat, &err) != QE_OK ||
        qh_chat_family(&chat, o.model, &o.chat_family, &err) != QE_OK) {
        free(resolved_model);
        return qh_report_error(&err);
    }
    char *command_line = command_line_json(argc, argv);
    char *stored_options = options_json(&o);
    o.command_line = command_line;
    o.options_json = stored_options;
    qh_store *store = NULL;
    int64_t run_id = 0;
    qe_status rc = qh_store_open(db_path, NULL, &store, &err);
    int64_t complete_run_id = 0;
    if (rc == QE_OK && resume_run_id <= 0 && skip_complete &&
        (complete_run_id = find_run(store, command_line, true)) > 0) {
        if (!o.is_quiet)
            fprintf(stderr, "qeval: run %lld in %s is complete; nothing to do (--skip-complete)\n",
                    (long long)complete_run_id, db_path);
        qh_store_close(store);
        free(command_line);
        free(stored_options);
        free(resolved_model);
        return QH_EXIT_OK;
    }
    if (rc == QE_OK && resume_run_id <= 0)
        resume_run_id = find_run(store, command_line, false);
    if (rc == QE_OK && resume_run_id > 0 && !o.is_quiet)
        fprintf(stderr, "qeval: resuming run %lld in %s\n", (long long)resume_run_id, db_path);
    if (rc == QE_OK)
        rc = qh_run_matrix(store, &o, resume_run_id, &run_id, &err);
    int exit_code = QH_EXIT_OK;
    if (rc != QE_OK) {
        exit_code = qh_report_error(&err);
        if (run_id > 0)
            fprintf(stderr, "qeval: what was done is stored as run %lld in %s; continue with "
                            "qeval run --resume %lld --db %s\n",
                    (long long)run_id, db_path, (long long)run_id, db_path);
    } else {
        rc = qh_print_run_summary(store, run_id, want_json, stdout, &err);
        if (rc != QE_OK)
            exit_code = qh_report_error(&err);
        else if (!want_json)
            printf("\nresults: run %lld in %s\nreport:  qeval report --db %s --run %lld --format html -o report.html\n",
                   (long long)run_id, db_path, db_path, (long long)run_id);
    }
    qh_store_close(store);
    free(command_line);
    free(stored_options);
    free(resolved_model);
    return exit_code;
}
