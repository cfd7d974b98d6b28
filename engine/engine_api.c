/* The lm-evaluation-harness operations of qeval_engine.h on top of the forward pass:
 * tokenizing and greedy generation until a stop string (loglikelihood: score.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"
#include "score.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static qe_status need_tokenizer(const qe_model *m, qe_error *err)
{
    if (!m->tokenizer)
        return qe_fail(err, QE_EUNSUPPORTED, "%s: no tokenizer.json, so text cannot be tokenized", m->path);
    return QE_OK;
}

qe_status qe_tokenize(const qe_model *m, const char *text, bool add_special, int32_t **ids, int *n_ids, qe_error *err)
{
    *ids = NULL;
    *n_ids = 0;
    qe_status rc = need_tokenizer(m, err);
    return rc ? rc : qe_tokenizer_encode(m->tokenizer, text, strlen(text), add_special, ids, n_ids, err);
}

qe_status qe_detokenize(const qe_model *m, const int32_t *ids, int n_ids, char **text, qe_error *err)
{
    *text = NULL;
    qe_status rc = need_tokenizer(m, err);
    return rc ? rc : qe_tokenizer_decode(m->tokenizer, ids, n_ids, text, err);
}

qe_status qe_forward_logits(qe_model *m, const int32_t *ids, int n_tokens, float *logits, qe_error *err)
{
    return qe_model_forward(m, ids, n_tokens, 0, 0, logits, NULL, NULL, err);
}

qe_status qe_forward_step(qe_model *m, const int32_t *ids, int n_tokens, int pos0, int max_batch, float *logits,
                          qe_error *err)
{
    if (max_batch < 0)
        return qe_fail(err, QE_EINVAL, "%s: batch of %d tokens", m->path, max_batch);
    m->max_batch = max_batch;
    qe_status rc = qe_model_forward(m, ids, n_tokens, pos0, n_tokens - 1, logits, NULL, NULL, err);
    m->max_batch = 0;
    return rc;
}

static int argmax(const float *row, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (row[i] > row[best])
            best = i;
    return best;
}

static bool is_eos(const qe_model *m, int id)
{
    for (int i = 0; i < m->cfg.n_eos; i++)
        if (m->cfg.eos_ids[i] == id)
            return true;
    return m->tokenizer && qe_tokenizer_eos_id(m->tokenizer) == id;
}

/* Runs ids[n] reusing the cached prefix, with the logits of rows [first_row, n). */
static qe_status forward_reusing_cache(qe_model *m, const int32_t *ids, int n, int first_row, float *logits,
                                       qe_error *err)
{
    /* logits are wanted from first_row; rows before it are recomputed only when not cached */
    int pos0 = qe_model_cached_prefix(m, ids, first_row < n ? first_row : n);
    return qe_model_forward(m, ids + pos0, n - pos0, pos0, first_row - pos0, logits, NULL, NULL, err);
}

qe_status qe_generate_ids(qe_model *m, const int32_t *prompt, int n_prompt, int max_new_tokens, int32_t **out_ids,
                          int *n_out, qe_generate_stats *stats, qe_error *err)
{
    *out_ids = NULL;
    *n_out = 0;
    qe_generate_stats unused;
    if (!stats)
        stats = &unused;
    memset(stats, 0, sizeof *stats);
    stats->n_prompt_tokens = n_prompt;
    if (n_prompt <= 0)
        return qe_fail(err, QE_EINVAL, "%s: generation needs at least one prompt token", m->path);
    if (max_new_tokens < 0 || n_prompt + max_new_tokens > m->max_context)
        return qe_fail(err, QE_EINVAL, "%s: %d prompt tokens + %d new tokens exceed the %d-token window", m->path,
                       n_prompt, max_new_tokens, m->max_context);
    int32_t *ids = malloc((size_t)(n_prompt + max_new_tokens) * sizeof *ids);
    float *logits = malloc((size_t)m->cfg.n_vocab * sizeof *logits);
    if (!ids || !logits) {
        free(ids);
        free(logits);
        return qe_fail(err, QE_ENOMEM, "%s: out of memory", m->path);
    }
    memcpy(ids, prompt, (size_t)n_prompt * sizeof *ids);
    int n = n_prompt, n_new = 0;
    qe_status rc = QE_OK;
    double t0 = now_ms();
    if (max_new_tokens > 0)
        rc = forward_reusing_cache(m, ids, n, n - 1, logits, err);
    double t1 = now_ms();
    while (rc == QE_OK && n_new < max_new_tokens) {
        int next = argmax(logits, m->cfg.n_vocab);
        ids[n++] = next;
        n_new++;
        if (is_eos(m, next)) {
            stats->hit_eos = true;
            break;
        }
        if (n_new == max_new_tokens)
            break;
        rc = qe_model_forward(m, &ids[n - 1], 1, n - 1, 0, logits, NULL, NULL, err);
    }
    stats->prefill_ms = t1 - t0;
    stats->decode_ms = now_ms() - t1;
    stats->n_generated_tokens = n_new;
    free(logits);
    if (rc != QE_OK) {
        free(ids);
        return rc;
    }
    memmove(ids, ids + n_prompt, (size_t)n_new * sizeof *ids);
    *out_ids = ids;
    *n_out = n_new;
    return QE_OK;
}

