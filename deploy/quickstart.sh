#!/usr/bin/env bash
# quickstart.sh: install dependencies, build, and run shoal's main job end to end on the
# embedded defaults. This is the README's first command.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
cmake -S . -B build >build.configure.log 2>&1 || { cat build.configure.log; exit 1; }
cmake --build build -j"$(nproc)" >/dev/null
SHOAL=build/bin/shoal
OUT=${SHOAL_DEMO_DIR:-demo-out}
mkdir -p "$OUT"

echo "== shoal version"
$SHOAL version

echo "== safetensors round trip: F32 -> BF16 -> F32"
python3 - "$OUT/weights.safetensors" <<'PY'
import json, math, struct, sys
n = 4 * 8
vals = [math.sin(i) for i in range(n)]
hdr = {"__metadata__": {"format": "pt"},
       "transformer.wte.weight": {"dtype": "F32", "shape": [4, 8], "data_offsets": [0, 4 * n]}}
h = json.dumps(hdr).encode(); h += b" " * (-len(h) % 8)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + struct.pack(f"<{n}f", *vals))
PY
$SHOAL inspect "$OUT/weights.safetensors"
$SHOAL convert "$OUT/weights.safetensors" "$OUT/weights-bf16.safetensors" --dtype BF16
$SHOAL inspect "$OUT/weights-bf16.safetensors"
$SHOAL convert "$OUT/weights-bf16.safetensors" "$OUT/weights-back.safetensors" --dtype F32
echo "quickstart: done; outputs in $OUT/"
