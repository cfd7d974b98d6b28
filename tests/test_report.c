/* Reports from a fixture results file written through the store API, whose numbers are known:
 * scores, intervals, paired tests (McNemar on a hand-made 2x2 table, paired t on mc2), pooled
 * speed and fidelity, the "what changed" order, in md, csv and json; `qeval compare` exit codes
 * on a significant drop above / below the threshold and on a drop that is not significant; the
 * unpaired two-proportion z-test (Newcombe's interval) when a run kept no samples; MMLU subjects
 * and categories paired through the samples' "subtasks" as `qeval run` stores them, unpaired in
 * a file without it, and malformed "subtasks" refused; `qeval trend`; what a reader sees of a run
 * of a cached GGUF (title, clipped mc2 intervals, MMLU letters, labels, collapsed generations)
 * and the names report_labels.c gives.
 * Expected values: tests/golden/report_expected.py (numpy/scipy) -> report_expected.txt.
 *
 * `test_report --write-fixture FILE` writes the fixture file and exits (for test_report_html.sh). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "report_diff.h"
#include "report_fmt.h"
#include "report_labels.h"
#include "report_load.h"
#include "report_trend.h"
#include "store.h"

/* ---- the fixture ---------------------------------------------------------------------------- */

/* MMLU outcomes over 20 documents: 0-9 are mmlu_abstract_algebra docs 0-9, 10-19 mmlu_anatomy.
 * nf4 against fp32: both right 8, only fp32 right 6, only nf4 right 1 (doc 14), neither 5. */
static const int fp32_mmlu[20] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0};
static const int int8_mmlu[20] = {0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0};
static const int nf4_mmlu[20] = {1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0};
static const double mc2[3][8] = {
    {0.62, 0.55, 0.71, 0.40, 0.83, 0.51, 0.66, 0.58}, /* fp32 */
    {0.61, 0.55, 0.70, 0.40, 0.82, 0.52, 0.66, 0.57}, /* int8 */
    {0.58, 0.50, 0.69, 0.41, 0.75, 0.47, 0.60, 0.55}, /* nf4  */
};
static const int gsm_strict[3][10] = {{1, 1, 1, 0, 1, 0, 1, 1, 0, 1}, {1, 1, 1, 0, 1, 0, 1, 1, 0, 1},
                                      {1, 0, 1, 0, 1, 0, 1, 0, 0, 1}};
static const int gsm_flex[3][10] = {{1, 1, 1, 1, 1, 0, 1, 1, 0, 1}, {1, 1, 1, 1, 1, 0, 1, 1, 0, 1},
                                    {1, 1, 1, 0, 1, 0, 1, 0, 0, 1}};
static const char *const variants[3] = {"fp32", "int8", "nf4"};

static void mean_se(const double *x, int n, double *mean, double *se)
{
    double s = 0, ss = 0;
    for (int i = 0; i < n; i++)
        s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++)
        ss += (x[i] - *mean) * (x[i] - *mean);
    *se = sqrt(ss / (n - 1)) / sqrt(n);
}

static int fails;
#define MUST(call)                                                                          \
    do {                                                                                    \
        qe_error e_ = {0};                                                                  \
        if ((call) != QE_OK) { fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, e_.msg); fails++; } \
    } while (0)

static void put_result(qh_store *s, int64_t run, const char *variant, const char *task, const char *metric,
                       const double *x, int n)
{
    double m, se;
    mean_se(x, n, &m, &se);
    qh_task_result_row row = {run, variant, task, metric, m, se, n, 0, 1, NULL, -1};
    MUST(qh_store_put_task_results(s, &row, 1, &e_));
}

static void put_binary_sample(qh_store *s, int64_t run, const char *variant, const char *task, int64_t doc,
                              const char *metric, int value, const char *answer, const char *response)
{
    char outcome[128], question[32];
    snprintf(outcome, sizeof outcome, "{\"%s\": %d}", metric, value);
    snprintf(question, sizeof question, "Item %lld?", (long long)doc);
    qh_sample_row row = {run, variant, task, doc, "h", "A", response, answer, outcome, 1.0, question};
    MUST(qh_store_put_samples(s, &row, 1, &e_));
}

/* One loglikelihood document's sample: its outcome and the chosen choice's index. */
static void put_outcome(qh_store *s, int64_t run, const char *variant, const char *task, int64_t doc, const char *outcome,
                        const char *answer)
{
    qh_sample_row row = {run, variant, task, doc, "h", "A", "{\"ll\":[-1,-2,-3,-4]}", answer, outcome, 1.0, NULL};
    MUST(qh_store_put_samples(s, &row, 1, &e_));
}

/* One run: fp32 (and int8, nf4 when is_full) on MMLU, TruthfulQA mc2, GSM8K; fp32's MMLU
 * outcomes replaced by `fp32` when given; samples only when has_samples. */
static int64_t put_run(qh_store *s, const int *fp32, bool is_full, bool has_samples)
{
    qh_run info = {.qeval_version = "0.1.0", .git_commit = "abc123", .command_line = "qeval run --model models/tiny",
                   .host_cpu = "Test CPU", .host_cores = 2, .host_ram_bytes = 8000000000, .gpu_memory_bytes = -1,
                   .model_path = "models/tiny", .model_sha256 = "0123abcd", .options_json = "{\"seed\":1234}",
                   .sandbox_json = "{\"network\":false}"};
    int64_t run;
    MUST(qh_store_create_run(s, &info, &run, &e_));
    int n_variants = is_full ? 3 : 1;
    for (int v = 0; v < n_variants; v++) {
        static const int64_t footprint[3] = {1000000000, 270000000, 150000000}, hf[3] = {1000000000, 260000000, 140000000},
                             estimate[3] = {1000000000, 250000000, 125000000};
        qh_variant_row vr = {run, variants[v], "cpu", 1.0, 0.5, footprint[v], hf[v], estimate[v], 1200000000, -1, "test", -1, -1, -1, -1,
                             512, footprint[v], 4096, 8192, footprint[v] + 4096 + 8192, -1};
        MUST(qh_store_put_variants(s, &vr, 1, &e_));
        static const double prefill[3][2] = {{500, 250}, {1000, 500}, {800, 400}}, decode[3] = {20, 30, 25};
        qh_perf_row perf[2] = {
            {run, variants[v], "mmlu_anatomy", 10, 1000, 200, prefill[v][0], decode[v], 10, 20, 5},
            {run, variants[v], "gsm8k", 10, 1000, 0, prefill[v][1], NAN, 10, 20, 5},
        };
        MUST(qh_store_put_perf(s, perf, 2, &e_));
        if (v > 0) {
            static const double kl[3][2] = {{0}, {0.01, 0.03}, {0.05, 0.07}}, top1[3][2] = {{0}, {0.9, 0.7}, {0.8, 0.6}},
                                p99[3][2] = {{0}, {0.05, 0.2}, {0.3, 0.4}};
            qh_fidelity_row fid[2] = {
                {run, variants[v], "mmlu_anatomy", "fp32", 10, kl[v][0], p99[v][0], top1[v][0], 0.1, 0.1},
                {run, variants[v], "gsm8k", "fp32", 30, kl[v][1], p99[v][1], top1[v][1], 0.1, 0.1},
            };
            MUST(qh_store_put_fidelity(s, fid, 2, &e_));
        }
        const int *mmlu = v == 0 ? (fp32 ? fp32 : fp32_mmlu) : v == 1 ? int8_mmlu : nf4_mmlu;
        double all[20], sub[2][10];
        for (int i = 0; i < 20; i++)
            all[i] = sub[i / 10][i % 10] = mmlu[i];
        put_result(s, run, variants[v], "mmlu", "acc", all, 20);
        put_result(s, run, variants[v], "mmlu_abstract_algebra", "acc", sub[0], 10);
        put_result(s, run, variants[v], "mmlu_anatomy", "acc", sub[1], 10);
        if (is_full) {
            double strict[10], flex[10];
            for (int i = 0; i < 10; i++)
                strict[i] = gsm_strict[v][i], flex[i] = gsm_flex[v][i];
            put_result(s, run, variants[v], "truthfulqa_mc2", "acc", mc2[v], 8);
            put_result(s, run, variants[v], "gsm8k", "exact_match,strict-match", strict, 10);
            put_result(s, run, variants[v], "gsm8k", "exact_match,flexible-extract", flex, 10);
        }
        if (!has_samples)
            continue;
        for (int i = 0; i < 20; i++) {
            /* the chosen choice's index, as `qeval run` stores it: right answers choose 0 (A); wrong
               ones 1 (B), except nf4's on doc 19 (2, C); nf4 is 0.8 sure of its wrong answer on doc 8,
               every other answer 0.4 */
            const char *answer = mmlu[i] ? "0" : (v == 2 && i == 19) ? "2" : "1";
            /* nf4's responses in the form `qeval run` writes, the others' in schema.md's */
            const char *response = v == 2 && i == 8 ? "{\"ll\":[-2.302585093,-0.223143551,-2.995732274,-2.995732274]}"
                                   : v == 2         ? "{\"ll\":[-0.916290732,-1.203972804,-1.609437912,-2.302585093]}"
                                                    : "[[-0.916290732,false],[-1.203972804,false],[-1.609437912,false],"
                                                      "[-2.302585093,false]]";
            put_binary_sample(s, run, variants[v], i < 10 ? "mmlu_abstract_algebra" : "mmlu_anatomy", i % 10, "acc",
                              mmlu[i], answer, response);
        }
        if (!is_full)
            continue;
        for (int i = 0; i < 8; i++) {
            char outcome[64];
            snprintf(outcome, sizeof outcome, "{\"acc\": %.2f}", mc2[v][i]);
            qh_sample_row row = {run, variants[v], "truthfulqa_mc2", i, "h", "0", "[]", NULL, outcome, 1.0, NULL};
            MUST(qh_store_put_samples(s, &row, 1, &e_));
        }
        for (int i = 0; i < 10; i++) {
            char outcome[128];
            snprintf(outcome, sizeof outcome, "{\"exact_match,strict-match\": %d, \"exact_match,flexible-extract\": %d}",
                     gsm_strict[v][i], gsm_flex[v][i]);
            qh_sample_row row = {run, variants[v], "gsm8k", i, "h", "42", "[\"The answer is 42.\"]",
                                 gsm_strict[v][i] ? "42" : "41", outcome, 1.0, NULL};
            MUST(qh_store_put_samples(s, &row, 1, &e_));
        }
    }
    MUST(qh_store_finish_run(s, run, QH_RUN_COMPLETE, NULL, &e_));
    return run;
}

