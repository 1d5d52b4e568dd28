#!/usr/bin/env bash
# quickstart.sh: install dependencies, build, and run shoal's main job end to end on the
# embedded defaults. This is the README's first command.
#
# The job: prepare the shipped customer-support routing set (data/support-routing) with the
# GPT-2 tokenizer, fine-tune a small GPT-2 from a random init on it (the loss falls from ~10.8
# to well under 1; about 2-5 minutes on 2 cores), then ask it to route three new messages.
# Outputs land in ${SHOAL_DEMO_DIR:-demo-out}/. SHOAL_DEMO_STEPS shortens the run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh
cmake -S . -B build >build.configure.log 2>&1 || { cat build.configure.log; exit 1; }
cmake --build build -j"$(nproc)" >build.log 2>&1 || { tail -50 build.log; exit 1; }
SHOAL=build/bin/shoal
OUT=${SHOAL_DEMO_DIR:-demo-out}
STEPS=${SHOAL_DEMO_STEPS:-500}
VOCAB=${SHOAL_VOCAB_DIR:-$HOME/.cache/shoal/gpt2-vocab}
# OpenMP threads sleep rather than spin at barriers: much faster when the cores are shared
# (bench/train_cpu measured 0.71 vs 0.58 of the sgemm rate under load).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
rm -rf "$OUT"
mkdir -p "$OUT"

echo "== shoal version"
$SHOAL version

echo "== prepare the customer-support routing set (prompt tokens masked out of the loss)"
$SHOAL data prepare --tokenizer "$VOCAB" --input data/support-routing/support-routing.jsonl \
  --out "$OUT/data"

echo "== fine-tune a 2-layer GPT-2 ($STEPS steps; config deploy/demo/tiny-gpt2.json)"
$SHOAL train --init-config deploy/demo/tiny-gpt2.json --data "$OUT/data" --out "$OUT/model" \
  --steps "$STEPS" --batch 8 --seq 64 --lr 5e-3 --warmup 20 --eval-every 100 --eval-batches 0 \
  --ckpt-every 0 --seed 1

echo "== route new messages with the fine-tuned model (greedy)"
for msg in "I was charged twice for my subscription this month. Please refund one." \
           "The app crashes every time I open the settings page." \
           "How do I delete my account and all my data?"; do
  $SHOAL generate --model "$OUT/model" --tokenizer "$VOCAB" --max-new 3 \
    --prompt "$(printf 'Customer: %s\nRoute:' "$msg")"
done
echo "quickstart: done; the model is in $OUT/model (a Hugging Face GPT-2 directory)"
