/* test_sliding_window — the bounded KV cache of sliding-window layers (the rule: qe_kv_positions
 * in engine/model_config.h) and the configs that describe them.
 *   - the rule on hand-computed values, the planner's figures among them;
 *   - hostile configs: window 0 or negative, layer_types of the wrong length or with an unknown
 *     or non-string name, a sliding layer without a window, head_dim missing where
 *     hidden_size / num_attention_heads does not give it: each one clear error;
 *   - the fixture tiny-gemma3 (window 8, two sliding layers and a full one) over sequences 4 to
 *     75 times its window: through rings of 11 and 27 rows (chunks of 4 and of 20 tokens, the
 *     latter longer than the window) and the default 263, in one pass, token by token and in
 *     uneven pieces, the logits equal those of the unbounded cache bit for bit (keys are visited
 *     in the same order, so nothing may differ), and the golden float64 logits and greedy ids of
 *     transformers (tests/golden/make_fixture_models.py) within verify's tolerance;
 *   - resuming a cached prefix: within the rings' reach it gives the fresh run's bits, past it
 *     qe_model_cached_prefix says 0 and a forward pass from there is refused with a clear error;
 *     a scoring batch whose contexts share prefixes scores every request as the flat cache does;
 *   - the cache's bytes, hand-computed: flat for the sliding layers past their ring while the full
 *     layer grows;
 *   - batched generation's decode pass: sequences on caches of their own, a token each a pass,
 *     through the rings: each one's bits alone. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model.h"
#include "qeval_engine.h"
#include "safetensors.h"

enum { WINDOW = 8, N_LAYERS = 3, KV_ROW_BYTES = 1 * 32 * 4 }; /* the fixture: 1 kv head of 32 floats */

/* ---- the rule ------------------------------------------------------------------------------ */

static void test_rule(void)
{
    qe_layer_config full = {0}, sliding = {.sliding_window = 16}, mistral = {.sliding_window = 4096};
    /* the ring: window + chunk - 1, at most max_context; a full layer never wraps */
    CHECK_INT_EQ(271, qe_kv_ring(&sliding, 4096, 256));
    CHECK_INT_EQ(23, qe_kv_ring(&sliding, 4096, 8));
    CHECK_INT_EQ(100, qe_kv_ring(&sliding, 100, 256));
    CHECK_INT_EQ(2048, qe_kv_ring(&mistral, 2048, 256));
    CHECK_INT_EQ(4096, qe_kv_ring(&full, 4096, 256));
    /* rows held: 256 doubled up to the positions run, at most max_context; a ring stops at its size */
    CHECK_INT_EQ(0, qe_kv_positions(&full, 0, 4096, 256));
    CHECK_INT_EQ(256, qe_kv_positions(&full, 1, 4096, 256));
    CHECK_INT_EQ(256, qe_kv_positions(&sliding, 1, 4096, 256));
    CHECK_INT_EQ(512, qe_kv_positions(&full, 300, 4096, 256));
    CHECK_INT_EQ(271, qe_kv_positions(&sliding, 300, 4096, 256));
    CHECK_INT_EQ(4096, qe_kv_positions(&full, 4000, 4096, 256));
    CHECK_INT_EQ(1000, qe_kv_positions(&full, 999, 1000, 256));
    CHECK_INT_EQ(271, qe_kv_positions(&sliding, 4000, 4096, 256));
    CHECK_INT_EQ(100, qe_kv_positions(&sliding, 50, 100, 256));
    CHECK_INT_EQ(2048, qe_kv_positions(&mistral, 2048, 2048, 256));
    CHECK_INT_EQ(512, qe_kv_capacity(257, 4096));

    /* the shared tiny-gemma3's shape: five sliding layers (window 16), one full, 1 kv head x 32;
     * 600 positions of a 4096 context: 2 x (5 x 271 + 1024) rows x 128 bytes */
    qe_layer_config layers[6] = {{16, 1}, {16, 1}, {16, 1}, {16, 1}, {16, 1}, {0, 0}};
    qe_model_config cfg = {.n_layers = 6, .n_kv_heads = 1, .head_dim = 32, .layers = layers};
    CHECK_INT_EQ(609024, qe_kv_cache_bytes(&cfg, 600, 4096, QE_FORWARD_CHUNK_TOKENS));
    /* Gemma-3 4B at 8192 positions: 34 layers of which 29 slide (window 1024), 4 kv heads x 256:
     * 2 x (29 x 1279 + 5 x 8192) rows x 4096 bytes, against 2 x 34 x 8192 x 4096 unbounded */
    qe_layer_config g4[34];
    for (int i = 0; i < 34; i++)
        g4[i] = (qe_layer_config){(i + 1) % 6 ? 1024 : 0, 0};
    qe_model_config gemma4b = {.n_layers = 34, .n_kv_heads = 4, .head_dim = 256, .layers = g4};
    CHECK_INT_EQ(639393792ull, qe_kv_cache_bytes(&gemma4b, 8192, 131072, QE_FORWARD_CHUNK_TOKENS));
}

