/* qeval bench MODEL [--variants fp32,bf16,...] [-p N] [-n N] [-r N] [--batch N] [--decode-after-prompt]
 *                   [--decode-batch B] [--threads N] [--device D]
 * qeval bench MODEL --scoring [--docs N] [--context-tokens N] [--variants ...] [--threads N] [--device D]
 * Prefill and decode speed of each variant measured as llama.cpp's llama-bench measures them, so
 * the two read side by side: ppP prefills P tokens (ids spread over the vocabulary) from an empty
 * cache in one batch (or batches of --batch), tgN runs N one-token decode steps from an empty
 * cache (or, with --decode-after-prompt, after the prompt), with --decode-batch B for B sequences
 * at once as batched generation runs them (tokens/s counts all B); each test runs once to warm up,
 * then -r times, and prints the mean and standard deviation of its tokens/s. Beside decode it
 * prints the weight bytes one decode step reads times tokens/s, and the machine's memory
 * bandwidth measured with the same threads, so the distance to the limit is visible. Or, with
 * --scoring, how many MMLU-shaped documents (a 5-shot context, four one-token answers " A" ...
 * " D") a variant scores per second. Every variant also says how long opening it took (read,
 * convert, quantize, upload). On a GPU each variant also gets a line of device memory,
 * measured against qeval estimate's prediction for the context its KV cache reached: weights and
 * KV cache (the allocator's count), the allocator's peak, and the most cudaMemGetInfo showed in
 * use after any allocation against the predicted total with the CUDA context. A measurement,
 * not a test. */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "build_info.h"
#include "cli.h"
#include "host.h"
#include "model_cache.h"
#include "qeval_engine.h"

#define MAX_VARIANTS 8

typedef struct {
    double mean, sd;            /* tokens/s over the repetitions */
} rate;

/* On a GPU, after a variant's work: measured against qeval estimate's prediction for the
 * context the KV cache reached (measure_device_memory says how each is taken). */
typedef struct {
    bool has;                   /* false on the CPU */
    char no_estimate[256];      /* why there is no prediction, or "" */
    int context;
    uint64_t weights_bytes, predicted_weights_bytes;
    uint64_t kv_cache_bytes, predicted_kv_cache_bytes;
    uint64_t peak_bytes, predicted_peak_bytes;       /* the allocator's; weights + KV + activations */
    uint64_t seen_peak_bytes, predicted_total_bytes; /* cudaMemGetInfo's view; with the CUDA context */
    uint64_t predicted_context_bytes, context_bytes; /* the constant; total - free before the model */
} bench_device_memory;

typedef struct {
    char name[16];
    rate prefill, decode;
    uint64_t decode_read_bytes; /* weight bytes one decode step reads */
    double load_s;              /* opening the variant: read, convert, quantize, upload */
    double docs_per_s, mean_context_tokens; /* --scoring */
    bench_device_memory device_memory;
} bench_result;

typedef struct {
    int n_prompt, n_gen, n_reps, max_batch;
    int decode_batch;           /* sequences decoded together (qe_forward_sequences); 1: one */
    bool is_decode_after_prompt;
} bench_plan;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/* Mean and sample standard deviation of x[n] */
static rate rate_of(const double *x, int n)
{
    rate r = {0, 0};
    for (int i = 0; i < n; i++) r.mean += x[i] / n;
    for (int i = 0; n > 1 && i < n; i++) r.sd += (x[i] - r.mean) * (x[i] - r.mean) / (n - 1);
    r.sd = sqrt(r.sd);
    return r;
}

/* The prompt (and decode) tokens: ids spread over the vocabulary, first = 0 or 1 so that the
 * warm-up and the measured runs start differently. */
static void fill_ids(int32_t *ids, int n, int n_vocab, unsigned first)
{
    for (int i = 0; i < n; i++)
        ids[i] = (int32_t)((7919u * (unsigned)i + 3u + first) % (unsigned)n_vocab);
}

/* One ppP run: milliseconds to prefill ids[n_prompt] from an empty cache; the last row reduced
 * where it is, as scoring and generation take their rows. */
static qe_status time_prefill(qe_model *model, const int32_t *ids, const bench_plan *plan, double *ms, qe_error *err)
{
    double t0 = now_ms();
    qe_status rc = qe_forward_step(model, ids, plan->n_prompt, 0, plan->max_batch, NULL, err);
    *ms = now_ms() - t0;
    return rc;
}

