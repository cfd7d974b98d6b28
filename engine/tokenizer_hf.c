/* tokenizer_hf — the Hugging Face front-end: tokenizer.json (model BPE, normalizer,
 * pre_tokenizer, decoder, post_processor, added_tokens) + tokenizer_config.json (BOS/EOS and
 * add_bos_token/add_eos_token, which win over the post_processor as transformers makes them)
 * -> qe_tokenizer_spec. Anything the core cannot reproduce exactly is refused with an error. */
#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file_util.h"
#include "tokenizer.h"

enum { MAX_VOCAB = 1 << 24, MAX_STEPS = 16 };

typedef struct {
    const char *name;               /* file named in errors */
    qe_tokenizer_spec spec;
    const char **tokens;            /* [n_vocab] into the cJSON tree */
    const char **merge_texts;       /* [n_merges] string form, or NULL */
    const char **merge_pairs;       /* [2 n_merges] array form, or NULL */
    qe_added_token *added;
    qe_normalizer_step normalizers[MAX_STEPS];
    qe_pretok_step pretoks[MAX_STEPS];
    bool is_byte_level;
    bool has_byte_fallback_decoder;
    int template_bos, template_eos; /* from TemplateProcessing, -1 when none */
} hf_parse;

static const char *json_string(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool json_bool(const cJSON *obj, const char *key, bool fallback)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : fallback;
}

static const char *json_type(const cJSON *obj) { return json_string(obj, "type"); }

/* Linear: only for the few special tokens a file names. Added tokens first, as HF looks. */
static int find_token(const hf_parse *p, const char *text)
{
    for (int i = 0; i < p->spec.n_added; i++)
        if (strcmp(p->added[i].content, text) == 0)
            return p->added[i].id;
    for (int id = 0; id < p->spec.n_vocab; id++)
        if (p->tokens[id] && strcmp(p->tokens[id], text) == 0)
            return id;
    return -1;
}

/* {"String": s} or {"Regex": r} */
static qe_status parse_pattern(hf_parse *p, const cJSON *pattern, const char *where, const char **text,
                               bool *is_literal, qe_error *err)
{
    const char *s = json_string(pattern, "String"), *r = json_string(pattern, "Regex");
    if (!s && !r)
        return qe_fail(err, QE_EFORMAT, "%s: %s has no \"String\" or \"Regex\" pattern", p->name, where);
    *text = s ? s : r;
    *is_literal = s != NULL;
    return QE_OK;
}

static qe_status parse_normalizer(hf_parse *p, const cJSON *n, qe_error *err)
{
    if (!n || cJSON_IsNull(n))
        return QE_OK;
    const char *type = json_type(n);
    if (!type)
        return qe_fail(err, QE_EFORMAT, "%s: normalizer has no \"type\"", p->name);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers"), *item;
        if (!cJSON_IsArray(list))
            return qe_fail(err, QE_EFORMAT, "%s: normalizer Sequence has no \"normalizers\" array", p->name);
        cJSON_ArrayForEach(item, list) {
            qe_status rc = parse_normalizer(p, item, err);
            if (rc != QE_OK)
                return rc;
        }
        return QE_OK;
    }
    if (p->spec.n_normalizer_steps == MAX_STEPS)
        return qe_fail(err, QE_EUNSUPPORTED, "%s: more than %d normalizers", p->name, MAX_STEPS);
    qe_normalizer_step *s = &p->normalizers[p->spec.n_normalizer_steps];
    if (strcmp(type, "NFC") == 0) {
        s->kind = QE_NORM_NFC;
    } else if (strcmp(type, "NFKC") == 0) {
        s->kind = QE_NORM_NFKC;
    } else if (strcmp(type, "Prepend") == 0) {
        s->kind = QE_NORM_PREPEND;
        if (!(s->text = json_string(n, "prepend")))
            return qe_fail(err, QE_EFORMAT, "%s: normalizer Prepend has no \"prepend\" string", p->name);
    } else if (strcmp(type, "Replace") == 0) {
        bool is_literal = false;
        qe_status rc = parse_pattern(p, cJSON_GetObjectItemCaseSensitive(n, "pattern"), "normalizer Replace",
                                     &s->text, &is_literal, err);
        if (rc != QE_OK)
            return rc;
        if (!is_literal)
            return qe_fail(err, QE_EUNSUPPORTED, "%s: normalizer Replace with a regex is not supported", p->name);
        s->kind = QE_NORM_REPLACE;
        if (!(s->replacement = json_string(n, "content")))
            return qe_fail(err, QE_EFORMAT, "%s: normalizer Replace has no \"content\" string", p->name);
    } else {
        return qe_fail(err, QE_EUNSUPPORTED, "%s: normalizer type \"%.80s\" is not supported", p->name, type);
    }
    p->spec.n_normalizer_steps++;
    return QE_OK;
}

