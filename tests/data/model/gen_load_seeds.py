#!/usr/bin/env python3
"""gen_load_seeds.py: seed corpus for tests/fuzz/fuzz_gpt_load.c (plain python3, no torch).

Writes safetensors files for the fuzz target's model (n_layer 1, n_head 2, n_embd 8, vocab 16,
n_positions 8): one complete F32 file, one in original-gpt2 naming with BF16 and an attn.bias
buffer, and broken variants (missing tensor, wrong shape, wrong dtype, extra tensor).
Run: python3 tests/data/model/gen_load_seeds.py
"""
import json, os, struct

C, V, P = 8, 16, 8
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "load_seeds")


def specs(prefix="transformer."):
    s = [("wte.weight", [V, C]), ("wpe.weight", [P, C])]
    s += [("h.0.ln_1.weight", [C]), ("h.0.ln_1.bias", [C]), ("h.0.attn.c_attn.weight", [C, 3 * C]),
          ("h.0.attn.c_attn.bias", [3 * C]), ("h.0.attn.c_proj.weight", [C, C]),
          ("h.0.attn.c_proj.bias", [C]), ("h.0.ln_2.weight", [C]), ("h.0.ln_2.bias", [C]),
          ("h.0.mlp.c_fc.weight", [C, 4 * C]), ("h.0.mlp.c_fc.bias", [4 * C]),
          ("h.0.mlp.c_proj.weight", [4 * C, C]), ("h.0.mlp.c_proj.bias", [C])]
    s += [("ln_f.weight", [C]), ("ln_f.bias", [C])]
    return [(prefix + n, sh) for n, sh in s]


def write(name, tensors, dtype="F32"):
    size = {"F32": 4, "BF16": 2, "F16": 2, "I32": 4}
    header, off, blob = {"__metadata__": {"format": "pt"}}, 0, b""
    for i, (n, sh, dt) in enumerate((t if len(t) == 3 else (*t, dtype)) for t in tensors):
        cnt = 1
        for d in sh:
            cnt *= d
        nb = cnt * size[dt]
        data = bytes(((i * 7 + j) % 50 + (0x3c if dt in ("F16", "BF16") and j % 2 else 0)) & 0xff
                     for j in range(nb))
        header[n] = {"dtype": dt, "shape": sh, "data_offsets": [off, off + nb]}
        blob += data
        off += nb
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + blob)


os.makedirs(OUT, exist_ok=True)
full = specs()
write("ok_f32.safetensors", full)
write("ok_gpt2_naming_bf16.safetensors", specs("") + [("h.0.attn.bias", [1, 1, P, P], "F32")], "BF16")
write("missing_tensor.safetensors", full[:-1])
write("wrong_shape.safetensors", [(n, [sh[1], sh[0]] if n.endswith("c_attn.weight") else sh) for n, sh in full])
write("wrong_dtype.safetensors", full, "I32")
write("extra_tensor.safetensors", full + [("transformer.h.1.ln_1.weight", [C])])
