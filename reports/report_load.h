/* report_load — a qr_report from one run of the results store (see report_load.c for how store
 * rows map to the report's variants, scores and samples). Reads only; the store may be opened
 * read-only. */
#ifndef QR_REPORT_LOAD_H
#define QR_REPORT_LOAD_H

#include "report.h"
#include "store.h"

/* Loads run run_id; *out is the caller's (qr_report_free). */
qe_status qr_report_load(qh_store *store, int64_t run_id, qr_report **out, qe_error *err);

/* The newest complete run of the file, else its newest run; QE_EINVAL when it holds none. */
qe_status qr_latest_run_id(qh_store *store, int64_t *run_id, qe_error *err);

/* Opens db_path read-only and loads the run named by spec: NULL -> the latest run of db_path;
 * "ID" -> run ID of db_path; "FILE" -> the latest run of FILE; "FILE:ID" -> run ID of FILE. */
qe_status qr_report_open(const char *db_path, const char *spec, qr_report **out, qe_error *err);

#endif