/* ---- hostile configs ----------------------------------------------------------------------- */

/* A gemma3_text config of 3 layers with `extra` fields spliced in. */
static qe_status parse_gemma(const char *extra, qe_model_config *cfg, qe_error *err)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"model_type\":\"gemma3_text\",\"vocab_size\":8,\"hidden_size\":8,\"num_hidden_layers\":3,"
             "\"num_attention_heads\":2,\"num_key_value_heads\":1,\"head_dim\":4,\"intermediate_size\":8%s}",
             extra);
    return qe_model_config_parse("g/config.json", json, cfg, err);
}

static void expect_error(qe_status want, qe_status got, const qe_error *err, const char *message)
{
    CHECK_INT_EQ(want, got);
    if (!strstr(err->msg, message)) {
        fprintf(stderr, "expected \"%s\" in \"%s\"\n", message, err->msg);
        CHECK(false);
    }
}

static void test_configs(void)
{
    qe_model_config cfg;
    qe_error err = {0};
    const char *types = ",\"layer_types\":[\"sliding_attention\",\"sliding_attention\",\"full_attention\"]";
    char extra[512];

    snprintf(extra, sizeof extra, "%s,\"sliding_window\":8", types);
    CHECK_INT_EQ(QE_OK, parse_gemma(extra, &cfg, &err));
    CHECK_INT_EQ(8, cfg.layers[0].sliding_window);
    CHECK_INT_EQ(0, cfg.layers[2].sliding_window);
    CHECK_INT_EQ(1, cfg.layers[1].rope_index);
    qe_model_config_free(&cfg);

    snprintf(extra, sizeof extra, "%s,\"sliding_window\":0", types);
    expect_error(QE_EFORMAT, parse_gemma(extra, &cfg, &err), &err,
                 "g/config.json: layer 0 uses sliding attention but \"sliding_window\" is 0; a window is a positive "
                 "number of positions");
    snprintf(extra, sizeof extra, "%s,\"sliding_window\":-1", types);
    expect_error(QE_EFORMAT, parse_gemma(extra, &cfg, &err), &err,
                 "g/config.json: \"sliding_window\" is -1; a window is a positive number of positions (null: none)");
    /* no "sliding_window": Gemma3TextConfig's default of 4096, as transformers reads it */
    CHECK_INT_EQ(QE_OK, parse_gemma(types, &cfg, &err));
    CHECK_INT_EQ(4096, cfg.layers[0].sliding_window);
    qe_model_config_free(&cfg);
    expect_error(QE_EFORMAT,
                 parse_gemma(",\"sliding_window\":8,\"layer_types\":[\"sliding_attention\",\"full_attention\"]", &cfg,
                             &err),
                 &err, "g/config.json: \"layer_types\" names 2 layers but num_hidden_layers is 3");
    expect_error(QE_EFORMAT, parse_gemma(",\"sliding_window\":8,\"layer_types\":\"sliding_attention\"", &cfg, &err),
                 &err, "g/config.json: \"layer_types\" is not an array of num_hidden_layers=3 names");
    expect_error(QE_EUNSUPPORTED,
                 parse_gemma(",\"sliding_window\":8,\"layer_types\":[\"sliding_attention\",\"chunked_attention\","
                             "\"full_attention\"]", &cfg, &err),
                 &err, "g/config.json: layer_types[1] \"chunked_attention\" is not supported (full_attention, "
                 "sliding_attention)");
    expect_error(QE_EFORMAT,
                 parse_gemma(",\"sliding_window\":8,\"layer_types\":[\"sliding_attention\",7,\"full_attention\"]",
                             &cfg, &err),
                 &err, "g/config.json: layer_types[1] is not a string");
    /* no layer_types and no window: gemma's every-sixth-layer rule with the default window */
    CHECK_INT_EQ(QE_OK, parse_gemma("", &cfg, &err));
    CHECK_INT_EQ(4096, cfg.layers[0].sliding_window);
    qe_model_config_free(&cfg);

    /* mistral: a number there windows every layer, so 0 is an error and null means none */
    const char *mistral = "{\"model_type\":\"mistral\",\"vocab_size\":8,\"hidden_size\":8,\"num_hidden_layers\":2,"
                          "\"num_attention_heads\":2,\"intermediate_size\":8,\"sliding_window\":%s}";
    char json[512];
    snprintf(json, sizeof json, mistral, "0");
    expect_error(QE_EFORMAT, qe_model_config_parse("m/config.json", json, &cfg, &err), &err,
                 "m/config.json: layer 0 uses sliding attention but \"sliding_window\" is 0");
    snprintf(json, sizeof json, mistral, "null");
    CHECK_INT_EQ(QE_OK, qe_model_config_parse("m/config.json", json, &cfg, &err));
    CHECK_INT_EQ(0, cfg.layers[1].sliding_window);
    qe_model_config_free(&cfg);
    /* qwen2 with use_sliding_window: layers from max_window_layers on slide, and need a window */
    const char *qwen = "{\"model_type\":\"qwen2\",\"vocab_size\":8,\"hidden_size\":8,\"num_hidden_layers\":3,"
                       "\"num_attention_heads\":2,\"intermediate_size\":8,\"use_sliding_window\":true,"
                       "\"max_window_layers\":1%s}";
    snprintf(json, sizeof json, qwen, ",\"sliding_window\":32");
    CHECK_INT_EQ(QE_OK, qe_model_config_parse("q/config.json", json, &cfg, &err));
    CHECK_INT_EQ(0, cfg.layers[0].sliding_window);
    CHECK_INT_EQ(32, cfg.layers[2].sliding_window);
    qe_model_config_free(&cfg);
    snprintf(json, sizeof json, qwen, "");
    expect_error(QE_EFORMAT, qe_model_config_parse("q/config.json", json, &cfg, &err), &err,
                 "q/config.json: layer 1 uses sliding attention but \"sliding_window\" is missing");

    /* head_dim: needed where hidden_size / num_attention_heads is not whole; gemma's default is 256 */
    const char *no_head_dim = "{\"model_type\":\"llama\",\"vocab_size\":8,\"hidden_size\":100,"
                              "\"num_hidden_layers\":1,\"num_attention_heads\":3,\"intermediate_size\":8%s}";
    snprintf(json, sizeof json, no_head_dim, "");
    expect_error(QE_EFORMAT, qe_model_config_parse("l/config.json", json, &cfg, &err), &err,
                 "l/config.json: \"head_dim\" is missing and hidden_size 100 is not a multiple of "
                 "num_attention_heads 3 to give it");
    snprintf(json, sizeof json, no_head_dim, ",\"head_dim\":32");
    CHECK_INT_EQ(QE_OK, qe_model_config_parse("l/config.json", json, &cfg, &err));
    CHECK_INT_EQ(32, cfg.head_dim);
    qe_model_config_free(&cfg);
    snprintf(extra, sizeof extra, "%s,\"sliding_window\":8", types);
    char gemma[1024];
    snprintf(gemma, sizeof gemma,
             "{\"model_type\":\"gemma3_text\",\"vocab_size\":8,\"hidden_size\":8,\"num_hidden_layers\":3,"
             "\"num_attention_heads\":3,\"num_key_value_heads\":1,\"intermediate_size\":8%s}", extra);
    CHECK_INT_EQ(QE_OK, qe_model_config_parse("g/config.json", gemma, &cfg, &err));
    CHECK_INT_EQ(256, cfg.head_dim);
    qe_model_config_free(&cfg);
}