/* The model file of run 5, where qeval's cache keeps a known model. */
#define CACHED_GGUF "/home/u/.cache/qeval/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf"
/* HumanEval's prompt and the two variants' long generations in run 5 (the prose a report must
 * show collapsed): the prompt opens with blank lines, each generation runs 41 lines. */
#define HUMANEVAL_PROMPT "\n\ndef add(a, b):\n    # Add two numbers.\n    # add(2, 3) gives 5\n    # add(-1, 1) gives 0\n"
static const double near_one_mc2[2][4] = {{1.0, 0.91, 1.0, 0.99}, {0.99, 0.93, 1.0, 0.96}};

static void put_generation(qh_store *s, int64_t run, const char *variant, int passes)
{
    char generation[2048], outcome[64];
    int len = snprintf(generation, sizeof generation, "    return a %c b\n", passes ? '+' : '-');
    for (int line = 1; line <= 40; line++)
        len += snprintf(generation + len, sizeof generation - (size_t)len, "    # step %d of a long explanation\n", line);
    snprintf(outcome, sizeof outcome, "{\"pass@1,create_test\": %d}", passes);
    qh_sample_row row = {run, variant, "humaneval", 0, "h", "", "[]", generation, outcome, 1.0, HUMANEVAL_PROMPT};
    MUST(qh_store_put_samples(s, &row, 1, &e_));
}

/* Run 5, as `qeval run` writes a GGUF model from the cache: fp32 and nf4 on TruthfulQA mc2 near
 * 1 (both 95 % intervals reach past 100 points before clipping: fp32 97.5 +- 4.27, nf4 97.0 +-
 * 3.10; tests/golden/report_expected.txt), HumanEval (fp32 passes, nf4 fails, with long generations) and one MMLU document
 * (fp32 chooses 3, right; nf4 chooses 1). */
