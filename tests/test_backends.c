/* test_backends — every backend built into this binary against the reference backend
 * (engine/ref/): each op on random inputs, then a whole forward pass of each model (stories260K
 * from the shared data, the tiny random ones from tests/fixtures) in
 * each variant. A backend joins by being in `backends` below; one whose constructor fails (a
 * build without CUDA, a machine without a GPU) is skipped with a line saying why.
 *
 * Buffers go through the backend's alloc / upload / download, so a device backend runs the
 * same test. Tolerances are the ones the CPU kernels were always held to: linears within
 * 1e-6 x sum_k |x w| of the double-accumulating twin (int8 exactly: integer sums), attention
 * 1e-5, fp32 logits 1e-3 (what qeval verify allows against float64 goldens). Bit-for-bit
 * where it is promised: a forward pass in one batch and token by token through the KV cache,
 * and the row stats against the reduction engine_api.c always did (checked on hand values), and
 * through the bounded rings of sliding-window layers against the flat cache. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "check.h"
#include "model.h"
#include "variant.h"

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static float uniform(void) /* [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (1.0 / (1 << 23)) - 1.0);
}
static void fill_random(float *x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++)
        x[i] = uniform() * scale;
}

static qe_status make_cpu(qe_backend **out, qe_error *err) { return qe_backend_cpu_create(3, out, err); }
static qe_status make_cuda(qe_backend **out, qe_error *err) { return qe_backend_cuda_create(0, out, err); }

static const struct {
    const char *name;
    qe_status (*create)(qe_backend **out, qe_error *err);
    qe_device_kind device;
} backends[] = {
    {"cpu", make_cpu, QE_DEVICE_CPU},
    {"cuda", make_cuda, QE_DEVICE_CUDA},
};
#define N_BACKENDS (int)(sizeof backends / sizeof backends[0])

/* A host array copied into a new buffer of be. */
static float *to_device(qe_backend *be, const float *host, size_t n)
{
    float *buf = be->alloc(be, n);
    if (buf)
        be->upload(be, buf, host, n);
    return buf;
}

/* n floats of a buffer of be, in a malloc'd host array. */
static float *to_host(qe_backend *be, const float *buf, size_t n)
{
    float *host = malloc((n ? n : 1) * sizeof *host);
    be->download(be, host, buf, n);
    return host;
}

/* The backend's sync reports no error. */
static void check_synced(qe_backend *be, const char *what)
{
    qe_error err = {0};
    qe_status rc = be->sync(be, &err);
    if (rc != QE_OK)
        fprintf(stderr, "%s on %s: %s\n", what, be->name, err.msg);
    CHECK_INT_EQ(QE_OK, rc);
}

/* ---- linears ----------------------------------------------------------------------------- */

/* A weight of every format from the same float32 values, bias rounded as the loader does. */
static void make_weight(qe_weight_format format, const float *w, const float *b, int n_out, int n_in, qe_weight *out)
{
    qe_error err = {0};
    qe_dtype bias_dtype = QE_DTYPE_F32;
    if (format == QE_WEIGHT_F32) {
        float *copy = malloc((size_t)n_out * n_in * sizeof *copy);
        memcpy(copy, w, (size_t)n_out * n_in * sizeof *copy);
        qe_weight_wrap_f32(out, copy, copy, n_out, n_in);
    } else if (format == QE_WEIGHT_BF16 || format == QE_WEIGHT_F16) {
        CHECK_INT_EQ(QE_OK, qe_weight_init_half(out, format, w, n_out, n_in, &err));
        bias_dtype = format == QE_WEIGHT_BF16 ? QE_DTYPE_BF16 : QE_DTYPE_F16;
    } else {
        qe_variant v = format == QE_WEIGHT_INT8 ? (qe_variant){.kind = QE_VARIANT_INT8, .int8_threshold = 6.0f}
                                                : (qe_variant){QE_VARIANT_NF4, 64, true, 0};
        CHECK_INT_EQ(QE_OK, qe_weight_quantize(out, &v, w, n_out, n_in, &err));
        bias_dtype = qe_variant_compute_dtype(&v);
    }
    CHECK_INT_EQ(QE_OK, qe_weight_set_bias(out, b, bias_dtype, &err));
}