static qe_status parse_prepend_scheme(hf_parse *p, const cJSON *m, qe_prepend_scheme *scheme, qe_error *err)
{
    const char *s = json_string(m, "prepend_scheme");
    if (!s) { /* the older form */
        *scheme = json_bool(m, "add_prefix_space", true) ? QE_PREPEND_ALWAYS : QE_PREPEND_NEVER;
        return QE_OK;
    }
    if (strcmp(s, "always") == 0) *scheme = QE_PREPEND_ALWAYS;
    else if (strcmp(s, "first") == 0) *scheme = QE_PREPEND_FIRST;
    else if (strcmp(s, "never") == 0) *scheme = QE_PREPEND_NEVER;
    else return qe_fail(err, QE_EFORMAT, "%s: Metaspace prepend_scheme \"%.40s\" is unknown", p->name, s);
    return QE_OK;
}

static qe_status parse_pre_tokenizer(hf_parse *p, const cJSON *t, qe_error *err)
{
    if (!t || cJSON_IsNull(t))
        return QE_OK;
    const char *type = json_type(t);
    if (!type)
        return qe_fail(err, QE_EFORMAT, "%s: pre_tokenizer has no \"type\"", p->name);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(t, "pretokenizers"), *item;
        if (!cJSON_IsArray(list))
            return qe_fail(err, QE_EFORMAT, "%s: pre_tokenizer Sequence has no \"pretokenizers\" array", p->name);
        cJSON_ArrayForEach(item, list) {
            qe_status rc = parse_pre_tokenizer(p, item, err);
            if (rc != QE_OK)
                return rc;
        }
        return QE_OK;
    }
    if (p->spec.n_pretok_steps == MAX_STEPS)
        return qe_fail(err, QE_EUNSUPPORTED, "%s: more than %d pre-tokenizers", p->name, MAX_STEPS);
    qe_pretok_step *s = &p->pretoks[p->spec.n_pretok_steps];
    memset(s, 0, sizeof *s);
    if (strcmp(type, "Split") == 0) {
        s->kind = QE_PRETOK_SPLIT;
        qe_status rc = parse_pattern(p, cJSON_GetObjectItemCaseSensitive(t, "pattern"), "pre_tokenizer Split",
                                     &s->pattern, &s->pattern_is_literal, err);
        if (rc != QE_OK)
            return rc;
        static const char *const behaviors[] = {"Isolated", "Removed", "MergedWithPrevious", "MergedWithNext",
                                                "Contiguous"};
        const char *b = json_string(t, "behavior");
        int k = 0;
        while (b && k < 5 && strcmp(b, behaviors[k]) != 0)
            k++;
        if (!b || k == 5)
            return qe_fail(err, QE_EFORMAT, "%s: pre_tokenizer Split has behavior \"%.40s\", not one of HF's five",
                           p->name, b ? b : "(none)");
        s->behavior = (qe_split_behavior)k;
        s->invert = json_bool(t, "invert", false);
    } else if (strcmp(type, "ByteLevel") == 0) {
        s->kind = QE_PRETOK_BYTE_LEVEL;
        s->add_prefix_space = json_bool(t, "add_prefix_space", true);
        s->use_regex = json_bool(t, "use_regex", true);
        p->is_byte_level = true;
    } else if (strcmp(type, "Metaspace") == 0) {
        s->kind = QE_PRETOK_METASPACE;
        s->replacement = json_string(t, "replacement");
        s->split = json_bool(t, "split", true);
        qe_status rc = parse_prepend_scheme(p, t, &s->prepend_scheme, err);
        if (rc != QE_OK)
            return rc;
    } else {
        return qe_fail(err, QE_EUNSUPPORTED, "%s: pre_tokenizer type \"%.80s\" is not supported", p->name, type);
    }
    p->spec.n_pretok_steps++;
    return QE_OK;
}

