#include "synth.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "safetensors_write.h"

/* transformers' save_pretrained default max_shard_size ("5GB"). */
#define SHARD_LIMIT_BYTES 5000000000ull

typedef enum { INIT_LINEAR, INIT_EMBEDDING, INIT_NORM, INIT_NORM_OFFSET, INIT_BIAS } init_kind;

typedef struct {
    qh_tensor_entry entry;
    init_kind init;
    double std;                /* INIT_LINEAR / INIT_EMBEDDING: the standard deviation */
    int file;                  /* 0-based shard index                                 */
} synth_tensor;

typedef struct {
    synth_tensor *tensors;     /* [n_tensors] in state-dict order */
    int n_tensors, n_files;
} synth_plan;

static void add_tensor(synth_plan *p, const char *name, int64_t rows, int64_t cols, init_kind init, double std)
{
    synth_tensor *t = &p->tensors[p->n_tensors++];
    snprintf(t->entry.name, sizeof t->entry.name, "%s", name);
    t->entry.dtype = "BF16";
    t->entry.n_dims = cols ? 2 : 1;
    t->entry.shape[0] = rows;
    t->entry.shape[1] = cols;
    t->entry.n_bytes = (uint64_t)rows * (uint64_t)(cols ? cols : 1) * 2;
    t->init = init;
    t->std = std;
}

/* A linear layer's weight [out, in] (and its bias [out] when has_bias). */
static void add_linear(synth_plan *p, const char *name, int64_t out, int64_t in, bool has_bias)
{
    char key[128];
    snprintf(key, sizeof key, "%s.weight", name);
    add_tensor(p, key, out, in, INIT_LINEAR, 1.0 / sqrt((double)in));
    if (has_bias) {
        snprintf(key, sizeof key, "%s.bias", name);
        add_tensor(p, key, out, 0, INIT_BIAS, 0);
    }
}

/* The tensors of shape in the order transformers' state_dict() lists them, each file filled
 * greedily up to SHARD_LIMIT_BYTES as save_pretrained fills them. */
static qe_status make_plan(const qh_synth_shape *s, synth_plan *p, qe_error *err)
{
    bool is_gemma = !strcmp(s->model_type, "gemma3_text");
    int max_tensors = 2 + s->n_layers * 16;
    *p = (synth_plan){.tensors = calloc(max_tensors, sizeof *p->tensors)};
    if (!p->tensors)
        return qe_fail(err, QE_ENOMEM, "synth %s: out of memory", s->name);
    init_kind norm = is_gemma ? INIT_NORM_OFFSET : INIT_NORM;
    double head_std = 4.0 / sqrt((double)s->hidden);
    int64_t q_rows = (int64_t)s->n_heads * s->head_dim, kv_rows = (int64_t)s->n_kv_heads * s->head_dim;
    add_tensor(p, "model.embed_tokens.weight", s->n_vocab, s->hidden, INIT_EMBEDDING, head_std);
    for (int i = 0; i < s->n_layers; i++) {
        char prefix[64], name[128];
#define NAME(suffix) (snprintf(name, sizeof name, "%s.%s", prefix, suffix), name)
        snprintf(prefix, sizeof prefix, "model.layers.%d", i);
        add_linear(p, NAME("self_attn.q_proj"), q_rows, s->hidden, s->has_qkv_bias);
        add_linear(p, NAME("self_attn.k_proj"), kv_rows, s->hidden, s->has_qkv_bias);
        add_linear(p, NAME("self_attn.v_proj"), kv_rows, s->hidden, s->has_qkv_bias);
        add_linear(p, NAME("self_attn.o_proj"), s->hidden, q_rows, false);
        if (is_gemma) {
            add_tensor(p, NAME("self_attn.q_norm.weight"), s->head_dim, 0, norm, 0);
            add_tensor(p, NAME("self_attn.k_norm.weight"), s->head_dim, 0, norm, 0);
        }
        add_linear(p, NAME("mlp.gate_proj"), s->intermediate, s->hidden, false);
        add_linear(p, NAME("mlp.up_proj"), s->intermediate, s->hidden, false);
        add_linear(p, NAME("mlp.down_proj"), s->hidden, s->intermediate, false);
        add_tensor(p, NAME("input_layernorm.weight"), s->hidden, 0, norm, 0);
        add_tensor(p, NAME("post_attention_layernorm.weight"), s->hidden, 0, norm, 0);
        if (is_gemma) {
            add_tensor(p, NAME("pre_feedforward_layernorm.weight"), s->hidden, 0, norm, 0);
            add_tensor(p, NAME("post_feedforward_layernorm.weight"), s->hidden, 0, norm, 0);
        }
#undef NAME
    }
    add_tensor(p, "model.norm.weight", s->hidden, 0, norm, 0);
    if (!s->tie_embeddings)
        add_tensor(p, "lm_head.weight", s->n_vocab, s->hidden, INIT_EMBEDDING, head_std);

    uint64_t file_bytes = 0;
    for (int i = 0; i < p->n_tensors; i++) {
        uint64_t n = p->tensors[i].entry.n_bytes;
        if (file_bytes > 0 && file_bytes + n > SHARD_LIMIT_BYTES) {
            p->n_files++;
            file_bytes = 0;
        }
        p->tensors[i].file = p->n_files;
        file_bytes += n;
    }
    p->n_files++;
    return QE_OK;
}

