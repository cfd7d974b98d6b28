/* test_cuda_models — every shared model in every variant, on the GPU against the CPU, through
 * the engine API: the logits of one forward pass over a fixed token sequence and a greedy
 * continuation. fp32: max |logit difference| <= 1e-3, every argmax and the greedy tokens equal
 * (the CPU tolerances of qeval verify). bf16, int8, nf4: over all models, >= 99% of positions
 * agree on the top token and the mean KL(CPU || GPU) < 1e-3. Skips (77) without a GPU or the
 * shared models. Prints one line per (model, variant) with the figures. On the GPU the memory
 * estimate's weight and KV bytes equal the allocator's (qe_model_estimate_memory).
 * Then tiny-gemma3 (window 16) over 600 positions, 37 windows: the sliding layers' rings of
 * 16 + 256 - 1 = 271 rows give the unbounded cache's bits on the GPU (one pass and token by
 * token), the CPU's logits within fp32's tolerance, and the allocator's KV bytes are the rule's
 * (hand-computed), flat for the sliding layers past the ring. Last, batched decoding
 * (check_sequences): each sequence's bits are those it gets alone, and the recorded steps
 * (CUDA graphs) give the bits of their ops launched one by one. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cuda/backend_cuda.h"
#include "device.h"
#include "model.h"
#include "qeval_engine.h"

#define N_TOKENS 96
#define N_NEW 24

static int argmax(const float *row, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (row[i] > row[best])
            best = i;
    return best;
}

/* KL(p || q) of two logit rows, in double. */
static double kl_of(const float *p_logits, const float *q_logits, int n)
{
    double pm = p_logits[argmax(p_logits, n)], qm = q_logits[argmax(q_logits, n)], pz = 0, qz = 0;
    for (int i = 0; i < n; i++) {
        pz += exp(p_logits[i] - pm);
        qz += exp(q_logits[i] - qm);
    }
    double lpz = pm + log(pz), lqz = qm + log(qz), kl = 0;
    for (int i = 0; i < n; i++) {
        double lp = p_logits[i] - lpz, lq = q_logits[i] - lqz;
        kl += exp(lp) * (lp - lq);
    }
    return kl;
}

typedef struct {
    float *logits;   /* [N_TOKENS, n_vocab] */
    int32_t *gen;    /* [n_gen] */
    int n_gen, n_vocab;
} outputs;

static qe_status run_on(const char *dir, const char *variant, qe_device_kind device, const int32_t *ids, outputs *o,
                        qe_error *err)
{
    qe_load_options opt = {.device = device, .max_context = 256};
    qe_model *m = NULL;
    qe_status rc = qe_variant_parse(variant, &opt.variant, err);
    if (rc == QE_OK)
        rc = qe_model_load(dir, &opt, &m, err);
    if (rc != QE_OK)
        return rc;
    qe_model_info info;
    qe_model_get_info(m, &info);
    o->n_vocab = info.n_vocab;
    o->logits = malloc((size_t)N_TOKENS * info.n_vocab * sizeof(float));
    int32_t prompt[N_TOKENS];
    for (int i = 0; i < N_TOKENS; i++)
        prompt[i] = ids[i] % info.n_vocab;
    rc = qe_forward_logits(m, prompt, N_TOKENS, o->logits, err);
    qe_generate_stats stats;
    if (rc == QE_OK)
        rc = qe_generate_ids(m, prompt, 16, N_NEW, &o->gen, &o->n_gen, &stats, err);
    /* the planner's figures for what ran: weight bytes exactly the allocator's, and its peak
     * (passes of at most 256 tokens) not below the measured one (these passes are shorter) */
    qe_device_memory mem;
    if (rc == QE_OK && device == QE_DEVICE_CUDA && qe_model_device_memory(m, &mem)) {
        qe_estimate_options eo = {.variant = opt.variant, .context = qe_model_cache_capacity(m), .batch = 1,
                                  .device = QE_DEVICE_CUDA};
        qe_memory_estimate e;
        if ((rc = qe_model_estimate_memory(m, &eo, &e, err)) == QE_OK) {
            CHECK_INT_EQ(e.weights_bytes, mem.weights_bytes);
            CHECK_INT_EQ(e.kv_cache_bytes, qe_model_kv_cache_bytes(m));
            CHECK(mem.peak_bytes <= e.weights_bytes + e.kv_cache_bytes + e.activation_bytes);
        }
    }
    qe_model_free(m);
    return rc;
}

