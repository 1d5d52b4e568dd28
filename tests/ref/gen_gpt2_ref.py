#!/usr/bin/python3
"""gen_gpt2_ref.py: PyTorch reference for shoal's GPT-2 (worker/model), run by hand.

What: builds a tiny GPT-2 (2 layers, 4 heads, 64 channels, vocab 301, n_positions 40) in plain
PyTorch from tests/data/model/gpt2_tiny/model.safetensors (created here with a fixed seed when
absent, HF tensor names and Conv1D layouts), runs it on a fixed batch (B=3, T=32) with a
non-trivial loss mask, and writes tests/data/model/gpt2_tiny_ref.safetensors with:
  tokens (I32 B,T), targets (I32 B,T), mask (U8 B,T), logits (F32 B,T,V), loss (F32 scalar as
  shape [1]), token_losses (F32 B,T), grad.<param name> for every parameter (F32), and
  adamw_losses (F32 [6]): the loss before each of 5 AdamW steps and after the last.
Why this shape: the model is written from the equations (as HF's modeling_gpt2 computes them),
not with transformers, and runs in float64 so the fixture is the exact answer; the C model in
fp32 must land within the tolerances of tests/model/test_gpt_ref.c.
AdamW: lr 1e-2, betas (0.9, 0.95), eps 1e-8, weight decay 0.1 on 2-D tensors only (matmul
weights and embeddings; none on biases and layernorms), global grad-norm clipping at 1.0
(torch.nn.utils.clip_grad_norm_) before every step, all on the same batch.
Needs Debian's python3-torch and python3-numpy: /usr/bin/python3 tests/ref/gen_gpt2_ref.py
"""
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_DIR = os.path.join(ROOT, "data", "model", "gpt2_tiny")
OUT = os.path.join(ROOT, "data", "model", "gpt2_tiny_ref.safetensors")
L, NH, C, V, P = 2, 4, 64, 301, 40
B, T = 3, 32
EPS = 1e-5
LR, BETAS, ADAM_EPS, WD, CLIP, STEPS = 1e-2, (0.9, 0.95), 1e-8, 0.1, 1.0, 5

DT = {np.float32: "F32", np.int32: "I32", np.uint8: "U8", np.float16: "F16"}


