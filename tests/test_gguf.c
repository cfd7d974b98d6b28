/* GGUF reader and dequantization: values written by gguf-py (tests/golden/make_gguf_golden.py),
 * llama.cpp's vocab files, and hostile files built byte by byte here. */
#include <stdint.h>

#include "check.h"
#include "dtype.h"
#include "ggml_dequant.h"
#include "gguf.h"

static char golden_path[1024];

static const char *golden(const char *name)
{
    snprintf(golden_path, sizeof golden_path, "%s/tests/golden/gguf/%s", QEVAL_SOURCE_DIR, name);
    return golden_path;
}

static void test_meta(void)
{
    qe_gguf *g = NULL;
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qe_gguf_open(golden("meta.gguf"), &g, &err));
    if (!g) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK_INT_EQ(3, g->version);
    CHECK_INT_EQ(64, g->alignment);
    CHECK_INT_EQ(0, g->data_offset_bytes % 64);
    int64_t i;
    double f;
    bool b;
    const char *s;
    struct { const char *key; int64_t expected; } ints[] = {
        {"t.u8", 200}, {"t.i8", -100}, {"t.u16", 65000}, {"t.i16", -32000}, {"t.u32", 4000000000LL},
        {"t.i32", -2000000000}, {"t.i64", -9000000000000000000LL},
    };
    for (size_t k = 0; k < sizeof ints / sizeof ints[0]; k++) {
        i = 0;
        CHECK_INT_EQ(QE_OK, qe_gguf_get_int(g, ints[k].key, &i, &err));
        CHECK_INT_EQ(ints[k].expected, i);
    }
    /* 18e18 does not fit int64: the getter refuses rather than wrapping */
    CHECK_INT_EQ(QE_EFORMAT, qe_gguf_get_int(g, "t.u64", &i, &err));
    CHECK(qe_gguf_find_kv(g, "t.u64")->value.u64 == 18000000000000000000ULL);
    CHECK_INT_EQ(QE_OK, qe_gguf_get_float(g, "t.f32", &f, &err));
    CHECK_NEAR(0.15625, f, 0);
    CHECK_INT_EQ(QE_OK, qe_gguf_get_float(g, "t.f64", &f, &err));
    CHECK_NEAR(-2.5e-300, f, 1e-310);
    CHECK_INT_EQ(QE_OK, qe_gguf_get_bool(g, "t.bool", &b, &err));
    CHECK(b);
    CHECK_INT_EQ(QE_OK, qe_gguf_get_string(g, "t.str", &s, &err));
    CHECK_STR_EQ("h\xc3\xa9llo \xe2\x96\x81w\xc3\xb6rld", s);
    CHECK_INT_EQ(QE_OK, qe_gguf_get_string(g, "general.architecture", &s, &err));
    CHECK_STR_EQ("llama", s);

    const char *const *strs;
    uint64_t n;
    CHECK_INT_EQ(QE_OK, qe_gguf_get_string_array(g, "t.arr_str", &strs, &n, &err));
    CHECK_INT_EQ(4, n);
    if (n == 4) {
        CHECK_STR_EQ("a", strs[0]);
        CHECK_STR_EQ("", strs[1]);
        CHECK_STR_EQ("<0x0A>", strs[2]);
        CHECK_STR_EQ("\xc4\xa0the", strs[3]);
    }
    int32_t *ints32 = NULL;
    CHECK_INT_EQ(QE_OK, qe_gguf_get_i32_array(g, "t.arr_i32", &ints32, &n, &err));
    CHECK(n == 3 && ints32[0] == 1 && ints32[1] == -2 && ints32[2] == 3);
    free(ints32);
    float *floats = NULL;
    CHECK_INT_EQ(QE_OK, qe_gguf_get_f32_array(g, "t.arr_f32", &floats, &n, &err));
    CHECK(n == 2 && floats[0] == 0.5f && floats[1] == -1.25f);
    free(floats);
    const qe_gguf_kv *nested = qe_gguf_find_kv(g, "t.nested");
    CHECK(nested && nested->value.elem_type == QE_GGUF_ARRAY && nested->value.n_items == 2);
    if (nested && nested->value.n_items == 2) {
        const qe_gguf_value *inner = nested->value.array_items;
        CHECK(inner[0].elem_type == QE_GGUF_INT32 && inner[0].n_items == 2 && inner[1].n_items == 1);
        CHECK_INT_EQ(3, (int32_t)(inner[1].raw_items[0] | inner[1].raw_items[1] << 8));
    }

    /* wrong types and missing keys name the key */
    CHECK_INT_EQ(QE_EFORMAT, qe_gguf_get_string(g, "t.u8", &s, &err));
    CHECK(strstr(err.msg, "meta.gguf") && strstr(err.msg, "'t.u8' is UINT8, expected STRING"));
    CHECK_INT_EQ(QE_EFORMAT, qe_gguf_get_int(g, "no.such.key", &i, &err));
    CHECK(strstr(err.msg, "'no.such.key'") && strstr(err.msg, "missing"));
    CHECK_INT_EQ(QE_EFORMAT, qe_gguf_get_f32_array(g, "t.arr_str", &floats, &n, &err));

    CHECK_INT_EQ(3, g->n_tensors);
    const qe_gguf_tensor *a = qe_gguf_find_tensor(g, "a"), *c = qe_gguf_find_tensor(g, "c");
    CHECK(a && a->n_dims == 2 && a->ne[0] == 3 && a->ne[1] == 2 && a->type == QE_GGML_F32 && a->n_bytes == 24);
    CHECK(c && c->n_dims == 3 && c->ne[0] == 4 && c->ne[1] == 3 && c->ne[2] == 2 && c->n_elements == 24);
    if (c) {
        float v[24];
        CHECK_INT_EQ(QE_OK, qe_ggml_dequantize(c->type, c->data, v, c->n_elements, "c", &err));
        CHECK_NEAR(23.0, v[23], 0);
        CHECK_NEAR(5.0, v[5], 0);
    }
    const qe_gguf_tensor *t_b = qe_gguf_find_tensor(g, "b");
    if (t_b) {
        float v[2];
        CHECK_INT_EQ(QE_OK, qe_ggml_dequantize(t_b->type, t_b->data, v, 2, "b", &err));
        CHECK(v[0] == 1.5f && v[1] == -2.0f);
    }
    CHECK(qe_gguf_find_tensor(g, "d") == NULL);
    qe_gguf_close(g);
}

