"""Checks `llm quantize --type TYPE` (q4_k_m by default; q8_0, q4_0, q4_1) end to end against llama.cpp
(llama-cpp-python):

1. builds a random Qwen3 checkpoint wide enough for 256-weight blocks (hidden 256, FFN 512,
   8 layers) with transformers, with the project's tiny tokenizer and a chat template;
2. writes it with `llm quantize` and lists the tensor types (for Q4_K_M llama.cpp's mix: Q6_K
   for the tied head/table and for attn_v / ffn_down of layers 0, 3, 6, 7; Q4_K elsewhere) and
   that `tokenizer.chat_template` was written;
3. runs the same token ids through (a) transformers on the exactly dequantized weights
   (`gguf.quants.dequantize`), the reference; (b) llama.cpp on the file; (c) `llm logits` on the
   file (packed weights: integer dots below 32 rows, decoded panels from 32 on);
4. prints each one's max abs error and top-1 agreement against the reference: the issue's
   accuracy target is ours <= 1.5x llama.cpp's error and top-1 >= llama.cpp's - 5 points.

Usage: /work/venv/bin/python tools/check_quant_llama.py [--type q4_k_m|q8_0|q4_0|q4_1] [--llm target/debug/llm]
(needs torch, transformers, gguf, safetensors, llama-cpp-python; no download)
"""

import argparse
import json
import os
import shutil
import subprocess
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.mkdtemp())

import gguf
import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from transformers import Qwen3Config, Qwen3ForCausalLM

ROOT = os.path.join(os.path.dirname(__file__), "..")
TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}<|assistant|>"

HF_OF = {
    "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm",
    "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
}


def hf_name(name):
    if name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if name == "output_norm.weight":
        return "model.norm.weight"
    if name == "output.weight":
        return "lm_head.weight"
    _, layer, kind, suffix = name.split(".")
    return f"model.layers.{layer}.{HF_OF[kind]}.{suffix}"


def errors(got, want):
    top1 = float(np.mean(got.argmax(-1) == want.argmax(-1)))
    return float(np.abs(got - want).max()), top1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llm", default=os.path.join(ROOT, "target", "debug", "llm"))
    ap.add_argument("--type", default="q4_k_m", choices=["q4_k_m", "q8_0", "q4_0", "q4_1"])
    args = ap.parse_args()
    torch.manual_seed(0)
    tmp = tempfile.mkdtemp(prefix=f"{args.type}-")
    model_dir = os.path.join(tmp, "qwen3-wide")
    config = Qwen3Config(
        vocab_size=2048, hidden_size=256, intermediate_size=512, num_hidden_layers=8, num_attention_heads=4,
        num_key_value_heads=2, head_dim=64, max_position_embeddings=512, rms_norm_eps=1e-6,
        tie_word_embeddings=True, rope_theta=10000.0, initializer_range=0.05,
    )
    model = Qwen3ForCausalLM(config).eval()
    model.save_pretrained(model_dir, safe_serialization=True)
    shutil.copy(os.path.join(ROOT, "llm", "assets", "tiny", "tokenizer.json"), model_dir)
    json.dump({"chat_template": TEMPLATE}, open(os.path.join(model_dir, "tokenizer_config.json"), "w"))

    path = os.path.join(tmp, f"{args.type}.gguf")
    subprocess.run([args.llm, "quantize", "--model", model_dir, "--out", path, "--type", args.type], check=True)
    reader = gguf.GGUFReader(path)
    types = {}
    for t in reader.tensors:
        types.setdefault(t.tensor_type.name, []).append(t.name)
    for ty, names in sorted(types.items()):
        print(f"{ty}: {len(names)} tensors, e.g. {', '.join(sorted(names)[:6])}")
    field = reader.fields.get("tokenizer.chat_template")
    written = bytes(field.parts[-1]).decode() if field else None
    print("tokenizer.chat_template written:", written == TEMPLATE)

    # The reference: transformers on the dequantized weights.
    state = {}
    for t in reader.tensors:
        values = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        shape = [int(d) for d in reversed(t.shape)]
        state[hf_name(t.name)] = torch.from_numpy(values.reshape(shape).copy())
    state["lm_head.weight"] = state["model.embed_tokens.weight"]
    model.load_state_dict(state, strict=False)
    from llama_cpp import Llama

    llama = Llama(model_path=path, n_ctx=64, logits_all=True, n_threads=2, verbose=False)
    # 16 tokens: our products take integer dots on the blocks (below 32 rows); 48: decoded panels.
    for length in (16, 48):
        ids = np.array([[(i * 397 + 11) % 2048 for i in range(length)]], dtype=np.int64)
        with torch.no_grad():
            want = model(torch.from_numpy(ids)).logits[0].numpy()
        llama.reset()
        llama.eval(ids[0].tolist())
        theirs = np.array(llama.scores[:length], dtype=np.float32)
        inp, out = os.path.join(tmp, "ids.safetensors"), os.path.join(tmp, "logits.safetensors")
        save_file({"input_ids": ids}, inp)
        subprocess.run([args.llm, "logits", "--model", path, "--input", inp, "--out", out], check=True)
        ours = load_file(out)["logits"][0]
        spread = float(np.abs(want).max())
        for who, got in [("llama.cpp", theirs), ("llm (packed)", ours)]:
            err, top1 = errors(got, want)
            print(f"{length} tokens, {who:13} vs transformers on the dequantized weights: max abs error "
                  f"{err:.3e} (logits up to {spread:.2f}), top-1 agreement {top1:.2f}")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
