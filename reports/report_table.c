/* report_table — the report's tables, built once for every text format (report_table.h). */
#include "report_table.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "report_fmt.h"
#include "report_labels.h"

void qr_table_free(qr_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_columns; i++)
        free(t->columns[i].name);
    for (size_t i = 0; i < t->n_rows * t->n_columns; i++)
        free(t->cells[i].text);
    free(t->columns), free(t->cells), free(t->title), free(t->intro), free(t->note);
    free(t);
}

const char *qr_section_title(qr_section section)
{
    switch (section) {
    case QR_SECTION_SUMMARY: return "Summary";
    case QR_SECTION_CHARTS: return "Accuracy, speed and memory";
    case QR_SECTION_DETAIL: return "Per-benchmark detail";
    case QR_SECTION_CHANGES: return "What changed";
    case QR_SECTION_RUN: break;
    }
    return "Run";
}

/* ---- building: the first failure sticks, later adds do nothing, the end returns it ---------- */

typedef struct {
    qr_table *table;
    size_t n_cells, cap_cells;
    qe_error *err;
    qe_status rc;
} builder;

static void fail_memory(builder *b)
{
    if (b->rc == QE_OK)
        b->rc = qe_fail(b->err, QE_ENOMEM, "report: out of memory building a table");
}

/* A malloc'd copy of the printf-formatted text; NULL (and the failure noted) when out of memory. */
static char *format_text(builder *b, const char *fmt, va_list args)
{
    va_list again;
    va_copy(again, args);
    int len = vsnprintf(NULL, 0, fmt, args);
    char *text = len >= 0 ? malloc((size_t)len + 1) : NULL;
    if (text)
        vsnprintf(text, (size_t)len + 1, fmt, again);
    else
        fail_memory(b);
    va_end(again);
    return text;
}

static void set_text(builder *b, char **field, const char *fmt, ...)
{
    if (b->rc != QE_OK)
        return;
    va_list args;
    va_start(args, fmt);
    *field = format_text(b, fmt, args);
    va_end(args);
}

static void add_column(builder *b, bool is_left, const char *fmt, ...)
{
    qr_table *t = b->table;
    if (b->rc != QE_OK)
        return;
    qr_table_column *p = realloc(t->columns, (t->n_columns + 1) * sizeof *p);
    if (!p) {
        fail_memory(b);
        return;
    }
    t->columns = p;
    va_list args;
    va_start(args, fmt);
    char *name = format_text(b, fmt, args);
    va_end(args);
    if (name)
        p[t->n_columns++] = (qr_table_column){name, is_left};
}

/* Appends a cell (taking its text); rows fill left to right, n_rows counts the complete ones. */
static void add_cell(builder *b, qr_cell cell)
{
    qr_table *t = b->table;
    if (b->rc == QE_OK && b->n_cells == b->cap_cells) {
        size_t cap = b->cap_cells ? 2 * b->cap_cells : 64;
        qr_cell *p = realloc(t->cells, cap * sizeof *p);
        if (p)
            t->cells = p, b->cap_cells = cap;
        else
            fail_memory(b);
    }
    if (b->rc != QE_OK) {
        free(cell.text);
        return;
    }
    t->cells[b->n_cells++] = cell;
    t->n_rows = t->n_columns ? b->n_cells / t->n_columns : 0;
}

static void add_string(builder *b, qr_cell_kind kind, const char *s)
{
    char *copy = NULL;
    if (s && !(copy = strdup(s)))
        fail_memory(b);
    add_cell(b, (qr_cell){.kind = kind, .text = copy, .value = NAN, .low = NAN, .high = NAN});
}

static void add_text(builder *b, const char *s)
{
    add_string(b, QR_CELL_TEXT, s);
}

static void add_prose(builder *b, const char *s)
{
    add_string(b, QR_CELL_PROSE, s);
}

static void add_int(builder *b, int64_t n)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)n);
    add_text(b, n >= 0 ? buf : NULL);
}

static void add_score(builder *b, const qr_score *s)
{
    qr_cell cell = {.kind = QR_CELL_SCORE, .value = NAN, .low = NAN, .high = NAN};
    if (s) {
        cell.value = s->value;
        qr_score_interval(s, &cell.low, &cell.high);
    }
    add_cell(b, cell);
}

/* s's change against the reference variant's same score; none on the reference's own row. */
static void add_delta(builder *b, qr_report *r, const qr_score *s)
{
    qr_cell cell = {.kind = QR_CELL_DELTA, .value = NAN, .low = NAN, .high = NAN, .delta = {.delta = NAN}};
    if (b->rc == QE_OK && s && strcmp(s->variant, r->reference_variant))
        b->rc = qr_compare_score(r, r->reference_variant, r, s, &cell.delta, b->err);
    add_cell(b, cell);
}

static qe_status builder_start(builder *b, qe_error *err)
{
    *b = (builder){.table = calloc(1, sizeof(qr_table)), .err = err};
    if (!b->table)
        return qe_fail(err, QE_ENOMEM, "report: out of memory building a table");
    return QE_OK;
}

