#include "task_internal.h"

#include <stdlib.h>
#include <string.h>

#include "qd_manifest.h"
#include "qd_sha256.h"
#include "qd_source.h"
#include "qt_json.h"
#include "qt_template.h"

void qt_task_options_default(qt_task_options *options)
{
    memset(options, 0, sizeof *options);
    options->num_fewshot = -1;
    options->seed = -1;
}

/* ---- templates over documents ----------------------------------------------------------------- */

typedef struct {
    const qt_task *task;
    const qt_subtask *subtask;
    const cJSON *doc;
} lookup_ctx;

static const char *lookup(const char *name, void *vctx)
{
    lookup_ctx *c = vctx;
    if (c->task->subset_variable && c->subtask->subset && !strcmp(name, c->task->subset_variable))
        return c->subtask->subset;
    const cJSON *v = c->doc ? cJSON_GetObjectItemCaseSensitive(c->doc, name) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

qe_status qt_task_render(const qt_task *task, const qt_subtask *subtask, const cJSON *doc, const char *tmpl, char **out,
                         qe_error *err)
{
    lookup_ctx c = {task, subtask, doc};
    return qt_template_render(tmpl, lookup, &c, out, err);
}

/* ---- loading ------------------------------------------------------------------------------------ */

static const char *const top_keys[] = {"task", "dataset", "test_split", "description", "doc_to_text", "doc_to_target",
                                       "doc_to_question", "version",
                                       "fewshot", "output_type", "choices", "gold", "generation", "filters", "metrics",
                                       "groups", "comment", NULL};
static const char *const dataset_keys[] = {"format", "header", "fields", "checks", "splits", "subsets", NULL};
static const char *const fewshot_keys[] = {"split", "num_fewshot", "sampler", "seed", "fewshot_delimiter",
                                           "target_delimiter", NULL};

typedef struct {
    qd_load_spec spec;
    char **fields;
    int n_fields;
    qd_field_check *checks;
    int n_checks;
    char ***check_values;
    cJSON *splits;             /* borrowed from the definition */
    char **subset_names;
    int n_subsets;
    char *subtask_name_template;
} dataset_def;

static void dataset_def_free(dataset_def *d)
{
    qt_json_free_strings(d->fields, d->n_fields);
    for (int i = 0; i < d->n_checks; i++) {
        free((char *)d->checks[i].field);
        qt_json_free_strings(d->check_values[i], d->checks[i].n_allowed);
    }
    free(d->checks);
    free(d->check_values);
    qt_json_free_strings(d->subset_names, d->n_subsets);
    free(d->subtask_name_template);
}

static qe_status parse_dataset(const qt_json_ctx *c, qt_task *task, const cJSON *ds, bool skip_bad_rows, dataset_def *d)
{
    qe_status rc;
    if (!cJSON_IsObject(ds))
        return qt_json_field_error(c, "dataset", "must be an object");
    if ((rc = qt_json_check_keys(c, ds, "dataset.", dataset_keys)) != QE_OK)
        return rc;
    char *format = NULL;
    if ((rc = qt_json_string(c, ds, "format", "dataset.format", true, NULL, &format)) != QE_OK)
        return rc;
    rc = qd_format_parse(format, &d->spec.format, c->err);
    free(format);
    if (rc != QE_OK)
        return qe_fail_context(c->err, "%s: field \"dataset.format\"", c->path);
    if ((rc = qt_json_bool(c, ds, "header", "dataset.header", false, &d->spec.has_header)) != QE_OK)
        return rc;
    if ((rc = qt_json_string_array(c, cJSON_GetObjectItemCaseSensitive(ds, "fields"), "dataset.fields", &d->fields,
                                   &d->n_fields)) != QE_OK)
        return rc;
    d->spec.fields = (const char *const *)d->fields;
    d->spec.n_fields = d->n_fields;
    d->spec.skip_bad_rows = skip_bad_rows;
    const cJSON *checks = cJSON_GetObjectItemCaseSensitive(ds, "checks");
    if (checks) {
        if (!cJSON_IsObject(checks))
            return qt_json_field_error(c, "dataset.checks", "must be an object of field: [allowed values]");
        int n = cJSON_GetArraySize(checks);
        d->checks = calloc((size_t)n + 1, sizeof *d->checks);
        d->check_values = calloc((size_t)n + 1, sizeof *d->check_values);
        if (!d->checks || !d->check_values)
            return qe_fail(c->err, QE_ENOMEM, "out of memory");
        const cJSON *item;
        cJSON_ArrayForEach(item, checks)
        {
            char field[128];
            snprintf(field, sizeof field, "dataset.checks.%s", item->string);
            qd_field_check *check = &d->checks[d->n_checks];
            if ((rc = qt_json_string_array(c, item, field, &d->check_values[d->n_checks], &check->n_allowed)) != QE_OK)
                return rc;
            check->field = strdup(item->string);
            check->allowed = (const char *const *)d->check_values[d->n_checks];
            d->n_checks++;
            if (!check->field)
                return qe_fail(c->err, QE_ENOMEM, "out of memory");
        }
        d->spec.checks = d->checks;
        d->spec.n_checks = d->n_checks;
    }
    d->splits = cJSON_GetObjectItemCaseSensitive(ds, "splits");
    if (!cJSON_IsObject(d->splits))
        return qt_json_field_error(c, "dataset.splits", "must be an object of split name: file path");
    const cJSON *subsets = cJSON_GetObjectItemCaseSensitive(ds, "subsets");
    if (subsets) {
        static const char *const subset_keys[] = {"variable", "names", "task_name", NULL};
        if (!cJSON_IsObject(subsets))
            return qt_json_field_error(c, "dataset.subsets", "must be an object");
        if ((rc = qt_json_check_keys(c, subsets, "dataset.subsets.", subset_keys)) != QE_OK ||
            (rc = qt_json_string(c, subsets, "variable", "dataset.subsets.variable", true, NULL, &task->subset_variable)) ||
            (rc = qt_json_string_array(c, cJSON_GetObjectItemCaseSensitive(subsets, "names"), "dataset.subsets.names",
                                       &d->subset_names, &d->n_subsets)) ||
            (rc = qt_json_string(c, subsets, "task_name", "dataset.subsets.task_name", true, NULL, &d->subtask_name_template)))
            return rc;
        if (d->n_subsets == 0)
            return qt_json_field_error(c, "dataset.subsets.names", "is empty");
    }
    return QE_OK;
}

static qe_status parse_fewshot(const qt_json_ctx *c, qt_task *task, const cJSON *fs, char **split)
{
    qe_status rc;
    *split = NULL;
    int seed = 1234;
    char *sampler = NULL;
    if (fs && !cJSON_IsObject(fs))
        return qt_json_field_error(c, "fewshot", "must be an object");
    if (fs && (rc = qt_json_check_keys(c, fs, "fewshot.", fewshot_keys)) != QE_OK)
        return rc;
    if ((rc = qt_json_int(c, fs, "num_fewshot", "fewshot.num_fewshot", false, 0, 0, &task->num_fewshot)) ||
        (rc = qt_json_int(c, fs, "seed", "fewshot.seed", false, 1234, 0, &seed)) ||
        (rc = qt_json_string(c, fs, "split", "fewshot.split", task->num_fewshot > 0, NULL, split)) ||
        (rc = qt_json_string(c, fs, "sampler", "fewshot.sampler", false, "random", &sampler)) ||
        (rc = qt_json_string(c, fs, "fewshot_delimiter", "fewshot.fewshot_delimiter", false, "\n\n", &task->fewshot_delimiter)) ||
        (rc = qt_json_string(c, fs, "target_delimiter", "fewshot.target_delimiter", false, " ", &task->target_delimiter))) {
        free(sampler);
        return rc;
    }
    task->seed = (uint64_t)seed;
    bool first_n = !strcmp(sampler, "first_n"), random = !strcmp(sampler, "random");
    free(sampler);
    if (!first_n && !random)
        return qt_json_field_error(c, "fewshot.sampler", "must be \"first_n\" or \"random\"");
    task->sampler_first_n = first_n;
    return QE_OK;
}

static qe_status parse_output(const qt_json_ctx *c, qt_task *task, const cJSON *root)
{
    qe_status rc;
    char *type = NULL;
    if ((rc = qt_json_string(c, root, "output_type", "output_type", true, NULL, &type)) != QE_OK)
        return rc;
    bool mc = !strcmp(type, "multiple_choice"), gen = !strcmp(type, "generate_until");
    free(type);
    if (!mc && !gen)
        return qt_json_field_error(c, "output_type", "must be \"multiple_choice\" or \"generate_until\"");
    task->type = mc ? QT_REQUEST_LOGLIKELIHOOD : QT_REQUEST_GENERATE_UNTIL;
    if (mc) {
        const cJSON *choices = cJSON_GetObjectItemCaseSensitive(root, "choices");
        const cJSON *gold = cJSON_GetObjectItemCaseSensitive(root, "gold");
        if (!cJSON_IsObject(choices))
            return qt_json_field_error(c, "choices", "must be {\"list\": [...]} or {\"keys_of\": FIELD} for multiple_choice");
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(choices, "list");
        if (list) {
            task->choices_kind = QT_CHOICES_LIST;
            if ((rc = qt_json_string_array(c, list, "choices.list", &task->choice_list, &task->n_choice_list)) != QE_OK)
                return rc;
            if (task->n_choice_list == 0)
                return qt_json_field_error(c, "choices.list", "is empty");
        } else {
            task->choices_kind = QT_CHOICES_KEYS_OF;
            if ((rc = qt_json_string(c, choices, "keys_of", "choices.keys_of", true, NULL, &task->choices_field)) != QE_OK)
                return rc;
        }
        if (!cJSON_IsObject(gold))
            return qt_json_field_error(c, "gold", "must be {\"field\": F}, {\"index\": N} or {\"labels_of\": F}");
        if (cJSON_GetObjectItemCaseSensitive(gold, "field")) {
            task->gold_kind = QT_GOLD_FIELD;
            rc = qt_json_string(c, gold, "field", "gold.field", true, NULL, &task->gold_field);
        } else if (cJSON_GetObjectItemCaseSensitive(gold, "labels_of")) {
            task->gold_kind = QT_GOLD_LABELS_OF;
            rc = qt_json_string(c, gold, "labels_of", "gold.labels_of", true, NULL, &task->gold_field);
        } else {
            task->gold_kind = QT_GOLD_INDEX;
            rc = qt_json_int(c, gold, "index", "gold.index", true, 0, 0, &task->gold_index);
        }
        if (rc != QE_OK)
            return rc;
    } else {
        const cJSON *gen_obj = cJSON_GetObjectItemCaseSensitive(root, "generation");
        if (!cJSON_IsObject(gen_obj))
            return qt_json_field_error(c, "generation", "must be {\"until\": [...], \"max_gen_toks\": N} for generate_until");
        if ((rc = qt_json_string_array(c, cJSON_GetObjectItemCaseSensitive(gen_obj, "until"), "generation.until", &task->stops,
                                       &task->n_stops)) ||
            (rc = qt_json_int(c, gen_obj, "max_gen_toks", "generation.max_gen_toks", false, 256, 1, &task->max_gen_toks)))
            return rc;
    }
    return QE_OK;
}

static qe_status parse_filters_metrics(const qt_json_ctx *c, qt_task *task, const cJSON *root)
{
    qe_status rc;
    const cJSON *filters = cJSON_GetObjectItemCaseSensitive(root, "filters");
    if (filters) {
        if (!cJSON_IsArray(filters))
            return qt_json_field_error(c, "filters", "must be an array");
        task->filters = calloc((size_t)cJSON_GetArraySize(filters) + 1, sizeof *task->filters);
        if (!task->filters)
            return qe_fail(c->err, QE_ENOMEM, "out of memory");
        const cJSON *f;
        cJSON_ArrayForEach(f, filters)
        {
            static const char *const filter_keys[] = {"name", "regex", "group_select", "fallback", NULL};
            char field[64];
            snprintf(field, sizeof field, "filters[%d]", task->n_filters);
            qt_filter *filter = &task->filters[task->n_filters++];
            char *name = NULL, *regex = NULL;
            if (!cJSON_IsObject(f))
                return qt_json_field_error(c, field, "must be an object");
            if ((rc = qt_json_check_keys(c, f, "filters[].", filter_keys)) ||
                (rc = qt_json_string(c, f, "name", "filters[].name", true, NULL, &name)))
                return rc;
            snprintf(filter->name, sizeof filter->name, "%s", name);
            free(name);
            if ((rc = qt_json_string(c, f, "regex", "filters[].regex", false, NULL, &regex)) ||
                (rc = qt_json_int(c, f, "group_select", "filters[].group_select", false, 0, -1000000, &filter->group_select)) ||
                (rc = qt_json_string(c, f, "fallback", "filters[].fallback", false, "[invalid]", &filter->fallback))) {
                free(regex);
                return rc;
            }
            if (regex) {
                rc = qt_regex_compile(regex, &filter->regex, c->err);
                free(regex);
                if (rc != QE_OK)
                    return qe_fail_context(c->err, "%s: field \"filters[%d].regex\"", c->path, task->n_filters - 1);
            }
        }
    }
    const cJSON *metrics = cJSON_GetObjectItemCaseSensitive(root, "metrics");
    if (!cJSON_IsArray(metrics) || cJSON_GetArraySize(metrics) == 0)
        return qt_json_field_error(c, "metrics", "must be a non-empty array");
    task->metrics = calloc((size_t)cJSON_GetArraySize(metrics), sizeof *task->metrics);
    task->keys = calloc((size_t)cJSON_GetArraySize(metrics) * (size_t)(task->n_filters + 1), sizeof *task->keys);
    if (!task->metrics || !task->keys)
        return qe_fail(c->err, QE_ENOMEM, "out of memory");
    const cJSON *m;
    cJSON_ArrayForEach(m, metrics)
    {
        static const char *const metric_keys[] = {"metric", "ignore_case", "ignore_punctuation", "regexes_to_ignore", NULL};
        qt_metric *metric = &task->metrics[task->n_metrics++];
        char *name = NULL;
        if (!cJSON_IsObject(m))
            return qt_json_field_error(c, "metrics[]", "must be an object");
        if ((rc = qt_json_check_keys(c, m, "metrics[].", metric_keys)) ||
            (rc = qt_json_string(c, m, "metric", "metrics[].metric", true, NULL, &name)))
            return rc;
        if (!strcmp(name, "acc")) {
            metric->kind = QT_METRIC_ACC;
        } else if (!strcmp(name, "acc_mc2")) {
            metric->kind = QT_METRIC_ACC_MC2;
        } else if (!strcmp(name, "exact_match")) {
            metric->kind = QT_METRIC_EXACT_MATCH;
        } else if (!strcmp(name, "pass@1")) {
            metric->kind = QT_METRIC_PASS_AT_1;
        } else {
            free(name);
            return qt_json_field_error(c, "metrics[].metric", "must be acc, acc_mc2, exact_match or pass@1");
        }
        /* lm-eval reports the MC2 mass under the name acc. */
        snprintf(metric->name, sizeof metric->name, "%s", metric->kind == QT_METRIC_ACC_MC2 ? "acc" : name);
        free(name);
        bool needs_mc = metric->kind == QT_METRIC_ACC || metric->kind == QT_METRIC_ACC_MC2;
        if (needs_mc != (task->type == QT_REQUEST_LOGLIKELIHOOD))
            return qt_json_field_error(c, "metrics[].metric", "does not fit the output_type");
        if (metric->kind == QT_METRIC_ACC_MC2 && task->gold_kind != QT_GOLD_LABELS_OF)
            return qt_json_field_error(c, "metrics[].metric", "acc_mc2 needs gold {\"labels_of\": FIELD}");
        if (metric->kind == QT_METRIC_ACC && task->gold_kind == QT_GOLD_LABELS_OF)
            return qt_json_field_error(c, "metrics[].metric", "acc needs gold {\"field\"} or {\"index\"}");
        if ((rc = qt_json_bool(c, m, "ignore_case", "metrics[].ignore_case", false, &metric->ignore_case)) ||
            (rc = qt_json_bool(c, m, "ignore_punctuation", "metrics[].ignore_punctuation", false, &metric->ignore_punctuation)))
            return rc;
        const cJSON *ignore = cJSON_GetObjectItemCaseSensitive(m, "regexes_to_ignore");
        if (ignore) {
            char **patterns;
            int n;
            if ((rc = qt_json_string_array(c, ignore, "metrics[].regexes_to_ignore", &patterns, &n)) != QE_OK)
                return rc;
            metric->ignore = calloc((size_t)n + 1, sizeof *metric->ignore);
            for (int i = 0; i < n && metric->ignore && rc == QE_OK; i++)
                if ((rc = qt_regex_compile(patterns[i], &metric->ignore[i], c->err)) == QE_OK)
                    metric->n_ignore++;
            qt_json_free_strings(patterns, n);
            if (!metric->ignore)
                return qe_fail(c->err, QE_ENOMEM, "out of memory");
            if (rc != QE_OK)
                return qe_fail_context(c->err, "%s: field \"metrics[].regexes_to_ignore\"", c->path);
        }
        bool per_filter = metric->kind == QT_METRIC_EXACT_MATCH || metric->kind == QT_METRIC_PASS_AT_1;
        if (per_filter && task->n_filters > 0) {
            for (int f = 0; f < task->n_filters; f++)
                task->keys[task->n_keys++] = (qt_metric_key){task->n_metrics - 1, f};
        } else {
            task->keys[task->n_keys++] = (qt_metric_key){task->n_metrics - 1, -1};
        }
    }
    return QE_OK;
}

static qe_status parse_groups(const qt_json_ctx *c, qt_task *task, const cJSON *groups, const dataset_def *d)
{
    qe_status rc;
    if (!groups)
        return QE_OK;
    static const char *const group_keys[] = {"name", "version", "categories", NULL};
    if (!cJSON_IsObject(groups))
        return qt_json_field_error(c, "groups", "must be an object");
    if ((rc = qt_json_check_keys(c, groups, "groups.", group_keys)) ||
        (rc = qt_json_string(c, groups, "name", "groups.name", true, NULL, &task->group_name)) ||
        (rc = qt_json_string(c, groups, "version", "groups.version", false, NULL, &task->group_version)))
        return rc;
    const cJSON *cats = cJSON_GetObjectItemCaseSensitive(groups, "categories");
    if (!cats)
        return QE_OK;
    if (!cJSON_IsObject(cats))
        return qt_json_field_error(c, "groups.categories", "must be an object of category: [subset names]");
    task->category_names = calloc((size_t)cJSON_GetArraySize(cats) + 1, sizeof *task->category_names);
    if (!task->category_names)
        return qe_fail(c->err, QE_ENOMEM, "out of memory");
    const cJSON *cat;
    cJSON_ArrayForEach(cat, cats)
    {
        char field[160];
        snprintf(field, sizeof field, "groups.categories.%s", cat->string);
        char **members;
        int n;
        if ((rc = qt_json_string_array(c, cat, field, &members, &n)) != QE_OK)
            return rc;
        if (!(task->category_names[task->n_categories] = strdup(cat->string))) {
            qt_json_free_strings(members, n);
            return qe_fail(c->err, QE_ENOMEM, "out of memory");
        }
        for (int i = 0; i < n && rc == QE_OK; i++) {
            int found = -1;
            for (int s = 0; s < d->n_subsets && found < 0; s++)
                if (!strcmp(d->subset_names[s], members[i]))
                    found = s;
            if (found < 0)
                rc = qe_fail(c->err, QE_EFORMAT, "%s: field \"%s\": \"%s\" is not one of dataset.subsets.names", c->path,
                             field, members[i]);
        }
        qt_json_free_strings(members, n);
        if (rc != QE_OK)
            return rc;
        task->n_categories++;
    }
    return QE_OK;
}

/* Category of a subset by name (categories were checked against the subset list). */
static int category_of(const cJSON *groups, const char *subset)
{
    int index = 0;
    const cJSON *cat;
    cJSON_ArrayForEach(cat, cJSON_GetObjectItemCaseSensitive(groups, "categories"))
    {
        const cJSON *member;
        cJSON_ArrayForEach(member, cat)
        {
            if (cJSON_IsString(member) && !strcmp(member->valuestring, subset))
                return index;
        }
        index++;
    }
    return -1;
}

/* Path of a split for one subset: the split's template rendered over the subset variable. */
static qe_status split_path(const qt_json_ctx *c, qt_task *task, const dataset_def *d, qt_subtask *st, const char *split,
                            const char *data_dir, char **out)
{
    const cJSON *tmpl = cJSON_GetObjectItemCaseSensitive(d->splits, split);
    if (!cJSON_IsString(tmpl)) {
        char field[96];
        snprintf(field, sizeof field, "dataset.splits.%s", split);
        return qt_json_field_error(c, field, "is missing (or not a string)");
    }
    char *rel;
    qe_status rc = qt_task_render(task, st, NULL, tmpl->valuestring, &rel, c->err);
    if (rc != QE_OK)
        return qe_fail_context(c->err, "%s: field \"dataset.splits.%s\"", c->path, split);
    /* "./x" is relative to the task file, so a benchmark can ship its data beside its JSON. */
    const char *base = data_dir;
    int n_base = (int)strlen(data_dir);
    const char *rest = rel;
    if (!strncmp(rel, "./", 2)) {
        const char *slash = strrchr(task->path, '/');
        base = slash ? task->path : ".";
        n_base = slash ? (int)(slash - task->path) : 1;
        rest = rel + 2;
    }
    size_t n = (size_t)n_base + strlen(rest) + 2;
    *out = malloc(n);
    if (*out)
        snprintf(*out, n, "%.*s/%s", n_base, base, rest);
    free(rel);
    return *out ? QE_OK : qe_fail(c->err, QE_ENOMEM, "out of memory");
}

static qe_status index_records(const qd_table *table, cJSON ***out, int limit, int *n_out, qe_error *err)
{
    int n = table->n_records;
    if (limit > 0 && limit < n)
        n = limit;
    *out = calloc((size_t)(n ? n : 1), sizeof **out);
    if (!*out)
        return qe_fail(err, QE_ENOMEM, "out of memory");
    int i = 0;
    cJSON *item;
    cJSON_ArrayForEach(item, table->records)
    {
        if (i == n)
            break;
        (*out)[i++] = item;
    }
    *n_out = n;
    return QE_OK;
}

static void count_bad(qt_task *task, const qd_table *table)
{
    if (table->n_bad_rows && !task->first_bad[0])
        snprintf(task->first_bad, sizeof task->first_bad, "%s", table->first_bad);
    task->n_bad_rows += table->n_bad_rows;
}

static bool subset_selected(const char *list, const char *name)
{
    if (!list || !*list)
        return true;
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len == n && !strncmp(p, name, n))
            return true;
        p += len + (comma ? 1 : 0);
    }
    return false;
}

