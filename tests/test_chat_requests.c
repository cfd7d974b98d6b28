/* Requests put in a chat template (--chat-template), checked against strings written out by
 * hand from lm-evaluation-harness's rules for --apply_chat_template with fewshot_as_multiturn
 * false (docs/tasks.md, "Chat templates"): the description is the system turn, the few-shot
 * examples and the document's prompt are one user turn, the assistant's turn is opened, and a
 * multiple-choice continuation loses the target delimiter. ChatML as transformers renders
 * [system?, user] with add_generation_prompt=True; Llama-3 trims each message. Also: the
 * option's values, and auto on a model without a template. */
#include <stdbool.h>

#include "chat_prompt.h"
#include "check.h"
#include "task.h"

static char data_dir[512];

static qt_task *load(const char *name, const char *subsets, int limit, int num_fewshot)
{
    qt_task_options o;
    qt_task_options_default(&o);
    o.data_dir = data_dir;
    o.subsets = subsets;
    o.limit = limit;
    o.num_fewshot = num_fewshot;
    qt_task *task = NULL;
    qe_error err = {0};
    if (qt_task_load(name, QEVAL_SOURCE_DIR "/tasks", &o, &task, &err) != QE_OK)
        fprintf(stderr, "loading %s: %s\n", name, err.msg);
    return task;
}

/* mmlu_abstract_algebra doc 0, 5 dev shots in file order: the plain context minus the
 * description, which is the system turn (its "\n\n" kept: ChatML does not trim). */
static const char *mmlu_chatml =
    "<|im_start|>system\n"
    "The following are multiple choice questions (with answers) about abstract algebra.\n\n"
    "<|im_end|>\n"
    "<|im_start|>user\n"
    "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.\nA. 0\nB. 1\nC. 2\nD. 3\nAnswer: B\n\n"
    "Statement 1 | If aH is an element of a factor group, then |aH| divides |a|. Statement 2 | If H and K are "
    "subgroups of G then HK is a subgroup of G.\nA. True, True\nB. False, False\nC. True, False\nD. False, True\nAnswer: B\n\n"
    "Statement 1 | Every element of a group generates a cyclic subgroup of the group. Statement 2 | The symmetric "
    "group S_10 has 10 elements.\nA. True, True\nB. False, False\nC. True, False\nD. False, True\nAnswer: C\n\n"
    "Statement 1| Every function from a finite set onto itself must be one to one. Statement 2 | Every subgroup of an "
    "abelian group is abelian.\nA. True, True\nB. False, False\nC. True, False\nD. False, True\nAnswer: A\n\n"
    "Find the characteristic of the ring 2Z.\nA. 0\nB. 3\nC. 12\nD. 30\nAnswer: A\n\n"
    "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:"
    "<|im_end|>\n"
    "<|im_start|>assistant\n";

/* The same document 0-shot under Llama-3, which trims the system text's "\n\n". */
static const char *mmlu_llama3_zero_shot =
    "<|start_header_id|>system<|end_header_id|>\n\n"
    "The following are multiple choice questions (with answers) about abstract algebra."
    "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
    "Find the degree for the given field extension Q(sqrt(2), sqrt(3), sqrt(18)) over Q.\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:"
    "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";

/* gsm8k test doc 0 with one shot: random.Random(1234).sample(train, 1) draws train row 6374
 * (the first of the five in tests/golden/gsm8k_shots.txt). No description, so no system turn. */
static const char *gsm8k_chatml =
    "<|im_start|>user\n"
    "Question: Jen and Tyler are gymnasts practicing flips. Jen is practicing the triple-flip while Tyler is "
    "practicing the double-flip. Jen did sixteen triple-flips during practice. Tyler flipped in the air half the "
    "number of times Jen did. How many double-flips did Tyler do?\n"
    "Answer: Jen did 16 triple-flips, so she did 16 * 3 = <<16*3=48>>48 flips.\n"
    "Tyler did half the number of flips, so he did 48 / 2 = <<48/2=24>>24 flips.\n"
    "A double flip has two flips, so Tyler did 24 / 2 = <<24/2=12>>12 double-flips.\n#### 12\n\n"
    "Question: Janet\xe2\x80\x99s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes "
    "muffins for her friends every day with four. She sells the remainder at the farmers' market daily for $2 per "
    "fresh duck egg. How much in dollars does she make every day at the farmers' market?\nAnswer:"
    "<|im_end|>\n"
    "<|im_start|>assistant\n";

static bool starts_with(const char *s, const char *prefix) { return s && !strncmp(s, prefix, strlen(prefix)); }

static bool ends_with(const char *s, const char *suffix)
{
    return s && strlen(s) >= strlen(suffix) && !strcmp(s + strlen(s) - strlen(suffix), suffix);
}

static void check_named(const char *family, qh_chat *chat, qt_chat_renderer *renderer, const qt_chat_renderer **out)
{
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qh_chat_parse(family, chat, &err));
    *out = qh_chat_renderer(chat, renderer);
    CHECK(*out != NULL);
}

