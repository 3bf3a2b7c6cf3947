#!/usr/bin/env python3
"""One run, three runtimes, the same weights: this project's `llm generate --stats`, llama.cpp
(through llama-cpp-python, built from source for this CPU) and PyTorch + transformers.

Builds a Qwen3-0.6B-shaped model (or, with --config, another config.json's: another Qwen3 size
such as tools/configs/qwen3-1.7b.json, or another architecture `llm` runs, such as
tools/configs/gemma3-1b.json) with random weights (fixed seed; no download) and writes it
  - as Hugging Face folders, f32 and bf16 (config.json + model.safetensors), which `llm` and
    PyTorch load;
  - as GGUF files, f32, bf16, q8_0, q4_0 and q4_k_m, which llama.cpp loads (and `llm`, where it
    reads GGUF). Qwen3's f32 to q4_0 are written here with the `gguf` package (its quantizers are
    ggml's reference ones); q4_k_m, and every file of another architecture, by `llm quantize`
    (llama.cpp's names and metadata, the same Q8_0 and Q4_0 bytes as the `gguf` package's
    quantizers, and Q4_K_M's mix of Q4_K and Q6_K with ggml's bytes: tools/check_gguf_export.py,
    tools/make_kquant_reference.py), from the f32 folder with a placeholder tokenizer
    (`write_placeholder_tokenizer`). A matrix whose rows are not whole 256-weight blocks (Gemma 3
    1B's 1152 columns) takes llama.cpp's fallback in that Q4_K_M file (Q5_0 for Q4_K, Q8_0 for
    Q6_K), as llama.cpp's own quantizer does; both runtimes read the same file;
  - with `--formats fp8`, as a Hugging Face folder of FP8 E4M3 matrices with 128x128 tile scales
    (`weight_scale_inv`, as DeepSeek-V3 and the Qwen3 FP8 releases ship them; embedding and norms
    bf16), which `llm` alone runs here (llama.cpp reads no FP8; PyTorch's CPU path dequantizes).
Then, for each weight format and each runtime that takes it, measures at batch 1 with --threads:
  prefill   tokens/s of a --prompt-len token prompt (to the first chosen token: the last
            position's logits only)
  decode    tokens/s of the --new-tokens greedy tokens after it, with the KV cache (ours in
            --kv-dtype, f16 by default as llama.cpp's)
and the streaming read bandwidth of the machine (PyTorch summing a 1 GiB array on the same
threads, after each pair of decoded tokens, so in step with them; the median per format), from
which decode's roofline: bandwidth / weight bytes read per token.
Ours and llama.cpp run in step, token by token (`llm generate --paced`; see `run_in_step`):
ours runs the prompt, then llama.cpp, then one token each in turn, so both meet the machine in
the same state. PyTorch runs after them, in this process. So the ratios hold on the machine at
hand whatever it is. With --rounds N the whole sequence runs N times and the
table gives each figure's median and each ratio's median over the rounds with its range: on a
shared machine one round's ratio says as much about that minute as about the programs.

The ratio table is printed and, with --write-docs, put into docs/BENCHMARKS.md between the
markers `<!-- peers:start -->` and `<!-- peers:end -->`.

Setup (see tools/README.md): the venv of tools/requirements.txt plus
  CMAKE_ARGS="-DGGML_NATIVE=ON" pip install llama-cpp-python     # ~10 minutes on 2 cores
and `cargo build --release -p llm`.

Usage:
  python tools/bench_peers.py                      # everything, 2 threads
  python tools/bench_peers.py --formats f32 bf16 --skip-torch
  python tools/bench_peers.py --rounds 3 --write-docs   # what docs/BENCHMARKS.md shows
"""
import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "llm", "configs", "qwen3-0.6b.json")
FORMATS = ["f32", "bf16", "q8_0", "q4_0", "q4_k_m"]
# Asked for by name: ours only.
EXTRA_FORMATS = ["fp8"]


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="/tmp/llm-bench-peers", help="where the model files go (~6 GB)")
    ap.add_argument("--config", default=CONFIG,
                    help="a config.json whose model to build (default Qwen3-0.6B's): any architecture both `llm` and "
                         "transformers run, by its model_type")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-len", type=int, default=512)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--formats", nargs="+", choices=FORMATS + EXTRA_FORMATS, default=FORMATS)
    ap.add_argument("--repeats", type=int, default=2, help="runs per measurement; the best is kept")
    ap.add_argument("--rounds", type=int, default=1,
                    help="rounds of every runtime and format, one after another; the table shows each figure's "
                         "median over the rounds and each ratio's median with its range (the ratio of each round: "
                         "this machine's speed moves by up to 2x between minutes, so one round's ratio is one minute's)")
    ap.add_argument("--kv-dtype", choices=["f32", "bf16", "f16"], default="f16",
                    help="our KV cache (default f16, what llama.cpp keeps; PyTorch keeps the weights' dtype)")
    ap.add_argument("--skip-torch", action="store_true")
    ap.add_argument("--skip-llama", action="store_true")
    ap.add_argument("--llm", default=os.path.join(REPO, "target", "release", "llm"), help="the llm binary")
    ap.add_argument("--write-docs", action="store_true", help="write the table into docs/BENCHMARKS.md")
    ap.add_argument("--files-only", action="store_true", help="write the model files and stop")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args()


