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
    qe_row_stats last; /* logits NULL: the greedy reduction, as generation runs the step */
    qe_status rc = qe_model_forward(m, ids, n_tokens, pos0, n_tokens - 1, logits, NULL, logits ? NULL : &last, err);
    m->max_batch = 0;
    return rc;
}

static bool is_eos(const qe_model *m, int id)
{
    for (int i = 0; i < m->cfg.n_eos; i++)
        if (m->cfg.eos_ids[i] == id)
            return true;
    return m->tokenizer && qe_tokenizer_eos_id(m->tokenizer) == id;
}

/* Runs ids[n] reusing the cached prefix, with the row stats of rows [first_row, n) (NULL: none). */
static qe_status forward_reusing_cache(qe_model *m, const int32_t *ids, int n, int first_row, qe_row_stats *stats,
                                       qe_error *err)
{
    /* rows are wanted from first_row; rows before it are recomputed only when not cached */
    int pos0 = qe_model_cached_prefix(m, ids, first_row < n ? first_row : n);
    return qe_model_forward(m, ids + pos0, n - pos0, pos0, first_row - pos0, NULL, NULL, stats, err);
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
    if (!ids)
        return qe_fail(err, QE_ENOMEM, "%s: out of memory", m->path);
    memcpy(ids, prompt, (size_t)n_prompt * sizeof *ids);
    int n = n_prompt, n_new = 0;
    qe_status rc = QE_OK;
    qe_row_stats last; /* the greedy pick is the row's argmax, found where the logits are */
    double t0 = now_ms();
    if (max_new_tokens > 0)
        rc = forward_reusing_cache(m, ids, n, n - 1, &last, err);
    double t1 = now_ms();
    while (rc == QE_OK && n_new < max_new_tokens) {
        int next = last.argmax;
        ids[n++] = next;
        n_new++;
        if (is_eos(m, next)) {
            stats->hit_eos = true;
            break;
        }
        if (n_new == max_new_tokens)
            break;
        rc = qe_model_forward(m, &ids[n - 1], 1, n - 1, 0, NULL, NULL, &last, err);
    }
    stats->prefill_ms = t1 - t0;
    stats->decode_ms = now_ms() - t1;
    stats->n_generated_tokens = n_new;
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

/* One request's generation in qe_generate_until_batch. */
typedef struct {
    int32_t *ids;                 /* [n_prompt + max_new]: the prompt, then the generated tokens */
    int n_prompt, n, max_new;
    char *decoded;                /* the generated text so far, cut at a stop string */
    bool is_done;
} generation;

static void generation_clear(generation *g)
{
    free(g->ids);
    free(g->decoded);
    memset(g, 0, sizeof *g);
}

/* The request's prompt tokens as lm-evaluation-harness keeps them, into g. */
static qe_status generation_start(qe_model *m, const qe_generate_request *r, generation *g, qe_generate_stats *stats,
                                  qe_error *err)
{
    memset(g, 0, sizeof *g);
    memset(stats, 0, sizeof *stats);
    if (r->max_new_tokens <= 0)
        return qe_fail(err, QE_EINVAL, "%s: max_new_tokens %d must be positive", m->path, r->max_new_tokens);
    /* lm-evaluation-harness reserves max_new_tokens of the window for the answer; a window too
     * small for that (a 512-token model asked for HumanEval's 1024) reserves half of itself
     * instead, as generation could never go past the window anyway. */
    g->max_new = r->max_new_tokens < m->max_context ? r->max_new_tokens : m->max_context / 2;
    int32_t *prompt = NULL;
    int n_prompt = 0;
    qe_status rc = qe_tokenize(m, r->context, qe_lm_eval_adds_special(m), &prompt, &n_prompt, err);
    if (rc != QE_OK)
        return rc;
    /* the harness keeps the last (window - max_new_tokens) context tokens */
    int keep = m->max_context - g->max_new, skip = n_prompt > keep ? n_prompt - keep : 0;
    g->n_prompt = g->n = n_prompt - skip;
    stats->was_truncated = skip > 0;
    stats->n_prompt_tokens = g->n_prompt;
    if (g->n_prompt == 0)
        rc = qe_fail(err, QE_EINVAL, "%s: empty context", m->path);
    else if (!(g->ids = malloc((size_t)(g->n_prompt + g->max_new) * sizeof *g->ids)))
        rc = qe_fail(err, QE_ENOMEM, "%s: out of memory", m->path);
    else
        memcpy(g->ids, prompt + skip, (size_t)g->n_prompt * sizeof *g->ids);
    free(prompt);
    return rc;
}

/* The greedy pick (the argmax of its logits row): appended, then the stop rules (EOS, a stop
 * string in the decoded text, max_new tokens) say whether g is done. */
static qe_status generation_take(qe_model *m, const qe_generate_request *r, generation *g, int next,
                                 qe_generate_stats *stats, qe_error *err)
{
    stats->n_generated_tokens++;
    if (is_eos(m, next)) {
        stats->hit_eos = g->is_done = true;
        return QE_OK;
    }
    g->ids[g->n++] = next;
    free(g->decoded);
    g->decoded = NULL;
    qe_status rc = decode_generated(m, g->ids + g->n_prompt, g->n - g->n_prompt, &g->decoded, err);
    if (rc != QE_OK)
        return rc;
    if (cut_at_stops(g->decoded, r->stops, r->n_stops))
        stats->hit_stop = g->is_done = true;
    if (g->n - g->n_prompt == g->max_new)
        g->is_done = true;
    return QE_OK;
}

/* Makes the model's cache slots hold at least n_slots caches. */
static qe_status reserve_gen_slots(qe_model *m, int n_slots, qe_error *err)
{
    if (n_slots <= m->n_gen_slots)
        return QE_OK;
    qe_kv_cache *slots = realloc(m->gen_slots, (size_t)n_slots * sizeof *slots);
    if (!slots)
        return qe_fail(err, QE_ENOMEM, "%s: out of memory", m->path);
    m->gen_slots = slots;
    for (; m->n_gen_slots < n_slots; m->n_gen_slots++) {
        qe_status rc = qe_kv_cache_init(&slots[m->n_gen_slots], m->cfg.n_layers, err);
        if (rc != QE_OK)
            return qe_fail_context(err, "%s", m->path);
    }
    return QE_OK;
}

static void swap_cache(qe_model *m, qe_kv_cache *other)
{
    qe_kv_cache mine = m->kv;
    m->kv = *other;
    *other = mine;
}

/* forward_reusing_cache on sequence seq's cache, which passes run on as the model's own. */
static qe_status forward_on_sequence(qe_model *m, int seq, const int32_t *ids, int n, int first_row,
                                     qe_row_stats *stats, qe_error *err)
{
    if (seq > 0)
        swap_cache(m, qe_model_cache(m, seq));
    qe_status rc = forward_reusing_cache(m, ids, n, first_row, stats, err);
    if (seq > 0)
        swap_cache(m, qe_model_cache(m, seq));
    return rc;
}

qe_status qe_sequences_reset(qe_model *m, int n, qe_error *err)
{
    if (n < 1 || n > m->chunk_tokens)
        return qe_fail(err, QE_EINVAL, "%s: %d sequences (1 to %d)", m->path, n, m->chunk_tokens);
    qe_status rc = reserve_gen_slots(m, n - 1, err);
    for (int i = 0; i < n && rc == QE_OK; i++)
        qe_model_cache(m, i)->n_cached = qe_model_cache(m, i)->kv_written_end = 0;
    return rc;
}

qe_status qe_sequence_prefill(qe_model *m, int seq, const int32_t *ids, int n, qe_error *err)
{
    if (seq < 0 || seq > m->n_gen_slots)
        return qe_fail(err, QE_EINVAL, "%s: sequence %d of %d", m->path, seq, 1 + m->n_gen_slots);
    return forward_on_sequence(m, seq, ids, n, n - 1, NULL, err); /* at least the last token runs */
}

qe_status qe_forward_sequences(qe_model *m, const int32_t *ids, int n, float *logits, qe_error *err)
{
    if (n < 1 || n > 1 + m->n_gen_slots)
        return qe_fail(err, QE_EINVAL, "%s: %d sequences, %d made (qe_sequences_reset)", m->path, n,
                       1 + m->n_gen_slots);
    qe_kv_cache **caches = malloc((size_t)n * sizeof *caches);
    qe_row_stats *rows = logits ? NULL : malloc((size_t)n * sizeof *rows); /* the greedy reduction */
    qe_status rc = QE_OK;
    if (!caches || (!logits && !rows))
        rc = qe_fail(err, QE_ENOMEM, "%s: out of memory", m->path);
    for (int i = 0; i < n && rc == QE_OK; i++)
        caches[i] = qe_model_cache(m, i);
    if (rc == QE_OK)
        rc = qe_model_forward_sequences(m, caches, ids, n, logits, rows, err);
    free(caches);
    free(rows);
    return rc;
}

/* Sequences a generation batch runs at once: the caches the model holds already, and as many
 * more as fit in half the memory free now (the GPU's, or the machine's), each a cache of the
 * longest request's positions; at least 1, at most n and a chunk (one pass holds the step). */
static int generation_width(const qe_model *m, const generation *gens, int n)
{
    int positions = 1;
    for (int i = 0; i < n; i++)
        if (gens[i].n_prompt + gens[i].max_new > positions)
            positions = gens[i].n_prompt + gens[i].max_new;
    uint64_t cache_bytes = qe_kv_cache_bytes(&m->cfg, qe_kv_capacity(positions, m->max_context), m->max_context,
                                             m->chunk_tokens);
    uint64_t more = cache_bytes ? qe_model_free_memory_bytes(m) / 2 / cache_bytes : (uint64_t)n;
    uint64_t width = (uint64_t)(1 + m->n_gen_slots) + more;
    if (width > (uint64_t)n)
        width = (uint64_t)n;
    return width > (uint64_t)m->chunk_tokens ? m->chunk_tokens : (int)width;
}

/* Runs request i's prompt on the cache of slot `slot` (prefix reuse as that cache allows) and
 * takes its first token. */
static qe_status generation_prefill(qe_model *m, const qe_generate_request *request, generation *g, int slot,
                                    qe_generate_stats *stats, qe_error *err)
{
    qe_row_stats last;
    double t0 = now_ms();
    qe_status rc = forward_on_sequence(m, slot, g->ids, g->n, g->n - 1, &last, err);
    double t1 = now_ms();
    stats->prefill_ms = t1 - t0;
    if (rc == QE_OK)
        rc = generation_take(m, request, g, last.argmax, stats, err);
    stats->decode_ms = now_ms() - t1;
    return rc;
}

/* Decodes gens[n] (started: their prompts in ids) with `width` slots, each its own cache: a free
 * slot takes the next request (its prompt, its first token), then one pass a step gives every
 * busy slot its next token; a slot whose request ends takes the next one, so the steps stay full
 * until the requests run out. */
static qe_status generate_in_slots(qe_model *m, const qe_generate_request *requests, generation *gens, int n,
                                   int width, qe_generate_stats *stats, qe_error *err)
{
    int *request_in = malloc((size_t)width * sizeof *request_in); /* per slot: a request, or -1 */
    int *slot_of_row = malloc((size_t)width * sizeof *slot_of_row);
    qe_kv_cache **step_caches = malloc((size_t)width * sizeof *step_caches);
    int32_t *step_ids = malloc((size_t)width * sizeof *step_ids);
    qe_row_stats *rows = malloc((size_t)width * sizeof *rows); /* a step's rows: only their argmax travels */
    qe_status rc = QE_OK;
    if (!request_in || !slot_of_row || !step_caches || !step_ids || !rows)
        rc = qe_fail(err, QE_ENOMEM, "%s: out of memory", m->path);
    else
        rc = reserve_gen_slots(m, width - 1, err);
    for (int s = 0; s < width && request_in; s++)
        request_in[s] = -1;
    int next = 0;
    while (rc == QE_OK) {
        for (int s = 0; s < width && rc == QE_OK; s++)
            while (request_in[s] < 0 && next < n && rc == QE_OK) {
                int i = next++;
                rc = generation_prefill(m, &requests[i], &gens[i], s, &stats[i], err);
                if (!gens[i].is_done)
                    request_in[s] = i;
            }
        int n_step = 0;
        for (int s = 0; s < width; s++)
            if (request_in[s] >= 0) {
                generation *g = &gens[request_in[s]];
                slot_of_row[n_step] = s;
                step_caches[n_step] = qe_model_cache(m, s);
                step_ids[n_step++] = g->ids[g->n - 1];
            }
        if (rc != QE_OK || n_step == 0)
            break;
        double t0 = now_ms();
        rc = qe_model_forward_sequences(m, step_caches, step_ids, n_step, NULL, rows, err);
        for (int j = 0; j < n_step && rc == QE_OK; j++) {
            int i = request_in[slot_of_row[j]];
            rc = generation_take(m, &requests[i], &gens[i], rows[j].argmax, &stats[i], err);
        }
        double share_ms = (now_ms() - t0) / n_step; /* the step's time, shared by its sequences */
        for (int j = 0; j < n_step; j++) {
            int s = slot_of_row[j], i = request_in[s];
            stats[i].decode_ms += share_ms;
            if (gens[i].is_done)
                request_in[s] = -1;
        }
    }
    for (int i = 0; i < n && rc == QE_OK; i++) /* ended on EOS before any text: decode the nothing */
        if (!gens[i].decoded)
            rc = decode_generated(m, gens[i].ids + gens[i].n_prompt, gens[i].n - gens[i].n_prompt, &gens[i].decoded,
                                  err);
    free(request_in);
    free(slot_of_row);
    free(step_caches);
    free(step_ids);
    free(rows);
    return rc;
}

qe_status qe_generate_until_batch(qe_model *m, const qe_generate_request *requests, int n, char **texts,
                                  qe_generate_stats *stats, qe_error *err)
{
    for (int i = 0; i < n; i++)
        texts[i] = NULL;
    if (n <= 0)
        return qe_fail(err, QE_EINVAL, "%s: a generation batch of %d requests", m->path, n);
    generation *gens = calloc((size_t)n, sizeof *gens);
    if (!gens)
        return qe_fail(err, QE_ENOMEM, "%s: out of memory", m->path);
    qe_status rc = QE_OK;
    for (int i = 0; i < n && rc == QE_OK; i++)
        rc = generation_start(m, &requests[i], &gens[i], &stats[i], err);
    if (rc == QE_OK)
        rc = generate_in_slots(m, requests, gens, n, generation_width(m, gens, n), stats, err);
    for (int i = 0; i < n; i++) {
        if (rc == QE_OK) {
            texts[i] = gens[i].decoded;
            gens[i].decoded = NULL;
        }
        generation_clear(&gens[i]);
    }
    free(gens);
    return rc;
}

qe_status qe_generate_until(qe_model *m, const char *context, const char *const *stops, int n_stops,
                            int max_new_tokens, char **text, qe_generate_stats *stats, qe_error *err)
{
    qe_generate_request request = {context, stops, n_stops, max_new_tokens};
    return qe_generate_until_batch(m, &request, 1, text, stats, err);
}
