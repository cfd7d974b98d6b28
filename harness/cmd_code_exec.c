/* qeval code-exec — scores HumanEval completions made anywhere, as OpenAI human-eval's
 * evaluate_functional_correctness does: every completion runs in the sandbox against its
 * problem's tests; one result line per completion, then pass@k on stdout. This is the only
 * command that runs model-written code, and only on the user's request. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "humaneval_file.h"
#include "sandbox.h"

typedef struct {
    const char *task;
    const char *completions_path;
    const char *data_dir;
    const char *output_path;
    int n_workers;
    qh_sandbox_config sandbox;
} code_exec_options;

static void usage(FILE *out)
{
    fprintf(out, "usage: qeval code-exec --task humaneval --completions FILE.jsonl [--data-dir D]\n"
                 "                       [--exec-timeout S] [--workers N] [--isolation auto|userns|rootns|none]\n"
                 "                       [-o results.jsonl]\n"
                 "Runs untrusted model-written code in the sandbox (see docs/sandbox.md).\n"
                 "FILE.jsonl lines: {\"task_id\": ..., \"completion\": ...}; results default to FILE_results.jsonl.\n");
}

static int parse_options(int argc, char **argv, code_exec_options *opt)
{
    memset(opt, 0, sizeof *opt);
    qh_sandbox_config_default(&opt->sandbox);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return -1;
        }
        if (i + 1 >= argc)
            return qh_usage_error("code-exec", "unknown option or missing value: %s", a);
        const char *v = argv[++i];
        char *end = NULL;
        if (!strcmp(a, "--task")) opt->task = v;
        else if (!strcmp(a, "--completions")) opt->completions_path = v;
        else if (!strcmp(a, "--data-dir")) opt->data_dir = v;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output")) opt->output_path = v;
        else if (!strcmp(a, "--exec-timeout")) {
            opt->sandbox.timeout_s = strtod(v, &end);
            if (*end || !(opt->sandbox.timeout_s > 0))
                return qh_usage_error("code-exec", "--exec-timeout wants seconds > 0, got '%s'", v);
        } else if (!strcmp(a, "--workers")) {
            long n = strtol(v, &end, 10);
            if (*end || n < 1 || n > 1024)
                return qh_usage_error("code-exec", "--workers wants 1..1024, got '%s'", v);
            opt->n_workers = (int)n;
        } else if (!strcmp(a, "--isolation")) {
            qh_isolation_mode m;
            for (m = QH_ISOLATION_AUTO; m <= QH_ISOLATION_NONE; m++)
                if (!strcmp(v, qh_isolation_name(m)))
                    break;
            if (m > QH_ISOLATION_NONE)
                return qh_usage_error("code-exec", "--isolation wants auto, userns, rootns or none, got '%s'", v);
            opt->sandbox.mode = m;
        } else
            return qh_usage_error("code-exec", "unknown option %s", a);
    }
    if (!opt->task || strcmp(opt->task, "humaneval") != 0)
        return qh_usage_error("code-exec", "--task humaneval is required (the only code task)");
    if (!opt->completions_path)
        return qh_usage_error("code-exec", "--completions FILE.jsonl is required");
    return 0;
}

/* D/humaneval/HumanEval.jsonl.gz, else D/HumanEval.jsonl.gz; D defaults to the shared datasets. */
static void humaneval_path(const char *data_dir, char *out, size_t cap)
{
    char dir[4096];
    const char *shared = getenv("QEVAL_SHARED");
    if (data_dir)
        snprintf(dir, sizeof dir, "%s", data_dir);
    else if (shared && *shared)
        snprintf(dir, sizeof dir, "%s/datasets", shared);
    else
        snprintf(dir, sizeof dir, "%s/../shared/datasets", QEVAL_SOURCE_DIR);
    snprintf(out, cap, "%s/humaneval/HumanEval.jsonl.gz", dir);
    if (access(out, R_OK) != 0)
        snprintf(out, cap, "%s/HumanEval.jsonl.gz", dir);
}

typedef struct {
    char *task_id, *completion;
    size_t problem;
} completion_line;