/* One tgN run: milliseconds for n_gen one-token steps, from position 0 or after the prompt
 * (prefilled first, untimed); with a decode batch, steps of that many sequences, each given
 * the same tokens. Each step ends as greedy generation's does: its rows' argmax found where the
 * logits are, nothing else brought back. */
static qe_status time_decode(qe_model *model, const int32_t *ids, const bench_plan *plan, double *ms, qe_error *err)
{
    int pos0 = plan->is_decode_after_prompt ? plan->n_prompt : 0, batch = plan->decode_batch;
    qe_status rc = QE_OK;
    if (batch > 1) {
        int32_t step_ids[batch];
        rc = qe_sequences_reset(model, batch, err);
        for (int b = 0; b < batch && rc == QE_OK && pos0 > 0; b++)
            rc = qe_sequence_prefill(model, b, ids, pos0, err);
        double t0 = now_ms();
        for (int i = 0; rc == QE_OK && i < plan->n_gen; i++) {
            for (int b = 0; b < batch; b++)
                step_ids[b] = ids[pos0 + i];
            rc = qe_forward_sequences(model, step_ids, batch, NULL, err);
        }
        *ms = now_ms() - t0;
        return rc;
    }
    if (pos0 > 0)
        rc = qe_forward_step(model, ids, plan->n_prompt, 0, plan->max_batch, NULL, err);
    double t0 = now_ms();
    for (int i = 0; rc == QE_OK && i < plan->n_gen; i++)
        rc = qe_forward_step(model, &ids[pos0 + i], 1, pos0 + i, 0, NULL, err);
    *ms = now_ms() - t0;
    return rc;
}

#define MIB(bytes) ((double)(bytes) / (1 << 20))

/* What a model on a GPU holds after its work (nothing on the CPU): the allocator's and
 * cudaMemGetInfo's figures, and qe_model_estimate_memory's prediction for the context the KV
 * cache reached and n_sequences caches (a decode batch). */
static void measure_device_memory(const qe_model *model, const qe_load_options *options, int chunk_tokens,
                                  int n_sequences, bench_device_memory *out)
{
    *out = (bench_device_memory){0};
    qe_device_memory mem;
    if (!qe_model_device_memory(model, &mem))
        return;
    out->has = true;
    out->weights_bytes = mem.weights_bytes;
    out->kv_cache_bytes = mem.kv_cache_peak_bytes;
    out->peak_bytes = mem.peak_bytes;
    out->seen_peak_bytes = mem.used_peak_bytes;
    out->context_bytes = mem.total_bytes - mem.free_before_bytes;
    qe_estimate_options o = {.variant = options->variant, .context = qe_model_cache_capacity(model),
                             .batch = n_sequences, .device = QE_DEVICE_CUDA, .n_threads = options->n_threads,
                             .chunk_tokens = chunk_tokens};
    qe_memory_estimate e;
    qe_error err;
    if (o.context < 1 || qe_model_estimate_memory(model, &o, &e, &err) != QE_OK) {
        snprintf(out->no_estimate, sizeof out->no_estimate, "%s", o.context < 1 ? "nothing ran" : err.msg);
        return;
    }
    out->context = e.context;
    out->predicted_weights_bytes = e.weights_bytes;
    out->predicted_kv_cache_bytes = e.kv_cache_bytes;
    out->predicted_peak_bytes = e.weights_bytes + e.kv_cache_bytes + e.activation_bytes;
    out->predicted_total_bytes = e.total_bytes;
    out->predicted_context_bytes = e.context_overhead_bytes;
}