/* A tiny-gemma3 on the GPU, fp32, 1024 positions, chunks of chunk_tokens (0: the default). */
static qe_model *load_gemma(const char *dir, qe_device_kind device, int chunk_tokens)
{
    qe_load_options opt = {.variant = {.kind = QE_VARIANT_FP32}, .device = device, .max_context = 1024};
    qe_model *m = NULL;
    qe_error err = {0};
    if (qe_model_load(dir, &opt, &m, &err) != QE_OK) {
        fprintf(stderr, "%s: %s\n", dir, err.msg);
        check_n_failed++;
        return NULL;
    }
    if (chunk_tokens)
        m->chunk_tokens = chunk_tokens;
    return m;
}

/* KV bytes the GPU allocator holds now */
static uint64_t kv_bytes_held(const qe_model *m)
{
    qe_backend_memory mem;
    return qe_backend_cuda_memory(m->backend, &mem) ? mem.current_bytes[QE_MEM_KV_CACHE] : 0;
}

static void check_sliding_window(const char *shared)
{
    enum { N = 600, VOCAB = 2048, ROW_BYTES = 1 * 32 * 4 }; /* one kv head of 32 floats */
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/models/tiny-gemma3", shared);
    qe_model *ring = load_gemma(dir, QE_DEVICE_CUDA, 0), *flat = load_gemma(dir, QE_DEVICE_CUDA, 1024);
    qe_model *cpu = load_gemma(dir, QE_DEVICE_CPU, 0);
    int32_t *ids = malloc(N * sizeof *ids);
    size_t n = (size_t)N * VOCAB;
    float *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got), *on_cpu = malloc(n * sizeof *on_cpu);
    qe_error err = {0};
    if (!ring || !flat || !cpu)
        goto out;
    CHECK_INT_EQ(271, qe_kv_ring(&ring->cfg.layers[0], ring->max_context, ring->chunk_tokens));
    for (int t = 0; t < N; t++)
        ids[t] = (int32_t)((t * 104729u + 7u) % VOCAB);
    /* token by token from an empty cache: the allocator's KV bytes at every step, by hand:
     * 6 layers x 256 rows up to 256 positions, then rings of 271 and a full layer of 512, 1024 */
    for (int t = 0; t < N; t++) {
        CHECK_INT_EQ(QE_OK, qe_model_forward(ring, ids + t, 1, t, 0, got + (size_t)t * VOCAB, NULL, NULL, &err));
        uint64_t held = kv_bytes_held(ring);
        CHECK_INT_EQ(qe_model_kv_cache_bytes(ring), held);
        if (t + 1 == 256)
            CHECK_INT_EQ(2 * 6 * 256 * ROW_BYTES, held);
        if (t + 1 == 300)
            CHECK_INT_EQ(2 * (5 * 271 + 512) * ROW_BYTES, held);
        if (t + 1 == N)
            CHECK_INT_EQ(2 * (5 * 271 + 1024) * ROW_BYTES, held); /* 609,024 bytes */
        if (t + 1 > 256) /* the five rings' share, flat past them */
            CHECK_INT_EQ(2 * 5 * 271 * ROW_BYTES, held - 2 * (uint64_t)qe_kv_capacity(t + 1, 1024) * ROW_BYTES);
    }
    CHECK_INT_EQ(QE_OK, qe_model_forward(flat, ids, N, 0, 0, want, NULL, NULL, &err));
    CHECK_INT_EQ(2 * 6 * 1024 * ROW_BYTES, kv_bytes_held(flat)); /* 1,572,864: the unbounded cache */
    CHECK(!memcmp(want, got, n * sizeof *got));
    CHECK_INT_EQ(QE_OK, qe_model_forward(ring, ids, N, 0, 0, got, NULL, NULL, &err)); /* chunks 256, 256, 88 */
    CHECK(!memcmp(want, got, n * sizeof *got));
    qe_device_memory mem;
    CHECK(qe_model_device_memory(ring, &mem));
    CHECK_INT_EQ(QE_OK, qe_model_forward(cpu, ids, N, 0, 0, on_cpu, NULL, NULL, &err));
    double max_diff = 0;
    int agree = 0;
    for (int r = 0; r < N; r++) {
        const float *a = on_cpu + (size_t)r * VOCAB, *b = got + (size_t)r * VOCAB;
        for (int j = 0; j < VOCAB; j++)
            if (!(fabs(a[j] - b[j]) <= max_diff))
                max_diff = isnan(b[j]) ? INFINITY : fabs(a[j] - b[j]);
        agree += argmax(a, VOCAB) == argmax(b, VOCAB);
    }
    printf("sliding window: tiny-gemma3 over %d positions, rings of 271 rows: the unbounded bits %s, "
           "max|dlogit| vs CPU %.3g, top1 %d/%d, KV now %llu bytes (peak %llu; unbounded %llu)\n", N,
           memcmp(want, got, n * sizeof *got) ? "DIFFER" : "kept", max_diff, agree, N,
           (unsigned long long)kv_bytes_held(ring), (unsigned long long)mem.kv_cache_peak_bytes,
           (unsigned long long)kv_bytes_held(flat));
    CHECK(max_diff <= 1e-3);
    CHECK_INT_EQ(N, agree);
