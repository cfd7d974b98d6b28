/* Hostile and valid safetensors files, and model directories built from them: each bad case
 * must fail with one error naming the file and the problem, never crash. The files are made
 * here, in a temporary directory. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "qeval_engine.h"
#include "safetensors.h"

static char tmp_dir[] = "/tmp/qeval_test_st_XXXXXX";

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fwrite(data, 1, n, f);
    fclose(f);
}

/* header JSON (padded with spaces to 8 bytes), then data_bytes of data; header_len_override
 * replaces the length field when non-zero. */
static void write_st(const char *path, const char *header, const void *data, size_t data_bytes,
                     uint64_t header_len_override)
{
    size_t h = strlen(header), padded = (h + 7) / 8 * 8;
    size_t total = 8 + padded + data_bytes;
    unsigned char *buf = calloc(1, total);
    uint64_t len = header_len_override ? header_len_override : padded;
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(len >> (8 * i));
    memcpy(buf + 8, header, h);
    memset(buf + 8 + h, ' ', padded - h);
    if (data_bytes)
        memcpy(buf + 8 + padded, data, data_bytes);
    write_bytes(path, buf, total);
    free(buf);
}

static char *path_in(const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 512, "%s/%s", tmp_dir, name);
    return p;
}

/* Opening must fail with code and a message holding every needle. */
static void expect_open_error(const char *path, qe_status code, const char *needle1, const char *needle2)
{
    qe_safetensors *st = NULL;
    qe_error err = {0};
    qe_status rc = qe_safetensors_open(path, &st, &err);
    CHECK_INT_EQ(code, rc);
    CHECK(st == NULL);
    CHECK(strstr(err.msg, path) != NULL);
    if (!strstr(err.msg, needle1) || (needle2 && !strstr(err.msg, needle2)))
        fprintf(stderr, "message was: %s\n", err.msg);
    CHECK(strstr(err.msg, needle1) != NULL);
    CHECK(!needle2 || strstr(err.msg, needle2) != NULL);
    qe_safetensors_close(st);
}

static void test_valid(void)
{
    /* a = F32 [2] {1.5, -2}; b = BF16 [1, 2] {1.0, 0.5} = 0x3f80, 0x3f00 */
    unsigned char data[12];
    float a[2] = {1.5f, -2.0f};
    uint16_t b[2] = {0x3f80, 0x3f00};
    memcpy(data, a, 8);
    memcpy(data + 8, b, 4);
    const char *path = path_in("ok.safetensors");
    write_st(path,
             "{\"__metadata__\":{\"format\":\"pt\"},\"b\":{\"dtype\":\"BF16\",\"shape\":[1,2],\"data_offsets\":[8,12]},"
             "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
             data, sizeof data, 0);
    qe_safetensors *st = NULL;
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qe_safetensors_open(path, &st, &err));
    if (!st)
        return;
    CHECK_INT_EQ(2, qe_safetensors_count(st));
    CHECK_STR_EQ("a", qe_safetensors_at(st, 0)->name); /* offset order */
    const qe_tensor_view *tb = qe_safetensors_find(st, "b");
    CHECK(tb && tb->dtype == QE_DTYPE_BF16 && tb->n_dims == 2 && tb->shape[0] == 1 && tb->shape[1] == 2);
    float out[2];
    CHECK_INT_EQ(0, qe_convert_to_f32(out, tb->data, tb->dtype, 2));
    CHECK_NEAR(1.0, out[0], 0);
    CHECK_NEAR(0.5, out[1], 0);
    CHECK(qe_safetensors_find(st, "c") == NULL);
    qe_safetensors_close(st);
}

static void test_hostile(void)
{
    unsigned char data[16] = {0};
    const char *p;

    p = path_in("short.safetensors");
    write_bytes(p, "\x10\x00\x00", 3);
    expect_open_error(p, QE_EFORMAT, "truncated", NULL);

    p = path_in("past_end.safetensors");
    write_st(p, "{}", NULL, 0, 1000);
    expect_open_error(p, QE_EFORMAT, "header length 1000 runs past the end", NULL);

    p = path_in("not_json.safetensors");
    write_st(p, "{\"a\":", NULL, 0, 0);
    expect_open_error(p, QE_EFORMAT, "not valid JSON", NULL);

    p = path_in("bounds.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", data, 8, 0);
    expect_open_error(p, QE_EFORMAT, "'a'", "run past the 8-byte data region");

    p = path_in("overlap.safetensors");
    write_st(p,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
             "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
             data, 12, 0);
    expect_open_error(p, QE_EFORMAT, "overlap", "'b'");

    p = path_in("dtype.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"Q4_K\",\"shape\":[2],\"data_offsets\":[0,8]}}", data, 8, 0);
    expect_open_error(p, QE_EFORMAT, "unknown dtype \"Q4_K\"", NULL);

    p = path_in("shape.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", data, 8, 0);
    expect_open_error(p, QE_EFORMAT, "3 elements", "span 8 bytes");

    p = path_in("neg.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", data, 8, 0);
    expect_open_error(p, QE_EFORMAT, "shape[0]", NULL);

    p = path_in("reversed.safetensors");
    write_st(p, "{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", data, 8, 0);
    expect_open_error(p, QE_EFORMAT, "end before they begin", NULL);

    p = path_in("dup.safetensors");
    write_st(p,
             "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
             "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
             data, 8, 0);
    expect_open_error(p, QE_EFORMAT, "appears twice", NULL);

    p = path_in("overflow.safetensors");
    write_st(p,
             "{\"a\":{\"dtype\":\"F64\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}", data, 8, 0);
    expect_open_error(p, QE_EFORMAT, "'a'", NULL);

    expect_open_error(path_in("absent.safetensors"), QE_EIO, "cannot open", NULL);
}