static qe_status load_completions(const char *path, const qh_humaneval_problem *problems, size_t n_problems,
                                  completion_line **out, size_t *n_out, qe_error *err)
{
    char *text = NULL;
    size_t n_bytes = 0;
    qe_status rc = qh_read_gz_file(path, &text, &n_bytes, err);
    if (rc != QE_OK)
        return rc;
    size_t cap = 1;
    for (size_t i = 0; i < n_bytes; i++)
        cap += text[i] == '\n';
    completion_line *lines = calloc(cap, sizeof *lines);
    size_t n = 0, line_no = 0;
    if (!lines)
        rc = qe_fail(err, QE_ENOMEM, "%s: no memory for %zu lines", path, cap);
    for (char *line = text; rc == QE_OK && line && *line;) {
        char *next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        line_no++;
        if (strspn(line, " \t\r") != strlen(line)) {
            cJSON *rec = cJSON_Parse(line);
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(rec, "task_id");
            const cJSON *completion = cJSON_GetObjectItemCaseSensitive(rec, "completion");
            if (!cJSON_IsObject(rec))
                rc = qe_fail(err, QE_EFORMAT, "%s: line %zu: not a JSON object", path, line_no);
            else if (!cJSON_IsString(id) || !cJSON_IsString(completion))
                rc = qe_fail(err, QE_EFORMAT, "%s: line %zu: needs string fields \"task_id\" and \"completion\"", path, line_no);
            else {
                size_t p = 0;
                while (p < n_problems && strcmp(problems[p].task_id, id->valuestring) != 0)
                    p++;
                if (p == n_problems)
                    rc = qe_fail(err, QE_EFORMAT, "%s: line %zu: task_id \"%s\" is not a HumanEval problem", path, line_no, id->valuestring);
                else {
                    lines[n].task_id = strdup(id->valuestring);
                    lines[n].completion = strdup(completion->valuestring);
                    lines[n].problem = p;
                    if (!lines[n++].completion || !lines[n - 1].task_id)
                        rc = qe_fail(err, QE_ENOMEM, "%s: line %zu: no memory", path, line_no);
                }
            }
            cJSON_Delete(rec);
        }
        line = next;
    }
    if (rc == QE_OK && n == 0)
        rc = qe_fail(err, QE_EFORMAT, "%s: no completions", path);
    free(text);
    *out = lines;
    *n_out = n;
    return rc;
}

static void free_completions(completion_line *lines, size_t n)
{
    for (size_t i = 0; lines && i < n; i++) {
        free(lines[i].task_id);
        free(lines[i].completion);
    }
    free(lines);
}

static qe_status write_results(const char *path, const completion_line *lines, const qh_exec_result *results,
                               size_t n, qe_error *err)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return qe_fail(err, QE_EIO, "%s: cannot write: %s", path, strerror(errno));
    for (size_t i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "task_id", lines[i].task_id);
        cJSON_AddBoolToObject(o, "passed", results[i].outcome == QH_OUTCOME_PASSED);
        cJSON_AddStringToObject(o, "result", results[i].detail);
        cJSON_AddStringToObject(o, "outcome", qh_outcome_name(results[i].outcome));
        cJSON_AddNumberToObject(o, "seconds", results[i].seconds);
        char *s = cJSON_PrintUnformatted(o);
        if (s)
            fprintf(f, "%s\n", s);
        free(s);
        cJSON_Delete(o);
    }
    if (fclose(f) != 0)
        return qe_fail(err, QE_EIO, "%s: write failed: %s", path, strerror(errno));
    return QE_OK;
}