static void test_linears(qe_backend *be, qe_backend *ref)
{
    /* {n_out, n_in}: off the 4-, 8-row and 8-lane blocks and the nf4 block */
    static const int shapes[][2] = {{13, 172}, {33, 37}, {64, 256}, {5, 7}};
    static const int n_toks[] = {1, 3, 9};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
        for (int format = QE_WEIGHT_F32; format <= QE_WEIGHT_NF4; format++) {
            int n_out = shapes[s][0], n_in = shapes[s][1], max_tok = 9;
            float *w = malloc((size_t)n_out * n_in * sizeof *w), *b = malloc((size_t)n_out * sizeof *b);
            float *x = malloc((size_t)max_tok * n_in * sizeof *x);
            fill_random(w, (size_t)n_out * n_in, 0.1f);
            fill_random(b, n_out, 1.0f);
            fill_random(x, (size_t)max_tok * n_in, 2.0f);
            x[n_in / 2] = 9.0f; /* an int8 outlier column for the first token */
            qe_weight w_ref, w_be;
            make_weight(format, w, b, n_out, n_in, &w_ref);
            make_weight(format, w, b, n_out, n_in, &w_be);
            qe_backend_linear *lin_ref = NULL, *lin_be = NULL;
            qe_error err = {0};
            CHECK_INT_EQ(QE_OK, ref->prepare_linear(ref, &w_ref, QE_DTYPE_F32, &lin_ref, &err));
            CHECK_INT_EQ(QE_OK, be->prepare_linear(be, &w_be, QE_DTYPE_F32, &lin_be, &err));
            CHECK_INT_EQ(ref->linear_bytes(ref, lin_ref), be->linear_bytes(be, lin_be));
            CHECK_INT_EQ(QE_OK, ref->reserve_workspace(ref, max_tok, 1, 1, n_in, &err));
            CHECK_INT_EQ(QE_OK, be->reserve_workspace(be, max_tok, 1, 1, n_in, &err));
            for (size_t t = 0; t < sizeof n_toks / sizeof *n_toks; t++) {
                int n_tok = n_toks[t];
                size_t n_y = (size_t)n_tok * n_out;
                float *want = malloc(n_y * sizeof *want);
                ref->linear(ref, lin_ref, x, n_tok, QE_DTYPE_F32, want);
                float *dx = to_device(be, x, (size_t)n_tok * n_in), *dy = be->alloc(be, n_y);
                be->linear(be, lin_be, dx, n_tok, QE_DTYPE_F32, dy);
                float *got = to_host(be, dy, n_y);
                check_synced(be, "linear");
                /* rounded in the op: the bits of rounding the float32 output afterwards */
                for (int d = 0; d < 2; d++) {
                    qe_dtype out_dtype = d ? QE_DTYPE_F16 : QE_DTYPE_BF16;
                    be->linear(be, lin_be, dx, n_tok, out_dtype, dy);
                    float *rounded = to_host(be, dy, n_y);
                    int n_same = 0;
                    for (size_t i = 0; i < n_y; i++) {
                        float r = out_dtype == QE_DTYPE_BF16 ? qe_round_bf16(got[i]) : qe_round_f16(got[i]);
                        n_same += memcmp(&r, &rounded[i], sizeof r) == 0;
                    }
                    CHECK_INT_EQ((int)n_y, n_same);
                    free(rounded);
                }
                double rel = format == QE_WEIGHT_INT8 ? 0.0 : 1e-6;
                int n_bad = 0;
                for (size_t i = 0; i < n_y; i++) {
                    double bound = 0;
                    for (int k = 0; k < n_in; k++)
                        bound += fabs(x[(i / n_out) * n_in + k]);
                    if (!(fabs((double)want[i] - got[i]) <= rel * bound + 1e-30) && n_bad++ == 0)
                        fprintf(stderr, "%s linear %s [%d, %d] x %d tokens [%zu]: ref %.9g, got %.9g\n", be->name,
                                qe_weight_format_name(format), n_out, n_in, n_tok, i, want[i], got[i]);
                }
                CHECK_INT_EQ(0, n_bad);
                be->release(be, dx);
                be->release(be, dy);
                free(want), free(got);
            }
            ref->free_linear(ref, lin_ref);
            be->free_linear(be, lin_be);
            free(w), free(b), free(x);
        }
}

/* ---- the other ops ----------------------------------------------------------------------- */

/* Runs op on be and on ref over the same inputs; compares the n outputs within tol. */
typedef void (*op_fn)(qe_backend *be, float *const *in, float *out, qe_dtype dtype);

