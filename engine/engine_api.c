/* The lm-evaluation-harness operations of qeval_engine.h on top of the forward pass:
 * tokenizing, loglikelihood of a continuation, greedy generation until a stop string. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "model.h"

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

/* lm-evaluation-harness encodes without special tokens, except for Gemma models, for which
 * it forces add_bos_token=True. */
static bool lm_eval_adds_special(const qe_model *m) { return m->cfg.arch == QE_ARCH_GEMMA3; }

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
    int pos0 = qe_model_cached_prefix(m, ids, n);
    if (pos0 > first_row)
        pos0 = first_row;
    /* logits are wanted from first_row; rows before it are recomputed only when not cached */
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

/* Bytes of trailing whitespace as Python's str.rstrip() sees it (ASCII and the Unicode
 * White_Space code points). */
static size_t trailing_whitespace(const char *s, size_t len)
{
    static const char *const unicode_spaces[] = {
        "\xc2\x85", "\xc2\xa0", "\xe1\x9a\x80", "\xe2\x80\x80", "\xe2\x80\x81", "\xe2\x80\x82", "\xe2\x80\x83",
        "\xe2\x80\x84", "\xe2\x80\x85", "\xe2\x80\x86", "\xe2\x80\x87", "\xe2\x80\x88", "\xe2\x80\x89",
        "\xe2\x80\x8a", "\xe2\x80\xa8", "\xe2\x80\xa9", "\xe2\x80\xaf", "\xe2\x81\x9f", "\xe3\x80\x80",
    };
    size_t end = len;
    for (;;) {
        if (end > 0 && (strchr(" \t\n\r\v\f", s[end - 1]) && s[end - 1]))
            end--;
        else if (end > 0 && (unsigned char)s[end - 1] >= 0x1c && (unsigned char)s[end - 1] <= 0x1f)
            end--;
        else {
            size_t matched = 0;
            for (size_t i = 0; i < sizeof unicode_spaces / sizeof unicode_spaces[0] && !matched; i++) {
                size_t n = strlen(unicode_spaces[i]);
                if (end >= n && !memcmp(s + end - n, unicode_spaces[i], n))
                    matched = n;
            }
            if (!matched)
                break;
            end -= matched;
        }
    }
    return len - end;
}

/* The harness's prefix_token_id: what stands in for an empty context. -1 when none. */
static int prefix_token(const qe_model *m) { return m->info.bos_id >= 0 ? m->info.bos_id : m->info.eos_id; }

/* Context and continuation tokens as lm-evaluation-harness's _encode_pair makes them. */
static qe_status encode_pair(qe_model *m, const char *context, const char *continuation, int32_t **ctx_ids,
                             int *n_ctx, int32_t **cont_ids, int *n_cont, qe_error *err)
{
    bool special = lm_eval_adds_special(m);
    *ctx_ids = *cont_ids = NULL;
    qe_status rc;
    if (!context[0]) {
        /* empty context: the prefix token (BOS, else EOS) stands in for it */
        int prefix = prefix_token(m);
        if (prefix < 0)
            return qe_fail(err, QE_EINVAL, "%s: empty context and the model has neither BOS nor EOS", m->path);
        if ((rc = qe_tokenize(m, continuation, special, cont_ids, n_cont, err)))
            return rc;
        if (!(*ctx_ids = malloc(sizeof **ctx_ids)))
            return qe_fail(err, QE_ENOMEM, "%s: out of memory", m->path);
        (*ctx_ids)[0] = prefix;
        *n_ctx = 1;
        return QE_OK;
    }
    size_t ctx_len = strlen(context), cont_len = strlen(continuation);
    size_t n_spaces = trailing_whitespace(context, ctx_len);
    char *whole = malloc(ctx_len + cont_len + 1), *ctx = malloc(ctx_len + 1);
    int32_t *whole_ids = NULL;
    int n_whole = 0;
    if (!whole || !ctx) {
        rc = qe_fail(err, QE_ENOMEM, "%s: out of memory", m->path);
        goto out;
    }
    memcpy(whole, context, ctx_len);
    memcpy(whole + ctx_len, continuation, cont_len + 1);
    memcpy(ctx, context, ctx_len - n_spaces);
    ctx[ctx_len - n_spaces] = 0;
    if ((rc = qe_tokenize(m, whole, special, &whole_ids, &n_whole, err)) ||
        (rc = qe_tokenize(m, ctx, special, ctx_ids, n_ctx, err)))
        goto out;
    if (*n_ctx == 0) {
        /* a context of only whitespace leaves nothing to condition on (the harness asserts
         * here); the prefix token stands in, as for an empty context */
        int prefix = prefix_token(m);
        free(*ctx_ids);
        if (prefix < 0 || !(*ctx_ids = malloc(sizeof **ctx_ids))) {
            *ctx_ids = NULL;
            rc = qe_fail(err, QE_EINVAL, "%s: context is only whitespace and the model has no BOS/EOS", m->path);
            goto out;
        }
        (*ctx_ids)[0] = prefix;
        *n_ctx = 1;
        *n_cont = n_whole;
        if (!(*cont_ids = malloc((size_t)(n_whole ? n_whole : 1) * sizeof **cont_ids))) {
            rc = qe_fail(err, QE_ENOMEM, "%s: out of memory", m->path);
            goto out;
        }
        memcpy(*cont_ids, whole_ids, (size_t)n_whole * sizeof **cont_ids);
        goto out;
    }
    *n_cont = n_whole > *n_ctx ? n_whole - *n_ctx : 0;
    if (!(*cont_ids = malloc((size_t)(*n_cont ? *n_cont : 1) * sizeof **cont_ids))) {
        rc = qe_fail(err, QE_ENOMEM, "%s: out of memory", m->path);
        goto out;
    }
    memcpy(*cont_ids, whole_ids + *n_ctx, (size_t)*n_cont * sizeof **cont_ids);
out:
    free(whole);
    free(ctx);
    free(whole_ids);
    if (rc != QE_OK) {
        free(*ctx_ids);
        free(*cont_ids);
        *ctx_ids = *cont_ids = NULL;
    }
    return rc;
}

