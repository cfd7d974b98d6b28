/* report_labels — the names a report shows (report_labels.h). */
#include "report_labels.h"

#include <stdlib.h>
#include <string.h>

/* Where a (task, metric) of a known benchmark goes and what it is called. A stored metric is
 * "name" or "name,filter" (lm-evaluation-harness's key for a filtered metric); a NULL metric or
 * filter matches any, a task ending in '*' matches that prefix. First match wins. */
static const struct {
    const char *task, *metric, *filter, *benchmark, *label;
    qr_role role;
} placement[] = {
    {"mmlu", NULL, NULL, "mmlu", "MMLU accuracy", QR_HEADLINE},
    {"mmlu_stem", NULL, NULL, "mmlu", "category: STEM", QR_DETAIL},
    {"mmlu_humanities", NULL, NULL, "mmlu", "category: humanities", QR_DETAIL},
    {"mmlu_social_sciences", NULL, NULL, "mmlu", "category: social sciences", QR_DETAIL},
    {"mmlu_other", NULL, NULL, "mmlu", "category: other", QR_DETAIL},
    {"mmlu_*", NULL, NULL, "mmlu", NULL, QR_DETAIL}, /* label: "subject: " and the subject in words */
    {"gsm8k", "exact_match", "strict-match", "gsm8k", "GSM8K exact match (strict)", QR_HEADLINE},
    {"gsm8k", "exact_match", "flexible-extract", "gsm8k", "GSM8K exact match (flexible)", QR_DETAIL},
    {"truthfulqa_mc2", NULL, NULL, "truthfulqa", "TruthfulQA MC2", QR_HEADLINE},
    {"truthfulqa_mc1", NULL, NULL, "truthfulqa", "TruthfulQA MC1", QR_DETAIL},
    {"humaneval", "pass@1", NULL, "humaneval", "HumanEval pass@1", QR_HEADLINE},
};

/* Benchmark ids as tables title them; is_lettered: its answers are stored as the index of a
 * choice that the prompt lettered A, B, C, ... */
static const struct {
    const char *benchmark, *title;
    bool is_lettered;
} benchmarks[] = {
    {"mmlu", "MMLU", true},
    {"gsm8k", "GSM8K", false},
    {"truthfulqa", "TruthfulQA", false},
    {"humaneval", "HumanEval", false},
};

/* Metric names of tasks the rules do not know, in words. */
static const struct {
    const char *metric, *words;
} metric_words[] = {
    {"acc", "accuracy"},
    {"acc_norm", "normalized accuracy"},
    {"exact_match", "exact match"},
};

static bool task_matches(const char *pattern, const char *task)
{
    size_t len = strlen(pattern);
    if (len && pattern[len - 1] == '*')
        return !strncmp(pattern, task, len - 1);
    return !strcmp(pattern, task);
}

/* Splits "name,filter" at the first comma: *name_len bytes of metric, then the filter ("" when
 * there is none). */
static const char *split_metric(const char *metric, size_t *name_len)
{
    const char *comma = strchr(metric, ',');
    *name_len = comma ? (size_t)(comma - metric) : strlen(metric);
    return comma ? comma + 1 : "";
}

static bool metric_matches(const char *rule_metric, const char *rule_filter, const char *metric)
{
    size_t name_len;
    const char *filter = split_metric(metric, &name_len);
    if (rule_metric && (strlen(rule_metric) != name_len || strncmp(rule_metric, metric, name_len)))
        return false;
    return !rule_filter || !strcmp(rule_filter, filter);
}

size_t qr_n_placement_rules(void)
{
    return sizeof placement / sizeof placement[0];
}

size_t qr_placement_rank(const char *task, const char *metric)
{
    size_t i = 0;
    for (; i < qr_n_placement_rules(); i++)
        if (task_matches(placement[i].task, task) && metric_matches(placement[i].metric, placement[i].filter, metric))
            break;
    return i;
}

/* "mmlu_abstract_algebra" under the rule "mmlu_*" -> "subject: abstract algebra". */
static void subject_label(const char *subject, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "subject: %s", subject);
    for (char *p = buf + strlen("subject: "); n > 0 && *p; p++)
        if (*p == '_')
            *p = ' ';
}

/* "acc_norm,none" -> "normalized accuracy"; "exact_match,strict-match" -> "exact match
 * (strict-match)"; an unknown name as it is. */