out:
    free(ids), free(want), free(got), free(on_cpu);
    qe_model_free(ring);
    qe_model_free(flat);
    qe_model_free(cpu);
}

enum { N_SEQ = 4, N_STEPS = 6 };

/* Prompts of 5, 13, 21, 29 tokens, then N_STEPS steps of all N_SEQ sequences together. */
static qe_status decode_together(qe_model *m, const int32_t *prompt, int32_t step_ids[N_STEPS][N_SEQ], size_t n_vocab,
                                 float *logits, qe_error *err)
{
    qe_status rc = qe_sequences_reset(m, N_SEQ, err);
    for (int i = 0; i < N_SEQ && rc == QE_OK; i++)
        rc = qe_sequence_prefill(m, i, prompt + i, 5 + 8 * i, err);
    for (int t = 0; t < N_STEPS && rc == QE_OK; t++)
        rc = qe_forward_sequences(m, step_ids[t], N_SEQ, logits + (size_t)t * N_SEQ * n_vocab, err);
    return rc;
}

/* Batched decoding on the GPU (qe_forward_sequences: the linears over the sequences' rows, their
 * caches' rows and attention in one launch each): every sequence's logits are the bits it gets
 * decoded alone, for tiny-qwen2 (its q, k, v and gate, up in one launch) and tiny-gemma3 (rings)
 * in every variant. The steps are recorded and replayed (graph_begin); launched op by op they
 * give the same bits. */
static void check_sequences(const char *shared)
{
    const char *models[] = {"tiny-qwen2", "tiny-gemma3"};
    const char *variants[] = {"fp32", "bf16", "int8", "nf4"};
    for (size_t mi = 0; mi < 2; mi++)
        for (size_t v = 0; v < 4; v++) {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s/models/%s", shared, models[mi]);
            qe_load_options opt = {.device = QE_DEVICE_CUDA, .max_context = 256};
            qe_model *m = NULL;
            qe_error err = {0};
            if (qe_variant_parse(variants[v], &opt.variant, &err) != QE_OK ||
                qe_model_load(dir, &opt, &m, &err) != QE_OK) {
                fprintf(stderr, "%s %s: %s\n", models[mi], variants[v], err.msg);
                check_n_failed++;
                continue;
            }
            qe_model_info info;
            qe_model_get_info(m, &info);
            size_t n_vocab = (size_t)info.n_vocab;
            float *together = malloc(N_STEPS * N_SEQ * n_vocab * sizeof(float));
            float *alone = malloc(N_STEPS * n_vocab * sizeof(float));
            float *unrecorded = malloc(N_STEPS * N_SEQ * n_vocab * sizeof(float));
            int32_t prompt[N_SEQ * 8 + 8], step_ids[N_STEPS][N_SEQ];
            for (int i = 0; i < (int)(sizeof prompt / sizeof prompt[0]); i++)
                prompt[i] = 1 + (int32_t)((i * 7919u) % (unsigned)info.n_vocab);
            for (int t = 0; t < N_STEPS; t++)
                for (int i = 0; i < N_SEQ; i++)
                    step_ids[t][i] = 1 + (t * 31 + i * 17) % info.n_vocab;
            uint64_t replays = qe_backend_cuda_replays(m->backend);
            qe_status rc = decode_together(m, prompt, step_ids, n_vocab, together, &err);
            replays = qe_backend_cuda_replays(m->backend) - replays;
            qe_backend_cuda_set_graphs(m->backend, false);
            if (rc == QE_OK)
                rc = decode_together(m, prompt, step_ids, n_vocab, unrecorded, &err);
            qe_backend_cuda_set_graphs(m->backend, true);
            bool is_same_unrecorded = !memcmp(together, unrecorded, N_STEPS * N_SEQ * n_vocab * sizeof(float));
            int n_same = 0;
            for (int i = 0; i < N_SEQ && rc == QE_OK; i++) {
                rc = qe_sequences_reset(m, 1, &err);
                if (rc == QE_OK)
                    rc = qe_sequence_prefill(m, 0, prompt + i, 5 + 8 * i, &err);
                bool is_same = true;
                for (int t = 0; t < N_STEPS && rc == QE_OK; t++) {
                    rc = qe_forward_sequences(m, &step_ids[t][i], 1, alone + t * n_vocab, &err);
                    is_same = is_same && !memcmp(alone + t * n_vocab, together + ((size_t)t * N_SEQ + i) * n_vocab,
                                                 n_vocab * sizeof(float));
                }
                n_same += rc == QE_OK && is_same;
            }
            if (rc != QE_OK) {
                fprintf(stderr, "%s %s: %s\n", models[mi], variants[v], err.msg);
                check_n_failed++;
            }
            printf("%-12s %-9s sequences decoded together: %d of %d bit-identical to alone (%d steps, %llu "
                   "replayed; launched op by op: %s)\n",
                   models[mi], variants[v], n_same, N_SEQ, N_STEPS, (unsigned long long)replays,
                   is_same_unrecorded ? "the same bits" : "DIFFERENT bits");
            CHECK_INT_EQ(N_SEQ, n_same);
            CHECK(is_same_unrecorded);
            CHECK(replays > 0); /* recorded at the first step and again where a cache grew */
            free(together), free(alone), free(unrecorded);
            qe_model_free(m);
        }
}