static qe_status parse_decoder(hf_parse *p, const cJSON *d, qe_error *err)
{
    if (!d || cJSON_IsNull(d))
        return QE_OK;
    const char *type = json_type(d);
    if (!type)
        return qe_fail(err, QE_EFORMAT, "%s: decoder has no \"type\"", p->name);
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(d, "decoders"), *item;
        if (!cJSON_IsArray(list))
            return qe_fail(err, QE_EFORMAT, "%s: decoder Sequence has no \"decoders\" array", p->name);
        cJSON_ArrayForEach(item, list) {
            qe_status rc = parse_decoder(p, item, err);
            if (rc != QE_OK)
                return rc;
        }
        return QE_OK;
    }
    if (strcmp(type, "ByteLevel") == 0) {
        p->is_byte_level = true;
    } else if (strcmp(type, "ByteFallback") == 0) {
        p->has_byte_fallback_decoder = true;
    } else if (strcmp(type, "Strip") == 0) {
        const cJSON *start = cJSON_GetObjectItemCaseSensitive(d, "start");
        if (cJSON_IsNumber(start) && start->valuedouble >= 1)
            p->spec.decode_space_rule = QE_DECODE_STRIP_ONE_SPACE;
    } else if (strcmp(type, "Metaspace") == 0) {
        qe_prepend_scheme scheme;
        qe_status rc = parse_prepend_scheme(p, d, &scheme, err);
        if (rc != QE_OK)
            return rc;
        p->spec.decode_space_rule = scheme != QE_PREPEND_NEVER ? QE_DECODE_METASPACE_FIRST : QE_DECODE_KEEP_SPACE;
    } else if (strcmp(type, "Replace") != 0 && strcmp(type, "Fuse") != 0) {
        /* Replace is taken to be "▁" -> " ", the one SentencePiece tokenizers ship */
        return qe_fail(err, QE_EUNSUPPORTED, "%s: decoder type \"%.80s\" is not supported", p->name, type);
    }
    return QE_OK;
}

/* The id a post_processor's special_tokens entry names. */
static int template_special_id(const cJSON *post, const char *token)
{
    const cJSON *entry = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(post, "special_tokens"), token);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(entry, "ids");
    const cJSON *first = cJSON_IsArray(ids) ? cJSON_GetArrayItem(ids, 0) : NULL;
    return cJSON_IsNumber(first) ? first->valueint : -1;
}

static void parse_post_processor(hf_parse *p, const cJSON *post)
{
    const char *type = json_type(post);
    if (!type)
        return;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *item;
        cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(post, "processors"))
            parse_post_processor(p, item);
        return;
    }
    if (strcmp(type, "TemplateProcessing") != 0)
        return;
    bool seen_sequence = false;
    const cJSON *item;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(post, "single")) {
        const cJSON *special = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
        if (cJSON_GetObjectItemCaseSensitive(item, "Sequence")) {
            seen_sequence = true;
        } else if (special) {
            const char *token = json_string(special, "id");
            int id = token ? template_special_id(post, token) : -1;
            if (!seen_sequence && p->template_bos < 0)
                p->template_bos = id;
            else if (seen_sequence && p->template_eos < 0)
                p->template_eos = id;
        }
    }
}