/* Equal, both the same infinity, or within a few float32 ulps (the compiler may fuse a*b-c). */
static void check_same_floats(const char *type, const float *expected, const float *got, int64_t n)
{
    for (int64_t k = 0; k < n; k++) {
        double e = expected[k], x = got[k];
        if (e == x || fabs(e - x) <= 1e-6 * fmax(1.0, fabs(e)))
            continue;
        check_n_failed++;
        fprintf(stderr, "dequant %s[%lld]: expected %.9g, got %.9g\n", type, (long long)k, e, x);
        return;
    }
    check_n_passed++;
}

static void test_dequant_golden(void)
{
    qe_gguf *g = NULL;
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qe_gguf_open(golden("dequant.gguf"), &g, &err));
    if (!g) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    const char *types[] = {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"};
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        char qname[32], ename[32];
        snprintf(qname, sizeof qname, "q.%s", types[k]);
        snprintf(ename, sizeof ename, "expect.%s", types[k]);
        const qe_gguf_tensor *q = qe_gguf_find_tensor(g, qname), *e = qe_gguf_find_tensor(g, ename);
        CHECK(q && e);
        if (!q || !e)
            continue;
        CHECK_STR_EQ(types[k], qe_ggml_type_lookup(q->type)->name);
        CHECK(q->n_elements == e->n_elements && q->ne[0] == e->ne[0] && e->type == QE_GGML_F32);
        float *got = malloc((size_t)q->n_elements * sizeof(float));
        float *expected = malloc((size_t)e->n_elements * sizeof(float));
        memcpy(expected, e->data, (size_t)e->n_bytes);
        CHECK_INT_EQ(QE_OK, qe_ggml_dequantize(q->type, q->data, got, q->n_elements, qname, &err));
        check_same_floats(types[k], expected, got, q->n_elements);
        /* row by row gives the same: rows are whole blocks */
        int64_t row = q->ne[0];
        uint64_t row_bytes = 0;
        CHECK_INT_EQ(QE_OK, qe_ggml_n_bytes(q->type, row, qname, &row_bytes, &err));
        CHECK_INT_EQ(q->n_bytes, row_bytes * (uint64_t)(q->n_elements / row));
        CHECK_INT_EQ(QE_OK, qe_ggml_dequantize(q->type, (const uint8_t *)q->data + row_bytes, got, row, qname, &err));
        check_same_floats(types[k], expected + row, got, row);
        free(got);
        free(expected);
    }
    qe_gguf_close(g);

    /* partial blocks are not a shape these formats have */
    float out[64];
    uint8_t zeros[64] = {0};
    uint64_t n_bytes;
    CHECK_INT_EQ(QE_EFORMAT, qe_ggml_n_bytes(QE_GGML_Q4_0, 48, "w", &n_bytes, &err));
    CHECK(strstr(err.msg, "48 elements is not a whole number of Q4_0 blocks of 32"));
    CHECK_INT_EQ(QE_EFORMAT, qe_ggml_dequantize(QE_GGML_Q4_K, zeros, out, 64, "w", &err));
    CHECK_INT_EQ(QE_EUNSUPPORTED, qe_ggml_dequantize(QE_GGML_IQ2_XXS, zeros, out, 256, "w", &err));
    CHECK_INT_EQ(QE_EFORMAT, qe_ggml_dequantize(4, zeros, out, 32, "w", &err)); /* removed Q4_2 */
    CHECK(qe_ggml_type_lookup(999) == NULL);
    /* hand-computed halves: 0x3c00 = 1, 0xc000 = -2, 0x0001 = 2^-24, 0x7bff = 65504, 0x3f80 bf16 = 1 */
    CHECK(qe_f16_to_f32(0x3c00) == 1.0f && qe_f16_to_f32(0xc000) == -2.0f);
    CHECK(qe_f16_to_f32(0x0001) == ldexpf(1.0f, -24) && qe_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(qe_bf16_to_f32(0x3f80) == 1.0f && isnan(qe_f16_to_f32(0x7e00)));
}

