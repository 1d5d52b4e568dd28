#!/usr/bin/env python3
"""check_pretok_python.py: cross-check ref_pretok.tsv (pieces as gpt-3-encoder's JavaScript
regex cuts them) against GPT-2's own pre-tokenisation: the same pattern under Python's
`regex` module, as OpenAI's encoder.py runs it. Run by hand (needs `regex`, e.g. Debian
python3-regex); prints the cases where the two engines disagree and exits 1 if any do.
Result recorded in docs/tokenizer.md."""
import sys

import regex

PAT = regex.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+""")


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "tests/data/tokenizer/ref_pretok.tsv"
    bad = total = 0
    for line in open(path, encoding="ascii"):
        if line.startswith("#"):
            continue
        name, hx, ends = line.rstrip("\n").split("\t")
        text = bytes.fromhex("" if hx == "-" else hx).decode("utf-8")
        off, mine = 0, []
        for piece in PAT.findall(text):
            off += len(piece.encode("utf-8"))
            mine.append(off)
        want = [] if ends == "-" else [int(x) for x in ends.split()]
        total += 1
        if mine != want:
            bad += 1
            print(f"{name}: python {mine} != js {want}  text={text!r}")
    print(f"{total - bad} agree, {bad} differ (regex {regex.__version__})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