static qe_status parse_vocab(hf_parse *p, const cJSON *model, const cJSON *added, qe_error *err)
{
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab"), *item;
    if (!cJSON_IsObject(vocab))
        return qe_fail(err, QE_EFORMAT, "%s: model has no \"vocab\" object", p->name);
    int n_vocab = 0;
    cJSON_ArrayForEach(item, vocab) {
        if (!cJSON_IsNumber(item) || item->valuedouble < 0 || item->valuedouble >= MAX_VOCAB ||
            item->valuedouble != (double)item->valueint)
            return qe_fail(err, QE_EFORMAT, "%s: vocab entry \"%.80s\" has no valid id (an integer below %d)",
                           p->name, item->string, MAX_VOCAB);
        if (item->valueint >= n_vocab)
            n_vocab = item->valueint + 1;
    }
    int n_added = cJSON_IsArray(added) ? cJSON_GetArraySize(added) : 0;
    p->added = calloc(n_added ? n_added : 1, sizeof *p->added);
    if (!p->added)
        return qe_fail(err, QE_ENOMEM, "%s: out of memory", p->name);
    int i = 0;
    cJSON_ArrayForEach(item, added) {
        qe_added_token *a = &p->added[i];
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(item, "id");
        a->content = json_string(item, "content");
        if (!a->content || !cJSON_IsNumber(id) || id->valuedouble < 0 || id->valuedouble >= MAX_VOCAB)
            return qe_fail(err, QE_EFORMAT, "%s: added_tokens[%d] needs a \"content\" string and an integer \"id\" below %d",
                           p->name, i, MAX_VOCAB);
        a->id = id->valueint;
        a->is_special = json_bool(item, "special", false);
        a->lstrip = json_bool(item, "lstrip", false);
        a->rstrip = json_bool(item, "rstrip", false);
        a->single_word = json_bool(item, "single_word", false);
        if (a->id >= n_vocab)
            n_vocab = a->id + 1;
        i++;
    }
    p->spec.n_added = n_added;
    p->spec.added = p->added;
    if (n_vocab == 0)
        return qe_fail(err, QE_EFORMAT, "%s: model \"vocab\" is empty", p->name);
    p->tokens = calloc(n_vocab, sizeof *p->tokens);
    if (!p->tokens)
        return qe_fail(err, QE_ENOMEM, "%s: out of memory for %d tokens", p->name, n_vocab);
    cJSON_ArrayForEach(item, vocab) {
        if (p->tokens[item->valueint])
            return qe_fail(err, QE_EFORMAT, "%s: vocab ids \"%.80s\" and \"%.80s\" are both %d", p->name,
                           p->tokens[item->valueint], item->string, item->valueint);
        p->tokens[item->valueint] = item->string;
    }
    p->spec.n_vocab = n_vocab;
    p->spec.tokens = p->tokens;
    return QE_OK;
}