static void metric_label(const char *task, const char *metric, char *buf, size_t cap)
{
    size_t name_len;
    const char *filter = split_metric(metric, &name_len);
    const char *words = NULL;
    for (size_t i = 0; i < sizeof metric_words / sizeof metric_words[0] && !words; i++)
        if (strlen(metric_words[i].metric) == name_len && !strncmp(metric_words[i].metric, metric, name_len))
            words = metric_words[i].words;
    int words_len = words ? (int)strlen(words) : (int)name_len;
    if (*filter && strcmp(filter, "none"))
        snprintf(buf, cap, "%s %.*s (%s)", task, words_len, words ? words : metric, filter);
    else
        snprintf(buf, cap, "%s %.*s", task, words_len, words ? words : metric);
}

/* A headline names its shots as stored with the score: "MMLU accuracy (5-shot)", "GSM8K exact
 * match (strict, 5-shot)". */
static void add_shots(char *label_buf, size_t cap, int64_t num_fewshot)
{
    size_t len = strlen(label_buf);
    if (len && label_buf[len - 1] == ')')
        snprintf(label_buf + len - 1, cap - (len - 1), ", %lld-shot)", (long long)num_fewshot);
    else
        snprintf(label_buf + len, cap - len, " (%lld-shot)", (long long)num_fewshot);
}

void qr_place_score(qr_score *s, bool is_task_placed, int64_t num_fewshot, char *label_buf, size_t cap)
{
    size_t i = qr_placement_rank(s->task, s->metric);
    if (i < qr_n_placement_rules()) {
        s->benchmark = (char *)placement[i].benchmark;
        s->role = placement[i].role;
        if (placement[i].label)
            snprintf(label_buf, cap, "%s", placement[i].label);
        else
            subject_label(s->task + strlen(placement[i].task) - 1, label_buf, cap);
    } else {
        s->benchmark = s->task;
        s->role = is_task_placed ? QR_DETAIL : QR_HEADLINE;
        metric_label(s->task, s->metric, label_buf, cap);
    }
    if (s->role == QR_HEADLINE && num_fewshot >= 0)
        add_shots(label_buf, cap, num_fewshot);
    s->label = label_buf;
}

const char *qr_benchmark_title(const char *benchmark)
{
    for (size_t i = 0; i < sizeof benchmarks / sizeof benchmarks[0]; i++)
        if (!strcmp(benchmarks[i].benchmark, benchmark))
            return benchmarks[i].title;
    return benchmark;
}

const char *qr_answer_text(const char *benchmark, const char *answer, char *buf)
{
    bool is_lettered = false;
    for (size_t i = 0; benchmark && i < sizeof benchmarks / sizeof benchmarks[0]; i++)
        if (!strcmp(benchmarks[i].benchmark, benchmark))
            is_lettered = benchmarks[i].is_lettered;
    /* a choice index: one or two digits, below 26 */
    size_t n_digits = answer ? strspn(answer, "0123456789") : 0;
    if (!is_lettered || n_digits == 0 || n_digits > 2 || answer[n_digits])
        return answer;
    int index = atoi(answer);
    if (index >= 26)
        return answer;
    buf[0] = (char)('A' + index), buf[1] = 0;
    return buf;
}

char *qr_model_name(char *buf, size_t cap, const char *model_path)
{
    static const char hub_dir[] = "models--", *const extensions[] = {".gguf", ".safetensors"};
    const char *path = model_path ? model_path : "";
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    /* a Hugging Face hub snapshot: the repository in models--org--name names the model */
    for (const char *p = path; (p = strstr(p, hub_dir)) && p < path + len; p++) {
        if (p != path && p[-1] != '/')
            continue;
        const char *name = p + strlen(hub_dir), *end = name;
        while (end < path + len && *end != '/')
            end++;
        size_t n = 0;
        for (const char *q = name; q < end && n + 1 < cap; q++) {
            bool is_separator = q + 1 < end && q[0] == '-' && q[1] == '-';
            buf[n++] = is_separator ? '/' : *q;
            q += is_separator;
        }
        if (cap)
            buf[n] = 0;
        if (n)
            return buf;
    }
    size_t start = len;
    while (start > 0 && path[start - 1] != '/')
        start--;
    for (size_t i = 0; i < sizeof extensions / sizeof extensions[0]; i++) {
        size_t ext_len = strlen(extensions[i]);
        if (len - start > ext_len && !strncmp(path + len - ext_len, extensions[i], ext_len)) {
            len -= ext_len;
            break;
        }
    }
    snprintf(buf, cap, "%.*s", (int)(len - start), path + start);
    return buf;
}