static qe_status load_subtasks(const qt_json_ctx *c, qt_task *task, const dataset_def *d, const cJSON *groups,
                               const char *fewshot_split, const char *test_split, const qt_task_options *o)
{
    qe_status rc;
    const char *data_dir = qd_data_dir(o->data_dir);
    int n = d->n_subsets ? d->n_subsets : 1;
    if (o->subsets && *o->subsets && (d->n_subsets || !o->subsets_where_defined)) {
        if (!d->n_subsets)
            return qe_fail(c->err, QE_EINVAL, "task %s has no subsets to select from", task->name);
        for (const char *p = o->subsets; *p;) { /* every requested subset must exist */
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            bool found = false;
            for (int s = 0; s < d->n_subsets && !found; s++)
                found = strlen(d->subset_names[s]) == len && !strncmp(d->subset_names[s], p, len);
            if (!found)
                return qe_fail(c->err, QE_EINVAL, "task %s has no subset \"%.*s\"", task->name, (int)len, p);
            p += len + (comma ? 1 : 0);
        }
    }
    task->subtasks = calloc((size_t)n, sizeof *task->subtasks);
    if (!task->subtasks)
        return qe_fail(c->err, QE_ENOMEM, "out of memory");
    for (int s = 0; s < n; s++) {
        if (d->n_subsets && !subset_selected(o->subsets, d->subset_names[s]))
            continue;
        qt_subtask *st = &task->subtasks[task->n_subtasks++];
        st->category = -1;
        if (d->n_subsets) {
            if (!(st->subset = strdup(d->subset_names[s])))
                return qe_fail(c->err, QE_ENOMEM, "out of memory");
            if ((rc = qt_task_render(task, st, NULL, d->subtask_name_template, &st->name, c->err)) != QE_OK)
                return qe_fail_context(c->err, "%s: field \"dataset.subsets.task_name\"", c->path);
            if (groups)
                st->category = category_of(groups, st->subset);
        } else if (!(st->name = strdup(task->name))) {
            return qe_fail(c->err, QE_ENOMEM, "out of memory");
        }
        if ((rc = split_path(c, task, d, st, test_split, data_dir, &st->test_path)) != QE_OK)
            return rc;
        if ((rc = qd_table_load(st->test_path, &d->spec, &st->test, c->err)) != QE_OK)
            return rc;
        count_bad(task, &st->test);
        if ((rc = index_records(&st->test, &st->docs, o->limit, &st->n_docs, c->err)) != QE_OK)
            return rc;
        if (task->num_fewshot > 0) {
            const qd_table *pool = &st->test;
            if (!task->fewshot_same_split) {
                if ((rc = split_path(c, task, d, st, fewshot_split, data_dir, &st->fewshot_path)) != QE_OK ||
                    (rc = qd_table_load(st->fewshot_path, &d->spec, &st->fewshot, c->err)) != QE_OK)
                    return rc;
                count_bad(task, &st->fewshot);
                pool = &st->fewshot;
            }
            if ((rc = index_records(pool, &st->shots, 0, &st->n_shots, c->err)) != QE_OK)
                return rc;
            int needed = task->num_fewshot + (task->fewshot_same_split ? 1 : 0);
            if (needed > st->n_shots)
                return qe_fail(c->err, QE_EINVAL, "%s: %d few-shot examples asked for, the %s split has %d",
                               st->name, task->num_fewshot, fewshot_split, st->n_shots);
        }
        qt_pyrandom_seed(&st->rng, task->seed);
        st->first_doc_index = task->n_docs;
        task->n_docs += st->n_docs;
    }
    return QE_OK;
}

