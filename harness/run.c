#include "run.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "build_info.h"
#include "chat_prompt.h"
#include "host.h"
#include "model_cache.h"
#include "qd_sha256.h"
#include "run_record.h"
#include "run_score.h"
#include "run_shard.h"
#include "stats.h"
#include "task.h"

/* Documents are scored in blocks (one engine call for a block's loglikelihood requests) and
 * their samples written per block: a kill loses at most one block of work, never a stored row.
 * 64 instead of 16 (two packed passes of 32 instead of one of 16) scored MMLU no faster on an
 * H200 (5,952 and 6,016 documents in 30 s), so the default stays small. */
#define QH_BLOCK_DOCS 16
/* fp32 log-prob rows kept in memory for KL divergence of the other variants. */
#define QH_KL_MEMORY_CAP_BYTES ((size_t)2 << 30)

static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int signal_number) { stop_requested = signal_number; }

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Per (variant, task): what the fp32 reference's first continuation looked like, per document,
 * so that later variants can be compared position by position (KL divergence). */
typedef struct {
    float **logprobs;          /* [n_docs] -> [n_positions[d], n_vocab] or NULL */
    int *n_positions;          /* [n_docs] */
    int n_docs, n_vocab;
} qh_reference_rows;

static void reference_rows_free(qh_reference_rows *ref)
{
    for (int d = 0; ref->logprobs && d < ref->n_docs; d++)
        free(ref->logprobs[d]);
    free(ref->logprobs);
    free(ref->n_positions);
    memset(ref, 0, sizeof *ref);
}

/* Throughput and latency of one (variant, task). */
typedef struct {
    int64_t n_requests, tokens_in, tokens_out;
    double prefill_ms, decode_ms, wall_ms;
    double *latency_ms;        /* [n_latencies] one per computed document */
    int n_latencies, cap_latencies;
    double *kl;                /* [n_kl] per compared position */
    int n_kl, cap_kl;
} qh_task_meter;

static bool push_value(double **values, int *n, int *cap, double v)
{
    if (*n == *cap) {
        int grown_cap = *cap ? *cap * 2 : 256;
        double *grown = realloc(*values, (size_t)grown_cap * sizeof *grown);
        if (!grown)
            return false;
        *values = grown;
        *cap = grown_cap;
    }
    (*values)[(*n)++] = v;
    return true;
}

typedef struct {
    qh_store *store;
    const qh_run_options *options;
    int64_t run_id;
    qe_model *model;
    const char *variant;
    const char *model_sha256;
    bool is_reference;         /* this variant is fp32: keep its rows for the others */
    size_t reference_bytes;    /* memory held by all reference rows so far */
    qh_reference_rows *reference; /* this task's reference rows (may be empty) */
    const qt_chat_renderer *chat; /* the chat template requests are put in; NULL: plain prompts */
    const int *owners;         /* [n_docs] this task's shard of each document (run_shard.h); NULL: one shard */
    qh_task_meter meter;
} qh_run_context;

static void request_hash(const char *kind, const char *a, const char *b, char hex[65])
{
    qd_sha256_ctx ctx;
    uint8_t digest[32];
    qd_sha256_init(&ctx);
    qd_sha256_update(&ctx, kind, strlen(kind) + 1);
    qd_sha256_update(&ctx, a, strlen(a) + 1);
    qd_sha256_update(&ctx, b, strlen(b));
    qd_sha256_final(&ctx, digest);
    qd_sha256_hex(digest, hex);
}

/* One continuation's numbers as the cache keeps them. */
typedef struct {
    double loglikelihood;
    bool is_greedy, was_truncated;
    int *argmax;               /* [n_positions] */
    double *p_target;          /* [n_positions] */
    int n_positions;
    float *logprobs;           /* [n_positions, n_vocab]; only when just computed */
} qh_choice_result;

static void choice_result_clear(qh_choice_result *c)
{
    free(c->argmax);
    free(c->p_target);
    free(c->logprobs);
    memset(c, 0, sizeof *c);
}

static char *choice_result_json(const qh_choice_result *c)
{
    qh_doc_record record = {
        .type = QT_REQUEST_LOGLIKELIHOOD, .loglikelihoods = (double *)&c->loglikelihood,
        .is_greedy = (bool *)&c->is_greedy, .n_choices = 1, .argmax = c->argmax, .p_target = c->p_target,
        .n_positions = c->n_positions, .was_truncated = c->was_truncated,
    };
    char *json = NULL;
    qh_doc_record_to_json(&record, &json, NULL);
    return json;
}

/* One document of a block: its request, the record the store will keep, its latency. */
typedef struct {
    int doc_index;
    qt_request request;
    qh_doc_record record;
    double latency_ms;
} qh_block_doc;

/* One continuation of a block: where its numbers came from and what they are. */
typedef struct {
    int doc;                   /* index into the block                                         */
    char hash[65];
    qh_choice_result result;
    int request;               /* index into the block's engine requests; -1 when cached       */
} qh_block_choice;

