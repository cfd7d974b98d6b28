/* report_model — building and looking up the in-memory report (report.h). */
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

qe_status qr_report_create(qr_report **out, qe_error *err)
{
    qr_report *r = calloc(1, sizeof *r);
    if (!r)
        return qe_fail(err, QE_ENOMEM, "report: out of memory");
    r->run.run_id = -1;
    r->run.host_cores = r->run.host_ram_bytes = r->run.gpu_memory_bytes = -1;
    qe_status rc = qr_set_string(&r->reference_variant, "fp32", err);
    if (rc != QE_OK) {
        free(r);
        return rc;
    }
    *out = r;
    return QE_OK;
}

static void run_facts_free(qr_run_facts *f)
{
    char **strings[] = {&f->started_at,   &f->finished_at, &f->status,       &f->model_path,
                        &f->model_sha256, &f->qeval_version, &f->git_commit, &f->command_line,
                        &f->host_cpu,     &f->gpu_name,    &f->gpu_driver,   &f->options_json,
                        &f->sandbox_json, &f->tasks_json};
    for (size_t i = 0; i < sizeof strings / sizeof strings[0]; i++)
        free(*strings[i]);
}

void qr_report_free(qr_report *r)
{
    if (!r)
        return;
    run_facts_free(&r->run);
    free(r->reference_variant);
    for (size_t i = 0; i < r->n_variants; i++)
        free(r->variants[i].name);
    for (size_t i = 0; i < r->n_scores; i++) {
        qr_score *s = &r->scores[i];
        free(s->variant), free(s->task), free(s->metric), free(s->benchmark), free(s->label);
    }
    for (size_t i = 0; i < r->n_samples; i++) {
        qr_sample *s = &r->samples[i];
        free(s->variant), free(s->task), free(s->metric), free(s->question), free(s->answer), free(s->source_task);
    }
    free(r->variants);
    free(r->scores);
    free(r->samples);
    free(r);
}

qe_status qr_set_string(char **field, const char *value, qe_error *err)
{
    char *copy = NULL;
    if (value && !(copy = strdup(value)))
        return qe_fail(err, QE_ENOMEM, "report: out of memory copying a %zu-byte string", strlen(value));
    free(*field);
    *field = copy;
    return QE_OK;
}

/* Copies every string in `fields` (pointers to char* members of the new element) in place, so
 * the element owns them; on failure frees those copied so far and clears the rest. */
static qe_status own_strings(char **const *fields, size_t n, qe_error *err)
{
    for (size_t i = 0; i < n; i++) {
        char *src = *fields[i];
        *fields[i] = NULL;
        if (qr_set_string(fields[i], src, err) != QE_OK) {
            for (size_t j = 0; j < i; j++)
                free(*fields[j]), *fields[j] = NULL;
            for (size_t j = i + 1; j < n; j++)
                *fields[j] = NULL;
            return QE_ENOMEM;
        }
    }
    return QE_OK;
}

/* Capacity is implicit: 4, then doubling, so an array of n items is reallocated exactly when n is
 * 0 or a power of two from 4 up. */
static qe_status grow(void **items, size_t n, size_t item_bytes, qe_error *err)
{
    bool is_full = n == 0 || (n >= 4 && (n & (n - 1)) == 0);
    if (!is_full)
        return QE_OK;
    size_t cap = n ? 2 * n : 4;
    void *p = realloc(*items, cap * item_bytes);
    if (!p)
        return qe_fail(err, QE_ENOMEM, "report: out of memory growing to %zu items", cap);
    *items = p;
    return QE_OK;
}

qe_status qr_report_add_variant(qr_report *r, const qr_variant *v, qr_variant **added, qe_error *err)
{
    if (!v->name)
        return qe_fail(err, QE_EINVAL, "report: a variant needs a name");
    if (grow((void **)&r->variants, r->n_variants, sizeof *r->variants, err) != QE_OK)
        return QE_ENOMEM;
    qr_variant *dst = &r->variants[r->n_variants];
    *dst = *v;
    char **fields[] = {&dst->name};
    if (own_strings(fields, 1, err) != QE_OK)
        return QE_ENOMEM;
    r->n_variants++;
    if (added)
        *added = dst;
    return QE_OK;
}

