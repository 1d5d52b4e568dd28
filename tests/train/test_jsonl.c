/* test_jsonl.c: the JSONL example reader (worker/train/jsonl.h): strict UTF-8, every
 * malformed-line case with its message, line splitting (CRLF, no final newline, blank lines,
 * block boundaries), the line-length limit and the streamed sha256. */
#include <stdint.h>

#include "common/fileio.h"
#include "common/limits.h"
#include "common/sha256.h"
#include "test.h"
#include "worker/train/jsonl.h"

static void test_utf8(void) {
    size_t bad = 99;
    CHECK(shoal_utf8_valid("plain ascii", 11, NULL));
    CHECK(shoal_utf8_valid("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", 14, NULL));
    CHECK(shoal_utf8_valid("\xf4\x8f\xbf\xbf", 4, NULL)); /* U+10FFFF */
    CHECK(shoal_utf8_valid("\xed\x9f\xbf", 3, NULL));     /* U+D7FF */
    CHECK(!shoal_utf8_valid("ab\x80", 3, &bad));
    CHECK_EQ_INT(bad, 2);
    CHECK(!shoal_utf8_valid("\xc0\xaf", 2, &bad)); /* overlong '/' */
    CHECK_EQ_INT(bad, 0);
    CHECK(!shoal_utf8_valid("\xe0\x80\xaf", 3, NULL));     /* overlong */
    CHECK(!shoal_utf8_valid("\xf0\x80\x80\xaf", 4, NULL)); /* overlong */
    CHECK(!shoal_utf8_valid("\xed\xa0\x80", 3, NULL));     /* surrogate D800 */
    CHECK(!shoal_utf8_valid("\xf4\x90\x80\x80", 4, NULL)); /* > U+10FFFF */
    CHECK(!shoal_utf8_valid("x\xe2\x82", 3, &bad));        /* truncated */
    CHECK_EQ_INT(bad, 1);
    CHECK(!shoal_utf8_valid("\xf5\x80\x80\x80", 4, NULL));
    CHECK(!shoal_utf8_valid("\xff", 1, NULL));
    CHECK(!shoal_utf8_valid("\xe2\x28\xa1", 3, NULL)); /* bad continuation */
}

static shoal_status parse(const char *line, shoal_jsonl_doc *doc) {
    return shoal_jsonl_parse_line(line, strlen(line), "t.jsonl", 7, doc);
}

static void test_parse_good(void) {
    shoal_jsonl_doc d;
    CHECK_EQ_INT(parse("{\"text\": \"hello world\"}", &d), SHOAL_OK);
    CHECK_STR(d.text, "hello world");
    CHECK_EQ_INT(d.text_len, 11);
    CHECK(d.prompt == NULL && d.completion == NULL);
    shoal_jsonl_doc_free(&d);
    CHECK_EQ_INT(parse("{\"prompt\": \"Q: 2+2?\\nA:\", \"completion\": \" 4\", \"id\": 17}", &d),
                 SHOAL_OK);
    CHECK_STR(d.prompt, "Q: 2+2?\nA:");
    CHECK_STR(d.completion, " 4");
    CHECK(d.text == NULL);
    shoal_jsonl_doc_free(&d);
    CHECK_EQ_INT(parse("  {\"prompt\": \"\", \"completion\": \"\\u00e9\\ud83d\\ude00\"}  \r", &d),
                 SHOAL_OK);
    CHECK_EQ_INT(d.prompt_len, 0);
    CHECK_STR(d.completion, "\xc3\xa9\xf0\x9f\x98\x80");
    shoal_jsonl_doc_free(&d);
    shoal_jsonl_doc_free(&d); /* twice is fine */
}

static void test_parse_bad(void) {
    static const char *bad[] = {
        "",
        "   \t",
        "{\"text\": \"caf\xc3\"}",
        "{\"text\": \"\xed\xa0\x80\"}",
        "{\"text\": \"unterminated}",
        "{\"text\": \"a\"} trailing",
        "{\"text\": \"a\", \"text\": \"b\"}",
        "[\"text\", \"a\"]",
        "\"just a string\"",
        "42",
        "{}",
        "{\"other\": \"x\"}",
        "{\"text\": 5}",
        "{\"text\": null}",
        "{\"text\": \"\"}",
        "{\"text\": \"a\", \"prompt\": \"b\", \"completion\": \"c\"}",
        "{\"text\": \"a\", \"completion\": \"c\"}",
        "{\"prompt\": \"p\"}",
        "{\"completion\": \"c\"}",
        "{\"prompt\": \"p\", \"completion\": \"\"}",
        "{\"prompt\": 1, \"completion\": \"c\"}",
        "{\"prompt\": \"p\", \"completion\": [\"c\"]}",
        "{\"text\": \"nul \\u0000 inside\"}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        shoal_jsonl_doc d;
        shoal_status st = parse(bad[i], &d);
        if (st != SHOAL_ERR_FORMAT) fprintf(stderr, "  case %zu accepted: %s\n", i, bad[i]);
        CHECK_EQ_INT(st, SHOAL_ERR_FORMAT);
        CHECK(d.root == NULL && d.text == NULL && d.prompt == NULL);
    }
}

