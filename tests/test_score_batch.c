/* qe_score_batch on stories260K in all four variants: a batch of mixed requests (contexts shared
 * by several continuations, one- and multi-token continuations, a duplicate, an empty and a
 * whitespace-only context, a trailing space, contexts cut from the left to the 48-token window,
 * documents with one-token answers after a common prefix, which run packed)
 * gives, bit for bit, the numbers of the lm-evaluation-harness definition computed here
 * request by request from one uncached forward pass over the request's tokens (qe_forward_logits)
 * with a plain double log-softmax; and the same numbers as each request scored alone (a batch of one).
 * A batch of many requests, whose strings are tokenized on several threads, gives the same, and
 * its first bad request is the one the error names. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "qeval_engine.h"

#define WINDOW 48

typedef struct {
    int32_t tokens[256];       /* (context + continuation)[-(WINDOW + 1):] */
    int n_tokens, n_cont;
    bool was_truncated;
} plain_tokens;

/* lm-eval's _encode_pair for the ASCII contexts of this test, then the window cut. */
static void plain_encode(qe_model *m, const char *context, const char *continuation, plain_tokens *out)
{
    qe_model_info info;
    qe_model_get_info(m, &info);
    qe_error err;
    int32_t all[512], *ids = NULL;
    int n_all = 0, n_ids = 0;
    size_t len = strlen(context);
    while (len > 0 && context[len - 1] == ' ')
        len--;
    char stripped[512], whole[1024];
    snprintf(stripped, sizeof stripped, "%.*s", (int)len, context);
    snprintf(whole, sizeof whole, "%s%s", context, continuation);
    if (len > 0)
        qe_tokenize(m, stripped, false, &ids, &n_ids, &err);
    if (n_ids == 0) { /* empty or blank context: BOS stands in */
        all[n_all++] = info.bos_id;
        free(ids);
        qe_tokenize(m, context[0] ? whole : continuation, false, &ids, &n_ids, &err);
        memcpy(all + n_all, ids, (size_t)n_ids * sizeof *ids);
        out->n_cont = n_ids;
        n_all += n_ids;
    } else {
        int n_ctx = n_ids;
        free(ids);
        qe_tokenize(m, whole, false, &ids, &n_ids, &err);
        memcpy(all, ids, (size_t)n_ids * sizeof *ids);
        out->n_cont = n_ids - n_ctx;
        n_all = n_ids;
    }
    free(ids);
    int keep = n_all < WINDOW + 1 ? n_all : WINDOW + 1;
    memcpy(out->tokens, all + n_all - keep, (size_t)keep * sizeof *all);
    out->n_tokens = keep;
    out->was_truncated = keep < n_all;
}

/* The request's numbers from the logits of one fresh pass over its input. */
static void check_against_plain(qe_model *m, const qe_score_request *request, const qe_score_result *got)
{
    qe_model_info info;
    qe_model_get_info(m, &info);
    int n_vocab = info.n_vocab;
    plain_tokens t;
    plain_encode(m, request->context, request->continuation, &t);
    int n_inp = t.n_tokens - 1;
    float *logits = malloc((size_t)n_inp * n_vocab * sizeof *logits);
    qe_error err;
    CHECK_INT_EQ(QE_OK, qe_forward_logits(m, t.tokens, n_inp, logits, &err));
    CHECK_INT_EQ(t.n_cont, got->n_continuation_tokens);
    CHECK_INT_EQ(t.n_tokens - t.n_cont, got->n_context_tokens);
    CHECK_INT_EQ(t.was_truncated, got->was_truncated);
    double want_sum = 0;
    bool want_greedy = true;
    for (int i = 0; i < t.n_cont && i < got->n_continuation_tokens; i++) {
        const float *row = logits + (size_t)(n_inp - t.n_cont + i) * n_vocab;
        int target = t.tokens[t.n_tokens - t.n_cont + i], best = -1;
        double log_z = qe_log_sum_exp_f32(row, (size_t)n_vocab, &best); /* the engine's one definition */
        want_sum += row[target] - log_z;
        want_greedy &= best == target;
        CHECK_INT_EQ(best, got->argmax[i]);
        CHECK(got->target_logprob[i] == (float)(row[target] - log_z));
        if (request->want_logprobs) {
            int n_bad = 0;
            for (int j = 0; j < n_vocab; j++)
                n_bad += got->logprobs[(size_t)i * n_vocab + j] != (float)(row[j] - log_z);
            CHECK_INT_EQ(0, n_bad);
        }
    }
    if (got->logprob_sum != want_sum)
        fprintf(stderr, "\"%s\" + \"%s\": logprob_sum %.17g, want %.17g\n", request->context, request->continuation,
                got->logprob_sum, want_sum);
    CHECK(got->logprob_sum == want_sum);
    CHECK_INT_EQ(want_greedy, got->is_greedy);
    CHECK_INT_EQ(request->want_logprobs, got->logprobs != NULL);
    free(logits);
}

/* 96 documents of two continuations each (enough for the tokenizing threads), against the
 * definition; then two bad requests, of which the error names the first. */