/* The summary line: pass@k per task, averaged, for each k that every attempted task has. */
static void print_summary(const completion_line *lines, const qh_exec_result *results, size_t n_lines,
                          size_t n_problems, const qh_sandbox_limits *lim)
{
    int *n_samples = calloc(n_problems, sizeof *n_samples), *n_correct = calloc(n_problems, sizeof *n_correct);
    if (!n_samples || !n_correct) {
        free(n_samples);
        free(n_correct);
        return;
    }
    for (size_t i = 0; i < n_lines; i++) {
        n_samples[lines[i].problem]++;
        n_correct[lines[i].problem] += results[i].outcome == QH_OUTCOME_PASSED;
    }
    int min_samples = 0, n_tasks = 0;
    for (size_t p = 0; p < n_problems; p++)
        if (n_samples[p] && (!n_tasks++ || n_samples[p] < min_samples))
            min_samples = n_samples[p];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task", "humaneval");
    cJSON_AddNumberToObject(o, "n_completions", (double)n_lines);
    cJSON_AddNumberToObject(o, "n_tasks", n_tasks);
    const int ks[] = {1, 10, 100};
    for (size_t j = 0; j < 3; j++) {
        if (ks[j] > min_samples)
            continue;
        double sum = 0;
        for (size_t p = 0; p < n_problems; p++)
            if (n_samples[p])
                sum += qh_pass_at_k(n_samples[p], n_correct[p], ks[j]);
        char key[16];
        snprintf(key, sizeof key, "pass@%d", ks[j]);
        cJSON_AddNumberToObject(o, key, sum / n_tasks);
    }
    cJSON *iso = cJSON_AddObjectToObject(o, "sandbox");
    cJSON_AddStringToObject(iso, "isolation", qh_isolation_name(lim->mode));
    cJSON_AddBoolToObject(iso, "network_isolated", lim->is_network_isolated);
    cJSON_AddStringToObject(iso, "fs_isolation", lim->fs_isolation);
    cJSON_AddNumberToObject(iso, "timeout_s", lim->timeout_s);
    char *s = cJSON_PrintUnformatted(o);
    if (s)
        printf("%s\n", s);
    free(s);
    cJSON_Delete(o);
    free(n_samples);
    free(n_correct);
}

int qh_cmd_code_exec(int argc, char **argv)
{
    code_exec_options opt;
    int urc = parse_options(argc, argv, &opt);
    if (urc)
        return urc < 0 ? QH_EXIT_OK : urc;
    qe_error err = {0};
    qe_status rc;
    char data_path[4200], out_default[4200];
    humaneval_path(opt.data_dir, data_path, sizeof data_path);
    qh_humaneval_problem *problems = NULL;
    size_t n_problems = 0, n_lines = 0;
    completion_line *lines = NULL;
    qh_sandbox *sb = NULL;
    qh_exec_job *jobs = NULL;
    qh_exec_result *results = NULL;
    if ((rc = qh_humaneval_load(data_path, &problems, &n_problems, &err)) != QE_OK)
        goto out;
    if ((rc = load_completions(opt.completions_path, problems, n_problems, &lines, &n_lines, &err)) != QE_OK)
        goto out;
    if ((rc = qh_sandbox_open(&opt.sandbox, &sb, &err)) != QE_OK)
        goto out;
    const qh_sandbox_limits *lim = qh_sandbox_limits_of(sb);
    if (lim->note[0])
        fprintf(stderr, "qeval code-exec: %s; using %s isolation\n", lim->note, qh_isolation_name(lim->mode));
    if (!lim->is_network_isolated)
        fprintf(stderr, "qeval code-exec: no private network namespace: the code can reach the network\n");
    jobs = calloc(n_lines, sizeof *jobs);
    results = calloc(n_lines, sizeof *results);
    if (!jobs || !results) {
        rc = qe_fail(&err, QE_ENOMEM, "code-exec: no memory for %zu runs", n_lines);
        goto out;
    }
    for (size_t i = 0; i < n_lines; i++) {
        const qh_humaneval_problem *p = &problems[lines[i].problem];
        jobs[i] = (qh_exec_job){p->prompt, lines[i].completion, p->test, p->entry_point};
    }
    if ((rc = qh_sandbox_exec_batch(sb, jobs, n_lines, opt.n_workers, results, &err)) != QE_OK)
        goto out;
    if (!opt.output_path) {
        snprintf(out_default, sizeof out_default, "%s_results.jsonl", opt.completions_path);
        opt.output_path = out_default;
    }
    if ((rc = write_results(opt.output_path, lines, results, n_lines, &err)) != QE_OK)
        goto out;
    print_summary(lines, results, n_lines, n_problems, lim);
out:
    free(results);
    free(jobs);
    qh_sandbox_free(sb);
    free_completions(lines, n_lines);
    qh_humaneval_free(problems, n_problems);
    return rc == QE_OK ? QH_EXIT_OK : qh_report_error(&err);
}
