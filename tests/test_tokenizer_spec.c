/* qe_tokenizer_build on hand-made specs, as the GGUF front-end will make them: llama.cpp's named
 * pre-tokenizer regexes, SentencePiece merging by score, token types as added tokens. Expected
 * ids are worked out by hand in the comments. */
#include <stdint.h>

#include "tokenizer_check.h"

/* 256 byte tokens in GPT-2's alphabet plus "a'" (id 256), for the pre-tokenizer's effect. */
static void test_byte_level_named_regex(void)
{
    char *tokens[257];
    for (int b = 0; b < 256; b++) {
        unsigned cp = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE) ? (unsigned)b : 0;
        if (!cp) {
            unsigned n = 0;
            for (int k = 0; k < b; k++)
                n += !((k >= '!' && k <= '~') || (k >= 0xA1 && k <= 0xAC) || (k >= 0xAE));
            cp = 256 + n;
        }
        tokens[b] = malloc(4);
        if (cp < 0x80) {
            tokens[b][0] = (char)cp, tokens[b][1] = 0;
        } else {
            tokens[b][0] = (char)(0xC0 | cp >> 6), tokens[b][1] = (char)(0x80 | (cp & 0x3F)), tokens[b][2] = 0;
        }
    }
    tokens[256] = "a'";
    const char *merges[] = {"a '"};
    qe_tokenizer_spec spec = {.kind = QE_TOKENIZER_BYTE_BPE, .n_vocab = 257, .tokens = (const char *const *)tokens,
                              .n_merges = 1, .merges = merges, .bos_id = -1, .eos_id = -1, .unk_id = -1, .pad_id = -1};
    qe_tokenizer *tok = NULL;
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qe_tokenizer_build(&spec, &tok, &err));
    if (tok)
        EXPECT_IDS(tok, "a's", false, 256, 's'); /* no pre-tokenizer: the merge applies */
    qe_tokenizer_free(tok);
    const char *names[] = {"gpt2", "llama3", "llama-bpe", "qwen2", "smollm"};
    for (int i = 0; i < 5; i++) {
        spec.pre_tokenizer = names[i];
        tok = NULL;
        CHECK_INT_EQ(QE_OK, qe_tokenizer_build(&spec, &tok, &err));
        if (tok)
            EXPECT_IDS(tok, "a's", false, 'a', '\'', 's'); /* "a" | "'s": the merge is cut */
        qe_tokenizer_free(tok);
    }
    const char *patterns[4];
    CHECK_INT_EQ(2, qe_tokenizer_named_regexes("smollm", patterns, 4));
    CHECK_STR_EQ("\\p{N}", patterns[0]);
    spec.pre_tokenizer = "no-such-pre";
    CHECK_INT_EQ(QE_EUNSUPPORTED, qe_tokenizer_build(&spec, &tok, &err));
    spec.pre_tokenizer = NULL;
    spec.n_merges = 0;
    spec.n_vocab = 200; /* bytes 200..255 missing, as some vocabularies lack unused bytes: dropped */
    tok = NULL;
    CHECK_INT_EQ(QE_OK, qe_tokenizer_build(&spec, &tok, &err));
    if (tok)
        EXPECT_IDS(tok, "a\xE4\xB8\xADz", false, 'a', 0xB8, 0xAD, 'z'); /* U+4E2D: byte 0xE4 dropped */
    qe_tokenizer_free(tok);
    spec.n_vocab = 128; /* no byte above 0x7F: a text of one such character merges to no token */
    tok = NULL;
    CHECK_INT_EQ(QE_OK, qe_tokenizer_build(&spec, &tok, &err));
    if (tok)
        tokenizer_check_ids(tok, "\xC3\xA9", false, NULL, 0, "U+00E9 without its bytes");
    qe_tokenizer_free(tok);
    spec.n_vocab = 'B'; /* printable ASCII missing: not a byte-level vocabulary */
    CHECK_INT_EQ(QE_EFORMAT, qe_tokenizer_build(&spec, &tok, &err));
    CHECK(strstr(err.msg, "0x42") != NULL);
    for (int b = 0; b < 256; b++)
        free(tokens[b]);
}

/* llama.cpp's SPM: the adjacent pair whose joined text is the best-scoring token merges first. */
static void test_spm_scores(void)
{
    const char *tokens[] = {"<unk>", "<s>", "</s>", "\xe2\x96\x81", "a", "b", "c", "ab", "bc", "\xe2\x96\x81" "a"};
    const float scores[] = {0, 0, 0, -5, -5, -5, -5, -1, -0.5f, -2};
    const int32_t types[] = {QE_TOKEN_UNKNOWN, QE_TOKEN_CONTROL, QE_TOKEN_CONTROL, 1, 1, 1, 1, 1, 1, 1};
    const qe_normalizer_step norm[] = {{QE_NORM_PREPEND, "\xe2\x96\x81", NULL},
                                       {QE_NORM_REPLACE, " ", "\xe2\x96\x81"}};
    qe_tokenizer_spec spec = {.kind = QE_TOKENIZER_SPM_BPE, .n_vocab = 10, .tokens = tokens, .scores = scores,
                              .token_types = types, .normalizer_steps = norm, .n_normalizer_steps = 2,
                              .decode_space_rule = QE_DECODE_STRIP_ONE_SPACE, .bos_id = 1, .eos_id = 2, .unk_id = 0, .pad_id = -1,
                              .add_bos = true};
    qe_tokenizer *tok = NULL;
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qe_tokenizer_build(&spec, &tok, &err));
    if (!tok)
        return;
    /* "▁abc": candidates ▁a (-2), ab (-1), bc (-0.5): bc first; then ▁a; "abc" is no token */
    EXPECT_IDS(tok, "abc", true, 1, 9, 8);
    /* "▁ab": ▁a (-2) vs ab (-1): ab wins, and "▁ab" is no token */
    EXPECT_IDS(tok, "ab", false, 3, 7);
    /* CONTROL tokens are matched in the text; "d" is unknown and there is no byte fallback */
    EXPECT_IDS(tok, "</s>d", false, 2, 3, 0);
    int32_t ids[] = {1, 9, 8, 3, 7};
    char *text = NULL;
    CHECK_INT_EQ(QE_OK, qe_tokenizer_decode_ex(tok, ids, 5, true, &text, &err));
    CHECK_STR_EQ("abc ab", text);
    free(text);
    qe_tokenizer_free(tok);
}

int main(void)
{
    test_byte_level_named_regex();
    test_spm_scores();
    return check_summary();
}
