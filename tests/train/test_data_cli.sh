#!/usr/bin/env bash
# test_data_cli.sh: `shoal data prepare` and `shoal data inspect` as a user runs them, with the
# real GPT-2 tokenizer (vocabulary from deploy/install-deps.sh; skipped, exit 77, without it).
# Good input: the shipped support-routing set -> manifest and shards checked by an independent
# Python reader (header, sizes, sha256s, each document = prompt ids (mask 0) + completion ids
# (mask 1) + <|endoftext|>, decoded back through encoder.json to the input text), and a second
# run gives identical bytes. Bad inputs: each gives exit 1, a message naming FILE:LINE and the
# problem, and leaves neither the output nor a temp directory behind. The committed demo set
# must equal its generator's output.
set -euo pipefail
SHOAL="${SHOAL_BIN:?}"
SRC="${SHOAL_SOURCE_DIR:?}"
VOCAB="${SHOAL_VOCAB_DIR:-$HOME/.cache/shoal/gpt2-vocab}"
if [ ! -s "$VOCAB/encoder.json" ] || [ ! -s "$VOCAB/vocab.bpe" ]; then
  echo "skipped: no GPT-2 vocabulary in $VOCAB (run deploy/install-deps.sh)"; exit 77
fi
. "${SHOAL_SOURCE_DIR:?}/tests/lib.sh"
no_leftovers() { # no_leftovers NAME OUTDIR
  if [ ! -e "$2" ] && ! ls "$T" | grep -q '\.tmp\.'; then ok "$1: nothing left behind"
  else bad "$1: output or temp dir left behind"; ls -la "$T"; fi
}
DATA="$SRC/data/support-routing/support-routing.jsonl"

expect "demo set regenerates byte for byte" 0 python3 "$SRC/data/support-routing/generate.py" --out "$T/regen.jsonl"
cmp -s "$T/regen.jsonl" "$DATA" && ok "committed demo set == generator output" || bad "committed demo set == generator output"
expect "data --help" 0 "$SHOAL" data --help
expect "prepare --help" 0 "$SHOAL" data prepare --help
grep -q -- "--val-fraction" "$T/out" && ok "help lists --val-fraction" || bad "help lists --val-fraction"
expect "no subcommand" 2 "$SHOAL" data
expect "missing --out" 2 "$SHOAL" data prepare --tokenizer "$VOCAB" --input "$DATA"
expect "bad fraction" 2 "$SHOAL" data prepare --tokenizer "$VOCAB" --input "$DATA" --out "$T/x" --val-fraction 0.9
expect "bad seed" 2 "$SHOAL" data prepare --tokenizer "$VOCAB" --input "$DATA" --out "$T/x" --seed -3
no_leftovers "usage errors" "$T/x"

expect "prepare support-routing" 0 "$SHOAL" data prepare --tokenizer "$VOCAB" --input "$DATA" \
  --out "$T/ds" --val-fraction 0.05 --seed 11
grep -q "prepared 2200 examples" "$T/out" && ok "summary printed" || { bad "summary printed"; cat "$T/out"; }
no_leftovers "after success (temp)" "$T/none"
if python3 - "$T/ds" "$DATA" "$VOCAB/encoder.json" <<'PY'
import hashlib, json, os, struct, sys
ds, data, enc_path = sys.argv[1:4]
m = json.load(open(os.path.join(ds, "dataset.json")))
def check(c, what):
    if not c: print("check failed:", what); sys.exit(1)
check(m["format"] == "shoal-token-shards" and m["version"] == 1, "format")
check(m["source"]["sha256"] == hashlib.sha256(open(data, "rb").read()).hexdigest(), "input sha")
check(m["source"]["examples"] == 2200, "examples")
check(m["tokenizer"] == {"vocab_size": 50257, "eot_id": 50256}, "tokenizer")
check(m["splits"]["val"]["documents"] == 110 and m["splits"]["train"]["documents"] == 2090, "split")
# GPT-2 byte decoder (bytes_to_unicode inverted), independent of shoal's tokenizer
bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
cs = bs[:]; n = 0
for b in range(256):
    if b not in bs: bs.append(b); cs.append(256 + n); n += 1
