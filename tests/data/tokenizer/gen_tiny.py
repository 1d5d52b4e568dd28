#!/usr/bin/env python3
"""gen_tiny.py: tiny synthetic byte-level BPE vocabularies and malformed tokenizer files.

Run by hand from the repository root (outputs committed):
    python3 tests/data/tokenizer/gen_tiny.py tests/data/tokenizer
Writes
  tiny/hf/{vocab.json,merges.txt}, tiny/openai/{encoder.json,vocab.bpe},
  tiny/tokjson/tokenizer.json (merges as "a b" strings), tiny/tokjson_pairs/tokenizer.json
  (merges as ["a", "b"] pairs, tokenizers >= 0.20): the same vocabulary in every layout, with
  ids deliberately not in byte order so that a loader mixing ids up fails the tests.
  bad/<case>/...: one malformed tokenizer directory per case; test_tokenizer_load.c holds the
  status each must give.
The byte <-> character map is GPT-2's bytes_to_unicode(), written out here independently.
"""
import json
import os
import sys


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


B2U = bytes_to_unicode()


def disguise(s):
    return "".join(B2U[b] for b in s.encode("utf-8"))


# Merges in rank order, as plain text pieces (spaces are real spaces here).
MERGES = [
    (" ", "t"), ("h", "e"), (" t", "he"), ("i", "n"), (" ", "a"), ("o", "n"), ("e", "r"),
    ("in", "g"), (" ", "s"), ("r", "e"), (" a", "n"), (" an", "d"), ("l", "l"), ("e", "s"),
    (" ", "c"), ("a", "t"), (" c", "at"), (" s", "at"), ("\n", "\n"), (" ", " "), ("  ", "  "),
    ("1", "2"), ("12", "3"), ("'", "s"), ("é", "t"), ("\xc3", "\xa9"),
]


def build_vocab():
    byte_tokens = [disguise_bytes(bytes([b])) for b in range(256)]
    merged = []
    for a, b in MERGES:
        merged.append(disguise_text(a) + disguise_text(b))
    ordered = sorted(byte_tokens) + merged + ["<|endoftext|>"]
    seen = []
    for t in ordered:
        if t not in seen:
            seen.append(t)
    return {t: i for i, t in enumerate(seen)}


def disguise_bytes(bs):
    return "".join(B2U[b] for b in bs)


def disguise_text(s):
    # "\xc3" and "\xa9" in MERGES stand for the raw bytes of é, not for U+00C3 / U+00A9.
    if s in ("\xc3", "\xa9"):
        return disguise_bytes(s.encode("latin-1"))
    return disguise(s)


