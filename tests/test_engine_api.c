/* The lm-evaluation-harness operations on stories260K, against its golden logits:
 * loglikelihood with an empty context (the harness puts BOS in front, so the golden sequence
 * "Once upon a time" applies), is_greedy, kept log-softmax rows, the trailing-space rule,
 * generate_until's stop strings, and batched generation against one request at a time. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model.h"
#include "qeval_engine.h"
#include "safetensors.h"

int main(void)
{
    char model_dir[1024], golden_path[1100];
    if (!check_shared_path(golden_path, sizeof golden_path, "models/stories260K/golden.safetensors"))
        return check_summary();
    snprintf(model_dir, sizeof model_dir, "%s/models/stories260K", check_shared_dir());
    qe_error err = {0};
    qe_variant v;
    CHECK_INT_EQ(QE_EINVAL, qe_variant_parse("int4", &v, &err));
    CHECK_STR_EQ("unknown variant 'int4' (valid: fp32, bf16, int8, nf4, nf4-nodq)", err.msg);
    CHECK_INT_EQ(QE_OK, qe_variant_parse("nf4-nodq", &v, &err));
    CHECK(v.kind == QE_VARIANT_NF4 && !v.nf4_double_quant && v.nf4_block_size == 64);
    CHECK_STR_EQ("nf4-nodq", qe_variant_name(&v));

    qe_model *m = NULL;
    qe_safetensors *golden = NULL;
    qe_load_options opt = {.variant = {.kind = QE_VARIANT_FP32}, .n_threads = 2};
    if (qe_model_load(model_dir, &opt, &m, &err) != QE_OK || qe_safetensors_open(golden_path, &golden, &err) != QE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int32_t *ids = NULL;
    int n_ids = 0;
    if (qe_tokenize(m, "Once upon a time", false, &ids, &n_ids, &err) == QE_EUNSUPPORTED) {
        fprintf(stderr, "skipped: %s\n", err.msg);
        qe_model_free(m);
        qe_safetensors_close(golden);
        return 77;
    }
    /* golden seq0 = BOS + "Once upon a time" = [1, 403, 407, 261, 378] */
    const int32_t want_ids[4] = {403, 407, 261, 378};
    CHECK_INT_EQ(4, n_ids);
    CHECK(n_ids == 4 && !memcmp(ids, want_ids, sizeof want_ids));
    free(ids);

    const qe_tensor_view *ref = qe_safetensors_find(golden, "seq0.logits");
    float *logits = malloc(ref->n_bytes);
    memcpy(logits, ref->data, ref->n_bytes);
    double want_sum = 0;
    float want_rows[4][512];
    for (int t = 0; t < 4; t++) {
        const float *row = logits + t * 512;
        double max = row[0], z = 0;
        for (int v = 1; v < 512; v++)
            max = row[v] > max ? row[v] : max;
        for (int v = 0; v < 512; v++)
            z += exp(row[v] - max);
        for (int v = 0; v < 512; v++)
            want_rows[t][v] = (float)(row[v] - max - log(z));
        want_sum += want_rows[t][want_ids[t]];
    }
    free(logits);

    qe_score_result r;
    CHECK_INT_EQ(QE_OK, qe_score_batch(m, &(qe_score_request){"", "Once upon a time", true}, 1, &r, &err));
    CHECK_NEAR(want_sum, r.logprob_sum, 1e-4);
    CHECK(r.is_greedy); /* golden argmax of seq0 is 403 407 261 378 */
    CHECK_INT_EQ(1, r.n_context_tokens);
    CHECK_INT_EQ(4, r.n_continuation_tokens);
    CHECK(!r.was_truncated);
    CHECK(r.logprobs != NULL);
    if (r.logprobs)
        CHECK_CLOSE(&want_rows[0][0], r.logprobs, 4 * 512, 1e-4);
    qe_score_result_clear(&r);

    /* the trailing space of the context moves to the continuation: both splits score the
     * same tokens given the same prefix */
    qe_score_result a, b;
    /* (the second call reuses the cached prefix, so its rows come from a different batch shape) */
    CHECK_INT_EQ(QE_OK, qe_score_batch(m, &(qe_score_request){"Lily and Tom went to the", " park", false}, 1, &a, &err));
    CHECK_INT_EQ(QE_OK, qe_score_batch(m, &(qe_score_request){"Lily and Tom went to the ", "park", false}, 1, &b, &err));
    CHECK_NEAR(a.logprob_sum, b.logprob_sum, 1e-5);
    CHECK_INT_EQ(a.n_continuation_tokens, b.n_continuation_tokens);
    CHECK(a.logprob_sum < 0);
    qe_score_result_clear(&a);
    qe_score_result_clear(&b);

    /* generation stops at the first stop string, which is cut off */
    const char *stops[] = {"."};
    char *text = NULL;
    qe_generate_stats stats;
    CHECK_INT_EQ(QE_OK, qe_generate_until(m, "Once upon a time", stops, 1, 64, &text, &stats, &err));
    CHECK(text && !strchr(text, '.'));
    CHECK(stats.hit_stop);
    CHECK(stats.n_generated_tokens > 0 && stats.n_generated_tokens < 64);
    free(text);

    /* more new tokens than the window holds (HumanEval's 1024 on a 512-token model): half the
     * window is kept for the answer, the context is cut from the left to the other half */
    qe_model_info info;
    qe_model_get_info(m, &info);
    char *long_context = malloc(4000);
    for (int i = 0; i < 3999; i++)
        long_context[i] = "Once upon a time "[i % 17];
    long_context[3999] = 0;
    text = NULL;
    CHECK_INT_EQ(QE_OK, qe_generate_until(m, long_context, NULL, 0, 1024, &text, &stats, &err));
    CHECK(stats.was_truncated);
    CHECK_INT_EQ(info.max_context / 2, stats.n_prompt_tokens);
    CHECK(stats.n_generated_tokens > 0 && stats.n_generated_tokens <= info.max_context / 2);
    free(text);
    CHECK_INT_EQ(QE_EINVAL, qe_generate_until(m, "Zoo", NULL, 0, 0, &text, &stats, &err));

    /* qe_generate_until_batch: each request's text and stats are those it gets alone (stops,
     * EOS, budgets of 3 to 1024 tokens, a context cut from the left), in a first batch, in a
     * second that resumes each cache's prefix and in two slots; a bad request fails the batch
     * and keeps no text */
    const char *stop_and[] = {" and", "\n"};
    enum { N_BATCH = 5 };
    qe_generate_request batch[N_BATCH] = {{"Once upon a time", stops, 1, 64}, {"Lily and Tom", stop_and, 2, 40},
                                          {"The cat", NULL, 0, 12}, {long_context, NULL, 0, 1024},
                                          {"Zoo", stops, 1, 3}};
    char *alone[N_BATCH], *together[N_BATCH];
    qe_generate_stats alone_stats[N_BATCH], together_stats[N_BATCH];
    for (int i = 0; i < N_BATCH; i++)
        CHECK_INT_EQ(QE_OK, qe_generate_until(m, batch[i].context, batch[i].stops, batch[i].n_stops,
                                              batch[i].max_new_tokens, &alone[i], &alone_stats[i], &err));
    for (int round = 0; round < 3; round++) {
        if (round == 2) /* passes of at most 2 sequences: two slots, each refilled as its request ends
                         * (stories260K has no sliding-window ring that the chunk sizes) */
            m->chunk_tokens = 2;
        CHECK_INT_EQ(QE_OK, qe_generate_until_batch(m, batch, N_BATCH, together, together_stats, &err));
        for (int i = 0; i < N_BATCH; i++) {
            CHECK_STR_EQ(alone[i], together[i]);
            CHECK_INT_EQ(alone_stats[i].n_prompt_tokens, together_stats[i].n_prompt_tokens);
            CHECK_INT_EQ(alone_stats[i].n_generated_tokens, together_stats[i].n_generated_tokens);
            CHECK(alone_stats[i].hit_stop == together_stats[i].hit_stop &&
                  alone_stats[i].hit_eos == together_stats[i].hit_eos &&
                  alone_stats[i].was_truncated == together_stats[i].was_truncated);
            free(together[i]);
        }
    }
    CHECK(alone_stats[0].hit_stop && alone_stats[3].was_truncated && alone_stats[4].n_generated_tokens <= 3);
    CHECK_INT_EQ(N_BATCH, qe_model_sequence_caches(m));
    batch[2].max_new_tokens = 0;
    CHECK_INT_EQ(QE_EINVAL, qe_generate_until_batch(m, batch, N_BATCH, together, together_stats, &err));
    for (int i = 0; i < N_BATCH; i++) {
        CHECK(together[i] == NULL);
        free(alone[i]);
    }
    CHECK_INT_EQ(QE_EINVAL, qe_generate_until_batch(m, batch, 0, together, together_stats, &err));
    free(long_context);

    qe_model_free(m);
    qe_safetensors_close(golden);
    return check_summary();
}
