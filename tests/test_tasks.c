/* Task files: the MMLU prompt of abstract_algebra doc 0 written out by hand from lm-eval's
 * template and the CSV rows; every benchmark loads with its published record counts (and an MMLU
 * document names its subject and category rows); the worked
 * example tasks/examples/my_mcq.json; and broken task files fail naming the file and the field. */
#include <dirent.h>
#include <unistd.h>

#include "check.h"
#include "qd_table.h"
#include "task.h"

static char dir[] = "/tmp/qeval_tasks_XXXXXX";
static char data_dir[512];

static qt_task *load(const char *name, const char *subsets, int num_fewshot, qe_error *err)
{
    qt_task_options o;
    qt_task_options_default(&o);
    o.data_dir = data_dir;
    o.subsets = subsets;
    o.num_fewshot = num_fewshot;
    qt_task *task = NULL;
    qt_task_load(name, QEVAL_SOURCE_DIR "/tasks", &o, &task, err);
    return task;
}

static const char *abstract_algebra_0 =
    "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
    "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.\nA. 0\nB. 1\nC. 2\nD. 3\nAnswer: B\n\n"
    "Statement 1 | If aH is an element of a factor group, then |aH| divides |a|. Statement 2 | If H and K are "
    "subgroups of G then HK is a subgroup of G.\nA. True, True\nB. False, False\nC. True, False\nD. False, True\nAnswer: B\n\n"
    "Statement 1 | Every element of a group generates a cyclic subgroup of the group. Statement 2 | The symmetric "
    "group S_10 has 10 elements.\nA. True, True\nB. False, False\nC. True, False\nD. False, True\nAnswer: C\n\n"
    "Statement 1| Every function from a finite set onto itself must be one to one. Statement 2 | Every subgroup of an "
    "abelian group is abelian.\nA. True, True\nB. False, False\nC. True, False\nD. False, True\nAnswer: A\n\n"
    "Find the characteristic of the ring 2Z.\nA. 0\nB. 3\nC. 12\nD. 30\nAnswer: A\n\n"
    "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:";

