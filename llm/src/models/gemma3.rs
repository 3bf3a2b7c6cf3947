//! Gemma 3 (Google, 2025; `Gemma3ForCausalLM`, the text decoder). What sets it apart:
//! - 5 sliding-window layers (window 512-1024) to 1 global layer, so most of the KV cache stays
//!   bounded; local layers rotate with base 10k, global layers with 1M (and linear scaling 8 at
//!   4B and up);
//! - a sandwich of four RMSNorms per layer (pre and post each block), all of the `(1 + w)` kind
//!   with zero-centred weights, and the same norm per head on queries and keys (QK-norm);
//! - embeddings multiplied by sqrt(hidden_size), the softmax scaled by
//!   `query_pre_attn_scalar^-0.5`, GeGLU with tanh-GELU, MQA at 1B and GQA above, tied head.
//!
//! Compare Mistral Small: the same GQA core, but one norm per block input and full attention.

use serde_json::{Value, json};

use super::architecture::{Architecture, ClassDefaults, ModelType, Names, as_released};
use super::recipe::{EmbedScale, LLAMA_STYLE, NormWeights, Placement, QkNormKind, Recipe};
use crate::Result;
use crate::config::fields::Fields;
use crate::config::read::pattern_unless_typed;
use crate::config::{Family, LayerAttention, ModelConfig};
use crate::tiny::TinySizes;

pub const ARCH: Architecture = Architecture {
    family: Family::Gemma3,
    names: Names { shown: "Gemma 3", id: "gemma3", class: "Gemma3ForCausalLM" },
    model_types: &[ModelType::text("gemma3_text"), ModelType::nested("gemma3")],
    // `Gemma3TextConfig`.
    defaults: ClassDefaults {
        vocab_size: 262_208,
        rope_theta: 1_000_000.0,
        local_rope_theta: Some(10_000.0),
        tie_word_embeddings: true,
        head_dim: Some(256),
        hidden_act: "gelu_pytorch_tanh",
        ..ClassDefaults::COMMON
    },
    read,
    recipe: Recipe {
        qk_norm: QkNormKind::PerHead,
        placement: Placement::Sandwich,
        norm_weights: NormWeights::UnitOffset,
        embed_scale: EmbedScale::SqrtHidden,
        ..LLAMA_STYLE
    },
    configure: as_released,
    fixture: "gemma3",
    gguf: None,
    tiny: Some(tiny),
};

/// The window (4096 by default), the softmax scale's `query_pre_attn_scalar` (256), and without
/// `layer_types` every `sliding_window_pattern`-th layer (6) global, the rest local.
fn read(f: &Fields, c: &mut ModelConfig) -> Result<()> {
    c.sliding_window = Some(f.usize_or("sliding_window", 4096)?);
    c.query_pre_attn_scalar = Some(f.f64_or("query_pre_attn_scalar", 256.0)?);
    let pattern =
        f.usize_opt("sliding_window_pattern")?.or(f.usize_opt("_sliding_window_pattern")?).unwrap_or(6).max(1);
    pattern_unless_typed(
        f,
        c,
        |i, _| {
            if (i + 1) % pattern == 0 { LayerAttention::Full } else { LayerAttention::Sliding }
        },
    )
}

fn tiny(sizes: &TinySizes) -> Value {
    json!({
        "model_type": "gemma3_text",
        "architectures": ["Gemma3ForCausalLM"],
        "hidden_activation": "gelu_pytorch_tanh",
        "query_pre_attn_scalar": sizes.hidden_size / sizes.heads,
        // Local layers see 128 tokens, every sixth layer the whole context, as Gemma 3 does.
        "sliding_window": 128,
        "layer_types": (0..sizes.layers)
            .map(|i| if (i + 1) % 6 == 0 { "full_attention" } else { "sliding_attention" })
            .collect::<Vec<_>>(),
        "rope_parameters": {
            "full_attention": { "rope_type": "default", "rope_theta": 1_000_000.0 },
            "sliding_attention": { "rope_type": "default", "rope_theta": 10_000.0 },
        },
    })
}
