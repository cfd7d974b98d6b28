/* qeval verify MODEL --golden golden.safetensors [--variant V] [--threads N] [--device D]
 *
 * Checks the engine against reference outputs (docs/golden-format.md): each seq{i}.input_ids
 * runs through one forward pass and its logits are compared with seq{i}.logits; when
 * golden.json sits beside the golden file, each greedy[j] prompt is continued greedily and
 * compared token for token. Exits 0 only within the variant's tolerance. A variant other than
 * fp32 is also compared with the fp32 model on the same sequences (logit_stats.h: mean and
 * max KL divergence, top-1 agreement, RMS of Δp). */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "logit_stats.h"
#include "qd_source.h"
#include "qeval_engine.h"

typedef struct {
    double max_abs_diff;      /* largest |logit - golden| allowed          */
    double min_argmax_agree;  /* fraction of positions whose argmax agrees */
    double min_greedy_match;  /* fraction of greedy sequences identical    */
} tolerance;

/* fp32 must reproduce the float64 reference up to float32 rounding; the quantized variants
 * are judged by their own tests and benchmarks, so verify only reports them. */
static tolerance tolerance_for(const qe_variant *v)
{
    if (v->kind == QE_VARIANT_FP32)
        return (tolerance){1e-3, 1.0, 1.0};
    return (tolerance){INFINITY, 0.0, 0.0};
}

static int argmax_row(const float *row, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (row[i] > row[best])
            best = i;
    return best;
}

typedef struct {
    double max_abs_diff;
    int n_argmax_agree, n_positions;
    int n_greedy_match, n_greedy;
} verify_counts;

/* base (may be NULL): the fp32 model whose distributions feed stats */
static qe_status check_logits(qe_model *model, const qe_safetensors *golden, verify_counts *c, qe_model *base,
                              qh_logit_stats *stats, qe_error *err)
{
    qe_model_info info;
    qe_model_get_info(model, &info);
    const char *path = qe_safetensors_path(golden);
    for (int i = 0;; i++) {
        char name[64];
        snprintf(name, sizeof name, "seq%d.input_ids", i);
        qe_tensor_data ids, ref;
        if (!qe_safetensors_get(golden, name, &ids)) {
            if (i == 0)
                return qe_fail(err, QE_EFORMAT, "%s: no tensor seq0.input_ids", path);
            return QE_OK;
        }
        snprintf(name, sizeof name, "seq%d.logits", i);
        bool has_ref = qe_safetensors_get(golden, name, &ref);
        if (strcmp(ids.dtype, "I32") || ids.n_dims != 1 || ids.shape[0] < 1)
            return qe_fail(err, QE_EFORMAT, "%s: seq%d.input_ids is not a non-empty I32 vector", path, i);
        int n = (int)ids.shape[0];
        if (!has_ref || strcmp(ref.dtype, "F32") || ref.n_dims != 2 || ref.shape[0] != n ||
            ref.shape[1] != info.n_vocab)
            return qe_fail(err, QE_EFORMAT, "%s: seq%d.logits is missing or not F32 [%d, %d]", path, i, n,
                           info.n_vocab);
        int32_t *tokens = malloc((size_t)n * sizeof *tokens);
        float *want = malloc(ref.n_bytes), *got = malloc(ref.n_bytes);
        float *base_logits = base ? malloc(ref.n_bytes) : NULL;
        qe_status rc = QE_OK;
        if (!tokens || !want || !got || (base && !base_logits))
            rc = qe_fail(err, QE_ENOMEM, "out of memory for seq%d", i);
        if (rc == QE_OK) {
            memcpy(tokens, ids.data, (size_t)n * sizeof *tokens); /* the mapping may be unaligned */
            memcpy(want, ref.data, ref.n_bytes);
            rc = qe_forward_logits(model, tokens, n, got, err);
        }
        if (rc == QE_OK && base)
            rc = qe_forward_logits(base, tokens, n, base_logits, err);
        if (rc == QE_OK && base)
            for (int t = 0; t < n; t++)
                qh_logit_stats_add(stats, base_logits + (size_t)t * info.n_vocab, got + (size_t)t * info.n_vocab,
                                   info.n_vocab, t + 1 < n ? tokens[t + 1] : -1);
        free(base_logits);
        if (rc == QE_OK)
            for (int t = 0; t < n; t++) {
                const float *w = want + (size_t)t * info.n_vocab, *g = got + (size_t)t * info.n_vocab;
                for (int v = 0; v < info.n_vocab; v++) {
                    double d = fabs((double)w[v] - g[v]);
                    if (!(d <= c->max_abs_diff)) /* NaN counts as the worst */
                        c->max_abs_diff = isnan(d) ? INFINITY : d;
                }
                c->n_argmax_agree += argmax_row(w, info.n_vocab) == argmax_row(g, info.n_vocab);
                c->n_positions++;
            }
        free(tokens);
        free(want);
        free(got);
        if (rc != QE_OK)
            return rc;
    }
}

/* Reads an array of token ids; -1 when not an array of integers. */
static int json_ids(const cJSON *array, int32_t **out)
{
    *out = NULL;
    if (!cJSON_IsArray(array))
        return -1;
    int n = cJSON_GetArraySize(array);
    int32_t *ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
    if (!ids)
        return -1;
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, array) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 2147483647.0) {
            free(ids);
            return -1;
        }
        ids[i++] = (int32_t)e->valuedouble;
    }
    *out = ids;
    return n;
}

