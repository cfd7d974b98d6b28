/* report_labels — how a report names things, in one place: where each (task, metric) of a known
 * benchmark goes and what it is called as people say it ("MMLU accuracy", "GSM8K exact match
 * (strict)", "HumanEval pass@1"), the benchmarks' titles, how a stored answer reads (MMLU's
 * choice index as its letter) and the model's short name from its path. Internal to reports/. */
#ifndef QR_REPORT_LABELS_H
#define QR_REPORT_LABELS_H

#include "report.h"

/* Index of the first placement rule matching (task, metric); qr_n_placement_rules() when none
 * does. Scores are listed in rule order: MMLU, GSM8K, TruthfulQA, HumanEval, then the rest. */
size_t qr_placement_rank(const char *task, const char *metric);
size_t qr_n_placement_rules(void);

/* Fills s->benchmark, s->label and s->role from the rules; benchmark points into the rule table,
 * label into label_buf. An unknown task is a benchmark of its own, its label the task and the
 * metric in words ("arc_easy normalized accuracy"); is_task_placed: the task already has its
 * headline metric, so this one is a detail row. A headline's label ends with its shots
 * ("MMLU accuracy (5-shot)") unless num_fewshot < 0 (runs before schema v4 stored none). */
void qr_place_score(qr_score *s, bool is_task_placed, int64_t num_fewshot, char *label_buf, size_t cap);

/* How tables title a benchmark: "mmlu" -> "MMLU"; an unknown one as it is named. */
const char *qr_benchmark_title(const char *benchmark);

/* A stored answer as readers of the benchmark know it: MMLU stores the chosen choice's index,
 * shown as its letter ("2" -> "C"); anything else (and NULL) is returned as given. buf holds the
 * letter (>= 2 bytes). */
const char *qr_answer_text(const char *benchmark, const char *answer, char *buf);

/* The model's name for a title: "org/name" for a Hugging Face hub snapshot
 * (.../models--org--name/snapshots/<hash>), else the last path component without a weights
 * extension (".../stories260K/" -> "stories260K", ".../SmolLM2-135M.Q4_1.gguf" ->
 * "SmolLM2-135M.Q4_1"). Into buf (cap bytes, cut if longer); NULL path -> "". Returns buf. */
char *qr_model_name(char *buf, size_t cap, const char *model_path);

#endif
