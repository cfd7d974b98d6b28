#include "gguf.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ggml_dequant.h"

/* Owned allocations hang off one list freed at close: the parse never has to unwind a
 * half-built tree by hand. */
typedef struct arena_block {
    struct arena_block *next;
    max_align_t data[];
} arena_block;

static void *arena_alloc(qe_gguf *g, size_t n_bytes)
{
    if (n_bytes > SIZE_MAX - sizeof(arena_block))
        return NULL;
    arena_block *b = calloc(1, sizeof(arena_block) + n_bytes);
    if (!b)
        return NULL;
    b->next = g->arena_;
    g->arena_ = b;
    return b->data;
}

typedef struct {
    qe_gguf *g;
    uint64_t pos;                 /* next byte to read */
    qe_error *err;
} cursor;

static uint64_t remaining(const cursor *c) { return c->g->file_bytes - c->pos; }

static qe_status need(cursor *c, uint64_t n_bytes, const char *what)
{
    if (n_bytes > remaining(c))
        return qe_fail(c->err, QE_EFORMAT, "%s: truncated: %s needs %llu bytes at offset %llu, only %llu remain",
                       c->g->path, what, (unsigned long long)n_bytes, (unsigned long long)c->pos,
                       (unsigned long long)remaining(c));
    return QE_OK;
}