static void write_file(const char *path, const char *data, size_t n) {
    CHECK_EQ_INT(shoal_file_write_atomic(path, data, n), SHOAL_OK);
}

static void test_reader_lines(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/lines.jsonl", test_tmpdir());
    const char data[] = "first\r\nsecond\n\nfourth";
    write_file(path, data, sizeof data - 1);
    shoal_jsonl_reader *r = NULL;
    CHECK_EQ_INT(shoal_jsonl_reader_open(path, &r), SHOAL_OK);
    if (!r) return;
    const char *want[] = {"first", "second", "", "fourth"};
    for (int i = 0; i < 4; i++) {
        const char *line;
        size_t len;
        uint64_t ln;
        CHECK_EQ_INT(shoal_jsonl_reader_next(r, &line, &len, &ln), SHOAL_OK);
        CHECK_STR(line, want[i]);
        CHECK_EQ_INT(len, strlen(want[i]));
        CHECK_EQ_INT(ln, i + 1);
    }
    const char *line;
    size_t len;
    uint64_t ln;
    CHECK_EQ_INT(shoal_jsonl_reader_next(r, &line, &len, &ln), SHOAL_OK);
    CHECK(line == NULL);
    char hex[SHOAL_SHA256_HEX_LEN], want_hex[SHOAL_SHA256_HEX_LEN];
    uint8_t raw[32];
    uint64_t bytes = 0;
    CHECK_EQ_INT(shoal_jsonl_reader_digest(r, hex, raw, &bytes), SHOAL_OK);
    CHECK_EQ_INT(shoal_sha256_file(path, want_hex), SHOAL_OK);
    CHECK_STR(hex, want_hex);
    CHECK_EQ_INT(bytes, sizeof data - 1);
    CHECK_EQ_INT(raw[0], strtoul((char[]){want_hex[0], want_hex[1], 0}, NULL, 16));
    shoal_jsonl_reader_free(r);
    shoal_jsonl_reader_free(NULL);
}

/* Lines that straddle the 64 KiB read blocks come back whole; the limit is enforced. */
static void test_reader_blocks_and_limit(void) {
    char path[512];
    snprintf(path, sizeof path, "%s/long.jsonl", test_tmpdir());
    size_t n_lines = 50, line_len = 9000, total = n_lines * (line_len + 1);
    char *data = malloc(total);
    for (size_t i = 0; i < n_lines; i++) {
        memset(data + i * (line_len + 1), 'a' + (int)(i % 26), line_len);
        data[i * (line_len + 1) + line_len] = '\n';
    }
    write_file(path, data, total);
    shoal_jsonl_reader *r = NULL;
    CHECK_EQ_INT(shoal_jsonl_reader_open(path, &r), SHOAL_OK);
    size_t seen = 0;
    for (;;) {
        const char *line;
        size_t len;
        uint64_t ln;
        if (shoal_jsonl_reader_next(r, &line, &len, &ln) != SHOAL_OK || !line) break;
        CHECK_EQ_INT(len, line_len);
        CHECK(line[0] == 'a' + (int)(seen % 26) && line[len - 1] == line[0]);
        seen++;
    }
    CHECK_EQ_INT(seen, n_lines);
    shoal_jsonl_reader_free(r);

    CHECK_EQ_INT(shoal_limit_set(SHOAL_LIMIT_JSONL_LINE_BYTES, 8999), SHOAL_OK);
    CHECK_EQ_INT(shoal_jsonl_reader_open(path, &r), SHOAL_OK);
    const char *line;
    size_t len;
    uint64_t ln;
    CHECK_EQ_INT(shoal_jsonl_reader_next(r, &line, &len, &ln), SHOAL_ERR_LIMIT);
    CHECK(line == NULL);
    CHECK_EQ_INT(ln, 1);
    CHECK(shoal_jsonl_reader_next(r, &line, &len, &ln) != SHOAL_OK); /* stays failed */
    shoal_jsonl_reader_free(r);
    CHECK_EQ_INT(shoal_limit_set(SHOAL_LIMIT_JSONL_LINE_BYTES, 9000), SHOAL_OK);
    CHECK_EQ_INT(shoal_jsonl_reader_open(path, &r), SHOAL_OK);
    CHECK_EQ_INT(shoal_jsonl_reader_next(r, &line, &len, &ln), SHOAL_OK);
    CHECK_EQ_INT(len, 9000);
    shoal_jsonl_reader_free(r);
    CHECK_EQ_INT(shoal_limit_set(SHOAL_LIMIT_JSONL_LINE_BYTES,
                                 shoal_limit_describe(SHOAL_LIMIT_JSONL_LINE_BYTES)->def),
                 SHOAL_OK);
    free(data);
    char missing[512];
    snprintf(missing, sizeof missing, "%s/none.jsonl", test_tmpdir());
    CHECK_EQ_INT(shoal_jsonl_reader_open(missing, &r), SHOAL_ERR_NOT_FOUND);
    CHECK(r == NULL);
}

int main(void) {
    TEST_RUN(test_utf8);
    TEST_RUN(test_parse_good);
    TEST_RUN(test_parse_bad);
    TEST_RUN(test_reader_lines);
    TEST_RUN(test_reader_blocks_and_limit);
    return TEST_EXIT();
}
