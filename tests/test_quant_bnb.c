/* test_quant_bnb — qeval's NF4 and LLM.int8() formats against bitsandbytes 0.50.2 itself
 * (tests/golden/bnb/, made on a GPU by tests/golden/make_bnb_golden.py). */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <zlib.h>

#include "check.h"
#include "dtype.h"
#include "quant.h"
#include "safetensors.h"

static char golden_dir[1024];

static qe_safetensors *open_golden(const char *name)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", golden_dir, name);
    qe_safetensors *st = NULL;
    qe_error err = {0};
    if (qe_safetensors_open(path, &st, &err) != QE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    return st;
}

/* The tensor as fp32 (F32/BF16/F16); NULL and a failed check when absent. */
static float *get_f32(const qe_safetensors *st, const char *name, uint64_t *n)
{
    const qe_tensor_view *t = qe_safetensors_find(st, name);
    if (!t) {
        fprintf(stderr, "golden tensor %s missing\n", name);
        CHECK(t != NULL);
        return NULL;
    }
    float *v = malloc(t->n_elements * sizeof *v + 1);
    qe_convert_to_f32(v, t->data, t->dtype, t->n_elements);
    *n = t->n_elements;
    return v;
}

static const qe_tensor_view *get(const qe_safetensors *st, const char *fmt, const char *a, const char *b)
{
    char name[256];
    snprintf(name, sizeof name, fmt, a, b);
    const qe_tensor_view *t = qe_safetensors_find(st, name);
    if (!t) fprintf(stderr, "golden tensor %s missing\n", name);
    CHECK(t != NULL);
    return t;
}

/* Counts bytes that differ; prints the first. */
static int64_t count_diff(const char *what, const void *expected, const void *got, size_t n_bytes)
{
    const uint8_t *e = expected, *g = got;
    int64_t n_diff = 0;
    for (size_t i = 0; i < n_bytes; i++)
        if (e[i] != g[i] && n_diff++ == 0)
            fprintf(stderr, "%s: first difference at byte %zu: expected 0x%02x, got 0x%02x\n", what, i, e[i], g[i]);
    return n_diff;
}

static uint32_t float_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* synth() of make_bnb_golden.py: splitmix64 integers over a power of two, exact in fp32. */
static void synth(float *x, int64_t n, uint64_t seed, int outlier_every)
{
    for (int64_t i = 0; i < n; i++) {
        uint64_t z = (seed << 32 | (uint64_t)i) + 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        int64_t s = -131070;
        for (int k = 0; k < 4; k++) s += (int64_t)((z >> (16 * k)) & 0xFFFF);
        double v = (double)s / (double)(1 << 21);
        if (outlier_every && i % outlier_every == 0) v *= 64.0;
        x[i] = (float)v;
    }
}

