#include "qd_manifest.h"

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qd_csv.h"
#include "qd_sha256.h"
#include "qd_source.h"
#include "qd_table.h"

extern char **environ;

const char *qd_data_dir(const char *option)
{
    if (option && *option)
        return option;
    const char *env = getenv("QEVAL_DATA");
    return env && *env ? env : "data";
}

void qd_manifest_free(qd_manifest *manifest)
{
    if (!manifest)
        return;
    free(manifest->entries);
    manifest->entries = NULL;
    manifest->n_entries = 0;
}

static qe_status copy_field(char *dst, size_t cap, const char *src, const char *path, long line, const char *name,
                            qe_error *err)
{
    if (!src || !*src)
        return qe_fail(err, QE_EFORMAT, "%s:%ld: empty column \"%s\"", path, line, name);
    if (strlen(src) >= cap)
        return qe_fail(err, QE_EFORMAT, "%s:%ld: column \"%s\" is longer than %zu bytes", path, line, name, cap - 1);
    strcpy(dst, src);
    return QE_OK;
}

qe_status qd_manifest_load(const char *tsv_path, qd_manifest *out, qe_error *err)
{
    memset(out, 0, sizeof *out);
    qd_source *src = NULL;
    qe_status rc = qd_source_open(tsv_path, &src, err);
    if (rc != QE_OK)
        return rc;
    bool seen_header = false;
    for (;;) {
        char *line;
        size_t n;
        long line_no;
        if ((rc = qd_source_next_line(src, &line, &n, &line_no, err)) != QE_OK || !line)
            break;
        if (line[0] == '#' || line[0] == '\0')
            continue;
        if (!seen_header) {
            seen_header = true;
            if (strncmp(line, "bench\tpath\tformat\trecords\tsha256\turl", 36) != 0) {
                rc = qe_fail(err, QE_EFORMAT, "%s:%ld: expected the header bench, path, format, records, sha256, url",
                             tsv_path, line_no);
                break;
            }
            continue;
        }
        char *cols[6];
        int n_cols = 0;
        for (char *p = line; n_cols < 6;) {
            cols[n_cols++] = p;
            char *tab = strchr(p, '\t');
            if (!tab)
                break;
            *tab = '\0';
            p = tab + 1;
        }
        if (n_cols != 6) {
            rc = qe_fail(err, QE_EFORMAT, "%s:%ld: %d columns, expected 6", tsv_path, line_no, n_cols);
            break;
        }
        qd_manifest_entry *e = realloc(out->entries, (size_t)(out->n_entries + 1) * sizeof *e);
        if (!e) {
            rc = qe_fail(err, QE_ENOMEM, "%s: out of memory", tsv_path);
            break;
        }
        out->entries = e;
        e = &out->entries[out->n_entries];
        memset(e, 0, sizeof *e);
        e->line = line_no;
        if ((rc = copy_field(e->bench, sizeof e->bench, cols[0], tsv_path, line_no, "bench", err)) ||
            (rc = copy_field(e->path, sizeof e->path, cols[1], tsv_path, line_no, "path", err)) ||
            (rc = copy_field(e->format, sizeof e->format, cols[2], tsv_path, line_no, "format", err)) ||
            (rc = copy_field(e->sha256, sizeof e->sha256, cols[4], tsv_path, line_no, "sha256", err)) ||
            (rc = copy_field(e->url, sizeof e->url, cols[5], tsv_path, line_no, "url", err)))
            break;
        char *end;
        e->records = strcmp(cols[3], "-") ? strtol(cols[3], &end, 10) : -1;
        if (e->records != -1 && (*end || e->records < 0)) {
            rc = qe_fail(err, QE_EFORMAT, "%s:%ld: records \"%s\" is not a count", tsv_path, line_no, cols[3]);
            break;
        }
        if (strlen(e->sha256) != 64 || strspn(e->sha256, "0123456789abcdef") != 64) {
            rc = qe_fail(err, QE_EFORMAT, "%s:%ld: sha256 must be 64 lowercase hex digits", tsv_path, line_no);
            break;
        }
        if (strstr(e->path, "..") || e->path[0] == '/') {
            rc = qe_fail(err, QE_EFORMAT, "%s:%ld: path \"%s\" must stay inside the data dir", tsv_path, line_no, e->path);
            break;
        }
        out->n_entries++;
    }
    qd_source_close(src);
    if (rc == QE_OK && !seen_header)
        rc = qe_fail(err, QE_EFORMAT, "%s: no header line", tsv_path);
    if (rc != QE_OK)
        qd_manifest_free(out);
    return rc;
}

static qe_status count_blocks(const char *path, long *n_records, qe_error *err)
{
    qd_source *src = NULL;
    qe_status rc = qd_source_open(path, &src, err);
    if (rc != QE_OK)
        return rc;
    long n = 0;
    bool in_block = false;
    for (;;) {
        char *line;
        size_t len;
        long line_no;
        if ((rc = qd_source_next_line(src, &line, &len, &line_no, err)) != QE_OK || !line)
            break;
        bool is_blank = strspn(line, " \t\r") == len;
        if (!is_blank && !in_block)
            n++;
        in_block = !is_blank;
    }
    qd_source_close(src);
    *n_records = n;
    return rc;
}