int main(void)
{
    if (qe_gpu_count() == 0) {
        printf("skipped: no CUDA GPU on this machine\n");
        return 77;
    }
    const char *shared = check_shared_dir();
    const char *models[] = {"stories260K", "tiny-llama3", "tiny-qwen2", "tiny-gemma3"};
    const char *variants[] = {"fp32", "bf16", "int8", "nf4", "nf4-nodq"};
    int32_t ids[N_TOKENS];
    for (int i = 0; i < N_TOKENS; i++)
        ids[i] = 1 + (int32_t)((i * 7919u + 13u * i * i) % 100000u);
    for (size_t v = 0; v < sizeof variants / sizeof variants[0]; v++) {
        long n_rows = 0, n_agree = 0;
        double kl_sum = 0;
        for (size_t mi = 0; mi < sizeof models / sizeof models[0]; mi++) {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s/models/%s", shared, models[mi]);
            char config[4200];
            snprintf(config, sizeof config, "%s/config.json", dir);
            FILE *probe = fopen(config, "r");
            if (!probe) {
                printf("skipped: %s/config.json is missing\n", dir);
                return 77;
            }
            fclose(probe);
            qe_error err = {0};
            outputs cpu = {0}, gpu = {0};
            if (run_on(dir, variants[v], QE_DEVICE_CPU, ids, &cpu, &err) ||
                run_on(dir, variants[v], QE_DEVICE_CUDA, ids, &gpu, &err)) {
                fprintf(stderr, "%s %s: %s\n", models[mi], variants[v], err.msg);
                check_n_failed++;
                continue;
            }
            int n = cpu.n_vocab, agree = 0;
            double max_diff = 0, kl = 0;
            for (int r = 0; r < N_TOKENS; r++) {
                const float *a = cpu.logits + (size_t)r * n, *b = gpu.logits + (size_t)r * n;
                for (int j = 0; j < n; j++)
                    if (!(fabs(a[j] - b[j]) <= max_diff))
                        max_diff = isnan(b[j]) ? INFINITY : fabs(a[j] - b[j]);
                agree += argmax(a, n) == argmax(b, n);
                kl += kl_of(a, b, n);
            }
            bool same_greedy = cpu.n_gen == gpu.n_gen && !memcmp(cpu.gen, gpu.gen, cpu.n_gen * sizeof *cpu.gen);
            printf("%-12s %-9s max|dlogit| %.3g  top1 %d/%d  mean KL %.3g  greedy %s\n", models[mi], variants[v],
                   max_diff, agree, N_TOKENS, kl / N_TOKENS, same_greedy ? "same" : "DIFFERS");
            if (!strcmp(variants[v], "fp32")) {
                CHECK(max_diff <= 1e-3);
                CHECK_INT_EQ(N_TOKENS, agree);
                CHECK(same_greedy);
            }
            n_rows += N_TOKENS;
            n_agree += agree;
            kl_sum += kl;
            free(cpu.logits), free(gpu.logits), free(cpu.gen), free(gpu.gen);
        }
        if (n_rows) {
            printf("%-12s %-9s top1 %.4f  mean KL %.3g\n", "all", variants[v], (double)n_agree / n_rows,
                   kl_sum / n_rows);
            CHECK((double)n_agree / n_rows >= 0.99);
            CHECK(kl_sum / n_rows < 1e-3);
        }
    }
    check_sliding_window(shared);
    check_sequences(shared);
    return check_summary();
}
