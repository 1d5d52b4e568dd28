/* sha256.c: see sha256.h. */
#define SHOAL_LOG_SUBSYS "sha256"
#include "common/sha256.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct shoal_sha256 {
    EVP_MD_CTX *ctx;
};

shoal_status shoal_sha256_init(shoal_sha256 **out) {
    *out = NULL;
    shoal_sha256 *h = calloc(1, sizeof *h);
    SHOAL_REQUIRE(h, SHOAL_ERR_NOMEM, "sha256: out of memory");
    h->ctx = EVP_MD_CTX_new();
    if (!h->ctx || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        shoal_sha256_free(h);
        SHOAL_LOG_ERROR("EVP sha256 init failed");
        return SHOAL_ERR_INTERNAL;
    }
    *out = h;
    return SHOAL_OK;
}

shoal_status shoal_sha256_update(shoal_sha256 *h, const void *data, size_t len) {
    SHOAL_REQUIRE(EVP_DigestUpdate(h->ctx, data, len) == 1, SHOAL_ERR_INTERNAL,
                  "EVP sha256 update failed");
    return SHOAL_OK;
}

shoal_status shoal_sha256_final(shoal_sha256 *h, char hex[SHOAL_SHA256_HEX_LEN]) {
    unsigned char md[32];
    unsigned int n = 0;
    int ok = EVP_DigestFinal_ex(h->ctx, md, &n) == 1 && n == 32;
    shoal_sha256_free(h);
    SHOAL_REQUIRE(ok, SHOAL_ERR_INTERNAL, "EVP sha256 final failed");
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
    return SHOAL_OK;
}

void shoal_sha256_free(shoal_sha256 *h) {
    if (!h) return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}

shoal_status shoal_sha256_buf(const void *data, size_t len, char hex[SHOAL_SHA256_HEX_LEN]) {
    shoal_sha256 *h;
    SHOAL_CHECK(shoal_sha256_init(&h));
    shoal_status st = shoal_sha256_update(h, data, len);
    if (st != SHOAL_OK) {
        shoal_sha256_free(h);
        return st;
    }
    return shoal_sha256_final(h, hex);
}

shoal_status shoal_sha256_file(const char *path, char hex[SHOAL_SHA256_HEX_LEN]) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        SHOAL_LOG_ERROR("%s: cannot open: %s", path, strerror(errno));
        return errno == ENOENT ? SHOAL_ERR_NOT_FOUND : SHOAL_ERR_IO;
    }
    shoal_status st = SHOAL_OK;
    shoal_sha256 *h = NULL;
    char *buf = malloc(1 << 20);
    SHOAL_REQUIRE_GOTO(buf, SHOAL_ERR_NOMEM, "sha256: out of memory");
    SHOAL_CHECK_GOTO(shoal_sha256_init(&h));
    for (;;) {
        ssize_t r = read(fd, buf, 1 << 20);
        if (r < 0 && errno == EINTR) continue;
        SHOAL_REQUIRE_GOTO(r >= 0, SHOAL_ERR_IO, "%s: read: %s", path, strerror(errno));
        if (r == 0) break;
        SHOAL_CHECK_GOTO(shoal_sha256_update(h, buf, (size_t)r));
    }
    st = shoal_sha256_final(h, hex);
    h = NULL;
cleanup:
    shoal_sha256_free(h);
    free(buf);
    close(fd);
    return st;
}
