/* `qeval runs` and `qeval merge` as a user meets them: output lines, exit codes, messages. */
#include <fcntl.h>
#include <unistd.h>

#include "check.h"
#include "cli.h"
#include "store.h"

static char dir[256], out_path[512], err_path[512];

/* Runs a command in-process with stdout and stderr captured; returns its exit code. */
static int capture(int (*cmd)(int, char **), int argc, char **argv, char *out, size_t cap)
{
    fflush(stdout);
    fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    int fd = open(out_path, O_CREAT | O_TRUNC | O_WRONLY, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
    int rc = cmd(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    FILE *f = fopen(out_path, "rb");
    size_t n = f ? fread(out, 1, cap - 1, f) : 0;
    out[n] = 0;
    if (f)
        fclose(f);
    return rc;
}

static void make_db(const char *path, const char *model_sha256, int first_doc)
{
    qe_error err = {0};
    qh_store *s = NULL;
    if (qh_store_open(path, NULL, &s, &err) != QE_OK)
        return;
    qh_run info = {.model_path = "/models/stories260K", .model_sha256 = model_sha256};
    int64_t id = 0;
    qh_store_create_run(s, &info, &id, &err);
    qh_variant_row v[] = {{id, "fp32", "cpu", 1, NAN, -1, -1, -1, -1, -1, NULL, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1},
                          {id, "nf4", "cpu", 1, NAN, -1, -1, -1, -1, -1, NULL, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1}};
    qh_store_put_variants(s, v, 2, &err);
    for (int i = 0; i < 3; i++) {
        qh_sample_row row = {id, "fp32", "gsm8k", first_doc + i, NULL, NULL, NULL, NULL, NULL, NAN, NULL};
        qh_store_put_samples(s, &row, 1, &err);
    }
    qh_store_finish_run(s, id, QH_RUN_COMPLETE, NULL, &err);
    qh_store_close(s);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/qeval_cmd_runs_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return 1;
    snprintf(out_path, sizeof out_path, "%s/out.txt", dir);
    snprintf(err_path, sizeof err_path, "%s/notes.txt", dir);
    char a[512], b[512], all[512], text[8192];
    snprintf(a, sizeof a, "%s/a.db", dir);
    snprintf(b, sizeof b, "%s/b.db", dir);
    snprintf(all, sizeof all, "%s/all.db", dir);
    make_db(a, "m", 0);
    make_db(b, "m", 3);

    char *runs_a[] = {"runs", "--db", a};
    CHECK_INT_EQ(0, capture(qh_cmd_runs, 3, runs_a, text, sizeof text));
    CHECK(strstr(text, "ID    STATUS") == text);
    CHECK(strstr(text, "\n1     complete ") != NULL);
    CHECK(strstr(text, " 3        fp32,nf4             /models/stories260K\n") != NULL);

    char *merge[] = {"merge", a, b, "-o", all};
    CHECK_INT_EQ(0, capture(qh_cmd_merge, 5, merge, text, sizeof text));
    CHECK(strstr(text, "merged 2 shard files into") != NULL);
    char *runs_all[] = {"runs", "--db", all};
    CHECK_INT_EQ(0, capture(qh_cmd_runs, 3, runs_all, text, sizeof text));
    CHECK(strstr(text, " 6        fp32,nf4 ") != NULL);

    FILE *f = fopen(err_path, "w");
    fputs("not a database\n", f);
    fclose(f);
    char *runs_text[] = {"runs", "--db", err_path};
    CHECK_INT_EQ(1, capture(qh_cmd_runs, 3, runs_text, text, sizeof text));
    CHECK(strstr(text, "qeval: ") == text && strstr(text, "not a qeval results file") != NULL);
    char *runs_bad[] = {"runs", "--frobnicate"};
    CHECK_INT_EQ(2, capture(qh_cmd_runs, 2, runs_bad, text, sizeof text));
    char *merge_bad[] = {"merge", a};
    CHECK_INT_EQ(2, capture(qh_cmd_merge, 2, merge_bad, text, sizeof text));
    char *merge_again[] = {"merge", a, b, "-o", all};
    CHECK_INT_EQ(2, capture(qh_cmd_merge, 5, merge_again, text, sizeof text));
    CHECK(strstr(text, "already exists") != NULL);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (check_n_failed == 0 && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