qe_status qe_loglikelihood(qe_model *m, const char *context, const char *continuation, bool keep_logprobs,
                           qe_loglik_result *result, qe_error *err)
{
    memset(result, 0, sizeof *result);
    double start_ms = now_ms();
    int32_t *ctx_ids = NULL, *cont_ids = NULL, *all = NULL;
    float *logits = NULL;
    int n_ctx = 0, n_cont = 0;
    qe_status rc = encode_pair(m, context, continuation, &ctx_ids, &n_ctx, &cont_ids, &n_cont, err);
    if (rc != QE_OK)
        return rc;
    if (n_cont == 0) {
        rc = qe_fail(err, QE_EINVAL, "%s: continuation \"%.40s\" has no tokens of its own", m->path, continuation);
        goto out;
    }
    if (n_cont > m->max_context) {
        rc = qe_fail(err, QE_EINVAL, "%s: continuation of %d tokens exceeds the %d-token window", m->path, n_cont,
                     m->max_context);
        goto out;
    }
    /* (context + continuation)[-(window + 1):][:-1]: the input the harness feeds the model */
    int n_all = n_ctx + n_cont, keep = n_all < m->max_context + 1 ? n_all : m->max_context + 1;
    int n_inp = keep - 1, skip = n_all - keep;
    all = malloc((size_t)n_all * sizeof *all);
    logits = malloc((size_t)n_cont * m->cfg.n_vocab * sizeof *logits);
    if (!all || !logits) {
        rc = qe_fail(err, QE_ENOMEM, "%s: out of memory for %d x %d logits", m->path, n_cont, m->cfg.n_vocab);
        goto out;
    }
    memcpy(all, ctx_ids, (size_t)n_ctx * sizeof *all);
    memcpy(all + n_ctx, cont_ids, (size_t)n_cont * sizeof *all);
    const int32_t *inp = all + skip;
    if ((rc = forward_reusing_cache(m, inp, n_inp, n_inp - n_cont, logits, err)))
        goto out;
    result->is_greedy = true;
    int n_vocab = m->cfg.n_vocab;
    for (int i = 0; i < n_cont; i++) {
        float *row = logits + (size_t)i * n_vocab;
        float max_logit = row[argmax(row, n_vocab)];
        double sum = 0;
        for (int j = 0; j < n_vocab; j++)
            sum += exp((double)row[j] - max_logit);
        double log_z = max_logit + log(sum);
        result->logprob_sum += row[cont_ids[i]] - log_z;
        if (argmax(row, n_vocab) != cont_ids[i])
            result->is_greedy = false;
        if (keep_logprobs)
            for (int j = 0; j < n_vocab; j++)
                row[j] = (float)(row[j] - log_z);
    }
    result->n_context_tokens = n_inp - n_cont + 1;
    result->n_continuation_tokens = n_cont;
    result->was_truncated = skip > 0;
    if (keep_logprobs) {
        result->logprobs = logits;
        logits = NULL;
    }
out:
    result->elapsed_ms = now_ms() - start_ms;
    free(ctx_ids);
    free(cont_ids);
    free(all);
    free(logits);
    return rc;
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
    qe_status rc = qe_tokenize(m, context, lm_eval_adds_special(m), &prompt, &n_prompt, err);
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
