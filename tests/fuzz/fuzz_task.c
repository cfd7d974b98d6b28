/* libFuzzer: arbitrary bytes as a task file over a small fixed dataset; a task that loads has
 * every request built and scored with made-up responses. Never crash, leak or overrun. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "task.h"

static char dir[64], task_path[96];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/qeval_fuzz_task_%d", (int)getpid());
    mkdir(dir, 0777);
    char csv[128];
    snprintf(csv, sizeof csv, "%s/x.csv", dir);
    FILE *f = fopen(csv, "wb");
    if (f) {
        fputs("q1,a1,A\n\"q 2, quoted\",a2,B\nq3,\"#### 1,234.\",A\n", f);
        fclose(f);
    }
    snprintf(task_path, sizeof task_path, "%s/t.json", dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!dir[0])
        setup();
    FILE *f = fopen(task_path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    qt_task_options o;
    qt_task_options_default(&o);
    o.data_dir = dir;
    qt_task *task = NULL;
    qe_error err;
    if (qt_task_load(task_path, NULL, &o, &task, &err) != QE_OK)
        return 0;
    qt_scores *scores = NULL;
    if (qt_scores_create(task, &scores, &err) == QE_OK) {
        for (int i = 0; i < qt_task_n_docs(task); i++) {
            qt_request req;
            if (qt_task_build_request(task, i, &req, &err) != QE_OK)
                continue;
            double lls[8] = {-1, -2, -0.5, -3, -1, -1, -4, -2};
            qt_response r = {.loglikelihoods = lls, .n_loglikelihoods = req.n_continuations < 8 ? req.n_continuations : 8,
                             .generated_text = "The answer is $1,234.\n#### 1,234", .exec_result = QT_EXEC_PASSED};
            qt_scores_add(scores, i, &r, NULL, NULL, &err);
            qt_request_clear(&req);
        }
        qt_metric_row *rows = NULL;
        int n_rows;
        if (qt_scores_aggregate(scores, &rows, &n_rows, &err) == QE_OK)
            free(rows);
    }
    qt_scores_free(scores);
    qt_task_free(task);
    return 0;
}