/* ---- the fixture model --------------------------------------------------------------------- */

static char model_dir[1200];

/* The fixture on the CPU backend with max_context positions and chunks of chunk_tokens (which
 * sizes the rings: set before the first pass). */
static qe_model *load(const char *variant, int max_context, int chunk_tokens)
{
    qe_load_options o = {.device = QE_DEVICE_CPU, .n_threads = 2, .max_context = max_context};
    qe_error err = {0};
    qe_model *m = NULL;
    if (qe_variant_parse(variant, &o.variant, &err) || qe_model_load(model_dir, &o, &m, &err)) {
        fprintf(stderr, "%s %s: %s\n", model_dir, variant, err.msg);
        CHECK(false);
        return NULL;
    }
    m->chunk_tokens = chunk_tokens;
    return m;
}

/* logits [n, n_vocab] of ids at positions pos0.. (malloc'd), the pass expected to succeed */
static float *forward(qe_model *m, const int32_t *ids, int n, int pos0)
{
    float *logits = malloc((size_t)n * m->cfg.n_vocab * sizeof *logits);
    qe_error err = {0};
    qe_status rc = qe_model_forward(m, ids, n, pos0, 0, logits, NULL, NULL, &err);
    if (rc != QE_OK)
        fprintf(stderr, "forward at %d: %s\n", pos0, err.msg);
    CHECK_INT_EQ(QE_OK, rc);
    return logits;
}

