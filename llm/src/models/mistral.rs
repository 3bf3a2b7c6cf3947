//! Mistral Small 3.1 (Mistral AI, 2025; the text decoder of `Mistral3ForConditionalGeneration`,
//! `MistralForCausalLM`). The plainest recipe here: GQA (32 query heads to 8 kv heads), RoPE
//! with a very large base (1e9), SwiGLU, pre-norm, no QK-norm, and an explicit `head_dim` of 128
//! that is not hidden/heads (5120/32 = 160). An optional sliding window (null in 3.1) applies to
//! every layer.

use serde_json::{Value, json};

use super::architecture::{Architecture, ClassDefaults, Gguf, ModelType, Names, as_released};
use super::recipe::LLAMA_STYLE;
use crate::Result;
use crate::config::fields::Fields;
use crate::config::read::window_null_turns_off;
use crate::config::{Family, LayerAttention, ModelConfig};
use crate::tiny::TinySizes;

pub const ARCH: Architecture = Architecture {
    family: Family::Mistral,
    names: Names { shown: "Mistral Small 3.1", id: "mistral", class: "MistralForCausalLM" },
    model_types: &[ModelType::text("mistral"), ModelType::nested("mistral3")],
    // `MistralConfig`.
    defaults: ClassDefaults::COMMON,
    read,
    recipe: LLAMA_STYLE,
    configure: as_released,
    fixture: "mistral_small",
    gguf: Some(Gguf::pairwise_rope("llama")),
    tiny: Some(tiny),
};

/// `MistralConfig` defaults to a 4096 window when the key is absent; null turns it off. A
/// window applies to every layer, even those `layer_types` calls full.
fn read(f: &Fields, c: &mut ModelConfig) -> Result<()> {
    c.sliding_window = window_null_turns_off(f, 4096)?;
    if c.sliding_window.is_some() {
        c.layers.iter_mut().for_each(|l| l.attention = LayerAttention::Sliding);
    }
    Ok(())
}

fn tiny(_: &TinySizes) -> Value {
    json!({ "model_type": "mistral", "architectures": ["MistralForCausalLM"], "sliding_window": null })
}