static uint64_t load_le(const uint8_t *p, int n_bytes)
{
    uint64_t v = 0;
    for (int i = n_bytes - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static qe_status read_u32(cursor *c, const char *what, uint32_t *out)
{
    qe_status rc = need(c, 4, what);
    if (rc != QE_OK)
        return rc;
    *out = (uint32_t)load_le(c->g->file + c->pos, 4);
    c->pos += 4;
    return QE_OK;
}

static qe_status read_u64(cursor *c, const char *what, uint64_t *out)
{
    qe_status rc = need(c, 8, what);
    if (rc != QE_OK)
        return rc;
    *out = load_le(c->g->file + c->pos, 8);
    c->pos += 8;
    return QE_OK;
}

/* A length-prefixed string, copied with a NUL. The length is checked against the bytes left
 * before anything is allocated, so a stranger's 2^63 costs nothing. */
static qe_status read_string(cursor *c, const char *what, const char **out, uint64_t *out_len)
{
    uint64_t len;
    qe_status rc = read_u64(c, what, &len);
    if (rc != QE_OK)
        return rc;
    if (len > remaining(c))
        return qe_fail(c->err, QE_EFORMAT, "%s: %s: string length %llu at offset %llu runs past the end of the %llu-byte file",
                       c->g->path, what, (unsigned long long)len, (unsigned long long)(c->pos - 8),
                       (unsigned long long)c->g->file_bytes);
    char *s = arena_alloc(c->g, (size_t)len + 1);
    if (!s)
        return qe_fail(c->err, QE_ENOMEM, "%s: %s: no memory for a %llu-byte string", c->g->path, what,
                       (unsigned long long)len);
    memcpy(s, c->g->file + c->pos, (size_t)len);
    c->pos += len;
    *out = s;
    if (out_len)
        *out_len = len;
    return QE_OK;
}

static int scalar_bytes(uint32_t type)
{
    switch (type) {
    case QE_GGUF_UINT8: case QE_GGUF_INT8: case QE_GGUF_BOOL: return 1;
    case QE_GGUF_UINT16: case QE_GGUF_INT16: return 2;
    case QE_GGUF_UINT32: case QE_GGUF_INT32: case QE_GGUF_FLOAT32: return 4;
    case QE_GGUF_UINT64: case QE_GGUF_INT64: case QE_GGUF_FLOAT64: return 8;
    default: return 0;
    }
}

const char *qe_gguf_type_name(qe_gguf_type type)
{
    static const char *const names[] = {"UINT8", "INT8", "UINT16", "INT16", "UINT32", "INT32", "FLOAT32",
                                        "BOOL", "STRING", "ARRAY", "UINT64", "INT64", "FLOAT64"};
    return (unsigned)type < sizeof names / sizeof names[0] ? names[type] : "?";
}

static void decode_scalar(const uint8_t *p, qe_gguf_type type, qe_gguf_value *v)
{
    int n = scalar_bytes(type);
    uint64_t bits = load_le(p, n);
    switch (type) {
    case QE_GGUF_INT8: v->i64 = (int8_t)bits; break;
    case QE_GGUF_INT16: v->i64 = (int16_t)bits; break;
    case QE_GGUF_INT32: v->i64 = (int32_t)bits; break;
    case QE_GGUF_INT64: v->i64 = (int64_t)bits; break;
    case QE_GGUF_FLOAT32: { uint32_t b32 = (uint32_t)bits; float f; memcpy(&f, &b32, 4); v->f64 = f; break; }
    case QE_GGUF_FLOAT64: memcpy(&v->f64, &bits, 8); break;
    case QE_GGUF_BOOL: v->u64 = bits != 0; break;
    default: v->u64 = bits; break;
    }
}

static qe_status read_value(cursor *c, const char *key, uint32_t type, int depth, qe_gguf_value *v);

/* An array body: element type, count, items. The count is bounded by the bytes left divided
 * by the smallest encoding of one item, before any allocation. */
static qe_status read_array(cursor *c, const char *key, int depth, qe_gguf_value *v)
{
    if (depth >= QE_GGUF_MAX_ARRAY_DEPTH)
        return qe_fail(c->err, QE_EFORMAT, "%s: key '%s': arrays nested deeper than %d", c->g->path, key,
                       QE_GGUF_MAX_ARRAY_DEPTH);
    uint32_t elem_type;
    uint64_t n;
    qe_status rc;
    if ((rc = read_u32(c, "array element type", &elem_type)) != QE_OK ||
        (rc = read_u64(c, "array length", &n)) != QE_OK)
        return rc;
    v->elem_type = (qe_gguf_type)elem_type;
    v->n_items = n;
    int item_bytes = scalar_bytes(elem_type);
    if (item_bytes) {
        if (n > remaining(c) / (uint64_t)item_bytes)
            return qe_fail(c->err, QE_EFORMAT, "%s: key '%s': array of %llu %s runs past the end of the file",
                           c->g->path, key, (unsigned long long)n, qe_gguf_type_name(elem_type));
        v->raw_items = c->g->file + c->pos;
        c->pos += n * (uint64_t)item_bytes;
        return QE_OK;
    }
    uint64_t min_item_bytes = elem_type == QE_GGUF_STRING ? 8 : elem_type == QE_GGUF_ARRAY ? 12 : 0;
    if (!min_item_bytes)
        return qe_fail(c->err, QE_EFORMAT, "%s: key '%s': unknown array element type %u", c->g->path, key,
                       elem_type);
    if (n > remaining(c) / min_item_bytes)
        return qe_fail(c->err, QE_EFORMAT, "%s: key '%s': array of %llu %s runs past the end of the file",
                       c->g->path, key, (unsigned long long)n, qe_gguf_type_name(elem_type));
    if (elem_type == QE_GGUF_STRING) {
        v->str_items = arena_alloc(c->g, (size_t)n * sizeof(char *) + 1);
        if (!v->str_items)
            return qe_fail(c->err, QE_ENOMEM, "%s: key '%s': no memory for %llu strings", c->g->path, key,
                           (unsigned long long)n);
        for (uint64_t i = 0; i < n; i++)
            if ((rc = read_string(c, key, &v->str_items[i], NULL)) != QE_OK)
                return rc;
        return QE_OK;
    }
    v->array_items = arena_alloc(c->g, (size_t)n * sizeof(qe_gguf_value) + 1);
    if (!v->array_items)
        return qe_fail(c->err, QE_ENOMEM, "%s: key '%s': no memory for %llu arrays", c->g->path, key,
                       (unsigned long long)n);
    for (uint64_t i = 0; i < n; i++)
        if ((rc = read_value(c, key, QE_GGUF_ARRAY, depth + 1, &v->array_items[i])) != QE_OK)
            return rc;
    return QE_OK;
}

static qe_status read_value(cursor *c, const char *key, uint32_t type, int depth, qe_gguf_value *v)
{
    v->type = (qe_gguf_type)type;
    if (type == QE_GGUF_STRING)
        return read_string(c, key, &v->str, &v->str_len);
    if (type == QE_GGUF_ARRAY)
        return read_array(c, key, depth, v);
    int n = scalar_bytes(type);
    if (!n)
        return qe_fail(c->err, QE_EFORMAT, "%s: key '%s': unknown value type %u at offset %llu", c->g->path,
                       key, type, (unsigned long long)(c->pos - 4));
    qe_status rc = need(c, (uint64_t)n, key);
    if (rc != QE_OK)
        return rc;
    decode_scalar(c->g->file + c->pos, (qe_gguf_type)type, v);
    c->pos += (uint64_t)n;
    return QE_OK;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static const char *kv_key(const qe_gguf *g, size_t i) { return g->kv[i].key; }
static const char *tensor_name(const qe_gguf *g, size_t i) { return g->tensors[i].name; }

/* Duplicate keys or tensor names would make lookups ambiguous: sort the names and compare
 * neighbours (n log n, since a stranger may send millions). *dup is NULL when all differ. */
static qe_status find_duplicate(const qe_gguf *g, qe_error *err, size_t n,
                                const char *(*name_of)(const qe_gguf *, size_t), const char **dup)
{
    *dup = NULL;
    const char **names = malloc(n ? n * sizeof *names : 1);
    if (!names)
        return qe_fail(err, QE_ENOMEM, "%s: no memory for %zu names", g->path, n);
    for (size_t i = 0; i < n; i++)
        names[i] = name_of(g, i);
    qsort(names, n, sizeof *names, compare_names);
    for (size_t i = 1; i < n && !*dup; i++)
        if (!strcmp(names[i - 1], names[i]))
            *dup = names[i];
    free(names);
    return QE_OK;
}

static qe_status read_metadata(cursor *c)
{
    qe_gguf *g = c->g;
    /* smallest kv: 8-byte key length, 4-byte type, 1-byte value */
    if (g->n_kv > remaining(c) / 13)
        return qe_fail(c->err, QE_EFORMAT, "%s: %llu metadata entries cannot fit in the %llu-byte file",
                       g->path, (unsigned long long)g->n_kv, (unsigned long long)g->file_bytes);
    g->kv = arena_alloc(g, (size_t)g->n_kv * sizeof(qe_gguf_kv) + 1);
    if (!g->kv)
        return qe_fail(c->err, QE_ENOMEM, "%s: no memory for %llu metadata entries", g->path,
                       (unsigned long long)g->n_kv);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        qe_gguf_kv *kv = &g->kv[i];
        uint64_t key_len;
        uint32_t type;
        qe_status rc;
        if ((rc = read_string(c, "metadata key", &kv->key, &key_len)) != QE_OK)
            return rc;
        if (key_len == 0 || strlen(kv->key) != key_len)
            return qe_fail(c->err, QE_EFORMAT, "%s: metadata key %llu is empty or holds a NUL byte", g->path,
                           (unsigned long long)i);
        if ((rc = read_u32(c, kv->key, &type)) != QE_OK || (rc = read_value(c, kv->key, type, 0, &kv->value)) != QE_OK)
            return rc;
    }
    const char *dup = NULL;
    qe_status rc = find_duplicate(g, c->err, (size_t)g->n_kv, kv_key, &dup);
    if (rc == QE_OK && dup)
        rc = qe_fail(c->err, QE_EFORMAT, "%s: metadata key '%s' appears twice", g->path, dup);
    return rc;
}

static qe_status read_alignment(cursor *c)
{
    qe_gguf *g = c->g;
    g->alignment = QE_GGUF_DEFAULT_ALIGNMENT;
    const qe_gguf_kv *kv = qe_gguf_find_kv(g, "general.alignment");
    if (!kv)
        return QE_OK;
    if (kv->value.type != QE_GGUF_UINT32)
        return qe_fail(c->err, QE_EFORMAT, "%s: general.alignment is %s, expected UINT32", g->path,
                       qe_gguf_type_name(kv->value.type));
    uint64_t a = kv->value.u64;
    if (a == 0 || (a & (a - 1)) != 0)
        return qe_fail(c->err, QE_EFORMAT, "%s: general.alignment %llu is not a power of two", g->path,
                       (unsigned long long)a);
    g->alignment = a;
    return QE_OK;
}

static qe_status read_tensor_info(cursor *c, uint64_t index, qe_gguf_tensor *t)
{
    qe_gguf *g = c->g;
    uint64_t name_len;
    uint32_t n_dims, type;
    qe_status rc;
    if ((rc = read_string(c, "tensor name", &t->name, &name_len)) != QE_OK)
        return rc;
    if (name_len == 0 || name_len > 255 || strlen(t->name) != name_len)
        return qe_fail(c->err, QE_EFORMAT, "%s: tensor %llu: name is empty, longer than 255 bytes or holds a NUL",
                       g->path, (unsigned long long)index);
    if ((rc = read_u32(c, t->name, &n_dims)) != QE_OK)
        return rc;
    if (n_dims == 0 || n_dims > QE_GGUF_MAX_DIMS)
        return qe_fail(c->err, QE_EFORMAT, "%s: tensor '%s': n_dims %u, expected 1..%d", g->path, t->name, n_dims,
                       QE_GGUF_MAX_DIMS);
    t->n_dims = (int)n_dims;
    t->n_elements = 1;
    for (int d = 0; d < QE_GGUF_MAX_DIMS; d++) {
        uint64_t ne = 1;
        if (d < t->n_dims && (rc = read_u64(c, t->name, &ne)) != QE_OK)
            return rc;
        if (ne > (uint64_t)INT64_MAX || (ne && (uint64_t)t->n_elements > (uint64_t)INT64_MAX / ne))
            return qe_fail(c->err, QE_EFORMAT, "%s: tensor '%s': dimension %d = %llu makes the element count overflow",
                           g->path, t->name, d, (unsigned long long)ne);
        t->ne[d] = (int64_t)ne;
        t->n_elements *= (int64_t)ne;
    }
    if ((rc = read_u32(c, t->name, &type)) != QE_OK || (rc = read_u64(c, t->name, &t->offset_bytes)) != QE_OK)
        return rc;
    t->type = type;
    const qe_ggml_type_info *info = qe_ggml_type_lookup(type);
    if (!info)
        return qe_fail(c->err, QE_EFORMAT, "%s: tensor '%s': unknown ggml type %u", g->path, t->name, type);
    if (t->ne[0] % info->block_elements != 0)
        return qe_fail(c->err, QE_EFORMAT, "%s: tensor '%s': row length %lld is not a multiple of the %s block size %d",
                       g->path, t->name, (long long)t->ne[0], info->name, info->block_elements);
    char what[300];
    snprintf(what, sizeof what, "%s: tensor '%s'", g->path, t->name);
    if ((rc = qe_ggml_n_bytes(type, t->n_elements, what, &t->n_bytes, c->err)) != QE_OK)
        return rc;
    if (t->offset_bytes % g->alignment != 0)
        return qe_fail(c->err, QE_EFORMAT, "%s: tensor '%s': offset %llu is not a multiple of the alignment %llu",
                       g->path, t->name, (unsigned long long)t->offset_bytes, (unsigned long long)g->alignment);
    return QE_OK;
}


static qe_status read_tensors(cursor *c)
{
    qe_gguf *g = c->g;
    /* smallest info: 8-byte name length + 1 byte, n_dims, one dim, type, offset */
    if (g->n_tensors > remaining(c) / 33)
        return qe_fail(c->err, QE_EFORMAT, "%s: %llu tensor infos cannot fit in the %llu-byte file", g->path,
                       (unsigned long long)g->n_tensors, (unsigned long long)g->file_bytes);
    g->tensors = arena_alloc(g, (size_t)g->n_tensors * sizeof(qe_gguf_tensor) + 1);
    if (!g->tensors)
        return qe_fail(c->err, QE_ENOMEM, "%s: no memory for %llu tensor infos", g->path,
                       (unsigned long long)g->n_tensors);
    qe_status rc;
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if ((rc = read_tensor_info(c, i, &g->tensors[i])) != QE_OK)
            return rc;

    uint64_t pad = (g->alignment - c->pos % g->alignment) % g->alignment;
    g->data_offset_bytes = c->pos + pad;
    if (g->n_tensors == 0)
        return QE_OK; /* vocab-only files may end before the padding */
    if (g->data_offset_bytes > g->file_bytes)
        return qe_fail(c->err, QE_EFORMAT, "%s: data section at offset %llu starts past the end of the %llu-byte file",
                       g->path, (unsigned long long)g->data_offset_bytes, (unsigned long long)g->file_bytes);
    uint64_t data_bytes = g->file_bytes - g->data_offset_bytes;
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        qe_gguf_tensor *t = &g->tensors[i];
        if (t->offset_bytes > data_bytes || t->n_bytes > data_bytes - t->offset_bytes)
            return qe_fail(c->err, QE_EFORMAT, "%s: tensor '%s': %llu bytes at data offset %llu run past the end of the %llu-byte data section",
                           g->path, t->name, (unsigned long long)t->n_bytes, (unsigned long long)t->offset_bytes,
                           (unsigned long long)data_bytes);
        t->data = g->file + g->data_offset_bytes + t->offset_bytes;
    }
    const char *dup = NULL;
    if ((rc = find_duplicate(g, c->err, (size_t)g->n_tensors, tensor_name, &dup)) != QE_OK)
        return rc;
    if (dup)
        return qe_fail(c->err, QE_EFORMAT, "%s: tensor '%s' appears twice", g->path, dup);
    return QE_OK;
}

static qe_status parse(qe_gguf *g, qe_error *err)
{
    cursor c = {.g = g, .pos = 0, .err = err};
    qe_status rc = need(&c, 4, "magic");
    if (rc != QE_OK)
        return rc;
    if (memcmp(g->file, "GGUF", 4) != 0)
        return qe_fail(err, QE_EFORMAT, "%s: not a GGUF file (magic %02x %02x %02x %02x, expected \"GGUF\")", g->path,
                       g->file[0], g->file[1], g->file[2], g->file[3]);
    c.pos = 4;
    if ((rc = read_u32(&c, "version", &g->version)) != QE_OK)
        return rc;
    if (g->version != 2 && g->version != 3) {
        if ((g->version & 0xffff) == 0 && (g->version >> 16) != 0)
            return qe_fail(err, QE_EUNSUPPORTED, "%s: big-endian GGUF (version field 0x%08x) is not supported",
                           g->path, g->version);
        return qe_fail(err, QE_EUNSUPPORTED, "%s: GGUF version %u is not supported (2 and 3 are)", g->path,
                       g->version);
    }
    if ((rc = read_u64(&c, "tensor count", &g->n_tensors)) != QE_OK ||
        (rc = read_u64(&c, "metadata count", &g->n_kv)) != QE_OK)
        return rc;
    if ((rc = read_metadata(&c)) != QE_OK || (rc = read_alignment(&c)) != QE_OK)
        return rc;
    return read_tensors(&c);
}

static qe_status open_common(qe_gguf *g, qe_gguf **out, qe_error *err)
{
    qe_status rc = parse(g, err);
    if (rc != QE_OK) {
        qe_gguf_close(g);
        return rc;
    }
    *out = g;
    return QE_OK;
}

qe_status qe_gguf_open_memory(const void *bytes, size_t n_bytes, const char *name, qe_gguf **out, qe_error *err)
{
    *out = NULL;
    qe_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(name ? name : "<memory>"))) {
        free(g);
        return qe_fail(err, QE_ENOMEM, "%s: no memory", name ? name : "<memory>");
    }
    g->file = bytes;
    g->file_bytes = n_bytes;
    return open_common(g, out, err);
}

