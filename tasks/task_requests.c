/* Building the requests of a task: description, few-shot examples and the document's prompt,
 * in lm-evaluation-harness's order and with its delimiters; given a chat template, put in it
 * as its --apply_chat_template does. */
#include "task_internal.h"

#include <stdlib.h>
#include <string.h>

#include "qt_template.h"

qe_status qt_task_doc(const qt_task *task, int doc_index, const qt_subtask **subtask, const cJSON **doc, int *doc_id,
                      qe_error *err)
{
    if (doc_index < 0 || doc_index >= task->n_docs)
        return qe_fail(err, QE_EINVAL, "task %s: document %d out of range (%d documents)", task->name, doc_index,
                       task->n_docs);
    int lo = 0, hi = task->n_subtasks - 1;
    while (lo < hi) { /* last subtask whose first doc is <= doc_index */
        int mid = (lo + hi + 1) / 2;
        if (task->subtasks[mid].first_doc_index <= doc_index)
            lo = mid;
        else
            hi = mid - 1;
    }
    while (lo < task->n_subtasks && task->subtasks[lo].n_docs == 0)
        lo++;
    const qt_subtask *st = &task->subtasks[lo];
    *subtask = st;
    *doc_id = doc_index - st->first_doc_index;
    *doc = st->docs[*doc_id];
    return QE_OK;
}

qe_status qt_task_sample_key(const qt_task *task, int doc_index, const char **sample_task, int *doc_id, qe_error *err)
{
    const qt_subtask *st;
    const cJSON *doc;
    qe_status rc = qt_task_doc(task, doc_index, &st, &doc, doc_id, err);
    *sample_task = rc == QE_OK ? st->name : NULL;
    return rc;
}

bool qt_task_find_sample_doc(const qt_task *task, const char *sample_task, int64_t doc_id, int *doc_index)
{
    for (int s = 0; s < task->n_subtasks; s++) {
        const qt_subtask *st = &task->subtasks[s];
        if (!strcmp(st->name, sample_task)) {
            if (doc_id < 0 || doc_id >= st->n_docs)
                return false;
            *doc_index = st->first_doc_index + (int)doc_id;
            return true;
        }
    }
    return false;
}

static long doc_line(const cJSON *doc, const qd_table *table, cJSON *const *records, int n)
{
    for (int i = 0; i < n; i++)
        if (records[i] == doc)
            return table->lines[i];
    return 0;
}

static qe_status doc_error(const qt_subtask *st, const cJSON *doc, qe_error *err, const char *what, const char *field)
{
    long line = doc_line(doc, &st->test, st->docs, st->n_docs);
    const char *path = st->test_path;
    if (!line && st->shots) {
        line = doc_line(doc, st->fewshot_path ? &st->fewshot : &st->test, st->shots, st->n_shots);
        if (st->fewshot_path)
            path = st->fewshot_path;
    }
    return qe_fail(err, QE_EFORMAT, "%s:%ld: field \"%s\" %s", path, line, field, what);
}

qe_status qt_task_choices(const qt_task *task, const qt_subtask *subtask, const cJSON *doc, const char ***choices,
                          int *n_choices, qe_error *err)
{
    *choices = NULL;
    *n_choices = 0;
    if (task->choices_kind == QT_CHOICES_LIST) {
        *choices = malloc((size_t)task->n_choice_list * sizeof **choices);
        if (!*choices)
            return qe_fail(err, QE_ENOMEM, "out of memory");
        for (int i = 0; i < task->n_choice_list; i++)
            (*choices)[i] = task->choice_list[i];
        *n_choices = task->n_choice_list;
        return QE_OK;
    }
    const cJSON *obj = cJSON_GetObjectItemCaseSensitive(doc, task->choices_field);
    int n = cJSON_GetArraySize(obj);
    if (!cJSON_IsObject(obj) || n == 0)
        return doc_error(subtask, doc, err, "must be a non-empty object whose keys are the choices", task->choices_field);
    *choices = malloc((size_t)n * sizeof **choices);
    if (!*choices)
        return qe_fail(err, QE_ENOMEM, "out of memory");
    int i = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, obj)(*choices)[i++] = item->string;
    *n_choices = n;
    return QE_OK;
}

