#!/usr/bin/env bash
# test_train_cuda.sh (label gpu): `shoal train --device cuda` smoke run on the tiny text set of
# the train tests, with a GPT of head dimension 64 (what bf16 attention takes): bf16 (default)
# and fp32 runs learn (last loss below the first), write the model and checkpoints; a bf16 run
# stopped at step 4 and resumed to 8 ends with the same model.safetensors bytes as an
# uninterrupted one (deterministic kernels, masters and moments restored from the checkpoint);
# the saved model loads back on the CPU (`shoal generate` smoke). Exit 77 without a device,
# failing instead when SHOAL_EXPECT_GPU=1.
set -euo pipefail
SHOAL="${SHOAL_BIN:?}"
SRC="${SHOAL_SOURCE_DIR:?}"
VOCAB="${SHOAL_VOCAB_DIR:-$HOME/.cache/shoal/gpt2-vocab}"
skip() {
  if [ "${SHOAL_EXPECT_GPU:-0}" = 1 ]; then echo "FAIL: $1 (SHOAL_EXPECT_GPU=1)"; exit 1; fi
  echo "skipped: $1"; exit 77
}
if [ ! -s "$VOCAB/encoder.json" ] || [ ! -s "$VOCAB/vocab.bpe" ]; then
  skip "no GPT-2 vocabulary in $VOCAB (run deploy/install-deps.sh, or set SHOAL_VOCAB_DIR)"
fi
. "$SRC/tests/lib.sh"
. "$SRC/tests/dist/train_fixture.sh"
set +e; "$SHOAL" train "${C[@]}" --steps 1 --device cuda --precision fp32 --out "$T/probe" >"$T/out" 2>"$T/err"; rc=$?; set -e
if grep -Eq "no CUDA device is visible|built without CUDA" "$T/err"; then skip "no CUDA device"; fi

echo '{"model_type":"gpt2","n_layer":2,"n_head":2,"n_embd":128,"vocab_size":50257,"n_positions":64}' >"$T/cfg64.json"
G=(--init-config "$T/cfg64.json" --data "$T/ds" --seq 32 --batch 8 --eval-every 10 --eval-batches 4
   --lr 3e-3 --warmup 2 --ckpt-every 4 --device cuda)
loss_fell() { awk '/^first_train_loss:/{f=$2} /^final_train_loss:/{l=$2} END{exit !(l < f)}' "$T/out"; }

expect "bf16 run, 20 steps" 0 "$SHOAL" train "${G[@]}" --steps 20 --out "$T/bf16"
grep -q "precision bf16" "$T/out" && ok "bf16 is the cuda default" || bad "bf16 is the cuda default"
loss_fell && ok "bf16 loss fell" || { bad "bf16 loss fell"; cat "$T/out"; }
test -s "$T/bf16/model.safetensors" && ok "bf16 model written" || bad "bf16 model written"
expect "fp32 run, 20 steps" 0 "$SHOAL" train "${G[@]}" --steps 20 --precision fp32 --out "$T/fp32"
loss_fell && ok "fp32 loss fell" || { bad "fp32 loss fell"; cat "$T/out"; }

expect "bf16 straight to 8" 0 "$SHOAL" train "${G[@]}" --steps 8 --out "$T/straight"
expect "bf16 stopped at 4" 0 "$SHOAL" train "${G[@]}" --steps 8 --stop-after 4 --out "$T/resumed"
expect "bf16 resumed to 8" 0 "$SHOAL" train "${G[@]}" --steps 8 --resume auto --out "$T/resumed"
grep -q "^steps: 4..8" "$T/out" && ok "resumed at step 4" || bad "resumed at step 4"
cmp -s "$T/straight/model.safetensors" "$T/resumed/model.safetensors" \
  && ok "resume on CUDA is bit-exact" || bad "resume on CUDA is bit-exact"
cmp -s "$T/straight/checkpoints/step-00000008/trainer.safetensors" \
  "$T/resumed/checkpoints/step-00000008/trainer.safetensors" \
  && ok "step-8 checkpoints identical" || bad "step-8 checkpoints identical"
finish