static void test_shared(const char *shared)
{
    qe_error err = {0};
    snprintf(data_dir, sizeof data_dir, "%s/datasets", shared);
    qt_task *mmlu = load("mmlu", NULL, -1, &err);
    CHECK(mmlu != NULL);
    if (mmlu) {
        CHECK_INT_EQ(14042, qt_task_n_docs(mmlu));
        CHECK_INT_EQ(5, qt_task_num_fewshot(mmlu));
        qt_request req;
        CHECK_INT_EQ(QE_OK, qt_task_build_request(mmlu, 0, &req, &err));
        CHECK_STR_EQ("mmlu_abstract_algebra", req.task);
        CHECK_STR_EQ(abstract_algebra_0, req.context);
        CHECK_INT_EQ(4, req.n_continuations);
        CHECK_STR_EQ(" A", req.continuations[0]);
        CHECK_STR_EQ(" D", req.continuations[3]);
        qt_request_clear(&req);
        CHECK_INT_EQ(QE_OK, qt_task_build_request(mmlu, 14041, &req, &err));
        CHECK_STR_EQ("mmlu_world_religions", req.task);
        CHECK_INT_EQ(170, req.doc_id);
        qt_request_clear(&req);
        CHECK_INT_EQ(QE_EINVAL, qt_task_build_request(mmlu, 14042, &req, &err));
        /* a document's sample is stored under its subject, numbered within the subject's test file */
        const char *sample_task = NULL;
        int doc_id = -1;
        CHECK_INT_EQ(QE_OK, qt_task_sample_key(mmlu, 14041, &sample_task, &doc_id, &err));
        CHECK_STR_EQ("mmlu_world_religions", sample_task);
        CHECK_INT_EQ(170, doc_id);
        /* the other score rows it counts in: its category as lm-eval's mmlu group files place it,
           then the group */
        const char *names[QT_MAX_DOC_SUBTASKS];
        int n_names = -1;
        CHECK_INT_EQ(QE_OK, qt_task_doc_subtasks(mmlu, 0, names, &n_names, &err));
        CHECK_INT_EQ(2, n_names);
        if (n_names == 2) {
            CHECK_STR_EQ("mmlu_stem", names[0]);
            CHECK_STR_EQ("mmlu", names[1]);
        }
        CHECK_INT_EQ(QE_OK, qt_task_doc_subtasks(mmlu, 14041, names, &n_names, &err));
        CHECK_INT_EQ(2, n_names);
        if (n_names == 2) {
            CHECK_STR_EQ("mmlu_humanities", names[0]);
            CHECK_STR_EQ("mmlu", names[1]);
        }
        CHECK_INT_EQ(QE_EINVAL, qt_task_doc_subtasks(mmlu, 14042, names, &n_names, &err));
        qt_task_free(mmlu);
    }
    /* 285 dev rows: 5 per subject, every file of mmlu/dev. */
    static const char *const fields[] = {"question", "A", "B", "C", "D", "answer"};
    qd_load_spec spec = {.format = QD_FORMAT_CSV, .fields = fields, .n_fields = 6};
    char dev_dir[700];
    snprintf(dev_dir, sizeof dev_dir, "%s/mmlu/dev", data_dir);
    DIR *d = opendir(dev_dir);
    int n_dev = 0, n_files = 0;
    for (struct dirent *e; d && (e = readdir(d));) {
        if (e->d_name[0] == '.')
            continue;
        char path[1000];
        snprintf(path, sizeof path, "%s/%s", dev_dir, e->d_name);
        qd_table t;
        CHECK_INT_EQ(QE_OK, qd_table_load(path, &spec, &t, &err));
        n_dev += t.n_records;
        n_files++;
        qd_table_free(&t);
    }
    if (d)
        closedir(d);
    CHECK_INT_EQ(57, n_files);
    CHECK_INT_EQ(285, n_dev);

    /* shots as lm-eval 0.4.13's task files give them, except MMLU: qeval's is 5-shot, as
       `lm_eval --num_fewshot 5` (lm-eval's mmlu default is 0) */
    const struct {
        const char *name;
        int n_docs, num_fewshot;
    } counts[] = {{"gsm8k", 1319, 5}, {"humaneval", 164, 0}, {"truthfulqa_mc1", 817, 0}, {"truthfulqa_mc2", 817, 0}};
    for (size_t i = 0; i < sizeof counts / sizeof *counts; i++) {
        qt_task *task = load(counts[i].name, NULL, -1, &err);
        CHECK(task != NULL);
        if (!task) {
            fprintf(stderr, "%s\n", err.msg);
            continue;
        }
        CHECK_INT_EQ(counts[i].n_docs, qt_task_n_docs(task));
        CHECK_INT_EQ(counts[i].num_fewshot, qt_task_num_fewshot(task));
        const char *names[QT_MAX_DOC_SUBTASKS];
        int n_names = -1;
        CHECK_INT_EQ(QE_OK, qt_task_doc_subtasks(task, 0, names, &n_names, &err));
        CHECK_INT_EQ(0, n_names); /* no subsets: the task's own row is the only one */
        qt_task_free(task);
    }
    /* The random sampler's draws depend on the document's position, not on the call order. */
    qt_task *gsm8k = load("gsm8k", NULL, -1, &err);
    if (gsm8k) {
        qt_request in_order[3], again;
        for (int i = 0; i < 3; i++)
            CHECK_INT_EQ(QE_OK, qt_task_build_request(gsm8k, i, &in_order[i], &err));
        const int order[] = {2, 0, 1, 2};
        for (int k = 0; k < 4; k++) {
            CHECK_INT_EQ(QE_OK, qt_task_build_request(gsm8k, order[k], &again, &err));
            CHECK_STR_EQ(in_order[order[k]].context, again.context);
            qt_request_clear(&again);
        }
        for (int i = 0; i < 3; i++)
            qt_request_clear(&in_order[i]);
        qt_task_free(gsm8k);
    }
    /* MMLU dev has 5 rows a subject: asking for 6 shots fails clearly. */
    CHECK(load("mmlu", "anatomy", 6, &err) == NULL);
    CHECK(strstr(err.msg, "mmlu_anatomy: 6 few-shot examples asked for, the dev split has 5") != NULL);
    CHECK(load("mmlu", "anatomy,astrology", 0, &err) == NULL);
    CHECK(strstr(err.msg, "no subset \"astrology\"") != NULL);
}