static void compare_op(qe_backend *be, qe_backend *ref, const char *what, op_fn op, const float *const *inputs,
                       const size_t *n_inputs, int n_in_arrays, size_t n_out, qe_dtype dtype, double tol)
{
    float *d_in[4], *r_in[4];
    for (int i = 0; i < n_in_arrays; i++) {
        d_in[i] = to_device(be, inputs[i], n_inputs[i]);
        r_in[i] = to_device(ref, inputs[i], n_inputs[i]);
    }
    float *d_out = be->alloc(be, n_out), *want = ref->alloc(ref, n_out);
    op(ref, r_in, want, dtype);
    op(be, d_in, d_out, dtype);
    float *got = to_host(be, d_out, n_out);
    check_synced(be, what);
    check_synced(ref, what);
    double max_diff = 0;
    size_t worst = 0;
    for (size_t i = 0; i < n_out; i++) {
        double d = fabs((double)want[i] - got[i]);
        if (!(d <= max_diff)) /* NaN counts as worst */
            max_diff = d, worst = i;
    }
    if (!(max_diff <= tol))
        fprintf(stderr, "%s %s (%s): [%zu] ref %.9g, got %.9g\n", be->name, what, qe_dtype_name(dtype), worst,
                want[worst], got[worst]);
    CHECK(max_diff <= tol);
    for (int i = 0; i < n_in_arrays; i++) {
        be->release(be, d_in[i]);
        ref->release(ref, r_in[i]);
    }
    be->release(be, d_out);
    ref->release(ref, want);
    free(got);
}

enum { ROWS = 7, DIM = 48, HEADS = 4, KV_HEADS = 2, HEAD_DIM = 16, POS0 = 5 };

/* The weight in[1] as the model hands it over: dt values, through upload_new. */
static void rmsnorm_with(qe_backend *be, float *const *in, float *out, qe_dtype dt, float offset)
{
    float *host = to_host(be, in[1], DIM);
    qe_round_to_dtype(host, DIM, dt);
    float *weight = be->upload_new(be, host, DIM, dt);
    be->rmsnorm(be, in[0], weight, offset, 1e-6f, ROWS, DIM, dt, out);
    be->release(be, weight);
    free(host);
}
static void op_rmsnorm(qe_backend *be, float *const *in, float *out, qe_dtype dt) { rmsnorm_with(be, in, out, dt, 0.0f); }
static void op_rmsnorm_gemma(qe_backend *be, float *const *in, float *out, qe_dtype dt)
{
    rmsnorm_with(be, in, out, dt, 1.0f);
}
static void op_rope(qe_backend *be, float *const *in, float *out, qe_dtype dt)
{
    be->copy(be, out, in[0], (size_t)ROWS * HEADS * HEAD_DIM);
    be->rope(be, out, ROWS, HEADS, HEAD_DIM, in[1], in[2], dt);
}
/* q then k rotated in one call, into out [q rows, then k rows] */
static void op_rope_qk(qe_backend *be, float *const *in, float *out, qe_dtype dt)
{
    size_t n_q = (size_t)ROWS * HEADS * HEAD_DIM;
    be->copy(be, out, in[0], n_q);
    be->copy(be, out + n_q, in[1], (size_t)ROWS * KV_HEADS * HEAD_DIM);
    qe_backend_rope_qk(be, out, out + n_q, ROWS, HEADS, KV_HEADS, HEAD_DIM, in[2], in[3], dt);
}
static void op_silu(qe_backend *be, float *const *in, float *out, qe_dtype dt)
{
    be->glu(be, QE_ACT_SILU, in[0], in[1], (size_t)ROWS * DIM, dt, out);
}
static void op_gelu(qe_backend *be, float *const *in, float *out, qe_dtype dt)
{
    be->glu(be, QE_ACT_GELU_TANH, in[0], in[1], (size_t)ROWS * DIM, dt, out);
}
static void op_add(qe_backend *be, float *const *in, float *out, qe_dtype dt)
{
    be->copy(be, out, in[0], (size_t)ROWS * DIM);
    be->add(be, out, in[1], (size_t)ROWS * DIM, dt);
}
static void attention(qe_backend *be, float *const *in, float *out, qe_dtype dt, int window, int kv_ring)
{
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, be->reserve_workspace(be, ROWS, POS0 + ROWS, HEADS, DIM, &err));
    qe_attention_args a = {.q = in[0], .k_cache = in[1], .v_cache = in[2], .out = out, .n_tok = ROWS,
                           .pos0 = POS0, .n_heads = HEADS, .n_kv_heads = KV_HEADS, .head_dim = HEAD_DIM,
                           .window = window, .kv_ring = kv_ring, .scale = 0.25f};
    be->attention(be, &a, dt);
}
static void op_attention(qe_backend *be, float *const *in, float *out, qe_dtype dt)
{
    attention(be, in, out, dt, 0, 0);
}
static void op_attention_window(qe_backend *be, float *const *in, float *out, qe_dtype dt)
{
    attention(be, in, out, dt, 4, 0);
}
/* head_dim 20, off the 8-blocks (two whole and 4 more: the CPU kernel's tails; the CUDA backend
 * refuses such a head), 3 heads on one kv head, over the same buffers */
