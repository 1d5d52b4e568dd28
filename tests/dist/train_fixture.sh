# train_fixture.sh: sourced by the `shoal train` tests with T (a scratch directory), SHOAL and
# VOCAB set: writes a small text set (every target trained on, so micro-batches carry equal
# token counts), prepares it with the real GPT-2 tokenizer into $T/ds, writes a tiny GPT-2
# config (1 layer, 16 wide) to $T/cfg.json, and sets C, the common `shoal train` flags.
# Returns non-zero when preparing fails.
python3 - "$T/t.jsonl" <<'PY'
import json, random, sys
r = random.Random(3)
w = "the cat sat on a mat and dog ran to big red blue house car tree sun moon".split()
with open(sys.argv[1], "w") as f:
    for _ in range(300):
        f.write(json.dumps({"text": " ".join(r.choice(w) for _ in range(r.randint(8, 30)))}) + "\n")
PY
echo '{"model_type":"gpt2","n_layer":1,"n_head":2,"n_embd":16,"vocab_size":50257,"n_positions":32}' >"$T/cfg.json"
C=(--init-config "$T/cfg.json" --data "$T/ds" --seq 16 --eval-every 10 --eval-batches 4 --threads 1
   --lr 1e-2 --warmup 2)
"$SHOAL" data prepare --tokenizer "$VOCAB" --input "$T/t.jsonl" --out "$T/ds" --val-fraction 0.1 >/dev/null
