/* qeval requests — writes the exact requests a task makes, one JSON line each, without a model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_prompt.h"
#include "cli.h"
#include "task.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: qeval requests --task T [--limit N] [--num-fewshot K] [--subjects a,b] [--seed S]\n"
            "                      [--data-dir D] [--tasks-dir D] [--skip-bad-rows] [--chat-template T]\n"
            "  T is a task name (tasks/T.json) or a path to a task file. Writes one JSON line per request:\n"
            "  {\"task\",\"doc_id\",\"type\",\"context\",\"continuations\"|\"stop\",\"max_new_tokens\"}\n"
            "  --chat-template T   none (default) or a family to put each request in, as lm-eval's\n"
            "                      --apply_chat_template does: " QE_CHAT_FAMILY_NAMES "\n"
            "                      (auto, the model's own, needs a model: qeval run)\n");
}

const char *qh_tasks_dir(const char *option)
{
    if (option && *option)
        return option;
    const char *env = getenv("QEVAL_TASKS");
    return env && *env ? env : QEVAL_SOURCE_DIR "/tasks";
}

static int parse_int(const char *command, const char *flag, const char *value, long min, long *out)
{
    char *end;
    *out = value ? strtol(value, &end, 10) : 0;
    if (!value || *end || *out < min)
        return qh_usage_error(command, "%s needs an integer >= %ld", flag, min);
    return QH_EXIT_OK;
}

int qh_cmd_requests(int argc, char **argv)
{
    qt_task_options options;
    qt_task_options_default(&options);
    const char *task_name = NULL, *tasks_dir = NULL;
    qh_chat chat = {0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n;
        int rc = QH_EXIT_OK;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return QH_EXIT_OK;
        } else if (!strcmp(a, "--task")) {
            task_name = v, i++;
        } else if (!strcmp(a, "--limit")) {
            rc = parse_int("requests", a, v, 0, &n), options.limit = (int)n, i++;
        } else if (!strcmp(a, "--num-fewshot")) {
            rc = parse_int("requests", a, v, 0, &n), options.num_fewshot = (int)n, i++;
        } else if (!strcmp(a, "--seed")) {
            rc = parse_int("requests", a, v, 0, &n), options.seed = n, i++;
        } else if (!strcmp(a, "--subjects")) {
            options.subsets = v, i++;
        } else if (!strcmp(a, "--data-dir")) {
            options.data_dir = v, i++;
        } else if (!strcmp(a, "--tasks-dir")) {
            tasks_dir = v, i++;
        } else if (!strcmp(a, "--skip-bad-rows")) {
            options.skip_bad_rows = true;
        } else if (!strcmp(a, "--chat-template")) {
            qe_error chat_err;
            if (qh_chat_parse(v, &chat, &chat_err) != QE_OK)
                return qh_usage_error("requests", "--chat-template: %s", chat_err.msg);
            if (chat.mode == QH_CHAT_AUTO)
                return qh_usage_error("requests", "--chat-template auto uses a model's own template and requests "
                                      "has no model; name a family: " QE_CHAT_FAMILY_NAMES);
            i++;
        } else {
            usage(stderr);
            return qh_usage_error("requests", "unknown option '%s'", a);
        }
        if (rc != QH_EXIT_OK)
            return rc;
        if (i >= argc)
            return qh_usage_error("requests", "%s needs a value", a);
    }
    if (!task_name) {
        usage(stderr);
        return qh_usage_error("requests", "--task is required");
    }
    qe_error err = {0};
    qt_task *task = NULL;
    if (qt_task_load(task_name, qh_tasks_dir(tasks_dir), &options, &task, &err) != QE_OK)
        return qh_report_error(&err);
    int status = QH_EXIT_OK;
    qt_chat_renderer renderer;
    const qt_chat_renderer *chat_renderer = qh_chat_renderer(&chat, &renderer);
    for (int i = 0; i < qt_task_n_docs(task); i++) {
        qt_request request;
        if (qt_task_build_chat_request(task, i, chat_renderer, &request, &err) != QE_OK ||
            qt_request_write_json(&request, stdout, &err) != QE_OK) {
            qt_request_clear(&request);
            status = qh_report_error(&err);
            break;
        }
        qt_request_clear(&request);
    }
    if (qt_task_n_bad_rows(task))
        fprintf(stderr, "qeval: skipped %d bad rows (first: %s)\n", qt_task_n_bad_rows(task), qt_task_first_bad_row(task));
    qt_task_free(task);
    if (fflush(stdout) != 0 && status == QH_EXIT_OK) {
        qe_fail(&err, QE_EIO, "writing requests failed");
        status = qh_report_error(&err);
    }
    return status;
}