static qe_status check_templates(const qt_json_ctx *c, qt_task *task, const dataset_def *d)
{
    const char *known[130];
    int n_known = 0;
    for (int i = 0; i < d->n_fields && n_known < 128; i++)
        known[n_known++] = d->fields[i];
    if (task->subset_variable)
        known[n_known++] = task->subset_variable;
    struct {
        const char *tmpl, *name;
    } all[] = {{task->description, "description"}, {task->doc_to_text, "doc_to_text"}, {task->doc_to_target, "doc_to_target"},
               {task->doc_to_question, "doc_to_question"}};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) {
        if (!all[i].tmpl)
            continue;
        char where[600];
        snprintf(where, sizeof where, "%s: field \"%s\"", c->path, all[i].name);
        qe_status rc = qt_template_check(all[i].tmpl, known, n_known, where, c->err);
        if (rc != QE_OK)
            return rc;
    }
    const char *referenced[] = {task->choices_field, task->gold_field};
    for (size_t i = 0; i < 2; i++) {
        bool found = !referenced[i];
        for (int k = 0; k < d->n_fields && !found; k++)
            found = !strcmp(d->fields[k], referenced[i]);
        if (!found)
            return qe_fail(c->err, QE_EFORMAT, "%s: field \"%s\" names \"%s\", which is not in dataset.fields", c->path,
                           i == 0 ? "choices.keys_of" : "gold", referenced[i]);
    }
    if (task->type == QT_REQUEST_GENERATE_UNTIL && !task->doc_to_target)
        return qt_json_field_error(c, "doc_to_target", "is required for generate_until tasks");
    return QE_OK;
}

