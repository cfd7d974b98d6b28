/* The code-task hook of the run: until the sandbox lands, code tasks are refused rather than
 * scored wrongly. */
#include "run_score.h"

#include <stdio.h>

qe_status qh_execute_if_code(const qt_task *task, int doc_index, qh_doc_record *record,
                             const qh_run_options *options, qe_error *err)
{
    if (!qt_task_is_code(task))
        return QE_OK;
    return qe_fail(err, QE_EUNSUPPORTED, "%s: executing generated code needs the sandbox, not built yet",
                   qt_task_name(task));
}

void qh_sandbox_settings_json(const qh_run_options *options, char *json, size_t json_size)
{
    snprintf(json, json_size, "{\"exec_timeout_s\":%g}", options->exec_timeout_s);
}