qe_status qe_gguf_open(const char *path, qe_gguf **out, qe_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qe_fail(err, QE_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return qe_fail(err, QE_EIO, "%s: not a regular file", path);
    }
    qe_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(path))) {
        free(g);
        close(fd);
        return qe_fail(err, QE_ENOMEM, "%s: no memory", path);
    }
    g->file_bytes = (uint64_t)st.st_size;
    if (g->file_bytes > 0) {
        void *map = mmap(NULL, (size_t)g->file_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            qe_gguf_close(g);
            return qe_fail(err, QE_EIO, "%s: cannot map %llu bytes: %s", path,
                           (unsigned long long)st.st_size, strerror(e));
        }
        g->file = map;
        g->is_mapped = true;
    }
    close(fd);
    return open_common(g, out, err);
}

void qe_gguf_close(qe_gguf *g)
{
    if (!g)
        return;
    while (g->arena_) {
        arena_block *b = g->arena_;
        g->arena_ = b->next;
        free(b);
    }
    if (g->is_mapped)
        munmap((void *)g->file, (size_t)g->file_bytes);
    free(g->path);
    free(g);
}

const qe_gguf_kv *qe_gguf_find_kv(const qe_gguf *g, const char *key)
{
    for (uint64_t i = 0; i < g->n_kv; i++)
        if (!strcmp(g->kv[i].key, key))
            return &g->kv[i];
    return NULL;
}