static void summarize(const synth_plan *p, qh_synth_summary *summary)
{
    *summary = (qh_synth_summary){.n_tensors = p->n_tensors, .n_files = p->n_files};
    for (int i = 0; i < p->n_tensors; i++) {
        summary->n_weight_bytes += p->tensors[i].entry.n_bytes;
        summary->n_params += p->tensors[i].entry.n_bytes / 2;
    }
}

qe_status qh_synth_plan(const qh_synth_shape *shape, qh_synth_summary *summary, qe_error *err)
{
    synth_plan p;
    qe_status rc = make_plan(shape, &p, err);
    if (rc == QE_OK)
        summarize(&p, summary);
    free(p.tensors);
    return rc;
}

/* ---- files ----------------------------------------------------------------------------------- */

/* mkdir -p */
static qe_status make_dirs(const char *dir, qe_error *err)
{
    char path[4096];
    if (!*dir)
        return qe_fail(err, QE_EINVAL, "the output directory is an empty path");
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return qe_fail(err, QE_EINVAL, "%.200s...: path too long", dir);
    for (char *slash = strchr(path + 1, '/');; slash = strchr(slash + 1, '/')) {
        if (slash)
            *slash = 0;
        struct stat st;
        if (mkdir(path, 0777) != 0 && !(errno == EEXIST && stat(path, &st) == 0 && S_ISDIR(st.st_mode)))
            return qe_fail(err, QE_EIO, "%s: cannot create the output directory: %s", path,
                           errno == EEXIST ? "a file of that name exists" : strerror(errno));
        if (!slash)
            return QE_OK;
        *slash = '/';
        while (slash[1] == '/')
            slash++;
    }
}

static qe_status open_in(const char *dir, const char *name, char *path, size_t path_bytes, FILE **f, qe_error *err)
{
    if (snprintf(path, path_bytes, "%s/%s", dir, name) >= (int)path_bytes)
        return qe_fail(err, QE_EINVAL, "%s/%s: path too long", dir, name);
    if (!(*f = fopen(path, "wb")))
        return qe_fail(err, QE_EIO, "%s: cannot write: %s", path, strerror(errno));
    return QE_OK;
}

static qe_status close_checked(FILE *f, const char *path, qe_status rc, qe_error *err)
{
    bool failed = ferror(f) != 0;
    failed |= fclose(f) != 0;
    if (rc == QE_OK && failed)
        rc = qe_fail(err, QE_EIO, "%s: cannot write: %s", path, strerror(errno));
    return rc;
}

/* Writes root (consumed) to dir/name, formatted. */
static qe_status write_json(const char *dir, const char *name, cJSON *root, qe_error *err)
{
    char path[4096];
    FILE *f = NULL;
    char *text = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    qe_status rc = text ? open_in(dir, name, path, sizeof path, &f, err)
                        : qe_fail(err, QE_ENOMEM, "%s/%s: out of memory", dir, name);
    if (rc == QE_OK) {
        fputs(text, f);
        fputc('\n', f);
        rc = close_checked(f, path, rc, err);
    }
    free(text);
    return rc;
}

