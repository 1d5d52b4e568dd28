/* safetensors.c: see safetensors.h. Every size from the file is range- and overflow-checked
 * before use; nothing from the file is trusted to be NUL-terminated or in bounds. */
#define SHOAL_LOG_SUBSYS "safetensors"
#include "common/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"

struct shoal_safetensors {
    void *map; /* mmap'd file, or NULL when parsing a caller's buffer */
    size_t map_len;
    json_t *header;
    json_t *metadata; /* borrowed from header */
    shoal_st_tensor *tensors;
    int n;
};

static int cmp_offset(const void *a, const void *b) {
    const shoal_st_tensor *x = a, *y = b;
    uintptr_t px = (uintptr_t)x->data, py = (uintptr_t)y->data;
    if (px != py) return px < py ? -1 : 1;
    return x->nbytes < y->nbytes ? -1 : (x->nbytes > y->nbytes);
}

static int mul_overflows(uint64_t a, uint64_t b, uint64_t *out) {
    return __builtin_mul_overflow(a, b, out);
}

/* Parse one tensor entry; fills t->data as an offset into the data buffer (cast later). */
static shoal_status parse_entry(const char *what, const char *name, json_t *v, shoal_st_tensor *t,
                                uint64_t *begin, uint64_t *end) {
    SHOAL_REQUIRE(json_is_object(v), SHOAL_ERR_FORMAT, "%s: tensor \"%s\": entry is not an object",
                  what, name);
    size_t nlen = strlen(name);
    SHOAL_REQUIRE(nlen > 0 && nlen < SHOAL_MAX_TENSOR_NAME, SHOAL_ERR_FORMAT,
                  "%s: tensor name of %zu bytes (must be 1..%d)", what, nlen,
                  SHOAL_MAX_TENSOR_NAME - 1);
    json_t *dt = json_object_get(v, "dtype"), *shape = json_object_get(v, "shape");
    json_t *offs = json_object_get(v, "data_offsets");
    SHOAL_REQUIRE(json_is_string(dt), SHOAL_ERR_FORMAT, "%s: tensor \"%s\": missing string dtype",
                  what, name);
    t->dtype = shoal_dtype_from_name(json_string_value(dt));
    SHOAL_REQUIRE(t->dtype != SHOAL_DTYPE_INVALID, SHOAL_ERR_FORMAT,
                  "%s: tensor \"%s\": unknown dtype \"%.32s\"", what, name, json_string_value(dt));
    SHOAL_REQUIRE(json_is_array(shape), SHOAL_ERR_FORMAT, "%s: tensor \"%s\": shape is not an array",
                  what, name);
    size_t nd = json_array_size(shape);
    SHOAL_REQUIRE(nd <= SHOAL_MAX_TENSOR_DIMS, SHOAL_ERR_LIMIT,
                  "%s: tensor \"%s\": %zu dims is more than %d", what, name, nd,
                  SHOAL_MAX_TENSOR_DIMS);
    t->ndim = (int)nd;
    uint64_t nelem = 1;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(shape, i);
        SHOAL_REQUIRE(json_is_integer(d) && json_integer_value(d) >= 0, SHOAL_ERR_FORMAT,
                      "%s: tensor \"%s\": shape[%zu] is not a non-negative integer", what, name, i);
        t->shape[i] = (int64_t)json_integer_value(d);
        SHOAL_REQUIRE(!mul_overflows(nelem, (uint64_t)t->shape[i], &nelem), SHOAL_ERR_FORMAT,
                      "%s: tensor \"%s\": shape product overflows", what, name);
    }
    SHOAL_REQUIRE(nelem <= shoal_limit(SHOAL_LIMIT_TENSOR_ELEMENTS), SHOAL_ERR_LIMIT,
                  "%s: tensor \"%s\": %llu elements is over the limit", what, name,
                  (unsigned long long)nelem);
    t->nelem = nelem;
    SHOAL_REQUIRE(!mul_overflows(nelem, shoal_dtype_size(t->dtype), &t->nbytes), SHOAL_ERR_FORMAT,
                  "%s: tensor \"%s\": byte size overflows", what, name);
    SHOAL_REQUIRE(json_is_array(offs) && json_array_size(offs) == 2, SHOAL_ERR_FORMAT,
                  "%s: tensor \"%s\": data_offsets must be [begin, end]", what, name);
    json_t *b = json_array_get(offs, 0), *e = json_array_get(offs, 1);
    SHOAL_REQUIRE(json_is_integer(b) && json_is_integer(e) && json_integer_value(b) >= 0 &&
                      json_integer_value(e) >= json_integer_value(b),
                  SHOAL_ERR_FORMAT,
                  "%s: tensor \"%s\": data_offsets must be integers with 0 <= begin <= end", what,
                  name);
    *begin = (uint64_t)json_integer_value(b);
    *end = (uint64_t)json_integer_value(e);
    SHOAL_REQUIRE(*end - *begin == t->nbytes, SHOAL_ERR_FORMAT,
                  "%s: tensor \"%s\": data_offsets span %llu bytes but %s%s needs %llu", what, name,
                  (unsigned long long)(*end - *begin), shoal_dtype_name(t->dtype),
                  nd ? " of its shape" : "", (unsigned long long)t->nbytes);
    return SHOAL_OK;
}

