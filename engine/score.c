/* score — lm-evaluation-harness loglikelihood requests, many per call (qe_score_batch).
 *
 * A request's tokens are lm-eval's: context + continuation tokenized as whole strings, cut from
 * the left to the window + 1, the last token dropped from the input. Its "prefix" is the input
 * up to and including the row that predicts the first continuation token. Requests with equal
 * prefix tokens form a group: the prefix runs once (after whatever the KV cache already holds)
 * and its last row gives every continuation's first token; the rest of a longer continuation
 * runs after the cached prefix. Groups run in token order (a depth-first walk of the token
 * trie), so the one KV cache recomputes as little as possible. Consecutive groups whose
 * continuations are all one token (MMLU's " A") need only their prefix's last row: those that
 * share a long common prefix run as the segments of one packed pass after it
 * (qe_model_forward_packed), many documents per pass instead of one. The forward pass gives the
 * same bits for a token alone or in a batch, packed or not, so every number equals that of the
 * request alone. */
#include "score.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "logprob.h"
#include "parallel.h"

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

bool qe_lm_eval_adds_special(const qe_model *m) { return m->cfg.arch == QE_ARCH_GEMMA3; }

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

/* How a context string is tokenized (lm-eval's _encode_pair, context half). */
typedef enum {
    CONTEXT_TEXT,              /* ids: the context without its trailing whitespace          */
    CONTEXT_EMPTY,             /* "": ids = [prefix token]; the continuation is tokenized alone */
    CONTEXT_BLANK,             /* only whitespace (the harness asserts here): ids = [prefix token],
                                  every token of context + continuation is the continuation's */
} context_kind;

typedef struct {
    const char *text;          /* a request's context (borrowed)                            */
    context_kind kind;
    int32_t *ids;              /* [n_ids]                                                   */
    int n_ids;
    int n_requests;            /* requests with this context                                */
    double tokenize_ms;
} score_context;

static qe_status encode_context(qe_model *m, score_context *c, qe_error *err)
{
    double start_ms = now_ms();
    qe_status rc = QE_OK;
    c->kind = CONTEXT_EMPTY;
    if (c->text[0]) {
        size_t len = strlen(c->text), n_spaces = trailing_whitespace(c->text, len);
        char *stripped = malloc(len - n_spaces + 1);
        if (!stripped)
            return qe_fail(err, QE_ENOMEM, "%s: out of memory", m->path);
        memcpy(stripped, c->text, len - n_spaces);
        stripped[len - n_spaces] = 0;
        rc = qe_tokenize(m, stripped, qe_lm_eval_adds_special(m), &c->ids, &c->n_ids, err);
        free(stripped);
        c->kind = c->n_ids > 0 ? CONTEXT_TEXT : CONTEXT_BLANK;
    }
    if (rc == QE_OK && c->kind != CONTEXT_TEXT) {
        int prefix = prefix_token(m);
        free(c->ids);
        c->ids = NULL;
        if (prefix < 0)
            return qe_fail(err, QE_EINVAL, "%s: %s context and the model has neither BOS nor EOS", m->path,
                           c->kind == CONTEXT_EMPTY ? "empty" : "whitespace-only");
        if (!(c->ids = malloc(sizeof *c->ids)))
            return qe_fail(err, QE_ENOMEM, "%s: out of memory", m->path);
        c->ids[0] = prefix;
        c->n_ids = 1;
    }
    c->tokenize_ms = now_ms() - start_ms;
    return rc;
}

/* fn(ctx, i, err) for every i in [0, n), spread over the host's cores: tokenizing is most of a
 * batch's host work (MMLU: every context once alone and once with each continuation, ~70,000
 * strings of ~600 tokens, 7 of the 8 s a CPU run spends between its forward passes, time a GPU
 * waits for) and the items are independent (the tokenizer's piece cache is safe to share).
 * Returns the status of the lowest failing item, run again alone for its message: the error a
 * loop in order gives; its index in *failed when failed is not NULL (-1: none). fn must leave a
 * failed item as it can be run again. */
typedef qe_status (*item_fn)(void *ctx, int i, qe_error *err);

