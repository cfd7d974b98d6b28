/* qeval bench MODEL [--variants fp32,bf16,...] [--prompt-tokens N] [--gen-tokens N] [--threads N] [--device D]
 * qeval bench MODEL --scoring [--docs N] [--context-tokens N] [--variants ...] [--threads N] [--device D]
 * Prefill and decode speed of each variant on a synthetic prompt (token ids spread over the
 * vocabulary), after one small warm-up run; or, with --scoring, how many MMLU-shaped documents
 * (a 5-shot context, four one-token answers " A" ... " D") a variant scores per second. A
 * measurement, not a test. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "model_cache.h"
#include "qeval_engine.h"

#define MAX_VARIANTS 8

typedef struct {
    char name[16];
    double prefill_tok_s, decode_tok_s;
    double docs_per_s, mean_context_tokens; /* --scoring */
} bench_result;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static qe_status bench_one(const char *path, const qe_load_options *options, int n_prompt, int n_gen,
                           bench_result *out, qe_error *err)
{
    qe_model *model = NULL;
    qe_status rc = qh_model_open(path, options, &model, err);
    if (rc != QE_OK)
        return rc;
    qe_model_info info;
    qe_model_get_info(model, &info);
    if (n_prompt + n_gen > info.max_context) {
        qe_model_free(model);
        return qe_fail(err, QE_EINVAL, "%s: %d prompt + %d generated tokens exceed the %d-token window", path,
                       n_prompt, n_gen, info.max_context);
    }
    int32_t *prompt = malloc((size_t)n_prompt * sizeof *prompt), *ids = NULL;
    int n_out = 0;
    qe_generate_stats stats;
    for (int i = 0; i < n_prompt; i++)
        prompt[i] = (int32_t)((7919u * (unsigned)i + 3u) % (unsigned)info.n_vocab);
    /* warm-up on a different first token so the measured run finds nothing cached */
    int32_t warm[2] = {(prompt[0] + 1) % info.n_vocab, prompt[0]};
    rc = qe_generate_ids(model, warm, 2, 2, &ids, &n_out, NULL, err);
    free(ids);
    ids = NULL;
    if (rc == QE_OK)
        rc = qe_generate_ids(model, prompt, n_prompt, n_gen, &ids, &n_out, &stats, err);
    if (rc == QE_OK) {
        snprintf(out->name, sizeof out->name, "%s", qe_variant_name(&options->variant));
        out->prefill_tok_s = n_prompt / (stats.prefill_ms / 1e3);
        /* the first new token comes from the prefill; the rest from decode steps */
        out->decode_tok_s = n_out > 1 ? (n_out - 1) / (stats.decode_ms / 1e3) : 0;
    }
    free(ids);
    free(prompt);
    qe_model_free(model);
    return rc;
}

/* ---- --scoring: MMLU-shaped documents ----------------------------------------------------- */

#define SCORING_SHOTS 5

static uint32_t next_random(uint64_t *state)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*state >> 33);
}

/* Appends n pseudo-words (two or three syllables each) to text at *len; the caller sized text. */
static void append_words(char *text, size_t *len, int n, uint64_t *state)
{
    static const char *const syllables[] = {"ka", "lo", "mi", "ne", "ru", "ta", "si", "vo",
                                            "pe", "du", "gar", "ben", "tos", "ril", "mun", "ex"};
    for (int w = 0; w < n; w++) {
        if (w > 0)
            text[(*len)++] = ' ';
        for (int k = 2 + next_random(state) % 2; k > 0; k--)
            *len += (size_t)sprintf(text + *len, "%s", syllables[next_random(state) % 16]);
    }
}

/* Document doc: a header, five answered questions and an open one ending in "Answer:", with
 * words_per_question words per question (a sixth of that per option). Every document differs
 * from its first word on, so no document reuses another's cached keys and values. malloc'd. */