static qe_status parse_merges(hf_parse *p, const cJSON *model, qe_error *err)
{
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges"), *item;
    if (!cJSON_IsArray(merges))
        return qe_fail(err, QE_EFORMAT, "%s: model has no \"merges\" array", p->name);
    int n = cJSON_GetArraySize(merges), r = 0;
    const cJSON *first = cJSON_GetArrayItem(merges, 0);
    bool is_pairs = cJSON_IsArray(first);
    if (is_pairs)
        p->merge_pairs = calloc(2 * (size_t)n + 1, sizeof *p->merge_pairs);
    else
        p->merge_texts = calloc((size_t)n + 1, sizeof *p->merge_texts);
    if (!p->merge_pairs && !p->merge_texts)
        return qe_fail(err, QE_ENOMEM, "%s: out of memory for %d merges", p->name, n);
    cJSON_ArrayForEach(item, merges) {
        if (is_pairs) {
            const cJSON *left = cJSON_GetArrayItem(item, 0), *right = cJSON_GetArrayItem(item, 1);
            if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 2 || !cJSON_IsString(left) || !cJSON_IsString(right))
                return qe_fail(err, QE_EFORMAT, "%s: merges[%d] is not a pair of strings", p->name, r);
            p->merge_pairs[2 * r] = left->valuestring;
            p->merge_pairs[2 * r + 1] = right->valuestring;
        } else {
            if (!cJSON_IsString(item))
                return qe_fail(err, QE_EFORMAT, "%s: merges[%d] is not a string", p->name, r);
            p->merge_texts[r] = item->valuestring;
        }
        r++;
    }
    p->spec.n_merges = n;
    p->spec.merges = p->merge_texts;
    p->spec.merge_pairs = p->merge_pairs;
    return QE_OK;
}

static qe_status parse_model(hf_parse *p, const cJSON *root, qe_error *err)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model))
        return qe_fail(err, QE_EFORMAT, "%s: no \"model\" object", p->name);
    const char *type = json_type(model);
    if (type && strcmp(type, "BPE") != 0)
        return qe_fail(err, QE_EUNSUPPORTED, "%s: model type \"%.80s\" is not supported (only BPE)", p->name, type);
    const char *prefix = json_string(model, "continuing_subword_prefix"), *suffix = json_string(model, "end_of_word_suffix");
    if ((prefix && *prefix) || (suffix && *suffix))
        return qe_fail(err, QE_EUNSUPPORTED, "%s: BPE with a subword prefix or word suffix is not supported", p->name);
    qe_status rc = parse_vocab(p, model, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), err);
    if (rc == QE_OK)
        rc = parse_merges(p, model, err);
    if (rc != QE_OK)
        return rc;
    p->spec.byte_fallback = json_bool(model, "byte_fallback", false);
    p->spec.fuse_unk = json_bool(model, "fuse_unk", false);
    p->spec.ignore_merges = json_bool(model, "ignore_merges", false);
    const char *unk = json_string(model, "unk_token");
    if (unk) {
        p->spec.unk_id = find_token(p, unk);
        if (p->spec.unk_id < 0)
            return qe_fail(err, QE_EFORMAT, "%s: model unk_token \"%.80s\" is not in the vocabulary", p->name, unk);
    }
    return QE_OK;
}

/* A tokenizer_config.json token: "text" or {"content": "text", ...}; NULL when absent. */
static const char *config_token(const cJSON *config, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(config, key);
    return cJSON_IsString(v) ? v->valuestring : json_string(v, "content");
}

static qe_status apply_config(hf_parse *p, const char *config_name, const cJSON *config, qe_error *err)
{
    p->spec.bos_id = p->template_bos;
    p->spec.eos_id = p->template_eos;
    p->spec.add_bos = p->template_bos >= 0;
    p->spec.add_eos = p->template_eos >= 0;
    if (!config)
        return QE_OK;
    if (!cJSON_IsObject(config))
        return qe_fail(err, QE_EFORMAT, "%s: not a JSON object", config_name);
    static const char *const keys[] = {"bos_token", "eos_token", "unk_token", "pad_token"};
    int *ids[] = {&p->spec.bos_id, &p->spec.eos_id, &p->spec.unk_id, &p->spec.pad_id};
    for (int k = 0; k < 4; k++) {
        const char *text = config_token(config, keys[k]);
        if (!text)
            continue;
        int id = find_token(p, text);
        if (id < 0)
            return qe_fail(err, QE_EFORMAT, "%s: %s \"%.80s\" is not in the vocabulary", config_name, keys[k], text);
        *ids[k] = id;
    }
    const cJSON *add_bos = cJSON_GetObjectItemCaseSensitive(config, "add_bos_token");
    const cJSON *add_eos = cJSON_GetObjectItemCaseSensitive(config, "add_eos_token");
    if (cJSON_IsBool(add_bos))
        p->spec.add_bos = cJSON_IsTrue(add_bos);
    if (cJSON_IsBool(add_eos))
        p->spec.add_eos = cJSON_IsTrue(add_eos);
    return QE_OK;
}

