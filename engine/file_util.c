#include "file_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

qe_status qe_read_file(const char *path, char **out, size_t *n_bytes, qe_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return qe_fail(err, QE_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return qe_fail(err, QE_EIO, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    char *buf = malloc(size + 1);
    if (!buf) {
        fclose(f);
        return qe_fail(err, QE_ENOMEM, "%s: out of memory for %zu bytes", path, size);
    }
    size_t got = fread(buf, 1, size, f);
    fclose(f);
    if (got != size) {
        free(buf);
        return qe_fail(err, QE_EIO, "%s: read %zu of %zu bytes", path, got, size);
    }
    buf[size] = 0;
    *out = buf;
    if (n_bytes)
        *n_bytes = size;
    return QE_OK;
}

bool qe_file_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

bool qe_is_directory(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

qe_status qe_path_join(char *buf, size_t buf_bytes, const char *dir, const char *name, qe_error *err)
{
    int n = snprintf(buf, buf_bytes, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= buf_bytes)
        return qe_fail(err, QE_EINVAL, "%s/%s: path longer than %zu bytes", dir, name, buf_bytes - 1);
    return QE_OK;
}
