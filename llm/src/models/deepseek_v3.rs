//! DeepSeek-V3 (DeepSeek-AI, 2024; `DeepseekV3ForCausalLM`). Two ideas carry it:
//! - multi-head latent attention: keys and values come from a 512-dim latent per token plus a
//!   64-dim RoPE key shared by all 128 heads, so the cache holds 576 numbers per token and layer
//!   (`nn::attention::mla`); queries go through their own low-rank bottleneck; rope dims rotate as
//!   interleaved pairs with YaRN (factor 40), whose `mscale^2` multiplies the softmax scale;
//! - a fine-grained mixture of experts after the first `first_k_dense_replace` dense layers:
//!   256 routed experts, 8 per token, chosen by a sigmoid router with a correction bias and
//!   group-limited top-k, plus one shared expert always on.
//!
//! Pre-norm, SwiGLU, untied head. Kimi K2 is this recipe with other numbers (`kimi_k2.rs`).

use super::architecture::{Architecture, ClassDefaults, ModelType, Names, as_released};
use super::recipe::{AttentionKind, ExpertStorage, ExpertsRecipe, LLAMA_STYLE, Recipe};
use crate::config::fields::Fields;
use crate::config::read::set_experts;
use crate::config::{Family, MlaSizes, ModelConfig, MoeConfig, RouterKind};
use crate::{Error, Result};

pub const ARCH: Architecture = Architecture {
    family: Family::DeepseekV3,
    names: Names { shown: "DeepSeek-V3", id: "deepseek_v3", class: "DeepseekV3ForCausalLM" },
    model_types: &[ModelType::text("deepseek_v3")],
    // `DeepseekV3Config`.
    defaults: ClassDefaults { vocab_size: 129_280, ..ClassDefaults::COMMON },
    read,
    recipe: Recipe {
        attention: AttentionKind::Latent,
        experts: Some(ExpertsRecipe { router: "gate", shared: "shared_experts", storage: ExpertStorage::PerExpert }),
        ..LLAMA_STYLE
    },
    configure: as_released,
    fixture: "deepseek_v3",
    gguf: None,
    tiny: None,
};

/// The class defaults of the expert layout, which Kimi K2 changes.
pub struct ExpertDefaults {
    pub first_k_dense_replace: usize,
    pub routed_scaling_factor: f64,
    pub n_group: usize,
    pub topk_group: usize,
}

fn read(f: &Fields, c: &mut ModelConfig) -> Result<()> {
    read_with(f, c, &ExpertDefaults { first_k_dense_replace: 3, routed_scaling_factor: 2.5, n_group: 8, topk_group: 4 })
}

/// The latent attention sizes, the rope layout and the experts, with `defaults` for the fields
/// the two classes default differently.
pub fn read_with(f: &Fields, c: &mut ModelConfig, defaults: &ExpertDefaults) -> Result<()> {
    c.rope_interleaved = f.bool_or("rope_interleave", true)?;
    c.mla = Some(MlaSizes {
        q_lora_rank: if f.map.contains_key("q_lora_rank") { f.usize_opt("q_lora_rank")? } else { Some(1536) },
        kv_lora_rank: f.usize_or("kv_lora_rank", 512)?,
        qk_nope_head_dim: f.usize_or("qk_nope_head_dim", 128)?,
        qk_rope_head_dim: f.usize_or("qk_rope_head_dim", 64)?,
        v_head_dim: f.usize_or("v_head_dim", 128)?,
    });
    let num_experts = f.usize_or("n_routed_experts", 0)?;
    let first_dense = f.usize_or("first_k_dense_replace", defaults.first_k_dense_replace)?;
    let freq = f.usize_or("moe_layer_freq", 1)?.max(1);
    if let Some(scoring) = f.str_opt("scoring_func")?
        && scoring != "sigmoid"
    {
        return Err(Error::Config(format!(
            "{}: field scoring_func: only \"sigmoid\" routing is supported, got {scoring:?}",
            f.source
        )));
    }
    let expert = f.usize_or("moe_intermediate_size", 2048)?;
    let shared = f.usize_or("n_shared_experts", 1)?;
    // Each factor is below 2^40, the product need not be: refuse it rather than overflow.
    let shared_width = match shared {
        0 => None,
        _ => Some(expert.checked_mul(shared).filter(|w| *w < (1 << 40)).ok_or_else(|| {
            Error::Config(format!(
                "{}: fields moe_intermediate_size ({expert}) times n_shared_experts ({shared}) is too large",
                f.source
            ))
        })?),
    };
    let moe = (num_experts > 0).then_some(MoeConfig {
        shared_intermediate_size: shared_width,
        norm_topk_prob: f.bool_or("norm_topk_prob", true)?,
        routed_scaling_factor: f.f64_or("routed_scaling_factor", defaults.routed_scaling_factor)?,
        n_group: f.usize_or("n_group", defaults.n_group)?,
        topk_group: f.usize_or("topk_group", defaults.topk_group)?,
        ..MoeConfig::routed(RouterKind::SigmoidGroupLimited, num_experts, f.usize_or("num_experts_per_tok", 8)?, expert)
    });
    set_experts(c, moe, |i| i >= first_dense && i % freq == 0);
    Ok(())
}
