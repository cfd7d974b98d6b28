/* tokenizer.json front-end on small hand-written files: features checked against hand-computed
 * ids, and hostile files (truncated, malformed, missing fields, unknown types, merges naming
 * unknown tokens) that must fail with one error naming the file and the problem. */
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokenizer_check.h"

static char dir[256];

/* "▁" and SentencePiece-style pieces: a <- 4, b <- 5, ab <- 6, ▁ab <- 7. */
#define SPM_VOCAB "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</s>\":2,\"\u2581\":3,\"a\":4,\"b\":5,\"ab\":6,\"\u2581ab\":7}"
#define SPM_ADDED "\"added_tokens\":[{\"id\":1,\"content\":\"<s>\",\"special\":true},{\"id\":2,\"content\":\"</s>\",\"special\":true}]"
#define SPM_REST                                                                                               \
    "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"Replace\",\"pattern\":{\"String\":\"\u2581\"},"  \
    "\"content\":\" \"},{\"type\":\"ByteFallback\"},{\"type\":\"Fuse\"},{\"type\":\"Strip\",\"content\":\" \","   \
    "\"start\":1,\"stop\":0}]},\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":[{\"SpecialToken\":" \
    "{\"id\":\"<s>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\",\"type_id\":0}}],\"special_tokens\":{\"<s>\":"  \
    "{\"id\":\"<s>\",\"ids\":[1],\"tokens\":[\"<s>\"]}}}"
#define SPM_NORMALIZER                                                                                        \
    "\"normalizer\":{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"\u2581\"},"      \
    "{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"\u2581\"}]}"
#define SPM_JSON                                                                                              \
    "{\"model\":{\"type\":\"BPE\"," SPM_VOCAB ",\"merges\":[\"a b\",\"\u2581 ab\"],\"unk_token\":\"<unk>\","  \
    "\"fuse_unk\":true}," SPM_ADDED "," SPM_NORMALIZER ",\"pre_tokenizer\":null," SPM_REST "}"

static void write_file(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
}

static void remove_files(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    unlink(path);
}

/* Loads dir with the given files (config may be NULL); returns the tokenizer or NULL with err. */
static qe_tokenizer *load(const char *json, const char *config, qe_status *rc, qe_error *err)
{
    remove_files();
    if (json)
        write_file("tokenizer.json", json);
    if (config)
        write_file("tokenizer_config.json", config);
    qe_tokenizer *tok = NULL;
    *rc = qe_tokenizer_load_hf(dir, &tok, err);
    return tok;
}

static void expect_error(const char *json, const char *config, qe_status code, const char *file, const char *phrase,
                         int line)
{
    qe_error err = {0};
    qe_status rc;
    qe_tokenizer *tok = load(json, config, &rc, &err);
    bool ok = rc == code && !tok && strstr(err.msg, file) && strstr(err.msg, phrase);
    if (!ok)
        fprintf(stderr, "line %d: expected %s with \"%s\" naming %s; got %s: %s\n", line, qe_status_name(code),
                phrase, file, qe_status_name(rc), err.msg);
    CHECK(ok);
    qe_tokenizer_free(tok);
}
#define EXPECT_ERROR(json, config, code, file, phrase) expect_error(json, config, code, file, phrase, __LINE__)

static void test_spm_features(void)
{
    qe_error err = {0};
    qe_status rc;
    qe_tokenizer *tok = load(SPM_JSON, NULL, &rc, &err);
    CHECK_INT_EQ(QE_OK, rc);
    if (!tok) {
        fprintf(stderr, "%s\n", err.msg);
        return;
    }
    CHECK_INT_EQ(1, qe_tokenizer_bos_id(tok));     /* from TemplateProcessing */
    CHECK(qe_tokenizer_adds_bos(tok));
    EXPECT_IDS(tok, "ab ab", false, 7, 7);          /* ▁ a b ▁ a b -> ▁ ab ▁ ab -> ▁ab ▁ab */
    EXPECT_IDS(tok, "ab ab", true, 1, 7, 7);
    EXPECT_IDS(tok, "abcc", false, 7, 0);           /* unknown "cc" fuses into one <unk> */
    EXPECT_IDS(tok, "<s>ab</s>", false, 1, 7, 2);   /* added tokens first, then "ab" gets its own ▁ */
    EXPECT_IDS(tok, "", true, 1);
    int32_t ids[] = {1, 7, 3, 4};
    char *text = NULL;
    CHECK_INT_EQ(QE_OK, qe_tokenizer_decode_ex(tok, ids, 4, true, &text, &err));
    CHECK_STR_EQ("ab a", text);
    free(text);
    int32_t bad[] = {1, 99};
    CHECK_INT_EQ(QE_EINVAL, qe_tokenizer_decode(tok, bad, 2, &text, &err));
    CHECK(strstr(err.msg, "99") != NULL);
    int32_t *out = NULL;
    int n = 0;
    CHECK_INT_EQ(QE_EINVAL, qe_tokenizer_encode(tok, "a\xff", 2, false, &out, &n, &err));
    CHECK(strstr(err.msg, "UTF-8") != NULL);
    qe_tokenizer_free(tok);

    /* tokenizer_config.json wins over the post_processor */
    tok = load(SPM_JSON, "{\"bos_token\":{\"content\":\"</s>\"},\"add_bos_token\":false,\"add_eos_token\":true,"
                         "\"eos_token\":\"</s>\"}", &rc, &err);
    CHECK_INT_EQ(QE_OK, rc);
    if (tok) {
        CHECK_INT_EQ(2, qe_tokenizer_bos_id(tok));
        EXPECT_IDS(tok, "ab", true, 7, 2);
    }
    qe_tokenizer_free(tok);

    /* the older form: Metaspace pre-tokenizer (splits before each ▁), merges as pairs */
    tok = load("{\"model\":{\"type\":\"BPE\"," SPM_VOCAB ",\"merges\":[[\"a\",\"b\"],[\"\u2581\",\"ab\"]]},"
               "\"pre_tokenizer\":{\"type\":\"Metaspace\",\"replacement\":\"\u2581\",\"add_prefix_space\":true},"
               "\"decoder\":{\"type\":\"Metaspace\",\"replacement\":\"\u2581\",\"add_prefix_space\":true}}",
               NULL, &rc, &err);
    CHECK_INT_EQ(QE_OK, rc);
    if (rc != QE_OK)
        fprintf(stderr, "%s\n", err.msg);
    if (tok) {
        EXPECT_IDS(tok, "ab ab", true, 7, 7); /* no post_processor, no config: nothing added */
        int32_t two[] = {7, 7};
        CHECK_INT_EQ(QE_OK, qe_tokenizer_decode(tok, two, 2, &text, &err));
        CHECK_STR_EQ("ab ab", text);
        free(text);
    }
    qe_tokenizer_free(tok);
}

static void test_hostile(void)
{
    char json[4096];
    EXPECT_ERROR(NULL, NULL, QE_EIO, "tokenizer.json", "cannot open");
    EXPECT_ERROR("", NULL, QE_EFORMAT, "tokenizer.json", "malformed or truncated");
    snprintf(json, 120, "%s", SPM_JSON); /* truncated */
    EXPECT_ERROR(json, NULL, QE_EFORMAT, "tokenizer.json", "malformed or truncated");
    EXPECT_ERROR("[1,2]", NULL, QE_EFORMAT, "tokenizer.json", "not a JSON object");
    EXPECT_ERROR("{\"version\":\"1.0\"}", NULL, QE_EFORMAT, "tokenizer.json", "no \"model\"");
    EXPECT_ERROR("{\"model\":{\"type\":\"BPE\",\"merges\":[]}}", NULL, QE_EFORMAT, "tokenizer.json", "no \"vocab\"");
    EXPECT_ERROR("{\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}", NULL, QE_EFORMAT, "tokenizer.json", "empty");
    EXPECT_ERROR("{\"model\":{\"type\":\"BPE\"," SPM_VOCAB "}}", NULL, QE_EFORMAT, "tokenizer.json", "no \"merges\"");
    EXPECT_ERROR("{\"model\":{\"type\":\"Unigram\",\"vocab\":[]}}", NULL, QE_EUNSUPPORTED, "tokenizer.json", "Unigram");
    EXPECT_ERROR("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-3},\"merges\":[]}}", NULL, QE_EFORMAT,
                 "tokenizer.json", "valid id");
    EXPECT_ERROR("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":4000000000},\"merges\":[]}}", NULL, QE_EFORMAT,
                 "tokenizer.json", "valid id");
    EXPECT_ERROR("{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}}", NULL, QE_EFORMAT,
                 "tokenizer.json", "both 0");
    EXPECT_ERROR("{\"model\":{\"type\":\"BPE\"," SPM_VOCAB ",\"merges\":[\"a z\"]}}", NULL, QE_EFORMAT,
                 "tokenizer.json", "\"z\" is not in the vocabulary");
    EXPECT_ERROR("{\"model\":{\"type\":\"BPE\"," SPM_VOCAB ",\"merges\":[\"b a\"]}}", NULL, QE_EFORMAT,
                 "tokenizer.json", "merged token \"ba\"");
    EXPECT_ERROR("{\"model\":{\"type\":\"BPE\"," SPM_VOCAB ",\"merges\":[\"ab\"]}}", NULL, QE_EFORMAT,
                 "tokenizer.json", "two tokens");
    EXPECT_ERROR("{\"model\":{\"type\":\"BPE\"," SPM_VOCAB ",\"merges\":[7]}}", NULL, QE_EFORMAT,
                 "tokenizer.json", "merges[0]");
    EXPECT_ERROR("{\"model\":{\"type\":\"BPE\"," SPM_VOCAB ",\"merges\":[[\"a\"]]}}", NULL, QE_EFORMAT,
                 "tokenizer.json", "pair of strings");
    EXPECT_ERROR("{\"model\":{\"type\":\"BPE\"," SPM_VOCAB ",\"merges\":[],\"unk_token\":\"<nope>\"}}", NULL,
                 QE_EFORMAT, "tokenizer.json", "unk_token");
    EXPECT_ERROR("{\"model\":{\"type\":\"BPE\"," SPM_VOCAB ",\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Whitespace\"}}",
                 NULL, QE_EUNSUPPORTED, "tokenizer.json", "pre_tokenizer type \"Whitespace\"");
    EXPECT_ERROR("{\"model\":{\"type\":\"BPE\"," SPM_VOCAB ",\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Split\","
                 "\"pattern\":{\"Regex\":\"(unclosed\"},\"behavior\":\"Isolated\"}}",
                 NULL, QE_EFORMAT, "tokenizer.json", "(unclosed");
    EXPECT_ERROR("{\"model\":{\"type\":\"BPE\"," SPM_VOCAB ",\"merges\":[]},\"pre_tokenizer\":{\"type\":\"Split\","
                 "\"pattern\":{\"Regex\":\"a\"},\"behavior\":\"Sideways\"}}",
                 NULL, QE_EFORMAT, "tokenizer.json", "Sideways");
    EXPECT_ERROR("{\"model\":{\"type\":\"BPE\"," SPM_VOCAB ",\"merges\":[]},\"normalizer\":{\"type\":\"Lowercase\"}}",
                 NULL, QE_EUNSUPPORTED, "tokenizer.json", "Lowercase");
    EXPECT_ERROR("{\"model\":{\"type\":\"BPE\"," SPM_VOCAB ",\"merges\":[]},\"decoder\":{\"type\":\"WordPiece\"}}",
                 NULL, QE_EUNSUPPORTED, "tokenizer.json", "WordPiece");
    EXPECT_ERROR("{\"model\":{\"type\":\"BPE\"," SPM_VOCAB ",\"merges\":[]},\"added_tokens\":[{\"content\":\"x\"}]}",
                 NULL, QE_EFORMAT, "tokenizer.json", "added_tokens[0]");
    EXPECT_ERROR("{\"model\":{\"type\":\"BPE\"," SPM_VOCAB ",\"merges\":[]},\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}",
                 NULL, QE_EFORMAT, "tokenizer.json", "no token for byte");
    EXPECT_ERROR(SPM_JSON, "{\"bos_token\":", QE_EFORMAT, "tokenizer_config.json", "malformed or truncated");
    EXPECT_ERROR(SPM_JSON, "{\"bos_token\":\"<nope>\"}", QE_EFORMAT, "tokenizer_config.json", "bos_token");
    remove_files();
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/qeval_tok_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_spm_features();
    test_hostile();
    rmdir(dir);
    return check_summary();
}