# ---- the model files -------------------------------------------------------------------------

def build_files(args):
    """Writes the HF folders and GGUF files (once; reused when present). Returns the weight bytes
    each format reads per decoded token."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    os.makedirs(args.work, exist_ok=True)
    with open(args.config) as f:
        cfg = json.load(f)
    # The bench's own keys: the shape's name and comments.
    for key in [k for k in cfg if k == "shape_name" or k.startswith("_")]:
        cfg.pop(key)
    cfg.pop("torch_dtype", None)
    cfg.pop("dtype", None)
    cfg.pop("architectures", None)
    config = AutoConfig.for_model(cfg.pop("model_type", "qwen3"), **cfg)
    qwen3 = config.model_type == "qwen3"
    torch.manual_seed(args.seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    state = {k: v.detach() for k, v in model.state_dict().items()}
    # Only the folders a requested format runs on (Qwen3's GGUF files are written from `state`,
    # another architecture's by `llm quantize` from the f32 folder): at the 1.7B shape the two
    # folders are 10 GB.
    by_llm = [fmt for fmt in args.formats if fmt == "q4_k_m" or (not qwen3 and fmt != "fp8")]
    folders = {fmt for fmt in ("f32", "bf16") if fmt in args.formats}
    if by_llm:
        folders.add("f32")  # the source of the files `llm quantize` writes
    for fmt, dtype in (("f32", torch.float32), ("bf16", torch.bfloat16)):
        if fmt not in folders:
            continue
        folder = os.path.join(args.work, f"hf-{fmt}")
        if not os.path.isfile(os.path.join(folder, "model.safetensors")):
            model.to(dtype).save_pretrained(folder, safe_serialization=True)
            model.to(torch.float32)
    bytes_per_token = {}
    for fmt in args.formats:
        if fmt == "fp8":
            bytes_per_token[fmt] = write_fp8_folder(os.path.join(args.work, "hf-fp8"), model, state)
            continue
        path = os.path.join(args.work, f"model-{fmt}.gguf")
        if fmt in by_llm:
            bytes_per_token[fmt] = quantize_gguf(args, config, os.path.join(args.work, "hf-f32"), path, fmt)
        else:
            bytes_per_token[fmt] = write_gguf(path, config, state, fmt, shape_name(args))
    return config, bytes_per_token


def write_placeholder_tokenizer(folder, vocab_size):
    """A byte-level BPE tokenizer.json of `vocab_size` placeholder pieces, for `llm quantize` to
    write into the GGUF file (llama.cpp refuses a file without a vocabulary; the bench feeds
    token ids, so the pieces never matter). Its one merge, a + b -> ab, is the least a BPE
    vocabulary is read with. Returns its path, or None where the folder has a tokenizer already."""
    path = os.path.join(folder, "tokenizer.json")
    if os.path.isfile(path):
        return None
    vocab = {"a": 0, "b": 1, "ab": 2}
    vocab.update({f"<t{i}>": i for i in range(3, vocab_size)})
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": [], "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [["a", "b"]]},
    }
    with open(path, "w") as f:
        json.dump(tokenizer, f)
    return path


def quantize_gguf(args, config, folder, path, fmt):
    """`llm quantize` writes the f32 folder (given a placeholder tokenizer, removed after) as a GGUF
    file of `fmt` (once). Returns the bytes of the matrices one decoded token reads (`matrix_bytes`)."""
    if not os.path.isfile(path):
        placeholder = write_placeholder_tokenizer(folder, config.vocab_size)
        try:
            subprocess.run([args.llm, "quantize", "--model", folder, "--out", path, "--type", fmt], check=True)
        finally:
            if placeholder:
                os.remove(placeholder)
    return matrix_bytes(path)


def matrix_bytes(path):
    """The bytes of the matrices in the GGUF file at `path` that one decoded token reads: every
    matrix but the embedding table, unless the head is tied to it (its rows are then the head's;
    an untied table is read one row per token, negligible)."""
    import gguf

    tensors = gguf.GGUFReader(path).tensors
    tied = not any(t.name == "output.weight" for t in tensors)
    return sum(int(t.n_bytes) for t in tensors
               if len(t.shape) >= 2 and (t.name != "token_embd.weight" or tied))


def write_fp8_folder(folder, model, state, tile=128):
    """The model with every projection as FP8 E4M3 and one f32 `weight_scale_inv` per tile x tile
    block (max |w| / 448, the largest code), the rest bf16: the layout of DeepSeek-V3's and
    Qwen3's FP8 releases (`quantization_config.quant_method` "fp8", `weight_block_size`). Returns
    the bytes one decoded token reads: the codes and scales, and the tied bf16 head."""
    import torch
    from safetensors.torch import save_file

    read = 0
    out = {}
    for name, t in state.items():
        if name == "lm_head.weight" and model.config.tie_word_embeddings:
            continue
        if t.ndim == 2 and name != "model.embed_tokens.weight" and name.endswith("_proj.weight"):
            rows, cols = t.shape
            sr, sc = -(-rows // tile), -(-cols // tile)
            padded = torch.zeros(sr * tile, sc * tile)
            padded[:rows, :cols] = t.float()
            tiles = padded.view(sr, tile, sc, tile)
            scale = (tiles.abs().amax(dim=(1, 3)) / 448.0).clamp(min=1e-12)
            codes = (tiles / scale[:, None, :, None]).to(torch.float8_e4m3fn).view(sr * tile, sc * tile)
            out[name] = codes[:rows, :cols].contiguous()
            out[name + "_scale_inv"] = scale.float().contiguous()
            read += rows * cols + scale.numel() * 4
        else:
            out[name] = t.to(torch.bfloat16).contiguous()
            if name == "model.embed_tokens.weight" and model.config.tie_word_embeddings:
                read += t.numel() * 2
    if not os.path.isfile(os.path.join(folder, "model.safetensors")):
        os.makedirs(folder, exist_ok=True)
        save_file(out, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
        config = model.config.to_dict()
        config["torch_dtype"] = "bfloat16"
        config["quantization_config"] = {"quant_method": "fp8", "fmt": "e4m3", "activation_scheme": "dynamic",
                                         "weight_block_size": [tile, tile]}
        with open(os.path.join(folder, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
    return read


GGUF_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}
LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.o_proj.weight": "attn_output.weight",
    "self_attn.q_norm.weight": "attn_q_norm.weight",
    "self_attn.k_norm.weight": "attn_k_norm.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}


def gguf_name(name):
    if name in GGUF_NAMES:
        return GGUF_NAMES[name]
    m = re.match(r"model\.layers\.(\d+)\.(.+)", name)
    return f"blk.{m.group(1)}.{LAYER_NAMES[m.group(2)]}"


def shape_name(args):
    """The shape's name for the table: the config's `shape_name` where it has one (a Qwen3 model
    at another family's size), else from its file's name: qwen3-1.7b.json -> Qwen3-1.7B."""
    with open(args.config) as f:
        named = json.load(f).get("shape_name")
    if named:
        return named
    stem = os.path.splitext(os.path.basename(args.config))[0]
    return stem.replace("qwen3", "Qwen3").upper().replace("QWEN3", "Qwen3")


def write_gguf(path, config, state, fmt, shape):
    """llama.cpp's `qwen3` architecture with `fmt` matrices (norms stay f32, as llama.cpp's
    converter keeps 1-D tensors), once. Returns the bytes of the matrices one decoded token reads
    (`matrix_bytes`)."""
    import gguf
    from gguf import GGMLQuantizationType as Q

    qtype = {"f32": Q.F32, "bf16": Q.BF16, "q8_0": Q.Q8_0, "q4_0": Q.Q4_0}[fmt]
    if not os.path.isfile(path):
        tensors = []
        for name, t in state.items():
            if name == "lm_head.weight" and config.tie_word_embeddings:
                continue
            a = t.float().numpy()
            if a.ndim == 2:
                data = gguf.quants.quantize(a, qtype) if qtype != Q.F32 else a
                tensors.append((gguf_name(name), data, qtype))
            else:
                tensors.append((gguf_name(name), a, Q.F32))
        w = gguf.GGUFWriter(path, "qwen3")
        w.add_name(f"random {shape} shape")
        w.add_block_count(config.num_hidden_layers)
        w.add_context_length(config.max_position_embeddings)
        w.add_embedding_length(config.hidden_size)
        w.add_feed_forward_length(config.intermediate_size)
        w.add_head_count(config.num_attention_heads)
        w.add_head_count_kv(config.num_key_value_heads)
        w.add_key_length(config.head_dim)
        w.add_value_length(config.head_dim)
        w.add_rope_freq_base(config.rope_parameters["rope_theta"] if hasattr(config, "rope_parameters")
                             and config.rope_parameters else config.rope_theta)
        w.add_layer_norm_rms_eps(config.rms_norm_eps)
        w.add_file_type({"f32": 0, "bf16": 32, "q8_0": 7, "q4_0": 2}[fmt])
        # Token ids are fed directly: a vocabulary of placeholder pieces and one placeholder merge
        # (llama.cpp refuses a BPE vocabulary without merges).
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre("qwen2")
        w.add_token_list([f"<t{i}>" for i in range(config.vocab_size)])
        w.add_token_types([1] * config.vocab_size)
        w.add_token_merges(["<t0> <t1>"])
        w.add_eos_token_id(config.eos_token_id if isinstance(config.eos_token_id, int) else 0)
        for name, data, q in tensors:
            w.add_tensor(name, data, raw_dtype=q)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
    return matrix_bytes(path)


# ---- the runtimes ----------------------------------------------------------------------------

def prompt_ids(args, vocab):
    rng = np.random.default_rng(args.seed + 1)
    return [int(x) for x in rng.integers(0, vocab, args.prompt_len)]


def ours_command(args, model_path, prompt, *extra):
    """`llm generate --stats` greedy on the prompt for --new-tokens after the first, plus `extra`."""
    return [args.llm, "--threads", str(args.threads), "generate", "--model", model_path, "--prompt-ids",
            ",".join(map(str, prompt)), "--max-new-tokens", str(args.new_tokens + 1), "--temperature", "0",
            "--device", "cpu", "--kv-dtype", args.kv_dtype, "--stats", *extra]


def run_ours(args, model_path, prompt):
    """`llm generate --stats` on a HF folder or a GGUF file: the JSON of its best run."""
    best = None
    for _ in range(args.repeats):
        cmd = ours_command(args, model_path, prompt, "--json")
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
        stats = json.loads(out.stderr.strip().splitlines()[-1])
        if best is None:
            best = stats
        else:
            best["prefill_tok_s"] = max(best["prefill_tok_s"], stats["prefill_tok_s"])
            best["decode_tok_s"] = max(best["decode_tok_s"], stats["decode_tok_s"])
            best["rss_bytes"] = max(best.get("rss_bytes", 0), stats.get("rss_bytes", 0))
    return best


def run_in_step(args, ours_path, gguf_path, prompt):
    """Ours and llama.cpp token by token in step: ours (`llm generate --paced`, a child process
    that waits for a line on stdin before each forward pass) runs its prompt, then llama.cpp its
    own; then each decoded token likewise, ours then llama.cpp's. Both meet the machine in the
    same state: on a shared machine the memory bandwidth moves by 1.5x within seconds (a 1.7B
    f32 decode's steps jumped between 148 and 230 ms in one run), so whole runs back to back
    compared whichever states they happened to meet. Ours reports its own times (`--stats`,
    the waits not counted); llama.cpp's are timed here around each `eval`.
    After each pair of decoded tokens, PyTorch sums 1 GiB (on the same threads): the streaming
    read bandwidth of that moment, for the roofline.
    Each runtime's pass starts once the other's threads have gone quiet (`wait_quiet`): the
    OpenMP workers of llama.cpp and of PyTorch spin for some 6-10 ms after their work ends, and
    without the wait they took one of the two cores for the first third of each of ours (9 ms
    of this process's CPU time inside each of our ~29 ms steps).
    Returns (ours, llama.cpp, bandwidths): the first two as `run_ours` and `run_llama` do, each
    figure the best of --repeats; the bandwidth samples in bytes/s."""
    import llama_cpp
    import torch
    from llama_cpp import Llama

    torch.set_num_threads(args.threads)
    stream = torch.ones(1 << 28)
    bandwidths = []

    llm = Llama(model_path=gguf_path, n_ctx=args.prompt_len + args.new_tokens + 8, n_batch=args.prompt_len,
                n_ubatch=args.prompt_len, n_threads=args.threads, n_threads_batch=args.threads, verbose=False)
    ours, theirs = None, {"prefill_tok_s": 0.0, "decode_tok_s": 0.0}
    for _ in range(args.repeats):
        cmd = ours_command(args, ours_path, prompt, "--paced")
        child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 bufsize=0)
        seen = b""

        def ours_step():
            """One forward pass of ours: a line in, then wait for its token (an id and a space)."""
            nonlocal seen
            child.stdin.write(b"\n")
            want = seen.count(b" ") + 1
            while seen.count(b" ") < want:
                chunk = child.stdout.read(64)
                if not chunk:
                    return False
                seen += chunk
            return True

        llm.reset()
        ok = ours_step()
        wait_quiet(child.pid)
        t0 = time.perf_counter()
        llm.eval(prompt)
        token = last_argmax(llama_cpp, llm)
        prefill = time.perf_counter() - t0
        decode = 0.0
        for _ in range(args.new_tokens):
            wait_quiet(os.getpid())
            ok = ok and ours_step()
            wait_quiet(child.pid)
            t0 = time.perf_counter()
            llm.eval([token])
            token = last_argmax(llama_cpp, llm)
            decode += time.perf_counter() - t0
            bandwidths.append(stream.numel() * 4 / timeit(lambda: stream.sum()))
        _, err = child.communicate()
        if child.returncode != 0 or not ok:
            text = err.decode().strip()
            return {"error": text.splitlines()[-1] if text else "failed"}, {}, bandwidths
        stats = json.loads(err.decode().strip().splitlines()[-1])
        if ours is None:
            ours = stats
        else:
            for field in ("prefill_tok_s", "decode_tok_s", "rss_bytes"):
                ours[field] = max(ours.get(field, 0), stats.get(field, 0))
        theirs["prefill_tok_s"] = max(theirs["prefill_tok_s"], args.prompt_len / prefill)
        theirs["decode_tok_s"] = max(theirs["decode_tok_s"], args.new_tokens / decode)
    del llm
    return ours, theirs, bandwidths


def cpu_time_ns(pid):
    """CPU time used so far by all threads of process `pid`, in nanoseconds (Linux's
    /proc/PID/task/*/schedstat; 0 where it cannot be read)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return total


def wait_quiet(pid, settle=0.002, limit=0.2):
    """Waits until process `pid` uses less than a tenth of a core over `settle` seconds (its
    worker threads have stopped spinning), for at most `limit` seconds."""
    start = time.perf_counter()
    while time.perf_counter() - start < limit:
        before = cpu_time_ns(pid)
        time.sleep(settle)
        if cpu_time_ns(pid) - before < 0.1 * settle * 1e9:
            return


def run_llama(args, path, prompt):
    """llama.cpp: prefill is one `eval` of the prompt (logits of the last position), decode one
    `eval` per greedy token."""
    import llama_cpp
    from llama_cpp import Llama

    llm = Llama(model_path=path, n_ctx=args.prompt_len + args.new_tokens + 8, n_batch=args.prompt_len,
                n_ubatch=args.prompt_len, n_threads=args.threads, n_threads_batch=args.threads, verbose=False)
    best = {"prefill_tok_s": 0.0, "decode_tok_s": 0.0}
    for _ in range(args.repeats):
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(prompt)
        token = last_argmax(llama_cpp, llm)
        prefill = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(args.new_tokens):
            llm.eval([token])
            token = last_argmax(llama_cpp, llm)
        decode = time.perf_counter() - t0
        best["prefill_tok_s"] = max(best["prefill_tok_s"], args.prompt_len / prefill)
        best["decode_tok_s"] = max(best["decode_tok_s"], args.new_tokens / decode)
    del llm
    return best


def last_argmax(llama_cpp, llm):
    """The greedy choice from the last position's logits (read from the context: the Python
    wrapper's `scores` stay empty unless every position's logits are kept)."""
    row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(llm.n_vocab(),))
    return int(np.argmax(row))


def run_torch(args, folder, prompt):
    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(args.threads)
    dtype = torch.bfloat16 if folder.endswith("bf16") else torch.float32
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, attn_implementation="eager").eval()
    ids = torch.tensor([prompt])
    best = {"prefill_tok_s": 0.0, "decode_tok_s": 0.0}
    with torch.inference_mode():
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
            token = out.logits[:, -1].argmax(-1, keepdim=True)
            prefill = time.perf_counter() - t0
            past = out.past_key_values
            t0 = time.perf_counter()
            for i in range(args.new_tokens):
                pos = torch.tensor([[args.prompt_len + i]])
                out = model(input_ids=token, past_key_values=past, position_ids=pos, cache_position=pos[0],
                            use_cache=True)
                past = out.past_key_values
                token = out.logits[:, -1].argmax(-1, keepdim=True)
            decode = time.perf_counter() - t0
            best["prefill_tok_s"] = max(best["prefill_tok_s"], args.prompt_len / prefill)
            best["decode_tok_s"] = max(best["decode_tok_s"], args.new_tokens / decode)
    del model
    return best


def bandwidth(args):
    """Streaming read bandwidth in bytes/s: PyTorch summing 1 GiB of f32 on the same threads."""
    import torch

    torch.set_num_threads(args.threads)
    x = torch.ones(1 << 28)
    x.sum()
    best = min(timeit(lambda: x.sum()) for _ in range(5))
    return x.numel() * 4 / best


def timeit(fn):
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ---- the table -------------------------------------------------------------------------------

def fmt_rate(r):
    return f"{r:.1f}" if isinstance(r, (int, float)) and r > 0 else "n/a"


def median(values):
    values = sorted(values)
    return values[len(values) // 2] if len(values) % 2 else (values[len(values) // 2 - 1] + values[len(values) // 2]) / 2


def combine(rows):
    """One format's rounds as one row: each runtime's figures as their medians, and the ratio
    cells as the median of the rounds' ratios (each round's runtimes ran within the same minutes)
    with their range when there is more than one round."""
    def runtime(key):
        runs = [r[key] for r in rows if r[key] and "error" not in r[key]]
        if not runs:
            return rows[0][key] if rows[0][key] and "error" in rows[0][key] else {}
        out = dict(runs[0])
        for field in ("prefill_tok_s", "decode_tok_s", "rss_bytes"):
            if all(field in run for run in runs):
                out[field] = median([run[field] for run in runs])
        return out

    def cell(pairs):
        values = [a / b for a, b in pairs if a and b]
        if not values:
            return "n/a"
        text = f"{median(values):.2f}x"
        return text + (f" ({min(values):.2f}-{max(values):.2f})" if len(values) > 1 else "")

    def rate(side, field):
        return (side or {}).get(field, 0) if "error" not in (side or {}) else 0

    faster = lambda r: max(rate(r["llama.cpp"], "prefill_tok_s"), rate(r["torch"], "prefill_tok_s"))  # noqa: E731
    ratios = {
        "prefill": cell([(rate(r["ours"], "prefill_tok_s"), faster(r)) for r in rows]),
        "decode": cell([(rate(r["ours"], "decode_tok_s"), rate(r["llama.cpp"], "decode_tok_s")) for r in rows]),
        "roofline": cell([(rate(r["ours"], "decode_tok_s"), r["roofline_tok_s"]) for r in rows]),
    }
    bandwidth = median([r["bandwidth"] for r in rows])
    return {"format": rows[0]["format"], "ours": runtime("ours"), "llama.cpp": runtime("llama.cpp"),
            "torch": runtime("torch"), "weight_bytes_per_token": rows[0]["weight_bytes_per_token"],
            "bandwidth": bandwidth, "roofline_tok_s": bandwidth / rows[0]["weight_bytes_per_token"],
            "ratios": ratios, "bandwidths": [r["bandwidth"] for r in rows]}


def main():
    args = parse_args()
    config, read = build_files(args)
    if args.files_only:
        return
    prompt = prompt_ids(args, config.vocab_size)
    started = datetime.datetime.now(datetime.timezone.utc)
    rounds = []  # rounds[i][fmt] = the row of format fmt in round i
    for round_no in range(args.rounds):
        measured = {}
        for fmt in args.formats:
            gguf_path = os.path.join(args.work, f"model-{fmt}.gguf")
            folder = os.path.join(args.work, f"hf-{fmt}")
            ours_path = folder if fmt in ("f32", "bf16", "fp8") else gguf_path
            if args.skip_llama or fmt == "fp8":
                ours, llama = run_ours(args, ours_path, prompt), {}
                # Measured right after our runs, per format: this machine's bandwidth moves by up
                # to 2x between minutes (43 to 83 GB/s in one day), so one figure for the whole
                # table made the roofline column read the minute, not the decode.
                bw = bandwidth(args)
            else:
                # In step with the decode, token by token (see `run_in_step`): the median.
                ours, llama, samples = run_in_step(args, ours_path, gguf_path, prompt)
                bw = median(samples) if samples else bandwidth(args)
            torch_r = {} if args.skip_torch or fmt not in ("f32", "bf16") else run_torch(args, folder, prompt)
            row = {"round": round_no, "format": fmt, "ours": ours, "llama.cpp": llama, "torch": torch_r,
                   "weight_bytes_per_token": read[fmt], "bandwidth": bw, "roofline_tok_s": bw / read[fmt]}
            print(json.dumps(row), flush=True)
            measured[fmt] = row
        rounds.append(measured)
    rows = [combine([r[fmt] for r in rounds]) for fmt in args.formats]
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    flags = open("/proc/cpuinfo").read()
    # The family and model tell CPU generations apart where the name does not ("AMD EPYC").
    family = re.search(r"^cpu family\s*:\s*(\d+)", flags, re.M)
    model_no = re.search(r"^model\s*:\s*(\d+)", flags, re.M)
    if family and model_no:
        cpu += f" (family {family.group(1)}, model {model_no.group(1)})"
    ended = datetime.datetime.now(datetime.timezone.utc)
    isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    lines = [
        f"Measured {started:%Y-%m-%d %H:%M}-{ended:%H:%M} UTC on {cpu}, {isa}, {args.threads} threads, by `tools/bench_peers.py`"
        f"{f' ({args.rounds} rounds: each figure the median, each ratio the median of the rounds with its range)' if args.rounds > 1 else ''}: "
        f"{shape_name(args)} shape, random weights, a {args.prompt_len}-token prompt then {args.new_tokens} greedy tokens, "
        f"ours and llama.cpp in step (each forward pass of ours followed by llama.cpp's), PyTorch after them. "
        f"Streaming read bandwidth (PyTorch summing 1 GiB on the same threads) measured in step with the decode, after each pair of tokens, its median per format: "
        f"{min(min(r['bandwidths']) for r in rows) / 1e9:.1f} to {max(max(r['bandwidths']) for r in rows) / 1e9:.1f} GB/s; "
        f"roofline = that bandwidth / weight bytes read per token. KV cache: ours {args.kv_dtype}, llama.cpp f16 (its default), PyTorch the weights' dtype.",
        "",
        "| weights | prefill tok/s: ours / llama.cpp / PyTorch | ours vs the faster | decode tok/s: ours / llama.cpp "
        "/ PyTorch | ours vs llama.cpp | ours vs roofline | memory while generating (ours) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        o, lc, t = r["ours"], r["llama.cpp"], r["torch"]
        rss = o.get("rss_bytes", o.get("peak_rss_bytes"))
        lines.append(
            f"| {r['format']} | {fmt_rate(o.get('prefill_tok_s'))} / {fmt_rate(lc.get('prefill_tok_s'))} / "
            f"{fmt_rate(t.get('prefill_tok_s'))} | {r['ratios']['prefill']} | "
            f"{fmt_rate(o.get('decode_tok_s'))} / {fmt_rate(lc.get('decode_tok_s'))} / {fmt_rate(t.get('decode_tok_s'))} | "
            f"{r['ratios']['decode']} | "
            f"{r['ratios']['roofline']} ({r['roofline_tok_s']:.1f} at {r['bandwidth'] / 1e9:.0f} GB/s) | "
            f"{f'{rss / 2**20:.0f} MiB' if rss else 'n/a'} |"
        )
    table = "\n".join(lines)
    print()
    print(table)
    if args.write_docs:
        doc = os.path.join(REPO, "docs", "BENCHMARKS.md")
        text = open(doc).read()
        start, end = "<!-- peers:start -->", "<!-- peers:end -->"
        block = f"{start}\n{table}\n{end}"
        if start in text and end in text:
            text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
        else:
            text += f"\n## Against llama.cpp and PyTorch, same weights\n\n{block}\n"
        open(doc, "w").write(text)
        print(f"written to {doc}")


if __name__ == "__main__":
    sys.exit(main())
