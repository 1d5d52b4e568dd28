/* test_pretokenize.c: GPT-2 pre-tokenisation and the Unicode class table.
 *
 * The piece boundaries of every case in tests/data/tokenizer/ref_pretok.tsv (cut by
 * gpt-3-encoder's JavaScript regex, cross-checked against Python's `regex` by
 * check_pretok_python.py) must equal ours; plus hand cases for each regex branch, strict
 * UTF-8 decoding, and the generated table's shape. Needs no vocabulary. */
#include <stdint.h>

#include "test.h"
#include "tok_fixtures.h"
#include "worker/tokenizer/pretokenize.h"

/* Pieces of s joined with '|', into out. */
static void pieces(const char *s, char *out, size_t cap) {
    size_t len = strlen(s), pos = 0, k = 0;
    while (pos < len && k + 2 < cap) {
        size_t end = shoal_pretok_next((const uint8_t *)s, len, pos);
        if (pos) out[k++] = '|';
        for (size_t i = pos; i < end && k + 2 < cap; i++)
            out[k++] = s[i];
        pos = end;
    }
    out[k] = '\0';
}

#define CHECK_PIECES(in, want)                                                                     \
    do {                                                                                           \
        char got_[512];                                                                            \
        pieces(in, got_, sizeof got_);                                                             \
        CHECK_STR(got_, want);                                                                     \
    } while (0)

static void test_regex_branches(void) {
    CHECK_PIECES("Hello world", "Hello| world");
    CHECK_PIECES("don't I'm we've you're they'll he'd it's",
                 "don|'t| I|'m| we|'ve| you|'re| they|'ll| he|'d| it|'s");
    CHECK_PIECES("DON'T", "DON|'|T");
    CHECK_PIECES("'sup", "'s|up");
    CHECK_PIECES("!'s", "!'|s");
    CHECK_PIECES(" 's", " '|s");
    CHECK_PIECES("abc123def", "abc|123|def");
    CHECK_PIECES(" 42 x", " 42| x");
    CHECK_PIECES("a  b", "a| | b");
    CHECK_PIECES("a   b", "a|  | b");
    CHECK_PIECES("a\tb", "a|\t|b");
    CHECK_PIECES("a\t\tb", "a|\t|\t|b");
    CHECK_PIECES("a \tb", "a| |\t|b");
    CHECK_PIECES("a\t b", "a|\t| b");
    CHECK_PIECES("x   ", "x|   ");
    CHECK_PIECES("   ", "   ");
    CHECK_PIECES("\n\nx", "\n|\n|x");
    CHECK_PIECES(" !!", " !!");
    CHECK_PIECES("  !!", " | !!");
    CHECK_PIECES("...?!", "...?!");
    CHECK_PIECES("caf\xc3\xa9 na\xc3\xafve", "caf\xc3\xa9| na\xc3\xafve");
    CHECK_PIECES("\xe4\xbd\xa0\xe5\xa5\xbd, \xe4\xb8\x96",
                 "\xe4\xbd\xa0\xe5\xa5\xbd|,| \xe4\xb8\x96");
    /* U+00A0 is White_Space: it does not join the word after it the way ' ' does */
    CHECK_PIECES("a\xc2\xa0"
                 "b",
                 "a|\xc2\xa0|b");
    /* U+0085 is White_Space in GPT-2's regex (not in JavaScript's \s) */
    CHECK_PIECES("a\xc2\x85\xc2\x85!", "a|\xc2\x85|\xc2\x85|!");
    /* U+FEFF is not White_Space (JavaScript's \s says it is) */
    CHECK_PIECES("\xef\xbb\xbfhi", "\xef\xbb\xbf|hi");
    /* invalid bytes are "other" characters, one byte each */
    CHECK_PIECES("a\x80\x80 b \xff!", "a|\x80\x80| b| \xff!");
    CHECK_PIECES("x\xe2\x82", "x|\xe2\x82");
}

static void test_utf8(void) {
    uint32_t cp;
    shoal_uclass c;
    const uint8_t ok2[] = {0xC3, 0xA9}, ok3[] = {0xE4, 0xBD, 0xA0},
                  ok4[] = {0xF0, 0x9F, 0x8E, 0x89};
    CHECK_EQ_INT(shoal_utf8_char(ok2, 2, &cp, &c), 2);
    CHECK_EQ_INT(cp, 0xE9);
    CHECK_EQ_INT(c, SHOAL_UCLASS_LETTER);
    CHECK_EQ_INT(shoal_utf8_char(ok3, 3, &cp, &c), 3);
    CHECK_EQ_INT(cp, 0x4F60);
    CHECK_EQ_INT(shoal_utf8_char(ok4, 4, &cp, &c), 4);
    CHECK_EQ_INT(cp, 0x1F389);
    CHECK_EQ_INT(c, SHOAL_UCLASS_OTHER);
    const uint8_t *bad[] = {(const uint8_t *)"\xC0\xAF",
                            (const uint8_t *)"\xE0\x80\xAF",
                            (const uint8_t *)"\xED\xA0\x80",
                            (const uint8_t *)"\xF4\x90\x80\x80",
                            (const uint8_t *)"\xF5\x80\x80\x80",
                            (const uint8_t *)"\x80",
                            (const uint8_t *)"\xFF",
                            (const uint8_t *)"\xE4\xBD"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK_EQ_INT(shoal_utf8_char(bad[i], strlen((const char *)bad[i]), &cp, &c), 1);
        CHECK_EQ_INT(cp, 0xFFFFFFFFu);
        CHECK_EQ_INT(c, SHOAL_UCLASS_OTHER);
    }
    /* truncated by the buffer length, not by the bytes */
    CHECK_EQ_INT(shoal_utf8_char(ok3, 2, &cp, &c), 1);
}