/* logits of ids[n] fed one token at a time through the cache */
static float *forward_stepwise(qe_model *m, const int32_t *ids, int n)
{
    size_t row = (size_t)m->cfg.n_vocab;
    float *logits = malloc((size_t)n * row * sizeof *logits);
    for (int t = 0; t < n; t++) {
        float *one = forward(m, ids + t, 1, t);
        memcpy(logits + (size_t)t * row, one, row * sizeof *one);
        free(one);
    }
    return logits;
}

static void check_same_bits(const char *what, const float *want, const float *got, size_t n)
{
    size_t i = 0;
    while (i < n && !memcmp(&want[i], &got[i], sizeof *got))
        i++;
    if (i < n)
        fprintf(stderr, "%s: logit %zu differs: unbounded %.9g, bounded %.9g\n", what, i, want[i], got[i]);
    CHECK(i == n);
}

enum { N_SEQ = 4 * WINDOW, CONTEXT = 64 };

/* Every way through the rings gives the unbounded cache's bits. */
static void test_bounded_equals_unbounded(const char *variant)
{
    int32_t ids[N_SEQ];
    for (int t = 0; t < N_SEQ; t++)
        ids[t] = (t * 7919 + 13) % 320;
    size_t n = (size_t)N_SEQ * 320;
    /* a chunk as long as the context: a ring of max_context rows, which never wraps */
    qe_model *flat = load(variant, CONTEXT, CONTEXT);
    qe_model *ring11 = load(variant, CONTEXT, 4), *ring27 = load(variant, CONTEXT, 20);
    if (!flat || !ring11 || !ring27)
        goto out;
    CHECK_INT_EQ(CONTEXT, qe_kv_ring(&flat->cfg.layers[0], flat->max_context, flat->chunk_tokens));
    CHECK_INT_EQ(11, qe_kv_ring(&ring11->cfg.layers[0], ring11->max_context, ring11->chunk_tokens));
    CHECK_INT_EQ(27, qe_kv_ring(&ring27->cfg.layers[0], ring27->max_context, ring27->chunk_tokens));
    float *want = forward(flat, ids, N_SEQ, 0);
    char what[64];

    float *got = forward(ring11, ids, N_SEQ, 0); /* 8 chunks of 4 */
    snprintf(what, sizeof what, "%s, ring 11, one pass", variant);
    check_same_bits(what, want, got, n);
    free(got);
    got = forward_stepwise(ring11, ids, N_SEQ);
    snprintf(what, sizeof what, "%s, ring 11, token by token", variant);
    check_same_bits(what, want, got, n);
    free(got);
    float *head = forward(ring11, ids, 13, 0), *tail = forward(ring11, ids + 13, N_SEQ - 13, 13);
    snprintf(what, sizeof what, "%s, ring 11, 13 + 19 tokens", variant);
    check_same_bits(what, want + 13 * 320, tail, n - 13 * 320);
    free(head), free(tail);
    got = forward(ring27, ids, N_SEQ, 0); /* chunks of 20 and 12, each longer than the window */
    snprintf(what, sizeof what, "%s, ring 27, chunks of 20", variant);
    check_same_bits(what, want, got, n);
    free(got);

    /* the cache: a full layer of CONTEXT rows, rings of 11 (or 27) rows, keys and values */
    CHECK_INT_EQ(2 * 3 * CONTEXT * KV_ROW_BYTES, qe_model_kv_cache_bytes(flat));
    CHECK_INT_EQ(2 * (11 + 11 + CONTEXT) * KV_ROW_BYTES, qe_model_kv_cache_bytes(ring11));
    CHECK_INT_EQ(2 * (27 + 27 + CONTEXT) * KV_ROW_BYTES, qe_model_kv_cache_bytes(ring27));

    /* resuming: ring11 has written [0, 32); its rings hold [21, 32), so a pass may resume from
     * 32 - 4 = 28 on (it needs the 7 positions before it) */
    int32_t near[N_SEQ], far[N_SEQ];
    memcpy(near, ids, sizeof near);
    memcpy(far, ids, sizeof far);
    near[30] = near[31] = 5;
    far[20] = 7;
    CHECK_INT_EQ(30, qe_model_cached_prefix(ring11, near, N_SEQ));
    CHECK_INT_EQ(0, qe_model_cached_prefix(ring11, far, N_SEQ));
    float *fresh = forward(flat, near, N_SEQ, 0);
    got = forward(ring11, near + 30, 2, 30);
    snprintf(what, sizeof what, "%s, ring 11, resumed at 30", variant);
    check_same_bits(what, fresh + 30 * 320, got, 2 * 320);
    free(got), free(fresh);
    qe_error err = {0};
    float row[320 * 12];
    CHECK_INT_EQ(QE_EINVAL, qe_model_forward(ring11, far + 20, 12, 20, 0, row, NULL, NULL, &err));
    CHECK(strstr(err.msg, "forward from position 20, but the sliding-window layers' caches hold the keys to resume "
                          "from position 28 on only (or 0)") != NULL);
    /* the failed call left the cache as it was: resuming at 31 still works */
    CHECK_INT_EQ(31, qe_model_cached_prefix(ring11, near, 31));
    fresh = forward(flat, far, N_SEQ, 0);
    got = forward(ring11, far, N_SEQ, 0);
    snprintf(what, sizeof what, "%s, ring 11, from 0 again", variant);
    check_same_bits(what, fresh, got, n);
    free(got), free(fresh);
    free(want);
out:
    qe_model_free(flat);
    qe_model_free(ring11);
    qe_model_free(ring27);
}

