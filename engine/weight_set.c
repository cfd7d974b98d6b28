#include "weight_set.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "file_util.h"

static qe_status add_file(qe_weight_set *set, const char *path, qe_error *err)
{
    qe_safetensors **grown = realloc(set->files, (size_t)(set->n_files + 1) * sizeof *grown);
    if (!grown)
        return qe_fail(err, QE_ENOMEM, "%s: out of memory", path);
    set->files = grown;
    qe_status rc = qe_safetensors_open(path, &set->files[set->n_files], err);
    if (rc == QE_OK)
        set->n_files++;
    return rc;
}

static qe_status open_sharded(const char *dir, const char *index_path, qe_weight_set *set, qe_error *err)
{
    char *json = NULL;
    qe_status rc = qe_read_file(index_path, &json, NULL, err);
    if (rc != QE_OK)
        return rc;
    cJSON *root = cJSON_Parse(json);
    free(json);
    if (!root)
        return qe_fail(err, QE_EFORMAT, "%s: not valid JSON", index_path);
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(map) || !map->child) {
        rc = qe_fail(err, QE_EFORMAT, "%s: \"weight_map\" is missing or empty", index_path);
        goto out;
    }
    /* open each shard once, in the order the map first names it */
    for (const cJSON *e = map->child; e && rc == QE_OK; e = e->next) {
        if (!cJSON_IsString(e) || !e->valuestring[0] || strchr(e->valuestring, '/') ||
            !strcmp(e->valuestring, "..") || !strcmp(e->valuestring, ".")) {
            rc = qe_fail(err, QE_EFORMAT, "%s: weight_map[\"%s\"] is not a plain file name", index_path, e->string);
            break;
        }
        bool seen = false;
        for (const cJSON *p = map->child; p != e; p = p->next)
            if (!strcmp(p->valuestring, e->valuestring))
                seen = true;
        if (seen)
            continue;
        char path[4096];
        if ((rc = qe_path_join(path, sizeof path, dir, e->valuestring, err)) == QE_OK)
            rc = add_file(set, path, err);
    }
    for (const cJSON *e = map->child; e && rc == QE_OK; e = e->next) {
        const qe_tensor_view *t = qe_weight_set_find(set, e->string);
        if (!t) {
            rc = qe_fail(err, QE_EFORMAT, "%s: tensor '%s' is listed in shard %s but that file does not hold it",
                         index_path, e->string, e->valuestring);
            break;
        }
    }
out:
    cJSON_Delete(root);
    return rc;
}

static qe_status check_unique(const qe_weight_set *set, qe_error *err)
{
    for (int f = 1; f < set->n_files; f++)
        for (int i = 0; i < qe_safetensors_count(set->files[f]); i++) {
            const char *name = qe_safetensors_at(set->files[f], i)->name;
            for (int g = 0; g < f; g++)
                if (qe_safetensors_find(set->files[g], name))
                    return qe_fail(err, QE_EFORMAT, "%s: tensor '%s' is also in %s",
                                   qe_safetensors_path(set->files[f]), name, qe_safetensors_path(set->files[g]));
        }
    return QE_OK;
}

static bool starts_with(const char *s, const char *prefix) { return !strncmp(s, prefix, strlen(prefix)); }

/* The vision side of a multimodal checkpoint, in either transformers layout. */
static bool is_vision_tensor(const char *name)
{
    static const char *const prefixes[] = {"vision_tower.", "multi_modal_projector.", "model.vision_tower.",
                                           "model.multi_modal_projector."};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
        if (starts_with(name, prefixes[i]))
            return true;
    return false;
}

/* When the files hold a multimodal checkpoint's text model under a prefix, lists its tensors
 * under their text-model names in set->text and counts the vision ones left out. */
static qe_status unwrap_language_model(qe_weight_set *set, const char *dir, qe_error *err)
{
    static const struct { const char *prefix, *head; } layouts[] = {
        {"model.language_model.", "lm_head."},              /* transformers >= 4.52 */
        {"language_model.model.", "language_model.lm_head."}, /* before */
    };
    int n_tensors = 0, layout = -1;
    for (int f = 0; f < set->n_files; f++)
        for (int i = 0; i < qe_safetensors_count(set->files[f]); i++, n_tensors++)
            for (int k = 0; k < 2 && layout < 0; k++)
                if (starts_with(qe_safetensors_at(set->files[f], i)->name, layouts[k].prefix))
                    layout = k;
    if (layout < 0)
        return QE_OK;
    set->text = calloc((size_t)n_tensors, sizeof *set->text);
    if (!set->text)
        return qe_fail(err, QE_ENOMEM, "%s: out of memory", dir);
    set->text_prefix = layouts[layout].prefix;
    for (int f = 0; f < set->n_files; f++)
        for (int i = 0; i < qe_safetensors_count(set->files[f]); i++) {
            const qe_tensor_view *t = qe_safetensors_at(set->files[f], i);
            const char *rest = NULL, *plain_prefix = "";
            if (starts_with(t->name, layouts[layout].prefix))
                rest = t->name + strlen(layouts[layout].prefix), plain_prefix = "model.";
            else if (starts_with(t->name, layouts[layout].head))
                rest = t->name + strlen(layouts[layout].head), plain_prefix = "lm_head.";
            if (!rest && is_vision_tensor(t->name)) {
                set->n_ignored++;
                continue;
            }
            if (!rest)
                return qe_fail(err, QE_EFORMAT, "%s: tensor '%s' is neither under the text model's '%s' nor a vision "
                               "tower or projector tensor", t->file_path, t->name, layouts[layout].prefix);
            qe_tensor_view *v = &set->text[set->n_text];
            *v = *t;
            size_t n = strlen(plain_prefix) + strlen(rest) + 1;
            char *name = malloc(n);
            if (!name)
                return qe_fail(err, QE_ENOMEM, "%s: out of memory", dir);
            snprintf(name, n, "%s%s", plain_prefix, rest);
            v->name = name;
            set->n_text++;
            for (int j = 0; j < set->n_text - 1; j++)
                if (!strcmp(set->text[j].name, name))
                    return qe_fail(err, QE_EFORMAT, "%s: tensor '%s' is stored twice, as '%s' too", t->file_path,
                                   name, t->name);
        }
    return QE_OK;
}