/* Hands the table to the writer unless building failed; frees it either way. */
static qe_status builder_finish(builder *b, const qr_table_writer *w)
{
    qe_status rc = b->rc == QE_OK ? w->table(w->ctx, b->table, b->err) : b->rc;
    qr_table_free(b->table);
    return rc;
}

/* ---- the tables ------------------------------------------------------------------------------ */

/* One row per variant: memory, each headline score with its change against the reference, then
 * fidelity and speed. */
static qe_status summary_table(qr_report *r, const qr_table_writer *w, qe_error *err)
{
    qr_column *cols;
    size_t n_cols;
    builder b;
    if (qr_headline_columns(r, &cols, &n_cols, err) != QE_OK || builder_start(&b, err) != QE_OK) {
        free(cols);
        return err->code;
    }
    const char *ref = r->reference_variant;
    add_column(&b, true, "variant");
    static const char *const memory[] = {"footprint GB", "estimate GB", "transformers GB", "peak RSS GB", "peak device GB",
                                         "predicted peak GB"};
    for (size_t i = 0; i < sizeof memory / sizeof memory[0]; i++)
        add_column(&b, false, "%s", memory[i]);
    for (size_t c = 0; c < n_cols; c++) {
        add_column(&b, false, "%s", cols[c].label);
        add_column(&b, false, "\xce\x94 %s vs %s", cols[c].label, ref);
    }
    static const char *const tail[] = {"KL mean", "top-1 agree %", "prefill tok/s", "decode tok/s"};
    for (size_t i = 0; i < sizeof tail / sizeof tail[0]; i++)
        add_column(&b, false, "%s", tail[i]);
    set_text(&b, &b.table->note,
             "Scores in points with 95 %% intervals; \xce\x94 = variant \xe2\x88\x92 %s in points over the same "
             "documents, 95 %% interval and two-sided p (exact McNemar for 0/1 outcomes, paired t-test for "
             "continuous ones); * marks p < 0.05. Top-1 agree in %%; KL(%s \xe2\x80\x96 variant) in nats. "
             "Predicted peak: weights + KV cache + activations as `qeval estimate` computes them for the context "
             "the run reached, beside the measured peak device (GPU, CUDA context excluded) or peak RSS (CPU, "
             "which also holds the program and its data).",
             ref, ref);

    char buf[32];
    for (size_t i = 0; i < r->n_variants; i++) {
        const qr_variant *v = &r->variants[i];
        add_text(&b, v->name);
        int64_t bytes[] = {v->footprint_bytes, v->estimate_bytes, v->hf_footprint_bytes, v->peak_rss_bytes,
                           v->peak_device_bytes, v->predicted_peak_bytes};
        for (size_t k = 0; k < sizeof bytes / sizeof bytes[0]; k++)
            add_text(&b, qr_fmt_gb(buf, bytes[k]));
        for (size_t c = 0; c < n_cols; c++) {
            const qr_score *s = qr_report_find_score(r, v->name, cols[c].task, cols[c].metric);
            add_score(&b, s);
            add_delta(&b, r, s);
        }
        add_text(&b, qr_fmt_real(buf, "%.4f", v->kl_mean));
        add_text(&b, qr_fmt_points(buf, v->top1_agreement));
        add_text(&b, qr_fmt_real(buf, "%.1f", v->prefill_tok_s));
        add_text(&b, qr_fmt_real(buf, "%.1f", v->decode_tok_s));
    }
    free(cols);
    return builder_finish(&b, w);
}

/* One row per score of the benchmark (headline first): its n, then each variant's value and,
 * beside every variant but the reference, its change. */
static qe_status benchmark_table(qr_report *r, const char *benchmark, const qr_table_writer *w, qe_error *err)
{
    qr_column *rows;
    size_t n_rows;
    builder b;
    if (qr_benchmark_rows(r, benchmark, &rows, &n_rows, err) != QE_OK || builder_start(&b, err) != QE_OK) {
        free(rows);
        return err->code;
    }
    set_text(&b, &b.table->title, "%s", qr_benchmark_title(benchmark));
    add_column(&b, true, "score");
    add_column(&b, false, "n");
    for (size_t i = 0; i < r->n_variants; i++) {
        add_column(&b, false, "%s", r->variants[i].name);
        if (strcmp(r->variants[i].name, r->reference_variant))
            add_column(&b, false, "\xce\x94 %s", r->variants[i].name);
    }
    for (size_t k = 0; k < n_rows; k++) {
        const qr_score *ref = qr_report_find_score(r, r->reference_variant, rows[k].task, rows[k].metric);
        add_text(&b, rows[k].label);
        add_int(&b, ref ? ref->n : -1);
        for (size_t i = 0; i < r->n_variants; i++) {
            const qr_score *s = qr_report_find_score(r, r->variants[i].name, rows[k].task, rows[k].metric);
            add_score(&b, s);
            if (strcmp(r->variants[i].name, r->reference_variant))
                add_delta(&b, r, s);
        }
    }
    free(rows);
    return builder_finish(&b, w);
}

