/* run_record — how one document's model output is kept in the store and read back.
 *
 * A sample's response_json is the raw material for every later question (rescoring after a
 * scoring fix, paired tests, fidelity): for a loglikelihood document
 *   {"ll":[...],"greedy":[...],"truncated":b,"argmax":[...],"p":[...]}
 * with one ll/greedy per continuation and, for the first continuation's tokens, the argmax
 * token id and the probability of the actual token at each position; for a generated document
 *   {"text":"...","truncated":b,"exec":"passed|failed|timeout|error|not_run"}. */
#ifndef QH_RUN_RECORD_H
#define QH_RUN_RECORD_H

#include <stdbool.h>

#include "qe_error.h"
#include "requests.h"

typedef struct {
    qt_request_type type;
    double *loglikelihoods;    /* [n_choices] */
    bool *is_greedy;           /* [n_choices] */
    int n_choices;
    int *argmax;               /* [n_positions] first continuation's argmax token ids */
    double *p_target;          /* [n_positions] probability of the actual token        */
    int n_positions;
    char *text;                /* generated text                                       */
    qt_exec_result exec_result;
    bool was_truncated;
} qh_doc_record;

void qh_doc_record_clear(qh_doc_record *record); /* NULL-safe; leaves it zeroed */

/* *json is malloc'd. */
qe_status qh_doc_record_to_json(const qh_doc_record *record, char **json, qe_error *err);
qe_status qh_doc_record_from_json(const char *json, qt_request_type type, qh_doc_record *record, qe_error *err);

/* A view of the record as the scorer takes it (pointers into record). */
qt_response qh_doc_record_response(const qh_doc_record *record);

const char *qh_exec_result_name(qt_exec_result result);

#endif