def st_write(path, tensors, meta=None):
    """Minimal safetensors writer (header JSON padded to 8 bytes, then raw little-endian data)."""
    header, blobs, off = {}, [], 0
    if meta:
        header["__metadata__"] = meta
    for name, arr in tensors:
        arr = np.ascontiguousarray(arr)
        b = arr.tobytes()
        header[name] = {"dtype": DT[arr.dtype.type], "shape": list(arr.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(path + ".tmp", path)


def st_read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        dt = {"F32": np.float32, "I32": np.int32, "U8": np.uint8}[e["dtype"]]
        out[name] = np.frombuffer(data[a:b], dtype=dt).reshape(e["shape"])
    return out


def param_specs():
    specs = [("transformer.wte.weight", (V, C)), ("transformer.wpe.weight", (P, C))]
    for l in range(L):
        p = f"transformer.h.{l}."
        specs += [(p + "ln_1.weight", (C,)), (p + "ln_1.bias", (C,)),
                  (p + "attn.c_attn.weight", (C, 3 * C)), (p + "attn.c_attn.bias", (3 * C,)),
                  (p + "attn.c_proj.weight", (C, C)), (p + "attn.c_proj.bias", (C,)),
                  (p + "ln_2.weight", (C,)), (p + "ln_2.bias", (C,)),
                  (p + "mlp.c_fc.weight", (C, 4 * C)), (p + "mlp.c_fc.bias", (4 * C,)),
                  (p + "mlp.c_proj.weight", (4 * C, C)), (p + "mlp.c_proj.bias", (C,))]
    specs += [("transformer.ln_f.weight", (C,)), ("transformer.ln_f.bias", (C,))]
    return specs


def make_weights():
    """Random weights, larger than GPT-2's init so every path carries signal."""
    g = torch.Generator().manual_seed(1234)
    ws = []
    for name, shape in param_specs():
        if ".ln_" in name:
            base = 1.0 if name.endswith("weight") else 0.0
            w = base + 0.1 * torch.randn(shape, generator=g)
        elif name.endswith("bias"):
            w = 0.05 * torch.randn(shape, generator=g)
        else:
            w = 0.08 * torch.randn(shape, generator=g)
        ws.append((name, w.to(torch.float32).numpy()))
    os.makedirs(MODEL_DIR, exist_ok=True)
    st_write(os.path.join(MODEL_DIR, "model.safetensors"), ws, {"format": "pt"})
    cfg = {"activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"],
           "model_type": "gpt2", "n_layer": L, "n_head": NH, "n_embd": C, "vocab_size": V,
           "n_positions": P, "n_ctx": P, "layer_norm_epsilon": EPS, "n_inner": None,
           "bos_token_id": V - 1, "eos_token_id": V - 1, "tie_word_embeddings": True}
    with open(os.path.join(MODEL_DIR, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def forward(p, tokens, targets, mask):
    x = p["transformer.wte.weight"][tokens] + p["transformer.wpe.weight"][torch.arange(T)]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    hs = C // NH
    for l in range(L):
        q_ = f"transformer.h.{l}."
        h = F.layer_norm(x, (C,), p[q_ + "ln_1.weight"], p[q_ + "ln_1.bias"], EPS)
        qkv = h @ p[q_ + "attn.c_attn.weight"] + p[q_ + "attn.c_attn.bias"]
        q, k, v = qkv.split(C, dim=2)
        q = q.view(B, T, NH, hs).transpose(1, 2)
        k = k.view(B, T, NH, hs).transpose(1, 2)
        v = v.view(B, T, NH, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(hs)
        att = att.masked_fill(~causal, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        x = x + y @ p[q_ + "attn.c_proj.weight"] + p[q_ + "attn.c_proj.bias"]
        h = F.layer_norm(x, (C,), p[q_ + "ln_2.weight"], p[q_ + "ln_2.bias"], EPS)
        f = F.gelu(h @ p[q_ + "mlp.c_fc.weight"] + p[q_ + "mlp.c_fc.bias"], approximate="tanh")
        x = x + f @ p[q_ + "mlp.c_proj.weight"] + p[q_ + "mlp.c_proj.bias"]
    x = F.layer_norm(x, (C,), p["transformer.ln_f.weight"], p["transformer.ln_f.bias"], EPS)
    logits = x @ p["transformer.wte.weight"].T
    tl = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), reduction="none").view(B, T)
    m = mask.to(torch.float64)
    loss = (tl * m).sum() / m.sum()
    return logits, tl, loss


def main():
    if not os.path.exists(os.path.join(MODEL_DIR, "model.safetensors")):
        make_weights()
    w = st_read(os.path.join(MODEL_DIR, "model.safetensors"))
    names = [n for n, _ in param_specs()]
    assert sorted(w) == sorted(names), "fixture weights do not match the expected tensors"
    p = {n: torch.tensor(w[n].astype(np.float64), requires_grad=True) for n in names}

    rng = np.random.default_rng(7)
    tokens = rng.integers(0, V, size=(B, T)).astype(np.int32)
    targets = np.concatenate([tokens[:, 1:], rng.integers(0, V, size=(B, 1))], axis=1).astype(np.int32)
    mask = np.ones((B, T), dtype=np.uint8)
    mask[0, :9] = 0          # a "prompt" not trained on
    mask[1, 20:] = 0         # padding at the end
    mask[2, ::3] = 0         # scattered
    tt, tg, tm = (torch.tensor(a.astype(np.int64)) for a in (tokens, targets, mask))

    logits, tl, loss = forward(p, tt, tg, tm)
    loss.backward()
    grads = [("grad." + n, p[n].grad.numpy().astype(np.float32)) for n in names]
    gnorm = math.sqrt(sum(float((p[n].grad ** 2).sum()) for n in names))
    print(f"loss {loss.item():.8f}  grad norm {gnorm:.6f} (clip at {CLIP})")

    decay = [p[n] for n in names if p[n].dim() == 2]
    no_decay = [p[n] for n in names if p[n].dim() != 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=BETAS, eps=ADAM_EPS)
    losses = []
    for step in range(STEPS + 1):
        opt.zero_grad()
        _, _, lo = forward(p, tt, tg, tm)
        losses.append(lo.item())
        if step == STEPS:
            break
        lo.backward()
        torch.nn.utils.clip_grad_norm_(list(p.values()), CLIP)
        opt.step()
    print("adamw losses", " ".join(f"{x:.8f}" for x in losses))

    out = [("tokens", tokens), ("targets", targets), ("mask", mask),
           ("logits", logits.detach().numpy().astype(np.float32)),
           ("loss", np.array([loss.item()], dtype=np.float32)),
           ("token_losses", tl.detach().numpy().astype(np.float32)),
           ("adamw_losses", np.array(losses, dtype=np.float32))] + grads
    meta = {"generator": "tests/ref/gen_gpt2_ref.py", "torch": torch.__version__,
            "adamw": json.dumps({"lr": LR, "betas": BETAS, "eps": ADAM_EPS, "weight_decay": WD,
                                 "decay": "2-D tensors only", "clip_grad_norm": CLIP})}
    st_write(OUT, out, meta)
    print("wrote", OUT, os.path.getsize(OUT), "bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
