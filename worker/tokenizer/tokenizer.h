/* tokenizer.h: GPT-2 byte-level BPE: load, encode, decode, and carry tokenizer files along.
 *
 * What it is: the tokenizer of GPT-2 and of every model that reuses its scheme. Text bytes are
 * pre-tokenised with GPT-2's regex
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * each piece is mapped byte by byte to its base token and BPE merges are applied by rank.
 * Ids equal the reference GPT-2 encoder's (OpenAI encoder.py, npm gpt-3-encoder) for valid
 * UTF-8; docs/tokenizer.md lists the exact semantics (Unicode version, whitespace, invalid
 * UTF-8: each invalid byte is a character of its own in the "other" class, so every byte
 * string round-trips exactly through encode and decode). Text is taken literally: the string
 * "<|endoftext|>" in the input is not the special token; append shoal_tokenizer_eot_id().
 *
 * Why shaped so: one immutable object after load; encode keeps all its scratch (including the
 * word -> ids cache) per call, so any number of threads may encode with one tokenizer.
 * Tested by tests/tokenizer/test_*.c (reference fixtures, loaders, malformed files) and
 * tests/fuzz/fuzz_tokenizer.c.
 */
#ifndef SHOAL_WORKER_TOKENIZER_H
#define SHOAL_WORKER_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

typedef struct shoal_tokenizer shoal_tokenizer;

/* Load the tokenizer in dir. Layouts are tried in this order: vocab.json + merges.txt
 * (Hugging Face), encoder.json + vocab.bpe (OpenAI), tokenizer.json (Hugging Face fast,
 * model BPE with a ByteLevel pre-tokenizer). NOT_FOUND when none is present; FORMAT, LIMIT
 * or UNSUPPORTED with a log line naming the file and the problem otherwise. *out is owned by
 * the caller (shoal_tokenizer_free). Reads files; blocks. */
shoal_status shoal_tokenizer_load(const char *dir, shoal_tokenizer **out);

/* The same from memory: a vocab.json/encoder.json document and a merges.txt/vocab.bpe text
 * (what names them in messages). */
shoal_status shoal_tokenizer_load_vocab_merges(const char *vocab_json, size_t vocab_len,
                                               const char *merges, size_t merges_len,
                                               const char *what, shoal_tokenizer **out);
/* The same from a tokenizer.json document in memory. */
shoal_status shoal_tokenizer_load_tokenizer_json(const char *json, size_t len, const char *what,
                                                 shoal_tokenizer **out);

/* NULL is a no-op. */
void shoal_tokenizer_free(shoal_tokenizer *t);

/* Number of ids (max id + 1; ids are dense). */
int shoal_tokenizer_vocab_size(const shoal_tokenizer *t);

/* Id of "<|endoftext|>", or -1 when the vocabulary has none. */
int32_t shoal_tokenizer_eot_id(const shoal_tokenizer *t);

/* Encode len bytes of text (any bytes; NUL is a byte like any other). *ids is malloc'd
 * (caller frees; non-NULL even when *n_ids is 0). Thread-safe. NOMEM only. */
shoal_status shoal_tokenizer_encode(const shoal_tokenizer *t, const char *text, size_t len,
                                    int32_t **ids, size_t *n_ids);

/* Decode n ids into *text (malloc'd, NUL-terminated for convenience; *len excludes the NUL;
 * caller frees). An id outside [0, vocab_size) -> SHOAL_ERR_INVALID_ARG naming its position,
 * and *text is NULL. Thread-safe. */
shoal_status shoal_tokenizer_decode(const shoal_tokenizer *t, const int32_t *ids, size_t n,
                                    char **text, size_t *len);

/* Copy the tokenizer files of src_dir (those of the layout shoal_tokenizer_load would use,
 * plus tokenizer_config.json / special_tokens_map.json / added_tokens.json when present)
 * into dst_dir (created if needed). Every source file is read and the tokenizer validated
 * before anything is written; each file is then written atomically (temp, fsync, rename). */
shoal_status shoal_tokenizer_copy_files(const char *src_dir, const char *dst_dir);

#endif