/* The rings against transformers' float64 logits (seq3: 48 tokens, 6 windows) and its greedy
 * KV-cached continuation. */
static void test_golden(void)
{
    char path[1300];
    snprintf(path, sizeof path, "%s/golden.safetensors", model_dir);
    qe_safetensors *golden = NULL;
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qe_safetensors_open(path, &golden, &err));
    qe_model *m = load("fp32", 256, 4);
    if (!golden || !m)
        goto out;
    const qe_tensor_view *ids_view = qe_safetensors_find(golden, "seq3.input_ids");
    const qe_tensor_view *logits_view = qe_safetensors_find(golden, "seq3.logits");
    CHECK(ids_view && logits_view && ids_view->n_bytes == 48 * sizeof(int32_t));
    if (!ids_view || !logits_view)
        goto out;
    int32_t ids[48];
    float *want = malloc(logits_view->n_bytes);
    memcpy(ids, ids_view->data, sizeof ids);
    memcpy(want, logits_view->data, logits_view->n_bytes);
    float *got = forward_stepwise(m, ids, 48);
    CHECK_CLOSE(want, got, 48 * 320, 1e-4);
    free(got), free(want);

    /* greedy: golden.json's prompt and the 24 ids transformers generated after it */
    static const int32_t prompt[8] = {318, 282, 32, 117, 308, 257, 256, 296};
    static const int32_t expected[24] = {11, 289, 205, 7, 82, 177, 213, 73, 292, 73, 292, 73,
                                         220, 111, 5, 111, 5, 111, 188, 244, 23, 244, 23, 244};
    int32_t *generated = NULL;
    int n_generated = 0;
    CHECK_INT_EQ(QE_OK, qe_generate_ids(m, prompt, 8, 24, &generated, &n_generated, NULL, &err));
    CHECK_INT_EQ(24, n_generated);
    CHECK(generated && n_generated == 24 && !memcmp(expected, generated, sizeof expected));
    free(generated);
out:
    qe_model_free(m);
    qe_safetensors_close(golden);
}

