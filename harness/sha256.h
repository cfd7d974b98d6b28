/* sha256 — FIPS 180-4 SHA-256 of a buffer or a file, as lowercase hex. Used to pin the bytes
 * of downloaded models; no external crypto library is needed for a checksum. */
#ifndef QH_SHA256_H
#define QH_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "qe_error.h"

typedef struct {
    uint32_t state[8];
    uint64_t n_bytes;          /* message length so far */
    uint8_t block[64];
    size_t n_block;            /* bytes waiting in block */
} qh_sha256;

void qh_sha256_init(qh_sha256 *h);
void qh_sha256_update(qh_sha256 *h, const void *data, size_t n_bytes);
void qh_sha256_hex(qh_sha256 *h, char hex[65]); /* finishes h */

qe_status qh_sha256_file(const char *path, char hex[65], qe_error *err);

#endif