static int compare_keys(const void *a, const void *b)
{
    return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

/* Orders obj's members by key, as transformers writes config.json (json.dumps sort_keys=True). */
static void sort_keys(cJSON *obj)
{
    int n = cJSON_GetArraySize(obj);
    cJSON **items = malloc((size_t)(n ? n : 1) * sizeof *items);
    if (!items)
        return; /* left in insertion order: still a valid config */
    for (int i = 0; i < n; i++)
        items[i] = cJSON_DetachItemFromArray(obj, 0);
    qsort(items, n, sizeof *items, compare_keys);
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray(obj, items[i]);
    free(items);
}

static void add_token_id(cJSON *obj, const char *key, int id)
{
    if (id >= 0)
        cJSON_AddNumberToObject(obj, key, id);
    else
        cJSON_AddNullToObject(obj, key);
}

static cJSON *make_config(const qh_synth_shape *s, uint64_t seed)
{
    cJSON *c = cJSON_CreateObject(), *rope_scaling = NULL;
    cJSON_AddItemToObject(c, "architectures", cJSON_CreateStringArray(&s->architecture, 1));
    cJSON_AddStringToObject(c, "model_type", s->model_type);
    cJSON_AddNumberToObject(c, "attention_dropout", 0.0);
    add_token_id(c, "bos_token_id", s->bos_id);
    add_token_id(c, "eos_token_id", s->eos_id);
    if (s->pad_id >= 0)
        cJSON_AddNumberToObject(c, "pad_token_id", s->pad_id);
    cJSON_AddNumberToObject(c, "hidden_size", s->hidden);
    cJSON_AddNumberToObject(c, "intermediate_size", s->intermediate);
    cJSON_AddNumberToObject(c, "num_hidden_layers", s->n_layers);
    cJSON_AddNumberToObject(c, "num_attention_heads", s->n_heads);
    cJSON_AddNumberToObject(c, "num_key_value_heads", s->n_kv_heads);
    cJSON_AddNumberToObject(c, "vocab_size", s->n_vocab);
    cJSON_AddNumberToObject(c, "max_position_embeddings", s->max_position);
    cJSON_AddNumberToObject(c, "rms_norm_eps", s->rms_norm_eps);
    cJSON_AddNumberToObject(c, "rope_theta", s->rope_theta);
    cJSON_AddBoolToObject(c, "tie_word_embeddings", s->tie_embeddings);
    cJSON_AddNumberToObject(c, "initializer_range", 0.02);
    cJSON_AddStringToObject(c, "torch_dtype", "bfloat16");
    cJSON_AddBoolToObject(c, "use_cache", true);
    if (!strcmp(s->model_type, "qwen2")) {
        cJSON_AddStringToObject(c, "hidden_act", "silu");
        cJSON_AddNumberToObject(c, "max_window_layers", s->n_layers);
        cJSON_AddNumberToObject(c, "sliding_window", s->max_position);
        cJSON_AddBoolToObject(c, "use_sliding_window", false);
    } else if (!strcmp(s->model_type, "gemma3_text")) {
        cJSON_AddNumberToObject(c, "head_dim", s->head_dim);
        cJSON_AddStringToObject(c, "hidden_activation", "gelu_pytorch_tanh");
        cJSON_AddBoolToObject(c, "attention_bias", false);
        cJSON_AddNullToObject(c, "attn_logit_softcapping");
        cJSON_AddNullToObject(c, "final_logit_softcapping");
        cJSON_AddNumberToObject(c, "query_pre_attn_scalar", s->query_pre_attn_scalar);
        cJSON_AddNumberToObject(c, "rope_local_base_freq", s->rope_local_theta);
        cJSON_AddNumberToObject(c, "sliding_window", s->sliding_window);
        cJSON_AddNumberToObject(c, "sliding_window_pattern", s->sliding_window_pattern);
        rope_scaling = cJSON_CreateObject();
        cJSON_AddNumberToObject(rope_scaling, "factor", s->rope_linear_factor);
        cJSON_AddStringToObject(rope_scaling, "rope_type", "linear");
    } else {
        cJSON_AddNumberToObject(c, "head_dim", s->head_dim);
        cJSON_AddStringToObject(c, "hidden_act", "silu");
        if (!strcmp(s->model_type, "mistral")) {
            cJSON_AddNullToObject(c, "sliding_window");
        } else {
            cJSON_AddBoolToObject(c, "attention_bias", false);
            cJSON_AddBoolToObject(c, "mlp_bias", false);
            cJSON_AddNumberToObject(c, "pretraining_tp", 1);
        }
        if (s->rope_llama3_factor > 0) {
            rope_scaling = cJSON_CreateObject();
            cJSON_AddNumberToObject(rope_scaling, "factor", s->rope_llama3_factor);
            cJSON_AddNumberToObject(rope_scaling, "high_freq_factor", 4.0);
            cJSON_AddNumberToObject(rope_scaling, "low_freq_factor", 1.0);
            cJSON_AddNumberToObject(rope_scaling, "original_max_position_embeddings", s->rope_original_max_position);
            cJSON_AddStringToObject(rope_scaling, "rope_type", "llama3");
        }
    }
    if (rope_scaling)
        cJSON_AddItemToObject(c, "rope_scaling", rope_scaling);
    else if (strcmp(s->model_type, "qwen2"))
        cJSON_AddNullToObject(c, "rope_scaling");
    cJSON *synth = cJSON_AddObjectToObject(c, "qeval_synth");
    cJSON_AddStringToObject(synth, "like", s->name);
    cJSON_AddStringToObject(synth, "source", s->source);
    cJSON_AddNumberToObject(synth, "seed", (double)seed);
    cJSON_AddStringToObject(synth, "weights", "random (qeval synth): same shapes as the source, no trained values");
    sort_keys(c);
    return c;
}

char *qh_synth_config_json(const qh_synth_shape *shape)
{
    cJSON *config = make_config(shape, 0);
    char *text = config ? cJSON_PrintUnformatted(config) : NULL;
    cJSON_Delete(config);
    return text;
}

/* ---- tokenizer ------------------------------------------------------------------------------- */

/* code point cp as UTF-8 into out (at least 3 bytes free for the code points used here) */
static int put_utf8(char *out, unsigned cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

/* GPT-2's bytes_to_unicode: printable bytes stand for themselves, the others for 256 + n. */
static unsigned byte_symbol(int b)
{
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174)
        return (unsigned)b;
    int n = 0;
    for (int i = 0; i < b; i++)
        n += !((i >= 33 && i <= 126) || (i >= 161 && i <= 172) || i >= 174);
    return 256u + (unsigned)n;
}

typedef struct {
    int id;
    const char *content;
} special_token;

/* The specials of s (BOS, EOS, PAD), each id once. */
static int specials_of(const qh_synth_shape *s, special_token out[3])
{
    int n = 0;
    bool bos_is_eos = s->bos_id >= 0 && s->bos_id == s->eos_id;
    if (s->bos_id >= 0)
        out[n++] = (special_token){s->bos_id, bos_is_eos ? "<|endoftext|>" : "<bos>"};
    if (s->eos_id >= 0 && !bos_is_eos)
        out[n++] = (special_token){s->eos_id, "<eos>"};
    if (s->pad_id >= 0 && s->pad_id != s->bos_id && s->pad_id != s->eos_id)
        out[n++] = (special_token){s->pad_id, "<pad>"};
    return n;
}

static const char *special_content(const special_token *specials, int n_specials, int id)
{
    for (int i = 0; i < n_specials; i++)
        if (specials[i].id == id)
            return specials[i].content;
    return NULL;
}

/* The word of merge number k (k >= 0), in the order: every two-symbol word, then every
 * three-symbol word, ...; symbols are "a".."z", and "Ġ" (a space) may open a word. A word's
 * prefix is always an earlier token, so the merge (prefix, last letter) is well formed. */
static void merge_word(long k, char *word, size_t *prefix_bytes)
{
    long per_first = 26; /* words of this length per first symbol */
    int length = 2;
    while (k >= 27 * per_first) {
        k -= 27 * per_first;
        per_first *= 26;
        length++;
    }
    size_t n = 0;
    long first = k / per_first, rest = k % per_first;
    if (first == 0)
        n += put_utf8(word + n, 0x120);
    else
        word[n++] = (char)('a' + first - 1);
    char letters[16];
    for (int i = length - 2; i >= 0; i--, rest /= 26)
        letters[i] = (char)('a' + rest % 26);
    memcpy(word + n, letters, (size_t)length - 1);
    n += (size_t)length - 1;
    word[n] = 0;
    *prefix_bytes = n - 1;
}

static cJSON *make_tokenizer(const qh_synth_shape *s)
{
    special_token specials[3];
    int n_specials = specials_of(s, specials);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (int i = 0; i < n_specials; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddNumberToObject(t, "id", specials[i].id);
        cJSON_AddStringToObject(t, "content", specials[i].content);
        cJSON_AddBoolToObject(t, "single_word", false);
        cJSON_AddBoolToObject(t, "lstrip", false);
        cJSON_AddBoolToObject(t, "rstrip", false);
        cJSON_AddBoolToObject(t, "normalized", false);
        cJSON_AddBoolToObject(t, "special", true);
        cJSON_AddItemToArray(added, t);
    }
    cJSON_AddNullToObject(root, "normalizer");
    /* Qwen2's (GPT-4-style) split, then the byte-level mapping. */
    cJSON *pre = cJSON_AddObjectToObject(root, "pre_tokenizer");
    cJSON_AddStringToObject(pre, "type", "Sequence");
    cJSON *steps = cJSON_AddArrayToObject(pre, "pretokenizers"), *split = cJSON_CreateObject();
    cJSON_AddStringToObject(split, "type", "Split");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(split, "pattern"), "Regex",
                            "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
                            "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+");
    cJSON_AddStringToObject(split, "behavior", "Isolated");
    cJSON_AddBoolToObject(split, "invert", false);
    cJSON_AddItemToArray(steps, split);
    cJSON *byte_level = cJSON_CreateObject();
    cJSON_AddStringToObject(byte_level, "type", "ByteLevel");
    cJSON_AddBoolToObject(byte_level, "add_prefix_space", false);
    cJSON_AddBoolToObject(byte_level, "trim_offsets", false);
    cJSON_AddBoolToObject(byte_level, "use_regex", false);
    cJSON_AddItemToArray(steps, byte_level);
    cJSON_AddNullToObject(root, "post_processor");
    cJSON_AddItemToObject(root, "decoder", cJSON_Duplicate(byte_level, true));

    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddBoolToObject(model, "byte_fallback", false);
    cJSON_AddBoolToObject(model, "ignore_merges", false);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab"), *merges = cJSON_AddArrayToObject(model, "merges");
    long n_merges = 0;
    for (int id = 0, next_byte = 0; id < s->n_vocab; id++) {
        if (special_content(specials, n_specials, id))
            continue;
        char word[64];
        if (next_byte < 256) {
            word[put_utf8(word, byte_symbol(next_byte++))] = 0;
        } else {
            size_t prefix_bytes;
            merge_word(n_merges++, word, &prefix_bytes);
            char left[64];
            memcpy(left, word, prefix_bytes);
            left[prefix_bytes] = 0;
            const char *pair[2] = {left, word + prefix_bytes};
            cJSON_AddItemToArray(merges, cJSON_CreateStringArray(pair, 2));
        }
        cJSON_AddNumberToObject(vocab, word, id);
    }
    return root;
}