qe_status qe_weight_set_open(const char *dir, qe_weight_set *set, qe_error *err)
{
    memset(set, 0, sizeof *set);
    char single[4096], index[4096];
    qe_status rc;
    if ((rc = qe_path_join(single, sizeof single, dir, "model.safetensors", err)) ||
        (rc = qe_path_join(index, sizeof index, dir, "model.safetensors.index.json", err)))
        return rc;
    if (qe_file_exists(single))
        rc = add_file(set, single, err);
    else if (qe_file_exists(index))
        rc = open_sharded(dir, index, set, err);
    else
        rc = qe_fail(err, QE_EIO, "%s: no model.safetensors or model.safetensors.index.json", dir);
    if (rc == QE_OK)
        rc = check_unique(set, err);
    if (rc == QE_OK)
        rc = unwrap_language_model(set, dir, err);
    if (rc != QE_OK)
        qe_weight_set_close(set);
    return rc;
}

void qe_weight_set_close(qe_weight_set *set)
{
    if (!set)
        return;
    for (int i = 0; i < set->n_files; i++)
        qe_safetensors_close(set->files[i]);
    free(set->files);
    for (int i = 0; i < set->n_memory; i++)
        free((void *)set->memory[i].name);
    free(set->memory);
    for (int i = 0; i < set->n_text; i++)
        free((void *)set->text[i].name);
    free(set->text);
    if (set->close_source)
        set->close_source(set->source);
    free(set->memory_source);
    memset(set, 0, sizeof *set);
}

const qe_tensor_view *qe_weight_set_find(const qe_weight_set *set, const char *name)
{
    for (int i = 0; i < set->n_text; i++)
        if (!strcmp(set->text[i].name, name))
            return &set->text[i];
    for (int i = 0; i < set->n_files && !set->text; i++) {
        const qe_tensor_view *t = qe_safetensors_find(set->files[i], name);
        if (t)
            return t;
    }
    for (int i = 0; i < set->n_memory; i++)
        if (!strcmp(set->memory[i].name, name))
            return &set->memory[i];
    return NULL;
}

int qe_weight_set_count(const qe_weight_set *set)
{
    int n = set->n_memory + set->n_text;
    for (int f = 0; f < set->n_files && !set->text; f++)
        n += qe_safetensors_count(set->files[f]);
    return n;
}

const qe_tensor_view *qe_weight_set_at(const qe_weight_set *set, int index)
{
    if (set->text)
        return index >= 0 && index < set->n_text ? &set->text[index] : NULL;
    for (int f = 0; f < set->n_files; f++) {
        int n = qe_safetensors_count(set->files[f]);
        if (index < n)
            return qe_safetensors_at(set->files[f], index);
        index -= n;
    }
    return index >= 0 && index < set->n_memory ? &set->memory[index] : NULL;
}

qe_status qe_weight_set_read_f32(const qe_weight_set *set, const qe_tensor_view *t, const float **data,
                                 float **owned, qe_error *err)
{
    *data = NULL;
    *owned = NULL;
    bool is_made = set->n_memory > 0 && t >= set->memory && t < set->memory + set->n_memory;
    if (is_made && !set->make_f32)
        return qe_fail(err, QE_EINVAL, "%s: tensor '%s' was opened without its data", t->file_path, t->name);
    if (!is_made && t->dtype == QE_DTYPE_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *data = t->data;
        return QE_OK;
    }
    if (!is_made && t->dtype != QE_DTYPE_F32 && t->dtype != QE_DTYPE_BF16 && t->dtype != QE_DTYPE_F16)
        return qe_fail(err, QE_EUNSUPPORTED, "%s: tensor '%s' has dtype %s; weights must be F32, BF16 or F16",
                       t->file_path, t->name, qe_dtype_name(t->dtype));
    float *buf = malloc(t->n_elements ? t->n_elements * sizeof(float) : 1);
    if (!buf)
        return qe_fail(err, QE_ENOMEM, "%s: out of memory converting tensor '%s' (%llu elements)", t->file_path,
                       t->name, (unsigned long long)t->n_elements);
    if (is_made) {
        qe_status rc = set->make_f32(set->source, (int)(t - set->memory), buf, err);
        if (rc != QE_OK) {
            free(buf);
            return rc;
        }
    } else {
        qe_convert_to_f32(buf, t->data, t->dtype, t->n_elements);
    }
    *data = buf;
    *owned = buf;
    return QE_OK;
}