qe_status qd_count_records(const char *path, const char *format, long *n_records, qe_error *err)
{
    *n_records = 0;
    if (!strcmp(format, "blocks"))
        return count_blocks(path, n_records, err);
    qd_load_spec spec = {0};
    const char *table_format = format;
    if (!strcmp(format, "csv-header")) {
        table_format = "csv";
        spec.has_header = true;
    }
    qe_status rc = qd_format_parse(table_format, &spec.format, err);
    if (rc != QE_OK)
        return rc;
    if (spec.format == QD_FORMAT_CSV && !spec.has_header) {
        /* Column names are a task's business; here every row only needs the first row's width. */
        qd_csv *csv = NULL;
        if ((rc = qd_csv_open(path, &csv, err)) != QE_OK)
            return rc;
        int width = -1;
        for (;;) {
            char **fields;
            int n;
            if ((rc = qd_csv_next(csv, &fields, &n, err)) != QE_OK || n == 0)
                break;
            if (width < 0)
                width = n;
            if (n != width) {
                rc = qe_fail(err, QE_EFORMAT, "%s:%ld: %d fields, expected %d", path, qd_csv_line(csv), n, width);
                break;
            }
            (*n_records)++;
        }
        qd_csv_close(csv);
        return rc;
    }
    qd_table table;
    if ((rc = qd_table_load(path, &spec, &table, err)) != QE_OK)
        return rc;
    *n_records = table.n_records;
    qd_table_free(&table);
    return QE_OK;
}

/* Checks the file at path against entry; messages name the file as shown (a path, or the URL
 * a candidate download came from). */
static qe_status verify_file(const char *path, const char *shown, const qd_manifest_entry *entry, qe_error *err)
{
    char hex[65];
    qe_status rc = qd_sha256_file(path, hex, err);
    if (rc != QE_OK)
        return rc;
    if (strcmp(hex, entry->sha256) != 0)
        return qe_fail(err, QE_EFORMAT, "%s: sha256 %s, expected %s", shown, hex, entry->sha256);
    if (entry->records >= 0) {
        long n;
        if ((rc = qd_count_records(path, entry->format, &n, err)) != QE_OK)
            return rc;
        if (n != entry->records)
            return qe_fail(err, QE_EFORMAT, "%s: %ld records, expected %ld", shown, n, entry->records);
    }
    return QE_OK;
}

qe_status qd_verify_entry(const char *data_dir, const qd_manifest_entry *entry, qe_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", data_dir, entry->path);
    struct stat st;
    if (stat(path, &st) != 0)
        return qe_fail(err, QE_EIO, "%s: missing (%s); run `qeval data fetch %s`", path, strerror(errno), entry->bench);
    return verify_file(path, path, entry, err);
}