static void print_device_memory(const char *variant, const bench_device_memory *m)
{
    if (!m->has)
        return;
    if (m->no_estimate[0]) {
        printf("%-10s memory   weights %" PRIu64 ", allocator peak %.1f MiB; no estimate: %s\n", variant,
               m->weights_bytes, MIB(m->peak_bytes), m->no_estimate);
        return;
    }
    printf("%-10s memory   context %d: weights %" PRIu64 " (predicted %" PRIu64 "%s), KV %.1f MiB (predicted %.1f), "
           "allocator peak %.1f MiB (predicted %.1f, x%.3f); cudaMemGetInfo peak %.1f MiB (predicted %.1f with a "
           "%.0f MiB context, x%.3f; the context measured %.1f MiB)\n",
           variant, m->context, m->weights_bytes, m->predicted_weights_bytes,
           m->weights_bytes == m->predicted_weights_bytes ? ", exact" : "", MIB(m->kv_cache_bytes),
           MIB(m->predicted_kv_cache_bytes), MIB(m->peak_bytes), MIB(m->predicted_peak_bytes),
           (double)m->peak_bytes / (double)m->predicted_peak_bytes, MIB(m->seen_peak_bytes),
           MIB(m->predicted_total_bytes), MIB(m->predicted_context_bytes),
           (double)m->seen_peak_bytes / (double)m->predicted_total_bytes, MIB(m->context_bytes));
}

/* The variant opened (read, converted, quantized, uploaded), and the seconds that took. */
static qe_status open_timed(const char *path, const qe_load_options *options, qe_model **model, double *load_s,
                            qe_error *err)
{
    double start_ms = now_ms();
    qe_status rc = qh_model_open(path, options, model, err);
    *load_s = (now_ms() - start_ms) / 1e3;
    return rc;
}

static qe_status bench_one(const char *path, const qe_load_options *options, const bench_plan *plan,
                           bench_result *out, qe_error *err)
{
    qe_model *model = NULL;
    qe_status rc = open_timed(path, options, &model, &out->load_s, err);
    if (rc != QE_OK)
        return rc;
    qe_model_info info;
    qe_model_get_info(model, &info);
    int64_t n_ids = (int64_t)plan->n_prompt + plan->n_gen;
    if (n_ids > info.max_context) {
        qe_model_free(model);
        return qe_fail(err, QE_EINVAL, "%s: %d prompt + %d generated tokens exceed the %d-token window", path,
                       plan->n_prompt, plan->n_gen, info.max_context);
    }
    int32_t *ids = malloc((size_t)n_ids * sizeof *ids), *warm = malloc((size_t)n_ids * sizeof *warm);
    double *prefill_tok_s = calloc((size_t)plan->n_reps, sizeof *prefill_tok_s);
    double *decode_tok_s = calloc((size_t)plan->n_reps, sizeof *decode_tok_s);
    if (!ids || !warm || !prefill_tok_s || !decode_tok_s)
        rc = qe_fail(err, QE_ENOMEM, "out of memory");
    double ms = 0;
    if (rc == QE_OK) {
        fill_ids(ids, n_ids, info.n_vocab, 0);
        fill_ids(warm, n_ids, info.n_vocab, 1);
        /* warm-up: one run of each test */
        if ((rc = time_prefill(model, warm, plan, &ms, err)) == QE_OK)
            rc = time_decode(model, warm, plan, &ms, err);
    }
    for (int r = 0; rc == QE_OK && r < plan->n_reps; r++) {
        if ((rc = time_prefill(model, ids, plan, &ms, err)) != QE_OK)
            break;
        prefill_tok_s[r] = plan->n_prompt / (ms / 1e3);
        if ((rc = time_decode(model, ids, plan, &ms, err)) != QE_OK)
            break;
        decode_tok_s[r] = (double)plan->n_gen * plan->decode_batch / (ms / 1e3);
    }
    if (rc == QE_OK) {
        snprintf(out->name, sizeof out->name, "%s", qe_variant_name(&options->variant));
        out->prefill = rate_of(prefill_tok_s, plan->n_reps);
        out->decode = rate_of(decode_tok_s, plan->n_reps);
        out->decode_read_bytes = info.decode_read_bytes;
        measure_device_memory(model, options, plan->max_batch, plan->decode_batch, &out->device_memory);
    }
    free(ids);
    free(warm);
    free(prefill_tok_s);
    free(decode_tok_s);
    qe_model_free(model);
    return rc;
}

/* ---- the machine's memory bandwidth --------------------------------------------------------- */

#define BANDWIDTH_BYTES ((size_t)512 << 20) /* above the model sizes compared, and most L3s */
#define BANDWIDTH_PASSES 5

typedef struct {
    const uint64_t *src;
    uint64_t *dst;              /* NULL: read only */
    size_t n_words;
    uint64_t sum;
} bandwidth_share;

