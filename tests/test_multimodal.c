/* The text model of a multimodal Gemma-3 checkpoint (Gemma3ForConditionalGeneration) loads as
 * the plain text model does. The test re-prefixes the project's tiny-gemma3 fixture in both
 * transformers layouts (text weights under "model.language_model." since transformers 4.52,
 * under "language_model.model." before), adds vision tower and projector tensors, wraps its
 * config.json as the "text_config" of a "gemma3" config, and checks that the logits equal the
 * unprefixed model's bit for bit and that the load notice counts the ignored tensors. Then a
 * sparse text_config as gemma-3-4b-it ships it, read with Gemma3TextConfig's defaults
 * (transformers' configuration_gemma3.py), and a stray tensor that fits neither side. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "file_util.h"
#include "model.h"
#include "model_config.h"
#include "qeval_engine.h"
#include "safetensors.h"
#include "safetensors_write.h"

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* dir/config.json: {"model_type": "gemma3", "text_config": <text config less its dtype>,
 * "vision_config": {...}, "torch_dtype": <that dtype>} as Gemma3ForConditionalGeneration saves it. */
static void write_multimodal_config(const char *dir, const char *text_config_json)
{
    cJSON *text = cJSON_Parse(text_config_json), *root = cJSON_CreateObject();
    cJSON *dtype = cJSON_DetachItemFromObject(text, "dtype");
    cJSON_AddStringToObject(root, "model_type", "gemma3");
    cJSON_AddItemToObject(root, "text_config", text);
    cJSON *vision = cJSON_AddObjectToObject(root, "vision_config");
    cJSON_AddStringToObject(vision, "model_type", "siglip_vision_model");
    cJSON_AddNumberToObject(vision, "hidden_size", 4);
    cJSON_AddItemToObject(root, "torch_dtype", dtype);
    char *out = cJSON_Print(root), path[700];
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_text(path, out);
    free(out);
    cJSON_Delete(root);
}

/* dir/model.safetensors: every tensor of st with "model." replaced by text_prefix, then the
 * extra tensors (F32 zeros of [2, 3]) named in extras. */
static void write_prefixed(const char *dir, const qe_safetensors *st, const char *text_prefix,
                           const char *const *extras, int n_extras)
{
    int n = qe_safetensors_count(st);
    qh_tensor_entry *entries = calloc((size_t)(n + n_extras), sizeof *entries);
    for (int i = 0; i < n; i++) {
        const qe_tensor_view *t = qe_safetensors_at(st, i);
        snprintf(entries[i].name, sizeof entries[i].name, "%s%s", text_prefix, t->name + strlen("model."));
        entries[i].dtype = qe_dtype_name(t->dtype);
        entries[i].n_dims = t->n_dims;
        entries[i].shape[0] = t->shape[0];
        entries[i].shape[1] = t->n_dims == 2 ? t->shape[1] : 0;
        entries[i].n_bytes = t->n_bytes;
    }
    for (int k = 0; k < n_extras; k++)
        entries[n + k] = (qh_tensor_entry){.dtype = "F32", .n_dims = 2, .shape = {2, 3}, .n_bytes = 24};
    for (int k = 0; k < n_extras; k++)
        snprintf(entries[n + k].name, sizeof entries[n + k].name, "%s", extras[k]);
    char path[700];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qh_safetensors_write_header(f, path, entries, n + n_extras, &err));
    for (int i = 0; i < n; i++)
        fwrite(qe_safetensors_at(st, i)->data, 1, qe_safetensors_at(st, i)->n_bytes, f);
    float zeros[6] = {0};
    for (int k = 0; k < n_extras; k++)
        fwrite(zeros, 1, sizeof zeros, f);
    fclose(f);
    free(entries);
}

static qe_model *load(const char *dir)
{
    qe_model *m = NULL;
    qe_error err = {0};
    qe_load_options options = {.variant = {.kind = QE_VARIANT_FP32}, .device = QE_DEVICE_CPU, .n_threads = 1};
    CHECK_INT_EQ(QE_OK, qe_model_load(dir, &options, &m, &err));
    if (!m)
        fprintf(stderr, "%s\n", err.msg);
    return m;
}

