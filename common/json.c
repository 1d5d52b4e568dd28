/* json.c: see json.h. */
#define SHOAL_LOG_SUBSYS "json"
#include "common/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/fileio.h"
#include "common/limits.h"

shoal_status shoal_json_load_buf(const char *buf, size_t len, const char *what, json_t **out) {
    *out = NULL;
    SHOAL_REQUIRE(len <= shoal_limit(SHOAL_LIMIT_JSON_FILE_BYTES), SHOAL_ERR_LIMIT,
                  "%s: %zu bytes of JSON is over the limit", what, len);
    json_error_t err;
    /* REJECT_DUPLICATES: a duplicate key is ambiguous, so malformed. */
    json_t *doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
    SHOAL_REQUIRE(doc, SHOAL_ERR_FORMAT, "%s: malformed JSON at line %d column %d: %s", what,
                  err.line, err.column, err.text);
    *out = doc;
    return SHOAL_OK;
}

shoal_status shoal_json_load_file(const char *path, json_t **out) {
    char *buf = NULL;
    size_t len = 0;
    *out = NULL;
    SHOAL_CHECK(shoal_file_read(path, shoal_limit(SHOAL_LIMIT_JSON_FILE_BYTES), &buf, &len));
    shoal_status st = shoal_json_load_buf(buf, len, path, out);
    free(buf);
    return st;
}

static shoal_status lookup(const json_t *obj, const char *key, int required, const char *what,
                           json_t **v) {
    *v = NULL;
    SHOAL_REQUIRE(json_is_object(obj), SHOAL_ERR_FORMAT, "%s: expected a JSON object", what);
    *v = json_object_get(obj, key);
    SHOAL_REQUIRE(*v || !required, SHOAL_ERR_FORMAT, "%s: missing required field \"%s\"", what,
                  key);
    return SHOAL_OK;
}

shoal_status shoal_json_get_int(const json_t *obj, const char *key, int required, int64_t lo,
                                int64_t hi, const char *what, int64_t *out) {
    json_t *v;
    SHOAL_CHECK(lookup(obj, key, required, what, &v));
    if (!v) return SHOAL_OK;
    SHOAL_REQUIRE(json_is_integer(v), SHOAL_ERR_FORMAT, "%s: field \"%s\" must be an integer",
                  what, key);
    int64_t x = (int64_t)json_integer_value(v);
    SHOAL_REQUIRE(x >= lo && x <= hi, SHOAL_ERR_INVALID_ARG,
                  "%s: field \"%s\"=%lld is out of range [%lld, %lld]", what, key, (long long)x,
                  (long long)lo, (long long)hi);
    *out = x;
    return SHOAL_OK;
}

shoal_status shoal_json_get_num(const json_t *obj, const char *key, int required, double lo,
                                double hi, const char *what, double *out) {
    json_t *v;
    SHOAL_CHECK(lookup(obj, key, required, what, &v));
    if (!v) return SHOAL_OK;
    SHOAL_REQUIRE(json_is_number(v), SHOAL_ERR_FORMAT, "%s: field \"%s\" must be a number", what,
                  key);
    double x = json_number_value(v);
    SHOAL_REQUIRE(isfinite(x) && x >= lo && x <= hi, SHOAL_ERR_INVALID_ARG,
                  "%s: field \"%s\"=%g is out of range [%g, %g]", what, key, x, lo, hi);
    *out = x;
    return SHOAL_OK;
}

shoal_status shoal_json_get_str(const json_t *obj, const char *key, int required,
                                const char *what, const char **out) {
    json_t *v;
    SHOAL_CHECK(lookup(obj, key, required, what, &v));
    if (!v) return SHOAL_OK;
    SHOAL_REQUIRE(json_is_string(v), SHOAL_ERR_FORMAT, "%s: field \"%s\" must be a string", what,
                  key);
    *out = json_string_value(v);
    return SHOAL_OK;
}

shoal_status shoal_json_get_bool(const json_t *obj, const char *key, int required,
                                 const char *what, int *out) {
    json_t *v;
    SHOAL_CHECK(lookup(obj, key, required, what, &v));
    if (!v) return SHOAL_OK;
    SHOAL_REQUIRE(json_is_boolean(v), SHOAL_ERR_FORMAT, "%s: field \"%s\" must be true or false",
                  what, key);
    *out = json_is_true(v);
    return SHOAL_OK;
}

shoal_status shoal_json_write_file(const char *path, const json_t *doc) {
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
    SHOAL_REQUIRE(text, SHOAL_ERR_NOMEM, "%s: cannot serialise JSON", path);
    size_t n = strlen(text);
    shoal_iovec parts[2] = {{text, n}, {"\n", 1}};
    shoal_status st = shoal_file_writev_atomic(path, parts, 2);
    free(text);
    return st;
}
