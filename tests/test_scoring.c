/* Scoring with hand-made responses through the real task files in tasks/ over small data
 * written here: GSM8K answer extraction (commas, $, negatives, trailing period, no ####, several
 * numbers, first vs last), MMLU per subject / category / group with lm-eval's stderr, ties,
 * TruthfulQA MC2 mass, HumanEval pass@1 and its test program. Expected numbers are worked out by
 * hand in the comments. */
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "task.h"

static char dir[] = "/tmp/qeval_scoring_XXXXXX";

static void put(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    for (char *p = path + strlen(dir) + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0777);
            *p = '/';
        }
    if (strstr(rel, ".gz")) {
        gzFile gz = gzopen(path, "wb");
        gzwrite(gz, text, (unsigned)strlen(text));
        gzclose(gz);
        return;
    }
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

static qt_task *load(const char *name, const char *subsets, qe_error *err)
{
    qt_task_options o;
    qt_task_options_default(&o);
    o.data_dir = dir;
    o.num_fewshot = 0;
    o.subsets = subsets;
    qt_task *task = NULL;
    if (qt_task_load(name, QEVAL_SOURCE_DIR "/tasks", &o, &task, err) != QE_OK)
        fprintf(stderr, "load %s: %s\n", name, err->msg);
    return task;
}

static const qt_metric_row *find_row(const qt_metric_row *rows, int n, const char *task, const char *filter)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(rows[i].task, task) && !strcmp(rows[i].filter, filter))
            return &rows[i];
    return NULL;
}

static void test_gsm8k(void)
{
    /* Responses and what each filter extracts (then exact_match against the reference's number):
     *  0 ref 1234 (written 1,234): "...$1,234.\n#### 1,234" strict "1,234" ok; flexible last "1,234" ok
     *  1 ref 1234: "He pays $1,234."        strict [invalid] no; flexible "$1,234." -> "1234" ok
     *  2 ref -5:   "It drops -5 degrees.\n#### -5"  strict "-5" ok; flexible "-5" ok
     *  3 ref 19:   "First 12, then 7 and finally 19" strict no; flexible last "19" ok
     *  4 ref 42:   "So the answer is 42."   strict no; flexible "42." -> "42" ok
     *  5 ref 42:   "#### 41"                strict no; flexible no
     *  6 ref 7:    "#### 7 and #### 8"      strict first "7" ok; flexible last "8" no
     * strict 3/7, flexible 5/7. */
    put("gsm8k/test.jsonl",
        "{\"question\": \"q0\", \"answer\": \"a = <<1000+234=1234>>1234\\n#### 1,234\"}\n"
        "{\"question\": \"q1\", \"answer\": \"#### 1,234\"}\n"
        "{\"question\": \"q2\", \"answer\": \"#### -5\"}\n"
        "{\"question\": \"q3\", \"answer\": \"#### 19\"}\n"
        "{\"question\": \"q4\", \"answer\": \"#### 42\"}\n"
        "{\"question\": \"q5\", \"answer\": \"#### 42\"}\n"
        "{\"question\": \"q6\", \"answer\": \"#### 7\"}\n");
    const char *texts[] = {" The total is $1,234.\n#### 1,234", " He pays $1,234.", " It drops -5 degrees.\n#### -5",
                           " First 12, then 7 and finally 19", " So the answer is 42.", " #### 41", " #### 7 and #### 8"};
    const double strict[] = {1, 0, 1, 0, 0, 0, 1}, flexible[] = {1, 1, 1, 1, 1, 0, 0};
    qe_error err = {0};
    qt_task *task = load("gsm8k", NULL, &err);
    CHECK(task != NULL);
    if (!task)
        return;
    CHECK_INT_EQ(7, qt_task_n_docs(task));
    CHECK_INT_EQ(QT_REQUEST_GENERATE_UNTIL, qt_task_request_type(task));
    CHECK_INT_EQ(2, qt_task_n_values(task));
    const char *metric, *filter;
    qt_task_value_name(task, 1, &metric, &filter);
    CHECK_STR_EQ("exact_match", metric);
    CHECK_STR_EQ("flexible-extract", filter);
    CHECK_INT_EQ(2, qt_task_n_filters(task));
    char *answer = NULL;
    CHECK_INT_EQ(QE_OK, qt_task_filter_text(task, 0, texts[1], &answer, &err));
    CHECK_STR_EQ("[invalid]", answer);
    free(answer);
    CHECK_INT_EQ(QE_OK, qt_task_filter_text(task, 1, texts[3], &answer, &err));
    CHECK_STR_EQ("19", answer);
    free(answer);
    CHECK_INT_EQ(QE_OK, qt_task_filter_text(task, 1, texts[0], &answer, &err));
    CHECK_STR_EQ("1,234", answer);
    free(answer);
    qt_scores *scores = NULL;
    CHECK_INT_EQ(QE_OK, qt_scores_create(task, &scores, &err));
    for (int i = 0; i < 7; i++) {
        qt_response r = {.generated_text = texts[i], .was_truncated = i == 3};
        double values[4];
        int n_values = 0;
        CHECK_INT_EQ(QE_OK, qt_scores_add(scores, i, &r, values, &n_values, &err));
        CHECK_INT_EQ(2, n_values);
        CHECK_NEAR(strict[i], values[0], 0);
        CHECK_NEAR(flexible[i], values[1], 0);
    }
    qt_metric_row *rows = NULL;
    int n_rows = 0;
    CHECK_INT_EQ(QE_OK, qt_scores_aggregate(scores, &rows, &n_rows, &err));
    CHECK_INT_EQ(2, n_rows);
    const qt_metric_row *s = find_row(rows, n_rows, "gsm8k", "strict-match");
    const qt_metric_row *f = find_row(rows, n_rows, "gsm8k", "flexible-extract");
    CHECK(s && f);
    if (s && f) {
        CHECK_STR_EQ("exact_match", s->metric);
        CHECK_STR_EQ("3.0", s->version); /* lm-eval 0.4.13 gsm8k.yaml */
        CHECK_NEAR(3.0 / 7, s->value, 1e-12);
        /* sample std of 3 ones and 4 zeros: sqrt((3*(4/7)^2 + 4*(3/7)^2)/6) = sqrt(2/7), / sqrt(7) */
        CHECK_NEAR(sqrt(2.0 / 7) / sqrt(7.0), s->stderr_value, 1e-12);
        CHECK_NEAR(5.0 / 7, f->value, 1e-12);
        CHECK_INT_EQ(7, f->n);
        CHECK_INT_EQ(1, f->n_truncated);
    }
    free(rows);
    qt_response none = {0};
    CHECK_INT_EQ(QE_EINVAL, qt_scores_add(scores, 0, &none, NULL, NULL, &err));
    qt_scores_free(scores);
    qt_task_free(task);
}

