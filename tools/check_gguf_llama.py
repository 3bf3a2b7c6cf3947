"""Runs llama.cpp (llama-cpp-python) on the GGUF files `llm quantize` writes from the tiny
reference checkpoints and compares its logits with the ones transformers recorded for them
(`reference.safetensors`): the check that a file this project writes for an architecture is the
model llama.cpp computes, names, metadata, row orders and all.

The fixtures carry no tokenizer, so a byte-level vocabulary of the fixture's size with no merges
is added to each file first (llama.cpp needs one to load; the token ids are fed directly).

Where llama.cpp hard-codes a value a fixture's config sets otherwise (Llama 4's chunk size and
temperature-tuning floor, 8192 in llama.cpp, 8 in the fixture), `llm quantize` refuses the fixture
(shown), and a variant of it with llama.cpp's values is checked instead, against logits
transformers computes here for that variant (VARIANTS).

llama.cpp keeps its KV cache in f16, which these random fixtures amplify (most for the MLA ones,
deepseek_v3 and kimi_k2); `--f32-kv` runs it with an f32 cache instead, separating rounding from
a wrong model.

`--type q8_0|q4_0|q4_1|q4_k_m` writes that type instead of f32 (gpt-oss's experts are MXFP4 in every
quantized type): llama.cpp is then also compared with this project's own logits on the same file
(`llm logits`), where both compute one quantized model; against transformers the difference is
mostly the quantization.

Usage: /work/venv/bin/python tools/check_gguf_llama.py [--llm target/release/llm] [--f32-kv] [--type T] [names...]
(needs gguf, numpy, safetensors and llama-cpp-python, and torch and transformers for the
variants; no download)
"""

import argparse
import json
import os
import subprocess
import tempfile

import gguf
import numpy as np
from safetensors.numpy import load_file

ROOT = os.path.join(os.path.dirname(__file__), "..")
FIXTURES = os.path.join(ROOT, "llm", "tests", "data", "hf-tiny")


# Config changes that make a fixture one llama.cpp can hold (see the module doc).
# gpt-oss is released with YaRN's `truncate: false`; llama.cpp always rounds the correction range.
VARIANTS = {
    "llama4": {"attention_chunk_size": 8192, "floor_scale": 8192},
    "gpt_oss": {"rope_parameters": {"beta_fast": 32.0, "beta_slow": 1.0, "factor": 4.0,
                                    "original_max_position_embeddings": 64, "rope_theta": 150000.0,
                                    "rope_type": "yarn", "truncate": True}},
}


def variant(name, folder, tmp, ids):
    """A copy of `folder` with VARIANTS[name] applied, and transformers' logits for `ids` on it."""
    import torch
    from transformers import AutoModelForCausalLM

    out = os.path.join(tmp, f"{name}-variant")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(folder, "config.json")) as f:
        config = json.load(f)
    config.update(VARIANTS[name])
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f)
    os.symlink(os.path.abspath(os.path.join(folder, "model.safetensors")), os.path.join(out, "model.safetensors"))
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    with torch.no_grad():
        want = model(torch.tensor([ids], dtype=torch.long)).logits[0].numpy()
    return out, want


def with_vocab(src, dst, vocab):
    """A copy of the GGUF file `src` with a `gpt2` vocabulary of `vocab` byte tokens."""
    reader = gguf.GGUFReader(src)
    arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    writer = gguf.GGUFWriter(dst, arch)
    for name, field in reader.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        kind = field.types[0]
        if kind == gguf.GGUFValueType.STRING:
            writer.add_string(name, bytes(field.parts[-1]).decode())
        elif kind in (gguf.GGUFValueType.UINT32, gguf.GGUFValueType.FLOAT32, gguf.GGUFValueType.BOOL):
            value = field.parts[-1][0]
            {gguf.GGUFValueType.UINT32: writer.add_uint32, gguf.GGUFValueType.FLOAT32: writer.add_float32,
             gguf.GGUFValueType.BOOL: writer.add_bool}[kind](name, value.item())
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list([f"<{i}>" for i in range(vocab)])
    writer.add_token_types([gguf.TokenType.NORMAL] * vocab)
    writer.add_token_merges(["< 0"])  # one: llama.cpp refuses a BPE vocabulary without merges
    for t in reader.tensors:
        shape = [int(d) for d in reversed(t.shape)]
        data = np.asarray(t.data)
        if t.tensor_type in (gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16):
            data = data.reshape(shape)
        # (block-quantized tensors pass as the reader gives them: rows of bytes)
        writer.add_tensor(t.name, data, raw_dtype=t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llm", default=os.path.join(ROOT, "target", "release", "llm"))
    ap.add_argument("--f32-kv", action="store_true", help="an f32 KV cache (type_k, type_v) and no flash attention")
    ap.add_argument("--type", default="f32", choices=["f32", "q8_0", "q4_0", "q4_1", "q4_k_m"], help="the GGUF type to write")
    ap.add_argument("names", nargs="*", default=["qwen3", "mistral_small", "qwen3_moe", "olmo2", "smollm3", "gemma3",
                                                    "llama4", "deepseek_v3", "kimi_k2", "gpt_oss"])
    args = ap.parse_args()
    from llama_cpp import Llama

    tmp = tempfile.mkdtemp(prefix="gguf-llama-")
    for name in args.names:
        folder = os.path.join(FIXTURES, name)
        ref = load_file(os.path.join(folder, "reference.safetensors"))
        ids, want = ref["input_ids"][0], ref["logits"][0]
        raw, path = os.path.join(tmp, f"{name}-raw.gguf"), os.path.join(tmp, f"{name}.gguf")
        if name in VARIANTS:
            refused = subprocess.run([args.llm, "quantize", "--model", folder, "--out", raw, "--type", "f32"],
                                     capture_output=True, text=True)
            print(f"{name:14} fixture as it is: llm quantize exit {refused.returncode}: "
                  f"{(refused.stderr or refused.stdout).strip().splitlines()[-1:]}")
            folder, want = variant(name, folder, tmp, [int(i) for i in ids])
            name += "*"
        subprocess.run([args.llm, "quantize", "--model", folder, "--out", raw, "--type", args.type], check=True,
                       capture_output=True)
        with_vocab(raw, path, want.shape[-1])
        cache = dict(type_k=0, type_v=0, flash_attn=False) if args.f32_kv else {}  # 0: GGML_TYPE_F32
        llama = Llama(model_path=path, n_ctx=64, logits_all=True, n_threads=2, verbose=False, **cache)
        llama.eval([int(i) for i in ids])
        got = np.array(llama.scores[: len(ids)], dtype=np.float32)
        err = float(np.abs(got - want).max())
        kv = "f32" if args.f32_kv else "f16"
        print(f"{name:14} llama.cpp ({kv} KV cache) on our {args.type} GGUF vs transformers: max abs logit difference "
              f"{err:.2e} (logits up to {float(np.abs(want).max()):.2f})")
        if args.type != "f32":
            from safetensors.numpy import save_file
            ids_path, ours_path = os.path.join(tmp, f"{name}-ids.safetensors"), os.path.join(tmp, f"{name}-ours.safetensors")
            save_file({"input_ids": np.asarray([ids], dtype=np.int64)}, ids_path)
            subprocess.run([args.llm, "logits", "--model", path, "--input", ids_path, "--out", ours_path], check=True,
                           capture_output=True)
            ours = next(iter(load_file(ours_path).values()))[0]
            print(f"{'':14} llama.cpp vs ours on the same {args.type} file: max abs logit difference "
                  f"{float(np.abs(got - ours).max()):.2e}")


if __name__ == "__main__":
    main()