static void put_cached_model_run(qh_store *s)
{
    qh_run info = {.model_path = CACHED_GGUF, .host_cores = -1, .host_ram_bytes = -1, .gpu_memory_bytes = -1};
    int64_t run;
    MUST(qh_store_create_run(s, &info, &run, &e_));
    for (int v = 0; v < 2; v++) {
        const char *variant = v ? "nf4" : "fp32";
        qh_variant_row vr = {run, variant, "cpu", 1.0, 0.5, 1000, 1000, 1000, 1000, -1, "test", -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
        MUST(qh_store_put_variants(s, &vr, 1, &e_));
        put_result(s, run, variant, "truthfulqa_mc2", "acc", near_one_mc2[v], 4);
        for (int i = 0; i < 4; i++) {
            char outcome[64];
            snprintf(outcome, sizeof outcome, "{\"acc\": %.2f}", near_one_mc2[v][i]);
            qh_sample_row row = {run, variant, "truthfulqa_mc2", i, "h", "0", "[]", NULL, outcome, 1.0, NULL};
            MUST(qh_store_put_samples(s, &row, 1, &e_));
        }
        double passes = v ? 0 : 1, right = v ? 0 : 1;
        put_result(s, run, variant, "humaneval", "pass@1,create_test", &passes, 1);
        put_generation(s, run, variant, !v);
        put_result(s, run, variant, "mmlu", "acc", &right, 1);
        put_outcome(s, run, variant, "mmlu", 0, v ? "{\"acc\": 0}" : "{\"acc\": 1}", v ? "1" : "3");
    }
    MUST(qh_store_finish_run(s, run, QH_RUN_COMPLETE, NULL, &e_));
}

/* Run 1: the full report. Run 2: fp32 with 6 right answers turned wrong (a significant 30-point
 * drop); run 3: with 2 turned wrong (not significant); run 4: fp32 at nf4's 0.45, no samples;
 * run 5: put_cached_model_run's. */
static int write_fixture(const char *path)
{
    static const int drop6[20] = {0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0};
    static const int drop2[20] = {0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0};
    qh_store *s = NULL;
    unlink(path);
    MUST(qh_store_open(path, NULL, &s, &e_));
    if (!s)
        return 1;
    put_run(s, NULL, true, true);
    put_run(s, drop6, false, true);
    put_run(s, drop2, false, true);
    put_run(s, nf4_mmlu, false, false);
    put_cached_model_run(s);
    qh_store_close(s);
    return fails;
}

/* ---- the subtasks fixture ------------------------------------------------------------------- */

/* MMLU as `qeval run` stores it: every sample under "mmlu", doc_ids 0-19 over four subjects in
 * turn, outcome_json naming the subject and category the document also counts in. nf4 against
 * fp32, (only fp32 right, only nf4 right): abstract_algebra (4, 0), anatomy (3, 1), sociology
 * (1, 1), econometrics (3, 0); STEM (7, 1), social sciences (4, 1), MMLU (11, 2). */
static const struct {
    const char *subject, *category;
    int first_doc, n_docs;
} subjects[4] = {{"mmlu_abstract_algebra", "mmlu_stem", 0, 6}, {"mmlu_anatomy", "mmlu_stem", 6, 6},
                 {"mmlu_sociology", "mmlu_social_sciences", 12, 4}, {"mmlu_econometrics", "mmlu_social_sciences", 16, 4}};
static const int sub_fp32[20] = {1, 1, 1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 0};
static const int sub_nf4[20] = {0, 0, 0, 0, 1, 0, 0, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0};


/* The scores of every subject, category and the group for one variant; the samples, with their
 * "subtasks" member when has_subtasks (a file written before it had none). nf4's doc 0 also names
 * its category twice, the group itself and a task the run has no score for: each is counted once
 * or not at all. */
static void put_subtasks_variant(qh_store *s, int64_t run, const char *variant, const int *outcomes, bool has_subtasks)
{
    qh_variant_row vr = {run, variant, "cpu", 1.0, 0.5, 1000, 1000, 1000, 1000, -1, "test", -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
    MUST(qh_store_put_variants(s, &vr, 1, &e_));
    double all[20], stem[12], social[8];
    for (int i = 0; i < 20; i++) {
        all[i] = outcomes[i];
        if (i < 12)
            stem[i] = outcomes[i];
        else
            social[i - 12] = outcomes[i];
    }
    put_result(s, run, variant, "mmlu", "acc", all, 20);
    put_result(s, run, variant, "mmlu_stem", "acc", stem, 12);
    put_result(s, run, variant, "mmlu_social_sciences", "acc", social, 8);
    for (int k = 0; k < 4; k++) {
        put_result(s, run, variant, subjects[k].subject, "acc", all + subjects[k].first_doc, subjects[k].n_docs);
        for (int d = subjects[k].first_doc; d < subjects[k].first_doc + subjects[k].n_docs; d++) {
            char outcome[256];
            if (!has_subtasks)
                snprintf(outcome, sizeof outcome, "{\"acc\": %d}", outcomes[d]);
            else if (d == 0 && !strcmp(variant, "nf4"))
                snprintf(outcome, sizeof outcome,
                         "{\"acc\": %d, \"subtasks\": [\"%s\", \"%s\", \"%s\", \"mmlu\", \"mmlu_no_such_subject\"]}",
                         outcomes[d], subjects[k].subject, subjects[k].category, subjects[k].category);
            else
                snprintf(outcome, sizeof outcome, "{\"acc\": %d, \"subtasks\": [\"%s\", \"%s\"]}", outcomes[d],
                         subjects[k].subject, subjects[k].category);
            put_outcome(s, run, variant, "mmlu", d, outcome, "0");
        }
    }
}

/* Run 1: fp32 and nf4 with "subtasks"; run 2: the same without. Runs 3-5 are malformed, each in
 * one sample: "subtasks" not an array; an array holding a number; a "subtasks" name whose task
 * stores a sample of its own under the same doc_id. */
static void write_subtasks_fixture(const char *path)
{
    qh_store *s = NULL;
    unlink(path);
    MUST(qh_store_open(path, NULL, &s, &e_));
    if (!s)
        return;
    qh_run info = {.model_path = "models/tiny", .host_cores = -1, .host_ram_bytes = -1, .gpu_memory_bytes = -1};
    for (int r = 0; r < 2; r++) {
        int64_t run;
        MUST(qh_store_create_run(s, &info, &run, &e_));
        put_subtasks_variant(s, run, "fp32", sub_fp32, r == 0);
        put_subtasks_variant(s, run, "nf4", sub_nf4, r == 0);
        MUST(qh_store_finish_run(s, run, QH_RUN_COMPLETE, NULL, &e_));
    }
    static const char *const bad[3][2] = {
        {"mmlu", "{\"acc\": 1, \"subtasks\": \"mmlu_anatomy\"}"},
        {"mmlu", "{\"acc\": 1, \"subtasks\": [\"mmlu_anatomy\", 7]}"},
        {"mmlu_anatomy", "{\"acc\": 0}"},
    };
    for (int r = 0; r < 3; r++) {
        int64_t run;
        MUST(qh_store_create_run(s, &info, &run, &e_));
        double one = 1;
        put_result(s, run, "fp32", "mmlu", "acc", &one, 1);
        put_result(s, run, "fp32", "mmlu_anatomy", "acc", &one, 1);
        put_outcome(s, run, "fp32", bad[r][0], 6, bad[r][1], "0");
        if (r == 2)
            put_outcome(s, run, "fp32", "mmlu", 6, "{\"acc\": 1, \"subtasks\": [\"mmlu_anatomy\"]}", "0");
        MUST(qh_store_finish_run(s, run, QH_RUN_COMPLETE, NULL, &e_));
    }
    qh_store_close(s);
}

/* ---- helpers ----------------------------------------------------------------------------------- */

static char *render(qr_report *r, qr_format format)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    qe_error err = {0};
    qe_status rc = qr_render(r, format, NULL, f, &err);
    fclose(f);
    if (rc != QE_OK)
        fprintf(stderr, "render: %s\n", err.msg);
    CHECK_INT_EQ(QE_OK, rc);
    return text;
}

#define CHECK_CONTAINS(haystack, needle)                                                         \
    do {                                                                                         \
        if ((haystack) && strstr((haystack), (needle))) check_n_passed++;                        \
        else { check_n_failed++; fprintf(stderr, "%s:%d: output lacks \"%s\"\n", __FILE__, __LINE__, (needle)); } \
    } while (0)

/* The CSV row whose variant, task and metric columns (3, 4, 5) match; the field `column` of it. */
static double csv_field(const char *csv, const char *variant, const char *task, const char *metric, int column)
{
    char key[256];
    snprintf(key, sizeof key, ",%s,%s,%s,", variant, task, metric);
    const char *row = strstr(csv, key);
    if (!row)
        return -999;
    while (row > csv && row[-1] != '\n')
        row--;
    for (int c = 0; c < column; c++)
        row = strchr(row, ',') + 1;
    return *row == ',' ? NAN : strtod(row, NULL);
}

static const cJSON *json_score(const cJSON *root, const char *variant, const char *task, const char *metric)
{
    const cJSON *v, *s;
    cJSON_ArrayForEach(v, cJSON_GetObjectItem(root, "variants"))
    {
        if (strcmp(cJSON_GetObjectItem(v, "name")->valuestring, variant))
            continue;
        cJSON_ArrayForEach(s, cJSON_GetObjectItem(v, "scores"))
        {
            if (!strcmp(cJSON_GetObjectItem(s, "task")->valuestring, task) &&
                !strcmp(cJSON_GetObjectItem(s, "metric")->valuestring, metric))
                return s;
        }
    }
    return NULL;
}

static double json_num(const cJSON *o, const char *path)
{
    /* "a.b[1]": object keys then at most one array index */
    char buf[128];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *part = strtok(buf, "."); part && o; part = strtok(NULL, ".")) {
        char *bracket = strchr(part, '[');
        int index = -1;
        if (bracket)
            index = atoi(bracket + 1), *bracket = 0;
        o = cJSON_GetObjectItem(o, part);
        if (index >= 0)
            o = cJSON_GetArrayItem(o, index);
    }
    return cJSON_IsNumber(o) ? o->valuedouble : NAN;
}

static int run_qeval(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "\"%s\" %s >/dev/null 2>&1", getenv("QEVAL_BIN") ? getenv("QEVAL_BIN") : "./qeval", args);
    int status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- tests -------------------------------------------------------------------------------------- */