enum { ODD_HEADS = 3, ODD_HEAD_DIM = 20 };
static void op_attention_odd_head(qe_backend *be, float *const *in, float *out, qe_dtype dt)
{
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, be->reserve_workspace(be, ROWS, POS0 + ROWS, ODD_HEADS, DIM, &err));
    qe_attention_args a = {.q = in[0], .k_cache = in[1], .v_cache = in[2], .out = out, .n_tok = ROWS,
                           .pos0 = POS0, .n_heads = ODD_HEADS, .n_kv_heads = 1, .head_dim = ODD_HEAD_DIM,
                           .scale = 0.25f};
    be->attention(be, &a, dt);
}
/* window 4 over positions 5..11 reads 2..11: a ring of 10 rows, position p in row p % 10 */
static void op_attention_ring(qe_backend *be, float *const *in, float *out, qe_dtype dt)
{
    attention(be, in, out, dt, 4, 10);
}

/* Packed segments (backend.h): rows POS0.. hold three segments of 3, 1 and 3 tokens after a
 * shared prefix of 3 positions (rows 3, 4 are nobody's); in[3] holds their seg_row int32s. */
static void attention_packed(qe_backend *be, float *const *in, float *out, qe_dtype dt, int window)
{
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, be->reserve_workspace(be, ROWS, POS0 + ROWS, HEADS, DIM, &err));
    qe_attention_args a = {.q = in[0], .k_cache = in[1], .v_cache = in[2], .out = out, .n_tok = ROWS,
                           .pos0 = POS0, .n_heads = HEADS, .n_kv_heads = KV_HEADS, .head_dim = HEAD_DIM,
                           .window = window, .scale = 0.25f, .seg_row = (const int32_t *)in[3], .shared_len = 3};
    be->attention(be, &a, dt);
}
static void op_attention_packed(qe_backend *be, float *const *in, float *out, qe_dtype dt)
{
    attention_packed(be, in, out, dt, 0);
}
static void op_attention_packed_window(qe_backend *be, float *const *in, float *out, qe_dtype dt)
{
    attention_packed(be, in, out, dt, 2);
}

static void test_ops(qe_backend *be, qe_backend *ref)
{
    static const int32_t seg_rows[ROWS] = {POS0, POS0, POS0, POS0 + 3, POS0 + 4, POS0 + 4, POS0 + 4};
    size_t n_x = (size_t)ROWS * DIM, n_q = (size_t)ROWS * HEADS * HEAD_DIM;
    size_t n_kv = (size_t)(POS0 + ROWS) * KV_HEADS * HEAD_DIM, n_table = (size_t)ROWS * HEAD_DIM / 2;
    float *x = malloc(n_x * sizeof *x), *y = malloc(n_x * sizeof *y), *weight = malloc(DIM * sizeof *weight);
    float *q = malloc(n_q * sizeof *q), *k = malloc(n_kv * sizeof *k), *v = malloc(n_kv * sizeof *v);
    float *cos_t = malloc(n_table * sizeof *cos_t), *sin_t = malloc(n_table * sizeof *sin_t);
    fill_random(x, n_x, 4.0f);
    fill_random(y, n_x, 4.0f);
    fill_random(weight, DIM, 1.0f);
    fill_random(q, n_q, 1.0f);
    fill_random(k, n_kv, 1.0f);
    fill_random(v, n_kv, 1.0f);
    for (size_t i = 0; i < n_table; i++) {
        float angle = (float)(i / (HEAD_DIM / 2)) * (float)(i % (HEAD_DIM / 2) + 1) * 0.3f;
        cos_t[i] = cosf(angle);
        sin_t[i] = sinf(angle);
    }
    static const qe_dtype dtypes[] = {QE_DTYPE_F32, QE_DTYPE_BF16, QE_DTYPE_F16};
    for (int d = 0; d < 3; d++) {
        qe_dtype dt = dtypes[d];
        /* one step of the dtype when the twins round differently from float32 arithmetic */
        double exact = dt == QE_DTYPE_F32 ? 1e-5 : dt == QE_DTYPE_BF16 ? 8.0 / 128 : 8.0 / 1024;
        compare_op(be, ref, "rmsnorm", op_rmsnorm, (const float *[]){x, weight}, (size_t[]){n_x, DIM}, 2, n_x, dt,
                   exact);
        compare_op(be, ref, "rmsnorm (1 + w)", op_rmsnorm_gemma, (const float *[]){x, weight},
                   (size_t[]){n_x, DIM}, 2, n_x, dt, exact);
        compare_op(be, ref, "rope", op_rope, (const float *[]){q, cos_t, sin_t}, (size_t[]){n_q, n_table, n_table},
                   3, n_q, dt, exact);
        size_t n_k = (size_t)ROWS * KV_HEADS * HEAD_DIM;
        compare_op(be, ref, "rope of q and k", op_rope_qk, (const float *[]){q, k, cos_t, sin_t},
                   (size_t[]){n_q, n_k, n_table, n_table}, 4, n_q + n_k, dt, exact);
        compare_op(be, ref, "glu silu", op_silu, (const float *[]){x, y}, (size_t[]){n_x, n_x}, 2, n_x, dt, exact * 4);
        compare_op(be, ref, "glu gelu", op_gelu, (const float *[]){x, y}, (size_t[]){n_x, n_x}, 2, n_x, dt, exact * 4);
        compare_op(be, ref, "add", op_add, (const float *[]){x, y}, (size_t[]){n_x, n_x}, 2, n_x, dt, 0);
        double att = dt == QE_DTYPE_F32 ? 1e-5 : dt == QE_DTYPE_BF16 ? 1.0 / 128 : 1.0 / 1024;
        compare_op(be, ref, "attention", op_attention, (const float *[]){q, k, v}, (size_t[]){n_q, n_kv, n_kv}, 3,
                   n_q, dt, att);
        compare_op(be, ref, "attention (window 4)", op_attention_window, (const float *[]){q, k, v},
                   (size_t[]){n_q, n_kv, n_kv}, 3, n_q, dt, att);
        compare_op(be, ref, "attention (window 4, ring of 10 rows)", op_attention_ring, (const float *[]){q, k, v},
                   (size_t[]){n_q, n_kv, n_kv}, 3, n_q, dt, att);
        if (!strcmp(be->name, "cpu"))
            compare_op(be, ref, "attention (head_dim 20)", op_attention_odd_head, (const float *[]){q, k, v},
                       (size_t[]){n_q, n_kv, n_kv}, 3, (size_t)ROWS * ODD_HEADS * ODD_HEAD_DIM, dt, att);
        compare_op(be, ref, "attention (packed)", op_attention_packed,
                   (const float *[]){q, k, v, (const float *)seg_rows}, (size_t[]){n_q, n_kv, n_kv, ROWS}, 4, n_q,
                   dt, att);
        compare_op(be, ref, "attention (packed, window 2)", op_attention_packed_window,
                   (const float *[]){q, k, v, (const float *)seg_rows}, (size_t[]){n_q, n_kv, n_kv, ROWS}, 4, n_q,
                   dt, att);
    }
    free(x), free(y), free(weight), free(q), free(k), free(v), free(cos_t), free(sin_t);
}