static qe_status check_greedy(qe_model *model, const char *json_path, verify_counts *c, qe_error *err)
{
    char *text = NULL;
    size_t n_text = 0;
    qd_source *src = NULL;
    qe_status rc = qd_source_open(json_path, &src, err);
    if (rc == QE_OK)
        rc = qd_source_read_all(src, &text, &n_text, err);
    qd_source_close(src);
    if (rc != QE_OK)
        return rc;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root)
        return qe_fail(err, QE_EFORMAT, "%s: not valid JSON", json_path);
    const cJSON *greedy = cJSON_GetObjectItemCaseSensitive(root, "greedy"), *g;
    int j = 0;
    cJSON_ArrayForEach(g, greedy) {
        int32_t *prompt = NULL, *want = NULL, *got = NULL;
        int n_prompt = json_ids(cJSON_GetObjectItemCaseSensitive(g, "prompt_ids"), &prompt);
        int n_want = json_ids(cJSON_GetObjectItemCaseSensitive(g, "output_ids"), &want);
        int n_got = 0;
        if (n_prompt < 1 || n_want < n_prompt || memcmp(prompt, want, (size_t)n_prompt * sizeof *prompt))
            rc = qe_fail(err, QE_EFORMAT, "%s: greedy[%d] needs prompt_ids and output_ids that start with them",
                         json_path, j);
        else
            rc = qe_generate_ids(model, prompt, n_prompt, n_want - n_prompt, &got, &n_got, NULL, err);
        if (rc == QE_OK) {
            c->n_greedy++;
            c->n_greedy_match += n_got == n_want - n_prompt &&
                                 !memcmp(got, want + n_prompt, (size_t)n_got * sizeof *got);
        }
        free(prompt);
        free(want);
        free(got);
        if (rc != QE_OK)
            break;
        j++;
    }
    cJSON_Delete(root);
    return rc;
}

static int usage(void)
{
    fprintf(stderr, "usage: qeval verify MODEL --golden golden.safetensors [--variant V] [--threads N]\n"
                    "                    [--device cpu|cuda|cuda:N]\n");
    return QH_EXIT_USAGE;
}

int qh_cmd_verify(int argc, char **argv)
{
    const char *model_path = NULL, *golden_path = NULL, *variant_name = "fp32";
    int n_threads = 0, device_index = 0;
    qe_device_kind device = qe_default_device();
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage();
            return QH_EXIT_OK;
        } else if (!strcmp(argv[i], "--golden") && i + 1 < argc)
            golden_path = argv[++i];
        else if (!strcmp(argv[i], "--variant") && i + 1 < argc)
            variant_name = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            n_threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--device") && i + 1 < argc) {
            if (!qh_parse_device(argv[++i], &device, &device_index))
                return qh_usage_error("verify", "--device must be cpu, cuda or cuda:N, not '%s'", argv[i]);
        } else if (argv[i][0] != '-' && !model_path)
            model_path = argv[i];
        else
            return qh_usage_error("verify", "unexpected argument '%s'", argv[i]);
    }
    if (!model_path || !golden_path)
        return usage();
    qe_error err = {0};
    qe_load_options options = {.device = device, .device_index = device_index, .n_threads = n_threads};
    qe_load_options base_options = {.variant = {.kind = QE_VARIANT_FP32}, .device = device,
                                     .device_index = device_index, .n_threads = n_threads};
    qe_model *model = NULL, *base = NULL;
    qe_safetensors *golden = NULL;
    verify_counts counts = {0};
    qh_logit_stats stats = {0};
    int exit_code = QH_EXIT_OK;
    if (qe_variant_parse(variant_name, &options.variant, &err) ||
        qe_safetensors_open(golden_path, &golden, &err) || qe_model_load(model_path, &options, &model, &err) ||
        (options.variant.kind != QE_VARIANT_FP32 && qe_model_load(model_path, &base_options, &base, &err)) ||
        check_logits(model, golden, &counts, base, &stats, &err)) {
        exit_code = qh_report_error(&err);
        goto out;
    }
    char json_path[4096];
    const char *slash = strrchr(golden_path, '/');
    snprintf(json_path, sizeof json_path, "%.*sgolden.json", slash ? (int)(slash - golden_path + 1) : 0, golden_path);
    struct stat json_stat;
    if (stat(json_path, &json_stat) == 0 && check_greedy(model, json_path, &counts, &err)) {
        exit_code = qh_report_error(&err);
        goto out;
    }
    printf("max_abs_diff=%.3g argmax_agree=%d/%d greedy_match=%d/%d\n", counts.max_abs_diff, counts.n_argmax_agree,
           counts.n_positions, counts.n_greedy_match, counts.n_greedy);
    if (base)
        printf("vs fp32: mean_kl=%.6g max_kl=%.6g top1_agree=%lld/%lld (%.2f%%) rms_dp=%.4f%%\n",
               qh_logit_stats_mean_kl(&stats), stats.max_kl, (long long)stats.n_top1_agree,
               (long long)stats.n_positions, 100.0 * qh_logit_stats_top1(&stats), 100.0 * qh_logit_stats_rms_dp(&stats));
    tolerance tol = tolerance_for(&options.variant);
    if (!(counts.max_abs_diff <= tol.max_abs_diff) ||
        counts.n_argmax_agree < tol.min_argmax_agree * counts.n_positions ||
        counts.n_greedy_match < tol.min_greedy_match * counts.n_greedy) {
        fprintf(stderr, "qeval: %s (%s) is outside the tolerance: max_abs_diff <= %g, argmax agreement >= %g, "
                        "greedy match >= %g\n",
                model_path, variant_name, tol.max_abs_diff, tol.min_argmax_agree, tol.min_greedy_match);
        exit_code = QH_EXIT_ERROR;
    }
out:
    qe_model_free(base);
    qe_model_free(model);
    qe_safetensors_close(golden);
    return exit_code;
}
