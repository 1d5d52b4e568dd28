#!/usr/bin/env bash
# test_train_cuda.sh (label gpu): `shoal train --device cuda` smoke runs on a tiny text set
# prepared with the tiny BPE fixture in git (tests/data/tokenizer/tiny), with a GPT of head
# dimension 64 (what bf16 attention takes): bf16 (the cuda default) and fp32 runs learn (last
# loss below the first) and write the model; a bf16 run stopped at step 4 and resumed to 8
# ends with the same model.safetensors and checkpoint bytes as an uninterrupted one
# (deterministic kernels; masters and moments restored from the checkpoint). Exit 77 without a
# device, failing instead when SHOAL_EXPECT_GPU=1.
set -euo pipefail
SHOAL="${SHOAL_BIN:?}"
SRC="${SHOAL_SOURCE_DIR:?}"
VOCAB="$SRC/tests/data/tokenizer/tiny/openai" # a byte-level BPE of a few hundred ids, in git
skip() {
  if [ "${SHOAL_EXPECT_GPU:-0}" = 1 ]; then echo "FAIL: $1 (SHOAL_EXPECT_GPU=1)"; exit 1; fi
  echo "skipped: $1"; exit 77
}
. "$SRC/tests/lib.sh"
python3 - "$T/t.jsonl" <<'PY'
import json, random, sys
r = random.Random(3)
w = "the cat sat on a mat and dog ran to big red blue house car tree sun moon".split()
with open(sys.argv[1], "w") as f:
    for _ in range(300):
        f.write(json.dumps({"text": " ".join(r.choice(w) for _ in range(r.randint(8, 30)))}) + "\n")
PY
"$SHOAL" data prepare --tokenizer "$VOCAB" --input "$T/t.jsonl" --out "$T/ds" --val-fraction 0.1 >/dev/null
echo '{"model_type":"gpt2","n_layer":1,"n_head":2,"n_embd":16,"vocab_size":512,"n_positions":32}' >"$T/cfg.json"
C=(--init-config "$T/cfg.json" --data "$T/ds" --seq 16 --eval-every 10 --eval-batches 4 --lr 1e-2 --warmup 2)
set +e; "$SHOAL" train "${C[@]}" --steps 3 --device cuda --precision fp32 --out "$T/probe" >"$T/out" 2>"$T/err"; rc=$?; set -e
if grep -Eq "no CUDA device is visible|built without CUDA" "$T/err"; then skip "no CUDA device"; fi
if [ "$rc" -ne 0 ]; then bad "fp32 probe run on cuda (rc $rc)"; cat "$T/err"; fi

echo '{"model_type":"gpt2","n_layer":2,"n_head":2,"n_embd":128,"vocab_size":512,"n_positions":64}' >"$T/cfg64.json"
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