qe_status qt_task_doc_n_requests(const qt_task *task, int doc_index, int *n_requests, qe_error *err)
{
    *n_requests = 0;
    const qt_subtask *st;
    const cJSON *doc;
    int doc_id;
    qe_status rc = qt_task_doc(task, doc_index, &st, &doc, &doc_id, err);
    if (rc != QE_OK)
        return rc;
    if (task->type == QT_REQUEST_GENERATE_UNTIL) {
        *n_requests = 1;
        return QE_OK;
    }
    const char **choices = NULL;
    rc = qt_task_choices(task, st, doc, &choices, n_requests, err);
    free(choices);
    return rc;
}

int qt_task_max_gen_toks(const qt_task *task) { return task->type == QT_REQUEST_GENERATE_UNTIL ? task->max_gen_toks : 0; }

qe_status qt_task_gold(const qt_task *task, const qt_subtask *st, const cJSON *doc, const char *const *choices,
                            int n_choices, int *out, qe_error *err)
{
    *out = 0;
    if (task->gold_kind == QT_GOLD_INDEX) {
        *out = task->gold_index;
    } else if (task->gold_kind == QT_GOLD_FIELD) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, task->gold_field);
        if (!cJSON_IsString(v))
            return doc_error(st, doc, err, "must be a string", task->gold_field);
        *out = -1;
        for (int i = 0; i < n_choices && *out < 0; i++)
            if (!strcmp(choices[i], v->valuestring))
                *out = i;
        if (*out < 0)
            return doc_error(st, doc, err, "is not one of the choices", task->gold_field);
    } else { /* labels: the first choice labelled 1 */
        const cJSON *obj = cJSON_GetObjectItemCaseSensitive(doc, task->gold_field);
        int i = 0;
        const cJSON *item;
        *out = -1;
        cJSON_ArrayForEach(item, obj)
        {
            if (cJSON_IsNumber(item) && item->valuedouble == 1 && *out < 0)
                *out = i;
            i++;
        }
        if (*out < 0)
            return doc_error(st, doc, err, "labels no choice as true", task->gold_field);
    }
    if (*out >= n_choices)
        return doc_error(st, doc, err, "points past the last choice", "gold");
    return QE_OK;
}

/* The target text of a few-shot example. */
static qe_status shot_target(const qt_task *task, const qt_subtask *st, const cJSON *shot, char **out, qe_error *err)
{
    if (task->type == QT_REQUEST_GENERATE_UNTIL)
        return qt_task_render(task, st, shot, task->doc_to_target, out, err);
    const char **choices;
    int n_choices, gold;
    qe_status rc = qt_task_choices(task, st, shot, &choices, &n_choices, err);
    if (rc != QE_OK)
        return rc;
    if ((rc = qt_task_gold(task, st, shot, choices, n_choices, &gold, err)) == QE_OK)
        *out = strdup(choices[gold]);
    free(choices);
    if (rc == QE_OK && !*out)
        rc = qe_fail(err, QE_ENOMEM, "out of memory");
    return rc;
}

/* Draws the few-shot pool indices for one doc: lm-eval draws num_fewshot (+1 when the pool is
 * the evaluated split) with one random.Random per task, shared by all its documents in order. */
static qe_status draw(const qt_task *task, qt_subtask *st, int *picked, int n_samples, qe_error *err)
{
    if (task->sampler_first_n) {
        for (int i = 0; i < n_samples; i++)
            picked[i] = i;
        return QE_OK;
    }
    return qt_pyrandom_sample(&st->rng, st->n_shots, n_samples, picked, err);
}