/* Fills c from the cache when the store has an answer to hash; false when it has none. */
static qe_status choice_from_cache(qh_run_context *rc_ctx, const char *hash, qh_choice_result *out, bool *found,
                                   qe_error *err)
{
    *found = false;
    char *cached = NULL;
    qe_status rc = qh_store_cache_get(rc_ctx->store, rc_ctx->model_sha256, rc_ctx->variant, hash, &cached, err);
    if (rc != QE_OK || !cached)
        return rc;
    qh_doc_record record;
    rc = qh_doc_record_from_json(cached, QT_REQUEST_LOGLIKELIHOOD, &record, err);
    free(cached);
    if (rc == QE_OK && record.n_choices == 1) {
        out->loglikelihood = record.loglikelihoods[0];
        out->is_greedy = record.is_greedy[0];
        out->was_truncated = record.was_truncated;
        out->argmax = record.argmax;
        out->p_target = record.p_target;
        out->n_positions = record.n_positions;
        record.argmax = NULL;
        record.p_target = NULL;
        *found = true;
    }
    qh_doc_record_clear(&record); /* an unreadable entry is recomputed and replaced */
    return QE_OK;
}

/* Takes a scored result's numbers (and its log-prob rows) into out. */
static qe_status choice_from_score(qe_score_result *scored, qh_choice_result *out, qe_error *err)
{
    int n_pos = scored->n_continuation_tokens;
    out->loglikelihood = scored->logprob_sum;
    out->is_greedy = scored->is_greedy;
    out->was_truncated = scored->was_truncated;
    out->n_positions = n_pos;
    out->argmax = malloc((size_t)(n_pos ? n_pos : 1) * sizeof *out->argmax);
    out->p_target = malloc((size_t)(n_pos ? n_pos : 1) * sizeof *out->p_target);
    if (!out->argmax || !out->p_target)
        return qe_fail(err, QE_ENOMEM, "out of memory");
    for (int i = 0; i < n_pos; i++) {
        out->argmax[i] = scored->argmax[i];
        out->p_target[i] = exp((double)scored->target_logprob[i]);
    }
    out->logprobs = scored->logprobs;
    scored->logprobs = NULL;
    return QE_OK;
}

/* KL(fp32 || this variant) at each position of the first continuation, when fp32 rows exist. */
static void compare_with_reference(qh_run_context *c, int doc_index, const qh_choice_result *first, int n_vocab)
{
    qh_reference_rows *ref = c->reference;
    if (!ref || !ref->logprobs || doc_index >= ref->n_docs || !ref->logprobs[doc_index] || !first->logprobs ||
        ref->n_positions[doc_index] != first->n_positions || ref->n_vocab != n_vocab)
        return;
    for (int i = 0; i < first->n_positions; i++) {
        const float *ra = ref->logprobs[doc_index] + (size_t)i * n_vocab, *rb = first->logprobs + (size_t)i * n_vocab;
        push_value(&c->meter.kl, &c->meter.n_kl, &c->meter.cap_kl, qe_kl_divergence_f32(ra, rb, (size_t)n_vocab));
    }
}

static void keep_reference(qh_run_context *c, int doc_index, qh_choice_result *first, int n_vocab)
{
    qh_reference_rows *ref = c->reference;
    size_t bytes = (size_t)first->n_positions * n_vocab * sizeof(float);
    if (!ref || !ref->logprobs || doc_index >= ref->n_docs || !first->logprobs ||
        c->reference_bytes + bytes > QH_KL_MEMORY_CAP_BYTES)
        return;
    ref->n_vocab = n_vocab;
    ref->logprobs[doc_index] = first->logprobs;
    ref->n_positions[doc_index] = first->n_positions;
    first->logprobs = NULL;
    c->reference_bytes += bytes;
}

/* The continuations of the block's loglikelihood documents, in order: the cached ones from the
 * store, the others in one engine call (whose answers go into the cache in one transaction). */
static qe_status collect_choices(qh_run_context *c, qh_block_doc *docs, int n_docs, qh_block_choice *choices,
                                 qe_score_request *requests, int *n_requests, qe_error *err)
{
    bool want_rows = c->is_reference || (c->reference && c->reference->logprobs);
    int n = 0;
    *n_requests = 0;
    for (int d = 0; d < n_docs; d++) {
        const qt_request *request = &docs[d].request;
        for (int i = 0; request->type == QT_REQUEST_LOGLIKELIHOOD && i < request->n_continuations; i++, n++) {
            qh_block_choice *choice = &choices[n];
            choice->doc = d;
            choice->request = -1;
            request_hash("loglikelihood", request->context, request->continuations[i], choice->hash);
            bool want_logprobs = want_rows && i == 0, found = false;
            if (c->options->use_cache && !want_logprobs) {
                qe_status rc = choice_from_cache(c, choice->hash, &choice->result, &found, err);
                if (rc != QE_OK)
                    return rc;
            }
            if (!found) {
                choice->request = *n_requests;
                requests[(*n_requests)++] = (qe_score_request){request->context, request->continuations[i], want_logprobs};
            }
        }
    }
    return QE_OK;
}