static void test_layouts(const char *work)
{
    char fixture[1024], path[1200];
    check_fixture_path(fixture, sizeof fixture, "models/tiny-gemma3");
    qe_safetensors *st = NULL, *golden = NULL;
    qe_error err = {0};
    snprintf(path, sizeof path, "%s/model.safetensors", fixture);
    CHECK_INT_EQ(QE_OK, qe_safetensors_open(path, &st, &err));
    snprintf(path, sizeof path, "%s/golden.safetensors", fixture);
    CHECK_INT_EQ(QE_OK, qe_safetensors_open(path, &golden, &err));
    snprintf(path, sizeof path, "%s/config.json", fixture);
    char *config = NULL;
    qe_read_file(path, &config, NULL, &err);
    CHECK(st && golden && config);
    if (!st || !golden || !config)
        return;
    const qe_tensor_view *ids = qe_safetensors_find(golden, "seq0.input_ids");
    int n_tok = (int)ids->shape[0];
    int32_t *tok = malloc((size_t)n_tok * sizeof *tok);
    memcpy(tok, ids->data, (size_t)n_tok * sizeof *tok);

    qe_model *plain = load(fixture);
    qe_model_info plain_info;
    qe_model_get_info(plain, &plain_info);
    CHECK_STR_EQ("", plain_info.notice);
    size_t n_logits = (size_t)n_tok * plain_info.n_vocab;
    float *want = malloc(n_logits * sizeof(float)), *got = malloc(n_logits * sizeof(float));
    CHECK_INT_EQ(QE_OK, qe_forward_logits(plain, tok, n_tok, want, &err));

    static const struct { const char *prefix; const char *const extras[3]; } layouts[] = {
        {"model.language_model.", {"model.vision_tower.vision_model.embeddings.patch_embedding.weight",
                                   "model.multi_modal_projector.mm_input_projection_weight",
                                   "model.vision_tower.vision_model.post_layernorm.weight"}},
        {"language_model.model.", {"vision_tower.vision_model.embeddings.patch_embedding.weight",
                                   "multi_modal_projector.mm_input_projection_weight",
                                   "vision_tower.vision_model.post_layernorm.weight"}},
    };
    for (int k = 0; k < 2; k++) {
        char dir[800];
        snprintf(dir, sizeof dir, "%s/layout%d", work, k);
        mkdir(dir, 0755);
        write_multimodal_config(dir, config);
        write_prefixed(dir, st, layouts[k].prefix, layouts[k].extras, 3);
        qe_model *m = load(dir);
        if (!m)
            continue;
        qe_model_info info;
        qe_model_get_info(m, &info);
        char expected[200];
        snprintf(expected, sizeof expected, "the text model of a multimodal checkpoint (tensors under '%s'); 3 vision "
                 "tower / projector tensors ignored", layouts[k].prefix);
        CHECK(strstr(info.notice, expected) != NULL);
        CHECK_STR_EQ("gemma3", info.architecture);
        CHECK_INT_EQ(plain_info.n_params, info.n_params);
        CHECK_INT_EQ(plain_info.hf_footprint_bytes, info.hf_footprint_bytes);
        CHECK_INT_EQ(qe_model_n_tensors(plain), qe_model_n_tensors(m));
        qe_tensor_info t;
        CHECK_INT_EQ(QE_OK, qe_model_tensor_info(m, 0, &t, &err));
        CHECK(!strncmp(t.name, "model.", 6) && !strstr(t.name, "language_model"));
        CHECK_INT_EQ(QE_OK, qe_forward_logits(m, tok, n_tok, got, &err));
        CHECK(memcmp(want, got, n_logits * sizeof(float)) == 0);
        qe_model_free(m);
    }

    /* a tensor that is neither text model nor vision side is not silently dropped */
    char dir[800];
    snprintf(dir, sizeof dir, "%s/stray", work);
    mkdir(dir, 0755);
    write_multimodal_config(dir, config);
    const char *const stray[] = {"model.vision_tower.x.weight", "audio_tower.encoder.weight"};
    write_prefixed(dir, st, "model.language_model.", stray, 2);
    qe_model *m = NULL;
    qe_load_options options = {.variant = {.kind = QE_VARIANT_FP32}, .device = QE_DEVICE_CPU, .n_threads = 1};
    CHECK_INT_EQ(QE_EFORMAT, qe_model_load(dir, &options, &m, &err));
    CHECK(strstr(err.msg, "tensor 'audio_tower.encoder.weight' is neither under the text model's "
                 "'model.language_model.' nor a vision tower or projector tensor") != NULL);
    CHECK(m == NULL);

    qe_model_free(plain);
    free(want);
    free(got);
    free(tok);
    free(config);
    qe_safetensors_close(st);
    qe_safetensors_close(golden);
}