static cJSON *make_tokenizer_config(const qh_synth_shape *s)
{
    special_token specials[3];
    int n_specials = specials_of(s, specials);
    cJSON *c = cJSON_CreateObject();
    cJSON_AddBoolToObject(c, "add_bos_token", s->adds_bos);
    cJSON_AddBoolToObject(c, "add_eos_token", false);
    const char *bos = special_content(specials, n_specials, s->bos_id);
    const char *eos = special_content(specials, n_specials, s->eos_id);
    const char *pad = special_content(specials, n_specials, s->pad_id);
    if (bos)
        cJSON_AddStringToObject(c, "bos_token", bos);
    if (eos)
        cJSON_AddStringToObject(c, "eos_token", eos);
    if (pad)
        cJSON_AddStringToObject(c, "pad_token", pad);
    cJSON_AddNumberToObject(c, "model_max_length", s->max_position);
    cJSON_AddStringToObject(c, "tokenizer_class", "PreTrainedTokenizerFast");
    return c;
}

/* ---- weights --------------------------------------------------------------------------------- */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* t's values, uniform on [center - half_width, center + half_width), streamed to f as BF16
 * (truncated: the values are random, so no rounding to nearest is owed to anyone). */
static qe_status write_tensor(FILE *f, const char *path, const synth_tensor *t, uint64_t seed, int index,
                              uint16_t *buffer, size_t buffer_elements, qe_error *err)
{
    double center = 0, half_width;
    switch (t->init) {
    case INIT_LINEAR:
    case INIT_EMBEDDING: half_width = t->std * sqrt(3.0); break;
    case INIT_NORM: center = 1, half_width = 0.1; break;
    default: half_width = 0.1; break; /* INIT_NORM_OFFSET, INIT_BIAS */
    }
    float scale = (float)(half_width / 32768.0), offset = (float)center;
    uint64_t state = seed ^ ((uint64_t)(index + 1) * 0xD1B54A32D192ED03ull);
    uint64_t remaining = t->entry.n_bytes / 2;
    while (remaining > 0) {
        size_t n = remaining < buffer_elements ? (size_t)remaining : buffer_elements;
        for (size_t i = 0; i < n; i += 4) {
            uint64_t r = splitmix64(&state);
            for (size_t j = 0; j < 4 && i + j < n; j++) {
                float value = offset + (float)(int16_t)(uint16_t)(r >> (16 * j)) * scale;
                uint32_t bits;
                memcpy(&bits, &value, sizeof bits);
                buffer[i + j] = (uint16_t)(bits >> 16);
            }
        }
        if (fwrite(buffer, 2, n, f) != n)
            return qe_fail(err, QE_EIO, "%s: cannot write %s: %s", path, t->entry.name, strerror(errno));
        remaining -= n;
    }
    return QE_OK;
}