const qe_gguf_tensor *qe_gguf_find_tensor(const qe_gguf *g, const char *name)
{
    for (uint64_t i = 0; i < g->n_tensors; i++)
        if (!strcmp(g->tensors[i].name, name))
            return &g->tensors[i];
    return NULL;
}

static qe_status find_typed(const qe_gguf *g, const char *key, const char *expected, const qe_gguf_kv **kv,
                            qe_error *err)
{
    *kv = qe_gguf_find_kv(g, key);
    if (!*kv)
        return qe_fail(err, QE_EFORMAT, "%s: metadata key '%s' (%s) is missing", g->path, key, expected);
    return QE_OK;
}

static qe_status wrong_type(const qe_gguf *g, const qe_gguf_kv *kv, const char *expected, qe_error *err)
{
    const qe_gguf_value *v = &kv->value;
    if (v->type == QE_GGUF_ARRAY)
        return qe_fail(err, QE_EFORMAT, "%s: metadata key '%s' is an ARRAY of %s, expected %s", g->path, kv->key,
                       qe_gguf_type_name(v->elem_type), expected);
    return qe_fail(err, QE_EFORMAT, "%s: metadata key '%s' is %s, expected %s", g->path, kv->key,
                   qe_gguf_type_name(v->type), expected);
}