/* Cuts text at each stop string in turn, as Python's s.split(stop)[0]; true when one was found. */
static bool cut_at_stops(char *text, const char *const *stops, int n_stops)
{
    bool found = false;
    for (int i = 0; i < n_stops; i++) {
        if (!stops[i][0])
            continue;
        char *at = strstr(text, stops[i]);
        if (at) {
            *at = 0;
            found = true;
        }
    }
    return found;
}

/* lm-evaluation-harness decodes generated tokens with skip_special_tokens=True. */
static qe_status decode_generated(const qe_model *m, const int32_t *ids, int n, char **text, qe_error *err)
{
    *text = NULL;
    qe_status rc = need_tokenizer(m, err);
    return rc ? rc : qe_tokenizer_decode_ex(m->tokenizer, ids, n, true, text, err);
}

qe_status qe_generate_until(qe_model *m, const char *context, const char *const *stops, int n_stops,
                            int max_new_tokens, char **text, qe_generate_stats *stats, qe_error *err)
{
    *text = NULL;
    memset(stats, 0, sizeof *stats);
    if (max_new_tokens <= 0)
        return qe_fail(err, QE_EINVAL, "%s: max_new_tokens %d must be positive", m->path, max_new_tokens);
    /* lm-evaluation-harness reserves max_new_tokens of the window for the answer; a window too
     * small for that (a 512-token model asked for HumanEval's 1024) reserves half of itself
     * instead, as generation could never go past the window anyway. */
    if (max_new_tokens >= m->max_context)
        max_new_tokens = m->max_context / 2;
    int32_t *prompt = NULL, *ids = NULL;
    float *logits = NULL;
    char *decoded = NULL;
    int n_prompt = 0;
    qe_status rc = qe_tokenize(m, context, qe_lm_eval_adds_special(m), &prompt, &n_prompt, err);
    if (rc != QE_OK)
        return rc;
    /* the harness keeps the last (window - max_new_tokens) context tokens */
    int keep = m->max_context - max_new_tokens, skip = n_prompt > keep ? n_prompt - keep : 0;
    n_prompt -= skip;
    stats->was_truncated = skip > 0;
    stats->n_prompt_tokens = n_prompt;
    if (n_prompt == 0) {
        rc = qe_fail(err, QE_EINVAL, "%s: empty context", m->path);
        goto out;
    }
    ids = malloc((size_t)(n_prompt + max_new_tokens) * sizeof *ids);
    logits = malloc((size_t)m->cfg.n_vocab * sizeof *logits);
    if (!ids || !logits) {
        rc = qe_fail(err, QE_ENOMEM, "%s: out of memory", m->path);
        goto out;
    }
    memcpy(ids, prompt + skip, (size_t)n_prompt * sizeof *ids);
    double t0 = now_ms();
    if ((rc = forward_reusing_cache(m, ids, n_prompt, n_prompt - 1, logits, err)))
        goto out;
    double t1 = now_ms();
    stats->prefill_ms = t1 - t0;
    int n = n_prompt;
    for (;;) {
        int next = argmax(logits, m->cfg.n_vocab);
        if (is_eos(m, next)) {
            stats->hit_eos = true;
            stats->n_generated_tokens++;
            break;
        }
        ids[n++] = next;
        stats->n_generated_tokens++;
        free(decoded);
        decoded = NULL;
        if ((rc = decode_generated(m, ids + n_prompt, n - n_prompt, &decoded, err)))
            goto out;
        if (cut_at_stops(decoded, stops, n_stops)) {
            stats->hit_stop = true;
            break;
        }
        if (n - n_prompt == max_new_tokens)
            break;
        if ((rc = qe_model_forward(m, &ids[n - 1], 1, n - 1, 0, logits, NULL, NULL, err)))
            goto out;
    }
    stats->decode_ms = now_ms() - t1;
    if (!decoded && (rc = decode_generated(m, ids + n_prompt, n - n_prompt, &decoded, err)))
        goto out;
    *text = decoded;
    decoded = NULL;
out:
    free(prompt);
    free(ids);
    free(logits);
    free(decoded);
    return rc;
}