static void test_classes(void) {
    CHECK_EQ_INT(shoal_unicode_class('a'), SHOAL_UCLASS_LETTER);
    CHECK_EQ_INT(shoal_unicode_class('7'), SHOAL_UCLASS_NUMBER);
    CHECK_EQ_INT(shoal_unicode_class('\v'), SHOAL_UCLASS_SPACE);
    CHECK_EQ_INT(shoal_unicode_class(0x1C), SHOAL_UCLASS_OTHER);
    CHECK_EQ_INT(shoal_unicode_class('\''), SHOAL_UCLASS_OTHER);
    CHECK_EQ_INT(shoal_unicode_class(0x00E9), SHOAL_UCLASS_LETTER); /* é */
    CHECK_EQ_INT(shoal_unicode_class(0x0416), SHOAL_UCLASS_LETTER); /* Ж */
    CHECK_EQ_INT(shoal_unicode_class(0x4E2D), SHOAL_UCLASS_LETTER); /* 中 */
    CHECK_EQ_INT(shoal_unicode_class(0x0301), SHOAL_UCLASS_OTHER);  /* combining acute: Mn */
    CHECK_EQ_INT(shoal_unicode_class(0x00B2), SHOAL_UCLASS_NUMBER); /* ² */
    CHECK_EQ_INT(shoal_unicode_class(0x216B), SHOAL_UCLASS_NUMBER); /* Ⅻ */
    CHECK_EQ_INT(shoal_unicode_class(0x0663), SHOAL_UCLASS_NUMBER); /* ٣ */
    CHECK_EQ_INT(shoal_unicode_class(0x00A0), SHOAL_UCLASS_SPACE);
    CHECK_EQ_INT(shoal_unicode_class(0x0085), SHOAL_UCLASS_SPACE);
    CHECK_EQ_INT(shoal_unicode_class(0x3000), SHOAL_UCLASS_SPACE);
    CHECK_EQ_INT(shoal_unicode_class(0xFEFF), SHOAL_UCLASS_OTHER);
    CHECK_EQ_INT(shoal_unicode_class(0x1F389), SHOAL_UCLASS_OTHER);  /* 🎉 */
    CHECK_EQ_INT(shoal_unicode_class(0x1D400), SHOAL_UCLASS_LETTER); /* 𝐀 */
    CHECK_EQ_INT(shoal_unicode_class(0x10FFFF), SHOAL_UCLASS_OTHER);
    /* the generated table: sorted, disjoint, non-empty ranges of a known class */
    CHECK(shoal_unicode_n_ranges > 500);
    for (int i = 0; i < shoal_unicode_n_ranges; i++) {
        const shoal_urange *r = &shoal_unicode_ranges[i];
        CHECK(r->lo <= r->hi && r->lo >= 0x80 && r->hi <= 0x10FFFF);
        CHECK(r->cls >= SHOAL_UCLASS_LETTER && r->cls <= SHOAL_UCLASS_SPACE);
        if (i) CHECK(shoal_unicode_ranges[i - 1].hi < r->lo);
    }
    CHECK(strlen(shoal_unicode_version) > 0);
}

static void test_reference_boundaries(void) {
    char *text = NULL;
    size_t len = 0, pos = 0;
    CHECK(shoal_file_read(tok_data("ref_pretok.tsv"), 1 << 24, &text, &len) == SHOAL_OK);
    if (!text) return;
    tok_row r;
    int cases = 0, bad = 0;
    while (tok_next_row(text, len, &pos, &r)) {
        if (r.nf != 3) {
            bad++;
            continue;
        }
        size_t n, n_ends, k = 0;
        uint8_t *in = tok_unhex(r.f[1], r.n[1], &n);
        int32_t *ends = tok_parse_ids(r.f[2], r.n[2], &n_ends);
        size_t p = 0;
        int ok = 1;
        while (p < n) {
            p = shoal_pretok_next(in, n, p);
            if (k >= n_ends || (size_t)ends[k] != p) ok = 0;
            k++;
        }
        if (k != n_ends) ok = 0;
        if (!ok) {
            bad++;
            fprintf(stderr, "  boundaries differ for case %.*s\n", (int)r.n[0], r.f[0]);
        }
        cases++;
        free(in);
        free(ends);
    }
    fprintf(stderr, "  %d reference cases, %d differ\n", cases, bad);
    CHECK(cases > 1000);
    CHECK_EQ_INT(bad, 0);
    free(text);
}

int main(void) {
    TEST_RUN(test_regex_branches);
    TEST_RUN(test_utf8);
    TEST_RUN(test_classes);
    TEST_RUN(test_reference_boundaries);
    return TEST_EXIT();
}