static void *bandwidth_worker(void *p)
{
    bandwidth_share *s = p;
    if (s->dst) {
        memcpy(s->dst, s->src, s->n_words * sizeof *s->src);
        return NULL;
    }
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i + 4 <= s->n_words; i += 4) {
        a += s->src[i];
        b += s->src[i + 1];
        c += s->src[i + 2];
        d += s->src[i + 3];
    }
    s->sum = a + b + c + d;
    return NULL;
}

/* Bytes/s of the best of BANDWIDTH_PASSES passes of n_threads threads, each over its share of
 * src[n_words] (reading it, or copying it to dst: bytes read + written, as STREAM counts). */
#define BANDWIDTH_MAX_THREADS 64

static int resolved_threads(int n_threads) { return n_threads > 0 ? n_threads : (int)sysconf(_SC_NPROCESSORS_ONLN); }

/* The threads the bandwidth measurement runs with: --threads (or the cores), at most 64. */
static int bandwidth_threads(int n_threads)
{
    int n = resolved_threads(n_threads);
    return n < 1 ? 1 : n > BANDWIDTH_MAX_THREADS ? BANDWIDTH_MAX_THREADS : n;
}

static double best_bandwidth(const uint64_t *src, uint64_t *dst, size_t n_words, int n_threads)
{
    pthread_t threads[BANDWIDTH_MAX_THREADS];
    bandwidth_share shares[BANDWIDTH_MAX_THREADS];
    double best_s = INFINITY;
    size_t per = n_words / n_threads;
    for (int pass = 0; pass < BANDWIDTH_PASSES; pass++) {
        double t0 = now_ms();
        int n_started = 0; /* threads[0 .. n_started) run; a share whose thread failed runs here */
        for (int i = 0; i < n_threads; i++) {
            shares[i] = (bandwidth_share){src + i * per, dst ? dst + i * per : NULL, per, 0};
            if (i > 0 && pthread_create(&threads[n_started], NULL, bandwidth_worker, &shares[i]) == 0)
                n_started++;
            else if (i > 0)
                bandwidth_worker(&shares[i]);
        }
        bandwidth_worker(&shares[0]);
        for (int i = 0; i < n_started; i++) pthread_join(threads[i], NULL);
        double s = (now_ms() - t0) / 1e3;
        if (s < best_s)
            best_s = s;
    }
    return (double)per * n_threads * sizeof *src * (dst ? 2 : 1) / best_s;
}

/* Read and copy bandwidth (bytes/s) of n_threads threads over BANDWIDTH_BYTES; 0 when out of memory. */
static void machine_bandwidth(int n_threads, double *read_bytes_s, double *copy_bytes_s)
{
    *read_bytes_s = *copy_bytes_s = 0;
    n_threads = bandwidth_threads(n_threads);
    size_t n_words = BANDWIDTH_BYTES / sizeof(uint64_t);
    uint64_t *src = malloc(BANDWIDTH_BYTES), *dst = malloc(BANDWIDTH_BYTES / 2);
    if (src && dst) {
        for (size_t i = 0; i < n_words; i++) src[i] = i;
        memset(dst, 0, BANDWIDTH_BYTES / 2);
        *read_bytes_s = best_bandwidth(src, NULL, n_words, n_threads);
        *copy_bytes_s = best_bandwidth(src, dst, n_words / 2, n_threads);
    }
    free(src);
    free(dst);
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
    qe_status rc = open_timed(path, options, &model, &out->load_s, err);
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
        measure_device_memory(model, options, 0, 1, &out->device_memory);
    }
    for (int d = 0; contexts && d <= n_docs; d++)
        free(contexts[d]);
    free(contexts);
    qe_model_free(model);
    return rc;
}

static void print_header(bool is_scoring)
{
    if (is_scoring)
        printf("%-10s %14s %14s\n", "variant", "context tok", "docs/s");
    else
        printf("%-10s %-8s %18s %12s %12s\n", "variant", "test", "tok/s", "MB/token", "GB/s");
}