/* Runs argv (no shell) and returns its exit status, or -1 when it could not start. */
static int run_argv(char *const argv[])
{
    pid_t pid;
    if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
        return -1;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static qe_status make_parents(const char *path, qe_error *err)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return qe_fail(err, QE_EIO, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    return QE_OK;
}

/* curl url into dest; nothing is left at dest when it fails. */
static qe_status download(const char *url, const char *dest, qe_error *err)
{
    qe_status rc = make_parents(dest, err);
    if (rc != QE_OK)
        return rc;
    char *argv[] = {"curl", "--fail", "--silent", "--show-error", "--location", "--retry", "2",
                    "--connect-timeout", "20", "--output", (char *)dest, (char *)url, NULL};
    int status = run_argv(argv);
    if (status == 0)
        return QE_OK;
    unlink(dest);
    if (status < 0)
        return qe_fail(err, QE_EEXEC, "cannot run curl to download %s (is curl installed?)", url);
    return qe_fail(err, QE_EIO, "curl could not download %s (exit %d%s)", url, status,
                   status == 6 || status == 7 || status == 28 ? ": no network? qeval data fetch needs to be online" : "");
}

static qe_status copy_file(const char *from, const char *to, qe_error *err)
{
    qe_status rc = make_parents(to, err);
    if (rc != QE_OK)
        return rc;
    FILE *in = fopen(from, "rb");
    if (!in)
        return qe_fail(err, QE_EIO, "%s: not in the archive (%s)", from, strerror(errno));
    FILE *out = fopen(to, "wb");
    if (!out) {
        fclose(in);
        return qe_fail(err, QE_EIO, "%s: cannot write: %s", to, strerror(errno));
    }
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            break;
    bool failed = ferror(in) || ferror(out);
    fclose(in);
    if (fclose(out) != 0 || failed)
        return qe_fail(err, QE_EIO, "%s: write failed", to);
    return QE_OK;
}

qe_status qd_fetch(const char *data_dir, const qd_manifest *manifest, const char *bench,
                   void (*log)(const char *line, void *ctx), void *log_ctx, qe_error *err)
{
    char line[4600], archive_done[512] = "";
    char download_dir[4096];
    snprintf(download_dir, sizeof download_dir, "%s/.download", data_dir);
    int n_matched = 0;
    for (int i = 0; i < manifest->n_entries; i++) {
        const qd_manifest_entry *e = &manifest->entries[i];
        if (bench && strcmp(bench, e->bench) != 0)
            continue;
        n_matched++;
        qe_error check;
        if (qd_verify_entry(data_dir, e, &check) == QE_OK) {
            snprintf(line, sizeof line, "ok       %s", e->path);
            if (log)
                log(line, log_ctx);
            continue;
        }
        if (!strncmp(e->url, "derived:", 8)) {
            snprintf(line, sizeof line, "skipped  %s (not a download: taken from %s)", e->path, e->url + 8);
            if (log)
                log(line, log_ctx);
            continue;
        }
        /* The new file is checked beside its place and renamed in only when it matches, so a
         * corrupt or cut download never takes the place of what is there. */
        char dest[4096], candidate[4200];
        snprintf(dest, sizeof dest, "%s/%s", data_dir, e->path);
        snprintf(candidate, sizeof candidate, "%s.part", dest);
        qe_status rc;
        const char *bang = strchr(e->url, '!');
        if (bang) {
            char archive_url[512], archive_path[4200], extract_dir[4200], member_path[4700];
            snprintf(archive_url, sizeof archive_url, "%.*s", (int)(bang - e->url), e->url);
            snprintf(archive_path, sizeof archive_path, "%s/archive.tar", download_dir);
            snprintf(extract_dir, sizeof extract_dir, "%s/extract", download_dir);
            if (strcmp(archive_done, archive_url) != 0) {
                if ((rc = download(archive_url, archive_path, err)) != QE_OK)
                    return qe_fail_context(err, "fetch %s", e->bench);
                if ((rc = make_parents(extract_dir, err)) != QE_OK)
                    return rc;
                mkdir(extract_dir, 0777);
                char *argv[] = {"tar", "-xf", archive_path, "-C", extract_dir, NULL};
                if (run_argv(argv) != 0)
                    return qe_fail(err, QE_EEXEC, "fetch %s: tar could not unpack %s", e->bench, archive_path);
                snprintf(archive_done, sizeof archive_done, "%s", archive_url);
            }
            snprintf(member_path, sizeof member_path, "%s/%s", extract_dir, bang + 1);
            rc = copy_file(member_path, candidate, err);
        } else {
            rc = download(e->url, candidate, err);
        }
        if (rc != QE_OK) {
            unlink(candidate);
            return qe_fail_context(err, "fetch %s", e->bench);
        }
        if ((rc = verify_file(candidate, e->url, e, err)) != QE_OK) {
            unlink(candidate);
            return qe_fail_context(err, "fetch %s: refused a download that does not match the manifest, nothing "
                                   "written to %s", e->bench, dest);
        }
        if (rename(candidate, dest) != 0) {
            rc = qe_fail(err, QE_EIO, "%s: cannot rename into place: %s", dest, strerror(errno));
            unlink(candidate);
            return rc;
        }
        snprintf(line, sizeof line, "fetched  %s", e->path);
        if (log)
            log(line, log_ctx);
    }
    if (n_matched == 0)
        return qe_fail(err, QE_EINVAL, "no benchmark \"%s\" in the manifest (mmlu, gsm8k, humaneval, truthfulqa)",
                       bench ? bench : "");
    return QE_OK;
}

qe_status qd_manifest_use_mirror(qd_manifest *manifest, const char *base_url, qe_error *err)
{
    if (!strstr(base_url, "://"))
        return qe_fail(err, QE_EINVAL, "mirror \"%s\" is not a URL (such as http://127.0.0.1:8000 or file:///srv/mirror)",
                       base_url);
    size_t base_len = strlen(base_url);
    while (base_len > 0 && base_url[base_len - 1] == '/')
        base_len--;
    for (int i = 0; i < manifest->n_entries; i++) {
        qd_manifest_entry *e = &manifest->entries[i];
        const char *host_and_path = !strncmp(e->url, "https://", 8) ? e->url + 8
                                  : !strncmp(e->url, "http://", 7)  ? e->url + 7
                                                                    : NULL;
        if (!host_and_path)
            continue; /* derived: and file: sources are not on the network */
        char url[sizeof e->url];
        int n = snprintf(url, sizeof url, "%.*s/%s", (int)base_len, base_url, host_and_path);
        if (n < 0 || (size_t)n >= sizeof url)
            return qe_fail(err, QE_EINVAL, "mirror %s: the URL of %s would be longer than %zu bytes", base_url,
                           e->path, sizeof url - 1);
        memcpy(e->url, url, (size_t)n + 1);
    }
    return QE_OK;
}