/* The most confident changed answers; answers as the benchmark's readers know them. */
static qe_status changes_table(qr_report *r, size_t max_rows, const qr_table_writer *w, qe_error *err)
{
    qr_change *changes;
    size_t n;
    builder b;
    if (qr_report_changes(r, &changes, &n, err) != QE_OK)
        return err->code;
    if (builder_start(&b, err) != QE_OK) {
        free(changes);
        return err->code;
    }
    const char *ref = r->reference_variant;
    size_t shown = n < max_rows ? n : max_rows;
    if (!n)
        set_text(&b, &b.table->intro, "No answer differs from %s's on the documents both scored.", ref);
    else
        set_text(&b, &b.table->intro, "%zu answers differ from %s's; the %zu most confident:", n, ref, shown);
    if (n) {
        add_column(&b, true, "variant");
        add_column(&b, true, "task");
        add_column(&b, false, "doc");
        add_column(&b, true, "question");
        add_column(&b, true, "%s answer", ref);
        add_column(&b, true, "variant answer");
        add_column(&b, true, "right");
        add_column(&b, false, "confidence");
    }
    char buf[32], letter[2];
    for (size_t i = 0; i < shown; i++) {
        const qr_change *ch = &changes[i];
        add_text(&b, ch->variant);
        add_text(&b, ch->task);
        add_int(&b, ch->doc_id);
        add_prose(&b, ch->question);
        add_prose(&b, qr_answer_text(ch->benchmark, ch->reference_answer, letter));
        add_prose(&b, qr_answer_text(ch->benchmark, ch->variant_answer, letter));
        add_text(&b, ch->who_right == QR_RIGHT_REFERENCE ? ref
                     : ch->who_right == QR_RIGHT_VARIANT ? ch->variant
                                                         : qr_who_right_name(ch->who_right));
        add_text(&b, qr_fmt_real(buf, "%.3f", ch->confidence));
    }
    free(changes);
    return builder_finish(&b, w);
}

static void add_fact(builder *b, const char *key, const char *value)
{
    add_text(b, key);
    add_text(b, value);
}

static qe_status facts_table(const qr_report *r, const qr_table_writer *w, qe_error *err)
{
    const qr_run_facts *f = &r->run;
    builder b;
    if (builder_start(&b, err) != QE_OK)
        return err->code;
    add_column(&b, true, "fact");
    add_column(&b, true, "value");
    char run[32], cores[32], ram[32], gpu_memory[32];
    snprintf(run, sizeof run, "%lld", (long long)f->run_id);
    snprintf(cores, sizeof cores, "%lld", (long long)f->host_cores);
    add_fact(&b, "run", f->run_id >= 0 ? run : NULL);
    add_fact(&b, "status", f->status);
    add_fact(&b, "started", f->started_at);
    add_fact(&b, "finished", f->finished_at);
    add_fact(&b, "model", f->model_path);
    add_fact(&b, "model sha256", f->model_sha256);
    add_fact(&b, "qeval", f->qeval_version);
    add_fact(&b, "git commit", f->git_commit);
    add_fact(&b, "command", f->command_line);
    add_fact(&b, "CPU", f->host_cpu);
    add_fact(&b, "cores", f->host_cores >= 0 ? cores : NULL);
    add_fact(&b, "RAM GB", qr_fmt_gb(ram, f->host_ram_bytes));
    add_fact(&b, "GPU", f->gpu_name);
    add_fact(&b, "GPU driver", f->gpu_driver);
    add_fact(&b, "GPU memory GB", qr_fmt_gb(gpu_memory, f->gpu_memory_bytes));
    add_fact(&b, "options", f->options_json);
    add_fact(&b, "sandbox", f->sandbox_json);
    return builder_finish(&b, w);
}

/* ---- the walk -------------------------------------------------------------------------------- */

qe_status qr_walk_report(qr_report *r, const qr_render_options *opts, const qr_table_writer *w, qe_error *err)
{
    size_t max_changes = opts && opts->max_changes ? opts->max_changes : 20;
    const char **benchmarks = NULL;
    size_t n_benchmarks = 0;
    qe_status rc = w->section(w->ctx, QR_SECTION_SUMMARY, err);
    if (rc == QE_OK)
        rc = summary_table(r, w, err);
    if (rc == QE_OK)
        rc = w->section(w->ctx, QR_SECTION_CHARTS, err);
    if (rc == QE_OK)
        rc = w->section(w->ctx, QR_SECTION_DETAIL, err);
    if (rc == QE_OK)
        rc = qr_benchmarks(r, &benchmarks, &n_benchmarks, err);
    for (size_t i = 0; i < n_benchmarks && rc == QE_OK; i++)
        rc = benchmark_table(r, benchmarks[i], w, err);
    free(benchmarks);
    if (rc == QE_OK)
        rc = w->section(w->ctx, QR_SECTION_CHANGES, err);
    if (rc == QE_OK)
        rc = changes_table(r, max_changes, w, err);
    if (rc == QE_OK)
        rc = w->section(w->ctx, QR_SECTION_RUN, err);
    if (rc == QE_OK)
        rc = facts_table(r, w, err);
    return rc;
}