/* One quantization of a golden case compared with every array bitsandbytes returned. */
static void check_nf4_case(const qe_safetensors *st, const char *name, const char *tag, const float *w,
                           int64_t n, cJSON *meta)
{
    int block_size = atoi(tag + (tag[0] == 'd' ? 2 : 4));
    bool dq = tag[0] == 'd';
    char what[128];
    snprintf(what, sizeof what, "%s.%s", name, tag);
    qe_nf4_weight q;
    qe_error err = {0};
    CHECK(qe_nf4_quantize(w, 1, (int)n, block_size, dq, &q, &err) == QE_OK);

    char key[160];
    snprintf(key, sizeof key, "%s.%s.packed", name, tag);
    const qe_tensor_view *packed = meta ? qe_safetensors_find(st, key) : get(st, "%s.%s.packed", name, tag);
    if (packed) {
        CHECK_INT_EQ(packed->n_bytes, (n + 1) / 2);
        CHECK_INT_EQ(0, count_diff(what, packed->data, q.packed, packed->n_bytes));
    } else if (meta) { /* big case: only checksums were kept */
        snprintf(key, sizeof key, "%s.%s.packed.crc32", name, tag);
        cJSON *item = cJSON_GetObjectItem(meta, key);
        CHECK(item && cJSON_IsString(item));
        if (item) CHECK_INT_EQ(strtoul(item->valuestring, NULL, 10),
                               crc32(0, q.packed, (uInt)((n + 1) / 2)));
    }
    if (!dq) {
        const qe_tensor_view *absmax = get(st, "%s.%s.absmax", name, tag);
        if (absmax) CHECK_INT_EQ(0, count_diff(what, absmax->data, q.absmax, absmax->n_bytes));
    } else {
        const qe_tensor_view *offset = get(st, "%s.%s.offset", name, tag);
        const qe_tensor_view *qabsmax = get(st, "%s.%s.qabsmax", name, tag);
        const qe_tensor_view *absmax2 = get(st, "%s.%s.absmax2", name, tag);
        const qe_tensor_view *code2 = get(st, "%s.%s.code2", name, tag);
        if (offset && qabsmax && absmax2 && code2) {
            float golden_offset;
            memcpy(&golden_offset, offset->data, 4);
            int64_t ulps = (int64_t)float_bits(golden_offset) - (int64_t)float_bits(q.offset);
            CHECK(ulps >= -1 && ulps <= 1); /* the GPU's float summation order moves the last bit */
            if (ulps == 0) {
                CHECK_INT_EQ(0, count_diff(what, qabsmax->data, q.qabsmax, qabsmax->n_bytes));
                CHECK_INT_EQ(0, count_diff(what, absmax2->data, q.absmax2, absmax2->n_bytes));
            } else {
                printf("%s: offset differs from bitsandbytes' by %lld ulp\n", what, (long long)ulps);
            }
            q.offset = golden_offset; /* from here on, the rest follows from bitsandbytes' offset */
            CHECK_INT_EQ(0, count_diff(what, code2->data, q.code8, 256 * 4));
            /* The nested stage alone, from bitsandbytes' own offset, is exact. */
            qe_nf4_weight plain;
            CHECK(qe_nf4_quantize(w, 1, (int)n, block_size, false, &plain, &err) == QE_OK);
            for (int64_t b = 0; b < plain.n_blocks; b++) plain.absmax[b] -= golden_offset;
            uint8_t *codes = malloc((size_t)plain.n_blocks);
            float *absmax2_own = malloc((size_t)(plain.n_blocks / QE_NF4_DQ_BLOCK + 1) * 4);
            qe_blockwise8_quantize(plain.absmax, plain.n_blocks, QE_NF4_DQ_BLOCK, q.code8, codes, absmax2_own);
            CHECK_INT_EQ(0, count_diff(what, qabsmax->data, codes, qabsmax->n_bytes));
            CHECK_INT_EQ(0, count_diff(what, absmax2->data, absmax2_own, absmax2->n_bytes));
            free(q.qabsmax);
            free(q.absmax2);
            q.qabsmax = codes;
            q.absmax2 = absmax2_own;
            qe_nf4_free(&plain);
        }
    }
    const qe_tensor_view *code = get(st, "%s.%s.code", name, tag);
    if (code) CHECK_INT_EQ(0, count_diff(what, code->data, qe_nf4_code, sizeof qe_nf4_code));

    /* dequantize_4bit: fp32 out, or the bf16 rounding of it for a bf16 input */
    snprintf(key, sizeof key, "%s.%s.deq", name, tag);
    const qe_tensor_view *deq = meta ? qe_safetensors_find(st, key) : get(st, "%s.%s.deq", name, tag);
    float *out = malloc((size_t)n * sizeof *out);
    qe_nf4_dequantize(&q, out);
    if (!deq && meta) {
        snprintf(key, sizeof key, "%s.%s.deq.crc32", name, tag);
        cJSON *item = cJSON_GetObjectItem(meta, key);
        CHECK(item && cJSON_IsString(item));
        if (item) CHECK_INT_EQ(strtoul(item->valuestring, NULL, 10), crc32(0, (const Bytef *)out, (uInt)(n * 4)));
    }
    if (deq && deq->dtype == QE_DTYPE_F32) {
        CHECK_INT_EQ(0, count_diff(what, deq->data, out, deq->n_bytes));
    } else if (deq && deq->dtype == QE_DTYPE_BF16) {
        uint16_t *bf = malloc((size_t)n * 2);
        for (int64_t i = 0; i < n; i++) bf[i] = qe_f32_to_bf16(out[i]);
        CHECK_INT_EQ(0, count_diff(what, deq->data, bf, deq->n_bytes));
        free(bf);
    }
    free(out);
    qe_nf4_free(&q);
}

