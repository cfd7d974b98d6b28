/* The code-task hook of the run: the task builds prompt + completion + test + check(...), the
 * sandbox runs it (see sandbox.h, docs/sandbox.md) and its verdict becomes the record's
 * exec_result. The sandbox is opened per call: its probe costs one tiny Python start, small
 * beside generating the completion, and it keeps the hook free of shared state. */
#include "run_score.h"

#include <stdio.h>
#include <stdlib.h>

#include "sandbox.h"

static qe_status open_sandbox(const qh_run_options *options, qh_sandbox **sb, qe_error *err)
{
    qh_sandbox_config cfg;
    qh_sandbox_config_default(&cfg);
    if (options->exec_timeout_s > 0)
        cfg.timeout_s = options->exec_timeout_s;
    return qh_sandbox_open(&cfg, sb, err);
}

qe_status qh_execute_if_code(const qt_task *task, int doc_index, qh_doc_record *record,
                             const qh_run_options *options, qe_error *err)
{
    if (!qt_task_is_code(task))
        return QE_OK;
    char *program = NULL;
    qh_sandbox *sb = NULL;
    qh_exec_result res;
    qe_status rc = qt_task_exec_program(task, doc_index, record->text ? record->text : "", &program, err);
    if (rc == QE_OK)
        rc = open_sandbox(options, &sb, err);
    if (rc == QE_OK)
        rc = qh_sandbox_run_source(sb, program, &res, err);
    if (rc == QE_OK)
        record->exec_result = res.outcome == QH_OUTCOME_PASSED ? QT_EXEC_PASSED : QT_EXEC_FAILED;
    qh_sandbox_free(sb);
    free(program);
    return rc;
}

void qh_sandbox_settings_json(const qh_run_options *options, char *json, size_t json_size)
{
    qh_sandbox *sb = NULL;
    qe_error err = {0};
    if (open_sandbox(options, &sb, &err) != QE_OK) {
        snprintf(json, json_size, "{\"exec_timeout_s\":%g,\"sandbox_error\":\"unavailable\"}", options->exec_timeout_s);
        return;
    }
    const qh_sandbox_limits *lim = qh_sandbox_limits_of(sb);
    snprintf(json, json_size,
             "{\"exec_timeout_s\":%g,\"cpu_s\":%ld,\"memory_bytes\":%llu,\"fsize_bytes\":%llu,\"nofile\":%ld,"
             "\"nproc\":%ld,\"isolation\":\"%s\",\"network_isolated\":%s,\"pid_isolated\":%s,\"fs_isolation\":\"%s\"}",
             lim->timeout_s, lim->cpu_s, lim->memory_bytes, lim->fsize_bytes, lim->nofile, lim->nproc,
             qh_isolation_name(lim->mode), lim->is_network_isolated ? "true" : "false",
             lim->is_pid_isolated ? "true" : "false", lim->fs_isolation);
    qh_sandbox_free(sb);
}
