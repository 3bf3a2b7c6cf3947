#!/usr/bin/env python3
"""PyTorch + transformers peer for the llm crate's decoder benchmark.

Builds `Qwen3ForCausalLM` from the Qwen3-0.6B config (random weights, fixed seed; no
download) and measures, at batch 1:

  prefill   tokens/s for a --prompt-len token prompt (one forward pass that fills the KV
            cache; only the last position's logits are computed, as generation does;
            --full-logits computes all of them)
  decode    tokens/s for --new-tokens greedy steps with the KV cache, after a
            --decode-prompt-len token prompt; only the decode steps are timed

for each --dtype: `f32` (weights and compute in float32) and `bf16` (weights cast to
bfloat16 with `model.to(torch.bfloat16)`, so compute is bfloat16 too, as PyTorch
does with bf16 weights). Attention is transformers' "eager" implementation. A plain
f32 matmul at 1024 and 2048 is measured with the same thread count for
cross-reference with tools/bench_numpy.py.

On the CPU the thread count is set with torch.set_num_threads (--threads, default 2,
the machine's core count). --device cuda runs the same measurements on a GPU, with
torch.cuda.synchronize() around every timed region.

Noise: on a shared machine each row records `busy_before` (fraction of CPU time in use
during the second before the measurement, this process idle) and `others_during`
(fraction of CPU time other processes used while it ran); see tools/cpu_load.py.
--wait-idle S waits up to S seconds for a quiet second first.

Output: one JSON line per measurement, then a table.

Usage:
  python tools/bench_torch_decoder.py                      # f32 and bf16, CPU, 2 threads
  python tools/bench_torch_decoder.py --dtype bf16 --new-tokens 32
  python tools/bench_torch_decoder.py --device cuda --threads 0
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import Qwen3Config, Qwen3ForCausalLM  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cpu_load import OthersDuring, wait_quiet  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_CANDIDATES = [
    os.path.join(REPO, "llm", "configs", "qwen3-0.6b.json"),
    os.path.join(REPO, "shared", "configs", "qwen3-0.6b.json"),
    os.path.join(os.path.dirname(REPO), "shared", "configs", "qwen3-0.6b.json"),
]
DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16}


def parse_args():
    default_cfg = next((p for p in CONFIG_CANDIDATES if os.path.isfile(p)), None)
    ap = argparse.ArgumentParser(description="PyTorch decoder peer: Qwen3-0.6B prefill/decode tokens/s.")
    ap.add_argument("--config", default=default_cfg,
                    help="Qwen3 config.json (default: llm/configs/qwen3-0.6b.json or "
                         "shared/configs/qwen3-0.6b.json, whichever exists)")
    ap.add_argument("--dtype", nargs="+", choices=sorted(DTYPES), default=["f32", "bf16"],
                    help="weight/compute dtypes to measure (default: f32 bf16)")
    ap.add_argument("--prompt-len", type=int, default=512, help="prefill prompt length (default 512)")
    ap.add_argument("--new-tokens", type=int, default=64, help="decode steps timed (default 64)")
    ap.add_argument("--decode-prompt-len", type=int, default=16,
                    help="prompt length before the decode steps (default 16)")
    ap.add_argument("--repeats", type=int, default=3, help="timed prefill runs (median reported)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    ap.add_argument("--threads", type=int, default=2,
                    help="torch.set_num_threads on the CPU (default 2; 0 leaves torch's default)")
    ap.add_argument("--full-logits", action="store_true",
                    help="prefill computes logits at every position, not just the last")
    ap.add_argument("--skip-matmul", action="store_true", help="skip the matmul cross-reference")
    ap.add_argument("--wait-idle", type=float, default=0.0, metavar="S",
                    help="before each measurement wait up to S seconds for a second in which "
                         "the CPUs are < 10%% busy (default 0: do not wait)")
    ap.add_argument("--retries", type=int, default=0, metavar="K",
                    help="redo a measurement up to K times while other processes used more "
                         "than 15%% of the CPUs during it; the least disturbed one is kept")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if args.config is None:
        ap.error("no Qwen3-0.6B config found; pass --config")
    return args


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device):
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


RESULTS = []


def measure(fn, args):
    """Run fn() after waiting for quiet; retry while disturbed; keep the least disturbed.

    Returns (result, busy_before, others_during, attempts).
    """
    best = None
    for attempt in range(1, args.retries + 2):
        busy = wait_quiet(args.wait_idle)
        with OthersDuring() as others:
            r = fn()
        frac = others.fraction
        if best is None or (frac is not None and (best[2] is None or frac < best[2])):
            best = (r, busy, frac, attempt)
        if frac is None or frac <= 0.15:
            break
    return best


def report(row):
    RESULTS.append(row)
    print(json.dumps(row), flush=True)


def build_model(config_path, dtype, device, seed):
    with open(config_path) as f:
        cfg_dict = json.load(f)
    cfg_dict.pop("torch_dtype", None)
    cfg_dict.pop("dtype", None)
    config = Qwen3Config(**cfg_dict)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    # build in float32 on the CPU (deterministic init), then cast and move
    model = Qwen3ForCausalLM(config)
    model.eval()
    model.to(device=device, dtype=dtype)
    return model, config


@torch.inference_mode()
def bench_prefill(model, config, device, prompt_len, repeats, full_logits, seed):
    g = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(0, config.vocab_size, (1, prompt_len), generator=g).to(device)
    kwargs = {} if full_logits else {"logits_to_keep": 1}

    def run():
        return model(input_ids=ids, use_cache=True, **kwargs).logits

    timed(run, device)  # warm-up
    times = [timed(run, device)[0] for _ in range(repeats)]
    med = statistics.median(times)
    return {"median_s": med, "best_s": min(times), "tokens_per_s": prompt_len / med,
            "best_tokens_per_s": prompt_len / min(times)}


@torch.inference_mode()
def bench_decode(model, config, device, prompt_len, new_tokens, seed):
    g = torch.Generator().manual_seed(seed + 2)
    ids = torch.randint(0, config.vocab_size, (1, prompt_len), generator=g).to(device)

    def generate(steps):
        out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
        past = out.past_key_values
        nxt = out.logits[:, -1].argmax(-1, keepdim=True)
        step_times = []
        tokens = []
        for i in range(steps):
            pos = torch.tensor([[prompt_len + i]], device=device)
            dt, out = timed(lambda: model(input_ids=nxt, past_key_values=past, position_ids=pos,
                                          cache_position=pos[0], use_cache=True), device)
            step_times.append(dt)
            past = out.past_key_values
            nxt = out.logits[:, -1].argmax(-1, keepdim=True)
            tokens.append(int(nxt))
        return step_times, tokens

    generate(min(new_tokens, 4))  # warm-up, so that one-time allocations are not timed
    step_times, tokens = generate(new_tokens)
    total = sum(step_times)
    return {"decode_s": total, "tokens_per_s": new_tokens / total,
            "median_step_ms": statistics.median(step_times) * 1e3,
            "tokens_per_s_median_step": 1.0 / statistics.median(step_times),
            "first_tokens": tokens[:8]}


@torch.inference_mode()
def bench_matmul(device, n, repeats=7):
    torch.manual_seed(0)
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    c = torch.empty(n, n, device=device)
    for _ in range(2):
        torch.matmul(a, b, out=c)
    times = [timed(lambda: torch.matmul(a, b, out=c), device)[0] for _ in range(repeats)]
    med = statistics.median(times)
    return {"median_ms": med * 1e3, "gflops": 2 * n ** 3 / med / 1e9,
            "best_gflops": 2 * n ** 3 / min(times) / 1e9}


def main():
    args = parse_args()
    device = torch.device(args.device)
    if device.type == "cpu" and args.threads > 0:
        torch.set_num_threads(args.threads)
    header = {
        "case": "env", "torch": torch.__version__, "transformers": transformers.__version__,
        "python": platform.python_version(), "device": str(device),
        "torch_threads": torch.get_num_threads(), "config": os.path.basename(args.config),
        "attn_implementation": "eager", "loadavg": os.getloadavg(),
    }
    if device.type == "cpu":
        try:
            with open("/proc/cpuinfo") as f:
                header["cpu"] = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
        except (OSError, StopIteration):
            pass
        header["mkldnn_bf16"] = bool(getattr(torch.backends.mkldnn, "is_available", lambda: False)())
    else:
        header["gpu"] = torch.cuda.get_device_name(device)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    print(json.dumps(header), flush=True)

    if not args.skip_matmul:
        for n in (1024, 2048):
            r, busy, others, attempts = measure(lambda: bench_matmul(device, n), args)
            report({"case": f"torch_matmul_{n}", "dtype": "f32", "busy_before": busy,
                    "others_during": others, "attempts": attempts, **r})

    for name in args.dtype:
        dtype = DTYPES[name]
        t0 = time.perf_counter()
        model, config = build_model(args.config, dtype, device, args.seed)
        n_params = sum(p.numel() for p in model.parameters())
        build_s = time.perf_counter() - t0
        r, busy, others, attempts = measure(
            lambda: bench_prefill(model, config, device, args.prompt_len, args.repeats,
                                  args.full_logits, args.seed), args)
        report({"case": "prefill", "dtype": name, "prompt_len": args.prompt_len,
                "logits": "all" if args.full_logits else "last", "params": n_params,
                "build_s": build_s, "busy_before": busy, "others_during": others,
                "attempts": attempts, **r})
        r, busy, others, attempts = measure(
            lambda: bench_decode(model, config, device, args.decode_prompt_len,
                                 args.new_tokens, args.seed), args)
        report({"case": "decode", "dtype": name, "busy_before": busy,
                "others_during": others, "attempts": attempts,
                "prompt_len": args.decode_prompt_len,
                "new_tokens": args.new_tokens, **r})
        del model

    print()
    print(f"{'case':<18}{'dtype':<6}{'others':>7}{'result':>44}")
    for r in RESULTS:
        if r["case"].startswith("torch_matmul"):
            res = f"{r['gflops']:.1f} GFLOP/s ({r['median_ms']:.2f} ms)"
        elif r["case"] == "prefill":
            res = f"{r['tokens_per_s']:.1f} tok/s ({r['prompt_len']} tok in {r['median_s']:.2f} s)"
        else:
            res = (f"{r['tokens_per_s']:.2f} tok/s ({r['median_step_ms']:.1f} ms median step)")
        oth = "" if r.get("others_during") is None else f"{r['others_during']:.2f}"
        print(f"{r['case']:<18}{r['dtype']:<6}{oth:>7}{res:>44}")
    print(f"\ntorch {torch.__version__}, transformers {transformers.__version__}, "
          f"{torch.get_num_threads()} threads, device {device}; load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
