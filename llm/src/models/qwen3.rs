//! Qwen3 dense (Qwen team, 2025; `Qwen3ForCausalLM`). What sets it apart from a Llama-style
//! decoder: a per-head QK-norm (RMSNorm over `head_dim`, weights shared across heads) on queries
//! and keys before RoPE. GQA, SwiGLU, pre-norm; tied embeddings at the small sizes.

use serde_json::{Value, json};

use super::architecture::{Architecture, ClassDefaults, Gguf, ModelType, Names, as_released, no_fields};
use super::recipe::{LLAMA_STYLE, QkNormKind, Recipe};
use crate::config::Family;
use crate::tiny::TinySizes;

pub const ARCH: Architecture = Architecture {
    family: Family::Qwen3,
    names: Names { shown: "Qwen3", id: "qwen3", class: "Qwen3ForCausalLM" },
    model_types: &[ModelType::text("qwen3")],
    // `Qwen3Config`.
    defaults: ClassDefaults { vocab_size: 151_936, head_dim: Some(128), ..ClassDefaults::COMMON },
    read: no_fields,
    recipe: Recipe { qk_norm: QkNormKind::PerHead, ..LLAMA_STYLE },
    configure: as_released,
    fixture: "qwen3",
    gguf: Some(Gguf::named("qwen3")),
    tiny: Some(tiny),
};

fn tiny(_: &TinySizes) -> Value {
    json!({ "model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "use_sliding_window": false })
}
