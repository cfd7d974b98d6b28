/* qd_sha256 — SHA-256 (FIPS 180-4) of a byte stream or a file, for `qeval data verify`.
 * Plain C, no dependency, with the x86 SHA extensions where the CPU has them; checked in tests
 * against the NIST example vectors, both ways. */
#ifndef QD_SHA256_H
#define QD_SHA256_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qe_error.h"

typedef struct {
    uint32_t state[8];
    uint64_t n_bytes;          /* total bytes absorbed so far */
    uint8_t block[64];
    size_t n_block_bytes;      /* bytes waiting in block[] */
} qd_sha256_ctx;

void qd_sha256_init(qd_sha256_ctx *ctx);
void qd_sha256_update(qd_sha256_ctx *ctx, const void *data, size_t n_bytes);
void qd_sha256_final(qd_sha256_ctx *ctx, uint8_t digest[32]);

/* hex: 64 lowercase hex digits + NUL. */
void qd_sha256_hex(const uint8_t digest[32], char hex[65]);
qe_status qd_sha256_file(const char *path, char hex[65], qe_error *err);

/* Tests: true makes every later call use the portable rounds even where SHA-NI is there. */
void qd_sha256_force_portable(bool is_portable);

#endif
