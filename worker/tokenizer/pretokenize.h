/* pretokenize.h: GPT-2's pre-tokenisation regex, hand-compiled for UTF-8 bytes.
 *
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *
 * A direct scanner rather than a regex engine: no dependency, no backtracking blow-up, and
 * ~a few ns per byte. Invalid UTF-8 bytes are single characters of class "other".
 * Tested by tests/tokenizer/test_pretokenize.c against the regex semantics case by case and
 * through the reference-id fixtures. Internal to worker/tokenizer.
 */
#ifndef SHOAL_WORKER_TOKENIZER_PRETOKENIZE_H
#define SHOAL_WORKER_TOKENIZER_PRETOKENIZE_H

#include <stddef.h>
#include <stdint.h>

#include "worker/tokenizer/unicode_tables.h"

/* Class of a code point. */
shoal_uclass shoal_unicode_class(uint32_t cp);

/* Decode one character at s[0..len) (len >= 1): strict UTF-8 (no overlongs, surrogates or
 * values past U+10FFFF). Returns its byte length (1-4) and its class; an invalid byte is a
 * 1-byte character of class OTHER and *cp = 0xFFFFFFFF. */
int shoal_utf8_char(const uint8_t *s, size_t len, uint32_t *cp, shoal_uclass *cls);

/* End of the pre-token that starts at pos (pos < len); always > pos. */
size_t shoal_pretok_next(const uint8_t *s, size_t len, size_t pos);

#endif