static cJSON *read_metadata(const char *file)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", golden_dir, file);
    FILE *f = fopen(path, "rb");
    uint64_t len = 0;
    if (!f || fread(&len, 8, 1, f) != 1 || len > (1u << 26)) {
        if (f) fclose(f);
        return NULL;
    }
    char *text = malloc(len + 1);
    size_t got = fread(text, 1, len, f);
    fclose(f);
    text[got] = 0;
    cJSON *root = cJSON_Parse(text);
    free(text);
    cJSON *meta = cJSON_DetachItemFromObject(root, "__metadata__");
    cJSON_Delete(root);
    return meta;
}

static void test_nf4(void)
{
    qe_safetensors *st = open_golden("nf4.safetensors");
    cJSON *meta = read_metadata("nf4.safetensors");
    CHECK(meta != NULL);
    static const char *const names[] = {"stories_q", "stories_gate", "llama3_q", "qwen2_k_bf16", "r_single",
                                        "r_odd", "r_zeroblock", "r_bf16"};
    static const char *const tags[] = {"dq64", "nodq64", "dq128", "nodq256", "dq32"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char key[128];
        snprintf(key, sizeof key, "%s.input", names[i]);
        uint64_t n = 0;
        float *w = get_f32(st, key, &n);
        if (!w) continue;
        for (size_t k = 0; k < sizeof tags / sizeof *tags; k++) {
            snprintf(key, sizeof key, "%s.%s.packed", names[i], tags[k]);
            if (qe_safetensors_find(st, key)) check_nf4_case(st, names[i], tags[k], w, (int64_t)n, NULL);
        }
        free(w);
    }
    /* a few million values, rebuilt here bit for bit; bitsandbytes' arrays kept as CRC32 */
    int64_t n_big = 2500001;
    float *big = malloc((size_t)n_big * sizeof *big);
    synth(big, n_big, 5, 997);
    check_nf4_case(st, "r_big", "dq64", big, n_big, meta);
    check_nf4_case(st, "r_big", "nodq64", big, n_big, meta);
    free(big);
    cJSON_Delete(meta);
    qe_safetensors_close(st);
}

/* int8 rows: SCB bit-exact; q exact except where x * 127 / absmax is an exact .5 tie, which the
 * GPU's approximate reciprocal may round either way (counted, and must stay rare). */
static void check_int8_rows(const char *what, const float *x, int rows, int cols, float threshold,
                            const int8_t *golden_q, const float *golden_scale, int64_t *n_ties_off,
                            int64_t *n_values)
{
    int8_t *q = malloc((size_t)rows * cols);
    bool *is_outlier = calloc((size_t)cols, 1);
    qe_int8_outlier_columns(x, rows, cols, threshold, is_outlier);
    for (int r = 0; r < rows; r++) {
        float scale = qe_int8_quantize_row(x + (size_t)r * cols, cols, threshold, q + (size_t)r * cols);
        if (float_bits(scale) != float_bits(golden_scale[r])) {
            fprintf(stderr, "%s row %d: scale %.9g, bitsandbytes %.9g\n", what, r, scale, golden_scale[r]);
            CHECK(false);
        }
        for (int c = 0; c < cols; c++) {
            size_t i = (size_t)r * cols + c;
            if (is_outlier[c]) q[i] = 0;
            (*n_values)++;
            if (q[i] == golden_q[i]) continue;
            double exact = (double)x[i] * 127.0 / (double)golden_scale[r];
            bool is_tie = fabs(exact - trunc(exact)) == 0.5 && abs(q[i] - golden_q[i]) == 1;
            if (!is_tie)
                fprintf(stderr, "%s [%d,%d]: x %.9g absmax %.9g: q %d, bitsandbytes %d\n", what, r, c, x[i],
                        golden_scale[r], q[i], golden_q[i]);
            CHECK(is_tie);
            (*n_ties_off)++;
        }
    }
    free(is_outlier);
    free(q);
}

