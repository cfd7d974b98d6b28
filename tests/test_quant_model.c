/* test_quant_model — the quantized variants as whole models:
 *  - hf_footprint_bytes equals transformers' get_memory_footprint() measured on the GPU with
 *    bitsandbytes (tests/golden/bnb/footprint.json) for three models x five variants;
 *  - on stories260K's golden sequences, bf16 and int8 agree with fp32 on >= 98% of top-1
 *    tokens, and every variant is closer (KL) to transformers + bitsandbytes running that
 *    variant (tests/golden/bnb/hf_logits.safetensors) than fp32 is. */
#include <cjson/cJSON.h>

#include "check.h"
#include "file_util.h"
#include "logit_stats.h"
#include "qeval_engine.h"
#include "safetensors.h"

static const char *const variants[] = {"fp32", "bf16", "int8", "nf4", "nf4-nodq"};
#define N_VARIANTS 5

static char *golden_path(const char *file)
{
    static char path[1200];
    const char *src = getenv("QEVAL_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/golden/bnb/%s", src && *src ? src : QEVAL_SOURCE_DIR, file);
    return path;
}

static qe_model *load(const char *model, const char *variant)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/models/%s", check_shared_dir(), model);
    qe_load_options options = {.device = QE_DEVICE_CPU, .n_threads = 2};
    qe_model *m = NULL;
    qe_error err = {0};
    if (qe_variant_parse(variant, &options.variant, &err) != QE_OK ||
        qe_model_load(path, &options, &m, &err) != QE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        CHECK(false);
        return NULL;
    }
    return m;
}

static void test_footprints(void)
{
    char *text = NULL;
    qe_error err = {0};
    CHECK(qe_read_file(golden_path("footprint.json"), &text, NULL, &err) == QE_OK);
    cJSON *root = text ? cJSON_Parse(text) : NULL;
    free(text);
    CHECK(root != NULL);
    static const char *const models[] = {"stories260K", "tiny-llama3", "tiny-qwen2"};
    for (int i = 0; i < 3 && root; i++)
        for (int v = 0; v < N_VARIANTS; v++) {
            char key[128];
            snprintf(key, sizeof key, "%s/%s", models[i], variants[v]);
            cJSON *entry = cJSON_GetObjectItemCaseSensitive(root, key);
            cJSON *bytes = cJSON_GetObjectItemCaseSensitive(entry, "footprint");
            CHECK(cJSON_IsNumber(bytes));
            qe_model *m = load(models[i], variants[v]);
            if (!m || !cJSON_IsNumber(bytes)) continue;
            qe_model_info info;
            qe_model_get_info(m, &info);
            if ((double)info.hf_footprint_bytes != bytes->valuedouble)
                fprintf(stderr, "%s: hf_footprint_bytes %llu, transformers %.0f\n", key,
                        (unsigned long long)info.hf_footprint_bytes, bytes->valuedouble);
            CHECK((double)info.hf_footprint_bytes == bytes->valuedouble);
            CHECK(info.footprint_bytes > 0 && info.estimate_bytes > 0);
            qe_model_free(m);
        }
    cJSON_Delete(root);
}

/* logits [n, n_vocab] of every golden sequence, concatenated; *n_rows set */
static float *run_sequences(qe_model *m, const qe_safetensors *golden, int n_vocab, int32_t **ids_out, int *n_rows)
{
    float *all = NULL;
    int32_t *ids_all = NULL;
    int rows = 0;
    for (int i = 0;; i++) {
        char name[64];
        snprintf(name, sizeof name, "seq%d.input_ids", i);
        const qe_tensor_view *ids = qe_safetensors_find(golden, name);
        if (!ids) break;
        int n = (int)ids->n_elements;
        all = realloc(all, (size_t)(rows + n) * n_vocab * sizeof *all);
        ids_all = realloc(ids_all, (size_t)(rows + n + 1) * sizeof *ids_all);
        memcpy(ids_all + rows, ids->data, (size_t)n * sizeof *ids_all);
        qe_error err = {0};
        CHECK(qe_forward_logits(m, ids_all + rows, n, all + (size_t)rows * n_vocab, &err) == QE_OK);
        rows += n;
        ids_all[rows] = -1; /* no next token past a sequence's end */
    }
    *n_rows = rows;
    *ids_out = ids_all;
    return all;
}