static qe_status score_misses(qh_run_context *c, qh_block_doc *docs, qh_block_choice *choices, int n_choices,
                              const qe_score_request *requests, int n_requests, qe_error *err)
{
    qe_score_result *results = calloc((size_t)n_requests + 1, sizeof *results);
    qh_cache_entry *entries = calloc((size_t)n_requests + 1, sizeof *entries);
    qe_status rc = results && entries ? QE_OK : qe_fail(err, QE_ENOMEM, "out of memory");
    if (rc == QE_OK && n_requests > 0 && (rc = qe_score_batch(c->model, requests, n_requests, results, err)) != QE_OK)
        qe_fail_context(err, "%s docs %d-%d", docs[choices[0].doc].request.task, docs[choices[0].doc].request.doc_id,
                        docs[choices[n_choices - 1].doc].request.doc_id);
    int n_entries = 0;
    for (int k = 0; k < n_choices && rc == QE_OK; k++) {
        qh_block_choice *choice = &choices[k];
        if (choice->request < 0)
            continue;
        qe_score_result *scored = &results[choice->request];
        if ((rc = choice_from_score(scored, &choice->result, err)) != QE_OK)
            break;
        c->meter.n_requests++;
        c->meter.tokens_in += scored->n_context_tokens + scored->n_continuation_tokens;
        c->meter.prefill_ms += scored->elapsed_ms;
        docs[choice->doc].latency_ms += scored->elapsed_ms;
        if (c->options->use_cache) {
            char *json = choice_result_json(&choice->result);
            if (json)
                entries[n_entries++] = (qh_cache_entry){c->model_sha256, c->variant, choice->hash, json};
        }
    }
    if (rc == QE_OK && n_entries > 0)
        rc = qh_store_cache_put(c->store, entries, (size_t)n_entries, err);
    for (int k = 0; k < n_entries; k++)
        free((char *)entries[k].response_json);
    for (int k = 0; results && k < n_requests; k++)
        qe_score_result_clear(&results[k]);
    free(entries);
    free(results);
    return rc;
}

/* The records of the block's loglikelihood documents from their continuations' numbers; the
 * first continuation's positions go into the record and, as log-prob rows, into KL. */
static qe_status fill_loglikelihood_records(qh_run_context *c, qh_block_doc *docs, int n_docs,
                                            qh_block_choice *choices, qe_error *err)
{
    qe_model_info info;
    qe_model_get_info(c->model, &info);
    int k = 0;
    for (int d = 0; d < n_docs; d++) {
        const qt_request *request = &docs[d].request;
        qh_doc_record *record = &docs[d].record;
        if (request->type != QT_REQUEST_LOGLIKELIHOOD)
            continue;
        record->type = QT_REQUEST_LOGLIKELIHOOD;
        record->n_choices = request->n_continuations;
        record->loglikelihoods = calloc((size_t)request->n_continuations + 1, sizeof *record->loglikelihoods);
        record->is_greedy = calloc((size_t)request->n_continuations + 1, sizeof *record->is_greedy);
        if (!record->loglikelihoods || !record->is_greedy)
            return qe_fail(err, QE_ENOMEM, "out of memory");
        for (int i = 0; i < request->n_continuations; i++, k++) {
            qh_choice_result *choice = &choices[k].result;
            record->loglikelihoods[i] = choice->loglikelihood;
            record->is_greedy[i] = choice->is_greedy;
            record->was_truncated |= choice->was_truncated;
            if (i == 0) {
                if (c->is_reference)
                    keep_reference(c, docs[d].doc_index, choice, info.n_vocab);
                else
                    compare_with_reference(c, docs[d].doc_index, choice, info.n_vocab);
                record->argmax = choice->argmax;
                record->p_target = choice->p_target;
                record->n_positions = choice->n_positions;
                choice->argmax = NULL;
                choice->p_target = NULL;
            }
        }
    }
    return QE_OK;
}

/* Scores every loglikelihood document of the block at once: the store's cached answers, and
 * one engine call for the rest. Each document's latency is its requests' share of the call. */
static qe_status run_loglikelihood_block(qh_run_context *c, qh_block_doc *docs, int n_docs, qe_error *err)
{
    int n_choices = 0;
    for (int d = 0; d < n_docs; d++)
        if (docs[d].request.type == QT_REQUEST_LOGLIKELIHOOD)
            n_choices += docs[d].request.n_continuations;
    if (n_choices == 0)
        return QE_OK;
    double start_ms = now_ms();
    qh_block_choice *choices = calloc((size_t)n_choices, sizeof *choices);
    qe_score_request *requests = calloc((size_t)n_choices, sizeof *requests);
    int n_requests = 0;
    qe_status rc = choices && requests ? QE_OK : qe_fail(err, QE_ENOMEM, "out of memory");
    if (rc == QE_OK)
        rc = collect_choices(c, docs, n_docs, choices, requests, &n_requests, err);
    if (rc == QE_OK)
        rc = score_misses(c, docs, choices, n_choices, requests, n_requests, err);
    if (rc == QE_OK)
        rc = fill_loglikelihood_records(c, docs, n_docs, choices, err);
    /* what is not the engine's (the store, the records) is shared equally */
    double overhead_ms = now_ms() - start_ms;
    int n_loglikelihood_docs = 0;
    for (int d = 0; d < n_docs; d++)
        if (docs[d].request.type == QT_REQUEST_LOGLIKELIHOOD) {
            overhead_ms -= docs[d].latency_ms;
            n_loglikelihood_docs++;
        }
    for (int d = 0; d < n_docs; d++)
        if (docs[d].request.type == QT_REQUEST_LOGLIKELIHOOD && overhead_ms > 0)
            docs[d].latency_ms += overhead_ms / n_loglikelihood_docs;
    for (int k = 0; choices && k < n_choices; k++)
        choice_result_clear(&choices[k].result);
    free(choices);
    free(requests);
    return rc;
}

