"""Checks `llm quantize --type TYPE` (q4_k_m by default; q8_0, q4_0, q4_1, q5_0, q5_1; f32 checks the mapping
below exactly) end to end against llama.cpp (llama-cpp-python), for one of three architectures
(`--arch`), with our logits on the CPU or the GPU (`--device`):

1. builds a random checkpoint wide enough for 256-weight blocks with transformers, with the
   project's tiny tokenizer and a chat template:
   - qwen3 (default): a dense Qwen3, hidden 256, FFN 512, 8 layers, tied head;
   - qwen3_moe: a Qwen3-MoE, hidden 256, 8 experts of FFN 256 (2 per token, normalized), 4
     layers, tied head (GGUF `qwen3moe`: ffn_gate_inp, ffn_gate_exps / ffn_up_exps /
     ffn_down_exps, which transformers holds fused as `mlp.experts.gate_up_proj` [E, 2I, H],
     gate rows first, and `mlp.experts.down_proj` [E, H, I]);
   - mistral: a Mistral, hidden 256, FFN 512, 4 heads, 2 KV heads, head dim 64, 4 layers,
     untied head (GGUF `llama`, whose attn_q / attn_k rows are permuted as llama.cpp's
     convert_hf_to_gguf does; the reference undoes it);
2. writes it with `llm quantize` and lists the tensor types (for Q4_K_M llama.cpp's mix: Q6_K
   for the head/table and for attn_v / ffn_down of some layers, Q4_K elsewhere; with 8 experts
   also Q8_0 attn_k / attn_v and Q5_K attn_output; norms and the router stay F32) and that
   `tokenizer.chat_template` was written;
3. runs the same token ids through (a) transformers on the exactly dequantized weights
   (`gguf.quants.dequantize`), mapped back to transformers' names, shapes and row orders: the
   reference; (b) llama.cpp on the file; (c) `llm logits --device cpu|gpu` on the file (packed
   weights: integer dots below 32 rows, decoded panels from 32 on);
4. prints how far the mapped-back weights and the reference's logits are from the random model
   (a wrong name, gate/up order or row permutation shows there as garbage: check with `--type
   f32`, where both are 0, or q8_0, about 0.1 on the dense models; 4-bit weights alone move these
   random logits by 1 to 2, and q8_0 already flips some MoE routes), then each runtime's max abs
   error and top-1 agreement against the reference, and last one line per length with the
   issue's accuracy target: ours <= 1.5x llama.cpp's error and top-1 >= llama.cpp's - 5 points.

The GPU adapter may be Mesa's lavapipe (Vulkan on the CPU): slow, but these models are tiny.

With `--sequences N` each length runs N sequences and the target line compares the medians of
their max abs errors (and the mean top-1): with MoE a token near a routing tie can take another
expert in either runtime, so one sequence's maximum is partly chance.

Usage: /work/venv/bin/python tools/check_quant_llama.py [--arch qwen3|qwen3_moe|mistral]
           [--type q4_k_m|q8_0|q4_0|q4_1|q5_0|q5_1|f32] [--device cpu|gpu] [--sequences N] [--llm target/debug/llm]
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
from transformers import (MistralConfig, MistralForCausalLM, Qwen3Config, Qwen3ForCausalLM, Qwen3MoeConfig,
                          Qwen3MoeForCausalLM)

ROOT = os.path.join(os.path.dirname(__file__), "..")
TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}<|assistant|>"
VOCAB = 2048

# GGUF block tensor kind -> transformers' name inside `model.layers.L.` (every architecture here).
HF_OF = {
    "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm",
    "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj",
    # qwen3moe: the router, and the experts stacked [E, rows, cols] (gate and up fused below)
    "ffn_gate_inp": "mlp.gate", "ffn_gate_exps": "mlp.experts.gate_proj", "ffn_up_exps": "mlp.experts.up_proj",
    "ffn_down_exps": "mlp.experts.down_proj",
}


def hf_name(name):
    if name == "token_embd.weight":
        return "model.embed_tokens.weight"
    if name == "output_norm.weight":
        return "model.norm.weight"
    if name == "output.weight":
        return "lm_head.weight"
    _, layer, kind, suffix = name.split(".")
    hf = f"model.layers.{layer}.{HF_OF[kind]}"
    # transformers 5 keeps the experts as bare parameters (no `.weight`)
    return hf if kind.endswith("_exps") else f"{hf}.{suffix}"


def fuse_experts(state, config):
    """Qwen3MoeExperts.forward: `linear(x, gate_up_proj[e]).chunk(2, dim=-1)` -> gate, up: gate rows first."""
    for layer in range(config.num_hidden_layers):
        prefix = f"model.layers.{layer}.mlp.experts."
        gate, up = state.pop(prefix + "gate_proj"), state.pop(prefix + "up_proj")
        state[prefix + "gate_up_proj"] = torch.cat([gate, up], dim=1)


def unpermute(w, n_head):
    """The inverse of convert_hf_to_gguf's LlamaModel.permute (rotary halves -> interleaved pairs)."""
    rows, cols = w.shape
    return w.reshape(n_head, rows // n_head // 2, 2, cols).swapaxes(1, 2).reshape(rows, cols)


def unpermute_qk(state, config):
    for layer in range(config.num_hidden_layers):
        prefix = f"model.layers.{layer}.self_attn."
        state[prefix + "q_proj.weight"] = unpermute(state[prefix + "q_proj.weight"], config.num_attention_heads)
        state[prefix + "k_proj.weight"] = unpermute(state[prefix + "k_proj.weight"], config.num_key_value_heads)


COMMON = dict(vocab_size=VOCAB, hidden_size=256, num_attention_heads=4, num_key_value_heads=2, head_dim=64,
              max_position_embeddings=512, rope_theta=10000.0, initializer_range=0.05)

# arch -> (config class, model class, config values, fix-ups of the state mapped back by hf_name)
ARCHS = {
    "qwen3": (Qwen3Config, Qwen3ForCausalLM,
              dict(intermediate_size=512, num_hidden_layers=8, rms_norm_eps=1e-6, tie_word_embeddings=True), []),
    "qwen3_moe": (Qwen3MoeConfig, Qwen3MoeForCausalLM,
                  dict(intermediate_size=512, moe_intermediate_size=256, num_experts=8, num_experts_per_tok=2,
                       norm_topk_prob=True, num_hidden_layers=4, rms_norm_eps=1e-6, tie_word_embeddings=True),
                  [fuse_experts]),
    "mistral": (MistralConfig, MistralForCausalLM,
                dict(intermediate_size=512, num_hidden_layers=4, rms_norm_eps=1e-5, tie_word_embeddings=False,
                     sliding_window=None),
                [unpermute_qk]),
}


def errors(got, want):
    top1 = float(np.mean(got.argmax(-1) == want.argmax(-1)))
    return float(np.abs(got - want).max()), top1


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--llm", default=os.path.join(ROOT, "target", "debug", "llm"))
    ap.add_argument("--arch", default="qwen3", choices=sorted(ARCHS))
    ap.add_argument("--type", default="q4_k_m", choices=["q4_k_m", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "f32"])
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu"], help="where `llm logits` runs")
    ap.add_argument("--sequences", type=int, default=1,
                    help="sequences per length (the first fixed, the others random); the target line then "
                         "compares the median of their max abs errors and the mean top-1")
    args = ap.parse_args()
    config_class, model_class, values, fixups = ARCHS[args.arch]
    torch.manual_seed(0)
    tmp = tempfile.mkdtemp(prefix=f"{args.arch}-{args.type}-")
    model_dir = os.path.join(tmp, f"{args.arch}-wide")
    config = config_class(**COMMON, **values)
    model = model_class(config).eval()
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

    ids_of = {length: np.array([[(i * 397 + 11) % VOCAB for i in range(length)]], dtype=np.int64)
              for length in (16, 48)}
    original = {name: w.detach().clone() for name, w in model.state_dict().items()}
    with torch.no_grad():
        random_logits = {n: model(torch.from_numpy(ids)).logits[0].numpy() for n, ids in ids_of.items()}

    # The reference: transformers on the dequantized weights, mapped back name by name.
    state = {}
    for t in reader.tensors:
        values = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
        shape = [int(d) for d in reversed(t.shape)]
        state[hf_name(t.name)] = torch.from_numpy(values.reshape(shape).copy())
    for fix in fixups:
        fix(state, config)
    if config.tie_word_embeddings:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    missing, unexpected = set(original) - set(state), set(state) - set(original)
    assert not missing and not unexpected, f"missing {sorted(missing)}, unexpected {sorted(unexpected)}"
    for name, w in state.items():
        assert w.shape == original[name].shape, f"{name}: {tuple(w.shape)} vs {tuple(original[name].shape)}"
    change, worst = max((float((state[n] - w).abs().max() / w.abs().max().clamp(min=1e-30)), n)
                        for n, w in original.items())
    print(f"mapped back: {len(state)} tensors, every name and shape matching; largest weight change "
          f"{change:.3e} of the tensor's largest weight ({worst})")
    model.load_state_dict(state, strict=True)
    from llama_cpp import Llama

    llama = Llama(model_path=path, n_ctx=64, logits_all=True, n_threads=2, verbose=False)
    summary = {}
    # 16 tokens: our products take integer dots on the blocks (below 32 rows); 48: decoded panels.
    # Sequence 0 is the fixed one; with --sequences N, N - 1 more of random ids.
    rng = np.random.default_rng(1)
    for seq in range(args.sequences):
        for length, first in ids_of.items():
            ids = first if seq == 0 else rng.integers(0, VOCAB, (1, length), dtype=np.int64)
            with torch.no_grad():
                want = model(torch.from_numpy(ids)).logits[0].numpy()
            if seq == 0:
                err, top1 = errors(want, random_logits[length])
                print(f"{length} tokens, the reference vs transformers on the random weights: max abs difference "
                      f"{err:.3e}, top-1 agreement {top1:.2f}")
            llama.reset()
            llama.eval(ids[0].tolist())
            theirs = np.array(llama.scores[:length], dtype=np.float32)
            inp, out = os.path.join(tmp, "ids.safetensors"), os.path.join(tmp, "logits.safetensors")
            save_file({"input_ids": ids}, inp)
            subprocess.run([args.llm, "logits", "--model", path, "--input", inp, "--out", out, "--device",
                            args.device], check=True)
            ours = load_file(out)["logits"][0]
            spread = float(np.abs(want).max())
            results = []
            for who, got in [("llama.cpp", theirs), ("llm (packed)", ours)]:
                err, top1 = errors(got, want)
                results.append((err, top1))
                print(f"{length} tokens{f' (sequence {seq})' if seq else ''}, {who:13} vs transformers on the "
                      f"dequantized weights: max abs error {err:.3e} (logits up to {spread:.2f}), top-1 agreement "
                      f"{top1:.2f}")
            summary.setdefault(length, []).append(results)
    for length, runs in summary.items():
        # Over several sequences: the median of each sequence's max abs error (an MoE route that
        # flips near a tie makes one sequence's maximum a matter of chance) and the mean top-1.
        their_err, our_err = (float(np.median([r[i][0] for r in runs])) for i in (0, 1))
        their_top1, our_top1 = (float(np.mean([r[i][1] for r in runs])) for i in (0, 1))
        ratio = our_err / their_err if their_err > 0 else float("inf") if our_err > 0 else 1.0
        met = our_err <= 1.5 * their_err and our_top1 >= their_top1 - 0.05
        # (below 0.01, as on the GPU, which multiplies f32 activations by the decoded weights: 2 digits)
        shown = f"{ratio:.2f}" if ratio >= 0.01 else f"{ratio:.1e}"
        over = f", medians over {len(runs)} sequences" if len(runs) > 1 else ""
        if len(runs) > 1:
            # Sequences whose worst logit is off by more than 0.15: a route that flipped, mostly.
            far = [sum(r[i][0] > 0.15 for r in runs) for i in (0, 1)]
            print(f"{length} tokens: sequences with an error above 0.15: llama.cpp {far[0]}, ours {far[1]} of "
                  f"{len(runs)}; mean max abs error llama.cpp {np.mean([r[0][0] for r in runs]):.3e}, ours "
                  f"{np.mean([r[1][0] for r in runs]):.3e}")
        print(f"{length} tokens ({args.arch}, {args.type}, llm on the {args.device}{over}): ratio ours/llama.cpp "
              f"error {shown}x ({our_err:.3e} / {their_err:.3e}), top-1 ours {our_top1:.2f} vs llama.cpp "
              f"{their_top1:.2f}: target {'met' if met else 'NOT met'}")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
