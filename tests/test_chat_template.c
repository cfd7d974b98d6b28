/* Chat templates against Jinja2 renderings (tests/golden/make_chat_golden.py): each case's
 * template is recognised as the expected family and applied to (system, user) to exactly
 * the text transformers' apply_chat_template would give. */
#include <cjson/cJSON.h>
#include <unistd.h>

#include "chat_template.h"
#include "check.h"

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    fclose(f);
    if (s)
        s[n] = '\0';
    return s;
}

/* The Qwen template lives in the shared data; it is read from there, never copied. NULL when
 * the shared data is absent (the test then ends as skipped). */
static char *shared_template(const char *relative)
{
    char path[1024];
    if (!check_shared_path(path, sizeof path, relative))
        return NULL;
    char *text = read_all(path);
    cJSON *config = text ? cJSON_Parse(text) : NULL;
    free(text);
    const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(config, "chat_template");
    char *out = cJSON_IsString(tpl) ? strdup(tpl->valuestring) : NULL;
    cJSON_Delete(config);
    return out;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* tokenizer_config.json's chat_template: a string, a list with a "default", absent, or broken. */
static void test_read_hf(void)
{
    char dir[1024], path[1100];
    qe_error err = {0};
    char *text = NULL, *expected;
    expected = shared_template("tokenizers/qwen2/tokenizer_config.json");
    if (expected) {
        snprintf(dir, sizeof dir, "%s/tokenizers/qwen2", check_shared_dir());
        CHECK_INT_EQ(QE_OK, qe_chat_template_read_hf(dir, &text, &err));
        CHECK(text && !strcmp(text, expected));
        free(text);
        free(expected);
    }

    char tmp[] = "/tmp/qeval-chat-XXXXXX";
    CHECK(mkdtemp(tmp) != NULL);
    CHECK_INT_EQ(QE_OK, qe_chat_template_read_hf(tmp, &text, &err)); /* no tokenizer_config.json */
    CHECK(text == NULL);
    snprintf(path, sizeof path, "%s/tokenizer_config.json", tmp);
    write_file(path, "{\"chat_template\": [{\"name\": \"tool_use\", \"template\": \"T\"}, "
                     "{\"name\": \"default\", \"template\": \"D\"}]}");
    CHECK_INT_EQ(QE_OK, qe_chat_template_read_hf(tmp, &text, &err));
    CHECK_STR_EQ("D", text);
    free(text);
    write_file(path, "{\"chat_template\": 7}");
    CHECK_INT_EQ(QE_EFORMAT, qe_chat_template_read_hf(tmp, &text, &err));
    CHECK(strstr(err.msg, "neither a string nor a list") != NULL);
    write_file(path, "{\"chat_template\": ");
    CHECK_INT_EQ(QE_EFORMAT, qe_chat_template_read_hf(tmp, &text, &err));
    CHECK(strstr(err.msg, "tokenizer_config.json: not valid JSON") != NULL);
    remove(path);
    rmdir(tmp);
}

int main(void)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/golden/chat/cases.json", QEVAL_SOURCE_DIR);
    char *text = read_all(path);
    cJSON *cases = text ? cJSON_Parse(text) : NULL;
    free(text);
    CHECK(cJSON_IsArray(cases));
    int n_cases = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cases) {
        const char *name = cJSON_GetObjectItem(c, "name")->valuestring;
        const char *family = cJSON_GetObjectItem(c, "family")->valuestring;
        const cJSON *tpl = cJSON_GetObjectItem(c, "template"), *sys = cJSON_GetObjectItem(c, "system");
        const char *user = cJSON_GetObjectItem(c, "user")->valuestring;
        const char *expected = cJSON_GetObjectItem(c, "rendered")->valuestring;
        char *template_text = cJSON_IsString(tpl) ? strdup(tpl->valuestring)
                                                  : shared_template(cJSON_GetObjectItem(c, "shared_template")->valuestring);
        n_cases++;
        if (!template_text && !cJSON_IsString(tpl))
            continue; /* its template is in the shared data, which is absent */
        qe_chat_template t = {0};
        qe_error err = {0};
        char *prompt = NULL;
        CHECK(template_text != NULL);
        if (template_text && qe_chat_template_parse(template_text, &t, &err) == QE_OK) {
            CHECK_STR_EQ(family, qe_chat_family_name(t.family));
            CHECK_INT_EQ(QE_OK, qe_chat_template_apply(&t, cJSON_IsString(sys) ? sys->valuestring : NULL, user,
                                                       &prompt, &err));
            if (prompt && strcmp(prompt, expected) != 0)
                fprintf(stderr, "case %d (%s)\n", n_cases - 1, name);
            CHECK_STR_EQ(expected, prompt);
        } else {
            check_n_failed++;
            fprintf(stderr, "%s: %s\n", name, err.msg);
        }
        free(prompt);
        free(template_text);
        qe_chat_template_clear(&t);
    }
    CHECK_INT_EQ(24, n_cases);
    cJSON_Delete(cases);

    qe_chat_template t;
    qe_error err = {0};
    test_read_hf();
    CHECK_INT_EQ(QE_EUNSUPPORTED, qe_chat_template_parse("{{ messages[0]['content'] }}", &t, &err));
    CHECK(strstr(err.msg, "unknown family") != NULL);
    CHECK_INT_EQ(QE_EUNSUPPORTED, qe_chat_template_parse(NULL, &t, &err));
    CHECK_INT_EQ(QE_EUNSUPPORTED, qe_chat_template_parse("", &t, &err));
    qe_chat_template_clear(NULL);
    return check_summary();
}
