//! SmolLM3 (Hugging Face, 2025; `SmolLM3ForCausalLM`). A Llama-style decoder whose twist is
//! NoPE: every 4th layer (`no_rope_layers[i] == 0`: layers 3, 7, 11, ...) skips RoPE entirely and
//! attends with content alone; the other layers rotate as usual. GQA, SwiGLU, pre-norm, tied
//! embeddings. Compare Qwen3: same skeleton, but Qwen3 has QK-norm and RoPE everywhere.

use serde_json::{Value, json};

use super::architecture::{Architecture, ClassDefaults, Gguf, ModelType, Names, as_released};
use super::recipe::LLAMA_STYLE;
use crate::Result;
use crate::config::fields::Fields;
use crate::config::read::no_rope_layers;
use crate::config::{Family, ModelConfig};
use crate::tiny::TinySizes;

pub const ARCH: Architecture = Architecture {
    family: Family::SmolLM3,
    names: Names { shown: "SmolLM3", id: "smollm3", class: "SmolLM3ForCausalLM" },
    model_types: &[ModelType::text("smollm3")],
    // `SmolLM3Config`.
    defaults: ClassDefaults {
        vocab_size: 128_256,
        rope_theta: 2_000_000.0,
        tie_word_embeddings: true,
        ..ClassDefaults::COMMON
    },
    read,
    // The NoPE layers come from the config's layer kinds; the recipe is Llama's.
    recipe: LLAMA_STYLE,
    configure: as_released,
    fixture: "smollm3",
    // llama.cpp's `smollm3`: Llama's names and pairwise RoPE, and NoPE on every 4th layer
    // always (it has no key for the pattern; `gguf::export` refuses any other).
    gguf: Some(Gguf { nope_step: Some(4), ..Gguf::pairwise_rope("smollm3") }),
    tiny: Some(tiny),
};

fn read(f: &Fields, c: &mut ModelConfig) -> Result<()> {
    no_rope_layers(f, c)
}

/// RoPE on every layer but every 4th (`no_rope_layers` chooses others).
fn tiny(_: &TinySizes) -> Value {
    json!({ "model_type": "smollm3", "architectures": ["SmolLM3ForCausalLM"], "use_sliding_window": false })
}
