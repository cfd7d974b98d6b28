/* The shard plan (harness/run_shard.h): documents dealt in task order to the least loaded
 * shard, work counted in loglikelihood requests, a generation 1 + max_gen_toks / 32. The
 * expected owners are worked out by hand below from the rule and the documents' choice counts
 * as the data files hold them (MMLU 4 each; GSM8K's 256-token generations weigh 9; the first
 * TruthfulQA MC2 questions of the published mc_task.json have 4, 8, 6, 6, 9, 8, 5, 13 targets). */
#include "check.h"
#include "run_shard.h"
#include "task.h"

static qt_task *load(const char *name, const char *data_dir, const char *subsets, int limit)
{
    qt_task_options o;
    qt_task_options_default(&o);
    o.data_dir = data_dir;
    o.subsets = subsets;
    o.limit = limit;
    qt_task *task = NULL;
    qe_error err = {0};
    if (qt_task_load(name, QEVAL_SOURCE_DIR "/tasks", &o, &task, &err) != QE_OK)
        fprintf(stderr, "%s\n", err.msg);
    return task;
}

/* The project's samples: MMLU abstract_algebra and anatomy (2 documents each), GSM8K docs 0-1,
 * three shards:
 *   mmlu d0 (4) -> 0 [4 0 0]; d1 (4) -> 1 [4 4 0]; d2 (4) -> 2 [4 4 4]; d3 (4) -> 0 [8 4 4]
 *   gsm8k d0 (9) -> 1 [8 13 4]; d1 (9) -> 2 [8 13 13]
 * (document count modulo 3 would give GSM8K's documents to shards 0 and 1: [17 13 4]). */
static void test_mixed_tasks(void)
{
    const char *samples = QEVAL_SOURCE_DIR "/datasets/samples";
    qt_task *tasks[2] = {load("mmlu", samples, "abstract_algebra,anatomy", 0), load("gsm8k", samples, NULL, 2)};
    CHECK(tasks[0] && tasks[1]);
    if (!tasks[0] || !tasks[1])
        return;
    qe_error err = {0};
    int n_requests = 0;
    CHECK_INT_EQ(QE_OK, qt_task_doc_n_requests(tasks[0], 3, &n_requests, &err));
    CHECK_INT_EQ(4, n_requests);
    CHECK_INT_EQ(QE_OK, qt_task_doc_n_requests(tasks[1], 0, &n_requests, &err));
    CHECK_INT_EQ(1, n_requests);
    CHECK_INT_EQ(256, qt_task_max_gen_toks(tasks[1]));
    CHECK_INT_EQ(0, qt_task_max_gen_toks(tasks[0]));
    CHECK_INT_EQ(QE_EINVAL, qt_task_doc_n_requests(tasks[0], 4, &n_requests, &err));
    CHECK_INT_EQ(9, qh_doc_work(QT_REQUEST_GENERATE_UNTIL, 1, 256));
    CHECK_INT_EQ(33, qh_doc_work(QT_REQUEST_GENERATE_UNTIL, 1, 1024));

    int **owners = NULL;
    int64_t work[3] = {0};
    CHECK_INT_EQ(QE_OK, qh_shard_plan(tasks, 2, 3, &owners, work, &err));
    if (owners) {
        static const int mmlu[] = {0, 1, 2, 0}, gsm8k[] = {1, 2};
        static const double expected_work[] = {8, 13, 13};
        CHECK_CLOSE(mmlu, owners[0], 4, 0);
        CHECK_CLOSE(gsm8k, owners[1], 2, 0);
        CHECK_CLOSE(expected_work, work, 3, 0);
    }
    qh_shard_plan_free(owners, 2);
    /* one shard owns everything */
    CHECK_INT_EQ(QE_OK, qh_shard_plan(tasks, 2, 1, &owners, work, &err));
    if (owners)
        CHECK_INT_EQ(0, owners[1][1]);
    CHECK_INT_EQ(16 + 18, work[0]);
    qh_shard_plan_free(owners, 2);
    CHECK_INT_EQ(QE_EINVAL, qh_shard_plan(tasks, 2, 0, &owners, NULL, &err));
    qt_task_free(tasks[0]);
    qt_task_free(tasks[1]);
}

/* TruthfulQA MC2, 8 documents of 4 8 6 6 9 8 5 13 requests, three shards:
 *   d0 -> 0 [4 0 0]; d1 -> 1 [4 8 0]; d2 -> 2 [4 8 6]; d3 -> 0 [10 8 6]; d4 -> 2 [10 8 15];
 *   d5 -> 1 [10 16 15]; d6 -> 0 [15 16 15]; d7 -> 0 (tie with 2, the lower index) [28 16 15]
 * (modulo 3: [15 30 14]). Most minus least is 13, at most the heaviest document. */
static void test_varying_choices(void)
{
    char data[1024];
    if (!check_shared_path(data, sizeof data, "datasets/truthfulqa/mc_task.json"))
        return;
    snprintf(data, sizeof data, "%s/datasets", check_shared_dir());
    qt_task *task = load("truthfulqa_mc2", data, NULL, 8);
    CHECK(task != NULL);
    if (!task)
        return;
    qe_error err = {0};
    int **owners = NULL;
    int64_t work[3] = {0};
    CHECK_INT_EQ(QE_OK, qh_shard_plan(&task, 1, 3, &owners, work, &err));
    if (owners) {
        static const int expected[] = {0, 1, 2, 0, 2, 1, 0, 0};
        static const double expected_work[] = {28, 16, 15};
        CHECK_CLOSE(expected, owners[0], 8, 0);
        CHECK_CLOSE(expected_work, work, 3, 0);
    }
    qh_shard_plan_free(owners, 1);
    qt_task_free(task);
}

int main(void)
{
    test_mixed_tasks();
    test_varying_choices();
    return check_summary();
}
