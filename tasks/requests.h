/* requests — what a task asks of a model and what comes back, with no dependence on the
 * engine. The harness turns a qt_request into qe_loglikelihood / qe_generate_until calls and
 * fills a qt_response; scoring (qt_scores in task.h) consumes the responses.
 *
 *   loglikelihood:  score each continuation after context (multiple choice: one per choice).
 *   generate_until: greedy text after context, stopped at any stop string or max_new_tokens.
 *
 * A context longer than the model's window is cut from the left by the engine; the response
 * says so in was_truncated and the scores count it. */
#ifndef QT_REQUESTS_H
#define QT_REQUESTS_H

#include <stdbool.h>
#include <stdio.h>

#include "qe_error.h"

typedef enum { QT_REQUEST_LOGLIKELIHOOD, QT_REQUEST_GENERATE_UNTIL } qt_request_type;

typedef struct {
    const char *task;          /* (sub)task name, e.g. "mmlu_anatomy"; owned by the task */
    int doc_id;                /* index of the document within that subtask's eval split */
    int doc_index;             /* index over all documents of the task (qt_task_n_docs) */
    qt_request_type type;
    char *context;             /* description + few-shot examples + the document's prompt */
    char **continuations;      /* [n_continuations] loglikelihood only, target delimiter included */
    int n_continuations;
    const char *const *stops;  /* [n_stops] generate_until only; owned by the task */
    int n_stops;
    int max_new_tokens;        /* generate_until only */
} qt_request;

void qt_request_clear(qt_request *request); /* frees what the request owns; NULL-safe */

/* A chat template, as the harness supplies it (tasks know none): *prompt (malloc'd) = the
 * template applied to [system (NULL: no system turn), user] with the assistant's turn opened. */
typedef qe_status (*qt_chat_render_fn)(void *state, const char *system, const char *user, char **prompt,
                                       qe_error *err);
typedef struct {
    qt_chat_render_fn render;
    void *state;               /* passed to render */
} qt_chat_renderer;

/* One JSON line: {"task","doc_id","type","context","continuations"|"stop","max_new_tokens"}.
 * Strings are escaped as Python's json.dumps(ensure_ascii=False) does. */
qe_status qt_request_write_json(const qt_request *request, FILE *out, qe_error *err);

typedef enum { QT_EXEC_NOT_RUN = 0, QT_EXEC_PASSED, QT_EXEC_FAILED } qt_exec_result;

typedef struct {
    /* loglikelihood: one per continuation, in request order */
    const double *loglikelihoods;  /* [n_loglikelihoods] sum of log p over the continuation tokens */
    const bool *is_greedy;         /* [n_loglikelihoods] may be NULL */
    int n_loglikelihoods;
    /* generate_until */
    const char *generated_text;    /* up to, not including, the stop string */
    qt_exec_result exec_result;    /* code tasks: the sandbox's verdict on the program */
    bool was_truncated;            /* the engine cut the context from the left */
} qt_response;

#endif
