#!/usr/bin/env bash
# test_train_dp_cli.sh: `shoal train` with DP-SGD as a user runs it, on the shipped
# support-routing demo set (prepared with the real GPT-2 tokenizer; skipped, exit 77, without
# the vocabulary) and a tiny random-init GPT: a run stopped after 2 steps and resumed to 4
# shows epsilon in its progress line and writes shoal.json's "dp" object, whose epsilon equals
# `shoal privacy epsilon` for the same (q, sigma_eff, steps, delta) and that of the
# uninterrupted run at 4 steps; a plan over --dp-epsilon refuses to start (exit 1, nothing
# written); DP options without --dp-clip are a usage error (exit 2); --dp-noise-threads 1 of 2
# threads logs the split and gives the same epsilon, and 2 of 2 is refused (exit 1).
set -euo pipefail
SHOAL="${SHOAL_BIN:?}"
SRC="${SHOAL_SOURCE_DIR:?}"
VOCAB="${SHOAL_VOCAB_DIR:-$HOME/.cache/shoal/gpt2-vocab}"
if [ ! -s "$VOCAB/encoder.json" ] || [ ! -s "$VOCAB/vocab.bpe" ]; then
  echo "skipped: no GPT-2 vocabulary in $VOCAB (run deploy/install-deps.sh)"; exit 77
fi
. "$SRC/tests/lib.sh"

"$SHOAL" data prepare --tokenizer "$VOCAB" --input "$SRC/data/support-routing/support-routing.jsonl" \
  --out "$T/data" >/dev/null
cat >"$T/config.json" <<'JSON'
{"model_type": "gpt2", "n_layer": 2, "n_head": 2, "n_embd": 32, "vocab_size": 50257,
 "n_positions": 64, "n_ctx": 64, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-05}
JSON
COMMON=(--config "$T/config.json" --data "$T/data" --steps 4 --batch 8 --seq 32 --ckpt-every 2
        --warmup 1 --eval-batches 2 --threads 2 --dp-clip 1.0 --dp-noise 1.0 --dp-delta 1e-5
        --dp-noise-mode fast)

expect "dp run, stopped at step 2" 0 "$SHOAL" train "${COMMON[@]}" --out "$T/run" --stop-after 2
grep -Eq "eps [0-9]+\.[0-9]{4}" "$T/err" && ok "progress line shows epsilon" || bad "progress line shows epsilon"
test -s "$T/run/checkpoints/step-00000002/dp_accountant.json" && ok "accountant saved with the checkpoint" \
  || bad "accountant saved with the checkpoint"
expect "dp run resumed to step 4" 0 "$SHOAL" train "${COMMON[@]}" --out "$T/run" --resume
grep -q "^steps: 2..4" "$T/out" && ok "resumed at step 2" || bad "resumed at step 2"
expect "dp run, uninterrupted" 0 "$SHOAL" train "${COMMON[@]}" --out "$T/straight"

read -r Q SE EPS STEPS < <(python3 - "$T/run/shoal.json" <<'PY'
import json, sys
dp = json.load(open(sys.argv[1]))["dp"]
assert dp["sampler"] == "poisson" and dp["delta"] == 1e-5 and dp["noise_multiplier"] == 1.0
assert dp["accountant"]["version"] >= 1 and dp["clip"] == 1.0
print(repr(dp["sample_rate"]), repr(dp["accounted_noise_multiplier"]), repr(dp["epsilon"]), dp["steps"])
PY
) && ok "shoal.json has the dp fields" || bad "shoal.json has the dp fields"
[ "${STEPS:-}" = 4 ] && ok "accountant counts 4 steps across the resume" || bad "accountant counts 4 steps (got ${STEPS:-none})"
CLI=$("$SHOAL" privacy epsilon --noise "$SE" --sample-rate "$Q" --steps 4 --delta 1e-5 | sed -n 's/^epsilon: //p')
python3 -c "import sys; e, c = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if abs(e - c) <= 5e-6 * e else 1)" \
  "$EPS" "$CLI" && ok "epsilon $EPS == shoal privacy epsilon $CLI" || bad "epsilon $EPS vs shoal privacy epsilon $CLI"
EPS2=$(python3 -c "import json,sys; print(repr(json.load(open(sys.argv[1]))['dp']['epsilon']))" "$T/straight/shoal.json")
[ "$EPS2" = "$EPS" ] && ok "resumed epsilon == uninterrupted epsilon" || bad "resumed $EPS vs uninterrupted $EPS2"

expect "plan over the budget refuses to start" 1 "$SHOAL" train "${COMMON[@]}" --out "$T/over" --dp-epsilon 0.01
grep -q "budget" "$T/err" && ok "refusal names the budget" || bad "refusal names the budget"
[ ! -e "$T/over/checkpoints" ] && ok "refused run wrote no checkpoint" || bad "refused run wrote no checkpoint"
expect "dp options without --dp-clip" 2 "$SHOAL" train --config "$T/config.json" --data "$T/data" --out "$T/x" --dp-noise 1
expect "bad noise mode" 2 "$SHOAL" train "${COMMON[@]}" --out "$T/x" --dp-noise-mode wobbly
expect "one of two threads drawing noise ahead" 0 env SHOAL_LOG_LEVEL=info "$SHOAL" train "${COMMON[@]}" \
  --out "$T/split" --dp-noise-threads 1
grep -q "dp-sgd on 1 model thread(s), noise drawn ahead on 1 thread(s)" "$T/err" \
  && ok "the split is logged" || bad "the split is logged"
EPS3=$(python3 -c "import json,sys; print(repr(json.load(open(sys.argv[1]))['dp']['epsilon']))" "$T/split/shoal.json")
[ "$EPS3" = "$EPS" ] && ok "split run: same epsilon" || bad "split run: epsilon $EPS3 vs $EPS"
expect "noise threads leaving none for the model" 1 "$SHOAL" train "${COMMON[@]}" --out "$T/x2" \
  --dp-noise-threads 2
grep -q "leaves no thread for the model" "$T/err" && ok "refusal says why" || bad "refusal says why"
expect "--dp-noise-threads without --dp-clip" 2 "$SHOAL" train --config "$T/config.json" \
  --data "$T/data" --out "$T/x3" --dp-noise-threads 1
expect "train --help" 0 "$SHOAL" train --help

finish