static char *scoring_context(unsigned doc, int words_per_question)
{
    int words_per_option = words_per_question / 6 > 0 ? words_per_question / 6 : 1;
    size_t cap = (size_t)(SCORING_SHOTS + 1) * (words_per_question + 4 * words_per_option) * 8 + 1024;
    char *text = malloc(cap);
    if (!text)
        return NULL;
    uint64_t state = 0x9e3779b97f4a7c15ull * (doc + 1);
    size_t len = 0;
    append_words(text, &len, 2, &state);
    len += (size_t)sprintf(text + len, ": the following are multiple choice questions (with answers) about ");
    append_words(text, &len, 2, &state);
    len += (size_t)sprintf(text + len, ".\n\n");
    for (int q = 0; q <= SCORING_SHOTS; q++) {
        append_words(text, &len, words_per_question, &state);
        text[len++] = '?';
        for (int option = 0; option < 4; option++) {
            len += (size_t)sprintf(text + len, "\n%c. ", "ABCD"[option]);
            append_words(text, &len, words_per_option, &state);
        }
        len += (size_t)sprintf(text + len, "\nAnswer:");
        if (q < SCORING_SHOTS)
            len += (size_t)sprintf(text + len, " %c\n\n", "ABCD"[next_random(&state) % 4]);
    }
    text[len] = 0;
    return text;
}

static qe_status context_tokens(qe_model *model, int words_per_question, int *n_tokens, qe_error *err)
{
    char *text = scoring_context(0xffffu, words_per_question);
    int32_t *ids = NULL;
    qe_status rc = text ? qe_tokenize(model, text, false, &ids, n_tokens, err) : qe_fail(err, QE_ENOMEM, "out of memory");
    free(text);
    free(ids);
    return rc;
}

/* The words per question that give contexts of about n_tokens tokens: the line through two
 * probes of a document the benchmark does not score. */
static qe_status calibrate_words(qe_model *model, int n_tokens, int *words_per_question, qe_error *err)
{
    const int few_words = 10, many_words = 60;
    int few_tokens = 0, many_tokens = 0;
    qe_status rc = context_tokens(model, few_words, &few_tokens, err);
    if (rc == QE_OK)
        rc = context_tokens(model, many_words, &many_tokens, err);
    if (rc != QE_OK)
        return rc;
    double tokens_per_word = (double)(many_tokens - few_tokens) / (many_words - few_words);
    double words = few_words + (n_tokens - few_tokens) / (tokens_per_word > 0 ? tokens_per_word : 1);
    *words_per_question = words < 1 ? 1 : (int)(words + 0.5);
    return QE_OK;
}

static const char *const scoring_answers[4] = {" A", " B", " C", " D"};

/* Scores the four answers of every document in one call, as the harness submits a block. */
static qe_status score_documents(qe_model *model, char *const *contexts, int n_docs, qe_error *err)
{
    int n = 4 * n_docs;
    qe_score_request *requests = malloc((size_t)n * sizeof *requests);
    qe_score_result *results = malloc((size_t)n * sizeof *results);
    if (!requests || !results) {
        free(requests);
        free(results);
        return qe_fail(err, QE_ENOMEM, "out of memory");
    }
    for (int i = 0; i < n; i++)
        requests[i] = (qe_score_request){contexts[i / 4], scoring_answers[i % 4], false};
    qe_status rc = qe_score_batch(model, requests, n, results, err);
    for (int i = 0; rc == QE_OK && i < n; i++)
        qe_score_result_clear(&results[i]);
    free(requests);
    free(results);
    return rc;
}

static qe_status bench_scoring(const char *path, const qe_load_options *options, int n_docs, int n_context_tokens,
                               bench_result *out, qe_error *err)
{
    qe_model *model = NULL;
    qe_status rc = qh_model_open(path, options, &model, err);
    if (rc != QE_OK)
        return rc;
    char **contexts = calloc((size_t)n_docs + 1, sizeof *contexts);
    int words = 0;
    if (!contexts)
        rc = qe_fail(err, QE_ENOMEM, "out of memory");
    if (rc == QE_OK)
        rc = calibrate_words(model, n_context_tokens, &words, err);
    /* contexts[n_docs] is the warm-up document, scored before the clock starts */
    int64_t total_tokens = 0;
    for (int d = 0; d <= n_docs && rc == QE_OK; d++) {
        int32_t *ids = NULL;
        int n_ids = 0;
        if (!(contexts[d] = scoring_context((unsigned)d, words)))
            rc = qe_fail(err, QE_ENOMEM, "out of memory");
        else if ((rc = qe_tokenize(model, contexts[d], false, &ids, &n_ids, err)) == QE_OK && d < n_docs)
            total_tokens += n_ids;
        free(ids);
    }
    if (rc == QE_OK)
        rc = score_documents(model, contexts + n_docs, 1, err);
    double start_ms = now_ms();
    if (rc == QE_OK)
        rc = score_documents(model, contexts, n_docs, err);
    double elapsed_ms = now_ms() - start_ms;
    if (rc == QE_OK) {
        snprintf(out->name, sizeof out->name, "%s", qe_variant_name(&options->variant));
        out->docs_per_s = n_docs / (elapsed_ms / 1e3);
        out->mean_context_tokens = (double)total_tokens / n_docs;
    }
    for (int d = 0; contexts && d <= n_docs; d++)
        free(contexts[d]);
    free(contexts);
    qe_model_free(model);
    return rc;
}