static void test_int8(void)
{
    qe_safetensors *st = open_golden("int8.safetensors");
    static const char *const names[] = {"stories_q", "stories_gate", "llama3_q", "qwen2_k_bf16", "r_single", "r_odd",
                                        "r_zeroblock", "r_bf16", "r_zerorow", "r_wide", "mm"};
    int64_t n_ties_off = 0, n_values = 0;
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        const qe_tensor_view *w = get(st, strcmp(names[i], "mm") ? "%s.w16%s" : "%s.W16%s", names[i], "");
        const qe_tensor_view *cb = get(st, "%s.CB%s", names[i], "");
        const qe_tensor_view *scb = get(st, "%s.SCB%s", names[i], "");
        if (!w || !cb || !scb) continue;
        uint64_t n;
        float *x = get_f32(st, w->name, &n);
        float *scale = get_f32(st, scb->name, &n);
        int rows = (int)w->shape[0], cols = (int)w->shape[1];
        check_int8_rows(names[i], x, rows, cols, 0.0f, cb->data, scale, &n_ties_off, &n_values);
        qe_int8_weight qw;
        qe_error err = {0};
        CHECK(qe_int8_quantize(x, rows, cols, &qw, &err) == QE_OK);
        CHECK_INT_EQ(0, count_diff(names[i], scb->data, qw.scale, scb->n_bytes));
        CHECK_INT_EQ((uint64_t)rows * cols + rows * 4, qe_int8_bytes(&qw));
        qe_int8_free(&qw);
        free(x);
        free(scale);
    }
    /* activations with outlier columns, threshold 6 */
    static const char *const acts[] = {"act", "edge"};
    for (int a = 0; a < 2; a++) {
        const qe_tensor_view *xv = get(st, "%s.x16%s", acts[a], "");
        const qe_tensor_view *ca = get(st, "%s.CA%s", acts[a], "");
        const qe_tensor_view *sca = get(st, "%s.SCA%s", acts[a], "");
        const qe_tensor_view *cols_v = get(st, "%s.outlier_cols%s", acts[a], "");
        if (!xv || !ca || !sca || !cols_v) continue;
        uint64_t n;
        float *x = get_f32(st, xv->name, &n);
        float *scale = get_f32(st, sca->name, &n);
        int rows = (int)xv->shape[0], cols = (int)xv->shape[1];
        check_int8_rows(acts[a], x, rows, cols, 6.0f, ca->data, scale, &n_ties_off, &n_values);
        bool *is_outlier = calloc((size_t)cols, 1);
        int n_outliers = qe_int8_outlier_columns(x, rows, cols, 6.0f, is_outlier);
        CHECK_INT_EQ(cols_v->n_elements, n_outliers);
        for (uint64_t k = 0; k < cols_v->n_elements; k++) {
            int32_t col;
            memcpy(&col, (const char *)cols_v->data + 4 * k, 4);
            CHECK(col >= 0 && col < cols && is_outlier[col]);
        }
        free(is_outlier);
        free(x);
        free(scale);
    }
    printf("int8: %lld of %lld values differ from bitsandbytes, each an exact .5 tie\n", (long long)n_ties_off,
           (long long)n_values);
    CHECK(n_ties_off * 1000 < n_values);

    /* torch's float32 -> bf16 / fp16 casts, which the variants' loaders rely on */
    const qe_tensor_view *f = qe_safetensors_find(st, "cast.f32");
    const qe_tensor_view *bf = qe_safetensors_find(st, "cast.bf16");
    const qe_tensor_view *hf = qe_safetensors_find(st, "cast.f16");
    CHECK(f && bf && hf);
    if (f && bf && hf) {
        uint64_t n;
        float *v = get_f32(st, "cast.f32", &n);
        uint16_t *b = malloc(f->n_elements * 2), *h = malloc(f->n_elements * 2);
        for (uint64_t i = 0; i < f->n_elements; i++) {
            b[i] = qe_f32_to_bf16(v[i]);
            h[i] = qe_f32_to_f16(v[i]);
        }
        CHECK_INT_EQ(0, count_diff("bf16 cast", bf->data, b, bf->n_bytes));
        CHECK_INT_EQ(0, count_diff("f16 cast", hf->data, h, hf->n_bytes));
        free(b);
        free(h);
        free(v);
    }
    qe_safetensors_close(st);
}

/* Layer 0's q_proj as transformers 5.17 + bitsandbytes quantize it in from_pretrained: nf4
 * with dtype=bfloat16 (weights rounded to bf16 first), int8 with dtype=float16. */
