#include "safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The reference implementation refuses headers above 100 MB; so do we. */
#define MAX_HEADER_BYTES (100u * 1000u * 1000u)

struct qe_safetensors {
    char *path;
    void *map;                  /* mmap'd file, or NULL when parsed from borrowed bytes */
    size_t map_bytes;
    int n_tensors;
    qe_tensor_view *tensors;    /* [n_tensors] sorted by data offset */
    const qe_tensor_view **by_name; /* [n_tensors] sorted by name, for lookup */
    char *names;                /* all names, NUL-separated */
};

/* A JSON number that is a non-negative integer exactly representable in a double. */
static int json_uint(const cJSON *item, uint64_t *out)
{
    if (!cJSON_IsNumber(item))
        return -1;
    double v = item->valuedouble;
    if (!(v >= 0 && v <= 9007199254740992.0) || floor(v) != v)
        return -1;
    *out = (uint64_t)v;
    return 0;
}

static int compare_offsets(const void *a, const void *b)
{
    const qe_tensor_view *x = a, *y = b;
    const char *px = x->data, *py = y->data;
    if (px != py)
        return px < py ? -1 : 1;
    return x->n_bytes < y->n_bytes ? -1 : x->n_bytes > y->n_bytes;
}
static int compare_names(const void *a, const void *b)
{
    return strcmp((*(const qe_tensor_view *const *)a)->name, (*(const qe_tensor_view *const *)b)->name);
}

static qe_status parse_tensor(const char *path, const cJSON *entry, const unsigned char *data,
                              uint64_t data_bytes, qe_tensor_view *t, qe_error *err)
{
    const char *name = entry->string;
    if (!cJSON_IsObject(entry))
        return qe_fail(err, QE_EFORMAT, "%s: tensor '%s': header entry is not an object", path, name);
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(entry, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(entry, "shape");
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(entry, "data_offsets");
    if (!cJSON_IsString(dtype))
        return qe_fail(err, QE_EFORMAT, "%s: tensor '%s': missing or non-string \"dtype\"", path, name);
    int dt = qe_dtype_from_name(dtype->valuestring);
    if (dt < 0)
        return qe_fail(err, QE_EFORMAT, "%s: tensor '%s': unknown dtype \"%s\"", path, name, dtype->valuestring);
    t->dtype = (qe_dtype)dt;
    if (!cJSON_IsArray(shape))
        return qe_fail(err, QE_EFORMAT, "%s: tensor '%s': missing or non-array \"shape\"", path, name);
    int n_dims = cJSON_GetArraySize(shape);
    if (n_dims > QE_MAX_DIMS)
        return qe_fail(err, QE_EFORMAT, "%s: tensor '%s': %d dimensions, at most %d supported", path,
                       name, n_dims, QE_MAX_DIMS);
    t->n_dims = n_dims;
    uint64_t n_elements = 1;
    int overflow = 0;
    for (int d = 0; d < n_dims; d++) {
        uint64_t dim;
        if (json_uint(cJSON_GetArrayItem(shape, d), &dim) != 0 || dim > INT64_MAX)
            return qe_fail(err, QE_EFORMAT, "%s: tensor '%s': shape[%d] is not a non-negative integer",
                           path, name, d);
        t->shape[d] = (int64_t)dim;
        if (dim && n_elements > UINT64_MAX / dim)
            overflow = 1;
        n_elements *= dim;
    }
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2)
        return qe_fail(err, QE_EFORMAT, "%s: tensor '%s': \"data_offsets\" is not [begin, end]", path, name);
    uint64_t begin, end;
    if (json_uint(cJSON_GetArrayItem(offsets, 0), &begin) || json_uint(cJSON_GetArrayItem(offsets, 1), &end))
        return qe_fail(err, QE_EFORMAT, "%s: tensor '%s': data_offsets are not non-negative integers", path, name);
    if (begin > end)
        return qe_fail(err, QE_EFORMAT, "%s: tensor '%s': data_offsets [%llu, %llu] end before they begin",
                       path, name, (unsigned long long)begin, (unsigned long long)end);
    if (end > data_bytes)
        return qe_fail(err, QE_EFORMAT,
                       "%s: tensor '%s': data_offsets [%llu, %llu] run past the %llu-byte data region",
                       path, name, (unsigned long long)begin, (unsigned long long)end,
                       (unsigned long long)data_bytes);
    size_t elem = qe_dtype_size(t->dtype);
    if (overflow || n_elements > UINT64_MAX / elem || n_elements * elem != end - begin)
        return qe_fail(err, QE_EFORMAT,
                       "%s: tensor '%s': shape holds %llu elements of %s (%zu bytes each) but data_offsets "
                       "span %llu bytes",
                       path, name, (unsigned long long)n_elements, qe_dtype_name(t->dtype), elem,
                       (unsigned long long)(end - begin));
    t->n_elements = n_elements;
    t->data = data + begin;
    t->n_bytes = (size_t)(end - begin);
    return QE_OK;
}