static qe_status run_items(int n, item_fn fn, void *ctx, int *failed, qe_error *err)
{
    if (failed)
        *failed = -1;
    qe_status *status = malloc((size_t)(n > 0 ? n : 1) * sizeof *status);
    if (!status)
        return qe_fail(err, QE_ENOMEM, "out of memory for %d statuses", n);
    QE_PARALLEL_FOR_ITEMS(n)
    for (int i = 0; i < n; i++) {
        qe_error unused;
        status[i] = fn(ctx, i, &unused);
    }
    qe_status rc = QE_OK;
    for (int i = 0; i < n && rc == QE_OK; i++)
        if (status[i] != QE_OK && (rc = fn(ctx, i, err)) != QE_OK && failed)
            *failed = i;
    free(status);
    return rc;
}

/* One request as the model sees it. */
typedef struct {
    int request;               /* index into requests and results                            */
    const score_context *context;
    int32_t *tokens;           /* [n_tokens]: the input, then the last continuation token     */
    int n_tokens, n_cont;      /* rows n_prefix - 1 .. n_tokens - 2 predict the continuation  */
    int n_prefix;              /* n_tokens - n_cont                                          */
} score_plan;

/* Continuation tokens of request r (lm-eval's _encode_pair, continuation half), then the
 * truncated input: (context + continuation)[-(window + 1):]. */
static qe_status plan_request(qe_model *m, const qe_score_request *r, const score_context *c, score_plan *plan,
                              qe_error *err)
{
    bool special = qe_lm_eval_adds_special(m);
    int32_t *ids = NULL;
    int n_ids = 0;
    qe_status rc;
    if (c->kind == CONTEXT_EMPTY)
        rc = qe_tokenize(m, r->continuation, special, &ids, &n_ids, err);
    else {
        size_t len_ctx = strlen(r->context), len_cont = strlen(r->continuation);
        char *whole = malloc(len_ctx + len_cont + 1);
        if (!whole)
            return qe_fail(err, QE_ENOMEM, "%s: out of memory", m->path);
        memcpy(whole, r->context, len_ctx);
        memcpy(whole + len_ctx, r->continuation, len_cont + 1);
        rc = qe_tokenize(m, whole, special, &ids, &n_ids, err);
        free(whole);
    }
    if (rc != QE_OK)
        return rc;
    /* the continuation is ids[skip_ids:]: all of them, or what follows the context's tokens */
    int skip_ids = c->kind == CONTEXT_TEXT ? (n_ids > c->n_ids ? c->n_ids : n_ids) : 0;
    int n_cont = n_ids - skip_ids;
    if (n_cont == 0)
        rc = qe_fail(err, QE_EINVAL, "%s: continuation \"%.40s\" has no tokens of its own", m->path, r->continuation);
    else if (n_cont > m->max_context)
        rc = qe_fail(err, QE_EINVAL, "%s: continuation of %d tokens exceeds the %d-token window", m->path, n_cont,
                     m->max_context);
    if (rc != QE_OK) {
        free(ids);
        return rc;
    }
    int n_all = c->n_ids + n_cont, keep = n_all < m->max_context + 1 ? n_all : m->max_context + 1;
    int skip = n_all - keep;
    plan->tokens = malloc((size_t)keep * sizeof *plan->tokens);
    if (!plan->tokens) {
        free(ids);
        return qe_fail(err, QE_ENOMEM, "%s: out of memory", m->path);
    }
    /* tokens = (context ids + continuation ids)[skip:] */
    int from_context = c->n_ids > skip ? c->n_ids - skip : 0;
    memcpy(plan->tokens, c->ids + skip, (size_t)from_context * sizeof *plan->tokens);
    memcpy(plan->tokens + from_context, ids + skip_ids + (n_cont - (keep - from_context)),
           (size_t)(keep - from_context) * sizeof *plan->tokens);
    free(ids);
    plan->n_tokens = keep;
    plan->n_cont = n_cont;
    plan->n_prefix = keep - n_cont;
    return QE_OK;
}

static int compare_tokens(const int32_t *a, int n_a, const int32_t *b, int n_b)
{
    for (int i = 0; i < n_a && i < n_b; i++)
        if (a[i] != b[i])
            return a[i] < b[i] ? -1 : 1;
    return (n_a > n_b) - (n_a < n_b);
}

/* Prefix tokens first, so that each group's plans are adjacent, then whole token lists. */
static int compare_plans(const void *pa, const void *pb)
{
    const score_plan *a = pa, *b = pb;
    int by_prefix = compare_tokens(a->tokens, a->n_prefix, b->tokens, b->n_prefix);
    if (by_prefix)
        return by_prefix;
    int by_tokens = compare_tokens(a->tokens, a->n_tokens, b->tokens, b->n_tokens);
    return by_tokens ? by_tokens : (a->request > b->request) - (a->request < b->request);
}