static void test_mmlu(void)
{
    /* abstract_algebra: 4 docs, 3 right (doc 0 is a four-way tie: argmax takes A, the answer) -> 0.75,
     *   stderr sqrt(0.75/3)/2 = 0.25; anatomy: 2 docs, 1 right -> 0.5, stderr 0.5;
     * philosophy: 3 docs, none right -> 0, stderr 0.
     * stem (4+2 docs) = 4/6; pooled var = (3*0.0625*4 + 1*0.25*2)/(6-2) = 0.3125, stderr sqrt(0.3125/6);
     * humanities = 0, stderr 0; mmlu = 4/9, stderr sqrt((0.75+0.5+0)/(9-3)/9). */
    put("mmlu/test/abstract_algebra_test.csv", "q,1,2,3,4,A\nq,1,2,3,4,B\nq,1,2,3,4,C\nq,1,2,3,4,D\n");
    put("mmlu/test/anatomy_test.csv", "q,1,2,3,4,A\nq,1,2,3,4,B\n");
    put("mmlu/test/philosophy_test.csv", "q,1,2,3,4,A\nq,1,2,3,4,A\nq,1,2,3,4,A\n");
    double lls[9][4] = {
        {-1, -1, -1, -1},     /* tie -> A, right */
        {-2, -0.5, -3, -4},   /* B right */
        {-2, -3, -0.1, -4},   /* C right */
        {-0.2, -3, -4, -5},   /* A, answer D: wrong */
        {-0.1, -3, -4, -5},   /* anatomy: A right */
        {-0.1, -3, -4, -5},   /* A, answer B: wrong */
        {-5, -0.1, -4, -5},   /* philosophy: all wrong */
        {-5, -4, -0.1, -5},
        {-5, -4, -5, -0.1},
    };
    qe_error err = {0};
    qt_task *task = load("mmlu", "abstract_algebra,anatomy,philosophy", &err);
    CHECK(task != NULL);
    if (!task)
        return;
    CHECK_INT_EQ(9, qt_task_n_docs(task));
    qt_request req;
    CHECK_INT_EQ(QE_OK, qt_task_build_request(task, 4, &req, &err));
    CHECK_STR_EQ("mmlu_anatomy", req.task);
    CHECK_INT_EQ(0, req.doc_id);
    /* A document's stored key is (subject, index in the subject's file), whatever the run selects:
     * anatomy's second question is ("mmlu_anatomy", 1) here (doc_index 5), alone (doc_index 1),
     * and absent from a run limited to one document per subject. */
    qt_task_options one;
    qt_task_options_default(&one);
    one.data_dir = dir;
    one.num_fewshot = 0;
    one.subsets = "anatomy";
    qt_task *alone = NULL, *limited = NULL;
    CHECK_INT_EQ(QE_OK, qt_task_load("mmlu", QEVAL_SOURCE_DIR "/tasks", &one, &alone, &err));
    one.subsets = "abstract_algebra,anatomy,philosophy";
    one.limit = 1;
    CHECK_INT_EQ(QE_OK, qt_task_load("mmlu", QEVAL_SOURCE_DIR "/tasks", &one, &limited, &err));
    const char *key_task[2] = {NULL, NULL};
    int key_id[2] = {-1, -1}, found = -1;
    CHECK_INT_EQ(QE_OK, qt_task_sample_key(task, 5, &key_task[0], &key_id[0], &err));
    if (alone)
        CHECK_INT_EQ(QE_OK, qt_task_sample_key(alone, 1, &key_task[1], &key_id[1], &err));
    CHECK_STR_EQ("mmlu_anatomy", key_task[0]);
    CHECK_STR_EQ("mmlu_anatomy", key_task[1]);
    CHECK_INT_EQ(1, key_id[0]);
    CHECK_INT_EQ(1, key_id[1]);
    CHECK(qt_task_find_sample_doc(task, "mmlu_anatomy", 1, &found) && found == 5);
    CHECK(alone && qt_task_find_sample_doc(alone, "mmlu_anatomy", 1, &found) && found == 1);
    CHECK(limited && !qt_task_find_sample_doc(limited, "mmlu_anatomy", 1, &found));
    CHECK(limited && qt_task_find_sample_doc(limited, "mmlu_philosophy", 0, &found) && found == 2);
    CHECK(!qt_task_find_sample_doc(task, "mmlu", 5, &found)); /* pre-v4 key: the task's own name */
    CHECK(!qt_task_find_sample_doc(task, "mmlu_anatomy", -1, &found));
    qt_task_free(alone);
    qt_task_free(limited);
    CHECK_STR_EQ("The following are multiple choice questions (with answers) about anatomy.\n\n"
                 "q\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer:",
                 req.context);
    qt_request_clear(&req);
    qt_scores *scores = NULL;
    CHECK_INT_EQ(QE_OK, qt_scores_create(task, &scores, &err));
    for (int i = 0; i < 9; i++) {
        qt_response r = {.loglikelihoods = lls[i], .n_loglikelihoods = 4};
        CHECK_INT_EQ(QE_OK, qt_scores_add(scores, i, &r, NULL, NULL, &err));
    }
    qt_response three = {.loglikelihoods = lls[0], .n_loglikelihoods = 3};
    CHECK_INT_EQ(QE_EINVAL, qt_scores_add(scores, 0, &three, NULL, NULL, &err));
    CHECK(strstr(err.msg, "3 loglikelihoods for 4 choices") != NULL);
    qt_metric_row *rows = NULL;
    int n_rows = 0;
    CHECK_INT_EQ(QE_OK, qt_scores_aggregate(scores, &rows, &n_rows, &err));
    CHECK_INT_EQ(3 + 4 + 1, n_rows);
    struct {
        const char *task;
        double value, stderr_value;
        int n;
    } expected[] = {
        {"mmlu_abstract_algebra", 0.75, 0.25, 4}, {"mmlu_anatomy", 0.5, 0.5, 2}, {"mmlu_philosophy", 0, 0, 3},
        {"mmlu_stem", 4.0 / 6, sqrt(0.3125 / 6), 6}, {"mmlu_humanities", 0, 0, 3}, {"mmlu", 4.0 / 9, sqrt(1.25 / 6 / 9), 9},
    };
    for (size_t i = 0; i < sizeof expected / sizeof *expected; i++) {
        const qt_metric_row *r = find_row(rows, n_rows, expected[i].task, "none");
        CHECK(r != NULL);
        if (!r)
            continue;
        CHECK_STR_EQ("acc", r->metric);
        CHECK_NEAR(expected[i].value, r->value, 1e-12);
        CHECK_NEAR(expected[i].stderr_value, r->stderr_value, 1e-12);
        CHECK_INT_EQ(expected[i].n, r->n);
    }
    const qt_metric_row *other = find_row(rows, n_rows, "mmlu_other", "none");
    CHECK(other && other->n == 0 && other->is_group);
    /* versions as lm-eval 0.4.13's metadata.version: subjects 1.0 (_default_template_yaml),
       categories and the group 2 (_mmlu*.yaml) */
    const qt_metric_row *subject = find_row(rows, n_rows, "mmlu_anatomy", "none"),
                        *group = find_row(rows, n_rows, "mmlu", "none");
    CHECK(subject && group && other);
    if (subject && group && other) {
        CHECK_STR_EQ("1.0", subject->version);
        CHECK_STR_EQ("2", group->version);
        CHECK_STR_EQ("2", other->version);
    }
    free(rows);
    qt_scores_free(scores);
    qt_task_free(task);
}

