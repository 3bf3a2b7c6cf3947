//! OLMo 2 (AI2, 2024; `Olmo2ForCausalLM`). Two departures from the Llama recipe, both for
//! training stability:
//! - norms move inside the residual, after each block, and the block inputs are not normalised:
//!   `h = x + norm(attn(x))`, `out = h + norm(mlp(h))` (`post_attention_layernorm`,
//!   `post_feedforward_layernorm`; there is no `input_layernorm`);
//! - QK-norm over the whole query and key projections (RMSNorm of width heads*head_dim and
//!   kv_heads*head_dim) before they are split into heads and rotated.
//!
//! MHA, SwiGLU, untied embeddings.
//!
//! Each change can be switched off (`reordered_norm`, `qk_norm` in the config: see
//! [`Olmo2Switches`]), which turns the layer back into Llama's; released checkpoints have both.

use serde_json::{Value, json};

use super::architecture::{Architecture, ClassDefaults, Gguf, ModelType, Names};
use super::recipe::{LLAMA_STYLE, Placement, QkNormKind, Recipe};
use crate::Result;
use crate::config::fields::Fields;
use crate::config::{Family, ModelConfig, Olmo2Switches};
use crate::tiny::TinySizes;

pub const ARCH: Architecture = Architecture {
    family: Family::Olmo2,
    names: Names { shown: "OLMo 2", id: "olmo2", class: "Olmo2ForCausalLM" },
    model_types: &[ModelType::text("olmo2")],
    // `Olmo2Config`.
    defaults: ClassDefaults { vocab_size: 50_304, rms_norm_eps: 1e-5, ..ClassDefaults::COMMON },
    read,
    recipe: Recipe { qk_norm: QkNormKind::WholeProjection, placement: Placement::Post, ..LLAMA_STYLE },
    configure,
    fixture: "olmo2",
    // llama.cpp's `olmo2`: the two norms after the blocks keep their own names (there is no
    // `attn_norm` / `ffn_norm` before them).
    gguf: Some(Gguf {
        layer_names: &[
            ("post_attention_layernorm", "post_attention_norm"),
            ("post_feedforward_layernorm", "post_ffw_norm"),
        ],
        ..Gguf::named("olmo2")
    }),
    tiny: Some(tiny),
};

fn read(f: &Fields, c: &mut ModelConfig) -> Result<()> {
    c.olmo2 = Some(Olmo2Switches {
        reordered_norm: f.bool_or("reordered_norm", true)?,
        qk_norm: f.bool_or("qk_norm", true)?,
    });
    Ok(())
}

/// The switches a config turns off give back Llama's pieces.
fn configure(c: &ModelConfig, recipe: Recipe) -> Recipe {
    let switches = c.olmo2.unwrap_or(Olmo2Switches { reordered_norm: true, qk_norm: true });
    Recipe {
        qk_norm: if switches.qk_norm { recipe.qk_norm } else { QkNormKind::None },
        placement: if switches.reordered_norm { recipe.placement } else { Placement::Pre },
        ..recipe
    }
}

fn tiny(_: &TinySizes) -> Value {
    json!({ "model_type": "olmo2", "architectures": ["Olmo2ForCausalLM"] })
}