static void test_llamacpp_vocab_files(void)
{
    char path[1024];
    struct { const char *file; uint64_t n_tokens; const char *model; } cases[] = {
        {"ggml-vocab-gpt-2.gguf", 50257, "gpt2"}, {"ggml-vocab-llama-spm.gguf", 32000, "llama"},
    };
    for (size_t k = 0; k < 2; k++) {
        char relative[128];
        snprintf(relative, sizeof relative, "tokenizers/llamacpp/%s", cases[k].file);
        if (!check_shared_path(path, sizeof path, relative))
            continue;
        qe_gguf *g = NULL;
        qe_error err = {0};
        if (qe_gguf_open(path, &g, &err) != QE_OK) {
            check_n_failed++;
            fprintf(stderr, "%s\n", err.msg);
            continue;
        }
        const char *const *tokens;
        uint64_t n = 0;
        const char *model;
        CHECK_INT_EQ(QE_OK, qe_gguf_get_string_array(g, "tokenizer.ggml.tokens", &tokens, &n, &err));
        CHECK_INT_EQ(cases[k].n_tokens, n);
        CHECK_INT_EQ(QE_OK, qe_gguf_get_string(g, "tokenizer.ggml.model", &model, &err));
        CHECK_STR_EQ(cases[k].model, model);
        CHECK_INT_EQ(0, g->n_tensors);
        qe_gguf_close(g);
    }
}

/* ---- hostile files, built byte by byte ---- */

typedef struct {
    uint8_t bytes[1024];
    size_t n;
} buffer;

static void put(buffer *b, const void *p, size_t n) { memcpy(b->bytes + b->n, p, n); b->n += n; }
static void put_u32(buffer *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buffer *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buffer *b, const char *s) { put_u64(b, strlen(s)); put(b, s, strlen(s)); }

/* One F32 tensor "w" of ne[0] x ne[1] and one string key, unless a field says otherwise. */
typedef struct {
    uint32_t version;
    uint64_t n_tensors, n_kv;
    uint64_t key_len;           /* 0: the real length */
    uint32_t value_type;
    uint32_t n_dims;
    uint64_t ne[5];
    uint32_t tensor_type;
    uint64_t offset;
    uint32_t alignment;         /* 0: no general.alignment key */
    size_t data_bytes;
} spec;

static spec valid_spec(void)
{
    return (spec){.version = 3, .n_tensors = 1, .n_kv = 1, .value_type = QE_GGUF_STRING, .n_dims = 2,
                  .ne = {4, 2}, .tensor_type = QE_GGML_F32, .offset = 0, .data_bytes = 32};
}

