/* The forward pass against the golden logits of the fixture tiny-llama3 (GQA, llama3 rope
 * scaling, untied; tests/golden/make_fixture_models.py), through paths verify does not take: a
 * sharded copy (model-0000N-of-0000M.safetensors + index), several thread counts (results must
 * be identical, not just close), and one sequence fed through the KV cache in two pieces. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "model.h"
#include "qeval_engine.h"
#include "safetensors.h"

static char tmp_dir[] = "/tmp/qeval_test_model_XXXXXX";

enum { N_VOCAB = 320, N_SEQ3 = 48, N_FIRST = 10 }; /* seq3: random ids, fed as N_FIRST then the rest */

/* Writes tensors [first, last) of st into path as a new safetensors file. */
static int write_shard(const char *path, const qe_safetensors *st, int first, int last, FILE *index, bool *first_entry,
                       const char *shard_name)
{
    size_t header_cap = 1 << 16, used = 0, offset = 0;
    char *header = malloc(header_cap);
    used += snprintf(header + used, header_cap - used, "{");
    for (int i = first; i < last; i++) {
        const qe_tensor_view *t = qe_safetensors_at(st, i);
        used += snprintf(header + used, header_cap - used, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[", i > first ? "," : "",
                         t->name, qe_dtype_name(t->dtype));
        for (int d = 0; d < t->n_dims; d++)
            used += snprintf(header + used, header_cap - used, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        used += snprintf(header + used, header_cap - used, "],\"data_offsets\":[%zu,%zu]}", offset, offset + t->n_bytes);
        offset += t->n_bytes;
        fprintf(index, "%s\"%s\":\"%s\"", *first_entry ? "" : ",", t->name, shard_name);
        *first_entry = false;
    }
    used += snprintf(header + used, header_cap - used, "}");
    while (used % 8)
        header[used++] = ' ';
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    for (int i = 0; i < 8; i++)
        fputc((int)((uint64_t)used >> (8 * i)) & 0xff, f);
    fwrite(header, 1, used, f);
    for (int i = first; i < last; i++) {
        const qe_tensor_view *t = qe_safetensors_at(st, i);
        fwrite(t->data, 1, t->n_bytes, f);
    }
    fclose(f);
    free(header);
    return 0;
}

static int make_sharded_copy(const char *model_dir, const char *out_dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/model.safetensors", model_dir);
    qe_safetensors *st = NULL;
    qe_error err = {0};
    if (qe_safetensors_open(path, &st, &err) != QE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", out_dir);
    FILE *index = fopen(path, "w");
    fprintf(index, "{\"metadata\":{},\"weight_map\":{");
    bool first_entry = true;
    int n = qe_safetensors_count(st), half = n / 2;
    snprintf(path, sizeof path, "%s/model-00001-of-00002.safetensors", out_dir);
    write_shard(path, st, 0, half, index, &first_entry, "model-00001-of-00002.safetensors");
    snprintf(path, sizeof path, "%s/model-00002-of-00002.safetensors", out_dir);
    write_shard(path, st, half, n, index, &first_entry, "model-00002-of-00002.safetensors");
    fprintf(index, "}}\n");
    fclose(index);
    qe_safetensors_close(st);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp '%s/config.json' '%s/'", model_dir, out_dir);
    return system(cmd);
}

/* Forward pass over golden seq{i} with the given model; returns max |logit - golden|. */
static double golden_diff(qe_model *m, const qe_safetensors *golden, int i, float **out_logits)
{
    char name[64];
    snprintf(name, sizeof name, "seq%d.input_ids", i);
    const qe_tensor_view *ids = qe_safetensors_find(golden, name);
    snprintf(name, sizeof name, "seq%d.logits", i);
    const qe_tensor_view *ref = qe_safetensors_find(golden, name);
    if (!ids || !ref)
        return INFINITY;
    int n = (int)ids->shape[0];
    int32_t *tokens = malloc(ids->n_bytes);
    float *want = malloc(ref->n_bytes), *got = malloc(ref->n_bytes);
    memcpy(tokens, ids->data, ids->n_bytes);
    memcpy(want, ref->data, ref->n_bytes);
    qe_error err = {0};
    double max_diff = INFINITY;
    if (qe_forward_logits(m, tokens, n, got, &err) == QE_OK) {
        max_diff = 0;
        for (size_t k = 0; k < ref->n_elements; k++)
            if (!(fabs((double)got[k] - want[k]) <= max_diff))
                max_diff = fabs((double)got[k] - want[k]);
    } else {
        fprintf(stderr, "%s\n", err.msg);
    }
    free(tokens);
    free(want);
    if (out_logits)
        *out_logits = got;
    else
        free(got);
    return max_diff;
}

int main(void)
{
    char model_dir[1024], golden_path[1100];
    check_fixture_path(model_dir, sizeof model_dir, "models/tiny-llama3");
    snprintf(golden_path, sizeof golden_path, "%s/golden.safetensors", model_dir);
    if (!mkdtemp(tmp_dir) || make_sharded_copy(model_dir, tmp_dir) != 0) {
        fprintf(stderr, "cannot make the sharded copy in %s\n", tmp_dir);
        return 1;
    }
    qe_error err = {0};
    qe_safetensors *golden = NULL;
    CHECK_INT_EQ(QE_OK, qe_safetensors_open(golden_path, &golden, &err));

    qe_model *sharded = NULL;
    qe_load_options opt = {.variant = {.kind = QE_VARIANT_FP32}, .n_threads = 1};
    CHECK_INT_EQ(QE_OK, qe_model_load(tmp_dir, &opt, &sharded, &err));
    if (sharded && golden) {
        qe_model_info info;
        qe_model_get_info(sharded, &info);
        CHECK_STR_EQ("llama", info.architecture);
        CHECK_INT_EQ(N_VOCAB, info.n_vocab);
        CHECK_INT_EQ(2, info.n_kv_heads);
        for (int i = 0; i < 4; i++) {
            double d = golden_diff(sharded, golden, i, NULL);
            CHECK(d <= 1e-4);
        }
    }
    qe_model_free(sharded);

    /* 1 and 3 threads must agree bit for bit (rows are split, never sums) */
    float *one = NULL, *three = NULL;
    qe_model *m1 = NULL, *m3 = NULL;
    qe_load_options opt3 = opt;
    opt3.n_threads = 3;
    CHECK_INT_EQ(QE_OK, qe_model_load(model_dir, &opt, &m1, &err));
    CHECK_INT_EQ(QE_OK, qe_model_load(model_dir, &opt3, &m3, &err));
    if (m1 && m3 && golden) {
        CHECK(golden_diff(m1, golden, 3, &one) <= 1e-4);
        CHECK(golden_diff(m3, golden, 3, &three) <= 1e-4);
        CHECK(one && three && !memcmp(one, three, N_SEQ3 * N_VOCAB * sizeof(float)));
    }
    /* the same sequence in two pieces through the KV cache: rows N_FIRST.. equal the golden logits */
    if (m1 && golden && one) {
        const qe_tensor_view *ids = qe_safetensors_find(golden, "seq3.input_ids");
        const qe_tensor_view *ref = qe_safetensors_find(golden, "seq3.logits");
        int32_t tokens[N_SEQ3];
        const int n_rest = N_SEQ3 - N_FIRST;
        CHECK_INT_EQ(sizeof tokens, ids->n_bytes);
        float *want = malloc(ref->n_bytes), *got = malloc((size_t)n_rest * N_VOCAB * sizeof(float));
        memcpy(tokens, ids->data, sizeof tokens);
        memcpy(want, ref->data, ref->n_bytes);
        CHECK_INT_EQ(QE_OK, qe_model_forward(m1, tokens, N_FIRST, 0, N_FIRST, NULL, NULL, NULL, &err));
        CHECK_INT_EQ(QE_OK, qe_model_forward(m1, tokens + N_FIRST, n_rest, N_FIRST, 0, got, NULL, NULL, &err));
        CHECK_CLOSE(want + N_FIRST * N_VOCAB, got, n_rest * N_VOCAB, 1e-4);
        /* and bit for bit what the one-pass forward gave */
        CHECK(!memcmp(one + N_FIRST * N_VOCAB, got, (size_t)n_rest * N_VOCAB * sizeof(float)));
        CHECK_INT_EQ(N_SEQ3, qe_model_cached_prefix(m1, tokens, N_SEQ3));
        /* out-of-range ids and positions fail cleanly */
        int32_t bad = N_VOCAB;
        CHECK_INT_EQ(QE_EINVAL, qe_model_forward(m1, &bad, 1, 0, 0, got, NULL, NULL, &err));
        CHECK(strstr(err.msg, "token id 320 at position 0 is outside the vocabulary of 320") != NULL);
        CHECK_INT_EQ(QE_EINVAL, qe_model_forward(m1, tokens, 1, N_SEQ3 + 5, 0, got, NULL, NULL, &err));
        free(want);
        free(got);
    }
    free(one);
    free(three);
    qe_model_free(m1);
    qe_model_free(m3);
    qe_safetensors_close(golden);
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_dir);
    return check_summary();
}