static void check_many(qe_model *m)
{
    enum { N_DOCS = 96, N = 2 * N_DOCS };
    static char contexts[N_DOCS][96];
    static qe_score_request requests[N];
    static qe_score_result results[N];
    const char *names[] = {"Lily", "Tom", "Sue", "Ben"}, *things[] = {"ball", "cat", "tree", "boat", "cake"};
    for (int d = 0; d < N_DOCS; d++) {
        snprintf(contexts[d], sizeof contexts[d], "%s saw %d %ss near the %s. Then %s", names[d % 4], d + 2,
                 things[d % 5], things[(d / 5) % 5], names[(d + 1) % 4]);
        requests[2 * d] = (qe_score_request){contexts[d], " ran", false};
        requests[2 * d + 1] = (qe_score_request){contexts[d], " smiled at the dog", d % 7 == 0};
    }
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qe_score_batch(m, requests, N, results, &err));
    for (int i = 0; i < N; i++) {
        check_against_plain(m, &requests[i], &results[i]);
        qe_score_result_clear(&results[i]);
    }
    requests[131].continuation = "";
    requests[77].continuation = "";
    CHECK_INT_EQ(QE_EINVAL, qe_score_batch(m, requests, N, results, &err));
    CHECK(strstr(err.msg, "request 77") != NULL && strstr(err.msg, "request 131") == NULL);
}

int main(void)
{
    char model_dir[1024];
    if (!check_shared_path(model_dir, sizeof model_dir, "models/stories260K/tokenizer.json"))
        return check_summary();
    *strrchr(model_dir, '/') = 0;
    char long_context[600] = "";
    for (int i = 0; i < 20; i++)
        strcat(long_context, i % 2 ? "the dog ran to the park. " : "Once upon a time, ");
    strcat(long_context, "Lily saw");
    const char *ctx_girl = "Once upon a time there was a little girl";
    const char *ctx_park = "Lily and Tom went to the";
    const qe_score_request requests[] = {
        {ctx_park, " park and played with a ball", false},
        {ctx_girl, " named", true},
        {long_context, " a big red ball", true},
        {"", "Once upon a time", false},
        {ctx_girl, " who loved to play", true},
        {ctx_park, " park", false},
        {"Lily and Tom went to the ", "park", false},
        {long_context, " a", false},
        {ctx_girl, " named", false},
        {"   ", "The cat sat", true},
        {ctx_park, " store", true},
        {ctx_girl, " called Lily", false},
        {long_context, " the", false},
        /* documents sharing a prefix, one-token answers: scored as segments of packed passes */
        {"Once upon a time, the dog ran to the park. Lily saw a cat. Then", " she", false},
        {"Once upon a time, the dog ran to the park. Tom had a red ball. Then", " he", false},
        {"Once upon a time, the dog ran to the park. Lily saw a cat. Then", " they", false},
        {"Once upon a time, the dog ran to the park. The sun was hot. Then", " it", true},
        {"Once upon a time, the dog ran to the park. Tom had a red ball. Then", " they", false},
        {"Once upon a time, the dog ran to the park. Lily and Tom were happy. Then", " she", false},
    };
    const int n = (int)(sizeof requests / sizeof requests[0]);
    const char *variants[] = {"fp32", "bf16", "int8", "nf4"};
    for (int v = 0; v < 4; v++) {
        qe_error err = {0};
        qe_load_options options = {.n_threads = 2, .max_context = WINDOW};
        qe_model *m = NULL;
        if (qe_variant_parse(variants[v], &options.variant, &err) != QE_OK ||
            qe_model_load(model_dir, &options, &m, &err) != QE_OK) {
            fprintf(stderr, "%s\n", err.msg);
            return 1;
        }
        qe_score_result results[sizeof requests / sizeof requests[0]];
        CHECK_INT_EQ(QE_OK, qe_score_batch(m, requests, n, results, &err));
        bool was_truncated[3] = {results[2].was_truncated, results[7].was_truncated, results[12].was_truncated};
        CHECK(was_truncated[0] && was_truncated[1] && was_truncated[2]);
        CHECK(results[2].n_continuation_tokens > 1 && results[4].n_continuation_tokens > 1 &&
              results[1].n_continuation_tokens == 1);
        double total_ms = 0;
        for (int i = 0; i < n; i++) {
            check_against_plain(m, &requests[i], &results[i]);
            total_ms += results[i].elapsed_ms;
            /* one at a time, the cache holding whatever the previous request left */
            qe_score_result one;
            CHECK_INT_EQ(QE_OK, qe_score_batch(m, &requests[i], 1, &one, &err));
            CHECK(one.logprob_sum == results[i].logprob_sum);
            CHECK_INT_EQ(results[i].is_greedy, one.is_greedy);
            CHECK_INT_EQ(results[i].n_context_tokens, one.n_context_tokens);
            if (one.logprobs && results[i].logprobs)
                CHECK(!memcmp(one.logprobs, results[i].logprobs,
                              (size_t)one.n_continuation_tokens * 512 * sizeof(float)));
            qe_score_result_clear(&one);
        }
        CHECK(total_ms > 0);
        /* a duplicate request gets the same numbers */
        CHECK(results[1].logprob_sum == results[8].logprob_sum && results[1].argmax[0] == results[8].argmax[0]);
        for (int i = 0; i < n; i++)
            qe_score_result_clear(&results[i]);
        CHECK(results[0].argmax == NULL && results[0].logprobs == NULL);

        /* a continuation with no tokens of its own fails the batch, naming the request */
        const qe_score_request bad[] = {{ctx_park, " park", false}, {ctx_park, "", false}};
        CHECK_INT_EQ(QE_EINVAL, qe_score_batch(m, bad, 2, results, &err));
        CHECK(strstr(err.msg, "request 1") != NULL);
        CHECK(results[0].argmax == NULL);
        CHECK_INT_EQ(QE_OK, qe_score_batch(m, bad, 0, results, &err));
        check_many(m);
        qe_model_free(m);
    }
    return check_summary();
}