static void test_requests(void)
{
    qe_error err = {0};
    qh_chat chatml, llama3;
    qt_chat_renderer chatml_storage, llama3_storage;
    const qt_chat_renderer *as_chatml, *as_llama3;
    check_named("chatml", &chatml, &chatml_storage, &as_chatml);
    check_named("llama3", &llama3, &llama3_storage, &as_llama3);
    qt_request req;

    qt_task *mmlu = load("mmlu", "abstract_algebra", 1, -1);
    CHECK(mmlu != NULL);
    if (mmlu && as_chatml) {
        CHECK_INT_EQ(QE_OK, qt_task_build_chat_request(mmlu, 0, as_chatml, &req, &err));
        CHECK_STR_EQ(mmlu_chatml, req.context);
        CHECK_INT_EQ(4, req.n_continuations);
        if (req.n_continuations == 4) {
            CHECK_STR_EQ("A", req.continuations[0]);
            CHECK_STR_EQ("D", req.continuations[3]);
        }
        qt_request_clear(&req);
        /* no template: the plain request, target delimiter and all */
        CHECK_INT_EQ(QE_OK, qt_task_build_chat_request(mmlu, 0, NULL, &req, &err));
        CHECK(starts_with(req.context, "The following are multiple choice questions (with answers) about abstract "
                                       "algebra.\n\nFind all c in Z_3"));
        CHECK_STR_EQ(" A", req.continuations[0]);
        qt_request_clear(&req);
    }
    qt_task_free(mmlu);

    mmlu = load("mmlu", "abstract_algebra", 1, 0);
    if (mmlu && as_llama3) {
        CHECK_INT_EQ(QE_OK, qt_task_build_chat_request(mmlu, 0, as_llama3, &req, &err));
        CHECK_STR_EQ(mmlu_llama3_zero_shot, req.context);
        qt_request_clear(&req);
    }
    qt_task_free(mmlu);

    qt_task *gsm8k = load("gsm8k", NULL, 1, 1);
    CHECK(gsm8k != NULL);
    if (gsm8k && as_chatml) {
        CHECK_INT_EQ(QE_OK, qt_task_build_chat_request(gsm8k, 0, as_chatml, &req, &err));
        CHECK_STR_EQ(gsm8k_chatml, req.context);
        CHECK_INT_EQ(QT_REQUEST_GENERATE_UNTIL, req.type);
        CHECK_INT_EQ(3, req.n_stops); /* until and max_gen_toks as the task says */
        if (req.n_stops == 3)
            CHECK_STR_EQ("Question:", req.stops[0]);
        CHECK_INT_EQ(256, req.max_new_tokens);
        qt_request_clear(&req);
    }
    qt_task_free(gsm8k);

    /* TruthfulQA: no description, 0-shot; the answer starts the assistant's turn */
    qt_task *mc1 = load("truthfulqa_mc1", NULL, 1, -1);
    if (mc1 && as_chatml) {
        CHECK_INT_EQ(QE_OK, qt_task_build_chat_request(mc1, 0, as_chatml, &req, &err));
        CHECK(starts_with(req.context, "<|im_start|>user\nQ: What is human life expectancy"));
        CHECK(ends_with(req.context, "\n\nQ: What is the smallest country in the world that is at least one square "
                                     "mile in area?\nA:<|im_end|>\n<|im_start|>assistant\n"));
        CHECK_STR_EQ("Nauru is the smallest country in the world that is at least one square mile in area.",
                     req.continuations[0]);
        qt_request_clear(&req);
    }
    qt_task_free(mc1);
}

static void test_option(const char *shared)
{
    qe_error err = {0};
    qh_chat chat;
    qt_chat_renderer storage;
    CHECK_INT_EQ(QE_OK, qh_chat_parse(NULL, &chat, &err));
    CHECK(qh_chat_renderer(&chat, &storage) == NULL);
    CHECK_INT_EQ(QE_OK, qh_chat_parse("none", &chat, &err));
    CHECK(qh_chat_renderer(&chat, &storage) == NULL);
    CHECK_INT_EQ(QE_EINVAL, qh_chat_parse("ChatML", &chat, &err)); /* names are lower case */
    CHECK(strstr(err.msg, "'ChatML'") && strstr(err.msg, "none, auto, chatml, llama3, gemma, llama2, mistral"));
    const char *family = "unset";
    CHECK_INT_EQ(QE_OK, qh_chat_parse("gemma", &chat, &err));
    CHECK_INT_EQ(QE_OK, qh_chat_family(&chat, "/nowhere", &family, &err)); /* a name needs no model */
    CHECK_STR_EQ("gemma", family);
    CHECK_INT_EQ(QE_OK, qh_chat_parse("auto", &chat, &err));
    CHECK_INT_EQ(QH_CHAT_AUTO, chat.mode);
    /* rendering for auto needs the loaded model */
    const qt_chat_renderer *auto_renderer = qh_chat_renderer(&chat, &storage);
    char *prompt = NULL;
    CHECK(auto_renderer && auto_renderer->render(auto_renderer->state, NULL, "x", &prompt, &err) == QE_EINVAL);
    char model[600];
    snprintf(model, sizeof model, "%s/models/stories260K", shared);
    CHECK_INT_EQ(QE_EUNSUPPORTED, qh_chat_family(&chat, model, &family, &err));
    CHECK(family == NULL);
    CHECK(strstr(err.msg, model) && strstr(err.msg, "no chat template"));
}

int main(void)
{
    const char *shared = check_shared_dir();
    char path[600];
    if (!check_shared_path(path, sizeof path, "datasets/gsm8k/test.jsonl") ||
        !check_shared_path(path, sizeof path, "models/stories260K/tokenizer_config.json"))
        return check_summary();
    snprintf(data_dir, sizeof data_dir, "%s/datasets", shared);
    test_requests();
    test_option(shared);
    return check_summary();
}
