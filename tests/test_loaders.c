/* CSV / JSONL / gzip / JSON loading: RFC 4180 cases written by hand, and hostile files
 * (truncated, bad quoting, wrong field count, bad answer letter, missing file, corrupt gzip)
 * that must fail with file, line and reason, or be counted under skip_bad_rows. */
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "qd_csv.h"
#include "qd_table.h"

static char dir[] = "/tmp/qeval_loaders_XXXXXX";

static const char *write_file(const char *name, const char *bytes, size_t n)
{
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    fwrite(bytes, 1, n, f);
    fclose(f);
    return path;
}
#define WRITE(name, literal) write_file(name, literal, sizeof literal - 1)

static const char *const mcq_fields[] = {"question", "A", "B", "C", "D", "answer"};
static const char *const letters[] = {"A", "B", "C", "D"};
static const qd_field_check answer_check = {"answer", letters, 4};

static qe_status load_mcq(const char *path, bool skip, qd_table *t, qe_error *err)
{
    qd_load_spec spec = {.format = QD_FORMAT_CSV, .fields = mcq_fields, .n_fields = 6, .checks = &answer_check,
                         .n_checks = 1, .skip_bad_rows = skip};
    return qd_table_load(path, &spec, t, err);
}

static const char *field(const qd_table *t, int row, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(t->records, row), name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int main(void)
{
    if (!mkdtemp(dir))
        return 1;
    qe_error err = {0};
    qd_table t;

    /* BOM, CRLF, quoted commas / doubled quotes / newlines, outer spaces kept, no final newline. */
    const char *p = WRITE("good.csv", "\xEF\xBB\xBF\"What, if \"\"x\"\"?\",  a ,b,\"multi\nline\",d,A\r\n"
                                      "q2,1,2,3,4,D\r\n"
                                      "\"\",,,,,B");
    CHECK_INT_EQ(QE_OK, load_mcq(p, false, &t, &err));
    CHECK_INT_EQ(3, t.n_records);
    CHECK_STR_EQ("What, if \"x\"?", field(&t, 0, "question"));
    CHECK_STR_EQ("  a ", field(&t, 0, "A"));
    CHECK_STR_EQ("multi\nline", field(&t, 0, "C"));
    CHECK_STR_EQ("D", field(&t, 1, "answer"));
    CHECK_STR_EQ("", field(&t, 2, "question"));
    CHECK_STR_EQ("B", field(&t, 2, "answer"));
    CHECK_INT_EQ(1, t.lines[0]);
    CHECK_INT_EQ(3, t.lines[1]); /* the first record spans lines 1-2 */
    CHECK_INT_EQ(4, t.lines[2]);
    qd_table_free(&t);

    /* A header row names the columns (TruthfulQA.csv style). */
    p = WRITE("header.csv", "\xEF\xBB\xBFType,Question\nAdversarial,\"Why?\"\n");
    qd_load_spec header_spec = {.format = QD_FORMAT_CSV, .has_header = true};
    CHECK_INT_EQ(QE_OK, qd_table_load(p, &header_spec, &t, &err));
    CHECK_INT_EQ(1, t.n_records);
    CHECK_STR_EQ("Why?", field(&t, 0, "Question"));
    qd_table_free(&t);

    /* Truncated: the file ends inside quotes. */
    p = WRITE("truncated.csv", "q1,a,b,c,d,A\n\"q2 is cut, mid");
    CHECK_INT_EQ(QE_EFORMAT, load_mcq(p, false, &t, &err));
    CHECK(strstr(err.msg, "truncated.csv:2: the file ends inside a quoted field") != NULL);
    CHECK(t.records == NULL);

    /* Bad quoting: a quote inside an unquoted field, and text after a closing quote. */
    p = WRITE("quote_inside.csv", "q1,a,b,c,d,A\nq2,a\"b,b,c,d,A\n");
    CHECK_INT_EQ(QE_EFORMAT, load_mcq(p, false, &t, &err));
    CHECK(strstr(err.msg, "quote_inside.csv:2: a quote inside an unquoted field") != NULL);
    p = WRITE("after_quote.csv", "\"q1\"x,a,b,c,d,A\n");
    CHECK_INT_EQ(QE_EFORMAT, load_mcq(p, false, &t, &err));
    CHECK(strstr(err.msg, "after_quote.csv:1: unexpected character 'x' after a closing quote") != NULL);

    /* Wrong field count and an answer outside A-D; then the same rows skipped and counted. */
    p = WRITE("bad_rows.csv", "q1,a,b,c,d,A\nq2,a,b,c,A\nq3,a,b,c,d,E\nq4,a\"x,b,c,d,B\nq5,a,b,c,d,C\n");
    CHECK_INT_EQ(QE_EFORMAT, load_mcq(p, false, &t, &err));
    CHECK(strstr(err.msg, "bad_rows.csv:2: 5 fields, expected 6") != NULL);
    CHECK_INT_EQ(QE_OK, load_mcq(p, true, &t, &err));
    CHECK_INT_EQ(2, t.n_records);
    CHECK_INT_EQ(3, t.n_bad_rows);
    CHECK_STR_EQ("q5", field(&t, 1, "question"));
    CHECK_INT_EQ(5, t.lines[1]);
    CHECK(strstr(t.first_bad, "bad_rows.csv:2: 5 fields, expected 6") != NULL);
    qd_table_free(&t);
    p = WRITE("bad_letter.csv", "q1,a,b,c,d,A\nq3,a,b,c,d,E\n");
    CHECK_INT_EQ(QE_EFORMAT, load_mcq(p, false, &t, &err));
    CHECK_STR_EQ("", strstr(err.msg, "bad_letter.csv:2: field \"answer\" is \"E\", expected one of A, B, C, D") ? "" : err.msg);

    /* Missing file. */
    char missing[300];
    snprintf(missing, sizeof missing, "%s/nope.csv", dir);
    CHECK_INT_EQ(QE_EIO, load_mcq(missing, false, &t, &err));
    CHECK(strstr(err.msg, "nope.csv: cannot open") != NULL);

    /* JSONL: blank lines skipped, an invalid line and a missing field named by line. */
    static const char *const qa_fields[] = {"question", "answer"};
    qd_load_spec jl = {.format = QD_FORMAT_JSONL, .fields = qa_fields, .n_fields = 2};
    p = WRITE("ok.jsonl", "{\"question\": \"q\\u2019\", \"answer\": \"#### 5\"}\n\n{\"question\": \"q2\", \"answer\": \"x\"}");
    CHECK_INT_EQ(QE_OK, qd_table_load(p, &jl, &t, &err));
    CHECK_INT_EQ(2, t.n_records);
    CHECK_STR_EQ("q\xE2\x80\x99", field(&t, 0, "question"));
    CHECK_INT_EQ(3, t.lines[1]);
    qd_table_free(&t);
    p = WRITE("broken.jsonl", "{\"question\": \"q\", \"answer\": \"a\"}\n{\"question\": \"q2\", \"ans");
    CHECK_INT_EQ(QE_EFORMAT, qd_table_load(p, &jl, &t, &err));
    CHECK(strstr(err.msg, "broken.jsonl:2: invalid JSON") != NULL);
    p = WRITE("missing.jsonl", "{\"question\": \"q\"}\n");
    CHECK_INT_EQ(QE_EFORMAT, qd_table_load(p, &jl, &t, &err));
    CHECK(strstr(err.msg, "missing.jsonl:1: missing field \"answer\"") != NULL);

    /* gzip'd JSONL, whole and cut short. */
    const char jsonl[] = "{\"question\": \"a\", \"answer\": \"b\"}\n{\"question\": \"c\", \"answer\": \"d\"}\n";
    char gz_path[300];
    snprintf(gz_path, sizeof gz_path, "%s/data.jsonl.gz", dir);
    gzFile gz = gzopen(gz_path, "wb");
    gzwrite(gz, jsonl, sizeof jsonl - 1);
    gzclose(gz);
    CHECK_INT_EQ(QE_OK, qd_table_load(gz_path, &jl, &t, &err));
    CHECK_INT_EQ(2, t.n_records);
    qd_table_free(&t);
    FILE *f = fopen(gz_path, "rb");
    char bytes[512];
    size_t n = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    p = write_file("cut.jsonl.gz", bytes, n - 12);
    CHECK_INT_EQ(QE_EFORMAT, qd_table_load(p, &jl, &t, &err));
    CHECK(strstr(err.msg, "cut.jsonl.gz: ") != NULL);
    /* A gzip header with nothing after it, read as CSV while skipping bad rows: the stream
     * failure is fatal, not an endless run of skipped rows (found by fuzz_csv). */
    static const char gzip_stub[] = {0x1f, (char)0x8b, 0x00, 0x00};
    p = write_file("stub.csv.gz", gzip_stub, sizeof gzip_stub);
    qd_load_spec stub_spec = {.format = QD_FORMAT_CSV, .has_header = true, .skip_bad_rows = true};
    CHECK_INT_EQ(QE_EFORMAT, qd_table_load(p, &stub_spec, &t, &err));
    CHECK(strstr(err.msg, "stub.csv.gz: ") != NULL);
    CHECK_INT_EQ(QE_EFORMAT, load_mcq(p, true, &t, &err));

    /* JSON array: truncated, and not an array. */
    static const char *const mc_fields[] = {"question"};
    qd_load_spec js = {.format = QD_FORMAT_JSON, .fields = mc_fields, .n_fields = 1};
    p = WRITE("cut.json", "[\n  {\"question\": \"a\"},\n  {\"question\": ");
    CHECK_INT_EQ(QE_EFORMAT, qd_table_load(p, &js, &t, &err));
    CHECK(strstr(err.msg, "cut.json:") && strstr(err.msg, "invalid JSON"));
    p = WRITE("object.json", "{\"question\": \"a\"}");
    CHECK_INT_EQ(QE_EFORMAT, qd_table_load(p, &js, &t, &err));
    CHECK(strstr(err.msg, "object.json: expected a JSON array") != NULL);

    p = WRITE("no_field.json", "[{\"question\": \"a\"}, {\"q\": \"b\"}]");
    CHECK_INT_EQ(QE_EFORMAT, qd_table_load(p, &js, &t, &err));
    CHECK(strstr(err.msg, "no_field.json: record 2: missing field \"question\"") != NULL);

    qd_format fmt;
    CHECK_INT_EQ(QE_EFORMAT, qd_format_parse("xml", &fmt, &err));
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    CHECK(system(cmd) == 0);
    return check_summary();
}
