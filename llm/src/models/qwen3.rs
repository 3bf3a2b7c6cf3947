//! Qwen3 dense (Qwen team, 2025; `Qwen3ForCausalLM`). What sets it apart from a Llama-style
//! decoder: a per-head QK-norm (RMSNorm over `head_dim`, weights shared across heads) on queries
//! and keys before RoPE. GQA, SwiGLU, pre-norm; tied embeddings at the small sizes.

use nn::Init;
use nn::attention::QkNorm;
use tensor::Result;

use super::decoder::CausalLm;
use super::recipe::{DenseRecipe, NormWeights, Placement, dense};
use crate::config::ModelConfig;

pub fn build(config: &ModelConfig, init: &mut Init) -> Result<CausalLm> {
    let recipe = DenseRecipe {
        qk_norm: QkNorm::PerHead { eps: config.rms_norm_eps, gemma: false },
        placement: Placement::Pre,
        norm_weights: NormWeights::Plain,
        embed_scale: None,
    };
    dense(config, &recipe, init)
}