static qe_status fewshot_block(const qt_task *task, qt_subtask *st, int doc_id, const cJSON *doc, qt_buf *out,
                               qe_error *err)
{
    int k = task->num_fewshot, n_samples = k + (task->fewshot_same_split ? 1 : 0);
    int *picked = malloc((size_t)n_samples * sizeof *picked);
    if (!picked)
        return qe_fail(err, QE_ENOMEM, "out of memory drawing %d few-shot examples", n_samples);
    qe_status rc = QE_OK;
    if (!task->sampler_first_n && doc_id < st->next_doc) {
        qt_pyrandom_seed(&st->rng, task->seed);
        st->next_doc = 0;
    }
    for (; st->next_doc < doc_id && rc == QE_OK; st->next_doc++) /* replay the draws of skipped documents */
        rc = draw(task, st, picked, n_samples, err);
    if (rc == QE_OK)
        rc = draw(task, st, picked, n_samples, err);
    if (rc != QE_OK) {
        free(picked);
        return rc;
    }
    st->next_doc = doc_id + 1;
    int n_used = 0;
    for (int i = 0; i < n_samples && n_used < k; i++) {
        const cJSON *shot = st->shots[picked[i]];
        if (cJSON_Compare(shot, doc, true))
            continue; /* the evaluated document itself */
        char *text = NULL, *target = NULL;
        if ((rc = qt_task_render(task, st, shot, task->doc_to_text, &text, err)) == QE_OK &&
            (rc = shot_target(task, st, shot, &target, err)) == QE_OK) {
            qt_buf_puts(out, text);
            qt_buf_puts(out, task->target_delimiter);
            qt_buf_puts(out, target);
            qt_buf_puts(out, task->fewshot_delimiter);
        }
        free(text);
        free(target);
        if (rc != QE_OK)
            break;
        n_used++;
    }
    free(picked);
    return rc;
}

qt_request_type qt_task_request_type(const qt_task *task) { return task->type; }

qe_status qt_task_build_request(qt_task *task, int doc_index, qt_request *out, qe_error *err)
{
    return qt_task_build_chat_request(task, doc_index, NULL, out, err);
}

/* The context: without a template, description + few-shot examples + the document's prompt.
 * With one, as lm-eval's --apply_chat_template (lm_eval/api/task.py,
 * ConfigurableTask.fewshot_context): the description is the system message; the examples,
 * joined as lm_eval/api/samplers.py ContextSampler.get_context joins them, and the prompt
 * appended to them (append_target_question) are one user message; the model's
 * apply_chat_template renders [system, user] with add_generation_prompt=True. */
static qe_status build_context(qt_task *task, qt_subtask *st, int doc_id, const cJSON *doc,
                               const qt_chat_renderer *chat, char **context, qe_error *err)
{
    *context = NULL;
    char *description = NULL, *prompt = NULL;
    qt_buf body = {0};
    qe_status rc = qt_task_render(task, st, doc, task->description, &description, err);
    if (rc == QE_OK && !chat)
        qt_buf_puts(&body, description);
    if (rc == QE_OK && task->num_fewshot > 0)
        rc = fewshot_block(task, st, doc_id, doc, &body, err);
    if (rc == QE_OK)
        rc = qt_task_render(task, st, doc, task->doc_to_text, &prompt, err);
    if (rc == QE_OK)
        qt_buf_puts(&body, prompt);
    char *text = qt_buf_take(&body);
    if (rc == QE_OK && !text)
        rc = qe_fail(err, QE_ENOMEM, "out of memory");
    if (rc == QE_OK && chat) {
        rc = chat->render(chat->state, description[0] ? description : NULL, text, context, err);
        free(text);
    } else if (rc == QE_OK) {
        *context = text;
    } else {
        free(text);
    }
    free(description);
    free(prompt);
    return rc;
}

