/* pretokenize.c: GPT-2's pre-tokenisation regex as a scanner over UTF-8 bytes (see
 * pretokenize.h). The alternatives are tried in the regex's order at each position; the
 * equivalences used are spelled out beside each branch. ASCII takes a table lookup, other
 * code points a binary search of the generated ranges. Tested by
 * tests/tokenizer/test_pretokenize.c and the reference fixtures. */
#include "worker/tokenizer/pretokenize.h"

/* ASCII classes, one digit per code point 0..127 (0 other, 1 letter, 2 number, 3 space):
 * letters and digits as \p{L}/\p{N}; \t \n \v \f \r and space as White_Space (U+001C..U+001F
 * are not White_Space, so "other", as in Python's `regex`). */
static const char ascii_digits[129] = "00000000033333000000000000000000"
                                      "30000000000000002222222222000000"
                                      "01111111111111111111111111100000"
                                      "01111111111111111111111111100000";
#define ASCII_CLASS(b) ((shoal_uclass)(ascii_digits[(b)] - '0'))

shoal_uclass shoal_unicode_class(uint32_t cp) {
    if (cp < 128) return ASCII_CLASS(cp);
    int lo = 0, hi = shoal_unicode_n_ranges - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        const shoal_urange *r = &shoal_unicode_ranges[mid];
        if (cp < r->lo)
            hi = mid - 1;
        else if (cp > r->hi)
            lo = mid + 1;
        else
            return (shoal_uclass)r->cls;
    }
    return SHOAL_UCLASS_OTHER;
}

static inline int is_cont(uint8_t b) {
    return (b & 0xC0) == 0x80;
}

int shoal_utf8_char(const uint8_t *s, size_t len, uint32_t *cp, shoal_uclass *cls) {
    uint8_t b = s[0];
    if (b < 0x80) {
        *cp = b;
        *cls = ASCII_CLASS(b);
        return 1;
    }
    uint32_t c;
    int n;
    /* The second byte's allowed range excludes overlongs (E0, F0), surrogates (ED) and
     * values past U+10FFFF (F4), as in the Unicode standard's table 3-7. */
    uint8_t lo2 = 0x80, hi2 = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
        n = 2;
        c = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
        n = 3;
        c = b & 0x0F;
        if (b == 0xE0) lo2 = 0xA0;
        if (b == 0xED) hi2 = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        n = 4;
        c = b & 0x07;
        if (b == 0xF0) lo2 = 0x90;
        if (b == 0xF4) hi2 = 0x8F;
    } else {
        goto invalid;
    }
    if ((size_t)n > len || s[1] < lo2 || s[1] > hi2) goto invalid;
    c = (c << 6) | (s[1] & 0x3F);
    for (int k = 2; k < n; k++) {
        if (!is_cont(s[k])) goto invalid;
        c = (c << 6) | (s[k] & 0x3F);
    }
    *cp = c;
    *cls = shoal_unicode_class(c);
    return n;
invalid:
    *cp = 0xFFFFFFFFu;
    *cls = SHOAL_UCLASS_OTHER;
    return 1;
}

/* Class of the character at s[i], its length in *n. */
static inline shoal_uclass class_at(const uint8_t *s, size_t len, size_t i, int *n) {
    if (s[i] < 0x80) {
        *n = 1;
        return ASCII_CLASS(s[i]);
    }
    uint32_t cp;
    shoal_uclass cls;
    *n = shoal_utf8_char(s + i, len - i, &cp, &cls);
    return cls;
}

/* End of the longest run of characters of class cls starting at i. */
static size_t run_end(const uint8_t *s, size_t len, size_t i, shoal_uclass cls) {
    while (i < len) {
        int n;
        if (class_at(s, len, i, &n) != cls) break;
        i += (size_t)n;
    }
    return i;
}

size_t shoal_pretok_next(const uint8_t *s, size_t len, size_t pos) {
    size_t i = pos;
    /* 's|'t|'re|'ve|'m|'ll|'d: lower case only, wherever an apostrophe stands. */
    if (s[i] == '\'' && i + 1 < len) {
        uint8_t x = s[i + 1];
        if (x == 's' || x == 't' || x == 'm' || x == 'd') return i + 2;
        if (i + 2 < len) {
            uint8_t y = s[i + 2];
            if ((x == 'r' && y == 'e') || (x == 'v' && y == 'e') || (x == 'l' && y == 'l'))
                return i + 3;
        }
    }
    int n;
    shoal_uclass c = class_at(s, len, i, &n);
    /*  ?\p{L}+ |  ?\p{N}+ |  ?[^\s\p{L}\p{N}]+ : an ASCII space followed by a non-space joins
     * the run of that character's class. Without the space, the run of the first
     * character's own class. Each alternative is greedy and needs no backtracking. */
    if (s[i] == ' ' && i + 1 < len) {
        int n2;
        shoal_uclass c2 = class_at(s, len, i + 1, &n2);
        if (c2 != SHOAL_UCLASS_SPACE) return run_end(s, len, i + 1, c2);
    }
    if (c != SHOAL_UCLASS_SPACE) return run_end(s, len, i, c);
    /* \s+(?!\S) | \s+ : the whitespace run, less its last character when a non-space follows
     * and the run has at least two characters (that last one then starts the next piece,
     * where a space joins the following word); a single whitespace character before a
     * non-space is matched alone by \s+. */
    size_t last = i, j = i;
    int count = 0;
    while (j < len) {
        int m;
        if (class_at(s, len, j, &m) != SHOAL_UCLASS_SPACE) break;
        last = j;
        j += (size_t)m;
        count++;
    }
    if (j == len || count == 1) return j;
    return last;
}