byte_of = {chr(c): b for b, c in zip(bs, cs)}
id_to_tok = {v: k for k, v in json.load(open(enc_path)).items()}
def decode(ids): return bytes(byte_of[ch] for i in ids for ch in id_to_tok[i]).decode("utf-8")
examples = [json.loads(l) for l in open(data, encoding="utf-8")]
prompts = {e["prompt"]: e["completion"] for e in examples}
seen = 0
for split in ("train", "val"):
    sp = m["splits"][split]; toks = docs = trained = 0
    for sh in sp["shards"]:
        raw = open(os.path.join(ds, sh["file"]), "rb").read()
        check(hashlib.sha256(raw).hexdigest() == sh["sha256"] and len(raw) == sh["bytes"], "shard sha")
        check(raw[:8] == b"SHOALTOK", "magic")
        ver, hb, vocab, tb, flags, res, nt, nd = struct.unpack_from("<6I2Q", raw, 8)
        check((ver, hb, vocab, tb, flags, res) == (1, 128, 50257, 2, 1, 0), "header")
        check(raw[48:80] == bytes.fromhex(m["source"]["sha256"]), "header sha")
        check(len(raw) == 128 + 8 * (nd + 1) + 3 * nt, "size")
        offs = struct.unpack_from(f"<{nd + 1}Q", raw, 128)
        ids = struct.unpack_from(f"<{nt}H", raw, 128 + 8 * (nd + 1))
        mask = raw[128 + 8 * (nd + 1) + 2 * nt:]
        for d in range(nd):
            a, b = offs[d], offs[d + 1]
            k = mask.index(1, a)  # first trained token: start of the completion
            check(ids[b - 1] == 50256 and mask[b - 1] == 1, "eot")
            check(all(mask[i] == 0 for i in range(a, k)) and all(mask[i] == 1 for i in range(k, b)), "mask shape")
            p, c = decode(ids[a:k]), decode(ids[k:b - 1])
            check(prompts.get(p) == c, f"document {d} decodes to its example: {p!r} {c!r}")
            seen += 1
        toks += nt; docs += nd; trained += sum(mask)
    check((toks, docs, trained) == (sp["tokens"], sp["documents"], sp["trained_tokens"]), "totals")
check(seen == 2200, "every example once")
print("independent reader: 2200 documents decode to their examples")
PY
then ok "manifest and shards check out independently"; else bad "manifest and shards check out independently"; fi
expect "inspect" 0 "$SHOAL" data inspect "$T/ds"
grep -q "valid" "$T/out" && ok "inspect says valid" || bad "inspect says valid"
expect "prepare again" 0 "$SHOAL" data prepare --tokenizer "$VOCAB" --input "$DATA" --out "$T/ds2" --seed 11
cmp -s "$T/ds/train-00000.bin" "$T/ds2/train-00000.bin" && cmp -s "$T/ds/val-00000.bin" "$T/ds2/val-00000.bin" \
  && ok "deterministic shards" || bad "deterministic shards"
expect "out exists" 1 "$SHOAL" data prepare --tokenizer "$VOCAB" --input "$DATA" --out "$T/ds"
grep -q "already exists" "$T/err" && ok "out exists: says so" || bad "out exists: says so"
python3 -c "import sys; p=sys.argv[1]; b=bytearray(open(p,'rb').read()); b[-1]^=1; open(p,'wb').write(b)" "$T/ds/val-00000.bin"
expect "inspect tampered" 1 "$SHOAL" data inspect "$T/ds"
grep -q "does not match" "$T/err" && ok "tampered shard named" || bad "tampered shard named"

# Bad inputs: name, file content (printf format), expected words in the message
G='{"prompt":"Customer: hi\\nRoute:","completion":" billing"}\n'
check_bad() { # check_bad NAME CONTENT_FILE PATTERN
  expect "$1: exit 1" 1 "$SHOAL" data prepare --tokenizer "$VOCAB" --input "$2" --out "$T/bad-out"
  grep -Eq "$3" "$T/err" && ok "$1: message" || { bad "$1: message (want /$3/)"; cat "$T/err"; }
  no_leftovers "$1" "$T/bad-out"
}
printf "$G"'\n'"$G" > "$T/empty_line.jsonl"
check_bad "empty line" "$T/empty_line.jsonl" "empty_line.jsonl:2: empty line"
printf "$G"'{"prompt": "x", }\n' > "$T/bad_json.jsonl"
check_bad "invalid JSON" "$T/bad_json.jsonl" "bad_json.jsonl:2: invalid JSON"
printf "$G$G"'{"prompt": "x"}\n' > "$T/missing.jsonl"
check_bad "missing field" "$T/missing.jsonl" "missing.jsonl:3: missing field \"completion\""
printf "$G"'{"text": "caf\xc3("}\n' > "$T/utf8.jsonl"
check_bad "invalid UTF-8" "$T/utf8.jsonl" "utf8.jsonl:2: invalid UTF-8 at byte"
{ printf "$G"; printf '{"text": "'; head -c 1100000 /dev/zero | tr '\0' a; printf '"}\n'; } > "$T/long.jsonl"
check_bad "oversized line" "$T/long.jsonl" "long.jsonl:2: line is longer than the jsonl_line_bytes limit"
: > "$T/nothing.jsonl"
check_bad "empty file" "$T/nothing.jsonl" "nothing.jsonl: no examples"
check_bad "missing input" "$T/nope.jsonl" "nope.jsonl: cannot open"
expect "missing tokenizer" 1 "$SHOAL" data prepare --tokenizer "$T/no-vocab" --input "$DATA" --out "$T/bad-out"
no_leftovers "missing tokenizer" "$T/bad-out"

finish
