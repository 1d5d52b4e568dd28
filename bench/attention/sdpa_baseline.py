#!/usr/bin/env python3
"""sdpa_baseline.py: PyTorch scaled_dot_product_attention (flash backend), causal, bf16, timed
like bench_attention.c: CUDA events, warm-up, median of N, inputs rotated over 3 sets, FLOPs as
FlashAttention counts them (forward 4*B*H*T^2*D / 2 causal, backward 2.5x forward).

Prints "sdpa fwd|bwd B H T D ms tflops" lines (same shapes as the C harness); exits 77 when
torch or a CUDA device is missing. Label bench; run by bench/attention/run.sh.
"""
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("skipped: torch not installed")
    sys.exit(77)

if not torch.cuda.is_available():
    print("skipped: no CUDA device")
    sys.exit(77)

try:
    from torch.nn.attention import SDPBackend, sdpa_kernel

    def flash_only():
        return sdpa_kernel([SDPBackend.FLASH_ATTENTION])
except ImportError:  # older torch
    def flash_only():
        return torch.backends.cuda.sdp_kernel(enable_flash=True, enable_math=False,
                                              enable_mem_efficient=False)

SETS = 3
SHAPES = [(8, 12, 1024, 64), (16, 12, 1024, 64), (8, 6, 1024, 128), (16, 6, 1024, 128)]


def median_ms(fn, warm, reps):
    for i in range(warm):
        fn(i % SETS)
    times = []
    for i in range(reps):
        e0 = torch.cuda.Event(enable_timing=True)
        e1 = torch.cuda.Event(enable_timing=True)
        e0.record()
        fn(i % SETS)
        e1.record()
        e1.synchronize()
        times.append(e0.elapsed_time(e1))
    times.sort()
    return times[len(times) // 2]


def main():
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    print(f"device {torch.cuda.get_device_name(0)} torch {torch.__version__}")
    for (B, H, T, D) in SHAPES:
        qs, ks, vs, gs, outs = [], [], [], [], []
        for _ in range(SETS):
            q, k, v = (torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16,
                                   requires_grad=True) for _ in range(3))
            qs.append(q), ks.append(k), vs.append(v)
            gs.append(torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16))
        with flash_only():
            for s in range(SETS):
                outs.append(F.scaled_dot_product_attention(qs[s], ks[s], vs[s], is_causal=True))

            def fwd(s):
                with torch.no_grad():
                    F.scaled_dot_product_attention(qs[s], ks[s], vs[s], is_causal=True)

            def bwd(s):
                torch.autograd.grad(outs[s], (qs[s], ks[s], vs[s]), gs[s], retain_graph=True)

            tf = median_ms(fwd, 5, reps)
            tb = median_ms(bwd, 5, reps)
        ff = 4.0 * B * H * T * T * D / 2
        print(f"sdpa fwd {B} {H} {T} {D} {tf:.4f} {ff / (tf * 1e-3) / 1e12:.2f}")
        print(f"sdpa bwd {B} {H} {T} {D} {tb:.4f} {2.5 * ff / (tb * 1e-3) / 1e12:.2f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