qe_status qt_task_build_chat_request(qt_task *task, int doc_index, const qt_chat_renderer *chat, qt_request *out,
                                     qe_error *err)
{
    memset(out, 0, sizeof *out);
    const qt_subtask *cst;
    const cJSON *doc;
    int doc_id;
    qe_status rc = qt_task_doc(task, doc_index, &cst, &doc, &doc_id, err);
    if (rc != QE_OK)
        return rc;
    qt_subtask *st = (qt_subtask *)cst;
    if ((rc = build_context(task, st, doc_id, doc, chat, &out->context, err)) != QE_OK)
        return rc;
    out->task = st->name;
    out->doc_id = doc_id;
    out->doc_index = doc_index;
    out->type = task->type;
    if (task->type == QT_REQUEST_GENERATE_UNTIL) {
        out->stops = (const char *const *)task->stops;
        out->n_stops = task->n_stops;
        out->max_new_tokens = task->max_gen_toks;
        return QE_OK;
    }
    const char **choices;
    int n_choices;
    if ((rc = qt_task_choices(task, st, doc, &choices, &n_choices, err)) != QE_OK) {
        qt_request_clear(out);
        return rc;
    }
    /* lm-eval's construct_requests (multiple_choice) drops the target delimiter under a chat
     * template: the answer starts the assistant's turn. */
    const char *delimiter = chat ? "" : task->target_delimiter;
    out->continuations = calloc((size_t)n_choices, sizeof *out->continuations);
    for (int i = 0; i < n_choices && out->continuations; i++) {
        qt_buf b = {0};
        qt_buf_puts(&b, delimiter);
        qt_buf_puts(&b, choices[i]);
        if (!(out->continuations[i] = qt_buf_take(&b)))
            break;
        out->n_continuations++;
    }
    free(choices);
    if (out->n_continuations != n_choices) {
        qt_request_clear(out);
        return qe_fail(err, QE_ENOMEM, "out of memory");
    }
    return QE_OK;
}

qe_status qt_task_exec_program(const qt_task *task, int doc_index, const char *completion, char **program, qe_error *err)
{
    *program = NULL;
    const qt_subtask *st;
    const cJSON *doc;
    int doc_id;
    qe_status rc = qt_task_doc(task, doc_index, &st, &doc, &doc_id, err);
    if (rc != QE_OK)
        return rc;
    if (!task->doc_to_target)
        return qe_fail(err, QE_EINVAL, "task %s has no doc_to_target (the test program)", task->name);
    char *prompt = NULL, *test = NULL;
    if ((rc = qt_task_render(task, st, doc, task->doc_to_text, &prompt, err)) == QE_OK &&
        (rc = qt_task_render(task, st, doc, task->doc_to_target, &test, err)) == QE_OK) {
        qt_buf b = {0};
        qt_buf_puts(&b, prompt);
        qt_buf_puts(&b, completion);
        qt_buf_puts(&b, "\n");
        qt_buf_puts(&b, test);
        if (!(*program = qt_buf_take(&b)))
            rc = qe_fail(err, QE_ENOMEM, "out of memory");
    }
    free(prompt);
    free(test);
    return rc;
}

qe_status qt_task_doc_text(const qt_task *task, int doc_index, char **text, qe_error *err)
{
    *text = NULL;
    const qt_subtask *st;
    const cJSON *doc;
    int doc_id;
    qe_status rc = qt_task_doc(task, doc_index, &st, &doc, &doc_id, err);
    const char *tmpl = task->doc_to_question ? task->doc_to_question : task->doc_to_text;
    return rc == QE_OK ? qt_task_render(task, st, doc, tmpl, text, err) : rc;
}

qe_status qt_task_filter_text(const qt_task *task, int filter_index, const char *text, char **answer, qe_error *err)
{
    *answer = NULL;
    if (filter_index < 0 || filter_index >= task->n_filters || !task->filters[filter_index].regex) {
        *answer = strdup(text);
        return *answer ? QE_OK : qe_fail(err, QE_ENOMEM, "out of memory");
    }
    const qt_filter *f = &task->filters[filter_index];
    return qt_regex_extract(f->regex, text, f->group_select, f->fallback, answer, err);
}
