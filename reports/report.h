/* report — what a qeval report is made of, independent of where the numbers are stored.
 *
 * A qr_report holds one run: its facts, one qr_variant per model variant (cost, speed, fidelity
 * against the reference), one qr_score per (variant, task, metric) and the per-document outcomes
 * (qr_sample) from which the paired tests are computed. report_load.c fills it from the SQLite
 * store; tests fill it by hand. Renderers (report_md.c, report_csv.c, report_json.c,
 * report_html.c) read it and never change it.
 *
 * Conventions: a NAN real and a -1 integer mean "unknown" and render as "—" (md/html), an empty
 * cell (csv) or null (json). Every string in the model is owned by the report (copied in by the
 * qr_report_add_* functions). Scores and deltas are fractions (0.45, not 45 %); renderers show
 * points where they say so. */
#ifndef QR_REPORT_H
#define QR_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "qe_error.h"
#include "stats.h"



/* What a run was: the facts printed at the end of a report. Strings may be NULL. */
typedef struct {
    int64_t run_id;
    char *started_at, *finished_at, *status;
    char *model_path, *model_sha256;
    char *qeval_version, *git_commit, *command_line;
    char *host_cpu;
    int64_t host_cores, host_ram_bytes;
    char *gpu_name, *gpu_driver;
    int64_t gpu_memory_bytes;
    char *options_json, *sandbox_json, *tasks_json; /* JSON text as stored */
} qr_run_facts;

/* One model variant of the run. Fidelity numbers compare it to the reference variant over all
 * tasks (KL(reference || variant) in nats per scored token position). */
typedef struct {
    char *name;                 /* "fp32", "bf16", "int8", "nf4"                               */
    int64_t footprint_bytes;    /* resident weights as qeval holds them                        */
    int64_t hf_footprint_bytes; /* transformers' get_memory_footprint() figure                  */
    int64_t estimate_bytes;     /* rule of thumb: parameters x bits / 8                         */
    int64_t peak_rss_bytes, peak_device_bytes;
    int64_t device_weights_bytes; /* on a GPU: the weights as they sit there; -1 on the CPU    */
    int64_t device_used_peak_bytes; /* on a GPU (schema v7): cudaMemGetInfo's most in use, the
                                       CUDA context included; -1 on the CPU and before v7       */
    /* the memory estimate stored with the run (schema v6; -1 before): weights + KV cache +
     * activations for predicted_context positions, to set beside peak_device_bytes (GPU) or
     * peak_rss_bytes (CPU) */
    int64_t predicted_context, predicted_peak_bytes;
    int64_t predicted_weights_bytes, predicted_kv_cache_bytes, predicted_activation_bytes;
    double prefill_tok_s, decode_tok_s;
    double kl_mean, kl_p99, top1_agreement; /* NAN for the reference itself                    */
} qr_variant;

/* Where a score sits in the report: a headline column of the main table, or a detail row under
 * its benchmark (MMLU category or subject, GSM8K filter, TruthfulQA mc1/mc2). */
typedef enum { QR_HEADLINE, QR_DETAIL } qr_role;

/* One metric of one task for one variant: value is the mean over n documents. */
typedef struct {
    char *variant, *task, *metric;
    char *benchmark;            /* the group it belongs to: "mmlu", "gsm8k", "truthfulqa"...    */
    char *label;                /* how tables name it: "MMLU accuracy", "category: STEM",
                                   "GSM8K exact match (flexible)", "TruthfulQA MC1"            */
    qr_role role;
    double value, std_error;    /* fraction; std_error of the mean (NAN: unknown)              */
    int64_t n;
    bool is_binary;             /* every per-document outcome is 0 or 1 (accuracy, exact match,
                                   pass@1): paired test is exact McNemar, else paired t-test  */
    bool is_unit_range;         /* every outcome lies in [0, 1] (a 0/1 outcome, mc2's probability
                                   mass): so do the mean and its interval                     */
} qr_score;

/* One document's outcome under one (variant, task, metric). */
typedef struct {
    char *variant, *task, *metric;
    int64_t doc_id;
    double value;               /* 0/1 for binary metrics, else the continuous score (mc2)     */
    char *question;             /* may be NULL                                                 */
    char *answer;               /* the variant's answer after filtering; may be NULL           */
    double confidence;          /* probability the variant gave its answer (NAN: unknown)      */
    char *source_task;          /* a sample taken from another task's stored row (a group's   */
    int64_t source_doc_id;      /*   from a subtask's, a subtask's from its group's): that row's
                                     task and doc_id; NULL / unused for a task's own samples    */
} qr_sample;

typedef struct {
    qr_run_facts run;
    char *reference_variant;    /* the variant every other is compared with; default "fp32"    */
    qr_variant *variants; size_t n_variants;
    qr_score *scores;     size_t n_scores;
    qr_sample *samples;   size_t n_samples;
    bool is_samples_sorted;     /* internal: samples sorted by (variant, task, metric, doc_id) */
} qr_report;

qe_status qr_report_create(qr_report **out, qe_error *err);
void qr_report_free(qr_report *report); /* NULL-safe */