/* google/gemma-3-4b-it's config.json (vision_config shortened): the text part lists only what
 * differs from Gemma3TextConfig's defaults. */
static void test_sparse_text_config(void)
{
    static const char json[] =
        "{\"architectures\": [\"Gemma3ForConditionalGeneration\"], \"boi_token_index\": 255999,"
        " \"eoi_token_index\": 256000, \"eos_token_id\": [1, 106], \"image_token_index\": 262144,"
        " \"initializer_range\": 0.02, \"mm_tokens_per_image\": 256, \"model_type\": \"gemma3\","
        " \"text_config\": {\"hidden_size\": 2560, \"intermediate_size\": 10240, \"model_type\": \"gemma3_text\","
        " \"num_hidden_layers\": 34, \"rope_scaling\": {\"factor\": 8.0, \"rope_type\": \"linear\"},"
        " \"sliding_window\": 1024}, \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.50.0.dev0\","
        " \"vision_config\": {\"hidden_size\": 1152, \"model_type\": \"siglip_vision_model\"}}";
    qe_model_config cfg;
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qe_model_config_parse("gemma-3-4b-it/config.json", json, &cfg, &err));
    if (err.code)
        fprintf(stderr, "%s\n", err.msg);
    CHECK(cfg.arch == QE_ARCH_GEMMA3 && cfg.hidden == 2560 && cfg.intermediate == 10240 && cfg.n_layers == 34);
    /* Gemma3TextConfig defaults: vocab_size 262208, 8 heads, 4 kv heads, head_dim 256,
     * max_position_embeddings 131072, query_pre_attn_scalar 256, rope_theta 1e6,
     * rope_local_base_freq 1e4, sliding_window_pattern 6 */
    CHECK(cfg.n_vocab == 262208 && cfg.n_heads == 8 && cfg.n_kv_heads == 4 && cfg.head_dim == 256);
    CHECK_INT_EQ(131072, cfg.max_context);
    CHECK(fabsf(cfg.attn_scale - 1.0f / 16.0f) < 1e-9f);
    CHECK(cfg.torch_dtype == QE_DTYPE_BF16 && cfg.tie_embeddings);
    CHECK(cfg.n_ropes == 2 && cfg.ropes[0].type == QE_ROPE_LINEAR && cfg.ropes[0].factor == 8.0 &&
          cfg.ropes[0].theta == 1e6 && cfg.ropes[1].theta == 1e4);
    CHECK(cfg.layers[0].sliding_window == 1024 && cfg.layers[5].sliding_window == 0 &&
          cfg.layers[5].rope_index == 0 && cfg.layers[6].rope_index == 1);
    CHECK(cfg.n_eos == 2 && cfg.eos_ids[0] == 1 && cfg.eos_ids[1] == 106);
    qe_model_config_free(&cfg);
}

int main(void)
{
    char work[] = "/tmp/qeval-multimodal-XXXXXX";
    CHECK(mkdtemp(work) != NULL);
    test_layouts(work);
    test_sparse_text_config();
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", work);
    CHECK_INT_EQ(0, system(cmd));
    return check_summary();
}
