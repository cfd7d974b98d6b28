/* report_html — the report as one self-contained HTML file: inline CSS and SVG only (no script,
 * no external style, font or image), so it can be mailed, archived or opened offline. Charts:
 * accuracy against resident footprint per headline benchmark (95 % intervals as error bars),
 * speed bars and memory bars; then the same tables as the markdown report (report_table.c), each
 * in a box that scrolls sideways rather than widening the page, long questions and generations
 * collapsed to their first lines (<details>, which needs no script). */
#include "report_fmt.h"
#include "report_labels.h"
#include "report_svg.h"
#include "report_table.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Every table sits in its own box that scrolls sideways when wider than the window, so the page
 * itself keeps to the window's width; long prose wraps anywhere rather than widening a column. */
static const char style[] =
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:24px;color:#222}"
    "h1{font-size:22px;margin-bottom:2px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}"
    "h3{font-size:15px}p.path{color:#666;font-size:12px;margin-top:0;overflow-wrap:anywhere}"
    ".tw{max-width:100%;overflow-x:auto}"
    "table{border-collapse:collapse;margin:8px 0;font-size:12px}"
    "th,td{border:1px solid #ccc;padding:2px 3px;text-align:right;vertical-align:top}"
    "th{background:#f3f3f3;max-width:110px}td.l,th.l{text-align:left}tr:nth-child(even) td{background:#fafafa}"
    "td.l{max-width:480px;overflow-wrap:break-word}"
    "td.x{text-align:left;min-width:160px;max-width:360px;overflow-wrap:anywhere;white-space:pre-wrap}"
    "summary{cursor:pointer;color:#333}details[open] summary{color:#888}"
    ".sig{font-weight:bold;color:#b00}.ci{color:#666;font-size:11px}.p{color:#666;font-size:11px}"
    ".charts{display:flex;flex-wrap:wrap;gap:12px}.chart{border:1px solid #ddd}"
    ".note{color:#555;font-size:12px;max-width:900px}";

/* Prose longer than this many bytes or lines shows PREVIEW_LINES lines (at most PREVIEW_BYTES
 * bytes) and opens to the whole text. */
enum { LONG_PROSE_BYTES = 240, LONG_PROSE_LINES = 4, PREVIEW_LINES = 2, PREVIEW_BYTES = 160 };

/* The preview of s into buf (PREVIEW_BYTES + 1 bytes): its first PREVIEW_LINES lines that hold
 * more than blanks (a generation or a prompt often opens with empty lines), cut at PREVIEW_BYTES
 * on a UTF-8 character boundary. */
static void make_preview(const char *s, char *buf)
{
    size_t n = 0;
    int n_lines = 0;
    bool is_full = false;
    for (const char *line = s; *line && n_lines < PREVIEW_LINES && n < PREVIEW_BYTES && !is_full;) {
        size_t len = strcspn(line, "\n");
        if (strspn(line, " \t\r") < len) {
            if (n_lines++)
                buf[n++] = '\n';
            for (size_t i = 0, char_len = 1; i < len; i += char_len, char_len = 1) {
                while (i + char_len < len && ((unsigned char)line[i + char_len] & 0xC0) == 0x80)
                    char_len++;
                if ((is_full = n + char_len > PREVIEW_BYTES))
                    break;
                memcpy(buf + n, line + i, char_len), n += char_len;
            }
        }
        line += len + (line[len] == '\n');
    }
    buf[n] = 0;
}

static bool is_long_prose(const char *s)
{
    size_t n_lines = 1, len = 0;
    for (; s[len]; len++)
        n_lines += s[len] == '\n';
    return len > LONG_PROSE_BYTES || n_lines > LONG_PROSE_LINES;
}

/* Text from the data in a cell that keeps its line breaks; long text collapsed to its first
 * lines, the whole of it one click away. */
static void prose_td(FILE *out, const char *s)
{
    fputs("<td class=\"x\">", out);
    if (!s) {
        fputs(QR_DASH, out);
    } else if (!is_long_prose(s)) {
        qr_xml_text(out, s);
    } else {
        char preview[PREVIEW_BYTES + 1];
        make_preview(s, preview);
        fputs("<details><summary>", out);
        qr_xml_text(out, preview);
        fputs("\xe2\x80\xa6</summary>", out);
        qr_xml_text(out, s);
        fputs("</details>", out);
    }
    fputs("</td>", out);
}