static void test_markdown(qr_report *r)
{
    char *md = render(r, QR_FORMAT_MD);
    /* main table: nf4's MMLU 9/20 with 0.45 +- 1.96 x 0.1141 and its paired change, McNemar b=6 c=1 */
    CHECK_CONTAINS(md, "| nf4 | 0.15 | 0.12 | 0.14 | 1.20 | " QR_DASH " | 0.15 | 45.0 [22.6, 67.4] | -25.0 [-49.1, -0.9] p=0.125 |");
    CHECK_CONTAINS(md, "| fp32 | 1.00 | 1.00 | 1.00 | 1.20 | " QR_DASH " | 1.00 | 70.0 [49.4, 90.6] | " QR_DASH " |");
    CHECK_CONTAINS(md, "56.9 [49.1, 64.7] | -3.9\\* [-5.7, -2.0] p=0.005 |"); /* nf4 mc2, paired t */
    CHECK_CONTAINS(md, "| 0.0650 | 65.0 | 533.3 | 25.0 |");                  /* nf4 KL, top-1, speed */
    CHECK_CONTAINS(md, "| 0.0250 | 75.0 | 666.7 | 30.0 |");                  /* int8 */
    CHECK_CONTAINS(md, "| " QR_DASH " | " QR_DASH " | 333.3 | 20.0 |");       /* fp32 */
    /* detail: MMLU subjects and GSM8K's two filters */
    CHECK_CONTAINS(md, "| subject: anatomy | 10 | 40.0 [8.0, 72.0] |");
    CHECK_CONTAINS(md, "| GSM8K exact match (flexible) | 10 | 80.0 [53.9, 100.0] |");
    CHECK_CONTAINS(md, "| GSM8K exact match (strict) | 10 |");
    CHECK_CONTAINS(md, "| MMLU accuracy | 20 |");
    CHECK_CONTAINS(md, "| TruthfulQA MC2 | 8 |");
    CHECK_CONTAINS(md, " MMLU accuracy | \xce\x94 MMLU accuracy vs fp32 | GSM8K exact match (strict) |"); /* summary header */
    CHECK_CONTAINS(md, "### What changed");
    CHECK_CONTAINS(md, "12 answers differ from fp32's");
    /* the question from the store; the stored choice indices 0 and 1 as MMLU's letters */
    CHECK_CONTAINS(md, "| nf4 | mmlu\\_abstract\\_algebra | 8 | Item 8? | A | B | fp32 | 0.800 |");
    CHECK_CONTAINS(md, "| nf4 | mmlu\\_anatomy | 9 | Item 9? | B | C | neither | 0.400 |");
    CHECK_CONTAINS(md, "## qeval report: tiny \xe2\x80\x94 run 1\n\nmodels/tiny\n"); /* the model's name, then its path */
    CHECK_CONTAINS(md, "| model sha256 | 0123abcd |");
    free(md);
}

static void test_csv(qr_report *r)
{
    char *csv = render(r, QR_FORMAT_CSV);
    CHECK(csv && !strncmp(csv, "run_id,model,variant,task,metric,benchmark,label,role,value,std_error,ci_low,ci_high,n,", 86));
    /* columns: 8 value, 9 std_error, 10 ci_low, 11 ci_high, 12 n, 14 delta, 15/16 its ci, 17 p, 19 n_pairs */
    CHECK_NEAR(0.45, csv_field(csv, "nf4", "mmlu", "acc", 8), 1e-9);
    CHECK_NEAR(0.1141328865, csv_field(csv, "nf4", "mmlu", "acc", 9), 1e-9);
    CHECK_NEAR(0.2263036529, csv_field(csv, "nf4", "mmlu", "acc", 10), 1e-9);
    CHECK_NEAR(0.6736963471, csv_field(csv, "nf4", "mmlu", "acc", 11), 1e-9);
    CHECK_NEAR(-0.25, csv_field(csv, "nf4", "mmlu", "acc", 14), 1e-9);
    CHECK_NEAR(-0.4910961166, csv_field(csv, "nf4", "mmlu", "acc", 15), 1e-9);
    CHECK_NEAR(-0.008903883444, csv_field(csv, "nf4", "mmlu", "acc", 16), 1e-9);
    CHECK_NEAR(0.125, csv_field(csv, "nf4", "mmlu", "acc", 17), 1e-12);
    CHECK_NEAR(20, csv_field(csv, "nf4", "mmlu", "acc", 19), 0);
    CHECK_NEAR(1.0, csv_field(csv, "int8", "mmlu", "acc", 17), 1e-12);
    CHECK_NEAR(-0.1421907322, csv_field(csv, "int8", "mmlu", "acc", 15), 1e-9);
    CHECK_NEAR(0.004776314684, csv_field(csv, "nf4", "truthfulqa_mc2", "acc", 17), 1e-9);
    CHECK_NEAR(-0.03875, csv_field(csv, "nf4", "truthfulqa_mc2", "acc", 14), 1e-9);
    CHECK_NEAR(-0.05743126532, csv_field(csv, "nf4", "truthfulqa_mc2", "acc", 15), 1e-9);
    CHECK_NEAR(0.1970220722, csv_field(csv, "int8", "truthfulqa_mc2", "acc", 17), 1e-9);
    /* the quoted metric holds a comma: one column further */
    CHECK_NEAR(0.5, csv_field(csv, "nf4", "gsm8k", "\"exact_match,strict-match\"", 18), 1e-12);
    CHECK(isnan(csv_field(csv, "fp32", "mmlu", "acc", 14))); /* the reference has no delta */
    CHECK_CONTAINS(csv, ",nf4,mmlu,acc,mmlu,MMLU accuracy,headline,");
    CHECK_CONTAINS(csv, ",mcnemar-exact,20,150000000,140000000,125000000,1200000000,,533.3333333,25,0.065,0.4,0.65\n");
    free(csv);
}

static void test_json(qr_report *r)
{
    char *text = render(r, QR_FORMAT_JSON);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    CHECK(root != NULL);
    CHECK_STR_EQ("qeval-report", cJSON_GetStringValue(cJSON_GetObjectItem(root, "format")));
    CHECK_STR_EQ("fp32", cJSON_GetStringValue(cJSON_GetObjectItem(root, "reference_variant")));
    const cJSON *s = json_score(root, "nf4", "mmlu", "acc");
    CHECK_NEAR(0.45, json_num(s, "value"), 1e-12);
    CHECK_NEAR(0.2263036529, json_num(s, "ci95[0]"), 1e-9);
    CHECK_NEAR(-0.25, json_num(s, "vs_reference.delta"), 1e-12);
    CHECK_NEAR(-0.4910961166, json_num(s, "vs_reference.ci95[0]"), 1e-9);
    CHECK_NEAR(0.125, json_num(s, "vs_reference.p_value"), 1e-12);
    CHECK_NEAR(6, json_num(s, "vs_reference.reference_only_right"), 0);
    CHECK_NEAR(1, json_num(s, "vs_reference.variant_only_right"), 0);
    s = json_score(root, "nf4", "truthfulqa_mc2", "acc");
    CHECK_STR_EQ("paired-t", cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "vs_reference"), "test")));
    CHECK_NEAR(0.004776314684, json_num(s, "vs_reference.p_value"), 1e-9);
    CHECK(cJSON_IsNull(cJSON_GetObjectItem(json_score(root, "fp32", "mmlu", "acc"), "vs_reference")));
    const cJSON *nf4 = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "variants"), 2);
    CHECK_NEAR(0.065, json_num(nf4, "kl_mean"), 1e-12);
    CHECK_NEAR(0.4, json_num(nf4, "kl_p99"), 1e-12);
    CHECK_NEAR(0.65, json_num(nf4, "top1_agreement"), 1e-12);
    CHECK_NEAR(1600.0 / 3, json_num(nf4, "prefill_tok_s"), 1e-9);
    CHECK_NEAR(512, json_num(nf4, "predicted_context"), 0);               /* the stored prediction */
    CHECK_NEAR(150012288, json_num(nf4, "predicted_peak_bytes"), 0);
    CHECK_NEAR(4096, json_num(nf4, "predicted_kv_cache_bytes"), 0);
    CHECK_NEAR(12, json_num(root, "n_changes"), 0);
    const cJSON *first = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "changes"), 0);
    CHECK_STR_EQ("mmlu_abstract_algebra", cJSON_GetStringValue(cJSON_GetObjectItem(first, "task")));
    CHECK_NEAR(8, json_num(first, "doc_id"), 0);
    CHECK_NEAR(0.8, json_num(first, "confidence"), 1e-6);
    CHECK_STR_EQ("reference", cJSON_GetStringValue(cJSON_GetObjectItem(first, "right")));
    CHECK_NEAR(1234, json_num(root, "run.options.seed"), 0);
    cJSON_Delete(root);
    free(text);
}