static void shard_name(const synth_plan *p, int file, char *name, size_t name_bytes)
{
    if (p->n_files == 1)
        snprintf(name, name_bytes, "model.safetensors");
    else
        snprintf(name, name_bytes, "model-%05d-of-%05d.safetensors", file + 1, p->n_files);
}

static qe_status write_weights(const synth_plan *p, const char *out_dir, uint64_t seed, qe_error *err)
{
    enum { BUFFER_ELEMENTS = 1 << 20 };
    uint16_t *buffer = malloc(BUFFER_ELEMENTS * sizeof *buffer);
    qh_tensor_entry *entries = malloc((size_t)p->n_tensors * sizeof *entries);
    qe_status rc = buffer && entries ? QE_OK : qe_fail(err, QE_ENOMEM, "%s: out of memory", out_dir);
    for (int first = 0; rc == QE_OK && first < p->n_tensors;) {
        int end = first, file = p->tensors[first].file;
        while (end < p->n_tensors && p->tensors[end].file == file) {
            entries[end - first] = p->tensors[end].entry;
            end++;
        }
        char name[64], path[4096];
        FILE *f = NULL;
        shard_name(p, file, name, sizeof name);
        if ((rc = open_in(out_dir, name, path, sizeof path, &f, err)) != QE_OK)
            break;
        rc = qh_safetensors_write_header(f, path, entries, end - first, err);
        for (int i = first; rc == QE_OK && i < end; i++)
            rc = write_tensor(f, path, &p->tensors[i], seed, i, buffer, BUFFER_ELEMENTS, err);
        rc = close_checked(f, path, rc, err);
        first = end;
    }
    free(entries);
    free(buffer);
    return rc;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(((const synth_tensor *)a)->entry.name, ((const synth_tensor *)b)->entry.name);
}

