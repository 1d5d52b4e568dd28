/* safetensors.h: read and write the safetensors format (the Hugging Face tensor file).
 *
 * Layout: u64 little-endian header length N, N bytes of JSON header (an object mapping tensor
 * names to {"dtype","shape","data_offsets":[begin,end]}, plus an optional "__metadata__"
 * string-to-string map), then the data buffer that offsets index into.
 *
 * The reader maps the file read-only and validates everything before handing a tensor out:
 * header length within SHOAL_LIMIT_SAFETENSORS_HEADER_BYTES and the file; well-formed JSON
 * object without duplicate keys; known dtypes; shapes of at most SHOAL_MAX_TENSOR_DIMS
 * non-negative dims whose product times the dtype size equals the offsets span (every multiply
 * overflow-checked); tensors contiguous from 0 with no gap or overlap; the last end equal to
 * the data size; __metadata__ values all strings. Failures: SHOAL_ERR_FORMAT for malformed
 * content, SHOAL_ERR_LIMIT for sizes past a limit, SHOAL_ERR_IO/NOT_FOUND for the file itself.
 *
 * The writer pads the header with spaces to a multiple of 8 bytes (so data is 8-aligned, as
 * the reference implementation does) and writes atomically (common/fileio.h).
 * Tested by tests/common/test_safetensors.c (round trips, malformed corpus) and fuzzed by
 * tests/fuzz/fuzz_safetensors.c.
 */
#ifndef SHOAL_COMMON_SAFETENSORS_H
#define SHOAL_COMMON_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "common/dtype.h"
#include "common/limits.h"
#include "common/status.h"

typedef struct {
    const char *name;                     /* owned by the file handle */
    shoal_dtype dtype;
    int ndim;
    int64_t shape[SHOAL_MAX_TENSOR_DIMS];
    uint64_t nelem;
    uint64_t nbytes;
    const void *data;                     /* into the mapping; may be unaligned for >1-byte types */
} shoal_st_tensor;

typedef struct shoal_safetensors shoal_safetensors;

/* Map and validate path. *out is NULL on error. */
shoal_status shoal_safetensors_open(const char *path, shoal_safetensors **out);
/* Validate an in-memory buffer (not copied: it must outlive the handle). `what` names it in
 * error messages. Used by the fuzz target and for data received over the wire. */
shoal_status shoal_safetensors_parse(const void *buf, size_t len, const char *what,
                                     shoal_safetensors **out);
void shoal_safetensors_close(shoal_safetensors *st);

int shoal_safetensors_count(const shoal_safetensors *st);
/* Tensors are ordered by data offset. */
const shoal_st_tensor *shoal_safetensors_at(const shoal_safetensors *st, int i);
/* NULL when there is no tensor of that name. */
const shoal_st_tensor *shoal_safetensors_find(const shoal_safetensors *st, const char *name);
/* Value of a __metadata__ key, or NULL. */
const char *shoal_safetensors_meta(const shoal_safetensors *st, const char *key);
/* All __metadata__ pairs as a new array kv[2*i], kv[2*i+1] of borrowed strings (free the
 * array itself with free()); returns the number of pairs, or -1 when out of memory. */
int shoal_safetensors_meta_all(const shoal_safetensors *st, const char ***kv);

/* One tensor to write. shape has ndim entries; data has nelem*dtype_size bytes. */
typedef struct {
    const char *name;
    shoal_dtype dtype;
    int ndim;
    const int64_t *shape;
    const void *data;
} shoal_st_write_tensor;

/* Write n tensors (in the given order) and n_meta key/value pairs of __metadata__
 * (meta[2*i] = key, meta[2*i+1] = value) to path, atomically. */
shoal_status shoal_safetensors_write(const char *path, const shoal_st_write_tensor *tensors,
                                     int n, const char *const *meta, int n_meta);

#endif
