#include "chat_prompt.h"

#include <stdio.h>
#include <string.h>

qe_status qh_chat_parse(const char *value, qh_chat *out, qe_error *err)
{
    memset(out, 0, sizeof *out);
    if (!value || !strcmp(value, "none"))
        return QE_OK;
    if (!strcmp(value, "auto")) {
        out->mode = QH_CHAT_AUTO;
        return QE_OK;
    }
    out->mode = QH_CHAT_NAMED;
    if (qe_chat_family_lookup(value, &out->family, NULL) != QE_OK)
        return qe_fail(err, QE_EINVAL, "unknown chat template '%s' (known: " QH_CHAT_VALUES ")", value);
    return QE_OK;
}

static qe_status render(void *state, const char *system, const char *user, char **prompt, qe_error *err)
{
    const qh_chat *chat = state;
    if (chat->mode == QH_CHAT_NAMED)
        return qe_chat_family_prompt(chat->family, system, user, prompt, err);
    if (!chat->model)
        return qe_fail(err, QE_EINVAL, "--chat-template auto renders with a model's template, and none is loaded");
    return qe_model_chat_prompt(chat->model, system, user, prompt, err);
}

const qt_chat_renderer *qh_chat_renderer(qh_chat *chat, qt_chat_renderer *storage)
{
    if (chat->mode == QH_CHAT_NONE)
        return NULL;
    storage->render = render;
    storage->state = chat;
    return storage;
}

qe_status qh_chat_family(const qh_chat *chat, const char *model_path, const char **family, qe_error *err)
{
    *family = NULL;
    if (chat->mode == QH_CHAT_NAMED)
        *family = chat->family;
    if (chat->mode != QH_CHAT_AUTO)
        return QE_OK;
    qe_load_options options = {.variant = {.kind = QE_VARIANT_FP32}, .device = QE_DEVICE_CPU, .n_threads = 1,
                               .metadata_only = true};
    qe_model *model = NULL;
    qe_status rc = qe_model_load(model_path, &options, &model, err);
    if (rc == QE_OK && (rc = qe_model_chat_family(model, family, err)) != QE_OK && err) {
        char reason[sizeof err->msg];
        snprintf(reason, sizeof reason, "%s", err->msg);
        qe_fail(err, rc, "%s; --chat-template auto uses the model's own (or name a family: " QE_CHAT_FAMILY_NAMES ")",
                reason);
    }
    qe_model_free(model);
    return rc;
}