static void cell_td(FILE *out, const qr_cell *cell, bool is_left)
{
    char v[32], lo[32], hi[32], p[32];
    const qr_delta *d = &cell->delta;
    switch (cell->kind) {
    case QR_CELL_TEXT:
        fputs(is_left ? "<td class=\"l\">" : "<td>", out);
        if (cell->text)
            qr_xml_text(out, cell->text);
        else
            fputs(QR_DASH, out);
        fputs("</td>", out);
        break;
    case QR_CELL_PROSE: prose_td(out, cell->text); break;
    case QR_CELL_SCORE:
        if (isfinite(cell->value))
            fprintf(out, "<td>%s<br><span class=\"ci\">[%s,&#160;%s]</span></td>", qr_fmt_points(v, cell->value),
                    qr_fmt_points(lo, cell->low), qr_fmt_points(hi, cell->high));
        else
            fputs("<td>" QR_DASH "</td>", out);
        break;
    case QR_CELL_DELTA:
        if (isfinite(d->delta))
            fprintf(out, "<td title=\"%s, %lld pairs\"><span class=\"%s\">%s%s</span><br><span class=\"ci\">[%s,&#160;%s]</span>"
                         "<br><span class=\"p\">p=%s</span></td>", qr_test_name(d->test), (long long)d->n_pairs,
                    qr_is_significant(d) ? "sig" : "d", qr_fmt_signed_points(v, d->delta), qr_is_significant(d) ? "*" : "",
                    qr_fmt_signed_points(lo, d->ci_low), qr_fmt_signed_points(hi, d->ci_high), qr_fmt_p(p, d->p_value));
        else
            fputs("<td>" QR_DASH "</td>", out);
        break;
    }
}

static qe_status charts(qr_report *r, const qr_column *cols, size_t n_cols, FILE *out, qe_error *err)
{
    size_t nv = r->n_variants;
    qr_svg_point *points = calloc(nv ? nv : 1, sizeof *points);
    const char **names = calloc(nv ? nv : 1, sizeof *names);
    double *values = calloc(3 * (nv ? nv : 1), sizeof *values);
    if (!points || !names || !values) {
        free(points), free(names), free(values);
        return qe_fail(err, QE_ENOMEM, "report: out of memory drawing charts");
    }
    for (size_t i = 0; i < nv; i++)
        names[i] = r->variants[i].name;
    fputs("<div class=\"charts\">\n", out);
    for (size_t c = 0; c < n_cols; c++) {
        for (size_t i = 0; i < nv; i++) {
            const qr_variant *v = &r->variants[i];
            const qr_score *s = qr_report_find_score(r, v->name, cols[c].task, cols[c].metric);
            double lo = NAN, hi = NAN;
            if (s)
                qr_score_interval(s, &lo, &hi);
            points[i] = (qr_svg_point){v->name, v->footprint_bytes >= 0 ? (double)v->footprint_bytes / 1e9 : NAN,
                                       s ? 100 * s->value : NAN, 100 * lo, 100 * hi};
        }
        char title[160];
        snprintf(title, sizeof title, "%s vs footprint", cols[c].label);
        qr_svg_frame frame = {title, "resident footprint (GB)", "score (points, 95% interval)", 0, 0, false};
        qr_svg_scatter(out, &frame, points, nv);
    }
    static const char *const speed_series[] = {"prefill tok/s", "decode tok/s"};
    for (size_t i = 0; i < nv; i++)
        values[2 * i] = r->variants[i].prefill_tok_s, values[2 * i + 1] = r->variants[i].decode_tok_s;
    qr_svg_frame speed = {"Speed", "variant", "tokens per second", 0, 0, false};
    qr_svg_bars(out, &speed, names, nv, speed_series, 2, values);
    static const char *const memory_series[] = {"footprint", "peak RSS", "peak device"};
    for (size_t i = 0; i < nv; i++) {
        const qr_variant *v = &r->variants[i];
        int64_t b[3] = {v->footprint_bytes, v->peak_rss_bytes, v->peak_device_bytes};
        for (size_t k = 0; k < 3; k++)
            values[3 * i + k] = b[k] >= 0 ? (double)b[k] / 1e9 : NAN;
    }
    qr_svg_frame memory = {"Memory", "variant", "GB", 0, 0, false};
    qr_svg_bars(out, &memory, names, nv, memory_series, 3, values);
    fputs("</div>\n", out);
    free(points), free(names), free(values);
    return QE_OK;
}

