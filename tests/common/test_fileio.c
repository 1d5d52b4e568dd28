/* test_fileio.c: atomic writes, limited reads, mkdir -p, sha256 vectors, JSON helpers. */
#include <sys/stat.h>
#include <unistd.h>

#include "common/fileio.h"
#include "common/json.h"
#include "common/limits.h"
#include "common/sha256.h"
#include "test.h"

static char buf_[512];
static const char *tmp(const char *name) {
    snprintf(buf_, sizeof buf_, "%s/%s", test_tmpdir(), name);
    return buf_;
}

static void test_atomic_write_and_read(void) {
    char p[512];
    snprintf(p, sizeof p, "%s", tmp("a.txt"));
    CHECK_EQ_INT(shoal_file_write_atomic(p, "hello", 5), SHOAL_OK);
    char *d;
    size_t n;
    CHECK_EQ_INT(shoal_file_read(p, 100, &d, &n), SHOAL_OK);
    CHECK_EQ_INT(n, 5);
    CHECK_STR(d, "hello");
    free(d);
    /* overwrite replaces whole; no temp file left behind */
    shoal_iovec parts[3] = {{"ab", 2}, {"", 0}, {"cd", 2}};
    CHECK_EQ_INT(shoal_file_writev_atomic(p, parts, 3), SHOAL_OK);
    CHECK_EQ_INT(shoal_file_read(p, 100, &d, &n), SHOAL_OK);
    CHECK_STR(d, "abcd");
    free(d);
    char t[600];
    snprintf(t, sizeof t, "%s.tmp.%ld", p, (long)getpid());
    CHECK(!shoal_path_exists(t));
    /* too large for the limit */
    d = (char *)1;
    CHECK_EQ_INT(shoal_file_read(p, 3, &d, &n), SHOAL_ERR_LIMIT);
    CHECK(d == NULL);
    CHECK_EQ_INT(shoal_file_read(tmp("missing"), 3, &d, &n), SHOAL_ERR_NOT_FOUND);
    CHECK_EQ_INT(shoal_file_read(test_tmpdir(), 3, &d, &n), SHOAL_ERR_INVALID_ARG);
}

static void test_atomic_write_into_missing_dir_leaves_nothing(void) {
    CHECK_EQ_INT(shoal_file_write_atomic(tmp("no/such/dir/x"), "x", 1), SHOAL_ERR_IO);
}

static void test_mkdir_p(void) {
    char p[512];
    snprintf(p, sizeof p, "%s", tmp("x/y/z"));
    CHECK_EQ_INT(shoal_mkdir_p(p), SHOAL_OK);
    CHECK_EQ_INT(shoal_mkdir_p(p), SHOAL_OK);
    struct stat sb;
    CHECK(stat(p, &sb) == 0 && S_ISDIR(sb.st_mode));
    snprintf(p, sizeof p, "%s", tmp("file"));
    CHECK_EQ_INT(shoal_file_write_atomic(p, "x", 1), SHOAL_OK);
    CHECK_EQ_INT(shoal_mkdir_p(p), SHOAL_ERR_IO);
    char out[8];
    CHECK_EQ_INT(shoal_path_join(out, sizeof out, "abc", "defgh"), SHOAL_ERR_LIMIT);
    CHECK_EQ_INT(shoal_path_join(out, sizeof out, "ab", "cd"), SHOAL_OK);
    CHECK_STR(out, "ab/cd");
}

