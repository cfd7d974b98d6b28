/* report_md — the report as GitHub-flavoured Markdown, to paste into a pull request: the main
 * table, per-benchmark detail, what changed, and the run's facts. Scores are in points (percent);
 * a delta marked * is significant at 0.05. */
#include "report_fmt.h"
#include "report_labels.h"
#include "report_table.h"

#include <math.h>
#include <string.h>

/* Writes s as one table cell: pipes escaped, line breaks as spaces, cut at max_chars bytes on a
 * UTF-8 character boundary. */
static void md_cell(FILE *out, const char *s, size_t max_chars)
{
    if (!s) {
        fputs(QR_DASH, out);
        return;
    }
    size_t len = strlen(s), cut = len;
    if (len > max_chars) {
        cut = max_chars;
        while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80)
            cut--;
    }
    for (size_t i = 0; i < cut; i++) {
        char c = s[i];
        if (c == '|' || c == '\\' || c == '`' || c == '*' || c == '_' || c == '<' || c == '>')
            fputc('\\', out), fputc(c, out);
        else if (c == '\n' || c == '\r' || c == '\t')
            fputc(' ', out);
        else
            fputc(c, out);
    }
    if (cut < len)
        fputs("\xe2\x80\xa6", out); /* … */
}

/* Plain text outside a table: the same escapes, no cut. */
static void md_text(FILE *out, const char *s)
{
    md_cell(out, s, s ? strlen(s) : 0);
}

static void md_cell_of(FILE *out, const qr_cell *cell)
{
    char v[32], lo[32], hi[32], p[32];
    const qr_delta *d = &cell->delta;
    fputc(' ', out);
    switch (cell->kind) {
    case QR_CELL_TEXT: md_cell(out, cell->text, 400); break;
    case QR_CELL_PROSE: md_cell(out, cell->text, 120); break;
    case QR_CELL_SCORE:
        if (isfinite(cell->value))
            fprintf(out, "%s [%s, %s]", qr_fmt_points(v, cell->value), qr_fmt_points(lo, cell->low),
                    qr_fmt_points(hi, cell->high));
        else
            fputs(QR_DASH, out);
        break;
    case QR_CELL_DELTA:
        if (isfinite(d->delta))
            fprintf(out, "%s%s [%s, %s] p=%s", qr_fmt_signed_points(v, d->delta), qr_is_significant(d) ? "\\*" : "",
                    qr_fmt_signed_points(lo, d->ci_low), qr_fmt_signed_points(hi, d->ci_high), qr_fmt_p(p, d->p_value));
        else
            fputs(QR_DASH, out);
        break;
    }
    fputs(" |", out);
}

static qe_status md_table(void *ctx, const qr_table *t, qe_error *err)
{
    (void)err;
    FILE *out = ctx;
    if (t->title)
        fputs("\n#### ", out), md_text(out, t->title), fputs("\n", out);
    if (t->intro)
        fputs("\n", out), md_text(out, t->intro), fputs("\n", out);
    if (t->n_columns) {
        fputs("\n|", out);
        for (size_t c = 0; c < t->n_columns; c++)
            fputc(' ', out), md_cell(out, t->columns[c].name, 200), fputs(" |", out);
        fputs("\n|", out);
        for (size_t c = 0; c < t->n_columns; c++)
            fputs(t->columns[c].is_left ? "---|" : "---:|", out);
        for (size_t row = 0; row < t->n_rows; row++) {
            fputs("\n|", out);
            for (size_t c = 0; c < t->n_columns; c++)
                md_cell_of(out, &t->cells[row * t->n_columns + c]);
        }
        fputc('\n', out);
    }
    if (t->note)
        fputs("\n", out), md_text(out, t->note), fputs("\n", out);
    return QE_OK;
}

static qe_status md_section(void *ctx, qr_section section, qe_error *err)
{
    (void)err;
    if (section != QR_SECTION_CHARTS) /* markdown draws none */
        fprintf(ctx, "\n### %s\n", qr_section_title(section));
    return QE_OK;
}

qe_status qr_render_md(qr_report *r, const qr_render_options *opts, FILE *out, qe_error *err)
{
    char name[256];
    fputs("## qeval report", out);
    if (*qr_model_name(name, sizeof name, r->run.model_path))
        fputs(": ", out), md_text(out, name);
    if (r->run.run_id >= 0)
        fprintf(out, " \xe2\x80\x94 run %lld", (long long)r->run.run_id);
    fputs("\n", out);
    if (r->run.model_path)
        fputs("\n", out), md_text(out, r->run.model_path), fputs("\n", out);
    qr_table_writer writer = {out, md_section, md_table};
    qe_status rc = qr_walk_report(r, opts, &writer, err);
    if (rc == QE_OK && (fflush(out) || ferror(out)))
        return qe_fail(err, QE_EIO, "report: writing the markdown failed");
    return rc;
}
