//! Llama 4 (Meta, 2025; `Llama4ForCausalLM`, the text decoder of Scout and Maverick). What sets
//! it apart:
//! - iRoPE: three of every four layers use RoPE (as interleaved complex pairs) with *chunked*
//!   attention inside blocks of 8192 positions, and the fourth is NoPE with full causal
//!   attention and temperature tuning of its queries for long contexts;
//! - on RoPE layers (Scout) a weightless L2 norm of queries and keys after the rotation;
//! - mixture of experts with one routed expert per token, chosen by the top logit, whose sigmoid
//!   score scales the expert's *input*, plus a shared expert; every layer (Scout) or every other
//!   layer (Maverick, `interleave_moe_layer_step = 2`) is MoE, the rest dense with
//!   `intermediate_size_mlp`.
//!
//! Pre-norm, GQA, SwiGLU; the feed-forward block is named `feed_forward`.

use nn::attention::TemperatureTuning;

use super::architecture::{Architecture, ClassDefaults, ModelType, Names, as_released};
use super::recipe::{ExpertStorage, ExpertsRecipe, LLAMA_STYLE, QkNormKind, Recipe};
use crate::Result;
use crate::config::fields::Fields;
use crate::config::read::{no_rope_layers, pattern_unless_typed, set_experts};
use crate::config::{Family, LayerAttention, ModelConfig, MoeConfig, RouterKind};

pub const ARCH: Architecture = Architecture {
    family: Family::Llama4,
    names: Names { shown: "Llama 4", id: "llama4", class: "Llama4ForCausalLM" },
    model_types: &[ModelType::text("llama4_text"), ModelType::nested("llama4")],
    // `Llama4TextConfig`.
    defaults: ClassDefaults {
        vocab_size: 202_048,
        rope_theta: 500_000.0,
        rms_norm_eps: 1e-5,
        head_dim: Some(128),
        ..ClassDefaults::COMMON
    },
    read,
    recipe: Recipe {
        qk_norm: QkNormKind::L2AfterRope,
        ffn_name: "feed_forward",
        experts: Some(ExpertsRecipe { router: "router", shared: "shared_expert", storage: ExpertStorage::FusedHalves }),
        ..LLAMA_STYLE
    },
    configure: as_released,
    fixture: "llama4",
    gguf: None,
    tiny: None,
};

fn read(f: &Fields, c: &mut ModelConfig) -> Result<()> {
    let n = c.num_hidden_layers;
    c.attention_chunk_size = Some(f.usize_or("attention_chunk_size", 8192)?);
    c.rope_interleaved = true;
    // NoPE every 4th layer; the RoPE layers attend in chunks, the NoPE ones to everything.
    no_rope_layers(f, c)?;
    pattern_unless_typed(f, c, |_, l| if l.rope { LayerAttention::Chunked } else { LayerAttention::Full })?;
    // Experts as wide as `intermediate_size` with a shared one as wide; the dense layers
    // between them are `intermediate_size_mlp` wide.
    let width = c.dense_intermediate_size;
    c.dense_intermediate_size = f.usize_opt("intermediate_size_mlp")?.unwrap_or(16_384);
    let num_experts = f.usize_or("num_local_experts", 16)?;
    let step = f.usize_or("interleave_moe_layer_step", 1)?.max(1);
    let listed = f.layer_list("moe_layers", n)?;
    let moe = (num_experts > 0).then_some(MoeConfig {
        shared_intermediate_size: Some(width),
        ..MoeConfig::routed(RouterKind::Top1SigmoidInput, num_experts, f.usize_or("num_experts_per_tok", 1)?, width)
    });
    set_experts(c, moe, |i| match &listed {
        Some(list) => list.contains(&i),
        None => (i + 1) % step == 0,
    });
    c.use_qk_norm = f.bool_or("use_qk_norm", true)?;
    if f.bool_or("attn_temperature_tuning", true)? {
        c.temperature_tuning = Some(TemperatureTuning {
            attn_scale: f.f64_or("attn_scale", 0.1)?,
            floor_scale: f.f64_or("floor_scale", 8192.0)?,
        });
    }
    Ok(())
}