/* FIPS 180-2, appendix B: SHA-256 examples ("abc" and the 448-bit message) and "". */
static void test_sha256_vectors(void) {
    char hex[SHOAL_SHA256_HEX_LEN];
    CHECK_EQ_INT(shoal_sha256_buf("abc", 3, hex), SHOAL_OK);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    CHECK_EQ_INT(shoal_sha256_buf(m, strlen(m), hex), SHOAL_OK);
    CHECK_STR(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    CHECK_EQ_INT(shoal_sha256_buf("", 0, hex), SHOAL_OK);
    CHECK_STR(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    char p[512];
    snprintf(p, sizeof p, "%s", tmp("abc"));
    CHECK_EQ_INT(shoal_file_write_atomic(p, "abc", 3), SHOAL_OK);
    CHECK_EQ_INT(shoal_sha256_file(p, hex), SHOAL_OK);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK_EQ_INT(shoal_sha256_file(tmp("missing"), hex), SHOAL_ERR_NOT_FOUND);
}

static void test_json(void) {
    json_t *doc;
    const char *txt = "{\"n_layer\": 2, \"eps\": 1e-5, \"name\": \"gpt2\", \"tied\": true}";
    CHECK_EQ_INT(shoal_json_load_buf(txt, strlen(txt), "config.json", &doc), SHOAL_OK);
    int64_t n = 0;
    double eps = 0;
    const char *name = NULL;
    int tied = 0;
    CHECK_EQ_INT(shoal_json_get_int(doc, "n_layer", 1, 1, 100, "config.json", &n), SHOAL_OK);
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_INT(shoal_json_get_num(doc, "eps", 1, 0, 1, "config.json", &eps), SHOAL_OK);
    CHECK_NEAR(eps, 1e-5, 1e-12);
    CHECK_EQ_INT(shoal_json_get_str(doc, "name", 1, "config.json", &name), SHOAL_OK);
    CHECK_STR(name, "gpt2");
    CHECK_EQ_INT(shoal_json_get_bool(doc, "tied", 1, "config.json", &tied), SHOAL_OK);
    CHECK(tied);
    CHECK_EQ_INT(shoal_json_get_int(doc, "n_layer", 1, 3, 100, "c", &n), SHOAL_ERR_INVALID_ARG);
    CHECK_EQ_INT(shoal_json_get_int(doc, "absent", 1, 0, 1, "c", &n), SHOAL_ERR_FORMAT);
    n = 7;
    CHECK_EQ_INT(shoal_json_get_int(doc, "absent", 0, 0, 1, "c", &n), SHOAL_OK);
    CHECK_EQ_INT(n, 7);
    CHECK_EQ_INT(shoal_json_get_int(doc, "name", 1, 0, 1, "c", &n), SHOAL_ERR_FORMAT);
    CHECK_EQ_INT(shoal_json_get_str(doc, "n_layer", 1, "c", &name), SHOAL_ERR_FORMAT);
    char p[512];
    snprintf(p, sizeof p, "%s", tmp("out.json"));
    CHECK_EQ_INT(shoal_json_write_file(p, doc), SHOAL_OK);
    json_decref(doc);
    CHECK_EQ_INT(shoal_json_load_file(p, &doc), SHOAL_OK);
    CHECK_EQ_INT(shoal_json_get_int(doc, "n_layer", 1, 1, 100, "out.json", &n), SHOAL_OK);
    json_decref(doc);

    const char *bad[] = {"{", "{\"a\":1,\"a\":2}", "[1,", "nul", "{\"a\": 1} x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        doc = (json_t *)1;
        CHECK_EQ_INT(shoal_json_load_buf(bad[i], strlen(bad[i]), "bad", &doc), SHOAL_ERR_FORMAT);
        CHECK(doc == NULL);
    }
    CHECK_EQ_INT(shoal_limit_set(SHOAL_LIMIT_JSON_FILE_BYTES, 4), SHOAL_OK);
    CHECK_EQ_INT(shoal_json_load_file(p, &doc), SHOAL_ERR_LIMIT);
    CHECK_EQ_INT(shoal_limit_set(SHOAL_LIMIT_JSON_FILE_BYTES,
                                 shoal_limit_describe(SHOAL_LIMIT_JSON_FILE_BYTES)->def),
                 SHOAL_OK);
}

int main(void) {
    shoal_log_set_level(SHOAL_LOG_ERROR);
    TEST_RUN(test_atomic_write_and_read);
    TEST_RUN(test_atomic_write_into_missing_dir_leaves_nothing);
    TEST_RUN(test_mkdir_p);
    TEST_RUN(test_sha256_vectors);
    TEST_RUN(test_json);
    return TEST_EXIT();
}