static void test_compare(const char *db)
{
    char args[1024];
    /* run 2: a 30-point drop, McNemar b=6 c=0, p = 0.03125 */
    snprintf(args, sizeof args, "compare --db %s --baseline 1 --candidate 2 --max-drop 1", db);
    CHECK_INT_EQ(1, run_qeval(args));
    snprintf(args, sizeof args, "compare --db %s --baseline 1 --candidate %s:2 --max-drop 40", db, db);
    CHECK_INT_EQ(0, run_qeval(args)); /* the drop is below the threshold */
    snprintf(args, sizeof args, "compare --db %s --baseline 1 --candidate 2 --max-drop 1 --alpha 0.01", db);
    CHECK_INT_EQ(0, run_qeval(args)); /* not significant at 0.01 */
    snprintf(args, sizeof args, "compare --db %s --baseline 1 --candidate 3 --max-drop 1", db);
    CHECK_INT_EQ(0, run_qeval(args)); /* 10 points but p = 0.5 */
    snprintf(args, sizeof args, "compare --db %s --baseline 1 --candidate 4", db);
    CHECK_INT_EQ(0, run_qeval(args)); /* unpaired: p = 0.1098 */
    snprintf(args, sizeof args, "compare --db %s --baseline 1", db);
    CHECK_INT_EQ(2, run_qeval(args));
    snprintf(args, sizeof args, "compare --db %s --baseline 1 --candidate 99", db);
    CHECK_INT_EQ(2, run_qeval(args)); /* no such run: the user's mistake */

    qe_error err = {0};
    qr_report *base = NULL, *drop = NULL, *unpaired = NULL;
    CHECK_INT_EQ(QE_OK, qr_report_open(db, "1", &base, &err));
    CHECK_INT_EQ(QE_OK, qr_report_open(db, "2", &drop, &err));
    CHECK_INT_EQ(QE_OK, qr_report_open(db, "4", &unpaired, &err));
    qr_diff_options opts = {1.0, 0.05};
    qr_diff_row *rows = NULL;
    size_t n = 0;
    bool is_failing = false;
    if (base && drop && unpaired) {
        CHECK_INT_EQ(QE_OK, qr_diff(base, drop, &opts, &rows, &n, &is_failing, &err));
        CHECK_INT_EQ(1, n);
        CHECK(is_failing);
        if (n) {
            CHECK_NEAR(-0.3, rows[0].delta.delta, 1e-12);
            CHECK_NEAR(0.03125, rows[0].delta.p_value, 1e-12);
            CHECK_NEAR(-0.506053947, rows[0].delta.ci_low, 1e-9);
            CHECK_INT_EQ(QR_REGRESSION, rows[0].verdict);
        }
        free(rows);
        CHECK_INT_EQ(QE_OK, qr_diff(base, unpaired, &opts, &rows, &n, &is_failing, &err));
        CHECK(!is_failing);
        if (n) {
            CHECK_INT_EQ(QR_TEST_TWO_PROP_Z, rows[0].delta.test);
            CHECK_NEAR(0.1097689398, rows[0].delta.p_value, 1e-9);
            CHECK_NEAR(-0.4963033565, rows[0].delta.ci_low, 1e-9); /* Newcombe's hybrid score interval */
            CHECK_NEAR(0.05195628823, rows[0].delta.ci_high, 1e-9);
            CHECK_INT_EQ(QR_NO_CHANGE, rows[0].verdict);
        }
        free(rows);
    }
    qr_report_free(base), qr_report_free(drop), qr_report_free(unpaired);
}

static void test_cli(const char *db, const char *dir)
{
    char args[1024], path[600];
    snprintf(path, sizeof path, "%s/r.json", dir);
    snprintf(args, sizeof args, "report --db %s --run 1 --format json -o %s", db, path);
    CHECK_INT_EQ(0, run_qeval(args));
    CHECK(access(path, R_OK) == 0);
    snprintf(args, sizeof args, "report --db %s --format pdf", db);
    CHECK_INT_EQ(2, run_qeval(args));
    snprintf(args, sizeof args, "report --db %s/missing.db", dir);
    CHECK_INT_EQ(1, run_qeval(args));
    snprintf(path, sizeof path, "%s/t.svg", dir);
    snprintf(args, sizeof args, "trend --db %s --variant fp32 --task mmlu -o %s", db, path);
    CHECK_INT_EQ(0, run_qeval(args));

    /* trend: fp32 MMLU over the four runs */
    qh_store_options ro = {.is_read_only = true};
    qh_store *s = NULL;
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qh_store_open(db, &ro, &s, &err));
    qr_trend_filter f = {"tiny", "fp32", "mmlu", "acc"};
    qr_trend *t = NULL;
    if (s && qr_trend_load(&s, 1, &f, &t, &err) == QE_OK) {
        CHECK_INT_EQ(4, t->n_runs);
        CHECK_INT_EQ(1, t->n_series);
        double expected[4] = {0.70, 0.40, 0.60, 0.45};
        CHECK_CLOSE(expected, t->values, 4, 1e-12);
    }
    CHECK(t != NULL);
    qr_trend_free(t);

    /* two files (as a Slurm nightly's per-night files): all their runs, in start-time order (the
     * labels lead with it; the fixture's runs share seconds, so ties are not pinned here) */
    qh_store *two[2] = {s, NULL};
    CHECK_INT_EQ(QE_OK, qh_store_open(db, &ro, &two[1], &err));
    t = NULL;
    if (two[1] && qr_trend_load(two, 2, &f, &t, &err) == QE_OK) {
        CHECK_INT_EQ(8, t->n_runs);
        double sum = 0;
        for (int i = 0; i < 8; i++) {
            sum += t->values[i];
            CHECK(i == 0 || strncmp(t->run_labels[i - 1], t->run_labels[i], 16) <= 0);
        }
        CHECK_CLOSE(&(double){2 * (0.70 + 0.40 + 0.60 + 0.45)}, &sum, 1, 1e-12);
        CHECK(t->run_labels[0][4] == '-' && strstr(t->run_labels[0], " #") != NULL);
    }
    CHECK(t != NULL);
    qr_trend_free(t);
    qh_store_close(two[1]);
    qh_store_close(s);
    snprintf(args, sizeof args, "trend --db %s --db %s --variant fp32 --task mmlu", db, db);
    CHECK_INT_EQ(0, run_qeval(args));
    snprintf(args, sizeof args, "trend --db %s --db %s/missing.db", db, dir);
    CHECK_INT_EQ(1, run_qeval(args));
}

/* The in-memory model on its own: Wilson when no standard error is known, the unpaired z-test
 * on two standard errors, "what changed" with unknown confidences last. */