/* The store's key of a generation request: its context, stop strings and token budget. */
static qe_status generate_hash(const qt_request *request, char hash[65], qe_error *err)
{
    char max_tokens[32];
    cJSON *stops = cJSON_CreateStringArray(request->stops, request->n_stops);
    char *stops_json = stops ? cJSON_PrintUnformatted(stops) : NULL;
    cJSON_Delete(stops);
    if (!stops_json)
        return qe_fail(err, QE_ENOMEM, "out of memory");
    snprintf(max_tokens, sizeof max_tokens, "\n%d", request->max_new_tokens);
    char *key = malloc(strlen(stops_json) + sizeof max_tokens);
    if (!key) {
        free(stops_json);
        return qe_fail(err, QE_ENOMEM, "out of memory");
    }
    strcpy(key, stops_json);
    strcat(key, max_tokens);
    free(stops_json);
    request_hash("generate_until", request->context, key, hash);
    free(key);
    return QE_OK;
}

/* The record the cache holds for a generation request of this hash, into record (its text stays
 * NULL when the cache is off or has none). */
static qe_status take_cached(qh_run_context *c, const char *hash, qh_doc_record *record, qe_error *err)
{
    char *cached = NULL;
    if (!c->options->use_cache)
        return QE_OK;
    qe_status rc = qh_store_cache_get(c->store, c->model_sha256, c->variant, hash, &cached, err);
    if (rc == QE_OK && cached) {
        rc = qh_doc_record_from_json(cached, QT_REQUEST_GENERATE_UNTIL, record, err);
        if (rc != QE_OK)
            qh_doc_record_clear(record);
    }
    free(cached);
    return rc;
}

/* Documents docs[missing[j]] (j < n_missing) generated together (qe_generate_until_batch: one pass
 * a step for all of them, each document's text what it gets alone), each one's latency its share
 * of the batch's time, their answers put in the cache in one transaction. */
static qe_status generate_together(qh_run_context *c, qh_block_doc *docs, const int *missing, int n_missing,
                                   char (*hashes)[65], qe_error *err)
{
    qe_generate_request *requests = calloc((size_t)n_missing, sizeof *requests);
    char **texts = calloc((size_t)n_missing, sizeof *texts);
    qe_generate_stats *stats = calloc((size_t)n_missing, sizeof *stats);
    qh_cache_entry *entries = calloc((size_t)n_missing, sizeof *entries);
    qe_status rc = requests && texts && stats && entries ? QE_OK : qe_fail(err, QE_ENOMEM, "out of memory");
    for (int j = 0; j < n_missing && rc == QE_OK; j++) {
        const qt_request *request = &docs[missing[j]].request;
        requests[j] = (qe_generate_request){request->context, request->stops, request->n_stops,
                                            request->max_new_tokens};
    }
    double start_ms = now_ms();
    if (rc == QE_OK && (rc = qe_generate_until_batch(c->model, requests, n_missing, texts, stats, err)) != QE_OK) {
        const qt_request *first = &docs[missing[0]].request, *last = &docs[missing[n_missing - 1]].request;
        if (n_missing == 1)
            qe_fail_context(err, "%s doc %d", first->task, first->doc_id);
        else
            qe_fail_context(err, "%s docs %d to %d, generated together", first->task, first->doc_id, last->doc_id);
    }
    double share_ms = (now_ms() - start_ms) / n_missing;
    for (int j = 0; j < n_missing && rc == QE_OK; j++) {
        qh_block_doc *doc = &docs[missing[j]];
        doc->latency_ms += share_ms;
        doc->record.text = texts[j];
        texts[j] = NULL;
        doc->record.was_truncated = stats[j].was_truncated;
        c->meter.n_requests++;
        c->meter.tokens_in += stats[j].n_prompt_tokens;
        c->meter.tokens_out += stats[j].n_generated_tokens;
        c->meter.prefill_ms += stats[j].prefill_ms;
        c->meter.decode_ms += stats[j].decode_ms;
        if (c->options->use_cache) {
            char *json = NULL;
            rc = qh_doc_record_to_json(&doc->record, &json, err);
            entries[j] = (qh_cache_entry){c->model_sha256, c->variant, hashes[missing[j]], json};
        }
    }
    if (rc == QE_OK && c->options->use_cache)
        rc = qh_store_cache_put(c->store, entries, (size_t)n_missing, err);
    for (int j = 0; entries && texts && j < n_missing; j++) {
        free((char *)entries[j].response_json);
        free(texts[j]);
    }
    free(requests);
    free(texts);
    free(stats);
    free(entries);
    return rc;
}

/* The block's generation documents: each from the cache when it holds the request, the others
 * generated together (generate_together), then their code run where the task has tests. */