/* Sets a run-fact string field (e.g. &r->run.model_path) to a copy of value (NULL clears). */
qe_status qr_set_string(char **field, const char *value, qe_error *err);

/* Appends copies; the returned pointer (may be NULL) stays valid until the next add of its kind. */
qe_status qr_report_add_variant(qr_report *report, const qr_variant *v, qr_variant **added, qe_error *err);
qe_status qr_report_add_score(qr_report *report, const qr_score *s, qe_error *err);
qe_status qr_report_add_sample(qr_report *report, const qr_sample *s, qe_error *err);

const qr_variant *qr_report_find_variant(const qr_report *report, const char *name);
const qr_score *qr_report_find_score(const qr_report *report, const char *variant, const char *task,
                                     const char *metric);
/* The samples of (variant, task, metric), sorted by doc_id; *n = 0 when there are none. */
const qr_sample *qr_report_samples(qr_report *report, const char *variant, const char *task,
                                   const char *metric, size_t *n);

/* ---- statistics between two sets of scores ------------------------------------------------ */

typedef enum {
    QR_TEST_NONE,        /* not enough data                                                  */
    QR_TEST_MCNEMAR,     /* exact McNemar (binomial on discordant pairs), paired binary       */
    QR_TEST_PAIRED_T,    /* paired t-test, continuous per-document scores                    */
    QR_TEST_TWO_PROP_Z,  /* unpaired two-proportion z-test (pooled)                          */
    QR_TEST_Z,           /* unpaired z-test from the two standard errors                     */
} qr_test;
const char *qr_test_name(qr_test test); /* "mcnemar-exact", "paired-t", ... */

/* candidate - baseline on one score. Paired when both sides have samples with common doc_ids
 * (one suffices for 0/1 outcomes, the t-test needs two): delta and its interval are over the
 * n_pairs common documents (mean of differences ± z x standard error of the differences); else
 * over the two summary scores (for 0/1 shares Newcombe's hybrid score interval). */
typedef struct {
    double delta, ci_low, ci_high; /* fraction                                               */
    double p_value;                /* two-sided; NAN when untestable                         */
    qr_test test;
    int64_t n_pairs;               /* 0 when unpaired                                        */
    int64_t n_base_only_right, n_cand_only_right; /* discordant pairs (McNemar b, c)         */
} qr_delta;

/* Compares score (variant, task, metric) of candidate against the same in baseline, or against
 * baseline's variant `base_variant` when not NULL (a report compares against its own fp32). */
qe_status qr_compare_score(qr_report *baseline, const char *base_variant, qr_report *candidate,
                           const qr_score *cand_score, qr_delta *out, qe_error *err);

/* Score ± 95 % interval: value ± 1.96 x std_error (clipped to [0, 1] for a binary or unit-range
 * score), or Wilson when std_error is unknown and the score is binary; NAN when neither is known. */
void qr_score_interval(const qr_score *s, double *low, double *high);

/* ---- "what changed" ------------------------------------------------------------------------ */

typedef enum { QR_RIGHT_NEITHER, QR_RIGHT_REFERENCE, QR_RIGHT_VARIANT, QR_RIGHT_BOTH } qr_who_right;
const char *qr_who_right_name(qr_who_right who); /* "neither", "reference", "variant", "both" */

/* A document whose answer under `variant` differs from the reference's. Pointers into the report.
 * task and doc_id name the document itself (a subtask's, for a group score). */
typedef struct {
    const char *variant, *task, *metric;
    const char *benchmark;      /* the score's: how its answers read (MMLU's as letters)       */
    int64_t doc_id;
    const char *question, *reference_answer, *variant_answer;
    double reference_value, variant_value;
    qr_who_right who_right;
    double confidence;          /* the variant's confidence in its (changed) answer           */
} qr_change;

/* Every changed answer on headline scores, most confident first (unknown confidence last, then
 * by variant, task, doc_id). *changes is malloc'd; free() it. */
qe_status qr_report_changes(qr_report *report, qr_change **changes, size_t *n_changes, qe_error *err);

/* ---- rendering ------------------------------------------------------------------------------ */

typedef enum { QR_FORMAT_MD, QR_FORMAT_HTML, QR_FORMAT_CSV, QR_FORMAT_JSON } qr_format;
/* "md", "html", "csv", "json" -> format; QE_EINVAL otherwise. */
qe_status qr_format_parse(const char *name, qr_format *format, qe_error *err);

typedef struct {
    size_t max_changes;         /* rows of "what changed" per variant; 0 -> 20                  */
} qr_render_options;

/* Writes the whole report in one format; opts may be NULL. QE_EIO when a write fails. */
qe_status qr_render(qr_report *report, qr_format format, const qr_render_options *opts, FILE *out,
                    qe_error *err);
qe_status qr_render_md(qr_report *report, const qr_render_options *opts, FILE *out, qe_error *err);
qe_status qr_render_csv(qr_report *report, FILE *out, qe_error *err);
qe_status qr_render_json(qr_report *report, const qr_render_options *opts, FILE *out, qe_error *err);
qe_status qr_render_html(qr_report *report, const qr_render_options *opts, FILE *out, qe_error *err);

#endif