/* The walk's writer: the report, for the charts, and where it goes. */
typedef struct {
    qr_report *report;
    FILE *out;
} html_ctx;

static qe_status html_table(void *vctx, const qr_table *t, qe_error *err)
{
    (void)err;
    FILE *out = ((html_ctx *)vctx)->out;
    if (t->title)
        fputs("<h3>", out), qr_xml_text(out, t->title), fputs("</h3>\n", out);
    if (t->intro)
        fputs("<p>", out), qr_xml_text(out, t->intro), fputs("</p>\n", out);
    if (t->n_columns) {
        fputs("<div class=\"tw\"><table><tr>", out);
        for (size_t c = 0; c < t->n_columns; c++) {
            fputs(t->columns[c].is_left ? "<th class=\"l\">" : "<th>", out);
            qr_xml_text(out, t->columns[c].name), fputs("</th>", out);
        }
        fputs("</tr>\n", out);
        for (size_t row = 0; row < t->n_rows; row++) {
            fputs("<tr>", out);
            for (size_t c = 0; c < t->n_columns; c++)
                cell_td(out, &t->cells[row * t->n_columns + c], t->columns[c].is_left);
            fputs("</tr>\n", out);
        }
        fputs("</table></div>\n", out);
    }
    if (t->note)
        fputs("<p class=\"note\">", out), qr_xml_text(out, t->note), fputs("</p>\n", out);
    return QE_OK;
}

static qe_status html_section(void *vctx, qr_section section, qe_error *err)
{
    html_ctx *ctx = vctx;
    fprintf(ctx->out, "<h2>%s</h2>\n", qr_section_title(section));
    if (section != QR_SECTION_CHARTS)
        return QE_OK;
    qr_column *cols;
    size_t n_cols;
    if (qr_headline_columns(ctx->report, &cols, &n_cols, err) != QE_OK)
        return err->code;
    qe_status rc = charts(ctx->report, cols, n_cols, ctx->out, err);
    free(cols);
    return rc;
}

qe_status qr_render_html(qr_report *r, const qr_render_options *opts, FILE *out, qe_error *err)
{
    char name[256];
    qr_model_name(name, sizeof name, r->run.model_path);
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>", out);
    qr_xml_text(out, name);
    fprintf(out, "%sqeval report</title><style>%s</style></head>\n<body>\n<h1>", *name ? " \xe2\x80\x94 " : "", style);
    qr_xml_text(out, name);
    fputs(*name ? " \xe2\x80\x94 qeval report" : "qeval report", out);
    if (r->run.run_id >= 0)
        fprintf(out, ", run %lld", (long long)r->run.run_id);
    fputs("</h1>\n", out);
    if (r->run.model_path)
        fputs("<p class=\"path\">", out), qr_xml_text(out, r->run.model_path), fputs("</p>\n", out);
    html_ctx ctx = {r, out};
    qr_table_writer writer = {&ctx, html_section, html_table};
    qe_status rc = qr_walk_report(r, opts, &writer, err);
    if (rc == QE_OK) {
        fputs("</body></html>\n", out);
        if (fflush(out) || ferror(out))
            rc = qe_fail(err, QE_EIO, "report: writing the html failed");
    }
    return rc;
}

qe_status qr_render(qr_report *r, qr_format format, const qr_render_options *opts, FILE *out, qe_error *err)
{
    switch (format) {
    case QR_FORMAT_MD: return qr_render_md(r, opts, out, err);
    case QR_FORMAT_HTML: return qr_render_html(r, opts, out, err);
    case QR_FORMAT_CSV: return qr_render_csv(r, out, err);
    case QR_FORMAT_JSON: return qr_render_json(r, opts, out, err);
    }
    return qe_fail(err, QE_EINVAL, "report: unknown format %d", (int)format);
}
