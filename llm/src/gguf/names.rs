//! Tensor names as llama.cpp's converter writes them (`gguf-py`'s `tensor_mapping.py`): the
//! Hugging Face parameter `model.layers.3.self_attn.q_proj.weight` is `blk.3.attn_q.weight`, the
//! stacked experts `model.layers.3.mlp.experts.gate_proj` are `blk.3.ffn_gate_exps.weight`.

use crate::models::architecture::Gguf;

/// Per-layer parts as the Llama-style architectures name them (an architecture's
/// `Gguf::layer_names` come first): (Hugging Face suffix after `model.layers.N.`, GGUF suffix
/// after `blk.N.`).
const LAYER: [(&str, &str); 15] = [
    ("input_layernorm", "attn_norm"),
    ("post_attention_layernorm", "ffn_norm"),
    ("self_attn.q_proj", "attn_q"),
    ("self_attn.k_proj", "attn_k"),
    ("self_attn.v_proj", "attn_v"),
    ("self_attn.o_proj", "attn_output"),
    ("self_attn.q_norm", "attn_q_norm"),
    ("self_attn.k_norm", "attn_k_norm"),
    ("mlp.gate_proj", "ffn_gate"),
    ("mlp.up_proj", "ffn_up"),
    ("mlp.down_proj", "ffn_down"),
    ("mlp.gate", "ffn_gate_inp"),
    ("mlp.experts.gate_proj", "ffn_gate_exps"),
    ("mlp.experts.up_proj", "ffn_up_exps"),
    ("mlp.experts.down_proj", "ffn_down_exps"),
];

/// The GGUF name of a Hugging Face parameter name in a file of the architecture `gguf`, or None
/// when llama.cpp has none for it.
pub fn to_gguf(gguf: &Gguf, hf: &str) -> Option<String> {
    match hf {
        "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "model.norm.weight" => return Some("output_norm.weight".into()),
        "lm_head.weight" => return Some("output.weight".into()),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (layer, part) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (part, kind) = match part.rsplit_once('.') {
        Some((p, k @ ("weight" | "bias"))) => (p, k),
        // Stacked experts are parameters without a `.weight` suffix.
        _ => (part, "weight"),
    };
    let name = gguf.layer_names.iter().chain(LAYER.iter()).find(|(h, _)| *h == part)?.1;
    // A GGUF name given with its suffix keeps it (DeepSeek's correction bias, a parameter without
    // `.weight`, is `exp_probs_b.bias`).
    if name.ends_with(".weight") || name.ends_with(".bias") {
        return Some(format!("blk.{layer}.{name}"));
    }
    Some(format!("blk.{layer}.{name}.{kind}"))
}
