#!/usr/bin/env python3
"""torch_baseline.py: the baseline of bench_train_gpu: the same GPT-2 124M training step in
PyTorch on the same device: bf16 autocast over fp32 weights (PyTorch's usual mixed precision),
tanh-GELU, flash SDPA (causal), tied lm_head, fused AdamW (lr 3e-4, betas 0.9/0.95, weight
decay 0.1 on 2-D tensors), clip 1.0, no torch.compile. Same FLOP count and peak as the C
harness: per token 6*N (N without wpe) + 6*L*T*C; MFU against 989.4 TFLOP/s on H100 SXM/H200,
756 on H100 PCIe, or --peak-tflops.

Prints "torch: ... ms/step ... tok/s ... MFU" lines; exits 77 without torch or a CUDA device.
Usage: torch_baseline.py [--B 8] [--T 1024] [--accum 1] [--warmup 3] [--steps 10]
"""
import argparse
import math
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("skipped: torch not installed")
    sys.exit(77)
if not torch.cuda.is_available():
    print("skipped: no CUDA device")
    sys.exit(77)

p = argparse.ArgumentParser()
for name, default in (("B", 8), ("T", 1024), ("accum", 1), ("warmup", 3), ("steps", 10)):
    p.add_argument("--" + name, type=int, default=default)
p.add_argument("--peak-tflops", type=float, default=0.0)
a = p.parse_args()
L, H, C, V, P = 12, 12, 768, 50257, 1024


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(C), nn.LayerNorm(C)
        self.c_attn, self.c_proj = nn.Linear(C, 3 * C), nn.Linear(C, C)
        self.c_fc, self.mlp_proj = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)

    def forward(self, x):
        Bx, Tx, _ = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(C, dim=2)
        q, k, v = (t.view(Bx, Tx, H, C // H).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).contiguous().view(Bx, Tx, C))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(V, C), nn.Embedding(P, C)
        self.h = nn.ModuleList(Block() for _ in range(L))
        self.ln_f = nn.LayerNorm(C)

    def forward(self, idx, targets):
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
        for b in self.h:
            x = b(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)
        return F.cross_entropy(logits.float().view(-1, V), targets.view(-1))


torch.manual_seed(1)
dev = torch.device("cuda")
m = GPT().to(dev)
for n_, w in m.named_parameters():
    if w.dim() == 2:
        nn.init.normal_(w, 0.0, 0.02 / math.sqrt(2 * L) if "proj" in n_ else 0.02)
    elif n_.endswith("bias"):
        nn.init.zeros_(w)
decay = [w for w in m.parameters() if w.dim() == 2]
nodecay = [w for w in m.parameters() if w.dim() < 2]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                         {"params": nodecay, "weight_decay": 0.0}],
                        lr=3e-4, betas=(0.9, 0.95), eps=1e-8, fused=True)
idx = torch.randint(0, V, (a.B, a.T), device=dev)
tgt = torch.roll(idx, -1, dims=1)
N = sum(w.numel() for w in m.parameters()) - P * C
flop_tok = 6 * N + 6 * L * a.T * C
name = torch.cuda.get_device_name(0)
peak = a.peak_tflops or (756.0 if "H100" in name and "PCIe" in name else
                         989.4 if ("H100" in name or "H200" in name) else 0.0)
times = []
for s in range(a.warmup + a.steps):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    for _ in range(a.accum):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = m(idx, tgt) / a.accum
        loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    opt.step()
    torch.cuda.synchronize()
    el = time.perf_counter() - t0
    if s >= a.warmup:
        times.append(el)
    print(f"torch step {s + 1}{' (warm-up)' if s < a.warmup else ''}: {el * 1e3:.2f} ms, "
          f"loss {loss.item() * a.accum:.4f}")
times.sort()
med = times[len(times) // 2]
tps = a.B * a.T * a.accum / med
tflops = tps * flop_tok / 1e12
mfu = f"MFU {100 * tflops / peak:.1f}% of {peak:.1f} TFLOP/s" if peak else "MFU n/a"
print(f'torch {torch.__version__} device="{name}" B={a.B} T={a.T} accum={a.accum}: '
      f"{med * 1e3:.2f} ms/step median, {tps:.0f} tok/s, {tflops:.1f} TFLOP/s, {mfu}")
