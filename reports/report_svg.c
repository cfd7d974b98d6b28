/* report_svg — inline SVG charts (report_svg.h). */
#include "report_svg.h"

#include <math.h>
#include <stdbool.h>

enum { MARGIN_LEFT = 56, MARGIN_RIGHT = 16, MARGIN_TOP = 30, MARGIN_BOTTOM = 44 };

void qr_xml_text(FILE *out, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&#39;", out); break;
        default: fputc(*s, out);
        }
    }
}

const char *qr_svg_color(size_t i)
{
    static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                          "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"};
    return palette[i % (sizeof palette / sizeof palette[0])];
}

/* A data range mapped onto pixels, with "nice" ticks (1, 2 or 5 x 10^k). */
typedef struct {
    double lo, hi, step;
    double px_lo, px_hi;
} axis;

static axis make_axis(double lo, double hi, double px_lo, double px_hi)
{
    if (!isfinite(lo) || !isfinite(hi))
        lo = 0, hi = 1;
    if (hi - lo < 1e-12)
        lo -= 0.5, hi += 0.5;
    double raw = (hi - lo) / 5, mag = pow(10, floor(log10(raw)));
    double step = raw / mag < 1.5 ? mag : raw / mag < 3.5 ? 2 * mag : raw / mag < 7.5 ? 5 * mag : 10 * mag;
    return (axis){floor(lo / step) * step, ceil(hi / step) * step, step, px_lo, px_hi};
}

static double to_px(const axis *a, double v)
{
    return a->px_lo + (v - a->lo) / (a->hi - a->lo) * (a->px_hi - a->px_lo);
}

static void frame_open(FILE *out, const qr_svg_frame *f, int *w, int *h)
{
    *w = f->width ? f->width : 380, *h = f->height ? f->height : 280;
    fprintf(out, "<svg%s width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
                 "role=\"img\" class=\"chart\" font-family=\"sans-serif\"><title>",
            f->is_standalone ? " xmlns=\"http://www.w3.org/2000/svg\"" : "", *w, *h, *w, *h);
    qr_xml_text(out, f->title);
    fprintf(out, "</title><rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>"
                 "<text x=\"%d\" y=\"18\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">",
            *w, *h, *w / 2);
    qr_xml_text(out, f->title);
    fputs("</text>", out);
}

/* Axes lines, value ticks on y, and the two axis labels; x ticks are the caller's. */
static void draw_y_axis(FILE *out, const qr_svg_frame *f, const axis *y, int w, int h)
{
    for (double v = y->lo; v <= y->hi + y->step / 2; v += y->step) {
        double py = to_px(y, v);
        fprintf(out, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>"
                     "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\" font-size=\"10\">%g</text>",
                MARGIN_LEFT, w - MARGIN_RIGHT, py, py, MARGIN_LEFT - 4, py + 3, fabs(v) < y->step / 1e6 ? 0.0 : v);
    }
    fprintf(out, "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"#333\"/>"
                 "<line x1=\"%d\" x2=\"%d\" y1=\"%d\" y2=\"%d\" stroke=\"#333\"/>",
            MARGIN_LEFT, MARGIN_LEFT, MARGIN_TOP, h - MARGIN_BOTTOM, MARGIN_LEFT, w - MARGIN_RIGHT, h - MARGIN_BOTTOM,
            h - MARGIN_BOTTOM);
    fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" font-size=\"11\">", (MARGIN_LEFT + w - MARGIN_RIGHT) / 2,
            h - 6);
    qr_xml_text(out, f->x_label);
    fprintf(out, "</text><text transform=\"translate(13 %d) rotate(-90)\" text-anchor=\"middle\" font-size=\"11\">",
            (MARGIN_TOP + h - MARGIN_BOTTOM) / 2);
    qr_xml_text(out, f->y_label);
    fputs("</text>", out);
}

void qr_svg_scatter(FILE *out, const qr_svg_frame *f, const qr_svg_point *p, size_t n)
{
    int w, h;
    frame_open(out, f, &w, &h);
    double x_hi = 0, y_lo = INFINITY, y_hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(p[i].x) || !isfinite(p[i].y))
            continue;
        x_hi = fmax(x_hi, p[i].x);
        y_lo = fmin(y_lo, isfinite(p[i].y_low) ? p[i].y_low : p[i].y);
        y_hi = fmax(y_hi, isfinite(p[i].y_high) ? p[i].y_high : p[i].y);
    }
    axis x = make_axis(0, x_hi * 1.15, MARGIN_LEFT, w - MARGIN_RIGHT);
    axis y = make_axis(y_lo, y_hi, h - MARGIN_BOTTOM, MARGIN_TOP);
    draw_y_axis(out, f, &y, w, h);
    for (double v = x.lo; v <= x.hi + x.step / 2; v += x.step)
        fprintf(out, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"10\">%g</text>", to_px(&x, v),
                h - MARGIN_BOTTOM + 13, fabs(v) < x.step / 1e6 ? 0.0 : v);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(p[i].x) || !isfinite(p[i].y))
            continue;
        double px = to_px(&x, p[i].x), py = to_px(&y, p[i].y);
        const char *color = qr_svg_color(i);
        if (isfinite(p[i].y_low) && isfinite(p[i].y_high)) {
            double a = to_px(&y, p[i].y_low), b = to_px(&y, p[i].y_high);
            fprintf(out, "<path d=\"M%.1f %.1fV%.1fM%.1f %.1fh8M%.1f %.1fh8\" stroke=\"%s\" stroke-width=\"1.5\" "
                         "fill=\"none\"/>", px, a, b, px - 4, a, px - 4, b, color);
        }
        fprintf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"%s\"><title>", px, py, color);
        qr_xml_text(out, p[i].label);
        fprintf(out, ": %.4g, %.4g</title></circle><text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"%s\">", p[i].x,
                p[i].y, px + 7, py - 5, color);
        qr_xml_text(out, p[i].label);
        fputs("</text>", out);
    }
    fputs("</svg>\n", out);
}