static void test_model(void)
{
    qe_error err = {0};
    qr_report *a = NULL, *b = NULL;
    CHECK_INT_EQ(QE_OK, qr_report_create(&a, &err));
    CHECK_INT_EQ(QE_OK, qr_report_create(&b, &err));
    if (!a || !b)
        return;
    qr_score acc = {"fp32", "t", "acc", NULL, "T", QR_HEADLINE, 0.5, NAN, 10, true, true};
    CHECK_INT_EQ(QE_OK, qr_report_add_score(a, &acc, &err));
    double lo, hi;
    qr_score_interval(&a->scores[0], &lo, &hi);
    CHECK_NEAR(0.2365930905, lo, 1e-9); /* Wilson, 5 of 10 */
    CHECK_NEAR(0.7634069095, hi, 1e-9);
    CHECK_STR_EQ("t", a->scores[0].benchmark); /* defaults to the task */

    qr_score cont_a = {"fp32", "c", "mc2", NULL, NULL, QR_HEADLINE, 0.6, 0.05, 100, false, false};
    qr_score cont_b = {"fp32", "c", "mc2", NULL, NULL, QR_HEADLINE, 0.5, 0.05, 100, false, false};
    CHECK_INT_EQ(QE_OK, qr_report_add_score(a, &cont_a, &err));
    CHECK_INT_EQ(QE_OK, qr_report_add_score(b, &cont_b, &err));
    qr_delta d;
    CHECK_INT_EQ(QE_OK, qr_compare_score(a, NULL, b, &b->scores[0], &d, &err));
    CHECK_INT_EQ(QR_TEST_Z, d.test);
    CHECK_NEAR(-0.1, d.delta, 1e-12);
    CHECK_NEAR(0.1572992071, d.p_value, 1e-9);

    /* unpaired shares at the edges, 1 of 1 against 0 of 1: an interval, not the point -1 */
    qr_score right = {"fp32", "one", "acc", NULL, NULL, QR_DETAIL, 1, NAN, 1, true, true};
    qr_score wrong = {"nf4", "one", "acc", NULL, NULL, QR_DETAIL, 0, NAN, 1, true, true};
    CHECK_INT_EQ(QE_OK, qr_report_add_score(b, &right, &err));
    CHECK_INT_EQ(QE_OK, qr_report_add_score(b, &wrong, &err));
    CHECK_INT_EQ(QE_OK, qr_compare_score(b, "fp32", b, &b->scores[2], &d, &err));
    CHECK_INT_EQ(QR_TEST_TWO_PROP_Z, d.test);
    CHECK_NEAR(-1, d.delta, 1e-12);
    CHECK_NEAR(-1, d.ci_low, 1e-9);
    CHECK_NEAR(0.1221087207, d.ci_high, 1e-9);
    CHECK_NEAR(0.1572992071, d.p_value, 1e-9);

    /* b's variant "q" changes two answers of a: one with a known confidence, one without */
    CHECK_INT_EQ(QE_OK, qr_set_string(&a->reference_variant, "fp32", &err));
    qr_score q = {"q", "t", "acc", NULL, NULL, QR_HEADLINE, 0.5, NAN, 2, true, true};
    CHECK_INT_EQ(QE_OK, qr_report_add_score(a, &q, &err));
    qr_sample samples[] = {
        {"fp32", "t", "acc", 0, 1, "Q0", "A", 0.9, NULL, -1}, {"fp32", "t", "acc", 1, 0, "Q1 | with a pipe", "B", 0.9, NULL, -1},
        {"q", "t", "acc", 0, 0, NULL, "C", NAN, NULL, -1},    {"q", "t", "acc", 1, 1, NULL, "A", 0.6, NULL, -1},
    };
    for (size_t i = 0; i < 4; i++)
        CHECK_INT_EQ(QE_OK, qr_report_add_sample(a, &samples[i], &err));
    qr_change *changes = NULL;
    size_t n = 0;
    CHECK_INT_EQ(QE_OK, qr_report_changes(a, &changes, &n, &err));
    CHECK_INT_EQ(2, n);
    if (n == 2) {
        CHECK_INT_EQ(1, changes[0].doc_id);
        CHECK_INT_EQ(QR_RIGHT_VARIANT, changes[0].who_right);
        CHECK_STR_EQ("Q1 | with a pipe", changes[0].question);
        CHECK_INT_EQ(0, changes[1].doc_id);
        CHECK_INT_EQ(QR_RIGHT_REFERENCE, changes[1].who_right);
    }
    free(changes);
    char *md = render(a, QR_FORMAT_MD);
    CHECK_CONTAINS(md, "| q | t | 1 | Q1 \\| with a pipe | B | A | q | 0.600 |"); /* the pipe is escaped */
    free(md);
    qr_report_free(a);
    qr_report_free(b);
}

/* Run 5 as a reader sees it: the title names the model (the GGUF's base name, its cache path on
 * a line of its own), mc2's intervals stop at 100 points, MMLU's answers read as letters, labels
 * as people say them, and the long HumanEval prompt and generations collapsed to their first
 * non-blank lines. Expected intervals: tests/golden/report_expected.txt ("run 5"): fp32
 * [0.9322835753, 1.017716425], nf4 [0.9390102484, 1.000989752] before clipping. */
static void test_cached_model_run(const char *db)
{
    qe_error err = {0};
    qr_report *r = NULL;
    CHECK_INT_EQ(QE_OK, qr_report_open(db, "5", &r, &err));
    if (!r)
        return;
    char *md = render(r, QR_FORMAT_MD), *html = render(r, QR_FORMAT_HTML), *csv = render(r, QR_FORMAT_CSV);
    CHECK_CONTAINS(md, "## qeval report: SmolLM2-135M-Instruct.Q4\\_1 \xe2\x80\x94 run 5\n\n/home/u/.cache/qeval/models/");
    CHECK_CONTAINS(html, "<title>SmolLM2-135M-Instruct.Q4_1 \xe2\x80\x94 qeval report</title>");
    CHECK_CONTAINS(html, "<h1>SmolLM2-135M-Instruct.Q4_1 \xe2\x80\x94 qeval report, run 5</h1>\n<p class=\"path\">" CACHED_GGUF "</p>");
    CHECK(html && !strstr(html, "<h1>/home")); /* the path is no longer the title */

    /* clipped at 100 points (unclipped: 101.8 and 100.1) */
    CHECK_CONTAINS(md, "| TruthfulQA MC2 | 4 | 97.5 [93.2, 100.0] | 97.0 [93.9, 100.0] |");
    CHECK_CONTAINS(html, "<td>97.5<br><span class=\"ci\">[93.2,&#160;100.0]</span></td>");
    CHECK_NEAR(0.9322835753, csv_field(csv, "fp32", "truthfulqa_mc2", "acc", 10), 1e-9);
    CHECK_NEAR(1.0, csv_field(csv, "fp32", "truthfulqa_mc2", "acc", 11), 0);
    CHECK_NEAR(1.0, csv_field(csv, "nf4", "truthfulqa_mc2", "acc", 11), 0);
    const qr_score *mc2 = qr_report_find_score(r, "nf4", "truthfulqa_mc2", "acc");
    CHECK(mc2 && mc2->is_unit_range && !mc2->is_binary);

    /* labels: "pass@1,create_test" read as HumanEval's pass@1 */
    CHECK_CONTAINS(md, "| HumanEval pass@1 | \xce\x94 HumanEval pass@1 vs fp32 |");
    CHECK_CONTAINS(md, "| HumanEval pass@1 | 1 | 100.0 [");
    CHECK_CONTAINS(md, "\n#### HumanEval\n");
    CHECK_CONTAINS(html, "<h3>TruthfulQA</h3>");
    CHECK(md && !strstr(md, "create_test") && !strstr(md, "create\\_test"));

    /* MMLU: choices 3 and 1 as D and B */
    CHECK_CONTAINS(md, "| nf4 | mmlu | 0 | " QR_DASH " | D | B | fp32 | 0.644 |");
    CHECK_CONTAINS(html, "<td class=\"x\">D</td><td class=\"x\">B</td>");

    /* long prose collapsed: the first two non-blank lines, the whole text inside */
    CHECK_CONTAINS(html, "<td class=\"x\"><details><summary>def add(a, b):\n    # Add two numbers.\xe2\x80\xa6</summary>\n\ndef add(a, b):\n");
    CHECK_CONTAINS(html, "<td class=\"x\"><details><summary>    return a + b\n    # step 1 of a long explanation\xe2\x80\xa6</summary>");
    CHECK_CONTAINS(html, "<td class=\"x\"><details><summary>    return a - b\n    # step 1 of a long explanation\xe2\x80\xa6</summary>");
    CHECK_CONTAINS(html, "    # step 40 of a long explanation\n</details></td>");
    /* markdown cuts it to one line */
    CHECK_CONTAINS(md, "|   def add(a, b):     # Add two numbers. ");
    CHECK(md && !strstr(md, "step 40"));
    free(md), free(html), free(csv);
    qr_report_free(r);
}

