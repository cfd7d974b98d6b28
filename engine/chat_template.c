#include "chat_template.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file_util.h"
#include "model.h"

const char *qe_chat_family_name(qe_chat_family family)
{
    switch (family) {
    case QE_CHAT_CHATML: return "chatml";
    case QE_CHAT_LLAMA3: return "llama3";
    case QE_CHAT_GEMMA: return "gemma";
    case QE_CHAT_LLAMA2: return "llama2";
    case QE_CHAT_MISTRAL: return "mistral";
    }
    return "?";
}

qe_status qe_chat_family_parse(const char *name, qe_chat_family *out, qe_error *err)
{
    static const qe_chat_family all[] = {QE_CHAT_CHATML, QE_CHAT_LLAMA3, QE_CHAT_GEMMA, QE_CHAT_LLAMA2, QE_CHAT_MISTRAL};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (name && !strcmp(name, qe_chat_family_name(all[i]))) {
            *out = all[i];
            return QE_OK;
        }
    return qe_fail(err, QE_EINVAL, "unknown chat template '%s' (known: " QE_CHAT_FAMILY_NAMES ")", name ? name : "");
}

/* SmolLM2-style templates write '<|im_start|>system\n<fixed text><|im_end|>' when the first
 * message is not a system one. The newline is either a real one or Jinja's "\n" escape; a
 * literal that is an expression (quotes, braces) is no default. */
static char *chatml_default_system(const char *text)
{
    const char *open = "<|im_start|>system";
    for (const char *p = strstr(text, open); p; p = strstr(p + 1, open)) {
        const char *s = p + strlen(open);
        if (*s == '\n')
            s++;
        else if (s[0] == '\\' && s[1] == 'n')
            s += 2;
        else
            continue;
        const char *end = strstr(s, "<|im_end|>");
        if (!end || end == s || strcspn(s, "'\"{}") < (size_t)(end - s))
            continue;
        char *out = malloc((size_t)(end - s) + 1);
        if (out) {
            memcpy(out, s, (size_t)(end - s));
            out[end - s] = '\0';
        }
        return out;
    }
    return NULL;
}

qe_status qe_chat_template_parse(const char *text, qe_chat_template *out, qe_error *err)
{
    out->default_system = NULL;
    if (!text || !*text)
        return qe_fail(err, QE_EUNSUPPORTED, "the model has no chat template");
    if (strstr(text, "<|im_start|>")) {
        out->family = QE_CHAT_CHATML;
        out->default_system = chatml_default_system(text);
    } else if (strstr(text, "<|start_header_id|>")) {
        out->family = QE_CHAT_LLAMA3;
    } else if (strstr(text, "<start_of_turn>")) {
        out->family = QE_CHAT_GEMMA;
    } else if (strstr(text, "[INST]")) {
        out->family = strstr(text, "<<SYS>>") ? QE_CHAT_LLAMA2 : QE_CHAT_MISTRAL;
    } else {
        return qe_fail(err, QE_EUNSUPPORTED, "chat template of an unknown family (known: ChatML, Llama-3, "
                       "Gemma, Llama-2/Mistral [INST]); it begins: %.60s", text);
    }
    return QE_OK;
}

void qe_chat_template_clear(qe_chat_template *t)
{
    if (!t)
        return;
    free(t->default_system);
    t->default_system = NULL;
}

/* Jinja's trim and Python's strip() on ASCII whitespace: a view [*start, *start+*len). */
static void trim(const char *s, const char **start, int *len, int strip_left)
{
    const char *ws = " \t\n\r\v\f";
    size_t n = strlen(s);
    size_t a = strip_left ? strspn(s, ws) : 0;
    while (n > a && strchr(ws, s[n - 1]))
        n--;
    *start = s + a;
    *len = (int)(n - a);
}