static qe_status parse_header(qe_safetensors *st, const unsigned char *bytes, size_t n_bytes, qe_error *err)
{
    const char *path = st->path;
    if (n_bytes < 8)
        return qe_fail(err, QE_EFORMAT, "%s: truncated: %zu bytes, the 8-byte header length is missing",
                       path, n_bytes);
    uint64_t header_bytes = 0;
    for (int i = 7; i >= 0; i--)
        header_bytes = header_bytes << 8 | bytes[i];
    if (header_bytes > n_bytes - 8)
        return qe_fail(err, QE_EFORMAT, "%s: header length %llu runs past the end of the %zu-byte file",
                       path, (unsigned long long)header_bytes, n_bytes);
    if (header_bytes > MAX_HEADER_BYTES)
        return qe_fail(err, QE_EFORMAT, "%s: header length %llu exceeds the %u-byte limit", path,
                       (unsigned long long)header_bytes, MAX_HEADER_BYTES);
    const unsigned char *data = bytes + 8 + header_bytes;
    uint64_t data_bytes = n_bytes - 8 - header_bytes;

    cJSON *root = cJSON_ParseWithLength((const char *)bytes + 8, (size_t)header_bytes);
    if (!root)
        return qe_fail(err, QE_EFORMAT, "%s: header (%llu bytes) is not valid JSON", path,
                       (unsigned long long)header_bytes);
    qe_status rc = QE_OK;
    if (!cJSON_IsObject(root)) {
        rc = qe_fail(err, QE_EFORMAT, "%s: header is not a JSON object", path);
        goto out;
    }
    int n = 0;
    size_t names_bytes = 0;
    for (const cJSON *e = root->child; e; e = e->next)
        if (strcmp(e->string, "__metadata__")) {
            n++;
            names_bytes += strlen(e->string) + 1;
        }
    st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
    st->by_name = calloc(n ? n : 1, sizeof *st->by_name);
    st->names = malloc(names_bytes ? names_bytes : 1);
    if (!st->tensors || !st->by_name || !st->names) {
        rc = qe_fail(err, QE_ENOMEM, "%s: out of memory for %d tensor entries", path, n);
        goto out;
    }
    char *name_at = st->names;
    for (const cJSON *e = root->child; e; e = e->next) {
        if (!strcmp(e->string, "__metadata__")) {
            if (!cJSON_IsObject(e)) {
                rc = qe_fail(err, QE_EFORMAT, "%s: \"__metadata__\" is not an object", path);
                goto out;
            }
            continue;
        }
        qe_tensor_view *t = &st->tensors[st->n_tensors];
        if ((rc = parse_tensor(path, e, data, data_bytes, t, err)) != QE_OK)
            goto out;
        size_t len = strlen(e->string) + 1;
        memcpy(name_at, e->string, len);
        t->name = name_at;
        t->file_path = st->path;
        name_at += len;
        st->n_tensors++;
    }
    qsort(st->tensors, st->n_tensors, sizeof *st->tensors, compare_offsets);
    for (int i = 1; i < st->n_tensors; i++) {
        const qe_tensor_view *a = &st->tensors[i - 1], *b = &st->tensors[i];
        if ((const char *)a->data + a->n_bytes > (const char *)b->data && b->n_bytes && a->n_bytes) {
            rc = qe_fail(err, QE_EFORMAT, "%s: tensors '%s' [%td, %td) and '%s' [%td, %td) overlap", path,
                         a->name, (const unsigned char *)a->data - data,
                         (const unsigned char *)a->data - data + (ptrdiff_t)a->n_bytes, b->name,
                         (const unsigned char *)b->data - data,
                         (const unsigned char *)b->data - data + (ptrdiff_t)b->n_bytes);
            goto out;
        }
    }
    for (int i = 0; i < st->n_tensors; i++)
        st->by_name[i] = &st->tensors[i];
    qsort(st->by_name, st->n_tensors, sizeof *st->by_name, compare_names);
    for (int i = 1; i < st->n_tensors; i++)
        if (!strcmp(st->by_name[i - 1]->name, st->by_name[i]->name)) {
            rc = qe_fail(err, QE_EFORMAT, "%s: tensor '%s' appears twice in the header", path,
                         st->by_name[i]->name);
            goto out;
        }
out:
    cJSON_Delete(root);
    return rc;
}