qe_status qt_task_load(const char *name_or_path, const char *tasks_dir, const qt_task_options *options, qt_task **out,
                       qe_error *err)
{
    *out = NULL;
    qt_task_options defaults;
    if (!options) {
        qt_task_options_default(&defaults);
        options = &defaults;
    }
    qt_task *task = calloc(1, sizeof *task);
    if (!task)
        return qe_fail(err, QE_ENOMEM, "out of memory");
    size_t n_name = strlen(name_or_path);
    bool is_path = strchr(name_or_path, '/') || (n_name > 5 && !strcmp(name_or_path + n_name - 5, ".json"));
    if (!tasks_dir)
        tasks_dir = getenv("QEVAL_TASKS") && *getenv("QEVAL_TASKS") ? getenv("QEVAL_TASKS") : "tasks";
    size_t n_path = strlen(tasks_dir) + n_name + 8;
    task->path = malloc(n_path);
    if (!task->path) {
        free(task);
        return qe_fail(err, QE_ENOMEM, "out of memory");
    }
    if (is_path)
        snprintf(task->path, n_path, "%s", name_or_path);
    else
        snprintf(task->path, n_path, "%s/%s.json", tasks_dir, name_or_path);

    qt_json_ctx c = {task->path, err};
    cJSON *root = NULL;
    char *text = NULL, *fewshot_split = NULL, *test_split = NULL;
    size_t n_text;
    dataset_def d = {0};
    qd_source *src = NULL;
    qe_status rc = qd_source_open(task->path, &src, err);
    if (rc != QE_OK) {
        if (!is_path)
            qe_fail(err, rc, "unknown task \"%s\": no file %s", name_or_path, task->path);
        goto out;
    }
    rc = qd_source_read_all(src, &text, &n_text, err);
    qd_source_close(src);
    if (rc != QE_OK)
        goto out;
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(text, n_text, &end, false);
    if (!cJSON_IsObject(root)) {
        long line = 1;
        for (const char *p = text; end && p < end; p++)
            line += *p == '\n';
        rc = qe_fail(err, QE_EFORMAT, "%s:%ld: not a valid JSON object", task->path, root ? 1L : line);
        goto out;
    }
    if ((rc = qt_json_check_keys(&c, root, "", top_keys)) ||
        (rc = qt_json_string(&c, root, "task", "task", true, NULL, &task->name)) ||
        (rc = parse_dataset(&c, task, cJSON_GetObjectItemCaseSensitive(root, "dataset"), options->skip_bad_rows, &d)) ||
        (rc = qt_json_string(&c, root, "test_split", "test_split", true, NULL, &test_split)) ||
        (rc = qt_json_string(&c, root, "description", "description", false, "", &task->description)) ||
        (rc = qt_json_string(&c, root, "doc_to_text", "doc_to_text", true, NULL, &task->doc_to_text)) ||
        (rc = qt_json_string(&c, root, "doc_to_target", "doc_to_target", false, NULL, &task->doc_to_target)) ||
        (rc = qt_json_string(&c, root, "doc_to_question", "doc_to_question", false, NULL, &task->doc_to_question)) ||
        (rc = qt_json_string(&c, root, "version", "version", false, NULL, &task->version)) ||
        (rc = parse_fewshot(&c, task, cJSON_GetObjectItemCaseSensitive(root, "fewshot"), &fewshot_split)) ||
        (rc = parse_output(&c, task, root)) || (rc = parse_filters_metrics(&c, task, root)) ||
        (rc = parse_groups(&c, task, cJSON_GetObjectItemCaseSensitive(root, "groups"), &d)) ||
        (rc = check_templates(&c, task, &d)))
        goto out;
    /* a version is stored with every score: short, as lm-eval's "1.0" or "2" */
    if (task->version && strlen(task->version) >= QT_VERSION_SIZE)
        rc = qt_json_field_error(&c, "version", "must be shorter than 16 characters");
    else if (task->group_version && strlen(task->group_version) >= QT_VERSION_SIZE)
        rc = qt_json_field_error(&c, "groups.version", "must be shorter than 16 characters");
    if (rc != QE_OK)
        goto out;
    if (options->num_fewshot >= 0)
        task->num_fewshot = options->num_fewshot;
    if (options->seed >= 0)
        task->seed = (uint64_t)options->seed;
    if (task->num_fewshot > 0 && !fewshot_split) {
        rc = qt_json_field_error(&c, "fewshot.split", "is needed for --num-fewshot > 0");
        goto out;
    }
    task->fewshot_same_split = fewshot_split && !strcmp(fewshot_split, test_split);
    rc = load_subtasks(&c, task, &d, cJSON_GetObjectItemCaseSensitive(root, "groups"), fewshot_split, test_split, options);
out:
    dataset_def_free(&d);
    free(fewshot_split);
    free(test_split);
    free(text);
    cJSON_Delete(root);
    if (rc != QE_OK) {
        qt_task_free(task);
        return rc;
    }
    *out = task;
    return QE_OK;
}

