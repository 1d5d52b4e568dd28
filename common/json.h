/* json.h: JSON through jansson, with shoal's limits and error messages.
 *
 * jansson does the parsing; these helpers add what every caller needs: a size limit before
 * parsing, errors that name the file, line and column, and typed field getters that say which
 * field was missing or of the wrong type. Returned json_t references are owned by the caller
 * (json_decref). Tested by tests/common/test_json.c.
 */
#ifndef SHOAL_COMMON_JSON_H
#define SHOAL_COMMON_JSON_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

/* Parse a whole file (at most SHOAL_LIMIT_JSON_FILE_BYTES) into *out; `what` names the
 * document in errors ("config.json"). FORMAT on malformed JSON. */
shoal_status shoal_json_load_file(const char *path, json_t **out);
/* Parse a buffer of len bytes (may contain no NUL); `what` names it in errors. */
shoal_status shoal_json_load_buf(const char *buf, size_t len, const char *what, json_t **out);

/* Typed getters on an object. `what` names the document in messages. required=1: a missing
 * key is an error; required=0: a missing key leaves *out unchanged and returns OK. */
shoal_status shoal_json_get_int(const json_t *obj, const char *key, int required, int64_t lo,
                                int64_t hi, const char *what, int64_t *out);
shoal_status shoal_json_get_num(const json_t *obj, const char *key, int required, double lo,
                                double hi, const char *what, double *out);
/* *out points into obj (valid while obj lives). */
shoal_status shoal_json_get_str(const json_t *obj, const char *key, int required,
                                const char *what, const char **out);
shoal_status shoal_json_get_bool(const json_t *obj, const char *key, int required,
                                 const char *what, int *out);

/* Serialise with sorted keys and 2-space indent, then write atomically. */
shoal_status shoal_json_write_file(const char *path, const json_t *doc);

#endif