static qe_status format(char **prompt, qe_error *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static qe_status format(char **prompt, qe_error *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    *prompt = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (!*prompt)
        return qe_fail(err, QE_ENOMEM, "no memory for a %d-byte prompt", n);
    va_start(ap, fmt);
    vsnprintf(*prompt, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return QE_OK;
}

qe_status qe_chat_template_apply(const qe_chat_template *t, const char *system, const char *user, char **prompt,
                                 qe_error *err)
{
    *prompt = NULL;
    const char *u, *s;
    int u_len, s_len;
    switch (t->family) {
    case QE_CHAT_CHATML:
        if (!system)
            system = t->default_system;
        if (!system)
            return format(prompt, err, "<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n", user);
        return format(prompt, err, "<|im_start|>system\n%s<|im_end|>\n<|im_start|>user\n%s<|im_end|>\n"
                      "<|im_start|>assistant\n", system, user);
    case QE_CHAT_LLAMA3:
        trim(user, &u, &u_len, 1);
        if (!system)
            return format(prompt, err, "<|start_header_id|>user<|end_header_id|>\n\n%.*s<|eot_id|>"
                          "<|start_header_id|>assistant<|end_header_id|>\n\n", u_len, u);
        trim(system, &s, &s_len, 1);
        return format(prompt, err, "<|start_header_id|>system<|end_header_id|>\n\n%.*s<|eot_id|>"
                      "<|start_header_id|>user<|end_header_id|>\n\n%.*s<|eot_id|>"
                      "<|start_header_id|>assistant<|end_header_id|>\n\n", s_len, s, u_len, u);
    case QE_CHAT_GEMMA:
        trim(user, &u, &u_len, 1);
        return format(prompt, err, "<start_of_turn>user\n%s%s%.*s<end_of_turn>\n<start_of_turn>model\n",
                      system ? system : "", system ? "\n\n" : "", u_len, u);
    case QE_CHAT_LLAMA2:
        /* the template strips the whole "<<SYS>>...user" string, so the system keeps its spaces */
        if (!system) {
            trim(user, &u, &u_len, 1);
            return format(prompt, err, "[INST] %.*s [/INST]", u_len, u);
        }
        trim(user, &u, &u_len, 0);
        return format(prompt, err, "[INST] <<SYS>>\n%s\n<</SYS>>\n\n%.*s [/INST]", system, u_len, u);
    case QE_CHAT_MISTRAL:
        return format(prompt, err, "[INST] %s%s%s [/INST]", system ? system : "", system ? "\n\n" : "", user);
    }
    return qe_fail(err, QE_EINVAL, "chat template family %d", (int)t->family);
}

qe_status qe_chat_template_read_hf(const char *model_dir, char **text, qe_error *err)
{
    *text = NULL;
    char path[4096];
    qe_status rc = qe_path_join(path, sizeof path, model_dir, "tokenizer_config.json", err);
    if (rc != QE_OK || !qe_file_exists(path))
        return rc;
    char *json = NULL;
    if ((rc = qe_read_file(path, &json, NULL, err)) != QE_OK)
        return rc;
    cJSON *root = cJSON_Parse(json);
    free(json);
    if (!root)
        return qe_fail(err, QE_EFORMAT, "%s: not valid JSON", path);
    const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(root, "chat_template"), *chosen = NULL;
    if (cJSON_IsString(tpl)) {
        chosen = tpl;
    } else if (cJSON_IsArray(tpl)) {
        const cJSON *entry;
        cJSON_ArrayForEach(entry, tpl) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(entry, "name");
            const cJSON *body = cJSON_GetObjectItemCaseSensitive(entry, "template");
            if (cJSON_IsString(name) && cJSON_IsString(body) && !strcmp(name->valuestring, "default"))
                chosen = body;
        }
    } else if (tpl && !cJSON_IsNull(tpl)) {
        rc = qe_fail(err, QE_EFORMAT, "%s: \"chat_template\" is neither a string nor a list of templates", path);
    }
    if (chosen && !(*text = strdup(chosen->valuestring)))
        rc = qe_fail(err, QE_ENOMEM, "%s: out of memory", path);
    cJSON_Delete(root);
    return rc;
}

/* The model's template, parsed; errors name the model. */
static qe_status model_template(const qe_model *model, qe_chat_template *t, qe_error *err)
{
    if (!model->chat_template)
        return qe_fail(err, QE_EUNSUPPORTED, "%s: the model has no chat template", model->path);
    if (qe_chat_template_parse(model->chat_template, t, err) != QE_OK)
        return qe_fail_context(err, "%s", model->path);
    return QE_OK;
}

qe_status qe_model_chat_family(const qe_model *model, const char **family, qe_error *err)
{
    *family = NULL;
    qe_chat_template t;
    qe_status rc = model_template(model, &t, err);
    if (rc != QE_OK)
        return rc;
    *family = qe_chat_family_name(t.family);
    qe_chat_template_clear(&t);
    return QE_OK;
}

qe_status qe_model_chat_prompt(const qe_model *model, const char *system, const char *user, char **prompt,
                               qe_error *err)
{
    *prompt = NULL;
    qe_chat_template t;
    qe_status rc = model_template(model, &t, err);
    if (rc != QE_OK)
        return rc;
    rc = qe_chat_template_apply(&t, system, user, prompt, err);
    qe_chat_template_clear(&t);
    return rc;
}

qe_status qe_chat_family_lookup(const char *name, const char **family, qe_error *err)
{
    qe_chat_family found = QE_CHAT_CHATML;
    qe_status rc = qe_chat_family_parse(name, &found, err);
    *family = rc == QE_OK ? qe_chat_family_name(found) : NULL;
    return rc;
}

qe_status qe_chat_family_prompt(const char *family, const char *system, const char *user, char **prompt,
                                qe_error *err)
{
    *prompt = NULL;
    qe_chat_template t = {0};
    qe_status rc = qe_chat_family_parse(family, &t.family, err);
    return rc != QE_OK ? rc : qe_chat_template_apply(&t, system, user, prompt, err);
}