static void test_truthfulqa(void)
{
    /* doc 0: labels 1,1,0,0, lls -1,-2,-1.5,-3: mc2 = (e^-1 + e^-2) / (e^-1 + e^-2 + e^-1.5 + e^-3)
     *        = 0.6483623338944073; mc1 (choices a,b,c,d, gold 0): argmax a -> 1.
     * doc 1: labels 1,0,1 (lm-eval 0.4.13 counts every answer labelled 1, the late one too),
     *        lls -0.5,-0.25,-4: mc2 = (e^-0.5 + e^-4) / (e^-0.5 + e^-0.25 + e^-4) = 0.44515911924008544;
     *        mc1 lls all -1: a tie, argmax takes the first = gold -> 1. */
    put("truthfulqa/mc_task.json",
        "[{\"question\": \"Q0?\", \"mc1_targets\": {\"a\": 1, \"b\": 0, \"c\": 0, \"d\": 0},"
        "  \"mc2_targets\": {\"t1\": 1, \"t2\": 1, \"f1\": 0, \"f2\": 0}},"
        " {\"question\": \"Q1?\", \"mc1_targets\": {\"x\": 1, \"y\": 0, \"z\": 0},"
        "  \"mc2_targets\": {\"t\": 1, \"f\": 0, \"late\": 1}},"
        " {\"question\": \"Q2?\", \"mc1_targets\": {\"x\": 1, \"y\": 0},"
        "  \"mc2_targets\": {\"t\": \"yes\", \"f\": 0}}]");
    qe_error err = {0};
    qt_task *mc2 = load("truthfulqa_mc2", NULL, &err), *mc1 = load("truthfulqa_mc1", NULL, &err);
    CHECK(mc1 && mc2);
    if (!mc1 || !mc2) {
        qt_task_free(mc1);
        qt_task_free(mc2);
        return;
    }
    qt_scores *s2 = NULL, *s1 = NULL;
    CHECK_INT_EQ(QE_OK, qt_scores_create(mc2, &s2, &err));
    CHECK_INT_EQ(QE_OK, qt_scores_create(mc1, &s1, &err));
    double l0[] = {-1, -2, -1.5, -3}, l1[] = {-0.5, -0.25, -4}, tie[] = {-1, -1, -1};
    double v;
    qt_response r0 = {.loglikelihoods = l0, .n_loglikelihoods = 4}, r1 = {.loglikelihoods = l1, .n_loglikelihoods = 3};
    CHECK_INT_EQ(QE_OK, qt_scores_add(s2, 0, &r0, &v, NULL, &err));
    CHECK_NEAR(0.6483623338944073, v, 1e-12);
    CHECK_INT_EQ(QE_OK, qt_scores_add(s2, 1, &r1, &v, NULL, &err));
    CHECK_NEAR(0.44515911924008544, v, 1e-12);
    double l2[] = {-1, -2};
    qt_response r2 = {.loglikelihoods = l2, .n_loglikelihoods = 2};
    CHECK_INT_EQ(QE_EFORMAT, qt_scores_add(s2, 2, &r2, &v, NULL, &err)); /* a label that is no number */
    CHECK(strstr(err.msg, "needs one numeric label per choice") != NULL);
    CHECK_INT_EQ(QE_OK, qt_scores_add(s1, 0, &r0, &v, NULL, &err));
    CHECK_NEAR(1, v, 0);
    qt_response rt = {.loglikelihoods = tie, .n_loglikelihoods = 3};
    CHECK_INT_EQ(QE_OK, qt_scores_add(s1, 1, &rt, &v, NULL, &err));
    CHECK_NEAR(1, v, 0);
    qt_metric_row *rows;
    int n;
    CHECK_INT_EQ(QE_OK, qt_scores_aggregate(s2, &rows, &n, &err));
    CHECK_INT_EQ(1, n);
    CHECK_STR_EQ("acc", rows[0].metric);
    CHECK_STR_EQ("3.0", rows[0].version); /* lm-eval 0.4.13 truthfulqa_mc2.yaml */
    CHECK_NEAR((0.6483623338944073 + 0.44515911924008544) / 2, rows[0].value, 1e-12);
    free(rows);
    qt_scores_free(s1);
    qt_scores_free(s2);
    qt_task_free(mc1);
    qt_task_free(mc2);
}