static bool same_prefix(const score_plan *a, const score_plan *b)
{
    return a->n_prefix == b->n_prefix && !compare_tokens(a->tokens, a->n_prefix, b->tokens, b->n_prefix);
}

/* Buffers reused across the batch; each grows to the most rows asked of it. */
typedef struct {
    float *context_row;        /* [n_vocab] logits of a group's last prefix row              */
    float *logits;             /* [cap_logit_rows, n_vocab]                                  */
    qe_row_stats *stats;       /* [cap_stat_rows]                                            */
    int cap_logit_rows, cap_stat_rows;
} score_scratch;

static qe_status reserve_rows(qe_model *m, score_scratch *s, int n_rows, bool want_logits, qe_error *err)
{
    if (n_rows > s->cap_stat_rows) {
        qe_row_stats *stats = realloc(s->stats, (size_t)n_rows * sizeof *stats);
        if (!stats)
            return qe_fail(err, QE_ENOMEM, "%s: out of memory for %d row stats", m->path, n_rows);
        s->stats = stats;
        s->cap_stat_rows = n_rows;
    }
    if (want_logits && n_rows > s->cap_logit_rows) {
        float *logits = realloc(s->logits, (size_t)n_rows * m->cfg.n_vocab * sizeof *logits);
        if (!logits)
            return qe_fail(err, QE_ENOMEM, "%s: out of memory for %d x %d logits", m->path, n_rows, m->cfg.n_vocab);
        s->logits = logits;
        s->cap_logit_rows = n_rows;
    }
    return QE_OK;
}

/* Runs ids[n] after the longest cached prefix (at most first_row), leaving in s->stats the stats
 * of rows [first_row, n) against targets[row - first_row] (NULL: none) and, when want_logits,
 * their logits in s->logits; the rows are reduced where they were computed. */
static qe_status run_rows(qe_model *m, const int32_t *ids, int n, int first_row, const int32_t *targets,
                          bool want_logits, score_scratch *s, qe_error *err)
{
    qe_status rc = reserve_rows(m, s, n - first_row, want_logits, err);
    if (rc != QE_OK)
        return rc;
    int pos0 = qe_model_cached_prefix(m, ids, first_row < n ? first_row : n);
    return qe_model_forward(m, ids + pos0, n - pos0, pos0, first_row - pos0, want_logits ? s->logits : NULL, targets,
                            s->stats, err);
}

/* Position i of result from its row's stats (target_logit that of the continuation's token i)
 * and, when the result keeps log-prob rows, the row's logits. */
static void take_row(qe_score_result *result, int i, const qe_row_stats *stats, int32_t target, const float *row,
                     int n_vocab)
{
    result->logprob_sum += stats->target_logit - stats->log_z;
    result->target_logprob[i] = (float)(stats->target_logit - stats->log_z);
    result->argmax[i] = stats->argmax;
    if (stats->argmax != target)
        result->is_greedy = false;
    if (result->logprobs)
        for (int j = 0; j < n_vocab; j++)
            result->logprobs[(size_t)i * n_vocab + j] = (float)(row[j] - stats->log_z);
}

/* The results of one group's plans from its prefix's last row (logits and stats): the first
 * continuation token from that row, the rest of a longer continuation run after the cached
 * prefix. share_ms: each plan's share of the prefix's time. */