static void legend(FILE *out, const char *const *series, size_t n_series, int w)
{
    for (size_t s = 0; s < n_series; s++) {
        int lx = w - MARGIN_RIGHT - 110, ly = MARGIN_TOP + 4 + 14 * (int)s;
        fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                     "<text x=\"%d\" y=\"%d\" font-size=\"10\">", lx, ly, qr_svg_color(s), lx + 14, ly + 9);
        qr_xml_text(out, series[s]);
        fputs("</text>", out);
    }
}

void qr_svg_bars(FILE *out, const qr_svg_frame *f, const char *const *categories, size_t n_categories,
                 const char *const *series, size_t n_series, const double *values)
{
    int w, h;
    frame_open(out, f, &w, &h);
    double hi = 0;
    for (size_t i = 0; i < n_categories * n_series; i++)
        if (isfinite(values[i]))
            hi = fmax(hi, values[i]);
    axis y = make_axis(0, hi * (n_series > 1 ? 1.3 : 1.1), h - MARGIN_BOTTOM, MARGIN_TOP);
    draw_y_axis(out, f, &y, w, h);
    double slot = (double)(w - MARGIN_LEFT - MARGIN_RIGHT) / (double)(n_categories ? n_categories : 1);
    double bar = slot * 0.8 / (double)(n_series ? n_series : 1);
    for (size_t c = 0; c < n_categories; c++) {
        double x0 = MARGIN_LEFT + slot * (double)c + slot * 0.1;
        for (size_t s = 0; s < n_series; s++) {
            double v = values[c * n_series + s];
            if (!isfinite(v))
                continue;
            double top = to_px(&y, v), base = to_px(&y, 0);
            fprintf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"><title>",
                    x0 + bar * (double)s, top, bar * 0.92, base - top, qr_svg_color(s));
            qr_xml_text(out, categories[c]);
            fputs(" ", out);
            qr_xml_text(out, series[s]);
            fprintf(out, ": %.4g</title></rect>", v);
        }
        fprintf(out, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"11\">", x0 + slot * 0.4,
                h - MARGIN_BOTTOM + 14);
        qr_xml_text(out, categories[c]);
        fputs("</text>", out);
    }
    if (n_series > 1)
        legend(out, series, n_series, w);
    fputs("</svg>\n", out);
}

void qr_svg_lines(FILE *out, const qr_svg_frame *f, const char *const *x_labels, size_t n_x,
                  const char *const *series, size_t n_series, const double *values)
{
    int w, h;
    frame_open(out, f, &w, &h);
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n_x * n_series; i++)
        if (isfinite(values[i]))
            lo = fmin(lo, values[i]), hi = fmax(hi, values[i]);
    axis y = make_axis(lo - (hi - lo) * 0.05, hi + (hi - lo) * (n_series > 1 ? 0.3 : 0.05), h - MARGIN_BOTTOM, MARGIN_TOP);
    draw_y_axis(out, f, &y, w, h);
    double span = (double)(w - MARGIN_LEFT - MARGIN_RIGHT - 80);
    size_t label_every = n_x > 12 ? (n_x + 11) / 12 : 1;
    for (size_t i = 0; i < n_x; i++) {
        double px = MARGIN_LEFT + 40 + (n_x > 1 ? span * (double)i / (double)(n_x - 1) : span / 2);
        if (i % label_every == 0) {
            fprintf(out, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\" font-size=\"10\">", px, h - MARGIN_BOTTOM + 13);
            qr_xml_text(out, x_labels[i]);
            fputs("</text>", out);
        }
    }
    for (size_t s = 0; s < n_series; s++) {
        fputs("<path d=\"", out);
        bool is_drawing = false;
        for (size_t i = 0; i < n_x; i++) {
            double v = values[s * n_x + i];
            if (!isfinite(v)) {
                is_drawing = false;
                continue;
            }
            double px = MARGIN_LEFT + 40 + (n_x > 1 ? span * (double)i / (double)(n_x - 1) : span / 2);
            fprintf(out, "%c%.1f %.1f", is_drawing ? 'L' : 'M', px, to_px(&y, v));
            is_drawing = true;
        }
        fprintf(out, "\" stroke=\"%s\" stroke-width=\"2\" fill=\"none\"/>", qr_svg_color(s));
        for (size_t i = 0; i < n_x; i++) {
            double v = values[s * n_x + i];
            if (!isfinite(v))
                continue;
            double px = MARGIN_LEFT + 40 + (n_x > 1 ? span * (double)i / (double)(n_x - 1) : span / 2);
            fprintf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"><title>%.4g</title></circle>", px,
                    to_px(&y, v), qr_svg_color(s), v);
        }
    }
    if (n_series > 1)
        legend(out, series, n_series, w);
    fputs("</svg>\n", out);
}
