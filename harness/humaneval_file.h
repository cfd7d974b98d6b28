/* humaneval_file — a minimal reader of OpenAI's HumanEval.jsonl.gz (164 records of task_id,
 * prompt, entry_point, canonical_solution, test), kept in one function so that the generic
 * dataset loaders in datasets/ can replace it. Errors name the file, the line and the field. */
#ifndef QH_HUMANEVAL_FILE_H
#define QH_HUMANEVAL_FILE_H

#include <stddef.h>

#include "qe_error.h"

typedef struct {
    char *task_id, *prompt, *entry_point, *canonical_solution, *test;
} qh_humaneval_problem;

/* Reads a gzip'd (or plain) JSONL file; *problems is an array of *n_problems, free with
 * qh_humaneval_free. */
qe_status qh_humaneval_load(const char *path, qh_humaneval_problem **problems, size_t *n_problems, qe_error *err);
void qh_humaneval_free(qh_humaneval_problem *problems, size_t n_problems);

/* Reads a whole gzip'd or plain file into a NUL-terminated buffer (max 1 GiB). */
qe_status qh_read_gz_file(const char *path, char **text, size_t *n_bytes, qe_error *err);

#endif