shoal_status shoal_safetensors_parse(const void *buf, size_t len, const char *what,
                                     shoal_safetensors **out) {
    *out = NULL;
    const unsigned char *p = buf;
    shoal_status st = SHOAL_OK;
    SHOAL_REQUIRE(len >= 8, SHOAL_ERR_FORMAT, "%s: %zu bytes is too short for a safetensors file",
                  what, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    SHOAL_REQUIRE(hlen <= shoal_limit(SHOAL_LIMIT_SAFETENSORS_HEADER_BYTES), SHOAL_ERR_LIMIT,
                  "%s: header length %llu is over the limit of %llu bytes", what,
                  (unsigned long long)hlen,
                  (unsigned long long)shoal_limit(SHOAL_LIMIT_SAFETENSORS_HEADER_BYTES));
    SHOAL_REQUIRE(hlen <= len - 8, SHOAL_ERR_FORMAT,
                  "%s: header length %llu runs past the end of the file (%zu bytes)", what,
                  (unsigned long long)hlen, len);
    SHOAL_REQUIRE(hlen >= 2 && p[8] == '{', SHOAL_ERR_FORMAT,
                  "%s: header is not a JSON object", what);

    shoal_safetensors *s = calloc(1, sizeof *s);
    SHOAL_REQUIRE(s, SHOAL_ERR_NOMEM, "%s: out of memory", what);
    json_error_t jerr;
    s->header = json_loadb((const char *)p + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &jerr);
    SHOAL_REQUIRE_GOTO(s->header, SHOAL_ERR_FORMAT, "%s: malformed header JSON (column %d): %s",
                       what, jerr.column, jerr.text);
    SHOAL_REQUIRE_GOTO(json_is_object(s->header), SHOAL_ERR_FORMAT,
                       "%s: header is not a JSON object", what);

    size_t nkeys = json_object_size(s->header);
    SHOAL_REQUIRE_GOTO(nkeys <= shoal_limit(SHOAL_LIMIT_SAFETENSORS_TENSORS) + 1, SHOAL_ERR_LIMIT,
                       "%s: %zu tensors is over the limit", what, nkeys);
    s->tensors = calloc(nkeys ? nkeys : 1, sizeof *s->tensors);
    SHOAL_REQUIRE_GOTO(s->tensors, SHOAL_ERR_NOMEM, "%s: out of memory", what);
    uint64_t *begins = calloc(nkeys ? nkeys : 1, sizeof *begins);
    SHOAL_REQUIRE_GOTO(begins, SHOAL_ERR_NOMEM, "%s: out of memory", what);

    const unsigned char *data = p + 8 + hlen;
    uint64_t data_len = len - 8 - hlen;
    const char *key;
    json_t *v;
    json_object_foreach(s->header, key, v) {
        if (strcmp(key, "__metadata__") == 0) {
            const char *mk;
            json_t *mv;
            if (!json_is_object(v)) {
                SHOAL_LOG_ERROR("%s: __metadata__ is not an object", what);
                st = SHOAL_ERR_FORMAT;
                break;
            }
            json_object_foreach(v, mk, mv) {
                if (!json_is_string(mv)) {
                    SHOAL_LOG_ERROR("%s: __metadata__ value of \"%.64s\" is not a string", what, mk);
                    st = SHOAL_ERR_FORMAT;
                    break;
                }
            }
            if (st != SHOAL_OK) break;
            s->metadata = v;
            continue;
        }
        shoal_st_tensor *t = &s->tensors[s->n];
        uint64_t b, e;
        st = parse_entry(what, key, v, t, &b, &e);
        if (st != SHOAL_OK) break;
        if (e > data_len) {
            SHOAL_LOG_ERROR("%s: tensor \"%s\": data_offsets end %llu is past the data (%llu bytes)",
                            what, key, (unsigned long long)e, (unsigned long long)data_len);
            st = SHOAL_ERR_FORMAT;
            break;
        }
        t->name = key;
        t->data = data + b;
        begins[s->n] = b;
        s->n++;
    }
    free(begins);
    if (st != SHOAL_OK) goto cleanup;

    /* Contiguity: sorted by begin, each tensor starts where the previous ended, from 0 to the
     * end of the file. Sorting by data pointer is sorting by begin (same base). */
    qsort(s->tensors, (size_t)s->n, sizeof *s->tensors, cmp_offset);
    uint64_t expect = 0;
    for (int i = 0; i < s->n; i++) {
        uint64_t b = (uint64_t)((const unsigned char *)s->tensors[i].data - data);
        SHOAL_REQUIRE_GOTO(b == expect, SHOAL_ERR_FORMAT,
                           "%s: tensor \"%s\" starts at %llu but the previous ends at %llu (%s)",
                           what, s->tensors[i].name, (unsigned long long)b,
                           (unsigned long long)expect, b > expect ? "gap" : "overlap");
        expect = b + s->tensors[i].nbytes;
    }
    SHOAL_REQUIRE_GOTO(expect == data_len, SHOAL_ERR_FORMAT,
                       "%s: tensors cover %llu bytes but the data section has %llu", what,
                       (unsigned long long)expect, (unsigned long long)data_len);
    *out = s;
    return SHOAL_OK;
cleanup:
    shoal_safetensors_close(s);
    return st;
}

shoal_status shoal_safetensors_open(const char *path, shoal_safetensors **out) {
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        SHOAL_LOG_ERROR("%s: cannot open: %s", path, strerror(errno));
        return errno == ENOENT ? SHOAL_ERR_NOT_FOUND : SHOAL_ERR_IO;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        SHOAL_LOG_ERROR("%s: not a regular file", path);
        close(fd);
        return SHOAL_ERR_IO;
    }
    size_t len = (size_t)sb.st_size;
    void *map = NULL;
    if (len > 0) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            SHOAL_LOG_ERROR("%s: mmap: %s", path, strerror(errno));
            close(fd);
            return SHOAL_ERR_IO;
        }
    }
    close(fd);
    shoal_safetensors *s = NULL;
    shoal_status st = shoal_safetensors_parse(map ? map : "", len, path, &s);
    if (st != SHOAL_OK) {
        if (map) munmap(map, len);
        return st;
    }
    s->map = map;
    s->map_len = len;
    *out = s;
    return SHOAL_OK;
}