int qh_cmd_bench(int argc, char **argv)
{
    const char *path = NULL;
    char variants[256] = "fp32";
    int n_prompt = 128, n_gen = 32, n_threads = 0, n_docs = 20, n_context_tokens = 600, device_index = 0;
    qe_device_kind device = qe_default_device();
    bool is_scoring = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: qeval bench MODEL [--variants fp32,bf16,...] [--prompt-tokens N] [--gen-tokens N] "
                   "[--threads N] [--device cpu|cuda|cuda:N]\n"
                   "       qeval bench MODEL --scoring [--docs N] [--context-tokens N] [--variants ...] "
                   "[--threads N] [--device D]\n"
                   "  --scoring           documents/s on MMLU-shaped documents: a 5-shot context of about\n"
                   "                      --context-tokens tokens (default 600), four answers \" A\" ... \" D\",\n"
                   "                      --docs distinct documents (default 20)\n");
            return QH_EXIT_OK;
        } else if (!strcmp(argv[i], "--variants") && i + 1 < argc)
            snprintf(variants, sizeof variants, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--prompt-tokens") && i + 1 < argc)
            n_prompt = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--gen-tokens") && i + 1 < argc)
            n_gen = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            n_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--scoring"))
            is_scoring = true;
        else if (!strcmp(argv[i], "--docs") && i + 1 < argc)
            n_docs = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--context-tokens") && i + 1 < argc)
            n_context_tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--device") && i + 1 < argc) {
            if (!qh_parse_device(argv[++i], &device, &device_index))
                return qh_usage_error("bench", "--device must be cpu, cuda or cuda:N, not '%s'", argv[i]);
        } else if (argv[i][0] != '-' && !path)
            path = argv[i];
        else
            return qh_usage_error("bench", "unexpected argument '%s'", argv[i]);
    }
    if (!path)
        return qh_usage_error("bench", "a MODEL directory is required");
    if (n_prompt < 1 || n_gen < 2)
        return qh_usage_error("bench", "--prompt-tokens must be >= 1 and --gen-tokens >= 2");
    if (n_docs < 1 || n_context_tokens < 16)
        return qh_usage_error("bench", "--docs must be >= 1 and --context-tokens >= 16");
    bench_result results[MAX_VARIANTS];
    int n_results = 0;
    qe_error err = {0};
    if (is_scoring)
        printf("%-10s %14s %14s\n", "variant", "context tok", "docs/s");
    else
        printf("%-10s %14s %14s\n", "variant", "prefill tok/s", "decode tok/s");
    for (char *save = NULL, *name = strtok_r(variants, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        if (n_results == MAX_VARIANTS)
            return qh_usage_error("bench", "at most %d variants", MAX_VARIANTS);
        qe_load_options options = {.device = device, .device_index = device_index, .n_threads = n_threads};
        bench_result *r = &results[n_results];
        if (qe_variant_parse(name, &options.variant, &err) ||
            (is_scoring ? bench_scoring(path, &options, n_docs, n_context_tokens, r, &err)
                        : bench_one(path, &options, n_prompt, n_gen, r, &err)))
            return qh_report_error(&err);
        if (is_scoring)
            printf("%-10s %14.0f %14.2f\n", r->name, r->mean_context_tokens, r->docs_per_s);
        else
            printf("%-10s %14.1f %14.1f\n", r->name, r->prefill_tok_s, r->decode_tok_s);
        fflush(stdout);
        n_results++;
    }
    for (int i = 1; i < n_results; i++) {
        if (is_scoring)
            printf("%s/%s: scoring x%.2f\n", results[i].name, results[0].name,
                   results[i].docs_per_s / results[0].docs_per_s);
        else
            printf("%s/%s: prefill x%.2f, decode x%.2f\n", results[i].name, results[0].name,
                   results[i].prefill_tok_s / results[0].prefill_tok_s,
                   results[i].decode_tok_s / results[0].decode_tok_s);
    }
    return QH_EXIT_OK;
}