static void build(buffer *b, const spec *s)
{
    b->n = 0;
    put(b, "GGUF", 4);
    put_u32(b, s->version);
    put_u64(b, s->n_tensors);
    put_u64(b, s->n_kv + (s->alignment ? 1 : 0));
    put_u64(b, s->key_len ? s->key_len : 8);
    put(b, "some.key", 8);
    put_u32(b, s->value_type);
    put_str(b, "value");
    if (s->alignment) {
        put_str(b, "general.alignment");
        put_u32(b, QE_GGUF_UINT32);
        put_u32(b, s->alignment);
    }
    put_str(b, "w");
    put_u32(b, s->n_dims);
    for (uint32_t d = 0; d < s->n_dims && d < 5; d++)
        put_u64(b, s->ne[d]);
    put_u32(b, s->tensor_type);
    put_u64(b, s->offset);
    uint32_t align = s->alignment ? s->alignment : 32;
    while (b->n % align)
        b->bytes[b->n++] = 0;
    memset(b->bytes + b->n, 0, s->data_bytes);
    b->n += s->data_bytes;
}

/* Opens s as a file in memory; expects failure with code and a message holding needle. */
static void expect_rejected(const spec *s, qe_status code, const char *needle)
{
    buffer b;
    build(&b, s);
    qe_gguf *g = NULL;
    qe_error err = {0};
    qe_status rc = qe_gguf_open_memory(b.bytes, b.n, "hostile.gguf", &g, &err);
    CHECK_INT_EQ(code, rc);
    CHECK(g == NULL);
    if (rc != QE_OK && (!strstr(err.msg, "hostile.gguf") || !strstr(err.msg, needle))) {
        check_n_failed++;
        fprintf(stderr, "message '%s' lacks '%s'\n", err.msg, needle);
    }
    qe_gguf_close(g);
}

