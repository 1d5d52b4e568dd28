/* shard.h: the token shard, the on-disk form of a prepared dataset (`shoal data prepare`).
 *
 * One shard holds whole documents: their token ids, a loss mask per token and the document
 * boundaries. All integers are little-endian. Layout (version 1):
 *
 *   offset  size          field
 *   0       8             magic "SHOALTOK"
 *   8       4  u32        version (1)
 *   12      4  u32        header_bytes (128)
 *   16      4  u32        vocab_size (1 .. SHOAL_MAX_VOCAB)
 *   20      4  u32        token_bytes: 2 when vocab_size <= 65536, else 4 (no other value)
 *   24      4  u32        flags: bit 0 SHOAL_SHARD_FLAG_MASKED (some mask byte is 0);
 *                         other bits must be 0
 *   28      4  u32        reserved, 0
 *   32      8  u64        n_tokens (<= SHOAL_LIMIT_SHARD_TOKENS)
 *   40      8  u64        n_docs (<= n_tokens; 0 only when n_tokens is 0)
 *   48      32            sha256 of the source dataset file (raw bytes)
 *   80      48            reserved, 0
 *   128     8*(n_docs+1)  doc_offsets u64: [0] = 0, strictly increasing, [n_docs] = n_tokens
 *   ...     token_bytes*n_tokens   token ids (u16 or u32), each < vocab_size
 *   ...     n_tokens      mask u8, 1 = this token is a training target, 0 = not (prompts)
 *   end: the file size is exactly the sum above; trailing bytes are an error.
 *
 * Why so: u16 tokens halve the size for GPT-2-class vocabularies (<= 65,536) and u32 covers
 * the rest; the width follows from vocab_size so a reader cannot be told to misread. The mask
 * is one byte per token rather than bit-packed: a third more bytes on u16 shards, but a batch
 * window is then a plain memcpy at any offset, and 0/1 bytes are what the loss kernel takes.
 * Document offsets are kept so that tools can count, split and sample whole examples.
 * The reader maps the file and validates every field before use (magic, version, header
 * size, token width, flags, reserved bytes, counts against limits, every size sum
 * overflow-checked, exact file size, offsets monotonic, every id < vocab, every mask 0/1),
 * so nothing downstream needs to re-check. Errors: SHOAL_ERR_FORMAT for malformed content,
 * SHOAL_ERR_LIMIT past a limit, SHOAL_ERR_IO / NOT_FOUND for the file itself; the message
 * names the file and the field.
 * The writer is atomic (common/fileio.h): a crash leaves the old file or the new, never half.
 * Tested by tests/train/test_shard.c (round trips, every malformed case) and fuzzed by
 * tests/fuzz/fuzz_shard.c (seeds: tests/data/train/shard_bad/).
 */
#ifndef SHOAL_TRAIN_SHARD_H
#define SHOAL_TRAIN_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

#define SHOAL_SHARD_MAGIC "SHOALTOK"
#define SHOAL_SHARD_VERSION 1u
#define SHOAL_SHARD_HEADER_BYTES 128u
#define SHOAL_SHARD_FLAG_MASKED 1u

typedef struct {
    uint32_t version;
    uint32_t vocab_size;
    uint32_t token_bytes; /* 2 or 4 */
    uint32_t flags;
    uint64_t n_tokens;
    uint64_t n_docs;
    uint64_t n_trained; /* tokens with mask 1 (counted while validating) */
    uint8_t source_sha256[32];
} shoal_shard_info;

typedef struct shoal_shard shoal_shard; /* a validated, read-only shard (opaque) */

/* Map and validate path. *out is NULL on error. The handle owns the mapping. */
shoal_status shoal_shard_open(const char *path, shoal_shard **out);
/* Validate a buffer in memory; it is not copied and must outlive the handle. `what` names it
 * in messages. Used by the fuzz target and tests. */
shoal_status shoal_shard_parse(const void *buf, size_t len, const char *what, shoal_shard **out);
/* Unmaps and frees; NULL is a no-op. */
void shoal_shard_close(shoal_shard *s);

const shoal_shard_info *shoal_shard_get_info(const shoal_shard *s);
/* Start of document d (0 <= d <= n_docs; offset n_docs is n_tokens). */
uint64_t shoal_shard_doc_offset(const shoal_shard *s, uint64_t d);
/* Copy tokens [start, start+n) as int32 into tokens and their mask bytes into mask (either
 * may be NULL). The range must lie inside the shard (checked: INVALID_ARG otherwise). */
shoal_status shoal_shard_read(const shoal_shard *s, uint64_t start, uint64_t n, int32_t *tokens,
                              uint8_t *mask);

/* Token width the format uses for a vocabulary: 2 or 4. */
uint32_t shoal_shard_token_bytes(uint32_t vocab_size);

/* Write a shard atomically. tokens and mask have n_tokens entries (ids in [0, vocab_size),
 * mask 0/1); doc_offsets has n_docs+1 entries as in the layout above; source_sha256 may be
 * NULL (all zero). Arguments are validated: INVALID_ARG / LIMIT and nothing written when one
 * is wrong. */
shoal_status shoal_shard_write(const char *path, uint32_t vocab_size,
                               const uint8_t source_sha256[32], const int32_t *tokens,
                               const uint8_t *mask, uint64_t n_tokens, const uint64_t *doc_offsets,
                               uint64_t n_docs);

#endif