void qt_task_free(qt_task *task)
{
    if (!task)
        return;
    for (int s = 0; s < task->n_subtasks; s++) {
        qt_subtask *st = &task->subtasks[s];
        free(st->name);
        free(st->subset);
        free(st->test_path);
        free(st->fewshot_path);
        free(st->docs);
        free(st->shots);
        qd_table_free(&st->test);
        qd_table_free(&st->fewshot);
    }
    free(task->subtasks);
    free(task->path);
    free(task->name);
    free(task->subset_variable);
    free(task->group_name);
    free(task->group_version);
    free(task->version);
    qt_json_free_strings(task->category_names, task->n_categories);
    free(task->description);
    free(task->doc_to_text);
    free(task->doc_to_target);
    free(task->doc_to_question);
    free(task->fewshot_delimiter);
    free(task->target_delimiter);
    qt_json_free_strings(task->choice_list, task->n_choice_list);
    free(task->choices_field);
    free(task->gold_field);
    qt_json_free_strings(task->stops, task->n_stops);
    for (int i = 0; i < task->n_filters; i++) {
        qt_regex_free(task->filters[i].regex);
        free(task->filters[i].fallback);
    }
    free(task->filters);
    for (int i = 0; i < task->n_metrics; i++) {
        for (int k = 0; k < task->metrics[i].n_ignore; k++)
            qt_regex_free(task->metrics[i].ignore[k]);
        free(task->metrics[i].ignore);
    }
    free(task->metrics);
    free(task->keys);
    free(task);
}

