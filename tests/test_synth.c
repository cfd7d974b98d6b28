/* qeval synth (harness/synth.c) on the SmolLM2-135M shape: the directory loads, its numbers are
 * the real model's (config.json of HuggingFaceTB/SmolLM2-135M; 134,515,008 parameters as its model
 * card states), the synthetic tokenizer encodes by the hand-computed ids of its documented
 * layout, and a forward pass gives finite logits far from uniform. The same seed writes the same
 * bytes. Needs no shared data. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "qeval_engine.h"
#include "synth.h"

/* Token ids of text (no specials) as one space-separated string. */
static void ids_of(const qe_model *m, const char *text, char *out, size_t out_bytes)
{
    int32_t *ids = NULL;
    int n = 0;
    qe_error err = {0};
    out[0] = 0;
    if (qe_tokenize(m, text, false, &ids, &n, &err) != QE_OK) {
        snprintf(out, out_bytes, "error: %s", err.msg);
        return;
    }
    for (int i = 0; i < n; i++)
        snprintf(out + strlen(out), out_bytes - strlen(out), "%s%d", i ? " " : "", ids[i]);
    free(ids);
}

static uint64_t file_hash(const char *path)
{
    static unsigned char buffer[1 << 16];
    FILE *f = fopen(path, "rb");
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t n; f && (n = fread(buffer, 1, sizeof buffer, f)) > 0;)
        for (size_t i = 0; i < n; i++)
            h = (h ^ buffer[i]) * 1099511628211ull;
    if (f)
        fclose(f);
    return h;
}

int main(void)
{
    char dir[] = "/tmp/qeval-test-synth-XXXXXX", weights[256];
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(weights, sizeof weights, "%s/model.safetensors", dir);
    qe_error err = {0};
    const qh_synth_shape *shape = NULL;
    qh_synth_summary summary = {0};
    CHECK_INT_EQ(QE_OK, qh_synth_shape_find("smollm2-135m", &shape, &err));
    if (!shape || qh_synth_write(shape, dir, 7, &summary, &err) != QE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    CHECK_INT_EQ(134515008, summary.n_params);
    CHECK_INT_EQ(2 * 134515008ll, summary.n_weight_bytes);
    CHECK_INT_EQ(1, summary.n_files);
    CHECK_INT_EQ(272, summary.n_tensors); /* embedding + 30 x 9 + final norm; the head is tied */

    qe_model *m = NULL;
    qe_load_options options = {.variant = {.kind = QE_VARIANT_FP32}, .n_threads = 2};
    if (qe_model_load(dir, &options, &m, &err) != QE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    qe_model_info info;
    qe_model_get_info(m, &info);
    CHECK_STR_EQ("llama", info.architecture);
    CHECK_INT_EQ(134515008, info.n_params);
    CHECK_INT_EQ(49152, info.n_vocab);
    CHECK_INT_EQ(30, info.n_layers);
    CHECK_INT_EQ(576, info.hidden);
    CHECK_INT_EQ(9, info.n_heads);
    CHECK_INT_EQ(3, info.n_kv_heads);
    CHECK_INT_EQ(64, info.head_dim);
    CHECK_INT_EQ(8192, info.max_context);
    CHECK_INT_EQ(0, info.bos_id);
    CHECK_INT_EQ(0, info.eos_id);
    CHECK(!info.add_bos);

    /* The layout synth.h documents: id 0 is the special <|endoftext|>, byte b is id b + 1, merge
     * k is id 257 + k with two-symbol words first ("Ġa" k=0, "ab" k = 1*26 + 1), then three-symbol
     * words after the 27*26 = 702 two-symbol ones ("Ġab" k = 702 + 0*676 + 0*26 + 1). */
    char got[256];
    ids_of(m, "ab", got, sizeof got);
    CHECK_STR_EQ("284", got);
    ids_of(m, " ab", got, sizeof got);
    CHECK_STR_EQ("960", got);
    ids_of(m, "A!", got, sizeof got); /* no merges over capitals or punctuation: bytes 65, 33 */
    CHECK_STR_EQ("66 34", got);
    ids_of(m, "<|endoftext|>", got, sizeof got);
    CHECK_STR_EQ("0", got);

    int32_t ids[6] = {284, 960, 66, 34, 300, 5000};
    int n_tokens = 6;
    float *logits = malloc((size_t)n_tokens * info.n_vocab * sizeof *logits);
    CHECK_INT_EQ(QE_OK, qe_forward_logits(m, ids, n_tokens, logits, &err));
    int n_finite = 0, n_peaked = 0, n_distinct_argmax = 0, previous_argmax = -1;
    for (int t = 0; t < n_tokens; t++) {
        const float *row = logits + (size_t)t * info.n_vocab;
        double max_logit = row[0], sum = 0;
        int argmax = 0;
        for (int v = 0; v < info.n_vocab; v++) {
            n_finite += isfinite(row[v]) ? 1 : 0;
            if (row[v] > max_logit)
                max_logit = row[v], argmax = v;
        }
        for (int v = 0; v < info.n_vocab; v++)
            sum += exp(row[v] - max_logit);
        /* far from uniform: the top token holds over 100 times its uniform share 1/49152 */
        n_peaked += 1.0 / sum > 100.0 / info.n_vocab;
        n_distinct_argmax += argmax != previous_argmax;
        previous_argmax = argmax;
    }
    CHECK_INT_EQ(n_tokens * info.n_vocab, n_finite);
    CHECK_INT_EQ(n_tokens, n_peaked);
    CHECK(n_distinct_argmax > 1);
    free(logits);
    qe_model_free(m);

    /* the same seed writes the same weights, another seed others */
    uint64_t first = file_hash(weights);
    CHECK_INT_EQ(QE_OK, qh_synth_write(shape, dir, 7, &summary, &err));
    CHECK(file_hash(weights) == first);
    CHECK_INT_EQ(QE_OK, qh_synth_write(shape, dir, 8, &summary, &err));
    CHECK(file_hash(weights) != first);

    static const char *const names[] = {"config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[300];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
    return check_summary();
}
