/* chat_template — the chat formats small instruct models use, recognised from the Jinja
 * template text their tokenizer ships (tokenizer.chat_template in GGUF, chat_template in
 * tokenizer_config.json) and applied to one (system, user) exchange with the generation
 * prompt, as transformers' apply_chat_template(add_generation_prompt=True) renders it.
 *
 * Families: ChatML (<|im_start|>: SmolLM2, Qwen), Llama-3 (<|start_header_id|>), Gemma
 * (<start_of_turn>; the system text opens the first user turn), Llama-2 ([INST] with
 * <<SYS>>), Mistral ([INST]; the system text opens the user turn). A ChatML template that
 * writes a fixed system turn when none is given (SmolLM2's) keeps that default.
 * The rendered text leaves BOS out: the tokenizer adds it (add_special) as the model says. */
#ifndef QE_CHAT_TEMPLATE_H
#define QE_CHAT_TEMPLATE_H

#include "qeval_engine.h"

typedef enum {
    QE_CHAT_CHATML, QE_CHAT_LLAMA3, QE_CHAT_GEMMA, QE_CHAT_LLAMA2, QE_CHAT_MISTRAL,
} qe_chat_family;

typedef struct {
    qe_chat_family family;
    char *default_system;      /* ChatML system text used when none is given; NULL when none */
} qe_chat_template;

/* Recognises the family of template_text; QE_EUNSUPPORTED naming the families when unknown. */
qe_status qe_chat_template_parse(const char *template_text, qe_chat_template *out, qe_error *err);
void qe_chat_template_clear(qe_chat_template *t); /* NULL-safe; frees default_system */

const char *qe_chat_family_name(qe_chat_family family); /* "chatml", "llama3", ... */

/* QE_CHAT_FAMILY_NAMES (qeval_engine.h) lists the names qe_chat_family_name gives. */

/* The family named name (as qe_chat_family_name spells it); QE_EINVAL listing the names. */
qe_status qe_chat_family_parse(const char *name, qe_chat_family *out, qe_error *err);

/* *prompt (malloc'd) = the template applied to [system (may be NULL), user] plus the
 * assistant's turn opening. */
qe_status qe_chat_template_apply(const qe_chat_template *t, const char *system, const char *user, char **prompt,
                                 qe_error *err);

/* dir/tokenizer_config.json's "chat_template" (a string, or the entry named "default" of a
 * list of {name, template}); *text (malloc'd) is NULL when the file or the field is absent. */
qe_status qe_chat_template_read_hf(const char *model_dir, char **text, qe_error *err);

#endif
