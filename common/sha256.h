/* sha256.h: SHA-256 through OpenSSL's EVP interface, of buffers, streams and files.
 * Hex digests are 64 lower-case characters plus NUL. Tested by tests/common/test_sha256.c
 * against the FIPS 180-2 example vectors. */
#ifndef SHOAL_COMMON_SHA256_H
#define SHOAL_COMMON_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

#define SHOAL_SHA256_HEX_LEN 65

typedef struct shoal_sha256 shoal_sha256; /* incremental hasher, opaque */

shoal_status shoal_sha256_init(shoal_sha256 **h);
shoal_status shoal_sha256_update(shoal_sha256 *h, const void *data, size_t len);
/* Finishes and frees the hasher (also on error); writes the hex digest. */
shoal_status shoal_sha256_final(shoal_sha256 *h, char hex[SHOAL_SHA256_HEX_LEN]);
void shoal_sha256_free(shoal_sha256 *h);

shoal_status shoal_sha256_buf(const void *data, size_t len, char hex[SHOAL_SHA256_HEX_LEN]);
/* Streams the file in 1 MiB blocks; NOT_FOUND / IO on failure. */
shoal_status shoal_sha256_file(const char *path, char hex[SHOAL_SHA256_HEX_LEN]);

#endif