def merge_lines():
    return [f"{disguise_text(a)} {disguise_text(b)}" for a, b in MERGES]


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def tokenizer_json(vocab, pairs):
    merges = [l.split(" ") for l in merge_lines()] if pairs else merge_lines()
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [{"id": vocab["<|endoftext|>"], "content": "<|endoftext|>",
                          "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": True, "special": True}],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                          "use_regex": True},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False,
                           "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True,
                    "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None,
                  "continuing_subword_prefix": "", "end_of_word_suffix": "",
                  "fuse_unk": False, "vocab": vocab, "merges": merges},
    }


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    vocab = build_vocab()
    vj = json.dumps(vocab, ensure_ascii=False)
    mt = "#version: 0.2\n" + "\n".join(merge_lines()) + "\n"
    write(f"{out}/tiny/hf/vocab.json", vj)
    write(f"{out}/tiny/hf/merges.txt", mt)
    write(f"{out}/tiny/openai/encoder.json", vj)
    write(f"{out}/tiny/openai/vocab.bpe", mt)
    write(f"{out}/tiny/tokjson/tokenizer.json",
          json.dumps(tokenizer_json(vocab, False), ensure_ascii=False, indent=1))
    write(f"{out}/tiny/tokjson_pairs/tokenizer.json",
          json.dumps(tokenizer_json(vocab, True), ensure_ascii=False, indent=1))

    bad = {}
    first = next(iter(vocab))
    bad["json_syntax"] = {"vocab.json": vj[:-30], "merges.txt": mt}
    bad["json_not_object"] = {"vocab.json": "[1, 2, 3]", "merges.txt": mt}
    ni = dict(vocab); ni["<|endoftext|>"] = str(vocab["<|endoftext|>"])
    bad["id_not_integer"] = {"vocab.json": json.dumps(ni, ensure_ascii=False), "merges.txt": mt}
    neg = dict(vocab); neg["<|endoftext|>"] = -1
    bad["id_negative"] = {"vocab.json": json.dumps(neg, ensure_ascii=False), "merges.txt": mt}
    dup = dict(vocab); dup["<|endoftext|>"] = vocab[first]
    bad["id_duplicate"] = {"vocab.json": json.dumps(dup, ensure_ascii=False), "merges.txt": mt}
    gap = dict(vocab); gap["<|endoftext|>"] = len(vocab) + 5
    bad["id_gap"] = {"vocab.json": json.dumps(gap, ensure_ascii=False), "merges.txt": mt}
    nob = {k: v for k, v in vocab.items() if k != disguise_bytes(b"\x00")}
    nob = {k: i for i, k in enumerate(nob)}
    bad["missing_byte"] = {"vocab.json": json.dumps(nob, ensure_ascii=False), "merges.txt": mt}
    nonbyte = dict(vocab); nonbyte["中"] = len(vocab)
    bad["token_not_bytes"] = {"vocab.json": json.dumps(nonbyte, ensure_ascii=False), "merges.txt": mt}
    bad["merge_unknown_token"] = {"vocab.json": vj, "merges.txt": mt + "Ġzz q\n"}
    bad["merge_result_unknown"] = {"vocab.json": vj, "merges.txt": mt + "q z\n"}
    bad["merge_one_token"] = {"vocab.json": vj, "merges.txt": mt + "Ġt\n"}
    bad["merge_three_tokens"] = {"vocab.json": vj, "merges.txt": mt + "a b c\n"}
    bad["merge_double_space"] = {"vocab.json": vj, "merges.txt": mt + "a  b\n"}
    bad["vocab_without_merges"] = {"vocab.json": vj}
    bad["empty_dir"] = {".keep": ""}
    bad["empty_vocab"] = {"encoder.json": "{}", "vocab.bpe": ""}
    tj = tokenizer_json(vocab, False)
    wp = json.loads(json.dumps(tj)); wp["model"]["type"] = "WordPiece"
    bad["tj_wordpiece"] = {"tokenizer.json": json.dumps(wp, ensure_ascii=False)}
    ap = json.loads(json.dumps(tj)); ap["pre_tokenizer"]["add_prefix_space"] = True
    bad["tj_prefix_space"] = {"tokenizer.json": json.dumps(ap, ensure_ascii=False)}
    np_ = json.loads(json.dumps(tj)); np_["pre_tokenizer"] = None
    bad["tj_no_pretokenizer"] = {"tokenizer.json": json.dumps(np_, ensure_ascii=False)}
    nm = json.loads(json.dumps(tj)); nm["normalizer"] = {"type": "NFC"}
    bad["tj_normalizer"] = {"tokenizer.json": json.dumps(nm, ensure_ascii=False)}
    im = json.loads(json.dumps(tj)); im["model"]["ignore_merges"] = True
    bad["tj_ignore_merges"] = {"tokenizer.json": json.dumps(im, ensure_ascii=False)}
    bm = json.loads(json.dumps(tj)); bm["model"]["merges"].append(["a"])
    bad["tj_bad_merge"] = {"tokenizer.json": json.dumps(bm, ensure_ascii=False)}
    at = json.loads(json.dumps(tj)); at["added_tokens"].append({"id": vocab[first], "content": "<pad>"})
    bad["tj_added_conflict"] = {"tokenizer.json": json.dumps(at, ensure_ascii=False)}
    nv = json.loads(json.dumps(tj)); del nv["model"]["vocab"]
    bad["tj_no_vocab"] = {"tokenizer.json": json.dumps(nv, ensure_ascii=False)}
    bad["tj_not_object"] = {"tokenizer.json": '"just a string"'}
    for case, files in bad.items():
        for name, text in files.items():
            write(f"{out}/bad/{case}/{name}", text)
    # Fuzz seeds for tests/fuzz/fuzz_tokenizer.c: first byte 0 = text, 1 = vocab NUL merges,
    # 2 = tokenizer.json.
    seeds = {
        "text_english": b"\x00The quick brown fox, don't you think? It's 2024.\n\n",
        "text_unicode": b"\x00" + "café Привет 你好 🎉 ²³ \u00a0\u0085x".encode(),
        "text_invalid": b"\x00a\x80b \xe2\x82 \xed\xa0\x80 \xf5\xff\xfe\x00 z",
        "text_spaces": b"\x00   \t\t \n\r\n  x  ",
        "vm_tiny": b"\x01" + vj.encode() + b"\x00" + mt.encode(),
        "tj_tiny": b"\x02" + json.dumps(tokenizer_json(vocab, False), ensure_ascii=False).encode(),
        "tj_pairs": b"\x02" + json.dumps(tokenizer_json(vocab, True), ensure_ascii=False).encode(),
    }
    for case in ("id_duplicate", "merge_unknown_token", "missing_byte", "json_syntax"):
        f = bad[case]
        seeds["vm_bad_" + case] = b"\x01" + f["vocab.json"].encode() + b"\x00" + f["merges.txt"].encode()
    for case in ("tj_added_conflict", "tj_bad_merge", "tj_prefix_space"):
        seeds["tj_bad_" + case] = b"\x02" + bad[case]["tokenizer.json"].encode()
    os.makedirs(f"{out}/fuzz_seeds", exist_ok=True)
    for name, data in seeds.items():
        with open(f"{out}/fuzz_seeds/{name}.bin", "wb") as f:
            f.write(data)
    print(f"tiny vocabulary: {len(vocab)} tokens, {len(MERGES)} merges; {len(bad)} bad cases")


if __name__ == "__main__":
    main()
