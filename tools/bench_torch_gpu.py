#!/usr/bin/env python3
"""PyTorch peer for the tensor crate's GPU (wgpu) benchmarks, on an NVIDIA GPU.

Cases (float32 unless --bf16 adds the bf16 matmuls too):
  matmul_N      [N,N] @ [N,N] for N in 1024, 2048, 4096           GFLOP/s (2*N^3 flops)
  matvec_4096   [1,4096] @ [4096,4096]                             GFLOP/s and GB/s of weight traffic
  add_NM        c = a + b over --add-elements f32 elements         GB/s (2 reads + 1 write)

TF32 is switched off (torch.backends.cuda.matmul.allow_tf32 = False, float32 matmul
precision "highest"), so the f32 matmuls are true f32 as the WGSL kernels compute
them; the header line records the flags actually in force.

Timing: CUDA events around a burst of --inner calls (to amortise launch latency for
the small cases), --repeats bursts after --warmup untimed ones; the median burst is
reported per call. Each case prints one JSON line, then a table follows.

--device cpu runs the same code on the CPU (wall-clock timing), to test the script
on a machine without a GPU; its numbers are not the peer.

Usage:
  python tools/bench_torch_gpu.py                 # on a machine with an NVIDIA GPU
  python tools/bench_torch_gpu.py --bf16          # add bf16 matmuls (tensor cores)
  python tools/bench_torch_gpu.py --device cpu --sizes 256 --add-elements 1048576
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch


def parse_args():
    ap = argparse.ArgumentParser(description="PyTorch GPU peer: f32 matmul/matvec GFLOP/s and "
                                             "elementwise add GB/s, JSON lines + table.")
    ap.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (default cuda)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096],
                    help="square matmul sizes (default 1024 2048 4096)")
    ap.add_argument("--matvec", type=int, default=4096, help="matvec size K=N (default 4096)")
    ap.add_argument("--add-elements", type=int, default=64 << 20,
                    help="elements of the add case (default 64M = 256 MiB per array)")
    ap.add_argument("--bf16", action="store_true", help="also time bf16 matmuls")
    ap.add_argument("--repeats", type=int, default=10, help="timed bursts per case (median)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed bursts per case")
    ap.add_argument("--inner", type=int, default=0,
                    help="calls per burst (default: chosen per case so a burst takes >= ~10 ms)")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


def disable_tf32():
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")


class Timer:
    """Times a burst of calls: CUDA events on a GPU, perf_counter on the CPU."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"
        self.device = device

    def burst(self, fn, inner):
        if self.cuda:
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(inner):
                fn()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        return time.perf_counter() - t0

    def per_call(self, fn, args):
        if self.cuda:
            torch.cuda.synchronize(self.device)
        inner = args.inner
        if inner <= 0:  # size the burst from one call: aim at >= 10 ms per burst
            one = max(self.burst(fn, 1), 1e-6)
            inner = int(min(1000, max(1, 0.01 / one)))
        for _ in range(args.warmup):
            self.burst(fn, inner)
        times = [self.burst(fn, inner) / inner for _ in range(args.repeats)]
        return statistics.median(times), min(times), inner


RESULTS = []


def report(row):
    RESULTS.append(row)
    print(json.dumps(row), flush=True)


def bench_matmul(timer, device, n, dtype, args):
    g = torch.Generator(device=device).manual_seed(args.seed)
    a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
    c = torch.empty(n, n, device=device, dtype=dtype)
    med, best, inner = timer.per_call(lambda: torch.matmul(a, b, out=c), args)
    # correctness spot check against float64 on a few rows
    ref = (a[:4].double() @ b.double()).to(dtype)
    err = (c[:4].double() - ref.double()).abs().max().item()
    flops = 2.0 * n ** 3
    report({"case": f"matmul_{n}", "dtype": str(dtype).replace("torch.", ""),
            "median_ms": med * 1e3, "gflops": flops / med / 1e9,
            "best_gflops": flops / best / 1e9, "inner": inner, "max_abs_err_rows0to3": err})


def bench_matvec(timer, device, n, args):
    g = torch.Generator(device=device).manual_seed(args.seed)
    x = torch.randn(1, n, device=device, generator=g)
    w = torch.randn(n, n, device=device, generator=g)
    y = torch.empty(1, n, device=device)
    med, best, inner = timer.per_call(lambda: torch.matmul(x, w, out=y), args)
    nbytes = w.numel() * w.element_size()
    report({"case": f"matvec_{n}", "dtype": "float32", "median_ms": med * 1e3,
            "gflops": 2.0 * n * n / med / 1e9, "weight_gbps": nbytes / med / 1e9,
            "best_weight_gbps": nbytes / best / 1e9, "inner": inner})


def bench_add(timer, device, n, args):
    g = torch.Generator(device=device).manual_seed(args.seed)
    a = torch.randn(n, device=device, generator=g)
    b = torch.randn(n, device=device, generator=g)
    c = torch.empty(n, device=device)
    med, best, inner = timer.per_call(lambda: torch.add(a, b, out=c), args)
    nbytes = 3 * n * 4
    report({"case": f"add_{n / (1 << 20):g}M", "dtype": "float32", "elements": n,
            "median_ms": med * 1e3, "gbps": nbytes / med / 1e9,
            "best_gbps": nbytes / best / 1e9, "inner": inner})


def main():
    args = parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device visible to torch; use --device cpu to test the script")
        torch.cuda.set_device(device)
    disable_tf32()
    header = {"case": "env", "torch": torch.__version__, "python": platform.python_version(),
              "device": str(device),
              "allow_tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
              "allow_tf32_cudnn": torch.backends.cudnn.allow_tf32,
              "float32_matmul_precision": torch.get_float32_matmul_precision()}
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        header.update({"gpu": p.name, "capability": f"{p.major}.{p.minor}",
                       "sm_count": p.multi_processor_count,
                       "memory_gib": round(p.total_memory / 2 ** 30, 1),
                       "cuda": torch.version.cuda})
    else:
        header["cpu_threads"] = torch.get_num_threads()
    print(json.dumps(header), flush=True)

    timer = Timer(device)
    dtypes = [torch.float32] + ([torch.bfloat16] if args.bf16 else [])
    for dtype in dtypes:
        for n in args.sizes:
            bench_matmul(timer, device, n, dtype, args)
    bench_matvec(timer, device, args.matvec, args)
    bench_add(timer, device, args.add_elements, args)

    print()
    print(f"{'case':<16}{'dtype':<10}{'median ms':>12}  result")
    for r in RESULTS:
        if "weight_gbps" in r:
            res = f"{r['gflops']:.1f} GFLOP/s, {r['weight_gbps']:.1f} GB/s weights"
        elif "gflops" in r:
            res = f"{r['gflops']:.1f} GFLOP/s (best {r['best_gflops']:.1f})"
        else:
            res = f"{r['gbps']:.1f} GB/s (best {r['best_gbps']:.1f})"
        print(f"{r['case']:<16}{r['dtype']:<10}{r['median_ms']:>12.4f}  {res}")
    name = header.get("gpu", "cpu")
    print(f"\ntorch {torch.__version__} on {name}; TF32 matmul "
          f"{'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