void shoal_safetensors_close(shoal_safetensors *s) {
    if (!s) return;
    if (s->map) munmap(s->map, s->map_len);
    json_decref(s->header);
    free(s->tensors);
    free(s);
}

int shoal_safetensors_count(const shoal_safetensors *s) { return s->n; }

const shoal_st_tensor *shoal_safetensors_at(const shoal_safetensors *s, int i) {
    return i >= 0 && i < s->n ? &s->tensors[i] : NULL;
}

const shoal_st_tensor *shoal_safetensors_find(const shoal_safetensors *s, const char *name) {
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->tensors[i].name, name) == 0) return &s->tensors[i];
    return NULL;
}

const char *shoal_safetensors_meta(const shoal_safetensors *s, const char *key) {
    if (!s->metadata) return NULL;
    json_t *v = json_object_get(s->metadata, key);
    return v ? json_string_value(v) : NULL;
}

int shoal_safetensors_meta_all(const shoal_safetensors *s, const char ***kv) {
    size_t n = s->metadata ? json_object_size(s->metadata) : 0;
    *kv = calloc(2 * n + 1, sizeof **kv);
    if (!*kv) return -1;
    if (!n) return 0;
    const char *k;
    json_t *v;
    size_t i = 0;
    json_object_foreach(s->metadata, k, v) {
        (*kv)[2 * i] = k;
        (*kv)[2 * i + 1] = json_string_value(v);
        i++;
    }
    return (int)n;
}

