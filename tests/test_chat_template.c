/* Chat templates against Jinja2 renderings (tests/golden/make_chat_golden.py): each case's
 * template is recognised as the expected family and applied to (system, user) to exactly
 * the text transformers' apply_chat_template would give. */
#include <cjson/cJSON.h>

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

/* The Qwen template lives in the shared data; it is read from there, never copied. */
static char *shared_template(const char *relative)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", check_shared_dir(), relative);
    char *text = read_all(path);
    cJSON *config = text ? cJSON_Parse(text) : NULL;
    free(text);
    const cJSON *tpl = cJSON_GetObjectItemCaseSensitive(config, "chat_template");
    char *out = cJSON_IsString(tpl) ? strdup(tpl->valuestring) : NULL;
    cJSON_Delete(config);
    return out;
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
        qe_chat_template t = {0};
        qe_error err = {0};
        char *prompt = NULL;
        CHECK(template_text != NULL);
        if (template_text && qe_chat_template_parse(template_text, &t, &err) == QE_OK) {
            CHECK_STR_EQ(family, qe_chat_family_name(t.family));
            CHECK_INT_EQ(QE_OK, qe_chat_template_apply(&t, cJSON_IsString(sys) ? sys->valuestring : NULL, user,
                                                       &prompt, &err));
            if (prompt && strcmp(prompt, expected) != 0)
                fprintf(stderr, "case %d (%s)\n", n_cases, name);
            CHECK_STR_EQ(expected, prompt);
        } else {
            check_n_failed++;
            fprintf(stderr, "%s: %s\n", name, err.msg);
        }
        free(prompt);
        free(template_text);
        qe_chat_template_clear(&t);
        n_cases++;
    }
    CHECK_INT_EQ(24, n_cases);
    cJSON_Delete(cases);

    qe_chat_template t;
    qe_error err = {0};
    CHECK_INT_EQ(QE_EUNSUPPORTED, qe_chat_template_parse("{{ messages[0]['content'] }}", &t, &err));
    CHECK(strstr(err.msg, "unknown family") != NULL);
    CHECK_INT_EQ(QE_EUNSUPPORTED, qe_chat_template_parse(NULL, &t, &err));
    CHECK_INT_EQ(QE_EUNSUPPORTED, qe_chat_template_parse("", &t, &err));
    qe_chat_template_clear(NULL);
    return check_summary();
}
