#include "qd_source.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

struct qd_source {
    gzFile gz;
    char *path;
    unsigned char buf[1 << 16];
    int n_buf, pos;           /* bytes in buf, next byte to hand out */
    bool at_eof, failed;
    char *line;               /* next_line's growable buffer */
    size_t line_cap;
    long line_no;
};

qe_status qd_source_open(const char *path, qd_source **out, qe_error *err)
{
    *out = NULL;
    qd_source *src = calloc(1, sizeof *src);
    if (!src || !(src->path = strdup(path))) {
        free(src);
        return qe_fail(err, QE_ENOMEM, "%s: out of memory", path);
    }
    errno = 0;
    src->gz = gzopen(path, "rb");
    if (!src->gz) {
        qe_fail(err, QE_EIO, "%s: cannot open: %s", path, errno ? strerror(errno) : "gzopen failed");
        qd_source_close(src);
        return QE_EIO;
    }
    *out = src;
    return QE_OK;
}

void qd_source_close(qd_source *src)
{
    if (!src)
        return;
    if (src->gz)
        gzclose(src->gz);
    free(src->line);
    free(src->path);
    free(src);
}

const char *qd_source_path(const qd_source *src) { return src->path; }
bool qd_source_failed(const qd_source *src) { return src->failed; }

static bool refill(qd_source *src, qe_error *err)
{
    if (src->at_eof || src->failed)
        return false;
    int n = gzread(src->gz, src->buf, sizeof src->buf);
    if (n < 0) {
        int code;
        const char *msg = gzerror(src->gz, &code);
        qe_fail(err, QE_EFORMAT, "%s: read failed: %s", src->path, msg);
        src->failed = true;
        return false;
    }
    if (n == 0) {
        /* zlib reports a gzip stream cut short only through gzerror after the last read. */
        int code;
        const char *msg = gzerror(src->gz, &code);
        if (code != Z_OK && code != Z_STREAM_END) {
            qe_fail(err, QE_EFORMAT, "%s: truncated or corrupt: %s", src->path, msg);
            src->failed = true;
            return false;
        }
        src->at_eof = true;
        return false;
    }
    src->n_buf = n;
    src->pos = 0;
    return true;
}

int qd_source_getc(qd_source *src, qe_error *err)
{
    if (src->pos >= src->n_buf && !refill(src, err))
        return -1;
    return src->buf[src->pos++];
}

static bool grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return true;
    size_t cap2 = *cap ? *cap : 256;
    while (cap2 < need)
        cap2 *= 2;
    char *p = realloc(*buf, cap2);
    if (!p)
        return false;
    *buf = p;
    *cap = cap2;
    return true;
}

qe_status qd_source_next_line(qd_source *src, char **line, size_t *n_bytes, long *line_no, qe_error *err)
{
    *line = NULL;
    *n_bytes = 0;
    size_t n = 0;
    bool any = false;
    for (;;) {
        if (src->pos >= src->n_buf && !refill(src, err)) {
            if (src->failed)
                return err ? err->code : QE_EFORMAT;
            break;
        }
        any = true;
        unsigned char *start = src->buf + src->pos;
        unsigned char *nl = memchr(start, '\n', (size_t)(src->n_buf - src->pos));
        size_t take = nl ? (size_t)(nl - start) : (size_t)(src->n_buf - src->pos);
        if (!grow(&src->line, &src->line_cap, n + take + 1))
            return qe_fail(err, QE_ENOMEM, "%s: out of memory reading line %ld", src->path, src->line_no + 1);
        memcpy(src->line + n, start, take);
        n += take;
        src->pos += (int)take + (nl ? 1 : 0);
        if (nl)
            break;
    }
    if (!any && n == 0)
        return QE_OK;
    src->line[n] = '\0';
    *line = src->line;
    *n_bytes = n;
    *line_no = ++src->line_no;
    return QE_OK;
}

qe_status qd_source_read_all(qd_source *src, char **text, size_t *n_bytes, qe_error *err)
{
    char *out = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (src->pos >= src->n_buf && !refill(src, err)) {
            if (src->failed) {
                free(out);
                return err ? err->code : QE_EFORMAT;
            }
            break;
        }
        size_t take = (size_t)(src->n_buf - src->pos);
        if (!grow(&out, &cap, n + take + 1)) {
            free(out);
            return qe_fail(err, QE_ENOMEM, "%s: out of memory", src->path);
        }
        memcpy(out + n, src->buf + src->pos, take);
        n += take;
        src->pos = src->n_buf;
    }
    if (!grow(&out, &cap, n + 1))
        return qe_fail(err, QE_ENOMEM, "%s: out of memory", src->path);
    out[n] = '\0';
    *text = out;
    *n_bytes = n;
    return QE_OK;
}
