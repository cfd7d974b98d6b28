/* report_table — the report's tables as rows of typed cells, and the walk over them in reading
 * order: the summary, one table per benchmark, what changed, the run's facts. Which columns, in
 * which order, holding which numbers, is decided here once; report_md.c and report_html.c only
 * write headings and cells. A table owns its strings. Internal to reports/. */
#ifndef QR_REPORT_TABLE_H
#define QR_REPORT_TABLE_H

#include "report.h"

typedef enum {
    QR_CELL_TEXT,  /* a name, or a number already in text form                                  */
    QR_CELL_PROSE, /* text from the data (a question, a generation), maybe long: markdown cuts
                      it to a line, html shows its first lines and the rest on demand         */
    QR_CELL_SCORE, /* a score and its 95 % interval                                             */
    QR_CELL_DELTA, /* a change against the reference with its interval and p                   */
} qr_cell_kind;

typedef struct {
    qr_cell_kind kind;
    char *text;                 /* TEXT, PROSE; NULL: unknown ("—")                            */
    double value, low, high;    /* SCORE, fractions; value NAN: no score                       */
    qr_delta delta;             /* DELTA; delta NAN: none (the reference itself, or no score)  */
} qr_cell;

typedef struct {
    char *name;                 /* the header                                                  */
    bool is_left;               /* names and prose align left, numbers right                   */
} qr_table_column;

typedef struct {
    char *title;                /* the benchmark's name above its table; NULL: none            */
    char *intro, *note;         /* a sentence before / after the table; NULL: none             */
    qr_table_column *columns;   /* [n_columns]; 0 columns: no table, only the intro            */
    qr_cell *cells;             /* [n_rows][n_columns], row-major                              */
    size_t n_columns, n_rows;
} qr_table;

void qr_table_free(qr_table *t); /* NULL-safe */

/* The report's parts in reading order. CHARTS holds no table: a format draws them or skips it. */
typedef enum { QR_SECTION_SUMMARY, QR_SECTION_CHARTS, QR_SECTION_DETAIL, QR_SECTION_CHANGES, QR_SECTION_RUN } qr_section;
const char *qr_section_title(qr_section section); /* "Summary", "Per-benchmark detail", ... */

/* What a format supplies to the walk: a section's start, then each of its tables. */
typedef struct {
    void *ctx;
    qe_status (*section)(void *ctx, qr_section section, qe_error *err);
    qe_status (*table)(void *ctx, const qr_table *table, qe_error *err);
} qr_table_writer;

/* Builds each table of the report and hands it to the writer, section by section; stops at the
 * first error (the builder's or the writer's). opts may be NULL. */
qe_status qr_walk_report(qr_report *r, const qr_render_options *opts, const qr_table_writer *writer, qe_error *err);

#endif