/* embed: a row of each table format, scaled and rounded: the reference's bits exactly */
static void test_embed(qe_backend *be, qe_backend *ref)
{
    int n_vocab = 11, dim = 20, n_tok = 4;
    int32_t ids[] = {3, 0, 10, 3};
    float *table = malloc((size_t)n_vocab * dim * sizeof *table);
    fill_random(table, (size_t)n_vocab * dim, 3.0f);
    for (int format = QE_WEIGHT_F32; format <= QE_WEIGHT_F16; format++) {
        qe_weight w_ref, w_be;
        qe_error err = {0};
        if (format == QE_WEIGHT_F32) {
            qe_weight_wrap_f32(&w_ref, table, NULL, n_vocab, dim);
            qe_weight_wrap_f32(&w_be, table, NULL, n_vocab, dim);
        } else {
            CHECK_INT_EQ(QE_OK, qe_weight_init_half(&w_ref, format, table, n_vocab, dim, &err));
            CHECK_INT_EQ(QE_OK, qe_weight_init_half(&w_be, format, table, n_vocab, dim, &err));
        }
        qe_dtype dt = format == QE_WEIGHT_BF16 ? QE_DTYPE_BF16 : format == QE_WEIGHT_F16 ? QE_DTYPE_F16 : QE_DTYPE_F32;
        qe_backend_linear *t_ref, *t_be;
        CHECK_INT_EQ(QE_OK, ref->prepare_linear(ref, &w_ref, dt, &t_ref, &err));
        CHECK_INT_EQ(QE_OK, be->prepare_linear(be, &w_be, dt, &t_be, &err));
        float *want = ref->alloc(ref, (size_t)n_tok * dim), *d_out = be->alloc(be, (size_t)n_tok * dim);
        ref->embed(ref, t_ref, ids, n_tok, 4.7f, dt, want);
        be->embed(be, t_be, ids, n_tok, 4.7f, dt, d_out);
        float *got = to_host(be, d_out, (size_t)n_tok * dim);
        check_synced(be, "embed");
        CHECK_INT_EQ(0, memcmp(want, got, (size_t)n_tok * dim * sizeof *got));
        /* hand check: the F32 table's row 10 times 4.7 */
        if (format == QE_WEIGHT_F32)
            CHECK_NEAR(table[10 * dim + 5] * 4.7f, want[2 * dim + 5], 0);
        ref->free_linear(ref, t_ref);
        be->free_linear(be, t_be);
        ref->release(ref, want);
        be->release(be, d_out);
        free(got);
    }
    free(table);
}

