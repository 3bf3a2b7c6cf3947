#!/usr/bin/env python3
"""PyTorch's bf16 GEMM on the prefill shape of `cargo bench --bench cpu_ops` ("cpu prefill
512x1024 @ (3072x1024)^T/bf16 weights"): x [512, 1024] times a Linear weight [3072, 1024], both
bf16, on --threads threads; the best of --repeats calls, in GFLOP/s. Run it next to the bench,
alternating, for a same-run ratio.

Usage: /work/venv/bin/python tools/bench_torch_gemm.py [--threads 2] [--repeats 20]
"""
import argparse
import time

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(512, 1024).bfloat16()
    w = torch.randn(3072, 1024).bfloat16()
    for _ in range(3):
        torch.nn.functional.linear(x, w)
    best = float("inf")
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        torch.nn.functional.linear(x, w)
        best = min(best, time.perf_counter() - t0)
    print(f"torch bf16 512x1024 @ (3072x1024)^T: {best * 1e3:.2f} ms, {2 * 512 * 1024 * 3072 / best / 1e9:.0f} GFLOP/s")


if __name__ == "__main__":
    main()