/* Token by token to 600 positions with the default chunk: the sliding layers stay at their ring of
 * 8 + 256 - 1 = 263 rows while the full layer grows 256 -> 512 -> 1024; the same logits as an
 * unbounded cache. */
static void test_memory_flat(void)
{
    enum { N = 600 };
    qe_model *m = load("fp32", 2048, QE_FORWARD_CHUNK_TOKENS), *flat = load("fp32", 1024, 1024);
    int32_t *ids = malloc(N * sizeof *ids);
    float *got = malloc((size_t)N * 320 * sizeof *got);
    if (!m || !flat)
        goto out;
    for (int t = 0; t < N; t++)
        ids[t] = (t * 104729 + 7) % 320;
    uint64_t bytes_at[N + 1];
    for (int t = 0; t < N; t++) {
        float *one = forward(m, ids + t, 1, t);
        memcpy(got + (size_t)t * 320, one, 320 * sizeof *one);
        free(one);
        bytes_at[t + 1] = qe_model_kv_cache_bytes(m);
    }
    CHECK_INT_EQ(2 * (256 + 256 + 256) * KV_ROW_BYTES, bytes_at[WINDOW]);
    CHECK_INT_EQ(2 * (256 + 256 + 256) * KV_ROW_BYTES, bytes_at[256]);
    CHECK_INT_EQ(2 * (263 + 263 + 512) * KV_ROW_BYTES, bytes_at[257]);
    CHECK_INT_EQ(2 * (263 + 263 + 1024) * KV_ROW_BYTES, bytes_at[N]);
    /* past the ring the sliding layers' share stays put: what is added is the full layer's */
    for (int t = 264; t <= N; t++) {
        int full_rows = qe_kv_capacity(t, 2048);
        CHECK_INT_EQ(2 * (263 + 263) * KV_ROW_BYTES, bytes_at[t] - 2 * (uint64_t)full_rows * KV_ROW_BYTES);
    }
    float *want = forward(flat, ids, N, 0);
    check_same_bits("600 positions, ring 263, token by token", want, got, (size_t)N * 320);
    /* the unbounded cache of the same run: three layers of 1024 rows */
    CHECK_INT_EQ(2 * 3 * 1024 * KV_ROW_BYTES, qe_model_kv_cache_bytes(flat));
    free(want);
out:
    free(ids);
    free(got);
    qe_model_free(m);
    qe_model_free(flat);
}

/* Scoring in batches walks the token trie, resuming the cache where contexts share a prefix:
 * near the end (within the rings' reach) and far back (past it, so from 0). Every number equals
 * the unbounded cache's. */
static void test_score_batch(void)
{
    static const char *const shared = "Once upon a time there was a little robot who lived in a small town by "
                                      "the sea, and every morning it";
    char contexts[4][400];
    snprintf(contexts[0], sizeof contexts[0], "%s walked to the harbour to count the boats.", shared);
    snprintf(contexts[1], sizeof contexts[1], "%s walked to the harbour to count the birds.", shared);
    snprintf(contexts[2], sizeof contexts[2], "Twice upon a time %s", shared);
    snprintf(contexts[3], sizeof contexts[3], "%s", shared);
    static const char *const continuations[3] = {" Then it slept.", " It was happy", " The end of the story."};
    qe_score_request requests[12];
    for (int i = 0; i < 12; i++)
        requests[i] = (qe_score_request){contexts[i / 3], continuations[i % 3], false};
    qe_model *flat = load("fp32", CONTEXT * 4, CONTEXT * 4), *ring = load("fp32", CONTEXT * 4, 4);
    qe_score_result want[12], got[12];
    qe_error err = {0};
    if (!flat || !ring)
        goto out;
    CHECK_INT_EQ(QE_OK, qe_score_batch(flat, requests, 12, want, &err));
    CHECK_INT_EQ(QE_OK, qe_score_batch(ring, requests, 12, got, &err));
    CHECK(want[0].n_context_tokens > 3 * WINDOW); /* the rings wrap */
    for (int i = 0; i < 12; i++) {
        CHECK(want[i].logprob_sum == got[i].logprob_sum);
        CHECK_INT_EQ(want[i].is_greedy, got[i].is_greedy);
        CHECK_INT_EQ(want[i].n_continuation_tokens, got[i].n_continuation_tokens);
        CHECK(!memcmp(want[i].target_logprob, got[i].target_logprob,
                      (size_t)got[i].n_continuation_tokens * sizeof *got[i].target_logprob));
        qe_score_result_clear(&want[i]);
        qe_score_result_clear(&got[i]);
    }
out:
    qe_model_free(flat);
    qe_model_free(ring);
}