static void test_example(void)
{
    qe_error err = {0};
    qt_task_options o;
    qt_task_options_default(&o);
    qt_task *task = NULL;
    CHECK_INT_EQ(QE_OK, qt_task_load(QEVAL_SOURCE_DIR "/tasks/examples/my_mcq.json", NULL, &o, &task, &err));
    if (!task) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK_INT_EQ(6, qt_task_n_docs(task));
    qt_request req;
    /* Doc 1 draws rows 0..2 and drops itself: shots are rows 0 and 2. */
    CHECK_INT_EQ(QE_OK, qt_task_build_request(task, 1, &req, &err));
    CHECK_STR_EQ("Answer each general-knowledge question with a, b or c.\n\n"
                 "Question: Which planet is known as the \"Red Planet\"?\na) Venus\nb) Mars\nc) Jupiter\nAnswer: b\n\n"
                 "Question: Which of these is a noble gas: helium, iron or carbon?\na) helium\nb) iron\nc) carbon\nAnswer: a\n\n"
                 "Question: What is 7 x 8?\na) 54\nb) 56\nc) 64\nAnswer:",
                 req.context);
    qt_request_clear(&req);
    CHECK_INT_EQ(QE_OK, qt_task_build_request(task, 4, &req, &err));
    CHECK(strstr(req.context, "Question: In which year did the first crewed Moon landing take place?\n(one answer)\na) 1965") != NULL);
    qt_request_clear(&req);
    /* Answers b b a c b b; the model picks b everywhere: 4 of 6 right. */
    qt_scores *scores = NULL;
    CHECK_INT_EQ(QE_OK, qt_scores_create(task, &scores, &err));
    double lls[3] = {-2, -1, -3};
    for (int i = 0; i < 6; i++) {
        qt_response r = {.loglikelihoods = lls, .n_loglikelihoods = 3};
        CHECK_INT_EQ(QE_OK, qt_scores_add(scores, i, &r, NULL, NULL, &err));
    }
    qt_metric_row *rows;
    int n;
    CHECK_INT_EQ(QE_OK, qt_scores_aggregate(scores, &rows, &n, &err));
    CHECK_INT_EQ(1, n);
    CHECK_STR_EQ("my_mcq", rows[0].task);
    CHECK_NEAR(4.0 / 6, rows[0].value, 1e-12);
    free(rows);
    qt_scores_free(scores);
    qt_task_free(task);
}

static void expect_task_error(const char *name, const char *json, const char *message)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s.json", dir, name);
    FILE *f = fopen(path, "w");
    fputs(json, f);
    fclose(f);
    qe_error err = {0};
    qt_task_options o;
    qt_task_options_default(&o);
    o.data_dir = dir;
    qt_task *task = NULL;
    qe_status rc = qt_task_load(path, NULL, &o, &task, &err);
    CHECK(rc != QE_OK && task == NULL);
    if (!strstr(err.msg, message) || !strstr(err.msg, name))
        fprintf(stderr, "%s: got \"%s\", wanted \"%s\"\n", name, err.msg, message);
    CHECK(strstr(err.msg, message) != NULL && strstr(err.msg, name) != NULL);
    qt_task_free(task);
}

#define BASE_DS "\"dataset\": {\"format\": \"csv\", \"fields\": [\"q\", \"a\"], \"splits\": {\"test\": \"x.csv\"}}, \"test_split\": \"test\""

#define MC_ACC "\"output_type\": \"multiple_choice\", \"choices\": {\"list\": [\"x\"]}, \"gold\": {\"index\": 0}, " \
               "\"metrics\": [{\"metric\": \"acc\"}]"