/* The names report_labels.c gives, on ordinary and odd inputs. */
static void test_labels(void)
{
    static const struct {
        const char *path, *name;
    } models[] = {
        {CACHED_GGUF, "SmolLM2-135M-Instruct.Q4_1"},
        {"/work/shared/models/stories260K", "stories260K"},
        {"/work/shared/models/stories260K///", "stories260K"},
        {"/root/.cache/huggingface/hub/models--Qwen--Qwen2-0.5B/snapshots/91d2aff/", "Qwen/Qwen2-0.5B"},
        {"models--a--b--c", "a/b/c"},
        {"my-models--x/y.safetensors", "y"},
        {"plain.gguf", "plain"},
        {".gguf", ".gguf"},
        {"/", ""},
        {"", ""},
        {NULL, ""},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++)
        CHECK_STR_EQ(models[i].name, qr_model_name(buf, sizeof buf, models[i].path));
    CHECK_STR_EQ("Smol", qr_model_name(buf, 5, CACHED_GGUF)); /* cut to the buffer */

    static const struct {
        const char *benchmark, *answer, *shown;
    } answers[] = {
        {"mmlu", "0", "A"}, {"mmlu", "3", "D"}, {"mmlu", "25", "Z"}, {"mmlu", "26", "26"}, {"mmlu", "123", "123"},
        {"mmlu", "B", "B"}, {"mmlu", "1x", "1x"}, {"mmlu", "", ""},   {"mmlu", "-1", "-1"}, {"truthfulqa", "2", "2"},
        {"gsm8k", "42", "42"}, {NULL, "1", "1"},
    };
    for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++)
        CHECK_STR_EQ(answers[i].shown, qr_answer_text(answers[i].benchmark, answers[i].answer, buf));
    CHECK(qr_answer_text("mmlu", NULL, buf) == NULL);

    static const struct {
        const char *task, *metric, *benchmark, *label;
        qr_role role;
    } places[] = {
        {"mmlu", "acc", "mmlu", "MMLU accuracy", QR_HEADLINE},
        {"mmlu_high_school_us_history", "acc", "mmlu", "subject: high school us history", QR_DETAIL},
        {"gsm8k", "exact_match,strict-match", "gsm8k", "GSM8K exact match (strict)", QR_HEADLINE},
        {"gsm8k", "exact_match,flexible-extract", "gsm8k", "GSM8K exact match (flexible)", QR_DETAIL},
        {"truthfulqa_mc1", "acc", "truthfulqa", "TruthfulQA MC1", QR_DETAIL},
        {"humaneval", "pass@1,create_test", "humaneval", "HumanEval pass@1", QR_HEADLINE},
        {"humaneval", "pass@1", "humaneval", "HumanEval pass@1", QR_HEADLINE},
        {"humaneval", "pass@10", "humaneval", "humaneval pass@10", QR_HEADLINE}, /* not pass@1 */
        {"gsm8k", "exact_match", "gsm8k", "gsm8k exact match", QR_HEADLINE},      /* no filter: no rule */
        {"arc_easy", "acc_norm,none", "arc_easy", "arc_easy normalized accuracy", QR_HEADLINE},
        {"arc_easy", "f1,my-filter", "arc_easy", "arc_easy f1 (my-filter)", QR_HEADLINE},
        {"x", ",", "x", "x ", QR_HEADLINE},
    };
    for (size_t i = 0; i < sizeof places / sizeof places[0]; i++) {
        char label[128];
        qr_score s = {.variant = "fp32", .task = (char *)places[i].task, .metric = (char *)places[i].metric};
        qr_place_score(&s, false, -1, label, sizeof label);
        CHECK_STR_EQ(places[i].benchmark, s.benchmark);
        CHECK_STR_EQ(places[i].label, s.label);
        CHECK_INT_EQ(places[i].role, s.role);
    }
    /* a headline says its shots (schema v4 stores them); a detail row does not */
    static const struct {
        const char *task, *metric, *label;
        int64_t num_fewshot;
    } shots[] = {
        {"mmlu", "acc,none", "MMLU accuracy (5-shot)", 5},
        {"gsm8k", "exact_match,strict-match", "GSM8K exact match (strict, 5-shot)", 5},
        {"gsm8k", "exact_match,flexible-extract", "GSM8K exact match (flexible)", 5},
        {"truthfulqa_mc2", "acc,none", "TruthfulQA MC2 (0-shot)", 0},
        {"arc_easy", "acc_norm,none", "arc_easy normalized accuracy (25-shot)", 25},
    };
    for (size_t i = 0; i < sizeof shots / sizeof shots[0]; i++) {
        char label[128];
        qr_score s = {.variant = "fp32", .task = (char *)shots[i].task, .metric = (char *)shots[i].metric};
        qr_place_score(&s, false, shots[i].num_fewshot, label, sizeof label);
        CHECK_STR_EQ(shots[i].label, s.label);
    }
    CHECK_STR_EQ("MMLU", qr_benchmark_title("mmlu"));
    CHECK_STR_EQ("arc_easy", qr_benchmark_title("arc_easy"));
}

/* Subjects and categories are paired over the documents of the group's samples: n_pairs is their
 * n and p the exact McNemar p of their own discordant pairs (counted by hand in the fixture's
 * comment; tests/golden/report_expected.py checks them with scipy). A file without "subtasks"
 * falls back to the unpaired test; a malformed "subtasks" fails naming the run and the sample. */