static void test_transformers_load_path(void)
{
    qe_safetensors *golden = open_golden("hf_states.safetensors");
    static const char *const models[] = {"stories260K", "tiny-llama3", "tiny-qwen2"};
    for (int m = 0; m < 3; m++) {
        char path[1200], relative[128];
        snprintf(relative, sizeof relative, "models/%s/model.safetensors", models[m]);
        if (!check_shared_path(path, sizeof path, relative))
            continue;
        qe_safetensors *st = NULL;
        qe_error err = {0};
        if (qe_safetensors_open(path, &st, &err) != QE_OK) {
            check_n_failed++;
            fprintf(stderr, "%s\n", err.msg);
            continue;
        }
        uint64_t n;
        float *w = get_f32(st, "model.layers.0.self_attn.q_proj.weight", &n);
        const qe_tensor_view *wv = qe_safetensors_find(st, "model.layers.0.self_attn.q_proj.weight");
        if (!w || !wv) {
            qe_safetensors_close(st);
            continue;
        }
        int rows = (int)wv->shape[0], cols = (int)wv->shape[1];
        float *w_bf16 = malloc(n * sizeof *w_bf16), *w_f16 = malloc(n * sizeof *w_f16);
        for (uint64_t i = 0; i < n; i++) {
            w_bf16[i] = qe_bf16_to_f32(qe_f32_to_bf16(w[i]));
            w_f16[i] = qe_f16_to_f32(qe_f32_to_f16(w[i]));
        }
        static const char *const variants[] = {"nf4", "nf4-nodq", "nf4-auto"};
        for (int v = 0; v < 3; v++) {
            bool dq = v != 1;
            /* without a dtype, transformers keeps the checkpoint's dtype */
            const float *src = v == 2 ? w : w_bf16;
            qe_nf4_weight q;
            CHECK(qe_nf4_quantize(src, rows, cols, 64, dq, &q, &err) == QE_OK);
            const qe_tensor_view *packed = get(golden, "%s/%s.packed", models[m], variants[v]);
            const qe_tensor_view *absmax = get(golden, "%s/%s.absmax", models[m], variants[v]);
            if (packed) CHECK_INT_EQ(0, count_diff(packed->name, packed->data, q.packed, packed->n_bytes));
            if (absmax && !dq) CHECK_INT_EQ(0, count_diff(absmax->name, absmax->data, q.absmax, absmax->n_bytes));
            if (dq) {
                const qe_tensor_view *offset = get(golden, "%s/%s.offset", models[m], variants[v]);
                const qe_tensor_view *absmax2 = get(golden, "%s/%s.absmax2", models[m], variants[v]);
                float golden_offset = 0.0f;
                if (offset) memcpy(&golden_offset, offset->data, 4);
                int64_t ulps = (int64_t)float_bits(golden_offset) - (int64_t)float_bits(q.offset);
                CHECK(offset && ulps >= -1 && ulps <= 1);
                if (ulps) /* test_nf4 checks the nested stage from bitsandbytes' own offset */
                    printf("%s/%s: offset differs from bitsandbytes' by %lld ulp\n", models[m], variants[v],
                           (long long)ulps);
                else if (absmax2 && absmax) {
                    CHECK_INT_EQ(0, count_diff(absmax2->name, absmax2->data, q.absmax2, absmax2->n_bytes));
                    CHECK_INT_EQ(0, count_diff(absmax->name, absmax->data, q.qabsmax, absmax->n_bytes));
                }
            }
            qe_nf4_free(&q);
        }
        static const char *const int8_variants[] = {"int8", "int8-auto"};
        for (int v = 0; v < 2; v++) {
            qe_int8_weight q;
            CHECK(qe_int8_quantize(w_f16, rows, cols, &q, &err) == QE_OK);
            const qe_tensor_view *cb = get(golden, "%s/%s.CB", models[m], int8_variants[v]);
            const qe_tensor_view *scb = get(golden, "%s/%s.SCB", models[m], int8_variants[v]);
            if (scb) CHECK_INT_EQ(0, count_diff(scb->name, scb->data, q.scale, scb->n_bytes));
            if (cb && scb) {
                float *scale = get_f32(golden, scb->name, &n);
                int64_t n_ties_off = 0, n_values = 0;
                check_int8_rows(cb->name, w_f16, rows, cols, 0.0f, cb->data, scale, &n_ties_off, &n_values);
                if (n_ties_off) printf("%s: %lld ties rounded the other way\n", cb->name, (long long)n_ties_off);
                free(scale);
            }
            qe_int8_free(&q);
        }
        free(w);
        free(w_bf16);
        free(w_f16);
        qe_safetensors_close(st);
    }
    qe_safetensors_close(golden);
}

int main(void)
{
    const char *src = getenv("QEVAL_SOURCE_DIR");
    snprintf(golden_dir, sizeof golden_dir, "%s/tests/golden/bnb", src && *src ? src : QEVAL_SOURCE_DIR);
    test_nf4();
    test_int8();
    test_transformers_load_path();
    return check_summary();
}
