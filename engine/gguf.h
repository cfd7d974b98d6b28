/* gguf — a reader for GGUF files (versions 2 and 3, little-endian), the format llama.cpp
 * publishes models in: a header, typed metadata key/values, tensor infos, then tensor data at
 * an aligned offset.
 *
 * The file comes from strangers, so everything is checked before use: counts against the bytes
 * that remain, string lengths, array nesting, n_dims <= 4, element counts against overflow,
 * tensor types against the known ggml types, rows against the type's block size, and every
 * tensor's offset (aligned to general.alignment) and extent against the data section. A bad
 * file gives one error naming the file and the problem; nothing below crashes on it.
 *
 * After open, metadata strings are copied (NUL-terminated) and owned by the qe_gguf; tensor
 * data points into the memory-mapped file (or the caller's buffer) and lives until close. */
#ifndef QE_GGUF_H
#define QE_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qe_error.h"

typedef enum {
    QE_GGUF_UINT8 = 0, QE_GGUF_INT8 = 1, QE_GGUF_UINT16 = 2, QE_GGUF_INT16 = 3,
    QE_GGUF_UINT32 = 4, QE_GGUF_INT32 = 5, QE_GGUF_FLOAT32 = 6, QE_GGUF_BOOL = 7,
    QE_GGUF_STRING = 8, QE_GGUF_ARRAY = 9, QE_GGUF_UINT64 = 10, QE_GGUF_INT64 = 11,
    QE_GGUF_FLOAT64 = 12,
} qe_gguf_type;

#define QE_GGUF_MAX_DIMS 4
#define QE_GGUF_MAX_ARRAY_DEPTH 8      /* arrays of arrays nest at most this deep */
#define QE_GGUF_DEFAULT_ALIGNMENT 32

typedef struct qe_gguf_value qe_gguf_value;

/* One metadata value. Scalars fill exactly one of the number fields (integers widen to
 * u64/i64 as their signedness says, floats to f64). */
struct qe_gguf_value {
    qe_gguf_type type;
    uint64_t u64;                 /* UINT8..UINT64, BOOL (0/1)                  */
    int64_t i64;                  /* INT8..INT64                                */
    double f64;                   /* FLOAT32, FLOAT64                           */
    const char *str;              /* STRING: NUL-terminated copy                */
    uint64_t str_len;             /* STRING: bytes, without the NUL             */
    /* ARRAY: */
    qe_gguf_type elem_type;
    uint64_t n_items;
    const uint8_t *raw_items;     /* numeric/bool items: n_items little-endian values in the file */
    const char **str_items;       /* STRING items: [n_items] NUL-terminated copies               */
    qe_gguf_value *array_items;   /* ARRAY items: [n_items] nested arrays                         */
};

typedef struct {
    const char *key;              /* NUL-terminated copy */
    qe_gguf_value value;
} qe_gguf_kv;

typedef struct {
    const char *name;             /* NUL-terminated copy                                  */
    int n_dims;                   /* 1..4                                                 */
    int64_t ne[QE_GGUF_MAX_DIMS]; /* ggml order: ne[0] is the row length (contiguous); unused dims are 1 */
    uint32_t type;                /* ggml type id (qe_ggml_type)                          */
    uint64_t offset_bytes;        /* from the start of the data section                   */
    int64_t n_elements;           /* product of ne                                         */
    uint64_t n_bytes;             /* size of the data in the file                          */
    const void *data;             /* into the mapped file                                  */
} qe_gguf_tensor;

typedef struct {
    char *path;                   /* as given to open; "<memory>" names for open_memory   */
    uint32_t version;             /* 2 or 3                                               */
    uint64_t n_kv;
    qe_gguf_kv *kv;               /* [n_kv], in file order                                */
    uint64_t n_tensors;
    qe_gguf_tensor *tensors;      /* [n_tensors], in file order                           */
    uint64_t alignment;           /* general.alignment or 32                              */
    uint64_t data_offset_bytes;   /* where the data section starts in the file            */
    const uint8_t *file;          /* the whole file                                       */
    uint64_t file_bytes;
    bool is_mapped;               /* file was mmap'd by open and is unmapped by close     */
    void *arena_;                 /* owned copies of strings and arrays                   */
} qe_gguf;

/* Maps and parses path. */
qe_status qe_gguf_open(const char *path, qe_gguf **out, qe_error *err);
/* Parses a caller-owned buffer that must outlive the result; name is used in errors. */
qe_status qe_gguf_open_memory(const void *bytes, size_t n_bytes, const char *name, qe_gguf **out,
                              qe_error *err);
void qe_gguf_close(qe_gguf *gguf); /* NULL-safe */

/* NULL when absent. */
const qe_gguf_kv *qe_gguf_find_kv(const qe_gguf *gguf, const char *key);
const qe_gguf_tensor *qe_gguf_find_tensor(const qe_gguf *gguf, const char *name);

/* Typed getters: fail (QE_EFORMAT) naming the file and key when the key is missing or of a
 * type that does not convert exactly. get_int accepts any integer type whose value fits
 * int64; get_float accepts FLOAT32/FLOAT64. */
qe_status qe_gguf_get_int(const qe_gguf *gguf, const char *key, int64_t *out, qe_error *err);
qe_status qe_gguf_get_float(const qe_gguf *gguf, const char *key, double *out, qe_error *err);
qe_status qe_gguf_get_bool(const qe_gguf *gguf, const char *key, bool *out, qe_error *err);
qe_status qe_gguf_get_string(const qe_gguf *gguf, const char *key, const char **out, qe_error *err);
/* items stay owned by gguf. */
qe_status qe_gguf_get_string_array(const qe_gguf *gguf, const char *key, const char *const **items,
                                   uint64_t *n_items, qe_error *err);
/* Copies a FLOAT32 (or FLOAT64) array into a malloc'd float array the caller frees. */
qe_status qe_gguf_get_f32_array(const qe_gguf *gguf, const char *key, float **items, uint64_t *n_items,
                                qe_error *err);
/* Copies an integer array whose values fit int32 into a malloc'd array the caller frees. */
qe_status qe_gguf_get_i32_array(const qe_gguf *gguf, const char *key, int32_t **items, uint64_t *n_items,
                                qe_error *err);

const char *qe_gguf_type_name(qe_gguf_type type); /* "UINT32", ...; "?" when unknown */

#endif