qe_status qe_safetensors_parse(const char *path, const void *bytes, size_t n_bytes, qe_safetensors **out,
                               qe_error *err)
{
    *out = NULL;
    qe_safetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(path))) {
        free(st);
        return qe_fail(err, QE_ENOMEM, "%s: out of memory", path);
    }
    qe_status rc = parse_header(st, bytes, n_bytes, err);
    if (rc != QE_OK) {
        qe_safetensors_close(st);
        return rc;
    }
    *out = st;
    return QE_OK;
}

qe_status qe_safetensors_open(const char *path, qe_safetensors **out, qe_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qe_fail(err, QE_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return qe_fail(err, QE_EIO, "%s: not a regular file", path);
    }
    size_t n_bytes = (size_t)sb.st_size;
    void *map = NULL;
    if (n_bytes > 0) {
        map = mmap(NULL, n_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            return qe_fail(err, QE_EIO, "%s: cannot map %zu bytes: %s", path, n_bytes, strerror(e));
        }
    }
    close(fd);
    static const unsigned char empty[1];
    qe_status rc = qe_safetensors_parse(path, map ? map : empty, n_bytes, out, err);
    if (rc != QE_OK) {
        if (map)
            munmap(map, n_bytes);
        return rc;
    }
    (*out)->map = map;
    (*out)->map_bytes = n_bytes;
    return QE_OK;
}

void qe_safetensors_close(qe_safetensors *st)
{
    if (!st)
        return;
    if (st->map)
        munmap(st->map, st->map_bytes);
    free(st->tensors);
    free(st->by_name);
    free(st->names);
    free(st->path);
    free(st);
}

int qe_safetensors_count(const qe_safetensors *st) { return st->n_tensors; }

const qe_tensor_view *qe_safetensors_at(const qe_safetensors *st, int i)
{
    return i >= 0 && i < st->n_tensors ? &st->tensors[i] : NULL;
}

const qe_tensor_view *qe_safetensors_find(const qe_safetensors *st, const char *name)
{
    int lo = 0, hi = st->n_tensors - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const qe_tensor_view *t = st->by_name[mid];
        int c = strcmp(name, t->name);
        if (c == 0)
            return t;
        if (c < 0)
            hi = mid - 1;
        else
            lo = mid + 1;
    }
    return NULL;
}

const char *qe_safetensors_path(const qe_safetensors *st) { return st->path; }

_Static_assert(sizeof ((qe_tensor_data *)0)->shape == sizeof ((qe_tensor_view *)0)->shape,
               "qe_tensor_data holds as many dimensions as the reader");

bool qe_safetensors_get(const qe_safetensors *st, const char *name, qe_tensor_data *out)
{
    const qe_tensor_view *t = qe_safetensors_find(st, name);
    if (!t)
        return false;
    *out = (qe_tensor_data){.dtype = qe_dtype_name(t->dtype), .n_dims = t->n_dims, .data = t->data,
                            .n_bytes = t->n_bytes};
    memcpy(out->shape, t->shape, sizeof out->shape);
    return true;
}