const char *qt_task_name(const qt_task *task) { return task->name; }
int qt_task_n_docs(const qt_task *task) { return task->n_docs; }
int qt_task_n_bad_rows(const qt_task *task) { return task->n_bad_rows; }
int qt_task_num_fewshot(const qt_task *task) { return task->num_fewshot; }
const char *qt_task_first_bad_row(const qt_task *task) { return task->first_bad; }
int qt_task_n_filters(const qt_task *task) { return task->n_filters; }
const char *qt_task_filter_name(const qt_task *task, int filter_index) { return task->filters[filter_index].name; }

qe_status qt_task_definition_sha256(const qt_task *task, char hex[65])
{
    return qd_sha256_file(task->path, hex, NULL);
}

qe_status qt_task_data_sha256(const qt_task *task, char hex[65], qe_error *err)
{
    qd_sha256_ctx ctx;
    qd_sha256_init(&ctx);
    for (int i = 0; i < task->n_subtasks; i++) {
        const char *paths[2] = {task->subtasks[i].test_path, task->subtasks[i].fewshot_path};
        for (int p = 0; p < 2; p++) {
            char file_hex[65];
            if (!paths[p])
                continue;
            qe_status rc = qd_sha256_file(paths[p], file_hex, err);
            if (rc != QE_OK)
                return rc;
            qd_sha256_update(&ctx, file_hex, 64);
        }
    }
    uint8_t digest[32];
    qd_sha256_final(&ctx, digest);
    qd_sha256_hex(digest, hex);
    return QE_OK;
}

bool qt_task_is_code(const qt_task *task)
{
    for (int i = 0; i < task->n_metrics; i++)
        if (task->metrics[i].kind == QT_METRIC_PASS_AT_1)
            return true;
    return false;
}
