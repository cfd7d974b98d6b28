/* qeval bench MODEL [--variants fp32,bf16,...] [--prompt-tokens N] [--gen-tokens N] [--threads N] [--device D]
 * Prefill and decode speed of each variant on a synthetic prompt (token ids spread over the
 * vocabulary), after one small warm-up run. A measurement, not a test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "model_cache.h"
#include "qeval_engine.h"

#define MAX_VARIANTS 8

typedef struct {
    char name[16];
    double prefill_tok_s, decode_tok_s;
} bench_result;

static qe_status bench_one(const char *path, const qe_load_options *options, int n_prompt, int n_gen,
                           bench_result *out, qe_error *err)
{
    qe_model *model = NULL;
    qe_status rc = qh_model_open(path, options, &model, err);
    if (rc != QE_OK)
        return rc;
    qe_model_info info;
    qe_model_get_info(model, &info);
    if (n_prompt + n_gen > info.max_context) {
        qe_model_free(model);
        return qe_fail(err, QE_EINVAL, "%s: %d prompt + %d generated tokens exceed the %d-token window", path,
                       n_prompt, n_gen, info.max_context);
    }
    int32_t *prompt = malloc((size_t)n_prompt * sizeof *prompt), *ids = NULL;
    int n_out = 0;
    qe_generate_stats stats;
    for (int i = 0; i < n_prompt; i++)
        prompt[i] = (int32_t)((7919u * (unsigned)i + 3u) % (unsigned)info.n_vocab);
    /* warm-up on a different first token so the measured run finds nothing cached */
    int32_t warm[2] = {(prompt[0] + 1) % info.n_vocab, prompt[0]};
    rc = qe_generate_ids(model, warm, 2, 2, &ids, &n_out, NULL, err);
    free(ids);
    ids = NULL;
    if (rc == QE_OK)
        rc = qe_generate_ids(model, prompt, n_prompt, n_gen, &ids, &n_out, &stats, err);
    if (rc == QE_OK) {
        snprintf(out->name, sizeof out->name, "%s", qe_variant_name(&options->variant));
        out->prefill_tok_s = n_prompt / (stats.prefill_ms / 1e3);
        /* the first new token comes from the prefill; the rest from decode steps */
        out->decode_tok_s = n_out > 1 ? (n_out - 1) / (stats.decode_ms / 1e3) : 0;
    }
    free(ids);
    free(prompt);
    qe_model_free(model);
    return rc;
}

int qh_cmd_bench(int argc, char **argv)
{
    const char *path = NULL;
    char variants[256] = "fp32";
    int n_prompt = 128, n_gen = 32, n_threads = 0, device_index = 0;
    qe_device_kind device = qe_default_device();
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: qeval bench MODEL [--variants fp32,bf16,...] [--prompt-tokens N] [--gen-tokens N] "
                   "[--threads N] [--device cpu|cuda|cuda:N]\n");
            return QH_EXIT_OK;
        } else if (!strcmp(argv[i], "--variants") && i + 1 < argc)
            snprintf(variants, sizeof variants, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--prompt-tokens") && i + 1 < argc)
            n_prompt = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--gen-tokens") && i + 1 < argc)
            n_gen = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            n_threads = atoi(argv[++i]);
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
    if (n_prompt < 1 || n_gen < 2)
        return qh_usage_error("bench", "--prompt-tokens must be >= 1 and --gen-tokens >= 2");
    bench_result results[MAX_VARIANTS];
    int n_results = 0;
    qe_error err = {0};
    printf("%-10s %14s %14s\n", "variant", "prefill tok/s", "decode tok/s");
    for (char *save = NULL, *name = strtok_r(variants, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
        if (n_results == MAX_VARIANTS)
            return qh_usage_error("bench", "at most %d variants", MAX_VARIANTS);
        qe_load_options options = {.device = device, .device_index = device_index, .n_threads = n_threads};
        if (qe_variant_parse(name, &options.variant, &err) ||
            bench_one(path, &options, n_prompt, n_gen, &results[n_results], &err))
            return qh_report_error(&err);
        printf("%-10s %14.1f %14.1f\n", results[n_results].name, results[n_results].prefill_tok_s,
               results[n_results].decode_tok_s);
        fflush(stdout);
        n_results++;
    }
    for (int i = 1; i < n_results; i++)
        printf("%s/%s: prefill x%.2f, decode x%.2f\n", results[i].name, results[0].name,
               results[i].prefill_tok_s / results[0].prefill_tok_s, results[i].decode_tok_s / results[0].decode_tok_s);
    return QH_EXIT_OK;
}