shoal_status shoal_safetensors_write(const char *path, const shoal_st_write_tensor *tensors,
                                     int n, const char *const *meta, int n_meta) {
    shoal_status st = SHOAL_OK;
    json_t *hdr = json_object();
    char *text = NULL;
    shoal_iovec *parts = NULL;
    SHOAL_REQUIRE_GOTO(hdr, SHOAL_ERR_NOMEM, "%s: out of memory", path);
    SHOAL_REQUIRE_GOTO(n >= 0 && (uint64_t)n <= shoal_limit(SHOAL_LIMIT_SAFETENSORS_TENSORS),
                       SHOAL_ERR_LIMIT, "%s: %d tensors is over the limit", path, n);
    if (n_meta > 0) {
        json_t *m = json_object();
        SHOAL_REQUIRE_GOTO(m && json_object_set_new(hdr, "__metadata__", m) == 0, SHOAL_ERR_NOMEM,
                           "%s: out of memory", path);
        for (int i = 0; i < n_meta; i++)
            SHOAL_REQUIRE_GOTO(json_object_set_new(m, meta[2 * i], json_string(meta[2 * i + 1])) == 0,
                               SHOAL_ERR_INVALID_ARG, "%s: bad metadata entry %d (not UTF-8?)",
                               path, i);
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const shoal_st_write_tensor *t = &tensors[i];
        size_t es = shoal_dtype_size(t->dtype);
        SHOAL_REQUIRE_GOTO(es > 0 && t->ndim >= 0 && t->ndim <= SHOAL_MAX_TENSOR_DIMS && t->name &&
                               t->name[0] && strlen(t->name) < SHOAL_MAX_TENSOR_NAME &&
                               strcmp(t->name, "__metadata__") != 0,
                           SHOAL_ERR_INVALID_ARG, "%s: tensor %d has a bad name, dtype or rank",
                           path, i);
        SHOAL_REQUIRE_GOTO(!json_object_get(hdr, t->name), SHOAL_ERR_INVALID_ARG,
                           "%s: duplicate tensor name \"%s\"", path, t->name);
        uint64_t nbytes = es;
        json_t *shape = json_array();
        for (int d = 0; d < t->ndim; d++) {
            SHOAL_REQUIRE_GOTO(t->shape[d] >= 0 &&
                                   !mul_overflows(nbytes, (uint64_t)t->shape[d], &nbytes),
                               SHOAL_ERR_INVALID_ARG, "%s: tensor \"%s\": bad shape", path,
                               t->name);
            json_array_append_new(shape, json_integer(t->shape[d]));
        }
        json_t *e = json_pack("{s:s, s:o, s:[I,I]}", "dtype", shoal_dtype_name(t->dtype), "shape",
                              shape, "data_offsets", (json_int_t)off, (json_int_t)(off + nbytes));
        SHOAL_REQUIRE_GOTO(e && json_object_set_new(hdr, t->name, e) == 0, SHOAL_ERR_NOMEM,
                           "%s: out of memory", path);
        off += nbytes;
    }
    text = json_dumps(hdr, JSON_COMPACT);
    SHOAL_REQUIRE_GOTO(text, SHOAL_ERR_NOMEM, "%s: cannot serialise header", path);
    size_t tlen = strlen(text);
    size_t padded = (tlen + 7) & ~(size_t)7;
    char *grown = realloc(text, padded);
    SHOAL_REQUIRE_GOTO(grown, SHOAL_ERR_NOMEM, "%s: out of memory", path);
    text = grown;
    memset(text + tlen, ' ', padded - tlen);
    unsigned char lenbuf[8];
    for (int i = 0; i < 8; i++) lenbuf[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    parts = calloc((size_t)n + 2, sizeof *parts);
    SHOAL_REQUIRE_GOTO(parts, SHOAL_ERR_NOMEM, "%s: out of memory", path);
    parts[0] = (shoal_iovec){lenbuf, 8};
    parts[1] = (shoal_iovec){text, padded};
    for (int i = 0; i < n; i++) {
        uint64_t nb = shoal_dtype_size(tensors[i].dtype);
        for (int d = 0; d < tensors[i].ndim; d++) nb *= (uint64_t)tensors[i].shape[d];
        parts[i + 2] = (shoal_iovec){tensors[i].data, (size_t)nb};
    }
    st = shoal_file_writev_atomic(path, parts, n + 2);
cleanup:
    free(parts);
    free(text);
    json_decref(hdr);
    return st;
}
