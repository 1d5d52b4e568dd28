/* jsonl.h: reading a fine-tuning dataset in JSON Lines, one example per line.
 *
 * Each line is a JSON object with either {"text": "..."} (a plain document, trained on in
 * full) or {"prompt": "...", "completion": "..."} (only the completion is trained on). Other
 * keys are ignored, so datasets may carry ids or metadata. The reader is strict, because a
 * silently skipped or mangled example is worse than a stopped job: an empty line, a line
 * over SHOAL_LIMIT_JSONL_LINE_BYTES, invalid UTF-8, malformed JSON, a non-object, a missing
 * or non-string field, both "text" and "prompt", or an empty text/completion is an error
 * whose message names the file, the line (1-based) and, where it helps, the byte column.
 *
 * The line reader streams the file in blocks with a bounded line buffer (a file without a
 * newline cannot make us read it whole) and hashes every byte it reads, so the dataset's
 * sha256 comes for free. A final line without a newline is accepted; "\r\n" endings too.
 * Tested by tests/train/test_jsonl.c.
 */
#ifndef SHOAL_TRAIN_JSONL_H
#define SHOAL_TRAIN_JSONL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/sha256.h"
#include "common/status.h"

/* 1 if s[0..n) is well-formed UTF-8 (no overlong forms, no surrogates, <= U+10FFFF); else 0
 * and *bad_offset (may be NULL) is the offset of the first bad byte. */
int shoal_utf8_valid(const char *s, size_t n, size_t *bad_offset);

typedef struct shoal_jsonl_reader shoal_jsonl_reader;

/* Open path for reading lines. NOT_FOUND / IO when it cannot be opened. */
shoal_status shoal_jsonl_reader_open(const char *path, shoal_jsonl_reader **out);
/* Next line without its "\n" / "\r\n": *line is NULL at the end of the file. The line stays
 * valid until the next call. LIMIT for an over-long line, IO for a read error (both logged
 * with the file and line number). *lineno is the 1-based line number. */
shoal_status shoal_jsonl_reader_next(shoal_jsonl_reader *r, const char **line, size_t *len,
                                     uint64_t *lineno);
/* After the end of the file: sha256 of every byte read, as hex and raw bytes, and the size. */
shoal_status shoal_jsonl_reader_digest(shoal_jsonl_reader *r, char hex[SHOAL_SHA256_HEX_LEN],
                                       uint8_t raw[32], uint64_t *bytes);
void shoal_jsonl_reader_free(shoal_jsonl_reader *r);

/* One parsed example. Strings point into root and live as long as it does. */
typedef struct {
    json_t *root;
    const char *text; /* non-NULL for a {"text"} example */
    size_t text_len;
    const char *prompt; /* non-NULL for a {"prompt","completion"} example (may be "") */
    size_t prompt_len;
    const char *completion;
    size_t completion_len;
} shoal_jsonl_doc;

/* Validate and parse one line (see the top of this file). `file` and `lineno` name it in
 * error messages. FORMAT for any malformed example; *doc is zeroed on error. */
shoal_status shoal_jsonl_parse_line(const char *line, size_t len, const char *file, uint64_t lineno,
                                    shoal_jsonl_doc *doc);
/* Releases doc->root and zeroes doc; safe on a zeroed doc. */
void shoal_jsonl_doc_free(shoal_jsonl_doc *doc);

#endif
