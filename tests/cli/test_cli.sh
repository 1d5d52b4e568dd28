#!/usr/bin/env bash
# test_cli.sh: the `shoal` binary as a user runs it: help, version, unknown commands, and a
# safetensors round trip through `shoal convert` and `shoal inspect` (F32 -> BF16 -> F32).
set -euo pipefail
SHOAL="${SHOAL_BIN:?}"
SRC="${SHOAL_SOURCE_DIR:?}"
. "${SHOAL_SOURCE_DIR:?}/tests/lib.sh"

expect "help" 0 "$SHOAL" --help
grep -q "version" "$T/out" && ok "help lists version" || bad "help lists version"
expect "no args" 2 "$SHOAL"
expect "unknown command" 2 "$SHOAL" frobnicate
grep -q "unknown command 'frobnicate'" "$T/err" && ok "unknown named" || bad "unknown named"
expect "version" 0 "$SHOAL" version
grep -Eq "^backends: CUDA (yes|no), NCCL (yes|no), MPI (yes|no), BLAS (yes|no), RPC (yes|no)$" "$T/out" \
  && ok "version names backends" || bad "version names backends"

# Round trip: an F32 file written independently of shoal (python's struct + json).
python3 - "$T/a.safetensors" <<'PY'
import json, struct, sys
vals = [0.5, -1.25, 3.0, 100.0, -0.0078125, 2.0]
hdr = {"__metadata__": {"format": "pt"},
       "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},
       "ids": {"dtype": "I64", "shape": [2], "data_offsets": [24, 40]}}
h = json.dumps(hdr).encode(); h += b" " * (-len(h) % 8)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + struct.pack("<6f", *vals) + struct.pack("<2q", 7, -9))
PY
expect "inspect f32" 0 "$SHOAL" inspect "$T/a.safetensors"
grep -q "^w .*F32 *\[2, 3\]" "$T/out" && ok "inspect lists w" || bad "inspect lists w"
expect "convert to bf16" 0 "$SHOAL" convert "$T/a.safetensors" "$T/b.safetensors" --dtype BF16
expect "inspect bf16" 0 "$SHOAL" inspect "$T/b.safetensors"
grep -q "^w .*BF16" "$T/out" && ok "w is bf16" || bad "w is bf16"
grep -q "^ids .*I64" "$T/out" && ok "ids kept I64" || bad "ids kept I64"
expect "convert back" 0 "$SHOAL" convert "$T/b.safetensors" "$T/c.safetensors" --dtype F32
# the values chosen are exact in bf16, so F32 -> BF16 -> F32 equals F32 -> F32 byte for byte
expect "rewrite f32" 0 "$SHOAL" convert "$T/a.safetensors" "$T/a2.safetensors" --dtype F32
cmp -s "$T/a2.safetensors" "$T/c.safetensors" && ok "round trip bit-exact" || bad "round trip bit-exact"
tail -c 40 "$T/a.safetensors" | cmp -s - <(tail -c 40 "$T/c.safetensors") && ok "data bytes equal" \
  || bad "data bytes equal"
expect "bad dtype" 2 "$SHOAL" convert "$T/a.safetensors" "$T/d.safetensors" --dtype Q4
expect "malformed rejected" 1 "$SHOAL" inspect "$SRC/tests/data/safetensors_bad/gap.safetensors"
grep -q "gap" "$T/err" && ok "malformed error says gap" || bad "malformed error says gap"
expect "missing file" 1 "$SHOAL" inspect "$T/nope.safetensors"
[ ! -e "$T/d.safetensors" ] && ok "nothing written on error" || bad "nothing written on error"

finish