static void print_result(const bench_result *r, const bench_plan *plan, bool is_scoring)
{
    if (is_scoring) {
        printf("%-10s %14.0f %14.2f\n", r->name, r->mean_context_tokens, r->docs_per_s);
    } else {
        char pp[32], tg[32];
        snprintf(pp, sizeof pp, "pp%d", plan->n_prompt);
        int at = snprintf(tg, sizeof tg, "tg%d%s", plan->n_gen, plan->is_decode_after_prompt ? "@pp" : "");
        if (plan->decode_batch > 1)
            snprintf(tg + at, sizeof tg - at, "x%d", plan->decode_batch);
        printf("%-10s %-8s %11.1f ± %5.1f\n", r->name, pp, r->prefill.mean, r->prefill.sd);
        double read_per_token = (double)r->decode_read_bytes / plan->decode_batch; /* a step reads them once */
        printf("%-10s %-8s %11.1f ± %5.1f %12.1f %12.2f\n", r->name, tg, r->decode.mean, r->decode.sd,
               read_per_token / 1e6, read_per_token * r->decode.mean / 1e9);
    }
    printf("%-10s %-8s %11.3f s (read, convert, quantize, upload)\n", r->name, "load", r->load_s);
    print_device_memory(r->name, &r->device_memory);
    fflush(stdout);
}

/* What a --json document says of how the figures were taken. */
typedef struct {
    int argc;
    char **argv;
    const char *model;
    qe_device_kind device;
    int device_index, n_threads;
    bool is_scoring;
    const bench_plan *plan;
    int n_docs, n_context_tokens;
} bench_setup;

static void add_rate(cJSON *parent, const char *name, rate r)
{
    cJSON *o = cJSON_AddObjectToObject(parent, name);
    cJSON_AddNumberToObject(o, "mean", r.mean);
    cJSON_AddNumberToObject(o, "sd", r.sd);
}

static void add_device_memory(cJSON *parent, const bench_device_memory *m)
{
    if (!m->has) {
        cJSON_AddNullToObject(parent, "device_memory");
        return;
    }
    cJSON *o = cJSON_AddObjectToObject(parent, "device_memory");
    cJSON_AddNumberToObject(o, "weights_bytes", (double)m->weights_bytes);
    cJSON_AddNumberToObject(o, "kv_cache_peak_bytes", (double)m->kv_cache_bytes);
    cJSON_AddNumberToObject(o, "peak_bytes", (double)m->peak_bytes);
    cJSON_AddNumberToObject(o, "cuda_peak_bytes", (double)m->seen_peak_bytes);
    cJSON_AddNumberToObject(o, "cuda_context_bytes", (double)m->context_bytes);
    if (m->no_estimate[0]) {
        cJSON_AddStringToObject(o, "no_estimate", m->no_estimate);
        return;
    }
    cJSON_AddNumberToObject(o, "predicted_context", m->context);
    cJSON_AddNumberToObject(o, "predicted_weights_bytes", (double)m->predicted_weights_bytes);
    cJSON_AddNumberToObject(o, "predicted_kv_cache_bytes", (double)m->predicted_kv_cache_bytes);
    cJSON_AddNumberToObject(o, "predicted_peak_bytes", (double)m->predicted_peak_bytes);
    cJSON_AddNumberToObject(o, "predicted_total_bytes", (double)m->predicted_total_bytes);
}