static bool is_signed_int(uint32_t t) { return t == QE_GGUF_INT8 || t == QE_GGUF_INT16 || t == QE_GGUF_INT32 || t == QE_GGUF_INT64; }
static bool is_unsigned_int(uint32_t t) { return t == QE_GGUF_UINT8 || t == QE_GGUF_UINT16 || t == QE_GGUF_UINT32 || t == QE_GGUF_UINT64; }

qe_status qe_gguf_get_int(const qe_gguf *g, const char *key, int64_t *out, qe_error *err)
{
    const qe_gguf_kv *kv;
    qe_status rc = find_typed(g, key, "integer", &kv, err);
    if (rc != QE_OK)
        return rc;
    if (is_signed_int(kv->value.type)) {
        *out = kv->value.i64;
        return QE_OK;
    }
    if (is_unsigned_int(kv->value.type) && kv->value.u64 <= (uint64_t)INT64_MAX) {
        *out = (int64_t)kv->value.u64;
        return QE_OK;
    }
    return wrong_type(g, kv, "an integer", err);
}

qe_status qe_gguf_get_float(const qe_gguf *g, const char *key, double *out, qe_error *err)
{
    const qe_gguf_kv *kv;
    qe_status rc = find_typed(g, key, "float", &kv, err);
    if (rc != QE_OK)
        return rc;
    if (kv->value.type != QE_GGUF_FLOAT32 && kv->value.type != QE_GGUF_FLOAT64)
        return wrong_type(g, kv, "FLOAT32", err);
    *out = kv->value.f64;
    return QE_OK;
}