static qe_status run_generate_docs(qh_run_context *c, const qt_task *task, qh_block_doc *docs, int n_docs,
                                   qe_error *err)
{
    char (*hashes)[65] = calloc((size_t)n_docs, sizeof *hashes);
    int *missing = calloc((size_t)n_docs, sizeof *missing);
    qe_status rc = hashes && missing ? QE_OK : qe_fail(err, QE_ENOMEM, "out of memory");
    int n_missing = 0;
    for (int d = 0; d < n_docs && rc == QE_OK; d++) {
        if (docs[d].request.type != QT_REQUEST_GENERATE_UNTIL)
            continue;
        docs[d].record.type = QT_REQUEST_GENERATE_UNTIL;
        if ((rc = generate_hash(&docs[d].request, hashes[d], err)) == QE_OK &&
            (rc = take_cached(c, hashes[d], &docs[d].record, err)) == QE_OK && !docs[d].record.text)
            missing[n_missing++] = d;
    }
    if (rc == QE_OK && n_missing > 0)
        rc = generate_together(c, docs, missing, n_missing, hashes, err);
    for (int d = 0; d < n_docs && rc == QE_OK; d++) {
        if (docs[d].request.type != QT_REQUEST_GENERATE_UNTIL)
            continue;
        double start_ms = now_ms();
        rc = qh_execute_if_code(task, docs[d].doc_index, &docs[d].record, c->options, err);
        docs[d].latency_ms += now_ms() - start_ms;
    }
    free(hashes);
    free(missing);
    return rc;
}

/* Frees the strings a batch of sample rows owns. */
static void batch_clear(qh_sample_row *rows, int n)
{
    for (int i = 0; i < n; i++) {
        free((char *)rows[i].prompt_hash);
        free((char *)rows[i].response_json);
        free((char *)rows[i].filtered);
        free((char *)rows[i].outcome_json);
        free((char *)rows[i].target);
        free((char *)rows[i].question);
    }
}

static void progress_line(const qh_run_options *o, const char *variant, const char *task, int done, int total,
                          double elapsed_ms, const qh_task_meter *meter, bool is_final)
{
    if (o->is_quiet)
        return;
    bool is_tty = isatty(STDERR_FILENO);
    if (!is_tty && !is_final)
        return;
    double rate = elapsed_ms > 0 ? done / (elapsed_ms / 1e3) : 0;
    double eta_s = rate > 0 ? (total - done) / rate : 0;
    double tok_s = meter->prefill_ms + meter->decode_ms > 0
                       ? (meter->tokens_in + meter->tokens_out) / ((meter->prefill_ms + meter->decode_ms) / 1e3)
                       : 0;
    fprintf(stderr, "%s[%s] %-16s %d/%d  %.2f items/s  ETA %.0fs  %.0f tok/s%s", is_tty ? "\r\033[K" : "", variant,
            task, done, total, rate, eta_s, tok_s, is_final ? "\n" : "");
    fflush(stderr);
}

/* The sample row of a finished document; the row owns its strings (batch_clear frees them). */
static qe_status make_sample_row(qh_run_context *c, qt_task *task, qt_scores *scores, const qh_block_doc *doc,
                                 qh_sample_row *row, qe_error *err)
{
    memset(row, 0, sizeof *row);
    row->run_id = c->run_id;
    row->variant = c->variant;
    int doc_id = doc->doc_index;
    qe_status rc = qt_task_sample_key(task, doc->doc_index, &row->task, &doc_id, err); /* the subject, for MMLU */
    row->doc_id = doc_id;
    row->latency_ms = doc->latency_ms;
    char hash[65];
    request_hash("prompt", doc->request.context, "", hash);
    row->prompt_hash = strdup(hash);
    if (rc == QE_OK)
        rc = qt_task_doc_text(task, doc->doc_index, (char **)&row->question, err);
    if (rc == QE_OK)
        rc = qh_doc_record_to_json(&doc->record, (char **)&row->response_json, err);
    if (rc == QE_OK)
        rc = qh_sample_outcome(task, scores, doc->doc_index, &doc->record, (char **)&row->filtered,
                               (char **)&row->outcome_json, err);
    return rc;
}

/* Runs one block of documents: the loglikelihood ones in one engine call, the generation ones
 * one by one. */
static qe_status run_block(qh_run_context *c, qt_task *task, qh_block_doc *docs, int n_docs, qe_error *err)
{
    qe_status rc = QE_OK;
    for (int d = 0; d < n_docs && rc == QE_OK; d++) {
        double start_ms = now_ms();
        rc = qt_task_build_chat_request(task, docs[d].doc_index, c->chat, &docs[d].request, err);
        docs[d].latency_ms = now_ms() - start_ms;
    }
    if (rc == QE_OK)
        rc = run_loglikelihood_block(c, docs, n_docs, err);
    if (rc == QE_OK)
        rc = run_generate_docs(c, task, docs, n_docs, err);
    return rc;
}

static bool is_mine(const qh_run_context *c, int doc_index)
{
    return !c->owners || c->owners[doc_index] == c->options->shard_index;
}