static void test_humaneval(void)
{
    put("humaneval/HumanEval.jsonl.gz",
        "{\"task_id\": \"HumanEval/0\", \"prompt\": \"def f(x):\\n\", \"entry_point\": \"f\", \"canonical_solution\": \"\","
        " \"test\": \"def check(c):\\n    assert c(1) == 2\\n\"}\n"
        "{\"task_id\": \"HumanEval/1\", \"prompt\": \"def g():\\n\", \"entry_point\": \"g\", \"canonical_solution\": \"\","
        " \"test\": \"def check(c):\\n    pass\\n\"}\n");
    qe_error err = {0};
    qt_task *task = load("humaneval", NULL, &err);
    CHECK(task != NULL);
    if (!task)
        return;
    char *program = NULL;
    CHECK_INT_EQ(QE_OK, qt_task_exec_program(task, 0, "    return x + 1", &program, &err));
    CHECK_STR_EQ("def f(x):\n    return x + 1\ndef check(c):\n    assert c(1) == 2\n\ncheck(f)", program);
    free(program);
    qt_scores *scores = NULL;
    CHECK_INT_EQ(QE_OK, qt_scores_create(task, &scores, &err));
    qt_response pass = {.generated_text = "x", .exec_result = QT_EXEC_PASSED};
    qt_response fail = {.generated_text = "y", .exec_result = QT_EXEC_FAILED};
    qt_response not_run = {.generated_text = "z"};
    CHECK_INT_EQ(QE_EINVAL, qt_scores_add(scores, 0, &not_run, NULL, NULL, &err));
    CHECK_INT_EQ(QE_OK, qt_scores_add(scores, 0, &pass, NULL, NULL, &err));
    CHECK_INT_EQ(QE_OK, qt_scores_add(scores, 1, &fail, NULL, NULL, &err));
    qt_metric_row *rows;
    int n;
    CHECK_INT_EQ(QE_OK, qt_scores_aggregate(scores, &rows, &n, &err));
    CHECK_INT_EQ(1, n);
    CHECK_STR_EQ("pass@1", rows[0].metric);
    CHECK_STR_EQ("create_test", rows[0].filter);
    CHECK_STR_EQ("1.0", rows[0].version); /* lm-eval 0.4.13 humaneval.yaml */
    CHECK_NEAR(0.5, rows[0].value, 0);
    CHECK_NEAR(0.5, rows[0].stderr_value, 1e-12);
    free(rows);
    qt_scores_free(scores);
    qt_task_free(task);
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    test_gsm8k();
    test_mmlu();
    test_truthfulqa();
    test_humaneval();
    double one = 1;
    CHECK(isnan(qt_mean_stderr(&one, 1)));
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return check_summary();
}