qe_status qe_gguf_get_bool(const qe_gguf *g, const char *key, bool *out, qe_error *err)
{
    const qe_gguf_kv *kv;
    qe_status rc = find_typed(g, key, "bool", &kv, err);
    if (rc != QE_OK)
        return rc;
    if (kv->value.type != QE_GGUF_BOOL)
        return wrong_type(g, kv, "BOOL", err);
    *out = kv->value.u64 != 0;
    return QE_OK;
}

qe_status qe_gguf_get_string(const qe_gguf *g, const char *key, const char **out, qe_error *err)
{
    const qe_gguf_kv *kv;
    qe_status rc = find_typed(g, key, "string", &kv, err);
    if (rc != QE_OK)
        return rc;
    if (kv->value.type != QE_GGUF_STRING)
        return wrong_type(g, kv, "STRING", err);
    *out = kv->value.str;
    return QE_OK;
}

static qe_status find_array(const qe_gguf *g, const char *key, const char *expected, const qe_gguf_kv **kv,
                            qe_error *err)
{
    qe_status rc = find_typed(g, key, expected, kv, err);
    if (rc != QE_OK)
        return rc;
    if ((*kv)->value.type != QE_GGUF_ARRAY)
        return wrong_type(g, *kv, expected, err);
    return QE_OK;
}