static void test_validation(void)
{
    FILE *f = fopen(strcat(strcpy(data_dir, dir), "/x.csv"), "w");
    fputs("q1,a\nq2,b\n", f);
    fclose(f);
    expect_task_error("bad_json", "{\"task\": \"t\",", "not a valid JSON object");
    expect_task_error("no_text", "{\"task\": \"t\", " BASE_DS ", \"output_type\": \"multiple_choice\"}",
                      "field \"doc_to_text\" is missing");
    expect_task_error("typo", "{\"task\": \"t\", " BASE_DS ", \"doc_to_txt\": \"x\"}",
                      "field \"doc_to_txt\" is not part of the task schema");
    expect_task_error("bad_field", "{\"task\": \"t\", " BASE_DS ", \"doc_to_text\": \"{{ qq }}\", \"output_type\": "
                      "\"multiple_choice\", \"choices\": {\"list\": [\"x\"]}, \"gold\": {\"index\": 0}, \"metrics\": [{\"metric\": \"acc\"}]}",
                      "field \"doc_to_text\": placeholder names \"qq\", which is not a field of the dataset");
    expect_task_error("bad_filter_name", "{\"task\": \"t\", " BASE_DS ", \"doc_to_text\": \"{{ q | upper }}\", \"output_type\": "
                      "\"multiple_choice\", \"choices\": {\"list\": [\"x\"]}, \"gold\": {\"index\": 0}, \"metrics\": [{\"metric\": \"acc\"}]}",
                      "unknown filter \"upper\"");
    expect_task_error("bad_sampler", "{\"task\": \"t\", " BASE_DS ", \"doc_to_text\": \"{{q}}\", \"fewshot\": {\"split\": \"test\", "
                      "\"num_fewshot\": 1, \"sampler\": \"best\"}}",
                      "field \"fewshot.sampler\" must be \"first_n\" or \"random\"");
    /* a number past int's range is an error, not an undefined conversion (fuzz_task found 1.6e122) */
    expect_task_error("huge_shots", "{\"task\": \"t\", " BASE_DS ", \"doc_to_text\": \"{{q}}\", \"fewshot\": {\"split\": \"test\", "
                      "\"num_fewshot\": 1.5e122}}",
                      "field \"fewshot.num_fewshot\" must be an integer >= 0");
    expect_task_error("bad_type", "{\"task\": \"t\", " BASE_DS ", \"doc_to_text\": \"{{q}}\", \"output_type\": \"classify\"}",
                      "field \"output_type\" must be");
    expect_task_error("bad_metric", "{\"task\": \"t\", " BASE_DS ", \"doc_to_text\": \"{{q}}\", \"doc_to_target\": \"{{a}}\", "
                      "\"output_type\": \"generate_until\", \"generation\": {\"until\": [\"x\"]}, \"metrics\": [{\"metric\": \"acc\"}]}",
                      "field \"metrics[].metric\" does not fit the output_type");
    expect_task_error("bad_regex", "{\"task\": \"t\", " BASE_DS ", \"doc_to_text\": \"{{q}}\", \"doc_to_target\": \"{{a}}\", "
                      "\"output_type\": \"generate_until\", \"generation\": {\"until\": [\"x\"]}, \"filters\": [{\"name\": \"f\", "
                      "\"regex\": \"(unclosed\"}], \"metrics\": [{\"metric\": \"exact_match\"}]}",
                      "field \"filters[0].regex\"");
    expect_task_error("bad_gold", "{\"task\": \"t\", " BASE_DS ", \"doc_to_text\": \"{{q}}\", \"output_type\": \"multiple_choice\", "
                      "\"choices\": {\"list\": [\"x\"]}, \"gold\": {\"field\": \"answer\"}, \"metrics\": [{\"metric\": \"acc\"}]}",
                      "names \"answer\", which is not in dataset.fields");
    expect_task_error("missing_data", "{\"task\": \"t\", \"dataset\": {\"format\": \"csv\", \"fields\": [\"q\"], \"splits\": "
                      "{\"test\": \"missing_data.csv\"}}, \"test_split\": \"test\", \"doc_to_text\": \"{{q}}\", \"output_type\": "
                      "\"multiple_choice\", \"choices\": {\"list\": [\"x\"]}, \"gold\": {\"index\": 0}, \"metrics\": [{\"metric\": \"acc\"}]}",
                      "missing_data.csv: cannot open");
    expect_task_error("number_version", "{\"task\": \"t\", \"version\": 3.0, " BASE_DS ", \"doc_to_text\": \"{{q}}\"}",
                      "field \"version\" must be a string");
    expect_task_error("long_version", "{\"task\": \"t\", \"version\": \"1.0.0-with-a-long-tail\", " BASE_DS
                      ", \"doc_to_text\": \"{{q}}\", " MC_ACC "}",
                      "field \"version\" must be shorter than 16 characters");
    expect_task_error("group_version", "{\"task\": \"t\", " BASE_DS ", \"doc_to_text\": \"{{q}}\", " MC_ACC ", \"groups\": "
                      "{\"name\": \"g\", \"version\": [2]}}", "field \"groups.version\" must be a string");
    qe_error err = {0};
    qt_task *task = NULL;
    CHECK(qt_task_load("no_such_task", QEVAL_SOURCE_DIR "/tasks", NULL, &task, &err) != QE_OK);
    CHECK(strstr(err.msg, "unknown task \"no_such_task\"") != NULL);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    test_example();
    test_validation();
    const char *shared = check_shared_dir();
    char probe[600];
    if (check_shared_path(probe, sizeof probe, "datasets/mmlu/test/anatomy_test.csv"))
        test_shared(shared);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return check_summary();
}