/* row_stats: hand values, then random rows against the reference bit for bit */
static void test_row_stats(qe_backend *be, qe_backend *ref)
{
    /* {1, 3, 2, 3}: first argmax 1; log_z = 3 + log(e^-2 + 1 + e^-1 + 1) = 3.9175757955891974 */
    float row[4] = {1, 3, 2, 3};
    int32_t target = 2;
    float *d_row = to_device(be, row, 4);
    qe_row_stats st = {0};
    be->row_stats(be, d_row, 1, 4, &target, &st);
    check_synced(be, "row_stats");
    CHECK_INT_EQ(1, st.argmax);
    CHECK_NEAR(3.0, st.max_logit, 0);
    CHECK_NEAR(3.9175757955891974, st.log_z, 1e-15);
    CHECK_NEAR(2.0, st.target_logit, 0);
    be->release(be, d_row);

    int n_rows = 5, n_vocab = 1000;
    float *logits = malloc((size_t)n_rows * n_vocab * sizeof *logits);
    fill_random(logits, (size_t)n_rows * n_vocab, 20.0f);
    int32_t targets[5] = {0, 999, 500, 7, 123};
    qe_row_stats want[5], got[5];
    float *r_logits = to_device(ref, logits, (size_t)n_rows * n_vocab);
    float *d_logits = to_device(be, logits, (size_t)n_rows * n_vocab);
    ref->row_stats(ref, r_logits, n_rows, n_vocab, targets, want);
    be->row_stats(be, d_logits, n_rows, n_vocab, targets, got);
    check_synced(be, "row_stats");
    for (int r = 0; r < n_rows; r++) {
        CHECK_INT_EQ(want[r].argmax, got[r].argmax);
        CHECK(want[r].max_logit == got[r].max_logit && want[r].log_z == got[r].log_z &&
              want[r].target_logit == got[r].target_logit);
    }
    ref->release(ref, r_logits);
    be->release(be, d_logits);
    free(logits);
}

/* A failing op leaves a sticky error that sync reports once; later ops were no-ops. */
static void test_sticky_error(qe_backend *be)
{
    qe_error err = {0};
    float *q = be->alloc(be, HEAD_DIM), *kv = be->alloc(be, HEAD_DIM), *out = be->alloc(be, HEAD_DIM);
    CHECK_INT_EQ(QE_OK, be->reserve_workspace(be, 1, 1, 1, 8, &err));
    /* far more positions than any workspace this test reserved: the op must refuse, not read */
    qe_attention_args a = {.q = q, .k_cache = kv, .v_cache = kv, .out = out, .n_tok = 1, .pos0 = 1 << 24,
                           .n_heads = 1, .n_kv_heads = 1, .head_dim = HEAD_DIM, .scale = 1};
    be->attention(be, &a, QE_DTYPE_F32);
    be->copy(be, out, q, HEAD_DIM);
    CHECK(be->sync(be, &err) != QE_OK);
    CHECK(strstr(err.msg, be->name) != NULL);
    check_synced(be, "after a reported error");
    be->release(be, q);
    be->release(be, kv);
    be->release(be, out);
}

/* ---- whole models ------------------------------------------------------------------------ */

#define N_SEQ 24

static qe_model *load(const char *dir, const char *variant, qe_device_kind device)
{
    qe_load_options o = {.device = device, .n_threads = 2};
    qe_error err = {0};
    qe_model *m = NULL;
    if (qe_variant_parse(variant, &o.variant, &err) || qe_model_load(dir, &o, &m, &err)) {
        fprintf(stderr, "%s %s: %s\n", dir, variant, err.msg);
        CHECK(false);
        return NULL;
    }
    return m;
}

/* logits [N_SEQ, n_vocab] of ids in one pass (malloc'd) */
static float *forward_all(qe_model *m, const int32_t *ids)
{
    float *logits = malloc((size_t)N_SEQ * m->cfg.n_vocab * sizeof *logits);
    qe_error err = {0};
    qe_status rc = qe_model_forward(m, ids, N_SEQ, 0, 0, logits, NULL, NULL, &err);
    if (rc != QE_OK)
        fprintf(stderr, "%s: %s\n", m->path, err.msg);
    CHECK_INT_EQ(QE_OK, rc);
    return logits;
}

/* Four continuations of the prefix ids[0, 10) in one packed pass (qe_model_forward_packed): each
 * segment's last row has the bits of that segment run alone after the prefix, logits and stats.
 * Sliding-window models refuse. */
