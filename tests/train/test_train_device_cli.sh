#!/usr/bin/env bash
# test_train_device_cli.sh: `shoal train --device/--precision` where no GPU is (CI): --device
# cuda fails (exit 1) with a message naming why (no device, or a build without CUDA) and writes
# nothing; --device auto falls back to the CPU, says so, and trains; --precision bf16 on the CPU
# is refused (exit 1); bad values are usage errors (exit 2). On a machine with a device the
# cuda cases belong to test_train_cuda.sh (label gpu), so this one skips (77) there.
set -euo pipefail
SHOAL="${SHOAL_BIN:?}"
SRC="${SHOAL_SOURCE_DIR:?}"
VOCAB="${SHOAL_VOCAB_DIR:-$HOME/.cache/shoal/gpt2-vocab}"
if [ ! -s "$VOCAB/encoder.json" ] || [ ! -s "$VOCAB/vocab.bpe" ]; then
  echo "skipped: no GPT-2 vocabulary in $VOCAB (run deploy/install-deps.sh)"; exit 77
fi
. "$SRC/tests/lib.sh"
. "$SRC/tests/dist/train_fixture.sh"

set +e; "$SHOAL" train "${C[@]}" --steps 3 --device cuda --out "$T/probe" >"$T/out" 2>"$T/err"; rc=$?; set -e
if [ "$rc" -eq 0 ]; then echo "skipped: a CUDA device is present (see test_train_cuda.sh)"; exit 77; fi

expect "--device cuda without a device fails" 1 "$SHOAL" train "${C[@]}" --steps 2 --device cuda --out "$T/cuda"
grep -Eq "no CUDA device is visible|built without CUDA" "$T/err" && ok "the message names why" \
  || { bad "the message names why"; cat "$T/err"; }
test ! -e "$T/cuda/model.safetensors" && ok "nothing written" || bad "nothing written"
expect "--device auto falls back to the CPU" 0 "$SHOAL" train "${C[@]}" --steps 3 --device auto --out "$T/auto"
grep -q "training on the CPU" "$T/err" && ok "the fallback is logged" || bad "the fallback is logged"
grep -q "^device: cpu, precision fp32" "$T/out" && ok "device line says cpu fp32" || bad "device line says cpu fp32"
test -s "$T/auto/model.safetensors" && ok "auto run wrote the model" || bad "auto run wrote the model"
expect "--precision bf16 on the CPU is refused" 1 "$SHOAL" train "${C[@]}" --steps 2 --precision bf16 --out "$T/bf"
grep -q "needs a CUDA device" "$T/err" && ok "bf16 refusal says why" || bad "bf16 refusal says why"
expect "--device bogus is a usage error" 2 "$SHOAL" train "${C[@]}" --device tpu --out "$T/x"
expect "--precision fp8 is a usage error" 2 "$SHOAL" train "${C[@]}" --precision fp8 --out "$T/x"
finish