static int print_json(const bench_setup *b, const bench_result *results, int n_results, double read_bytes_s,
                      double copy_bytes_s)
{
    cJSON *root = cJSON_CreateObject();
    char command[4096] = "qeval";
    for (int i = 0; i < b->argc; i++) {
        size_t n = strlen(command);
        snprintf(command + n, sizeof command - n, " %s", b->argv[i]);
    }
    cJSON_AddStringToObject(root, "command", command);
    cJSON_AddStringToObject(root, "model", b->model);
    cJSON_AddStringToObject(root, "qeval_version", QEVAL_VERSION);
    if (qh_git_commit[0])
        cJSON_AddStringToObject(root, "git_commit", qh_git_commit);
    else
        cJSON_AddNullToObject(root, "git_commit");
    qh_host_facts host;
    qh_host_facts_read(&host);
    cJSON *h = cJSON_AddObjectToObject(root, "host");
    cJSON_AddStringToObject(h, "cpu", host.cpu_model);
    cJSON_AddNumberToObject(h, "cores", (double)host.n_cores);
    cJSON_AddStringToObject(h, "gpu", host.gpu_name);
    cJSON_AddStringToObject(h, "gpu_driver", host.gpu_driver);
    char device[32];
    snprintf(device, sizeof device, b->device == QE_DEVICE_CUDA ? "cuda:%d" : "cpu", b->device_index);
    cJSON_AddStringToObject(root, "device", device);
    cJSON_AddNumberToObject(root, "threads", resolved_threads(b->n_threads));
    cJSON_AddStringToObject(root, "mode", b->is_scoring ? "scoring" : "speed");
    cJSON *plan = cJSON_AddObjectToObject(root, "plan");
    if (b->is_scoring) {
        cJSON_AddNumberToObject(plan, "docs", b->n_docs);
        cJSON_AddNumberToObject(plan, "context_tokens", b->n_context_tokens);
    } else {
        cJSON_AddNumberToObject(plan, "prompt_tokens", b->plan->n_prompt);
        cJSON_AddNumberToObject(plan, "gen_tokens", b->plan->n_gen);
        cJSON_AddNumberToObject(plan, "repetitions", b->plan->n_reps);
        cJSON_AddNumberToObject(plan, "batch", b->plan->max_batch);
        cJSON_AddBoolToObject(plan, "decode_after_prompt", b->plan->is_decode_after_prompt);
        cJSON_AddNumberToObject(plan, "decode_batch", b->plan->decode_batch);
    }
    cJSON *variants = cJSON_AddArrayToObject(root, "variants");
    for (int i = 0; i < n_results; i++) {
        const bench_result *r = &results[i];
        cJSON *v = cJSON_CreateObject();
        cJSON_AddItemToArray(variants, v);
        cJSON_AddStringToObject(v, "variant", r->name);
        cJSON_AddNumberToObject(v, "load_seconds", r->load_s);
        if (b->is_scoring) {
            cJSON_AddNumberToObject(v, "docs_per_s", r->docs_per_s);
            cJSON_AddNumberToObject(v, "mean_context_tokens", r->mean_context_tokens);
        } else {
            add_rate(v, "prefill_tok_s", r->prefill);
            add_rate(v, "decode_tok_s", r->decode);
            cJSON_AddNumberToObject(v, "decode_read_bytes", (double)r->decode_read_bytes);
        }
        add_device_memory(v, &r->device_memory);
    }
    if (!isnan(read_bytes_s)) {
        cJSON *bw = cJSON_AddObjectToObject(root, "memory_bandwidth");
        cJSON_AddNumberToObject(bw, "buffer_bytes", (double)BANDWIDTH_BYTES);
        cJSON_AddNumberToObject(bw, "threads", bandwidth_threads(b->n_threads));
        cJSON_AddNumberToObject(bw, "read_bytes_s", read_bytes_s);
        cJSON_AddNumberToObject(bw, "copy_bytes_s", copy_bytes_s);
    }
    return qh_print_json(root);
}

