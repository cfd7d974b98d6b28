/* qeval generate MODEL --prompt TEXT [--chat] [--system TEXT] [--max-new-tokens N] [--threads N] [--variant V]
 * Greedy text from a prompt, tokenized as the model's tokenizer does by default (BOS when it
 * adds one). Prints the prompt and its continuation, decoded together, until EOS or N tokens;
 * with --chat the prompt is the user turn of the model's chat template and only the answer is
 * printed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model_cache.h"
#include "qeval_engine.h"

int qh_cmd_generate(int argc, char **argv)
{
    const char *path = NULL, *prompt = NULL, *variant_name = "fp32", *system = NULL;
    bool is_chat = false;
    int max_new = 256, n_threads = 0, device_index = 0;
    qe_device_kind device = qe_default_device();
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: qeval generate MODEL --prompt TEXT [--chat] [--system TEXT] [--max-new-tokens N]\n"
                   "                      [--threads N] [--variant V] [--device cpu|cuda|cuda:N]\n"
                   "  --chat         PROMPT is the user's turn in the model's chat template; print the answer\n"
                   "  --system TEXT  a system turn before it (implies --chat)\n");
            return QH_EXIT_OK;
        } else if (!strcmp(argv[i], "--prompt") && i + 1 < argc)
            prompt = argv[++i];
        else if (!strcmp(argv[i], "--chat"))
            is_chat = true;
        else if (!strcmp(argv[i], "--system") && i + 1 < argc)
            system = argv[++i], is_chat = true;
        else if (!strcmp(argv[i], "--max-new-tokens") && i + 1 < argc)
            max_new = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            n_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--device") && i + 1 < argc) {
            if (!qh_parse_device(argv[++i], &device, &device_index))
                return qh_usage_error("generate", "--device must be cpu, cuda or cuda:N, not '%s'", argv[i]);
        } else if (!strcmp(argv[i], "--variant") && i + 1 < argc)
            variant_name = argv[++i];
        else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else
            return qh_usage_error("generate", "unexpected argument '%s'", argv[i]);
    }
    if (!path || !prompt)
        return qh_usage_error("generate", "MODEL and --prompt TEXT are required");
    if (max_new < 0)
        return qh_usage_error("generate", "--max-new-tokens must be >= 0");
    qe_load_options options = {.device = device, .device_index = device_index, .n_threads = n_threads};
    qe_model *model = NULL;
    qe_error err = {0};
    int32_t *prompt_ids = NULL, *new_ids = NULL, *all = NULL;
    int n_prompt = 0, n_new = 0, rc = QH_EXIT_OK;
    char *text = NULL, *chat_prompt = NULL;
    if (qe_variant_parse(variant_name, &options.variant, &err) || qh_model_open(path, &options, &model, &err) ||
        (is_chat && qe_model_chat_prompt(model, system, prompt, &chat_prompt, &err)) ||
        qe_tokenize(model, is_chat ? chat_prompt : prompt, true, &prompt_ids, &n_prompt, &err)) {
        rc = qh_report_error(&err);
        goto out;
    }
    qe_model_info info;
    qe_model_get_info(model, &info);
    if (n_prompt == 0) { /* an empty prompt without BOS: start from BOS anyway */
        free(prompt_ids);
        prompt_ids = malloc(sizeof *prompt_ids);
        prompt_ids[0] = info.bos_id >= 0 ? info.bos_id : 0;
        n_prompt = 1;
    }
    if (max_new > info.max_context - n_prompt)
        max_new = info.max_context - n_prompt;
    if (qe_generate_ids(model, prompt_ids, n_prompt, max_new, &new_ids, &n_new, NULL, &err)) {
        rc = qh_report_error(&err);
        goto out;
    }
    /* decode prompt and continuation together (a leading-space token decodes right only in
     * context), without the BOS in front and the EOS at the end; a chat answer stands alone */
    all = malloc((size_t)(n_prompt + n_new) * sizeof *all);
    int n_all = 0;
    for (int i = 0; i < n_prompt && !is_chat; i++)
        if (!(i == 0 && prompt_ids[0] == info.bos_id))
            all[n_all++] = prompt_ids[i];
    for (int i = 0; i < n_new; i++)
        if (!(i == n_new - 1 && new_ids[i] == info.eos_id))
            all[n_all++] = new_ids[i];
    if (qe_detokenize(model, all, n_all, &text, &err)) {
        rc = qh_report_error(&err);
        goto out;
    }
    printf("%s\n", text);
out:
    free(chat_prompt);
    free(text);
    free(all);
    free(prompt_ids);
    free(new_ids);
    qe_model_free(model);
    return rc;
}
