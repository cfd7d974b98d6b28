/* Merging shard files: samples copied whole, aggregates pooled exactly (expected values
 * computed in Python from the per-document outcomes), overlaps and mismatches refused. */
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "store.h"

static char dir[256];

static const char *path_in(const char *name, char *buf)
{
    snprintf(buf, 512, "%s/%s", dir, name);
    return buf;
}

static qh_store *make_shard(const char *path, const char *model_sha256, const int *outcomes, int first_doc,
                            int n_docs)
{
    qe_error err = {0};
    qh_store *s = NULL;
    if (qh_store_open(path, NULL, &s, &err) != QE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return NULL;
    }
    qh_run info = {.model_path = "/m", .model_sha256 = model_sha256, .tasks_json = "{\"t\":1}",
                   .options_json = "{\"shard\":1}"};
    int64_t run_id = 0;
    CHECK_INT_EQ(QE_OK, qh_store_create_run(s, &info, &run_id, &err));
    for (int i = 0; i < n_docs; i++) {
        char outcome[32];
        snprintf(outcome, sizeof outcome, "{\"acc\":%d}", outcomes[i]);
        qh_sample_row row = {run_id, "fp32", "t", first_doc + i, "h", "A", "[]", "A", outcome, 1.0, "Q?"};
        CHECK_INT_EQ(QE_OK, qh_store_put_samples(s, &row, 1, &err));
    }
    return s;
}

