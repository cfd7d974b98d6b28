/* qt_regex — Python `re` behaviour on top of PCRE2 for the answer filters and exact_match of
 * lm-evaluation-harness: re.findall (group rules included), re.sub(pattern, "", text), and the
 * exact_match normalisation (regexes_to_ignore, ignore_case, ignore_punctuation). Patterns
 * work on code points (UTF mode, Unicode \d \w like Python 3); invalid UTF-8 in model output
 * is tolerated, never a crash. */
#ifndef QT_REGEX_H
#define QT_REGEX_H

#include <stdbool.h>

#include "qe_error.h"

typedef struct qt_regex qt_regex;

qe_status qt_regex_compile(const char *pattern, qt_regex **out, qe_error *err);
void qt_regex_free(qt_regex *re); /* NULL-safe */

/* lm-eval's RegexFilter: m = re.findall(text); if m: m = m[group_select] (Python index, -1 =
 * last); a tuple (several groups) gives its first non-empty group; then .strip(). No match (or
 * an index out of range) gives fallback. *out is malloc'd. */
qe_status qt_regex_extract(const qt_regex *re, const char *text, int group_select, const char *fallback, char **out,
                           qe_error *err);

/* re.sub(pattern, "", text). */
qe_status qt_regex_remove(const qt_regex *re, const char *text, char **out, qe_error *err);

/* exact_match's preprocessing of a prediction or reference: each regex removed in order, then
 * lower case (Unicode), then ASCII punctuation (string.punctuation) removed. */
qe_status qt_exact_match_normalize(const char *text, qt_regex *const *ignore, int n_ignore, bool ignore_case,
                                   bool ignore_punctuation, char **out, qe_error *err);

#endif
