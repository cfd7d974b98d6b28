#include "qd_sha256.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <cpuid.h>
#include <immintrin.h>
#define QD_SHA256_X86 1
#endif

static const uint32_t round_constants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

static void compress(uint32_t state[8], const uint8_t block[64])
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)block[4 * i] << 24 | (uint32_t)block[4 * i + 1] << 16 |
               (uint32_t)block[4 * i + 2] << 8 | block[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
    uint32_t e = state[4], f = state[5], g = state[6], h = state[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) +
                      round_constants[i] + w[i];
        uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g; g = f; f = e; e = d + t1;
        d = c; c = b; b = a; a = t1 + t2;
    }
    state[0] += a; state[1] += b; state[2] += c; state[3] += d;
    state[4] += e; state[5] += f; state[6] += g; state[7] += h;
}

#ifdef QD_SHA256_X86
/* The x86 SHA extensions (SHA-NI): four rounds per two sha256rnds2, the message schedule by
 * sha256msg1 / msg2; the state lives as ABEF and CDGH, the order the instructions take. The
 * same function as compress, 4-5x faster: a model's weights are hashed at every run. */
__attribute__((target("sha,sse4.1,ssse3"))) static void compress_shani(uint32_t state[8], const uint8_t *data,
                                                                        size_t n_blocks)
{
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bull, 0x0405060700010203ull);
    __m128i dcba = _mm_loadu_si128((const __m128i *)state), hgfe = _mm_loadu_si128((const __m128i *)(state + 4));
    __m128i badc = _mm_shuffle_epi32(dcba, 0xB1), efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    __m128i abef = _mm_alignr_epi8(badc, efgh, 8), cdgh = _mm_blend_epi16(efgh, badc, 0xF0);
    for (; n_blocks > 0; n_blocks--, data += 64) {
        __m128i abef_in = abef, cdgh_in = cdgh, m[4];
        for (int g = 0; g < 16; g++) { /* rounds 4g .. 4g + 3 with message words M_g = W[4g .. 4g + 3] */
            __m128i w;
            if (g < 4) {
                w = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16 * g)), bswap);
            } else { /* M_g from M_{g-4} .. M_{g-1}: W[t-16] + s0(W[t-15]) + W[t-7] + s1(W[t-2]) */
                __m128i t = _mm_sha256msg1_epu32(m[g & 3], m[(g + 1) & 3]);
                t = _mm_add_epi32(t, _mm_alignr_epi8(m[(g + 3) & 3], m[(g + 2) & 3], 4));
                w = _mm_sha256msg2_epu32(t, m[(g + 3) & 3]);
            }
            m[g & 3] = w;
            __m128i wk = _mm_add_epi32(w, _mm_loadu_si128((const __m128i *)(round_constants + 4 * g)));
            cdgh = _mm_sha256rnds2_epu32(cdgh, abef, wk);
            abef = _mm_sha256rnds2_epu32(abef, cdgh, _mm_shuffle_epi32(wk, 0x0E));
        }
        abef = _mm_add_epi32(abef, abef_in);
        cdgh = _mm_add_epi32(cdgh, cdgh_in);
    }
    __m128i feba = _mm_shuffle_epi32(abef, 0x1B), dchg = _mm_shuffle_epi32(cdgh, 0xB1);
    _mm_storeu_si128((__m128i *)state, _mm_blend_epi16(feba, dchg, 0xF0));
    _mm_storeu_si128((__m128i *)(state + 4), _mm_alignr_epi8(dchg, feba, 8));
}

static bool cpu_has_sha(void)
{
    unsigned a, b, c, d;
    return __get_cpuid_count(7, 0, &a, &b, &c, &d) && (b >> 29 & 1) && __get_cpuid(1, &a, &b, &c, &d) &&
           (c >> 19 & 1) /* SSE4.1 */;
}
#endif

static bool use_portable;

void qd_sha256_force_portable(bool is_portable) { use_portable = is_portable; }

static void compress_blocks(uint32_t state[8], const uint8_t *data, size_t n_blocks)
{
#ifdef QD_SHA256_X86
    static _Atomic int has_sha = -1; /* decided once; shards are hashed on several threads */
    if (has_sha < 0)
        has_sha = cpu_has_sha();
    if (has_sha && !use_portable) {
        compress_shani(state, data, n_blocks);
        return;
    }
#endif
    for (; n_blocks > 0; n_blocks--, data += 64)
        compress(state, data);
}

void qd_sha256_init(qd_sha256_ctx *ctx)
{
    static const uint32_t initial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                        0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy(ctx->state, initial, sizeof initial);
    ctx->n_bytes = 0;
    ctx->n_block_bytes = 0;
}

void qd_sha256_update(qd_sha256_ctx *ctx, const void *data, size_t n_bytes)
{
    const uint8_t *p = data;
    ctx->n_bytes += n_bytes;
    if (ctx->n_block_bytes > 0) { /* fill the waiting block first */
        size_t take = 64 - ctx->n_block_bytes < n_bytes ? 64 - ctx->n_block_bytes : n_bytes;
        memcpy(ctx->block + ctx->n_block_bytes, p, take);
        ctx->n_block_bytes += take;
        p += take;
        n_bytes -= take;
        if (ctx->n_block_bytes < 64)
            return;
        compress_blocks(ctx->state, ctx->block, 1);
        ctx->n_block_bytes = 0;
    }
    compress_blocks(ctx->state, p, n_bytes / 64); /* whole blocks straight from the input */
    p += n_bytes / 64 * 64;
    ctx->n_block_bytes = n_bytes % 64;
    memcpy(ctx->block, p, ctx->n_block_bytes);
}

void qd_sha256_final(qd_sha256_ctx *ctx, uint8_t digest[32])
{
    uint64_t n_bits = ctx->n_bytes * 8;
    uint8_t pad = 0x80;
    qd_sha256_update(ctx, &pad, 1);
    pad = 0;
    while (ctx->n_block_bytes != 56)
        qd_sha256_update(ctx, &pad, 1);
    uint8_t length[8];
    for (int i = 0; i < 8; i++)
        length[i] = (uint8_t)(n_bits >> (56 - 8 * i));
    qd_sha256_update(ctx, length, 8);
    for (int i = 0; i < 8; i++) {
        digest[4 * i] = (uint8_t)(ctx->state[i] >> 24);
        digest[4 * i + 1] = (uint8_t)(ctx->state[i] >> 16);
        digest[4 * i + 2] = (uint8_t)(ctx->state[i] >> 8);
        digest[4 * i + 3] = (uint8_t)ctx->state[i];
    }
}

void qd_sha256_hex(const uint8_t digest[32], char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
}

qe_status qd_sha256_file(const char *path, char hex[65], qe_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return qe_fail(err, QE_EIO, "%s: cannot open: %s", path, strerror(errno));
    enum { BUFFER_BYTES = 1 << 20 };
    uint8_t *buf = malloc(BUFFER_BYTES);
    if (!buf) {
        fclose(f);
        return qe_fail(err, QE_ENOMEM, "%s: out of memory", path);
    }
    qd_sha256_ctx ctx;
    qd_sha256_init(&ctx);
    size_t n;
    while ((n = fread(buf, 1, BUFFER_BYTES, f)) > 0)
        qd_sha256_update(&ctx, buf, n);
    int failed = ferror(f);
    fclose(f);
    free(buf);
    if (failed)
        return qe_fail(err, QE_EIO, "%s: read error", path);
    uint8_t digest[32];
    qd_sha256_final(&ctx, digest);
    qd_sha256_hex(digest, hex);
    return QE_OK;
}