static void test_hostile(void)
{
    buffer b;
    spec s = valid_spec();
    build(&b, &s);
    qe_gguf *g = NULL;
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qe_gguf_open_memory(b.bytes, b.n, "valid.gguf", &g, &err));
    CHECK(g && g->n_tensors == 1 && g->tensors[0].n_bytes == 32);
    qe_gguf_close(g);

    /* every truncation fails cleanly */
    for (size_t n = 0; n < b.n; n++) {
        g = NULL;
        qe_status rc = qe_gguf_open_memory(b.bytes, n, "cut.gguf", &g, &err);
        if (rc != QE_EFORMAT || g) {
            check_n_failed++;
            fprintf(stderr, "truncated to %zu bytes: rc %d\n", n, rc);
            qe_gguf_close(g);
            break;
        }
    }
    check_n_passed++;

    s = valid_spec(); s.version = 1;
    expect_rejected(&s, QE_EUNSUPPORTED, "GGUF version 1 is not supported");
    s = valid_spec(); s.version = 0x03000000;
    expect_rejected(&s, QE_EUNSUPPORTED, "big-endian");
    s = valid_spec(); s.n_tensors = UINT64_MAX / 2;
    expect_rejected(&s, QE_EFORMAT, "tensor infos cannot fit");
    s = valid_spec(); s.n_kv = 1ULL << 60;
    expect_rejected(&s, QE_EFORMAT, "metadata entries cannot fit");
    s = valid_spec(); s.key_len = 1ULL << 62;
    expect_rejected(&s, QE_EFORMAT, "string length 4611686018427387904");
    s = valid_spec(); s.value_type = 13;
    expect_rejected(&s, QE_EFORMAT, "unknown value type 13");
    s = valid_spec(); s.n_dims = 5; s.ne[2] = s.ne[3] = s.ne[4] = 1;
    expect_rejected(&s, QE_EFORMAT, "n_dims 5");
    s = valid_spec(); s.n_dims = 0;
    expect_rejected(&s, QE_EFORMAT, "n_dims 0");
    s = valid_spec(); s.n_dims = 4; s.ne[0] = 1ULL << 40; s.ne[1] = 1ULL << 30; s.ne[2] = 1; s.ne[3] = 1;
    expect_rejected(&s, QE_EFORMAT, "overflow");
    s = valid_spec(); s.ne[0] = 1ULL << 62;
    expect_rejected(&s, QE_EFORMAT, "overflow");
    s = valid_spec(); s.ne[1] = UINT64_MAX;
    expect_rejected(&s, QE_EFORMAT, "overflow");
    s = valid_spec(); s.tensor_type = 4;
    expect_rejected(&s, QE_EFORMAT, "unknown ggml type 4");
    s = valid_spec(); s.tensor_type = 1000;
    expect_rejected(&s, QE_EFORMAT, "unknown ggml type 1000");
    s = valid_spec(); s.tensor_type = QE_GGML_Q4_0; s.ne[0] = 48;
    expect_rejected(&s, QE_EFORMAT, "row length 48 is not a multiple of the Q4_0 block size 32");
    s = valid_spec(); s.offset = 16;
    expect_rejected(&s, QE_EFORMAT, "offset 16 is not a multiple of the alignment 32");
    s = valid_spec(); s.offset = 64;
    expect_rejected(&s, QE_EFORMAT, "run past the end");
    s = valid_spec(); s.offset = UINT64_MAX - 31;
    expect_rejected(&s, QE_EFORMAT, "run past the end");
    s = valid_spec(); s.data_bytes = 31;
    expect_rejected(&s, QE_EFORMAT, "run past the end");
    s = valid_spec(); s.alignment = 24;
    expect_rejected(&s, QE_EFORMAT, "general.alignment 24 is not a power of two");
    s = valid_spec(); s.alignment = 64; s.offset = 32;
    expect_rejected(&s, QE_EFORMAT, "alignment 64");

    /* nesting past the limit, a duplicate key, a wrong magic */
    buffer d = {.n = 0};
    put(&d, "GGUF", 4); put_u32(&d, 3); put_u64(&d, 0); put_u64(&d, 1);
    put_str(&d, "deep"); put_u32(&d, QE_GGUF_ARRAY);
    for (int k = 0; k < 20; k++) { put_u32(&d, QE_GGUF_ARRAY); put_u64(&d, 1); }
    g = NULL;
    CHECK_INT_EQ(QE_EFORMAT, qe_gguf_open_memory(d.bytes, d.n, "deep.gguf", &g, &err));
    CHECK(strstr(err.msg, "nested deeper than 8") != NULL);
    d.n = 0;
    put(&d, "GGUF", 4); put_u32(&d, 2); put_u64(&d, 0); put_u64(&d, 2);
    for (int k = 0; k < 2; k++) { put_str(&d, "k"); put_u32(&d, QE_GGUF_UINT8); d.bytes[d.n++] = 7; }
    CHECK_INT_EQ(QE_EFORMAT, qe_gguf_open_memory(d.bytes, d.n, "dup.gguf", &g, &err));
    CHECK(strstr(err.msg, "dup.gguf: metadata key 'k' appears twice") != NULL);
    d.bytes[d.n - 6] = 'j'; /* rename the second key: version 2 files read the same as 3 */
    CHECK_INT_EQ(QE_OK, qe_gguf_open_memory(d.bytes, d.n, "v2.gguf", &g, &err));
    CHECK(g && g->version == 2 && g->n_kv == 2);
    qe_gguf_close(g);
    CHECK_INT_EQ(QE_EFORMAT, qe_gguf_open_memory("GGML\3\0\0\0", 8, "magic.gguf", &g, &err));
    CHECK(strstr(err.msg, "not a GGUF file") != NULL);
    CHECK_INT_EQ(QE_EIO, qe_gguf_open("/nonexistent/x.gguf", &g, &err));
    CHECK(strstr(err.msg, "/nonexistent/x.gguf: cannot open") != NULL);

    /* every prefix of a real file made by gguf-py is rejected without a crash */
    FILE *f = fopen(golden("meta.gguf"), "rb");
    static uint8_t whole[4096];
    size_t n_whole = f ? fread(whole, 1, sizeof whole, f) : 0;
    if (f)
        fclose(f);
    CHECK(n_whole == 1024);
    /* gguf-py pads after the last tensor: prefixes that keep all of its data are valid */
    size_t data_end = n_whole;
    if (qe_gguf_open_memory(whole, n_whole, "meta-whole.gguf", &g, &err) == QE_OK) {
        const qe_gguf_tensor *last = &g->tensors[g->n_tensors - 1];
        data_end = (size_t)(g->data_offset_bytes + last->offset_bytes + last->n_bytes);
        qe_gguf_close(g);
    }
    int n_bad = 0;
    for (size_t n = 0; n < data_end; n++) {
        g = NULL;
        if (qe_gguf_open_memory(whole, n, "meta-cut.gguf", &g, &err) == QE_OK)
            n_bad++;
        qe_gguf_close(g);
    }
    CHECK_INT_EQ(0, n_bad);
}

int main(void)
{
    test_meta();
    test_dequant_golden();
    test_llamacpp_vocab_files();
    test_hostile();
    return check_summary();
}