/* Runs the documents of one task that this shard owns and the store lacks, a block at a time. */
static qe_status run_task(qh_run_context *c, qt_task *task, qe_error *err)
{
    const qh_run_options *o = c->options;
    const char *task_name = qt_task_name(task);
    int n_docs = qt_task_n_docs(task);
    int64_t *done_ids = NULL;
    size_t n_done = 0, next_done = 0;
    qe_status rc = qh_done_doc_indices(c->store, c->run_id, c->variant, task, &done_ids, &n_done, err);
    if (rc != QE_OK)
        return rc;
    int n_mine = 0;
    for (int d = 0; d < n_docs; d++)
        n_mine += is_mine(c, d);
    qt_scores *scores = NULL;
    if ((rc = qt_scores_create(task, &scores, err)) != QE_OK) {
        free(done_ids);
        return rc;
    }
    int block_docs = o->batch_docs > 0 ? o->batch_docs : QH_BLOCK_DOCS;
    qh_sample_row *batch = calloc((size_t)block_docs, sizeof *batch);
    qh_block_doc *block = calloc((size_t)block_docs, sizeof *block);
    if (!batch || !block)
        rc = qe_fail(err, QE_ENOMEM, "out of memory for a block of %d documents", block_docs);
    int n_finished = (int)n_done;
    double start_ms = now_ms();
    for (int d = 0; d < n_docs && rc == QE_OK;) {
        int n_block = 0;
        for (; d < n_docs && n_block < block_docs; d++) {
            if (!is_mine(c, d))
                continue;
            while (next_done < n_done && done_ids[next_done] < d)
                next_done++;
            if (next_done < n_done && done_ids[next_done] == d)
                continue;
            block[n_block++] = (qh_block_doc){.doc_index = d};
        }
        if (n_block == 0)
            break;
        if (stop_requested) {
            rc = qe_fail(err, QE_EINTERRUPTED, "interrupted by signal %d", (int)stop_requested);
            break;
        }
        rc = run_block(c, task, block, n_block, err);
        int n_batch = 0;
        for (int b = 0; b < n_block && rc == QE_OK; b++) {
            rc = make_sample_row(c, task, scores, &block[b], &batch[n_batch], err);
            n_batch++;
            push_value(&c->meter.latency_ms, &c->meter.n_latencies, &c->meter.cap_latencies, block[b].latency_ms);
        }
        if (rc == QE_OK)
            rc = qh_store_put_samples(c->store, batch, (size_t)n_batch, err);
        if (rc == QE_OK)
            n_finished += n_batch;
        batch_clear(batch, n_batch);
        for (int b = 0; b < n_block; b++) {
            qt_request_clear(&block[b].request);
            qh_doc_record_clear(&block[b].record);
        }
        progress_line(o, c->variant, task_name, n_finished, n_mine, now_ms() - start_ms, &c->meter, false);
    }
    c->meter.wall_ms += now_ms() - start_ms;
    progress_line(o, c->variant, task_name, n_finished, n_mine, now_ms() - start_ms, &c->meter, true);
    qt_scores_free(scores);
    free(done_ids);
    free(batch);
    free(block);
    return rc;
}

static qe_status store_perf(qh_run_context *c, const char *task_name, qe_error *err)
{
    const qh_task_meter *m = &c->meter;
    double qs[2] = {50, 95}, pct[2] = {NAN, NAN};
    if (m->n_latencies > 0)
        qr_percentiles(m->latency_ms, (size_t)m->n_latencies, qs, 2, pct, NULL);
    qh_perf_row perf = {
        .run_id = c->run_id, .variant = c->variant, .task = task_name,
        .n_requests = m->n_requests, .tokens_in = m->tokens_in, .tokens_out = m->tokens_out,
        .prefill_tok_s = m->prefill_ms > 0 ? m->tokens_in / (m->prefill_ms / 1e3) : NAN,
        .decode_tok_s = m->decode_ms > 0 ? m->tokens_out / (m->decode_ms / 1e3) : NAN,
        .latency_p50_ms = pct[0], .latency_p95_ms = pct[1], .wall_seconds = m->wall_ms / 1e3,
    };
    if (m->n_requests == 0)
        return QE_OK; /* everything came from the store: keep the throughput measured then */
    return qh_store_put_perf(c->store, &perf, 1, err);
}

static void meter_clear(qh_task_meter *m)
{
    free(m->latency_ms);
    free(m->kl);
    memset(m, 0, sizeof *m);
}

/* A model on a GPU: what it holds there (left -1 on the CPU). */
static void put_device_memory(const qe_model *model, qh_variant_row *row)
{
    qe_device_memory mem;
    if (!qe_model_device_memory(model, &mem))
        return;
    row->peak_device_bytes = (int64_t)mem.peak_bytes;
    row->device_weights_bytes = (int64_t)mem.weights_bytes;
    row->device_kv_peak_bytes = (int64_t)mem.kv_cache_peak_bytes;
    row->device_free_before_bytes = (int64_t)mem.free_before_bytes;
    row->device_free_after_bytes = (int64_t)mem.free_now_bytes;
    row->device_used_peak_bytes = (int64_t)mem.used_peak_bytes;
}

/* The memory estimate for the model as loaded, stored beside the measurements: at load time for
 * the whole context the model may run (context 0), after the tasks for the context its KV cache
 * reached, so that predicted and measured figures are of the same work. A failed estimate
 * leaves the row's figures unknown: it never stops a run. */
