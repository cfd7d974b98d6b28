/* chat_prompt — the --chat-template option of qeval run and qeval requests, and the renderer it
 * hands the tasks (qt_task_build_chat_request):
 *   none  plain prompts, as lm-evaluation-harness without --apply_chat_template (the default);
 *   auto  the model's own template: its family, and a ChatML template's default system turn;
 *   NAME  one of the engine's families (QE_CHAT_FAMILY_NAMES) by name, without any default system turn, whatever
 *         template the model has (a family renders without a model: qeval requests can).
 * How a request is put into the template is the tasks' business (docs/tasks.md). */
#ifndef QH_CHAT_PROMPT_H
#define QH_CHAT_PROMPT_H

#include "qeval_engine.h"
#include "requests.h"

typedef enum { QH_CHAT_NONE, QH_CHAT_AUTO, QH_CHAT_NAMED } qh_chat_mode;

typedef struct {
    qh_chat_mode mode;
    const char *family;        /* QH_CHAT_NAMED: the family's name (static), no default system turn */
    const qe_model *model;     /* QH_CHAT_AUTO: whose template renders; set before rendering */
} qh_chat;

/* The values the option takes, for help and error messages. */
#define QH_CHAT_VALUES "none, auto, " QE_CHAT_FAMILY_NAMES

/* Parses the option's value (NULL means none); QE_EINVAL listing QH_CHAT_VALUES when unknown. */
qe_status qh_chat_parse(const char *value, qh_chat *out, qe_error *err);

/* The renderer for qt_task_build_chat_request, kept in *storage; NULL for none. */
const qt_chat_renderer *qh_chat_renderer(qh_chat *chat, qt_chat_renderer *storage);

/* The family that renders ("chatml", ...; NULL for none). For auto it is that of the template
 * of the model at model_path, read without its weights: QE_EUNSUPPORTED naming the model when it
 * has no template or one of an unknown family. */
qe_status qh_chat_family(const qh_chat *chat, const char *model_path, const char **family, qe_error *err);

#endif