static cJSON *parse_json(const char *name, const char *text, size_t len, qe_error *err)
{
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (!root) {
        size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0;
        qe_fail(err, QE_EFORMAT, "%s: malformed or truncated JSON (parsing stopped at byte %zu of %zu)", name, at, len);
    } else if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        root = NULL;
        qe_fail(err, QE_EFORMAT, "%s: not a JSON object", name);
    }
    return root;
}

static qe_status load_json(const char *name, const char *json, size_t json_len, const char *config_name,
                           const char *config_json, qe_tokenizer **out, qe_error *err)
{
    *out = NULL;
    hf_parse p = {.name = name, .template_bos = -1, .template_eos = -1};
    p.spec.bos_id = p.spec.eos_id = p.spec.unk_id = p.spec.pad_id = -1;
    p.spec.normalizer_steps = p.normalizers;
    p.spec.pretok_steps = p.pretoks;
    cJSON *config = NULL, *root = parse_json(name, json, json_len, err);
    qe_status rc = root ? QE_OK : QE_EFORMAT;
    if (rc == QE_OK && config_json && !(config = parse_json(config_name, config_json, strlen(config_json), err)))
        rc = QE_EFORMAT;
    if (rc == QE_OK)
        rc = parse_model(&p, root, err);
    if (rc == QE_OK)
        rc = parse_normalizer(&p, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), err);
    if (rc == QE_OK)
        rc = parse_pre_tokenizer(&p, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), err);
    if (rc == QE_OK)
        rc = parse_decoder(&p, cJSON_GetObjectItemCaseSensitive(root, "decoder"), err);
    if (rc == QE_OK) {
        parse_post_processor(&p, cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
        rc = apply_config(&p, config_name, config, err);
    }
    if (rc == QE_OK) {
        p.spec.kind = p.is_byte_level ? QE_TOKENIZER_BYTE_BPE : QE_TOKENIZER_SPM_BPE;
        p.spec.decode_keeps_byte_tokens = !p.has_byte_fallback_decoder;
        rc = qe_tokenizer_build(&p.spec, out, err);
        if (rc != QE_OK)
            qe_fail_context(err, "%s", name);
    }
    free(p.tokens);
    free(p.merge_texts);
    free(p.merge_pairs);
    free(p.added);
    cJSON_Delete(config);
    cJSON_Delete(root);
    return rc;
}

qe_status qe_tokenizer_load_hf_json(const char *name, const char *json, size_t json_len, const char *config_json,
                                    qe_tokenizer **out, qe_error *err)
{
    return load_json(name, json, json_len, "tokenizer_config.json", config_json, out, err);
}

qe_status qe_tokenizer_load_hf(const char *model_dir, qe_tokenizer **out, qe_error *err)
{
    *out = NULL;
    char json_path[4096], config_path[4096];
    char *json = NULL, *config = NULL;
    size_t json_len = 0;
    qe_status rc = qe_path_join(json_path, sizeof json_path, model_dir, "tokenizer.json", err);
    if (rc == QE_OK)
        rc = qe_path_join(config_path, sizeof config_path, model_dir, "tokenizer_config.json", err);
    if (rc == QE_OK)
        rc = qe_read_file(json_path, &json, &json_len, err);
    if (rc == QE_OK && qe_file_exists(config_path))
        rc = qe_read_file(config_path, &config, NULL, err);
    if (rc == QE_OK)
        rc = load_json(json_path, json, json_len, config_path, config, out, err);
    free(json);
    free(config);
    return rc;
}
