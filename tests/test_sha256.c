/* SHA-256 against the FIPS 180-4 / NIST example vectors, and a file digest against sha256sum's;
 * the vectors through the portable rounds and (where the CPU has them) the SHA extensions, and
 * the two on every length from 0 to 300 bytes fed in uneven pieces. */
#include <unistd.h>

#include "check.h"
#include "qd_sha256.h"

static void digest_of(const char *text, size_t n, size_t chunk, char hex[65])
{
    qd_sha256_ctx ctx;
    qd_sha256_init(&ctx);
    for (size_t i = 0; i < n; i += chunk)
        qd_sha256_update(&ctx, text + i, n - i < chunk ? n - i : chunk);
    uint8_t d[32];
    qd_sha256_final(&ctx, d);
    qd_sha256_hex(d, hex);
}

static void check_vectors(void)
{
    char hex[65];
    digest_of("", 0, 1, hex);
    CHECK_STR_EQ("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", hex);
    digest_of("abc", 3, 1, hex);
    CHECK_STR_EQ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", hex);
    const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    digest_of(m448, strlen(m448), 7, hex);
    CHECK_STR_EQ("248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", hex);
    static char million[1000000];
    memset(million, 'a', sizeof million);
    digest_of(million, sizeof million, 4096, hex);
    CHECK_STR_EQ("cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", hex);
}

int main(void)
{
    char hex[65];
    for (int portable = 0; portable < 2; portable++) {
        qd_sha256_force_portable(portable);
        check_vectors();
    }
    static char bytes[300];
    for (size_t i = 0; i < sizeof bytes; i++)
        bytes[i] = (char)(i * 131 + 7);
    int n_same = 0;
    for (size_t n = 0; n <= sizeof bytes; n++) {
        char fast[65], portable[65];
        qd_sha256_force_portable(false);
        digest_of(bytes, n, 1 + n % 97, fast);
        qd_sha256_force_portable(true);
        digest_of(bytes, n, 1 + n % 13, portable);
        n_same += !strcmp(fast, portable);
    }
    qd_sha256_force_portable(false);
    CHECK_INT_EQ(301, n_same);

    char path[] = "/tmp/qeval_sha_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0 && write(fd, "abc", 3) == 3);
    close(fd);
    qe_error err = {0};
    CHECK_INT_EQ(QE_OK, qd_sha256_file(path, hex, &err));
    CHECK_STR_EQ("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", hex);
    unlink(path);
    CHECK_INT_EQ(QE_EIO, qd_sha256_file("/nonexistent/file", hex, &err));
    CHECK(strstr(err.msg, "/nonexistent/file: cannot open") != NULL);
    return check_summary();
}