static void put_prediction(const qe_model *model, const qe_load_options *load, int context, qh_variant_row *row)
{
    /* batched generation keeps a cache for each slot it ran (each bounded by the context) */
    qe_estimate_options o = {.variant = load->variant, .context = context, .batch = qe_model_sequence_caches(model),
                             .device = load->device, .n_threads = load->n_threads};
    qe_memory_estimate e;
    qe_error ignored;
    if (qe_model_estimate_memory(model, &o, &e, &ignored) != QE_OK)
        return;
    row->predicted_context = e.context;
    row->predicted_weights_bytes = (int64_t)e.weights_bytes;
    row->predicted_kv_cache_bytes = (int64_t)e.kv_cache_bytes;
    row->predicted_activation_bytes = (int64_t)e.activation_bytes;
    row->predicted_peak_bytes = (int64_t)(e.weights_bytes + e.kv_cache_bytes + e.activation_bytes);
}

static qe_status run_variant(qh_store *store, const qh_run_options *o, int64_t run_id, const char *variant_name,
                             const char *model_sha256, qt_task **tasks, int *const *owners,
                             qh_reference_rows *references, bool keep_references, qe_error *err)
{
    qe_load_options load = {.device = o->device, .device_index = o->device_index, .n_threads = o->n_threads};
    qe_status rc = qe_variant_parse(variant_name, &load.variant, err);
    if (rc != QE_OK)
        return rc;
    qh_reset_peak_rss();
    double t0 = now_ms();
    qe_model *model = NULL;
    if ((rc = qe_model_load(o->model, &load, &model, err)) != QE_OK)
        return rc;
    qh_model_print_notice(model);
    double load_s = (now_ms() - t0) / 1e3;
    qe_model_info info;
    qe_model_get_info(model, &info);
    qh_variant_row vrow = {
        .run_id = run_id, .variant = variant_name, .device = o->device == QE_DEVICE_CUDA ? "cuda" : "cpu",
        .load_seconds = load_s, .quantize_seconds = NAN,
        .footprint_bytes = (int64_t)info.footprint_bytes, .hf_footprint_bytes = (int64_t)info.hf_footprint_bytes,
        .estimate_bytes = (int64_t)info.estimate_bytes, .peak_rss_bytes = qh_peak_rss_bytes(),
        .peak_device_bytes = -1, .source_note = info.source_note && info.source_note[0] ? info.source_note : NULL,
        .device_weights_bytes = -1, .device_kv_peak_bytes = -1, .device_free_before_bytes = -1,
        .device_free_after_bytes = -1, .predicted_context = -1, .predicted_weights_bytes = -1,
        .predicted_kv_cache_bytes = -1, .predicted_activation_bytes = -1, .predicted_peak_bytes = -1,
        .device_used_peak_bytes = -1,
    };
    put_device_memory(model, &vrow);
    put_prediction(model, &load, 0, &vrow);
    rc = qh_store_put_variants(store, &vrow, 1, err);
    qh_chat chat = {0};
    qt_chat_renderer renderer;
    if (rc == QE_OK)
        rc = qh_chat_parse(o->chat_template, &chat, err);
    chat.model = model;
    qh_run_context c = {
        .store = store, .options = o, .run_id = run_id, .model = model, .variant = variant_name,
        .model_sha256 = model_sha256, .is_reference = keep_references, .chat = qh_chat_renderer(&chat, &renderer),
    };
    for (int t = 0; t < o->n_tasks && rc == QE_OK; t++) {
        c.reference = &references[t];
        c.owners = owners ? owners[t] : NULL;
        if (keep_references && !references[t].logprobs) {
            int n_docs = qt_task_n_docs(tasks[t]);
            references[t].n_docs = n_docs;
            references[t].logprobs = calloc((size_t)n_docs + 1, sizeof *references[t].logprobs);
            references[t].n_positions = calloc((size_t)n_docs + 1, sizeof *references[t].n_positions);
        }
        meter_clear(&c.meter);
        rc = run_task(&c, tasks[t], err);
        qe_error tail_err;
        qe_status tail_rc = store_perf(&c, qt_task_name(tasks[t]), &tail_err);
        if (tail_rc == QE_OK)
            tail_rc = qh_score_task(store, run_id, variant_name, tasks[t], c.meter.kl, c.meter.n_kl, &tail_err);
        if (rc == QE_OK && tail_rc != QE_OK) {
            rc = tail_rc;
            *err = tail_err;
        }
    }
    /* The peaks cover loading and every task of this variant. */
    vrow.peak_rss_bytes = qh_peak_rss_bytes();
    put_device_memory(model, &vrow);
    if (qe_model_cache_capacity(model) > 0)
        put_prediction(model, &load, qe_model_cache_capacity(model), &vrow);
    qe_error peak_err;
    qh_store_put_variants(store, &vrow, 1, rc == QE_OK ? err : &peak_err);
    meter_clear(&c.meter);
    qe_model_free(model);
    return rc;
}