qe_status qr_report_add_score(qr_report *r, const qr_score *s, qe_error *err)
{
    if (!s->variant || !s->task || !s->metric)
        return qe_fail(err, QE_EINVAL, "report: a score needs a variant, a task and a metric");
    if (grow((void **)&r->scores, r->n_scores, sizeof *r->scores, err) != QE_OK)
        return QE_ENOMEM;
    qr_score *dst = &r->scores[r->n_scores];
    *dst = *s;
    if (!dst->benchmark)
        dst->benchmark = dst->task;
    if (!dst->label)
        dst->label = dst->task;
    char **fields[] = {&dst->variant, &dst->task, &dst->metric, &dst->benchmark, &dst->label};
    if (own_strings(fields, 5, err) != QE_OK)
        return QE_ENOMEM;
    r->n_scores++;
    return QE_OK;
}

qe_status qr_report_add_sample(qr_report *r, const qr_sample *s, qe_error *err)
{
    if (!s->variant || !s->task || !s->metric)
        return qe_fail(err, QE_EINVAL, "report: a sample needs a variant, a task and a metric");
    if (grow((void **)&r->samples, r->n_samples, sizeof *r->samples, err) != QE_OK)
        return QE_ENOMEM;
    qr_sample *dst = &r->samples[r->n_samples];
    *dst = *s;
    char **fields[] = {&dst->variant, &dst->task, &dst->metric, &dst->question, &dst->answer, &dst->source_task};
    if (own_strings(fields, 6, err) != QE_OK)
        return QE_ENOMEM;
    r->n_samples++;
    r->is_samples_sorted = false;
    return QE_OK;
}

const qr_variant *qr_report_find_variant(const qr_report *r, const char *name)
{
    for (size_t i = 0; name && i < r->n_variants; i++)
        if (!strcmp(r->variants[i].name, name))
            return &r->variants[i];
    return NULL;
}

const qr_score *qr_report_find_score(const qr_report *r, const char *variant, const char *task, const char *metric)
{
    for (size_t i = 0; variant && i < r->n_scores; i++) {
        const qr_score *s = &r->scores[i];
        if (!strcmp(s->variant, variant) && !strcmp(s->task, task) && !strcmp(s->metric, metric))
            return s;
    }
    return NULL;
}

static int sample_key_cmp(const qr_sample *a, const char *variant, const char *task, const char *metric,
                          int64_t doc_id)
{
    int c = strcmp(a->variant, variant);
    if (!c)
        c = strcmp(a->task, task);
    if (!c)
        c = strcmp(a->metric, metric);
    if (!c)
        c = (a->doc_id > doc_id) - (a->doc_id < doc_id);
    return c;
}

static int sample_cmp(const void *pa, const void *pb)
{
    const qr_sample *b = pb;
    return sample_key_cmp(pa, b->variant, b->task, b->metric, b->doc_id);
}

const qr_sample *qr_report_samples(qr_report *r, const char *variant, const char *task, const char *metric,
                                   size_t *n)
{
    *n = 0;
    if (!r->n_samples || !variant)
        return NULL;
    if (!r->is_samples_sorted) {
        qsort(r->samples, r->n_samples, sizeof *r->samples, sample_cmp);
        r->is_samples_sorted = true;
    }
    /* first sample not below (variant, task, metric, INT64_MIN) */
    size_t lo = 0, hi = r->n_samples;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sample_key_cmp(&r->samples[mid], variant, task, metric, INT64_MIN) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t end = lo;
    while (end < r->n_samples && !strcmp(r->samples[end].variant, variant) && !strcmp(r->samples[end].task, task) &&
           !strcmp(r->samples[end].metric, metric))
        end++;
    *n = end - lo;
    return *n ? &r->samples[lo] : NULL;
}