static void check_packed(qe_model *m, const int32_t *ids)
{
    enum { SHARED = 10, N_SEGS = 4 };
    int n_vocab = m->cfg.n_vocab, seg_start[N_SEGS + 1] = {0, 9, 10, 13, 20};
    int32_t packed_ids[20];
    memcpy(packed_ids, ids + SHARED, 9 * sizeof *ids);             /* ids[10, 19)            */
    packed_ids[9] = ids[3];                                          /* one token              */
    memcpy(packed_ids + 10, ids + SHARED, 3 * sizeof *ids);         /* a prefix of the first  */
    for (int i = 13; i < 20; i++)
        packed_ids[i] = (ids[i] * 31 + 7) % n_vocab;               /* another                */
    float *packed = malloc((size_t)N_SEGS * n_vocab * sizeof *packed), *alone = malloc(20 * sizeof *alone * n_vocab);
    qe_row_stats packed_stats[N_SEGS], alone_stats[1];
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qe_model_forward(m, ids, SHARED, 0, SHARED, NULL, NULL, NULL, &err));
    qe_status rc = qe_model_forward_packed(m, packed_ids, seg_start, N_SEGS, SHARED, packed, packed_stats, &err);
    if (qe_config_has_sliding_window(&m->cfg)) {
        CHECK_INT_EQ(QE_EUNSUPPORTED, rc);
        CHECK(strstr(err.msg, "sliding-window") != NULL);
    } else {
        CHECK_INT_EQ(QE_OK, rc);
        CHECK_INT_EQ(SHARED, m->kv.n_cached);
        int n_same = 0;
        for (int g = 0; g < N_SEGS; g++) {
            int len = seg_start[g + 1] - seg_start[g];
            CHECK_INT_EQ(QE_OK, qe_model_forward(m, packed_ids + seg_start[g], len, SHARED, len - 1, alone, NULL,
                                                 alone_stats, &err));
            const qe_row_stats *p = &packed_stats[g];
            n_same += !memcmp(alone, packed + (size_t)g * n_vocab, (size_t)n_vocab * sizeof *alone) &&
                      p->argmax == alone_stats[0].argmax && p->log_z == alone_stats[0].log_z &&
                      p->max_logit == alone_stats[0].max_logit;
        }
        CHECK_INT_EQ(N_SEGS, n_same);
        /* bad layouts: an empty segment, a prefix the cache does not hold */
        int empty[] = {0, 3, 3};
        CHECK_INT_EQ(QE_EINVAL, qe_model_forward_packed(m, packed_ids, empty, 2, SHARED, NULL, NULL, &err));
        CHECK(strstr(err.msg, "segment 1 is empty") != NULL);
        CHECK_INT_EQ(QE_EINVAL, qe_model_forward_packed(m, packed_ids, seg_start, N_SEGS, N_SEQ, NULL, NULL, &err));
    }
    free(packed);
    free(alone);
}