static qe_status take_group(qe_model *m, const qe_score_request *requests, score_plan *plans, int n_plans,
                            qe_score_result *results, const float *context_row, qe_row_stats context_stats,
                            double share_ms, score_scratch *s, qe_error *err)
{
    int n_vocab = m->cfg.n_vocab, n_prefix = plans[0].n_prefix;
    for (int p = 0; p < n_plans; p++) {
        score_plan *plan = &plans[p];
        qe_score_result *result = &results[plan->request];
        double plan_start_ms = now_ms();
        size_t n_cont = (size_t)plan->n_cont;
        result->argmax = malloc(n_cont * sizeof *result->argmax);
        result->target_logprob = malloc(n_cont * sizeof *result->target_logprob);
        if (requests[plan->request].want_logprobs)
            result->logprobs = malloc(n_cont * n_vocab * sizeof *result->logprobs);
        if (!result->argmax || !result->target_logprob || (requests[plan->request].want_logprobs && !result->logprobs))
            return qe_fail(err, QE_ENOMEM, "%s: out of memory", m->path);
        result->is_greedy = true;
        result->n_context_tokens = n_prefix;
        result->n_continuation_tokens = plan->n_cont;
        result->was_truncated = plan->n_tokens < plan->context->n_ids + plan->n_cont;
        const int32_t *targets = plan->tokens + n_prefix;
        qe_row_stats first = context_stats;
        first.target_logit = context_row[targets[0]];
        take_row(result, 0, &first, targets[0], context_row, n_vocab);
        if (plan->n_cont > 1) {
            /* rows n_prefix .. n_tokens - 2 predict targets 1 .. n_cont - 1 */
            qe_status rc = run_rows(m, plan->tokens, plan->n_tokens - 1, n_prefix, targets + 1,
                                    result->logprobs != NULL, s, err);
            if (rc != QE_OK)
                return rc;
            for (int i = 1; i < plan->n_cont; i++)
                take_row(result, i, &s->stats[i - 1], targets[i], s->logits + (size_t)(i - 1) * n_vocab, n_vocab);
        }
        result->elapsed_ms += share_ms + (now_ms() - plan_start_ms);
    }
    return QE_OK;
}

/* The plans of one group: the prefix once, then each continuation beyond its first token. */
static qe_status run_group(qe_model *m, const qe_score_request *requests, score_plan *plans, int n_plans,
                           qe_score_result *results, score_scratch *s, qe_error *err)
{
    int n_vocab = m->cfg.n_vocab, n_prefix = plans[0].n_prefix;
    double start_ms = now_ms();
    /* the prefix's last row serves every continuation: its logits come back for their targets */
    qe_status rc = run_rows(m, plans[0].tokens, n_prefix, n_prefix - 1, NULL, true, s, err);
    if (rc != QE_OK)
        return rc;
    memcpy(s->context_row, s->logits, (size_t)n_vocab * sizeof *s->context_row);
    return take_group(m, requests, plans, n_plans, results, s->context_row, s->stats[0],
                      (now_ms() - start_ms) / n_plans, s, err);
}

/* ---- packing --------------------------------------------------------------------------------- */

#define PACK_MAX_SEGMENTS 32   /* groups per packed pass (their logit rows come back together)  */
#define PACK_SLACK_TOKENS 256  /* tokens a shorter shared prefix may add to the groups packed   */

static int common_prefix(const int32_t *a, int n_a, const int32_t *b, int n_b)
{
    int i = 0;
    while (i < n_a && i < n_b && a[i] == b[i])
        i++;
    return i;
}

/* The end of the group of plans that starts at plan `start` (plans sorted by compare_plans). */
static int group_end(const score_plan *plans, int n, int start)
{
    int end = start + 1;
    while (end < n && same_prefix(&plans[start], &plans[end]))
        end++;
    return end;
}

static bool one_token_continuations(const score_plan *plans, int start, int end)
{
    for (int p = start; p < end; p++)
        if (plans[p].n_cont != 1)
            return false;
    return true;
}

/* A packed pass: groups group_start[0 .. n_groups) (each up to the next's start; the last up to
 * `end`) after their shared prefix of shared_len tokens. */
typedef struct {
    int group_start[PACK_MAX_SEGMENTS + 1];
    int n_groups, end, shared_len;
} pack_plan;

/* The groups from plan `start` on that pay to run as one packed pass: each of one-token
 * continuations, the shared prefix costing at most PACK_SLACK_TOKENS more tokens than running
 * the groups one by one would (each after the longest prefix it finds cached: the previous
 * group's, the first one's what the cache holds now), and rows within row_cap (the cache grows
 * no further than unpacked scoring grows it). */