static qe_status load_tasks(const qh_run_options *o, qt_task **tasks, char **tasks_json, qe_error *err)
{
    qt_task_options topts;
    qt_task_options_default(&topts);
    topts.data_dir = o->data_dir;
    topts.limit = o->limit;
    topts.num_fewshot = o->num_fewshot;
    topts.subsets = o->subjects;
    topts.subsets_where_defined = true; /* --subjects picks MMLU's subjects, not GSM8K's */
    topts.seed = o->seed;
    topts.skip_bad_rows = o->skip_bad_rows;
    cJSON *list = cJSON_CreateArray();
    qe_status rc = QE_OK;
    for (int t = 0; t < o->n_tasks && rc == QE_OK; t++) {
        rc = qt_task_load(o->tasks[t], o->tasks_dir, &topts, &tasks[t], err);
        if (rc == QE_OK) {
            cJSON *entry = cJSON_CreateObject();
            cJSON_AddStringToObject(entry, "task", qt_task_name(tasks[t]));
            cJSON_AddNumberToObject(entry, "n_docs", qt_task_n_docs(tasks[t]));
            cJSON_AddNumberToObject(entry, "n_bad_rows", qt_task_n_bad_rows(tasks[t]));
            char hash[65];
            if (qt_task_definition_sha256(tasks[t], hash) == QE_OK)
                cJSON_AddStringToObject(entry, "definition_sha256", hash);
            if ((rc = qt_task_data_sha256(tasks[t], hash, err)) == QE_OK)
                cJSON_AddStringToObject(entry, "data_sha256", hash);
            /* the template changes every request: runs that differ in it never merge */
            if (o->chat_family) {
                cJSON_AddStringToObject(entry, "chat_template", o->chat_template);
                cJSON_AddStringToObject(entry, "chat_template_family", o->chat_family);
            }
            cJSON_AddItemToArray(list, entry);
        }
    }
    *tasks_json = cJSON_PrintUnformatted(list);
    cJSON_Delete(list);
    return rc;
}

qe_status qh_run_matrix(qh_store *store, const qh_run_options *o, int64_t resume_run_id, int64_t *run_id,
                        qe_error *err)
{
    *run_id = resume_run_id;
    qt_task **tasks = calloc((size_t)o->n_tasks + 1, sizeof *tasks);
    qh_reference_rows *references = calloc((size_t)o->n_tasks + 1, sizeof *references);
    char *tasks_json = NULL, *files_json = NULL, model_sha256[65];
    int **owners = NULL; /* the shard plan; NULL: one shard runs everything */
    qe_status rc = tasks && references ? QE_OK : qe_fail(err, QE_ENOMEM, "out of memory");
    if (rc == QE_OK)
        rc = load_tasks(o, tasks, &tasks_json, err);
    if (rc == QE_OK && o->shard_count > 1)
        rc = qh_shard_plan(tasks, o->n_tasks, o->shard_count, &owners, NULL, err);
    if (rc == QE_OK)
        rc = qh_hash_model_weights(o->model, model_sha256, &files_json, err);
    if (rc == QE_OK && resume_run_id <= 0) {
        qh_host_facts host;
        qh_host_facts_read(&host);
        char sandbox_json[512];
        qh_sandbox_settings_json(o, sandbox_json, sizeof sandbox_json);
        qh_run info = {
            .qeval_version = QEVAL_VERSION, .git_commit = qh_git_commit[0] ? qh_git_commit : NULL,
            .command_line = o->command_line, .host_cpu = host.cpu_model, .host_cores = host.n_cores,
            .host_ram_bytes = host.ram_bytes, .gpu_name = host.gpu_name[0] ? host.gpu_name : NULL,
            .gpu_driver = host.gpu_driver[0] ? host.gpu_driver : NULL, .gpu_memory_bytes = host.gpu_memory_bytes,
            .model_path = o->model, .model_sha256 = model_sha256, .weight_files_json = files_json,
            .tasks_json = tasks_json, .options_json = o->options_json, .sandbox_json = sandbox_json,
        };
        rc = qh_store_create_run(store, &info, run_id, err);
    }
    if (rc == QE_OK) {
        struct sigaction sa = {.sa_handler = on_stop_signal};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        /* fp32 first, so that the other variants can be compared with it as they run */
        int fp32_index = -1;
        for (int v = 0; v < o->n_variants; v++)
            if (!strcmp(o->variants[v], "fp32"))
                fp32_index = v;
        for (int pass = 0; pass < o->n_variants && rc == QE_OK; pass++) {
            int v = fp32_index < 0 ? pass : pass == 0 ? fp32_index : pass <= fp32_index ? pass - 1 : pass;
            rc = run_variant(store, o, *run_id, o->variants[v], model_sha256, tasks, owners, references,
                             v == fp32_index && o->n_variants > 1, err);
        }
    }
    if (*run_id > 0) {
        qe_error finish_err;
        qh_run_status status = rc == QE_OK ? QH_RUN_COMPLETE : rc == QE_EINTERRUPTED ? QH_RUN_INTERRUPTED : QH_RUN_FAILED;
        qh_store_finish_run(store, *run_id, status, rc == QE_OK ? NULL : err->msg, &finish_err);
    }
    for (int t = 0; tasks && t < o->n_tasks; t++) {
        qt_task_free(tasks[t]);
        reference_rows_free(&references[t]);
    }
    qh_shard_plan_free(owners, o->n_tasks);
    free(tasks);
    free(references);
    free(tasks_json);
    free(files_json);
    return rc;
}