static void test_model(const char *dir, const char *variant, int b, const float *want)
{
    qe_model *m = load(dir, variant, backends[b].device);
    if (!m)
        return;
    int n_vocab = m->cfg.n_vocab;
    int32_t ids[N_SEQ];
    for (int i = 0; i < N_SEQ; i++)
        ids[i] = (i * 7919 + 13) % n_vocab;
    float *got = forward_all(m, ids);
    size_t n = (size_t)N_SEQ * n_vocab;
    double max_diff = 0;
    int n_agree = 0;
    for (int t = 0; t < N_SEQ; t++) {
        int a = 0, g = 0;
        for (int j = 0; j < n_vocab; j++) {
            size_t i = (size_t)t * n_vocab + j;
            double d = fabs((double)want[i] - got[i]);
            if (!(d <= max_diff))
                max_diff = d;
            if (want[i] > want[(size_t)t * n_vocab + a]) a = j;
            if (got[i] > got[(size_t)t * n_vocab + g]) g = j;
        }
        n_agree += a == g;
    }
    printf("  %s %s on %s: max |logit - ref| %.3g, argmax agree %d/%d\n", strrchr(dir, '/') + 1, variant,
           backends[b].name, max_diff, n_agree, N_SEQ);
    /* fp32 within verify's tolerance; a rounding variant may flip one 16-bit rounding early
     * and carry it, but not change what the model predicts */
    if (!strcmp(variant, "fp32"))
        CHECK(max_diff <= 1e-3);
    CHECK(n_agree >= N_SEQ - 2);

    /* token by token through the KV cache, and in uneven chunks: the very same bits */
    float *step = malloc(n * sizeof *step);
    qe_error err = {0};
    for (int t = 0; t < N_SEQ; t++)
        CHECK_INT_EQ(QE_OK, qe_model_forward(m, ids + t, 1, t, 0, step + (size_t)t * n_vocab, NULL, NULL, &err));
    CHECK_INT_EQ(0, memcmp(got, step, n * sizeof *got));
    CHECK_INT_EQ(QE_OK, qe_model_forward(m, ids, 5, 0, 0, step, NULL, NULL, &err));
    CHECK_INT_EQ(QE_OK, qe_model_forward(m, ids + 5, N_SEQ - 5, 5, 0, step + 5 * (size_t)n_vocab, NULL, NULL, &err));
    CHECK_INT_EQ(0, memcmp(got, step, n * sizeof *got));
    /* chunks of 4: sliding-window layers (tiny-gemma3's window is 8) in rings of window + 3 rows
     * that wrap twice over the sequence, token by token and in one pass: the very same bits */
    qe_model *ringed = load(dir, variant, backends[b].device);
    if (ringed) {
        ringed->chunk_tokens = 4;
        for (int t = 0; t < N_SEQ; t++)
            CHECK_INT_EQ(QE_OK, qe_model_forward(ringed, ids + t, 1, t, 0, step + (size_t)t * n_vocab, NULL, NULL,
                                                 &err));
        CHECK_INT_EQ(0, memcmp(got, step, n * sizeof *got));
        CHECK_INT_EQ(QE_OK, qe_model_forward(ringed, ids, N_SEQ, 0, 0, step, NULL, NULL, &err));
        CHECK_INT_EQ(0, memcmp(got, step, n * sizeof *got));
        check_packed(ringed, ids); /* segments across chunks of 4 */
        qe_model_free(ringed);
    }

    check_packed(m, ids);
    /* stats mode: rows [10, N_SEQ) reduced on the backend equal the reduction of the host rows */
    int first = 10, n_rows = N_SEQ - first;
    qe_row_stats stats[N_SEQ];
    int32_t targets[N_SEQ];
    for (int r = 0; r < n_rows; r++)
        targets[r] = ids[first + r];
    CHECK_INT_EQ(QE_OK, qe_model_forward(m, ids, N_SEQ, 0, first, NULL, targets, stats, &err));
    int n_same = 0;
    for (int r = 0; r < n_rows; r++) {
        qe_row_stats host = qe_row_stats_of(got + (size_t)(first + r) * n_vocab, n_vocab, targets[r]);
        n_same += host.argmax == stats[r].argmax && host.max_logit == stats[r].max_logit &&
                  host.log_z == stats[r].log_z && host.target_logit == stats[r].target_logit;
    }
    CHECK_INT_EQ(n_rows, n_same);
    free(step);
    free(got);
    qe_model_free(m);
}

static void test_models(const int *is_built)
{
    static const char *const models[] = {"stories260K", "tiny-llama3", "tiny-qwen2", "tiny-gemma3"};
    static const char *const variants[] = {"fp32", "bf16", "int8", "nf4"};
    for (size_t i = 0; i < sizeof models / sizeof *models; i++) {
        /* stories260K is third-party data; the tiny random models are the project's own fixtures */
        char dir[1200], relative[300];
        snprintf(relative, sizeof relative, "models/%s", models[i]);
        if (i == 0) {
            if (!check_shared_path(dir, sizeof dir, relative))
                continue;
        } else
            check_fixture_path(dir, sizeof dir, relative);
        for (size_t v = 0; v < sizeof variants / sizeof *variants; v++) {
            qe_model *m = load(dir, variants[v], QE_DEVICE_REF);
            if (!m)
                continue;
            int32_t ids[N_SEQ];
            for (int t = 0; t < N_SEQ; t++)
                ids[t] = (t * 7919 + 13) % m->cfg.n_vocab;
            float *want = forward_all(m, ids);
            qe_model_free(m);
            for (int b = 0; b < N_BACKENDS; b++)
                if (is_built[b])
                    test_model(dir, variants[v], b, want);
            free(want);
        }
    }
}

int main(void)
{
    qe_backend *ref = NULL;
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qe_backend_ref_create(&ref, &err));
    if (!ref)
        return check_summary();
    test_sticky_error(ref);
    int is_built[N_BACKENDS] = {0};
    for (int b = 0; b < N_BACKENDS; b++) {
        qe_backend *be = NULL;
        if (backends[b].create(&be, &err) != QE_OK) {
            printf("skipped backend %s: %s\n", backends[b].name, err.msg);
            continue;
        }
        is_built[b] = 1;
        printf("backend %s against ref\n", be->name);
        test_linears(be, ref);
        test_ops(be, ref);
        test_embed(be, ref);
        test_row_stats(be, ref);
        test_sticky_error(be);
        be->destroy(be);
    }
    ref->destroy(ref);
    test_models(is_built);
    return check_summary();
}