static void plan_pack(const qe_model *m, const score_plan *plans, int n, int start, int row_cap, pack_plan *pack)
{
    const score_plan *first = &plans[start];
    int reuse[PACK_MAX_SEGMENTS]; /* what each group would reuse unpacked */
    int prefix_sum = 0;           /* the packed groups' prefix lengths */
    pack->n_groups = 0;
    pack->end = start;
    pack->shared_len = first->n_prefix - 1; /* every segment keeps its last prefix token at least */
    for (int g = start; g < n && pack->n_groups < PACK_MAX_SEGMENTS;) {
        int end = group_end(plans, n, g);
        if (!one_token_continuations(plans, g, end))
            break;
        int last = plans[g].n_prefix - 1;
        int shared = common_prefix(first->tokens, first->n_prefix, plans[g].tokens, last);
        if (shared > pack->shared_len)
            shared = pack->shared_len;
        int reused = g == start ? qe_model_cached_prefix(m, first->tokens, last)
                                : common_prefix(plans[g - 1].tokens, plans[g - 1].n_prefix, plans[g].tokens, last);
        int lost = reused > shared ? reused - shared : 0;
        for (int i = 0; i < pack->n_groups; i++)
            lost += reuse[i] > shared ? reuse[i] - shared : 0;
        /* rows: the shared prefix, then every group's own tokens after it */
        int rows = plans[g].n_prefix + prefix_sum - pack->n_groups * shared;
        if (lost > PACK_SLACK_TOKENS || rows > row_cap)
            break;
        prefix_sum += plans[g].n_prefix;
        reuse[pack->n_groups] = reused;
        pack->group_start[pack->n_groups++] = g;
        pack->shared_len = shared;
        pack->end = g = end;
    }
    pack->group_start[pack->n_groups] = pack->end;
}

static qe_status run_pack(qe_model *m, const qe_score_request *requests, score_plan *plans, const pack_plan *pack,
                          qe_score_result *results, score_scratch *s, qe_error *err)
{
    double start_ms = now_ms();
    const score_plan *first = &plans[pack->group_start[0]];
    int shared = pack->shared_len, n_tok = 0, seg_start[PACK_MAX_SEGMENTS + 1];
    for (int g = 0; g < pack->n_groups; g++)
        n_tok += plans[pack->group_start[g]].n_prefix - shared;
    int32_t *ids = malloc((size_t)n_tok * sizeof *ids);
    if (!ids)
        return qe_fail(err, QE_ENOMEM, "%s: out of memory", m->path);
    n_tok = 0;
    for (int g = 0; g < pack->n_groups; g++) {
        const score_plan *plan = &plans[pack->group_start[g]];
        seg_start[g] = n_tok;
        memcpy(ids + n_tok, plan->tokens + shared, (size_t)(plan->n_prefix - shared) * sizeof *ids);
        n_tok += plan->n_prefix - shared;
    }
    seg_start[pack->n_groups] = n_tok;
    int pos0 = qe_model_cached_prefix(m, first->tokens, shared);
    qe_status rc = reserve_rows(m, s, pack->n_groups, true, err);
    if (rc == QE_OK && pos0 < shared) /* the shared prefix into the cache, no rows wanted */
        rc = qe_model_forward(m, first->tokens + pos0, shared - pos0, pos0, shared - pos0, NULL, NULL, NULL, err);
    if (rc == QE_OK)
        rc = qe_model_forward_packed(m, ids, seg_start, pack->n_groups, shared, s->logits, s->stats, err);
    free(ids);
    int n_plans = pack->end - pack->group_start[0];
    double share_ms = (now_ms() - start_ms) / n_plans;
    for (int g = 0; g < pack->n_groups && rc == QE_OK; g++) {
        int p0 = pack->group_start[g], p1 = pack->group_start[g + 1];
        rc = take_group(m, requests, plans + p0, p1 - p0, results, s->logits + (size_t)g * m->cfg.n_vocab,
                        s->stats[g], share_ms, s, err);
    }
    return rc;
}

static int compare_context_text(const void *pa, const void *pb)
{
    const score_context *a = pa, *b = pb;
    return strcmp(a->text, b->text);
}

typedef struct {
    qe_model *m;
    score_context *contexts;
} encode_job;

static qe_status encode_item(void *ctx, int i, qe_error *err)
{
    encode_job *job = ctx;
    return encode_context(job->m, &job->contexts[i], err);
}