/* Batched generation's decode pass (qe_model_forward_sequences): three sequences on caches of
 * their own, started at different steps, a token each a step, through rings of 11 rows (chunks
 * of 4) and far past them: every row has the bits of its sequence alone in one pass on the
 * unbounded cache. Two tokens for one cache, and more sequences than a chunk, are refused. */
static void test_sequences(const char *variant)
{
    enum { N_STEPS = 40, N_SEQS = 3 };
    static const int start[N_SEQS] = {0, 3, 9}; /* the step at which sequence b begins */
    qe_model *flat = load(variant, CONTEXT, CONTEXT), *ring = load(variant, CONTEXT, 4);
    static qe_kv_cache caches[N_SEQS];
    static int32_t ids[N_SEQS][N_STEPS];
    static float logits[(N_SEQS + 2) * 320];
    float *got[N_SEQS] = {0};
    qe_kv_cache *twice[2] = {&caches[0], &caches[0]}, *too_many[5] = {&caches[0], &caches[1], &caches[2]};
    int32_t five_ids[5] = {1, 2, 3, 4, 5};
    qe_error err = {0};
    if (!flat || !ring)
        goto out;
    for (int b = 0; b < N_SEQS; b++) {
        CHECK_INT_EQ(QE_OK, qe_kv_cache_init(&caches[b], N_LAYERS, &err));
        for (int t = 0; t < N_STEPS; t++)
            ids[b][t] = (t * 7919 + 13 + 101 * b) % 320;
        got[b] = malloc((size_t)N_STEPS * 320 * sizeof *got[b]);
    }
    for (int step = 0; step < N_STEPS + start[N_SEQS - 1]; step++) {
        qe_kv_cache *step_caches[N_SEQS];
        int32_t step_ids[N_SEQS];
        int which[N_SEQS], n = 0;
        for (int b = 0; b < N_SEQS; b++) {
            int t = step - start[b];
            if (t >= 0 && t < N_STEPS) {
                step_caches[n] = &caches[b];
                step_ids[n] = ids[b][t];
                which[n++] = b;
            }
        }
        qe_status rc = qe_model_forward_sequences(ring, step_caches, step_ids, n, logits, NULL, &err);
        CHECK_INT_EQ(QE_OK, rc);
        if (rc != QE_OK)
            goto out;
        for (int j = 0; j < n; j++)
            memcpy(got[which[j]] + (size_t)(step - start[which[j]]) * 320, logits + (size_t)j * 320,
                   320 * sizeof *logits);
    }
    for (int b = 0; b < N_SEQS; b++) {
        char what[96];
        snprintf(what, sizeof what, "%s sequence %d of %d, decoded together through rings of 11", variant, b, N_SEQS);
        float *want = forward(flat, ids[b], N_STEPS, 0);
        check_same_bits(what, want, got[b], (size_t)N_STEPS * 320);
        free(want);
    }
    CHECK_INT_EQ(QE_EINVAL, qe_model_forward_sequences(ring, twice, five_ids, 2, logits, NULL, &err));
    CHECK(strstr(err.msg, "sequences 0 and 1 share a cache") != NULL);
    CHECK_INT_EQ(QE_EINVAL, qe_model_forward_sequences(ring, too_many, five_ids, 5, logits, NULL, &err));
    CHECK(strstr(err.msg, "a pass of 5 sequences (1 to 4)") != NULL);
out:
    for (int b = 0; b < N_SEQS; b++) {
        qe_kv_cache_free(ring ? ring->backend : NULL, N_LAYERS, &caches[b]);
        free(got[b]);
    }
    qe_model_free(flat);
    qe_model_free(ring);
}

int main(void)
{
    check_fixture_path(model_dir, sizeof model_dir, "models/tiny-gemma3");
    test_rule();
    test_configs();
    static const char *const variants[] = {"fp32", "bf16", "int8", "nf4"};
    for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
        test_bounded_equals_unbounded(variants[v]);
        test_sequences(variants[v]);
    }
    test_golden();
    test_score_batch();
    test_memory_flat();
    return check_summary();
}