static void fill_shard_a(qh_store *s)
{
    qe_error err = {0};
    qh_variant_row v = {1, "fp32", "cpu", 1.0, NAN, 4000, 4100, -1, 100, -1, "measured", -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
    qh_task_result_row r = {1, "fp32", "t", "acc", 0.6, 0.24494897427831777, 5, 1, 1, "3.0", 0};
    qh_fidelity_row f = {1, "nf4", "t", "fp32", 5, 0.1, 0.3, 0.8, 0.2, 0.2};
    qh_perf_row p = {1, "fp32", "t", 10, 1000, 100, 500.0, 50.0, 3.0, 6.0, 4.0};
    qh_cache_entry c = {"m1", "fp32", "req-a", "{\"a\":1}"};
    CHECK_INT_EQ(QE_OK, qh_store_put_variants(s, &v, 1, &err));
    CHECK_INT_EQ(QE_OK, qh_store_put_task_results(s, &r, 1, &err));
    CHECK_INT_EQ(QE_OK, qh_store_put_fidelity(s, &f, 1, &err));
    CHECK_INT_EQ(QE_OK, qh_store_put_perf(s, &p, 1, &err));
    CHECK_INT_EQ(QE_OK, qh_store_cache_put(s, &c, 1, &err));
    CHECK_INT_EQ(QE_OK, qh_store_finish_run(s, 1, QH_RUN_COMPLETE, NULL, &err));
}

static void fill_shard_b(qh_store *s)
{
    qe_error err = {0};
    qh_variant_row v = {1, "fp32", "cpu", 2.0, NAN, 4000, 4100, -1, 90, -1, "measured", -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
    qh_task_result_row r = {1, "fp32", "t", "acc", 2.0 / 3.0, 1.0 / 3.0, 3, 2, 1, "3.0", 0};
    qh_fidelity_row f = {1, "nf4", "t", "fp32", 3, 0.2, 0.5, 2.0 / 3.0, 0.1, 1.0 / 3.0};
    qh_perf_row p = {1, "fp32", "t", 6, 3000, 300, 1000.0, 100.0, 2.0, 5.0, 6.0};
    qh_cache_entry c = {"m1", "fp32", "req-b", "{\"b\":2}"};
    CHECK_INT_EQ(QE_OK, qh_store_put_variants(s, &v, 1, &err));
    CHECK_INT_EQ(QE_OK, qh_store_put_task_results(s, &r, 1, &err));
    CHECK_INT_EQ(QE_OK, qh_store_put_fidelity(s, &f, 1, &err));
    CHECK_INT_EQ(QE_OK, qh_store_put_perf(s, &p, 1, &err));
    CHECK_INT_EQ(QE_OK, qh_store_cache_put(s, &c, 1, &err));
    CHECK_INT_EQ(QE_OK, qh_store_finish_run(s, 1, QH_RUN_INTERRUPTED, NULL, &err));
}

/* A run of the described build and options, no samples: for the merge's refusals. */
static void make_described_run(const char *name, const char *commit, const char *options_json, char *path)
{
    path_in(name, path);
    qe_error err = {0};
    qh_store *s = NULL;
    CHECK_INT_EQ(QE_OK, qh_store_open(path, NULL, &s, &err));
    qh_run info = {.model_path = "/m", .model_sha256 = "m1", .tasks_json = "{\"t\":1}", .git_commit = commit,
                   .options_json = options_json};
    int64_t run_id = 0;
    CHECK_INT_EQ(QE_OK, qh_store_create_run(s, &info, &run_id, &err));
    qh_store_close(s);
}

/* Shards of one run differ only in their shard, threads and cache options; the merge refuses
 * another build, other options, and an incomplete or repeated set of shards, naming the files. */
static void test_refusals(void)
{
    char s0[512], s1[512], s2[512], s1_threads[512], s1_limit[512], s1_build[512], s0_again[512], s1_of_4[512],
        out[512];
    make_described_run("s0.db", "abc", "{\"limit\":3,\"seed\":-1,\"shard\":\"0/3\",\"threads\":1}", s0);
    make_described_run("s1.db", "abc", "{\"limit\":3,\"seed\":-1,\"shard\":\"1/3\",\"threads\":1}", s1);
    make_described_run("s2.db", "abc", "{\"limit\":3,\"seed\":-1,\"shard\":\"2/3\",\"threads\":1}", s2);
    make_described_run("s1t.db", "abc", "{\"limit\":3,\"seed\":-1,\"shard\":\"1/3\",\"threads\":8,\"cache\":false}",
                       s1_threads);
    make_described_run("s1l.db", "abc", "{\"limit\":5,\"seed\":-1,\"shard\":\"1/3\",\"threads\":1}", s1_limit);
    make_described_run("s1b.db", "def", "{\"limit\":3,\"seed\":-1,\"shard\":\"1/3\",\"threads\":1}", s1_build);
    make_described_run("s0b.db", "abc", "{\"limit\":3,\"seed\":-1,\"shard\":\"0/3\",\"threads\":1}", s0_again);
    make_described_run("s1n.db", "abc", "{\"limit\":3,\"seed\":-1,\"shard\":\"1/4\",\"threads\":1}", s1_of_4);
    path_in("refused.db", out);
    qe_error err = {0};
    int64_t run_id = 0;

    const char *other_limit[] = {s0, s1_limit, s2};
    CHECK_INT_EQ(QE_EINVAL, qh_store_merge(other_limit, 3, out, &run_id, &err));
    CHECK(strstr(err.msg, s1_limit) && strstr(err.msg, "not shards of one run: option limit (3 vs 5) differs"));
    const char *other_build[] = {s0, s1_build, s2};
    CHECK_INT_EQ(QE_EINVAL, qh_store_merge(other_build, 3, out, &run_id, &err));
    CHECK(strstr(err.msg, "git_commit differs (abc vs def): another qeval build") != NULL);
    const char *missing[] = {s0, s2};
    CHECK_INT_EQ(QE_EINVAL, qh_store_merge(missing, 2, out, &run_id, &err));
    CHECK(strstr(err.msg, "shard 1/3 is missing") != NULL);
    const char *twice[] = {s0, s1, s0_again, s2};
    CHECK_INT_EQ(QE_EINVAL, qh_store_merge(twice, 4, out, &run_id, &err));
    CHECK(strstr(err.msg, s0_again) && strstr(err.msg, "are both shard 0/3"));
    const char *other_count[] = {s0, s1_of_4, s2};
    CHECK_INT_EQ(QE_EINVAL, qh_store_merge(other_count, 3, out, &run_id, &err));
    CHECK(strstr(err.msg, "is shard 1/4 but") != NULL);
    CHECK(access(out, F_OK) != 0);
    /* threads and cache may differ */
    const char *fine[] = {s2, s1_threads, s0};
    CHECK_INT_EQ(QE_OK, qh_store_merge(fine, 3, out, &run_id, &err));
    if (check_n_failed)
        fprintf(stderr, "last merge message: %s\n", err.msg);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/qeval_merge_XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        return 1;
    char a_path[512], b_path[512], c_path[512], d_path[512], out_path[512];
    path_in("a.db", a_path);
    path_in("b.db", b_path);
    path_in("c.db", c_path);
    path_in("d.db", d_path);
    path_in("all.db", out_path);
    static const int outcomes_a[] = {1, 0, 1, 1, 0}, outcomes_b[] = {1, 1, 0};
    qh_store *a = make_shard(a_path, "m1", outcomes_a, 0, 5);
    qh_store *b = make_shard(b_path, "m1", outcomes_b, 5, 3);
    qh_store *c = make_shard(c_path, "m1", outcomes_b, 4, 3); /* doc 4 is also in a */
    qh_store *d = make_shard(d_path, "other", outcomes_b, 5, 3);
    if (!a || !b || !c || !d)
        return 1;
    fill_shard_a(a);
    fill_shard_b(b);
    qh_store_close(c);
    qh_store_close(d);

    qe_error err = {0};
    int64_t run_id = 0;
    const char *overlapping[] = {a_path, c_path};
    CHECK_INT_EQ(QE_EINVAL, qh_store_merge(overlapping, 2, out_path, &run_id, &err));
    CHECK(strstr(err.msg, c_path) && strstr(err.msg, "doc_id=4") && strstr(err.msg, "already stored"));
    CHECK(access(out_path, F_OK) != 0); /* nothing written */
    const char *mismatched[] = {a_path, d_path};
    CHECK_INT_EQ(QE_EINVAL, qh_store_merge(mismatched, 2, out_path, &run_id, &err));
    CHECK(strstr(err.msg, "model_sha256 differs (m1 vs other)") != NULL);
    CHECK(access(out_path, F_OK) != 0);

    const char *shards[] = {a_path, b_path};
    CHECK_INT_EQ(QE_OK, qh_store_merge(shards, 2, out_path, &run_id, &err));
    CHECK_INT_EQ(QE_EINVAL, qh_store_merge(shards, 2, out_path, &run_id, &err)); /* never overwrites */
    CHECK(strstr(err.msg, "already exists") != NULL);

    qh_store *out = NULL;
    CHECK_INT_EQ(QE_OK, qh_store_open(out_path, NULL, &out, &err));
    if (!out)
        return check_summary();
    qh_run run, run_a;
    CHECK_INT_EQ(QE_OK, qh_store_get_run(out, run_id, &run, &err));
    CHECK_INT_EQ(QE_OK, qh_store_get_run(a, 1, &run_a, &err));
    CHECK_STR_EQ("interrupted", qh_run_status_name(run.status)); /* the worst of complete, interrupted */
    CHECK_STR_EQ(run_a.started_at, run.started_at);
    CHECK_STR_EQ("m1", run.model_sha256);
    char sources[1200];
    snprintf(sources, sizeof sources, "[\"%s\",\"%s\"]", a_path, b_path);
    CHECK_STR_EQ(sources, run.merged_from_json);
    qh_run_free(&run);
    qh_run_free(&run_a);

    int64_t *ids = NULL;
    size_t n = 0;
    CHECK_INT_EQ(QE_OK, qh_store_done_doc_ids(out, run_id, "fp32", "t", &ids, &n, &err));
    CHECK_INT_EQ(8, n);
    if (n == 8)
        CHECK(ids[0] == 0 && ids[7] == 7);
    free(ids);

    qh_task_result_row *r = NULL;
    CHECK_INT_EQ(QE_OK, qh_store_get_task_results(out, run_id, &r, &n, &err));
    CHECK_INT_EQ(1, n);
    if (n == 1) {
        CHECK_NEAR(0.625, r[0].value, 1e-12);
        CHECK_NEAR(0.18298126367784995, r[0].std_error, 1e-12); /* stdev of all 8 outcomes / sqrt(8) */
        CHECK_INT_EQ(8, r[0].n);
        CHECK_INT_EQ(3, r[0].n_truncated);
        CHECK_STR_EQ("3.0", r[0].task_version); /* the rule and shots go with the pooled score */
        CHECK_INT_EQ(0, r[0].num_fewshot);
    }
    qh_task_result_rows_free(r, n);
    qh_fidelity_row *f = NULL;
    CHECK_INT_EQ(QE_OK, qh_store_get_fidelity(out, run_id, &f, &n, &err));
    CHECK_INT_EQ(1, n);
    if (n == 1) {
        CHECK_INT_EQ(8, f[0].n_items);
        CHECK_NEAR(0.1375, f[0].kl_mean, 1e-12);
        CHECK(isnan(f[0].kl_p99));
        CHECK_NEAR(0.75, f[0].top1_agreement, 1e-12);
        CHECK_NEAR(0.1695582495781317, f[0].rms_delta_p, 1e-12);
        CHECK_NEAR(0.25, f[0].answer_changed_share, 1e-12);
    }
    qh_fidelity_rows_free(f, n);
    qh_perf_row *p = NULL;
    CHECK_INT_EQ(QE_OK, qh_store_get_perf(out, run_id, &p, &n, &err));
    CHECK_INT_EQ(1, n);
    if (n == 1) {
        CHECK_INT_EQ(16, p[0].n_requests);
        CHECK_INT_EQ(4000, p[0].tokens_in);
        CHECK_NEAR(800.0, p[0].prefill_tok_s, 1e-9); /* 4000 tokens in 2 s + 3 s */
        CHECK_NEAR(80.0, p[0].decode_tok_s, 1e-9);
        CHECK(isnan(p[0].latency_p50_ms) && isnan(p[0].latency_p95_ms));
        CHECK_NEAR(10.0, p[0].wall_seconds, 1e-12);
    }
    qh_perf_rows_free(p, n);
    qh_variant_row *v = NULL;
    CHECK_INT_EQ(QE_OK, qh_store_get_variants(out, run_id, &v, &n, &err));
    CHECK_INT_EQ(1, n);
    if (n == 1) {
        CHECK_NEAR(2.0, v[0].load_seconds, 0);
        CHECK_INT_EQ(100, v[0].peak_rss_bytes);
        CHECK_INT_EQ(4100, v[0].hf_footprint_bytes);
        CHECK(isnan(v[0].quantize_seconds));
    }
    qh_variant_rows_free(v, n);
    char *cached = NULL;
    CHECK_INT_EQ(QE_OK, qh_store_cache_get(out, "m1", "fp32", "req-b", &cached, &err));
    CHECK_STR_EQ("{\"b\":2}", cached);
    free(cached);

    qh_store_close(out);
    qh_store_close(a);
    qh_store_close(b);
    test_refusals();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (check_n_failed == 0 && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
    return check_summary();
}
