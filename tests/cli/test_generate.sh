#!/usr/bin/env bash
# test_generate.sh: `shoal generate` as a user runs it. A small GPT-2 (1 layer, vocab 283) with
# random weights is written here by Python's struct/json, independent of shoal, next to the tiny
# test tokenizer; then: greedy output is repeatable and starts with the prompt, sampling with a
# seed is repeatable and changes with the seed, and each bad input gets its exit code.
set -euo pipefail
SHOAL="${SHOAL_BIN:?}"
SRC="${SHOAL_SOURCE_DIR:?}"
. "${SHOAL_SOURCE_DIR:?}/tests/lib.sh"

M="$T/model"; mkdir -p "$M"
cp "$SRC"/tests/data/tokenizer/tiny/hf/* "$M/"
python3 - "$M" <<'PY'
import json, random, struct, sys
d = sys.argv[1]; V, P, C, L = 283, 64, 16, 1
cfg = {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": V,
       "n_positions": P, "n_embd": C, "n_layer": L, "n_head": 2, "layer_norm_epsilon": 1e-5,
       "activation_function": "gelu_new"}
json.dump(cfg, open(d + "/config.json", "w"))
rnd = random.Random(7)
shapes = {"wte.weight": [V, C], "wpe.weight": [P, C], "ln_f.weight": [C], "ln_f.bias": [C]}
for l in range(L):
    h = f"h.{l}."
    shapes.update({h + "ln_1.weight": [C], h + "ln_1.bias": [C], h + "ln_2.weight": [C],
                   h + "ln_2.bias": [C], h + "attn.c_attn.weight": [C, 3 * C],
                   h + "attn.c_attn.bias": [3 * C], h + "attn.c_proj.weight": [C, C],
                   h + "attn.c_proj.bias": [C], h + "mlp.c_fc.weight": [C, 4 * C],
                   h + "mlp.c_fc.bias": [4 * C], h + "mlp.c_proj.weight": [4 * C, C],
                   h + "mlp.c_proj.bias": [C]})
hdr, blobs, off = {"__metadata__": {"format": "pt"}}, [], 0
for name, shp in shapes.items():
    n = 1
    for s in shp: n *= s
    if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name == "ln_f.weight":
        vals = [1.0] * n
    else:
        vals = [rnd.gauss(0, 0.5) for _ in range(n)]
    blobs.append(struct.pack(f"<{n}f", *vals))
    hdr["transformer." + name] = {"dtype": "F32", "shape": shp, "data_offsets": [off, off + 4 * n]}
    off += 4 * n
h = json.dumps(hdr).encode(); h += b" " * (-len(h) % 8)
with open(d + "/model.safetensors", "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
PY

expect "greedy" 0 "$SHOAL" generate --model "$M" --prompt "hello world" --max-new 12 --threads 1
cp "$T/out" "$T/greedy1"
head -c 11 "$T/greedy1" | grep -q "^hello world$" && ok "output starts with the prompt" \
  || bad "output starts with the prompt"
[ "$(wc -c <"$T/greedy1")" -gt 12 ] && ok "tokens were generated" || bad "tokens were generated"
expect "greedy again" 0 "$SHOAL" generate --model "$M" --prompt "hello world" --max-new 12 --threads 2
cmp -s "$T/out" "$T/greedy1" && ok "greedy is repeatable" || bad "greedy is repeatable"
expect "sample seed 3" 0 "$SHOAL" generate --model "$M" --prompt "the cat" --max-new 24 \
  --temperature 1.5 --top-k 50 --top-p 0.95 --seed 3
cp "$T/out" "$T/s3"
expect "sample seed 3 again" 0 "$SHOAL" generate --model "$M" --prompt "the cat" --max-new 24 \
  --temperature 1.5 --top-k 50 --top-p 0.95 --seed 3
cmp -s "$T/out" "$T/s3" && ok "seeded sampling is repeatable" || bad "seeded sampling is repeatable"
expect "sample seed 4" 0 "$SHOAL" generate --model "$M" --prompt "the cat" --max-new 24 \
  --temperature 1.5 --top-k 50 --top-p 0.95 --seed 4
cmp -s "$T/out" "$T/s3" && bad "another seed gives other text" || ok "another seed gives other text"

expect "help" 0 "$SHOAL" generate --help
expect "missing --prompt" 2 "$SHOAL" generate --model "$M"
expect "bad --top-p" 2 "$SHOAL" generate --model "$M" --prompt x --top-p 2
expect "unknown flag" 2 "$SHOAL" generate --model "$M" --prompt x --frobnicate 1
expect "missing model dir" 1 "$SHOAL" generate --model "$T/nope" --prompt x
grep -q "cannot load model" "$T/err" && ok "error names the model" || bad "error names the model"
long=$(python3 -c 'print("ab " * 200)')
expect "prompt longer than the context" 1 "$SHOAL" generate --model "$M" --prompt "$long"
grep -q "context is 64" "$T/err" && ok "error gives the context length" || bad "error gives the context length"
VOCAB="${SHOAL_VOCAB_DIR:-$HOME/.cache/shoal/gpt2-vocab}"
if [ -s "$VOCAB/encoder.json" ]; then
  expect "tokenizer larger than the model" 1 "$SHOAL" generate --model "$M" --tokenizer "$VOCAB" --prompt x
  grep -q "has 50257 tokens but the model's vocabulary is 283" "$T/err" && ok "vocab mismatch named" \
    || bad "vocab mismatch named"
fi

finish