/* model.safetensors.index.json as save_pretrained writes it (keys sorted). */
static cJSON *make_index(const synth_plan *p, uint64_t total_bytes)
{
    synth_tensor *sorted = malloc((size_t)p->n_tensors * sizeof *sorted);
    if (!sorted)
        return NULL;
    memcpy(sorted, p->tensors, (size_t)p->n_tensors * sizeof *sorted);
    qsort(sorted, p->n_tensors, sizeof *sorted, compare_names);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddNumberToObject(cJSON_AddObjectToObject(root, "metadata"), "total_size", (double)total_bytes);
    cJSON *map = cJSON_AddObjectToObject(root, "weight_map");
    for (int i = 0; i < p->n_tensors; i++) {
        char name[64];
        shard_name(p, sorted[i].file, name, sizeof name);
        cJSON_AddStringToObject(map, sorted[i].entry.name, name);
    }
    free(sorted);
    return root;
}

qe_status qh_synth_write(const qh_synth_shape *shape, const char *out_dir, uint64_t seed, qh_synth_summary *summary,
                         qe_error *err)
{
    synth_plan p;
    qe_status rc = make_plan(shape, &p, err);
    if (rc == QE_OK)
        summarize(&p, summary);
    if (rc == QE_OK)
        rc = make_dirs(out_dir, err);
    if (rc == QE_OK)
        rc = write_json(out_dir, "config.json", make_config(shape, seed), err);
    if (rc == QE_OK)
        rc = write_json(out_dir, "tokenizer.json", make_tokenizer(shape), err);
    if (rc == QE_OK)
        rc = write_json(out_dir, "tokenizer_config.json", make_tokenizer_config(shape), err);
    if (rc == QE_OK && p.n_files > 1)
        rc = write_json(out_dir, "model.safetensors.index.json", make_index(&p, summary->n_weight_bytes), err);
    if (rc == QE_OK)
        rc = write_weights(&p, out_dir, seed, err);
    free(p.tensors);
    return rc;
}
