#!/usr/bin/env python3
"""Generate the token-shard corpus in tests/data/train/shard_bad/.

Run by hand (python3 tests/data/train/gen_bad_shards.py); the outputs are committed. This
writer is independent of worker/train/shard.c (it follows the layout in shard.h), so the C
reader is checked against a second implementation. Files named good_* must be accepted;
every other file breaks exactly one rule and must be rejected. tests/train/test_shard.c
replays them all; the fuzz target uses them as seeds.
"""
import hashlib, os, struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shard_bad")

def shard(tokens, mask, offsets, vocab=300, tb=None, flags=None, version=1, hbytes=128,
          magic=b"SHOALTOK", n_tokens=None, n_docs=None, reserved=0, tail=b"", cut=0,
          reserved_tail=b"\x00" * 48):
    tb = tb if tb is not None else (2 if vocab <= 65536 else 4)
    if flags is None:
        flags = 1 if any(m == 0 for m in mask) else 0
    n_tokens = len(tokens) if n_tokens is None else n_tokens
    n_docs = len(offsets) - 1 if n_docs is None else n_docs
    sha = hashlib.sha256(b"source").digest()
    h = magic + struct.pack("<IIIIII", version, hbytes, vocab, tb, flags, reserved)
    h += struct.pack("<QQ", n_tokens, n_docs) + sha + reserved_tail
    assert len(h) == 128
    body = b"".join(struct.pack("<Q", o) for o in offsets)
    fmt = "<H" if tb == 2 else "<I"
    body += b"".join(struct.pack(fmt, t) for t in tokens)
    body += bytes(mask)
    data = h + body + tail
    return data[:len(data) - cut] if cut else data

T = [5, 17, 299, 0, 42, 7, 8, 256]
M = [0, 0, 1, 1, 0, 1, 1, 1]
O = [0, 4, 8]

cases = {
    "good_small": shard(T, M, O),
    "good_unmasked": shard(T, [1] * 8, O),
    "good_empty": shard([], [], [0]),
    "good_u32": shard([70000, 1, 2], [0, 1, 1], [0, 3], vocab=70001),
    "empty_file": b"",
    "short_header": shard(T, M, O)[:100],
    "bad_magic": shard(T, M, O, magic=b"SHOALTOX"),
    "bad_version": shard(T, M, O, version=2),
    "bad_header_bytes": shard(T, M, O, hbytes=256),
    "vocab_zero": shard([], [], [0], vocab=0, tb=2),
    "vocab_huge": shard(T, M, O, vocab=1 << 25, tb=4),
    "token_bytes_wrong": shard(T, M, O, tb=4),
    "unknown_flags": shard(T, M, O, flags=1 | 4),
    "flag_disagrees": shard(T, M, O, flags=0),
    "flag_set_unmasked": shard(T, [1] * 8, O, flags=1),
    "reserved_nonzero": shard(T, M, O, reserved=1),
    "reserved_tail_nonzero": shard(T, M, O, reserved_tail=b"\x00" * 47 + b"\x01"),
    "truncated": shard(T, M, O, cut=1),
    "trailing": shard(T, M, O, tail=b"\x00"),
    "n_tokens_huge": shard(T, M, O, n_tokens=1 << 62),
    "n_tokens_over_limit": shard(T, M, O, n_tokens=(1 << 28) + 1),
    "n_docs_huge": shard(T, M, O, n_docs=(1 << 64) - 1),
    "docs_more_than_tokens": shard([1], [1], [0, 1, 1], n_docs=2),
    "docs_zero_with_tokens": shard([1, 2], [1, 1], [2], n_docs=0),
    "offset0_nonzero": shard(T, M, [1, 4, 8]),
    "offsets_decrease": shard(T, M, [0, 6, 4, 8]),
    "offsets_empty_doc": shard(T, M, [0, 4, 4, 8]),
    "offset_last_short": shard(T, M, [0, 4, 7]),
    "offset_past_end": shard(T, M, [0, 9, 8]),
    "token_eq_vocab": shard([300] + T[1:], M, O),
    "token_u32_over": shard([70001, 1, 2], [0, 1, 1], [0, 3], vocab=70001),
    "mask_two": shard(T, [0, 0, 2, 1, 0, 1, 1, 1], O),
}

os.makedirs(OUT, exist_ok=True)
for f in os.listdir(OUT):
    os.remove(os.path.join(OUT, f))
for name, data in cases.items():
    with open(os.path.join(OUT, name + ".bin"), "wb") as f:
        f.write(data)
print(f"wrote {len(cases)} files to {OUT}")