static void compare(const float *base, const float *test, const int32_t *ids, const int *seq_end, int n_rows,
                    int n_vocab, qh_logit_stats *stats)
{
    for (int r = 0; r < n_rows; r++)
        qh_logit_stats_add(stats, base + (size_t)r * n_vocab, test + (size_t)r * n_vocab, n_vocab,
                           seq_end[r] ? -1 : ids[r + 1]);
}

static void test_agreement(void)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/models/stories260K/golden.safetensors", check_shared_dir());
    qe_safetensors *golden = NULL, *hf = NULL;
    qe_error err = {0};
    if (qe_safetensors_open(path, &golden, &err) != QE_OK || qe_safetensors_open(golden_path("hf_logits.safetensors"), &hf, &err) != QE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        CHECK(false);
        qe_safetensors_close(golden);
        return;
    }
    qe_model *fp32 = load("stories260K", "fp32");
    if (!fp32) {
        qe_safetensors_close(golden), qe_safetensors_close(hf);
        return;
    }
    qe_model_info info;
    qe_model_get_info(fp32, &info);
    int n_rows = 0, n_vocab = info.n_vocab;
    int32_t *ids = NULL;
    float *base = run_sequences(fp32, golden, n_vocab, &ids, &n_rows);
    int *seq_end = calloc((size_t)n_rows, sizeof *seq_end);
    for (int r = 0; r < n_rows; r++) seq_end[r] = ids[r + 1] < 0 || r + 1 == n_rows;
    for (int v = 1; v < N_VARIANTS; v++) {
        qe_model *m = load("stories260K", variants[v]);
        if (!m) continue;
        int32_t *ids_v = NULL;
        int n = 0;
        float *test = run_sequences(m, golden, n_vocab, &ids_v, &n);
        /* transformers + bitsandbytes running the same variant on a GPU */
        float *hf_logits = malloc((size_t)n_rows * n_vocab * sizeof *hf_logits);
        int rows = 0;
        for (int i = 0; rows < n_rows; i++) {
            char name[64];
            snprintf(name, sizeof name, "%s.seq%d", variants[v], i);
            const qe_tensor_view *t = qe_safetensors_find(hf, name);
            CHECK(t != NULL);
            if (!t) break;
            qe_convert_to_f32(hf_logits + (size_t)rows * n_vocab, t->data, t->dtype, t->n_elements);
            rows += (int)t->shape[0];
        }
        qh_logit_stats vs_fp32 = {0}, vs_hf = {0}, hf_vs_fp32 = {0};
        compare(base, test, ids, seq_end, n_rows, n_vocab, &vs_fp32);
        if (rows == n_rows) {
            compare(hf_logits, test, ids, seq_end, n_rows, n_vocab, &vs_hf);
            compare(hf_logits, base, ids, seq_end, n_rows, n_vocab, &hf_vs_fp32);
        }
        printf("%-8s vs qeval fp32: mean_kl %.3g max_kl %.3g top1 %.2f%% rms_dp %.3f%% | vs transformers %s: "
               "mean_kl %.3g top1 %.2f%% (fp32 vs it: mean_kl %.3g)\n",
               variants[v], qh_logit_stats_mean_kl(&vs_fp32), vs_fp32.max_kl, 100 * qh_logit_stats_top1(&vs_fp32),
               100 * qh_logit_stats_rms_dp(&vs_fp32), variants[v], qh_logit_stats_mean_kl(&vs_hf),
               100 * qh_logit_stats_top1(&vs_hf), qh_logit_stats_mean_kl(&hf_vs_fp32));
        if (v == 1 || v == 2) CHECK(qh_logit_stats_top1(&vs_fp32) >= 0.98);
        CHECK(qh_logit_stats_mean_kl(&vs_hf) < qh_logit_stats_mean_kl(&hf_vs_fp32));
        free(test), free(ids_v), free(hf_logits);
        qe_model_free(m);
    }
    free(base), free(ids), free(seq_end);
    qe_model_free(fp32);
    qe_safetensors_close(golden);
    qe_safetensors_close(hf);
}

int main(void)
{
    char probe[1200];
    if (!check_shared_path(probe, sizeof probe, "models/stories260K/golden.safetensors") ||
        !check_shared_path(probe, sizeof probe, "models/tiny-llama3/config.json") ||
        !check_shared_path(probe, sizeof probe, "models/tiny-qwen2/config.json"))
        return check_summary();
    test_footprints();
    test_agreement();
    return check_summary();
}
