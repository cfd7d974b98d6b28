/* run_summary — the few lines `qeval run` ends with: each variant's footprint and each task's
 * headline metric ± stderr, read back from the store (so they are what was stored), or the
 * same as one JSON object for scripts (--json). The full report is `qeval report`. */
#ifndef QH_RUN_SUMMARY_H
#define QH_RUN_SUMMARY_H

#include <stdbool.h>
#include <stdio.h>

#include "qe_error.h"
#include "store.h"

qe_status qh_print_run_summary(qh_store *store, int64_t run_id, bool as_json, FILE *out, qe_error *err);

/* The chat template a run put its requests in, from its options_json, into out: "chatml" for
 * a family by name, "auto (chatml)" for the model's own; "" for plain prompts. */
void qh_run_chat_template(const qh_run *run, char *out, size_t cap);

#endif