static void test_subtasks(const char *dir)
{
    char db[600], args[700];
    snprintf(db, sizeof db, "%s/subtasks.db", dir);
    write_subtasks_fixture(db);
    static const struct {
        const char *task;
        int n;
        double p, delta, ci_low, ci_high;
    } paired[] = {
        {"mmlu_abstract_algebra", 6, 0.125, -4.0 / 6, -1.07986335487, -0.253469978464},
        {"mmlu_anatomy", 6, 0.625, -2.0 / 6, -0.986654661513, 0.319987994847},
        {"mmlu_sociology", 4, 1.0, 0, -0.800151946059, 0.800151946059},
        {"mmlu_econometrics", 4, 0.25, -0.75, -1.23999099614, -0.260009003865},
        {"mmlu_stem", 12, 0.0703125, -0.5, -0.88145747314, -0.11854252686},
        {"mmlu_social_sciences", 8, 0.375, -0.375, -0.890572721249, 0.140572721249},
        {"mmlu", 20, 0.0224609375, -0.45, -0.750793058978, -0.149206941022},
    };
    qe_error err = {0};
    qr_report *r = NULL;
    CHECK_INT_EQ(QE_OK, qr_report_open(db, "1", &r, &err));
    char *text = r ? render(r, QR_FORMAT_JSON) : NULL;
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    for (size_t i = 0; root && i < sizeof paired / sizeof paired[0]; i++) {
        const cJSON *s = json_score(root, "nf4", paired[i].task, "acc");
        const cJSON *vs = cJSON_GetObjectItem(s, "vs_reference");
        CHECK_STR_EQ("mcnemar-exact", cJSON_GetStringValue(cJSON_GetObjectItem(vs, "test")));
        CHECK_NEAR(paired[i].n, json_num(s, "n"), 0);
        CHECK_NEAR(paired[i].n, json_num(s, "vs_reference.n_pairs"), 0);
        CHECK_NEAR(paired[i].p, json_num(s, "vs_reference.p_value"), 1e-12);
        CHECK_NEAR(paired[i].delta, json_num(s, "vs_reference.delta"), 1e-12);
        CHECK_NEAR(paired[i].ci_low, json_num(s, "vs_reference.ci95[0]"), 1e-9);
        CHECK_NEAR(paired[i].ci_high, json_num(s, "vs_reference.ci95[1]"), 1e-9);
    }
    CHECK(root != NULL);
    cJSON_Delete(root);
    free(text);
    text = r ? render(r, QR_FORMAT_CSV) : NULL;
    CHECK_NEAR(12, csv_field(text, "nf4", "mmlu_stem", "acc", 19), 0);
    CHECK_NEAR(0.0703125, csv_field(text, "nf4", "mmlu_stem", "acc", 17), 1e-12);
    free(text);
    text = r ? render(r, QR_FORMAT_MD) : NULL;
    CHECK_CONTAINS(text, "| subject: abstract algebra | 6 | 83.3 [");
    CHECK_CONTAINS(text, "| -66.7 [-108.0, -25.3] p=0.125 |");
    free(text);
    qr_report_free(r);

    /* written before "subtasks": the headline is paired, its subjects not (1 of 6 against 5 of 6) */
    r = NULL;
    CHECK_INT_EQ(QE_OK, qr_report_open(db, "2", &r, &err));
    const qr_score *group = r ? qr_report_find_score(r, "nf4", "mmlu", "acc") : NULL;
    const qr_score *subject = r ? qr_report_find_score(r, "nf4", "mmlu_abstract_algebra", "acc") : NULL;
    CHECK(group && subject);
    if (group && subject) {
        qr_delta d;
        CHECK_INT_EQ(QE_OK, qr_compare_score(r, "fp32", r, group, &d, &err));
        CHECK_INT_EQ(QR_TEST_MCNEMAR, d.test);
        CHECK_INT_EQ(20, d.n_pairs);
        CHECK_INT_EQ(QE_OK, qr_compare_score(r, "fp32", r, subject, &d, &err));
        CHECK_INT_EQ(QR_TEST_TWO_PROP_Z, d.test);
        CHECK_INT_EQ(0, d.n_pairs);
        CHECK_NEAR(0.02092133534, d.p_value, 1e-9);
        CHECK_NEAR(-0.8598670440, d.ci_low, 1e-9); /* Newcombe's hybrid score interval */
        CHECK_NEAR(-0.1054555935, d.ci_high, 1e-9);
    }
    qr_report_free(r);

    static const struct {
        const char *run, *needle;
    } bad[] = {
        {"3", "run 3: sample fp32/mmlu doc 6: outcome_json's \"subtasks\" is not an array of task names"},
        {"4", "run 4: sample fp32/mmlu doc 6: outcome_json's \"subtasks\" is not an array of task names"},
        {"5", "run 5: fp32/mmlu_anatomy acc has outcomes of its own and from samples of mmlu (doc 6)"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = NULL;
        err.msg[0] = 0;
        CHECK_INT_EQ(QE_EFORMAT, qr_report_open(db, bad[i].run, &r, &err));
        CHECK(r == NULL);
        CHECK_CONTAINS(err.msg, bad[i].needle);
        snprintf(args, sizeof args, "report --db %s --run %s", db, bad[i].run);
        CHECK_INT_EQ(1, run_qeval(args));
    }
}

/* Bad inputs: one clear error and a non-zero exit, never a crash. */
static void test_hostile(const char *dir)
{
    char path[600], args[1400];
    qe_error err = {0};
    qh_store *s = NULL;
    snprintf(path, sizeof path, "%s/hostile.db", dir);
    CHECK_INT_EQ(QE_OK, qh_store_open(path, NULL, &s, &err));
    qh_run info = {.model_path = "m", .host_cores = -1, .host_ram_bytes = -1, .gpu_memory_bytes = -1};
    int64_t empty_run = 0, bad_run = 0;
    if (s) {
        qh_store_create_run(s, &info, &empty_run, &err); /* a run with nothing in it */
        qh_store_create_run(s, &info, &bad_run, &err);
        qh_variant_row v = {bad_run, "fp32", "cpu", NAN, NAN, -1, -1, -1, -1, -1, NULL, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
        qh_task_result_row t = {bad_run, "fp32", "mmlu_anatomy", "acc", 0.5, NAN, 2, 0, 1, NULL, -1};
        qh_sample_row x = {bad_run, "fp32", "mmlu_anatomy", 0, "h", "A", "[[1, false]", "A", "{\"acc\": 1", 1, NULL};
        CHECK_INT_EQ(QE_OK, qh_store_put_variants(s, &v, 1, &err));
        CHECK_INT_EQ(QE_OK, qh_store_put_task_results(s, &t, 1, &err));
        CHECK_INT_EQ(QE_OK, qh_store_put_samples(s, &x, 1, &err));
        qh_store_close(s);
    }
    qr_report *r = NULL;
    CHECK_INT_EQ(QE_EFORMAT, qr_report_open(path, "2", &r, &err));
    CHECK(strstr(err.msg, "outcome_json") && strstr(err.msg, "mmlu_anatomy doc 0"));
    CHECK(r == NULL);
    /* an empty run renders in every format */
    CHECK_INT_EQ(QE_OK, qr_report_open(path, "1", &r, &err));
    for (int f = QR_FORMAT_MD; r && f <= QR_FORMAT_JSON; f++)
        free(render(r, (qr_format)f));
    qr_report_free(r);
    snprintf(args, sizeof args, "report --db %s --run 2", path);
    CHECK_INT_EQ(1, run_qeval(args));
    /* not a results file */
    snprintf(path, sizeof path, "%s/text.db", dir);
    FILE *f = fopen(path, "w");
    if (f)
        fputs("hello, not sqlite\n", f), fclose(f);
    snprintf(args, sizeof args, "report --db %s", path);
    CHECK_INT_EQ(1, run_qeval(args));
    snprintf(args, sizeof args, "compare --baseline %s --candidate %s", path, path);
    CHECK_INT_EQ(1, run_qeval(args));
    snprintf(args, sizeof args, "trend --db %s", path);
    CHECK_INT_EQ(1, run_qeval(args));
    snprintf(args, sizeof args, "compare --baseline 1 --candidate 2 --alpha 2");
    CHECK_INT_EQ(2, run_qeval(args));
    snprintf(args, sizeof args, "report --max-changes -3");
    CHECK_INT_EQ(2, run_qeval(args));
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--write-fixture"))
        return write_fixture(argv[2]);
    char dir[] = "/tmp/qeval_report_XXXXXX", db[600];
    if (!mkdtemp(dir))
        return 1;
    snprintf(db, sizeof db, "%s/fixture.db", dir);
    CHECK_INT_EQ(0, write_fixture(db));

    qe_error err = {0};
    qr_report *r = NULL;
    CHECK_INT_EQ(QE_OK, qr_report_open(db, "1", &r, &err));
    if (r) {
        test_markdown(r);
        test_csv(r);
        test_json(r);
    } else {
        fprintf(stderr, "load: %s\n", err.msg);
    }
    qr_report_free(r);
    test_model();
    test_labels();
    test_cached_model_run(db);
    test_compare(db);
    test_cli(db, dir);
    test_hostile(dir);
    test_subtasks(dir);

    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