qe_status qe_gguf_get_string_array(const qe_gguf *g, const char *key, const char *const **items,
                                   uint64_t *n_items, qe_error *err)
{
    const qe_gguf_kv *kv;
    qe_status rc = find_array(g, key, "an ARRAY of STRING", &kv, err);
    if (rc != QE_OK)
        return rc;
    if (kv->value.elem_type != QE_GGUF_STRING)
        return wrong_type(g, kv, "an ARRAY of STRING", err);
    *items = kv->value.str_items;
    *n_items = kv->value.n_items;
    return QE_OK;
}

/* Decodes numeric array items one by one; the caller says which types it takes. */
static qe_status numeric_array(const qe_gguf *g, const char *key, const char *expected, bool want_float,
                               void **items, uint64_t *n_items, qe_error *err)
{
    const qe_gguf_kv *kv;
    qe_status rc = find_array(g, key, expected, &kv, err);
    if (rc != QE_OK)
        return rc;
    const qe_gguf_value *v = &kv->value;
    uint32_t t = v->elem_type;
    bool ok = want_float ? (t == QE_GGUF_FLOAT32 || t == QE_GGUF_FLOAT64) : (is_signed_int(t) || is_unsigned_int(t));
    if (!ok)
        return wrong_type(g, kv, expected, err);
    size_t item_size = want_float ? sizeof(float) : sizeof(int32_t);
    void *out = malloc(v->n_items ? (size_t)v->n_items * item_size : 1);
    if (!out)
        return qe_fail(err, QE_ENOMEM, "%s: no memory for the %llu items of '%s'", g->path,
                       (unsigned long long)v->n_items, key);
    int n_bytes = scalar_bytes(t);
    for (uint64_t i = 0; i < v->n_items; i++) {
        qe_gguf_value item = {0};
        decode_scalar(v->raw_items + i * (uint64_t)n_bytes, (qe_gguf_type)t, &item);
        if (want_float) {
            ((float *)out)[i] = (float)item.f64;
            continue;
        }
        bool fits = is_signed_int(t) ? (item.i64 >= INT32_MIN && item.i64 <= INT32_MAX) : item.u64 <= INT32_MAX;
        if (!fits) {
            free(out);
            return qe_fail(err, QE_EFORMAT, "%s: '%s'[%llu] does not fit a 32-bit integer", g->path, key,
                           (unsigned long long)i);
        }
        ((int32_t *)out)[i] = is_signed_int(t) ? (int32_t)item.i64 : (int32_t)item.u64;
    }
    *items = out;
    *n_items = v->n_items;
    return QE_OK;
}

qe_status qe_gguf_get_f32_array(const qe_gguf *g, const char *key, float **items, uint64_t *n_items, qe_error *err)
{
    return numeric_array(g, key, "an ARRAY of FLOAT32", true, (void **)items, n_items, err);
}

qe_status qe_gguf_get_i32_array(const qe_gguf *g, const char *key, int32_t **items, uint64_t *n_items,
                                qe_error *err)
{
    return numeric_array(g, key, "an ARRAY of INT32", false, (void **)items, n_items, err);
}
