//! What sets each architecture apart, as one table computed from [`super::registry`]: each
//! architecture's recipe, and a small config of it that gives only sizes (so every other field
//! is the class default) parsed by its own reading and built with shape-only weights. Since the
//! table is what the code does, `docs/ARCHITECTURES.md` cannot drift from it.

use nn::{Init, ModuleExt};
use serde_json::json;
use tensor::{Device, GluActivation};

use super::architecture::Architecture;
use super::recipe::{AttentionKind, EmbedScale, NormWeights, QkNormKind};
use super::registry;
use crate::Result;
use crate::config::{LayerAttention, LayerKind, ModelConfig, RouterKind};

/// Layers in the probe config: enough to show every class's repeating pattern twice.
const PROBE_LAYERS: usize = 12;

/// The column names of [`rows`].
pub const HEADER: [&str; 10] = [
    "architecture",
    "class, model_type",
    "attention",
    "QK-norm",
    "norms",
    "layers (class defaults)",
    "RoPE (class defaults)",
    "feed-forward",
    "biases",
    "embeddings, head",
];

/// One row per architecture, in registry order.
pub fn rows() -> Result<Vec<[String; 10]>> {
    registry::ALL.iter().map(|a| row(a)).collect()
}

/// A config of `arch` that gives sizes only, with experts where the architecture has them (the
/// DeepSeek classes default to none).
pub fn probe_config(arch: &Architecture) -> Result<ModelConfig> {
    let probe = json!({
        "model_type": arch.text_model_type(),
        "vocab_size": 256,
        "hidden_size": 64,
        "num_hidden_layers": PROBE_LAYERS,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "intermediate_size": 128,
        "intermediate_size_mlp": 128,
        "moe_intermediate_size": 32,
        "n_routed_experts": 64,
        "num_local_experts": 64,
        "q_lora_rank": 32,
        "kv_lora_rank": 32,
        "qk_nope_head_dim": 16,
        "qk_rope_head_dim": 8,
        "v_head_dim": 16,
    });
    ModelConfig::from_json_str(&probe.to_string(), &format!("the {} probe config", arch.name()))
}

fn row(arch: &Architecture) -> Result<[String; 10]> {
    let config = probe_config(arch)?;
    let recipe = config.recipe();
    let model = super::build(&config, &mut Init::placeholders(&Device::cpu()))?;
    let names: Vec<String> = model.named_parameters().into_iter().map(|(n, _)| n).collect();

    let model_types: Vec<String> = arch
        .model_types
        .iter()
        .map(|t| if t.nested { format!("`{}` (in `text_config`)", t.name) } else { format!("`{}`", t.name) })
        .collect();
    let mut attention = match recipe.attention {
        AttentionKind::Standard => "multi-head, grouped KV".to_string(),
        AttentionKind::Latent => "multi-head latent (MLA)".to_string(),
    };
    if recipe.sinks {
        attention.push_str(", sinks");
    }
    let unit_offset = recipe.norm_weights == NormWeights::UnitOffset;
    let qk_norm = match recipe.qk_norm {
        QkNormKind::None => "-",
        QkNormKind::PerHead => "RMSNorm per head",
        QkNormKind::WholeProjection => "RMSNorm over the projection",
        QkNormKind::L2AfterRope => "L2 after RoPE, RoPE layers",
    };
    let norms = format!("{}{}", recipe.placement.name(), if unit_offset { ", (1 + w)" } else { "" });
    let mut rope = crate::cli::tour::rope_summary(&config);
    rope.push_str(if config.rope_interleaved { ", pairs interleaved" } else { ", halves" });
    let embeddings = format!(
        "{}{} head",
        if recipe.embed_scale == EmbedScale::SqrtHidden { "x sqrt(hidden), " } else { "" },
        if config.tie_word_embeddings { "tied" } else { "untied" }
    );
    Ok([
        arch.name().to_string(),
        format!("`{}`: {}", arch.names.class, model_types.join(", ")),
        attention,
        qk_norm.to_string(),
        norms,
        layer_pattern(&config),
        rope,
        feed_forward(&config),
        biases(&names),
        embeddings,
    ])
}

/// The shortest repeating run of layer kinds, e.g. `window 4096 x5, full`.
fn layer_pattern(c: &ModelConfig) -> String {
    let kind = |l: &LayerKind| {
        let mut s = match l.attention {
            LayerAttention::Full => "full".to_string(),
            LayerAttention::Sliding => format!("window {}", c.sliding_window.map_or(0, |w| w)),
            LayerAttention::Chunked => format!("chunks of {}", c.attention_chunk_size.map_or(0, |w| w)),
        };
        if !l.rope {
            s.push_str(" NoPE");
        }
        s
    };
    let kinds: Vec<String> = c.layers.iter().map(kind).collect();
    let period = (1..=kinds.len()).find(|&p| (0..kinds.len()).all(|i| kinds[i] == kinds[i % p])).unwrap_or(kinds.len());
    let mut runs: Vec<(String, usize)> = Vec::new();
    for k in &kinds[..period] {
        match runs.last_mut() {
            Some((last, n)) if last == k => *n += 1,
            _ => runs.push((k.clone(), 1)),
        }
    }
    runs.iter().map(|(k, n)| if *n > 1 { format!("{k} x{n}") } else { k.clone() }).collect::<Vec<_>>().join(", ")
}

/// The gated activation, and the experts: how the router picks, a shared expert, which layers.
fn feed_forward(c: &ModelConfig) -> String {
    let mut text = match (c.activation, c.swiglu_clamp) {
        (_, Some(clamp)) => format!("clamped SwiGLU (alpha {}, limit {})", clamp.alpha, clamp.limit),
        (GluActivation::Silu, None) => "SwiGLU".to_string(),
        (GluActivation::GeluTanh, None) => "GeGLU (tanh)".to_string(),
    };
    if let Some(m) = &c.moe {
        let router = match m.router {
            RouterKind::SoftmaxTopK => "softmax, top-k",
            RouterKind::SigmoidGroupLimited => "sigmoid, group-limited top-k",
            RouterKind::Top1SigmoidInput => "top-1, sigmoid on the input",
            RouterKind::BiasedSoftmaxOverChosen => "biased top-k, softmax over the chosen",
        };
        let first_moe = c.layers.iter().position(|l| l.moe).unwrap_or(0);
        text.push_str(&format!(
            "; experts ({router}){}, {}",
            if m.shared_intermediate_size.is_some() { " + shared" } else { "" },
            match c.moe_layer_count() {
                n if n == c.layers.len() => "every layer".to_string(),
                n if n + first_moe == c.layers.len() => {
                    format!("after {first_moe} dense layer{}", if first_moe == 1 { "" } else { "s" })
                }
                n => format!("on {n} of {} layers", c.layers.len()),
            }
        ));
    }
    text
}

/// The parameters that are biases, without the layer prefix (`self_attn.q_proj`, ...).
fn biases(names: &[String]) -> String {
    let mut found: Vec<&str> = Vec::new();
    for n in names.iter().filter_map(|n| n.strip_suffix(".bias")) {
        let part = n.strip_prefix("model.layers.").and_then(|rest| rest.split_once('.')).map_or(n, |(_, part)| part);
        if !found.contains(&part) {
            found.push(part);
        }
    }
    if found.is_empty() { "-".to_string() } else { found.join(", ") }
}