/* The distinct contexts of the requests, tokenized once each; *of_request[i] points into them. */
static qe_status encode_contexts(qe_model *m, const qe_score_request *requests, int n, score_context **contexts,
                                 int *n_contexts, const score_context ***of_request, qe_error *err)
{
    score_context *sorted = calloc((size_t)n, sizeof *sorted);
    *of_request = calloc((size_t)n, sizeof **of_request);
    *contexts = sorted;
    *n_contexts = 0;
    if (!sorted || !*of_request)
        return qe_fail(err, QE_ENOMEM, "%s: out of memory", m->path);
    for (int i = 0; i < n; i++)
        sorted[i].text = requests[i].context;
    qsort(sorted, (size_t)n, sizeof *sorted, compare_context_text);
    int n_distinct = 0;
    for (int i = 0; i < n; i++)
        if (n_distinct == 0 || strcmp(sorted[n_distinct - 1].text, sorted[i].text))
            sorted[n_distinct++].text = sorted[i].text;
    *n_contexts = n_distinct;
    for (int i = 0; i < n; i++) {
        score_context key = {.text = requests[i].context};
        score_context *c = bsearch(&key, sorted, (size_t)n_distinct, sizeof *sorted, compare_context_text);
        c->n_requests++;
        (*of_request)[i] = c;
    }
    encode_job job = {m, sorted};
    return run_items(n_distinct, encode_item, &job, NULL, err);
}

void qe_score_result_clear(qe_score_result *r)
{
    free(r->argmax);
    free(r->target_logprob);
    free(r->logprobs);
    memset(r, 0, sizeof *r);
}

typedef struct {
    qe_model *m;
    const qe_score_request *requests;
    const score_context **of_request;
    score_plan *plans;
    qe_score_result *results;
} plan_job;

static qe_status plan_item(void *ctx, int i, qe_error *err)
{
    plan_job *job = ctx;
    double start_ms = now_ms();
    const score_context *c = job->of_request[i];
    job->plans[i].request = i;
    job->plans[i].context = c;
    qe_status rc = plan_request(job->m, &job->requests[i], c, &job->plans[i], err);
    job->results[i].elapsed_ms = now_ms() - start_ms + c->tokenize_ms / c->n_requests;
    return rc;
}

qe_status qe_score_batch(qe_model *m, const qe_score_request *requests, int n, qe_score_result *results,
                         qe_error *err)
{
    memset(results, 0, (size_t)n * sizeof *results);
    if (n <= 0)
        return QE_OK;
    score_context *contexts = NULL;
    const score_context **of_request = NULL;
    score_plan *plans = calloc((size_t)n, sizeof *plans);
    score_scratch scratch = {.context_row = malloc((size_t)m->cfg.n_vocab * sizeof(float))};
    int n_contexts = 0, failed = -1;
    qe_status rc = plans && scratch.context_row ? QE_OK : qe_fail(err, QE_ENOMEM, "%s: out of memory", m->path);
    if (rc == QE_OK)
        rc = encode_contexts(m, requests, n, &contexts, &n_contexts, &of_request, err);
    plan_job job = {m, requests, of_request, plans, results};
    if (rc == QE_OK)
        rc = run_items(n, plan_item, &job, &failed, err);
    if (rc == QE_OK)
        qsort(plans, (size_t)n, sizeof *plans, compare_plans);
    /* the cache's rows as unpacked scoring grows them: for the longest request */
    int longest = 0;
    for (int i = 0; i < n && rc == QE_OK; i++)
        if (plans[i].n_tokens > longest)
            longest = plans[i].n_tokens;
    int row_cap = qe_kv_capacity(longest, m->max_context);
    if (row_cap < m->kv.kv_capacity)
        row_cap = m->kv.kv_capacity;
    bool can_pack = !qe_config_has_sliding_window(&m->cfg); /* no room in the rings */
    for (int start = 0; start < n && rc == QE_OK;) {
        pack_plan pack = {.n_groups = 0};
        if (can_pack)
            plan_pack(m, plans, n, start, row_cap, &pack);
        if (pack.n_groups > 1) {
            rc = run_pack(m, requests, plans, &pack, results, &scratch, err);
            start = pack.end;
        } else {
            int end = group_end(plans, n, start);
            rc = run_group(m, requests, plans + start, end - start, results, &scratch, err);
            start = end;
        }
    }
    if (rc != QE_OK) {
        if (failed >= 0)
            qe_fail_context(err, "request %d", failed);
        for (int i = 0; i < n; i++)
            qe_score_result_clear(&results[i]);
    }
    for (int i = 0; plans && i < n; i++)
        free(plans[i].tokens);
    for (int c = 0; c < n_contexts; c++)
        free(contexts[c].ids);
    free(plans);
    free(contexts);
    free(of_request);
    free(scratch.context_row);
    free(scratch.logits);
    free(scratch.stats);
    return rc;
}