/* A model directory: config.json text and one safetensors file. */
static const char *make_model_dir(const char *name, const char *config, const char *header, const void *data,
                                  size_t data_bytes)
{
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", tmp_dir, name);
    mkdir(dir, 0700);
    char path[600];
    snprintf(path, sizeof path, "%s/config.json", dir);
    write_bytes(path, config, strlen(config));
    if (header) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        write_st(path, header, data, data_bytes, 0);
    }
    return dir;
}

static void expect_load_error(const char *dir, qe_status code, const char *needle1, const char *needle2)
{
    qe_model *m = NULL;
    qe_error err = {0};
    qe_load_options opt = {.variant = {.kind = QE_VARIANT_FP32}, .n_threads = 1};
    CHECK_INT_EQ(code, qe_model_load(dir, &opt, &m, &err));
    CHECK(m == NULL);
    if (!strstr(err.msg, needle1) || (needle2 && !strstr(err.msg, needle2)))
        fprintf(stderr, "message was: %s\n", err.msg);
    CHECK(strstr(err.msg, needle1) != NULL);
    CHECK(!needle2 || strstr(err.msg, needle2) != NULL);
    qe_model_free(m);
}

#define TINY_CONFIG(extra)                                                                                   \
    "{\"model_type\":\"llama\",\"vocab_size\":4,\"hidden_size\":2,\"num_hidden_layers\":1,"                \
    "\"num_attention_heads\":1,\"intermediate_size\":2" extra "}"

static void test_model_dirs(void)
{
    float zeros[64] = {0};
    const char *dir;
    dir = make_model_dir("no_type", "{\"vocab_size\":4}", NULL, NULL, 0);
    expect_load_error(dir, QE_EFORMAT, "config.json", "\"model_type\" is missing");

    dir = make_model_dir("gpt2", "{\"model_type\":\"gpt2\"}", NULL, NULL, 0);
    expect_load_error(dir, QE_EUNSUPPORTED, "config.json", "model_type \"gpt2\" is not supported");

    dir = make_model_dir("no_hidden", "{\"model_type\":\"llama\",\"vocab_size\":4}", NULL, NULL, 0);
    expect_load_error(dir, QE_EFORMAT, "config.json", "\"hidden_size\" is missing");

    dir = make_model_dir("bad_rope", TINY_CONFIG(",\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4}"), NULL, NULL, 0);
    expect_load_error(dir, QE_EUNSUPPORTED, "config.json", "rope type \"yarn\"");

    dir = make_model_dir("no_weights", TINY_CONFIG(""), NULL, NULL, 0);
    expect_load_error(dir, QE_EIO, "no model.safetensors", NULL);

    /* only the embedding: the loader must name the next tensor it needs */
    dir = make_model_dir("missing_tensor", TINY_CONFIG(""),
                         "{\"model.embed_tokens.weight\":{\"dtype\":\"F32\",\"shape\":[4,2],\"data_offsets\":[0,32]}}",
                         zeros, 32);
    expect_load_error(dir, QE_EFORMAT, "missing_tensor", "tensor 'model.norm.weight' is missing");

    dir = make_model_dir("wrong_shape", TINY_CONFIG(""),
                         "{\"model.embed_tokens.weight\":{\"dtype\":\"F32\",\"shape\":[2,4],\"data_offsets\":[0,32]}}",
                         zeros, 32);
    expect_load_error(dir, QE_EFORMAT, "'model.embed_tokens.weight' has shape [2, 4]", "[4, 2]");

    dir = make_model_dir("int_weights", TINY_CONFIG(""),
                         "{\"model.embed_tokens.weight\":{\"dtype\":\"I32\",\"shape\":[4,2],\"data_offsets\":[0,32]}}",
                         zeros, 32);
    expect_load_error(dir, QE_EUNSUPPORTED, "'model.embed_tokens.weight' has dtype I32", NULL);

    dir = make_model_dir("bad_index", TINY_CONFIG(""), NULL, NULL, 0);
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    const char *index = "{\"weight_map\":{\"model.norm.weight\":\"../../etc/passwd\"}}";
    write_bytes(path, index, strlen(index));
    expect_load_error(dir, QE_EFORMAT, "index.json", "not a plain file name");
}

static void remove_tree(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

int main(void)
{
    if (!mkdtemp(tmp_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_valid();
    test_hostile();
    test_model_dirs();
    remove_tree(tmp_dir);
    return check_summary();
}
