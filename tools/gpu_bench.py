#!/usr/bin/env python3
"""The GPU benchmark of tools/gpu-bench.sh (run that script; it checks the Vulkan setup and
builds the binaries first). On the adapter wgpu picks, next to PyTorch on the same GPU:

  matmul    GFLOP/s of x[N,N] f32 @ W^T for N in --sizes, W f32, bf16 and f16 (ours widen half
            weights to f32 in the kernel; PyTorch's half cases are all-half matmuls on tensor
            cores, f32 with TF32 off), and the 1x4096 matrix-vector product's weight GB/s;
  decode    prefill and decode tokens/s of the Qwen3-0.6B shape (llm/configs/qwen3-0.6b.json,
            random weights, f32 and bf16 HF folders written once under --work), ours through
            `llm generate --device gpu --stats`, PyTorch + transformers (sdpa attention) on CUDA;
            and ours on q8_0 and q4_0 GGUF files of the same weights (`llm quantize`), kept as
            blocks on the GPU (PyTorch has no such peer: n/a);
  roofline  the device's memory bandwidth (PyTorch summing 1 GiB on the GPU; without CUDA, our
            own elementwise add's GB/s) and the fraction of it decode reaches:
            decode tok/s * weight bytes read per token / bandwidth.

--smoke: tiny shapes and a 2-layer model, allowed on a CPU adapter (lavapipe) and with PyTorch
on the CPU, to test the plumbing; its numbers mean nothing. --write-docs puts the table in
docs/BENCHMARKS.md between markers named after the adapter (replacing that adapter's section).
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "llm", "configs", "qwen3-0.6b.json")
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 512, "max_position_embeddings": 512}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin-dir", required=True, help="folder holding the built `llm` and `gpu_bench`")
    ap.add_argument("--smoke", action="store_true", help="tiny shapes; a CPU adapter is accepted")
    ap.add_argument("--write-docs", action="store_true", help="put the table into docs/BENCHMARKS.md")
    ap.add_argument("--work", default="/tmp/llm-gpu-bench", help="where the model folders go (~4.5 GB)")
    ap.add_argument("--sizes", default=None, help="matmul sizes, comma-separated (default 1024,2048,4096)")
    ap.add_argument("--prompt-len", type=int, default=None, help="default 512 (smoke: 8)")
    ap.add_argument("--new-tokens", type=int, default=None, help="default 64 (smoke: 4)")
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    args.prompt_len = args.prompt_len or (8 if args.smoke else 512)
    args.new_tokens = args.new_tokens or (4 if args.smoke else 64)
    return args


def log(msg):
    print(f"gpu-bench: {msg}", file=sys.stderr, flush=True)


# ---- ours: the wgpu kernels -------------------------------------------------------------------

def run_kernels(args):
    cmd = [os.path.join(args.bin_dir, "gpu_bench")] + (["--smoke"] if args.smoke else [])
    if args.sizes:
        cmd += ["--sizes", args.sizes]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(out.returncode)
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return rows[0], rows[1:]


# ---- PyTorch on the same GPU ------------------------------------------------------------------

def torch_device(args):
    if args.skip_torch:
        return None
    try:
        import torch
    except ImportError:
        log("no torch: PyTorch columns are n/a")
        return None
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        torch.set_float32_matmul_precision("highest")
        return torch.device("cuda")
    if args.smoke:
        return torch.device("cpu")  # plumbing only
    log("torch sees no CUDA device: PyTorch columns are n/a (a CPU peer would not be a GPU peer)")
    return None


def torch_time(dev, fn, budget=0.25):
    import torch

    def burst(inner):
        if dev.type == "cuda":
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            for _ in range(inner):
                fn()
            b.record()
            b.synchronize()
            return a.elapsed_time(b) / 1e3 / inner
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        return (time.perf_counter() - t0) / inner

    fn()
    inner = int(min(200, max(1, 0.01 / max(burst(1), 1e-6))))
    times, start = [], time.perf_counter()
    while len(times) < 3 or (time.perf_counter() - start < budget and len(times) < 15):
        times.append(burst(inner))
    return sorted(times)[len(times) // 2]


def torch_kernels(dev, sizes, matvec_n):
    import torch

    rows = []
    g = torch.Generator(device=dev).manual_seed(0)
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        name = {torch.float32: "f32", torch.bfloat16: "bf16", torch.float16: "f16"}[dtype]
        for n in sizes:
            x = torch.randn(n, n, device=dev, generator=g).to(dtype)
            w = torch.randn(n, n, device=dev, generator=g).to(dtype)
            s = torch_time(dev, lambda: x @ w.T)
            rows.append({"case": f"matmul_{n}", "weights": name, "ms": s * 1e3, "gflops": 2 * n ** 3 / s / 1e9})
        x = torch.randn(1, matvec_n, device=dev, generator=g).to(dtype)
        w = torch.randn(matvec_n, matvec_n, device=dev, generator=g).to(dtype)
        s = torch_time(dev, lambda: x @ w.T)
        rows.append({"case": f"matvec_{matvec_n}", "weights": name, "ms": s * 1e3,
                     "weight_gbps": w.numel() * w.element_size() / s / 1e9})
    return rows


def torch_bandwidth(dev, smoke):
    """Read bandwidth in bytes/s: the median of summing 1 GiB of f32 (64 MiB in smoke mode)."""
    import torch

    x = torch.ones((1 << 24) if smoke else (1 << 28), device=dev)
    return x.numel() * 4 / torch_time(dev, lambda: x.sum())


# ---- the model --------------------------------------------------------------------------------

def model_config(args):
    with open(CONFIG) as f:
        cfg = json.load(f)
    cfg.pop("torch_dtype", None)
    cfg.pop("dtype", None)
    if args.smoke:
        cfg.update(TINY)
    return cfg


def write_folders(args, cfg):
    """HF folders f32 and bf16 with random weights (fixed seed), written once and reused."""
    work = os.path.join(args.work, "smoke" if args.smoke else "qwen3-0.6b")
    folders = {fmt: os.path.join(work, f"hf-{fmt}") for fmt in ("f32", "bf16")}
    if all(os.path.isfile(os.path.join(f, "model.safetensors")) for f in folders.values()):
        return folders
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    log(f"writing random-weight model folders under {work}")
    torch.manual_seed(args.seed)
    model = Qwen3ForCausalLM(Qwen3Config(**cfg)).eval()
    for fmt, dtype in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        model.to(dtype).save_pretrained(folders[fmt], safe_serialization=True)
    return folders


def write_gguf(args, folders, fmt):
    """The f32 folder quantized to `fmt` by our `llm quantize`, written once and reused."""
    path = os.path.join(os.path.dirname(folders["f32"]), f"model-{fmt}.gguf")
    if not os.path.isfile(path):
        log(f"writing {path}")
        cmd = [os.path.join(args.bin_dir, "llm"), "quantize", "--model", folders["f32"], "--out", path,
               "--type", fmt]
        subprocess.run(cmd, check=True, capture_output=True)
    return path


def weight_bytes_per_token(cfg, elem):
    """Matrix bytes one decoded token reads: every projection, the MLP and the LM head (the
    embedding is one row per token, negligible, unless it is the tied head)."""
    h, hd, L = cfg["hidden_size"], cfg["head_dim"], cfg["num_hidden_layers"]
    attn = h * hd * (2 * cfg["num_attention_heads"] + 2 * cfg["num_key_value_heads"])
    mlp = 3 * h * cfg["intermediate_size"]
    return (L * (attn + mlp) + cfg["vocab_size"] * h) * elem


def prompt_ids(args, vocab):
    import random

    rng = random.Random(args.seed + 1)
    return [rng.randrange(vocab) for _ in range(args.prompt_len)]


def run_ours(args, folder, prompt):
    cmd = [os.path.join(args.bin_dir, "llm"), "generate", "--model", folder, "--prompt-ids",
           ",".join(map(str, prompt)), "--max-new-tokens", str(args.new_tokens + 1), "--temperature", "0",
           "--device", "gpu", "--stats", "--json"]
    best = None
    for _ in range(2):  # the first run also compiles the kernels; keep the better of two
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            lines = out.stderr.strip().splitlines()
            return {"error": lines[-1] if lines else "failed"}
        stats = json.loads(out.stderr.strip().splitlines()[-1])
        if best is None:
            best = stats
        else:
            for key in ("prefill_tok_s", "decode_tok_s"):
                best[key] = max(best[key], stats[key])
    return best


def run_torch_model(dev, folder, prompt, new_tokens):
    import torch
    from transformers import Qwen3ForCausalLM

    dtype = torch.bfloat16 if folder.endswith("bf16") else torch.float32
    model = Qwen3ForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation="sdpa").to(dev).eval()
    ids = torch.tensor([prompt], device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    best = {"prefill_tok_s": 0.0, "decode_tok_s": 0.0}
    with torch.inference_mode():
        for _ in range(2):
            sync()
            t0 = time.perf_counter()
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
            token = out.logits[:, -1].argmax(-1, keepdim=True)
            token.item()
            prefill = time.perf_counter() - t0
            past = out.past_key_values
            t0 = time.perf_counter()
            for i in range(new_tokens):
                pos = torch.tensor([[len(prompt) + i]], device=dev)
                out = model(input_ids=token, past_key_values=past, position_ids=pos, cache_position=pos[0],
                            use_cache=True)
                past = out.past_key_values
                token = out.logits[:, -1].argmax(-1, keepdim=True)
                token.item()  # a sampler needs the token on the host each step, as ours reads it
            decode = time.perf_counter() - t0
            best["prefill_tok_s"] = max(best["prefill_tok_s"], len(prompt) / prefill)
            best["decode_tok_s"] = max(best["decode_tok_s"], new_tokens / decode)
    del model
    return best


# ---- the table --------------------------------------------------------------------------------

def num(x, digits=1):
    return f"{x:.{digits}f}" if isinstance(x, (int, float)) and x > 0 else "n/a"


def ratio(a, b):
    return f"{a / b:.2f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and a > 0 and b > 0 else "n/a"


def main():
    args = parse_args()
    adapter, ours_k = run_kernels(args)
    log(f"adapter: {adapter['name']}{' (runs on the CPU)' if adapter['cpu_adapter'] else ''}")
    dev = torch_device(args)
    sizes = sorted({int(r["case"].split("_")[1]) for r in ours_k if r["case"].startswith("matmul_")})
    matvec_n = next(int(r["case"].split("_")[1]) for r in ours_k if r["case"].startswith("matvec_"))
    peer_k = torch_kernels(dev, sizes, matvec_n) if dev is not None else []
    peer = {(r["case"], r["weights"]): r for r in peer_k}
    add = next(r for r in ours_k if r["case"] == "add")
    if dev is not None and dev.type == "cuda":
        bw, bw_how = torch_bandwidth(dev, args.smoke), "PyTorch sum of 1 GiB f32 on the GPU"
    else:
        bw, bw_how = add["gbps"] * 1e9, "our elementwise add (2 reads + 1 write), no CUDA PyTorch"

    cfg = model_config(args)
    folders = write_folders(args, cfg)
    prompt = prompt_ids(args, cfg["vocab_size"])
    model_rows = []
    for fmt, elem in (("f32", 4), ("bf16", 2)):
        ours = run_ours(args, folders[fmt], prompt)
        if "error" in ours:
            log(f"llm generate ({fmt}) failed: {ours['error']}")
        peer_m = run_torch_model(dev, folders[fmt], prompt, args.new_tokens) if dev is not None else {}
        read = weight_bytes_per_token(cfg, elem)
        model_rows.append({"weights": fmt, "ours": ours, "torch": peer_m, "weight_bytes_per_token": read})
        print(json.dumps(model_rows[-1]), flush=True)
    # Blocks of 32 weights: Q8_0 is 34 bytes, Q4_0 18 (llama.cpp's rule keeps no tensor wider).
    for fmt, elem in (("q8_0", 34 / 32), ("q4_0", 18 / 32)):
        ours = run_ours(args, write_gguf(args, folders, fmt), prompt)
        if "error" in ours:
            log(f"llm generate ({fmt}) failed: {ours['error']}")
        read = weight_bytes_per_token(cfg, elem)
        model_rows.append({"weights": fmt, "ours": ours, "torch": {}, "weight_bytes_per_token": read})
        print(json.dumps(model_rows[-1]), flush=True)

    peer_name = "PyTorch (CUDA)" if dev is not None and dev.type == "cuda" else \
        "PyTorch (CPU, smoke only)" if dev is not None else "PyTorch (not run)"
    lines = [
        f"Measured {datetime.date.today()} on **{adapter['name']}** by `tools/gpu-bench.sh"
        f"{' --smoke' if args.smoke else ''}`; peer: {peer_name}"
        + (f" {__import__('torch').__version__}" if dev is not None else "")
        + f". Memory bandwidth {bw / 1e9:.1f} GB/s ({bw_how}). Ratios are ours / PyTorch's "
        "(above 1: faster). PyTorch's f32 matmuls run with TF32 off; its bf16/f16 cases are all-half "
        "products, ours widen half weights to f32 and multiply f32 activations."
        + (" **Smoke run: tiny shapes, numbers mean nothing.**" if args.smoke else ""),
        "",
        "| case | weights | ours | PyTorch | ours / PyTorch |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in ours_k:
        if r["case"] == "add":
            lines.append(f"| add, {r['elements']} f32 | | {num(r['gbps'])} GB/s | | |")
            continue
        p = peer.get((r["case"], r["weights"]), {})
        key, unit = ("gflops", "GFLOP/s") if "gflops" in r else ("weight_gbps", "GB/s of weights")
        # The matrix-vector product comes once per reduction (subgroups, and the fallback tree).
        case = f"{r['case']}, {r['reduction']} sum" if "reduction" in r else r["case"]
        lines.append(f"| {case} | {r['weights']} | {num(r[key])} {unit} | {num(p.get(key))} | "
                     f"{ratio(r[key], p.get(key))} |")
    lines += [
        "",
        f"Qwen3-0.6B shape{' (smoke: 2 tiny layers)' if args.smoke else ''}, random weights, batch 1, a "
        f"{args.prompt_len}-token prompt then {args.new_tokens} greedy tokens; decode's bandwidth fraction = "
        "decode tok/s x weight bytes per token / bandwidth.",
        "",
        "| weights | prefill tok/s: ours / PyTorch | ratio | decode tok/s: ours / PyTorch | ratio | "
        "decode, fraction of bandwidth | ours per token: dispatches, submits, readbacks, allocations, bind groups |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in model_rows:
        o, t = r["ours"], r["torch"]
        frac = o.get("decode_tok_s", 0) * r["weight_bytes_per_token"] / bw if o.get("decode_tok_s") else 0
        # A count of 0 is a result (no allocation per token), not a missing figure.
        count = lambda v: f"{v:.1f}" if isinstance(v, (int, float)) else "n/a"  # noqa: E731
        counters = ", ".join(count(o.get(f"gpu_{k}_per_token")) for k in
                             ("dispatches", "submits", "readbacks", "buffer_allocations", "bind_groups"))
        lines.append(
            f"| {r['weights']} | {num(o.get('prefill_tok_s'))} / {num(t.get('prefill_tok_s'))} | "
            f"{ratio(o.get('prefill_tok_s'), t.get('prefill_tok_s'))} | {num(o.get('decode_tok_s'))} / "
            f"{num(t.get('decode_tok_s'))} | {ratio(o.get('decode_tok_s'), t.get('decode_tok_s'))} | "
            f"{f'{frac:.0%}' if frac else 'n/a'} | {counters} |")
    table = "\n".join(lines)
    print()
    print(table)
    if args.write_docs:
        write_docs(adapter["name"] + (" (smoke)" if args.smoke else ""), table)
    return 0


def write_docs(adapter, table):
    doc = os.path.join(REPO, "docs", "BENCHMARKS.md")
    text = open(doc).read()
    slug = re.sub(r"[^a-z0-9]+", "-", adapter.lower()).strip("-")
    start, end = f"<!-- gpu-bench:{slug}:start -->", f"<!-- gpu-bench:{slug}:end -->"
    block = f"{start}\n### {adapter}\n\n{table}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        heading = "## GPU against PyTorch on the same GPU (`tools/gpu-bench.sh`)"
        if heading not in text:
            text = text.rstrip("\n") + f"\n\n{heading}\n\nOne section per adapter; a rerun replaces its own.\n"
        text = text.rstrip("\n") + f"\n\n{block}\n"
    open(doc, "w").write(text)
    log(f"written to {doc}")


if __name__ == "__main__":
    sys.exit(main())
