/* report_svg — small inline SVG charts for the HTML report and `qeval trend`: a scatter with
 * vertical error bars, grouped bars, and lines over an index. Self-contained (no scripts, no
 * external fonts or styles); every text is XML-escaped. Internal to reports/. */
#ifndef QR_REPORT_SVG_H
#define QR_REPORT_SVG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Writes s with &, <, >, " and ' escaped; NULL writes nothing. */
void qr_xml_text(FILE *out, const char *s);

/* One point of a scatter: x, y and the y interval [y_low, y_high] (NAN: no bar). */
typedef struct {
    const char *label;
    double x, y, y_low, y_high;
} qr_svg_point;

typedef struct {
    const char *title, *x_label, *y_label;
    int width, height; /* px; 0 -> 380 x 280 */
    bool is_standalone; /* a .svg file of its own: declares the SVG namespace */
} qr_svg_frame;

/* Points with a NAN x or y are left out; axes span the finite values (x from 0). */
void qr_svg_scatter(FILE *out, const qr_svg_frame *frame, const qr_svg_point *points, size_t n_points);

/* Grouped bars: values[c * n_series + s] for category c and series s; NAN leaves a gap. The value
 * axis starts at 0. */
void qr_svg_bars(FILE *out, const qr_svg_frame *frame, const char *const *categories, size_t n_categories,
                 const char *const *series, size_t n_series, const double *values);

/* Lines: values[s * n_x + i] for series s at position i (labelled x_labels[i]); NAN breaks a line. */
void qr_svg_lines(FILE *out, const qr_svg_frame *frame, const char *const *x_labels, size_t n_x,
                  const char *const *series, size_t n_series, const double *values);

/* The i-th color of the palette (hex, e.g. "#1f77b4"). */
const char *qr_svg_color(size_t i);

#endif
