"""Checks a GGUF file written by `llm quantize` with llama.cpp's own Python reader: the file
parses, the architecture's required metadata is present, every tensor has the name and shape
llama.cpp's converter gives it, and Q8_0 / Q4_0 tensors hold exactly the bytes
`gguf.quants.quantize` makes from the source checkpoint's weights (q and k rows permuted first for
the `llama` architecture, as `convert_hf_to_gguf.py` does).

Usage: python tools/check_gguf_export.py MODEL_DIR FILE.gguf   (needs `pip install gguf safetensors numpy`)
"""

import json
import sys

import gguf
import numpy as np
from safetensors.numpy import load_file

LAYER = {
    "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "self_attn.q_norm": "attn_q_norm", "self_attn.k_norm": "attn_k_norm",
    "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down", "mlp.gate": "ffn_gate_inp",
}


def permute(w, n_head):
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def main(model_dir, path):
    config = json.load(open(f"{model_dir}/config.json"))
    weights = load_file(f"{model_dir}/model.safetensors")
    reader = gguf.GGUFReader(path)
    arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()
    for key in ["context_length", "embedding_length", "block_count", "feed_forward_length",
                "attention.head_count", "attention.head_count_kv", "attention.layer_norm_rms_epsilon"]:
        assert f"{arch}.{key}" in reader.fields, f"missing {arch}.{key}"
    tensors = {t.name: t for t in reader.tensors}
    expected = {}
    for name, w in weights.items():
        if name == "model.embed_tokens.weight":
            g = "token_embd.weight"
        elif name == "model.norm.weight":
            g = "output_norm.weight"
        elif name == "lm_head.weight":
            g = "output.weight"
        else:
            parts = name.split(".")
            layer, rest, kind = parts[2], ".".join(parts[3:-1]), parts[-1]
            if ".experts." in name:
                continue  # stacked below
            g = f"blk.{layer}.{LAYER[rest]}.{kind}"
            if arch == "llama" and rest in ("self_attn.q_proj", "self_attn.k_proj"):
                heads = config["num_attention_heads"] if rest.endswith("q_proj") else config["num_key_value_heads"]
                w = permute(w, heads)
        expected[g] = w.astype(np.float32)
    for i in range(config["num_hidden_layers"]):
        for proj, g in [("gate_proj", "ffn_gate_exps"), ("up_proj", "ffn_up_exps"), ("down_proj", "ffn_down_exps")]:
            per = [weights.get(f"model.layers.{i}.mlp.experts.{e}.{proj}.weight") for e in range(64)]
            per = [p for p in per if p is not None]
            if per:
                expected[f"blk.{i}.{g}.weight"] = np.stack(per).astype(np.float32)
    assert set(tensors) == set(expected), f"names differ: {sorted(set(tensors) ^ set(expected))}"
    checked = 0
    for name, w in expected.items():
        t = tensors[name]
        assert list(reversed([int(d) for d in t.shape])) == list(w.shape), f"{name}: shape {t.shape} vs {w.shape}"
        if t.tensor_type in (gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.Q4_0):
            want = gguf.quants.quantize(w, t.tensor_type)
            got = np.array(t.data).reshape(want.shape)
            assert np.array_equal(got, want), f"{name}: bytes differ from gguf.quants.quantize"
            checked += 1
        elif t.tensor_type == gguf.GGMLQuantizationType.F32:
            assert np.array_equal(np.array(t.data).reshape(w.shape), w), f"{name}: f32 values differ"
    print(f"{path}: {arch}, {len(tensors)} tensors, {checked} quantized tensors byte-identical to gguf.quants.quantize")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