int qh_cmd_bench(int argc, char **argv)
{
    const char *path = NULL;
    char variants[256] = "fp32";
    bench_plan plan = {.n_prompt = 128, .n_gen = 32, .n_reps = 5, .max_batch = 0, .decode_batch = 1};
    int n_threads = 0, n_docs = 20, n_context_tokens = 600, device_index = 0;
    qe_device_kind device = qe_default_device();
    bool is_scoring = false, is_json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: qeval bench MODEL [--variants fp32,bf16,...] [-p|--prompt-tokens N] [-n|--gen-tokens N]\n"
                   "                         [-r|--repetitions N] [--batch N] [--decode-after-prompt]\n"
                   "                         [--decode-batch B] [--threads N] [--device cpu|cuda|cuda:N]\n"
                   "       qeval bench MODEL --scoring [--docs N] [--context-tokens N] [--variants ...] "
                   "[--threads N] [--device D]\n"
                   "  -p N                ppN: prefill N tokens (default 128) from an empty cache\n"
                   "  -n N                tgN: N one-token decode steps (default 32) from an empty cache\n"
                   "  -r N                runs of each test after one warm-up run (default 5): mean +- sd\n"
                   "  --batch N           prefill in batches of at most N tokens (default: the whole prompt)\n"
                   "  --decode-after-prompt  time the decode steps after the prompt instead\n"
                   "  --decode-batch B    decode B sequences at once, as batched generation does (default 1;\n"
                   "                      at most 256): tgNxB, tokens/s of all B\n"
                   "  --scoring           documents/s on MMLU-shaped documents: a 5-shot context of about\n"
                   "                      --context-tokens tokens (default 600), four answers \" A\" ... \" D\",\n"
                   "                      --docs distinct documents (default 20)\n"
                   "  --json              one JSON object instead of the table: the command, qeval's version and\n"
                   "                      commit, the host, the device, and every figure per variant\n");
            return QH_EXIT_OK;
        } else if (!strcmp(argv[i], "--variants") && i + 1 < argc)
            snprintf(variants, sizeof variants, "%s", argv[++i]);
        else if ((!strcmp(argv[i], "--prompt-tokens") || !strcmp(argv[i], "-p")) && i + 1 < argc)
            plan.n_prompt = atoi(argv[++i]);
        else if ((!strcmp(argv[i], "--gen-tokens") || !strcmp(argv[i], "-n")) && i + 1 < argc)
            plan.n_gen = atoi(argv[++i]);
        else if ((!strcmp(argv[i], "--repetitions") || !strcmp(argv[i], "-r")) && i + 1 < argc)
            plan.n_reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--batch") && i + 1 < argc)
            plan.max_batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--decode-after-prompt"))
            plan.is_decode_after_prompt = true;
        else if (!strcmp(argv[i], "--decode-batch") && i + 1 < argc)
            plan.decode_batch = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            n_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--scoring"))
            is_scoring = true;
        else if (!strcmp(argv[i], "--json"))
            is_json = true;
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
    if (plan.n_prompt < 1 || plan.n_gen < 1 || plan.n_reps < 1 || plan.max_batch < 0)
        return qh_usage_error("bench", "--prompt-tokens, --gen-tokens and --repetitions must be >= 1, --batch >= 0");
    if (plan.decode_batch < 1 || plan.decode_batch > 256)
        return qh_usage_error("bench", "--decode-batch must be from 1 to 256, not %d", plan.decode_batch);
    if (n_docs < 1 || n_context_tokens < 16)
        return qh_usage_error("bench", "--docs must be >= 1 and --context-tokens >= 16");
    if (plan.max_batch == 0)
        plan.max_batch = plan.n_prompt;
    bench_result results[MAX_VARIANTS];
    int n_results = 0;
    qe_error err = {0};
    if (!is_json)
        print_header(is_scoring);
    for (char *save = NULL, *name = strtok_r(variants, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        if (n_results == MAX_VARIANTS)
            return qh_usage_error("bench", "at most %d variants", MAX_VARIANTS);
        qe_load_options options = {.device = device, .device_index = device_index, .n_threads = n_threads};
        bench_result *r = &results[n_results];
        if (qe_variant_parse(name, &options.variant, &err) ||
            (is_scoring ? bench_scoring(path, &options, n_docs, n_context_tokens, r, &err)
                        : bench_one(path, &options, &plan, r, &err)))
            return qh_report_error(&err);
        if (!is_json)
            print_result(r, &plan, is_scoring);
        n_results++;
    }
    double read_bytes_s = NAN, copy_bytes_s = NAN;
    if (!is_scoring && device == QE_DEVICE_CPU)
        machine_bandwidth(n_threads, &read_bytes_s, &copy_bytes_s);
    if (is_json) {
        bench_setup setup = {.argc = argc, .argv = argv, .model = path, .device = device,
                             .device_index = device_index, .n_threads = n_threads, .is_scoring = is_scoring,
                             .plan = &plan, .n_docs = n_docs, .n_context_tokens = n_context_tokens};
        return print_json(&setup, results, n_results, read_bytes_s, copy_bytes_s);
    }
    for (int i = 1; i < n_results; i++) {
        if (is_scoring)
            printf("%s/%s: scoring x%.2f\n", results[i].name, results[0].name,
                   results[i].docs_per_s / results[0].docs_per_s);
        else
            printf("%s/%s: prefill x%.2f, decode x%.2f\n", results[i].name, results[0].name,
                   results[i].prefill.mean / results[0].prefill.mean, results[i].decode.mean / results[0].decode.mean);
    }
    if (!isnan(read_bytes_s))
        printf("memory bandwidth, %d threads over %zu MiB: read %.1f GB/s, copy %.1f GB/s (read + written)\n",
               bandwidth_threads(n_threads), BANDWIDTH_BYTES >> 20, read_bytes_s / 1e9, copy_bytes_s / 1e9);
    return QH_EXIT_OK;
}
