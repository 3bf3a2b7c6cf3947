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

use nn::Init;
use nn::attention::QkNorm;
use tensor::Result;

use super::decoder::CausalLm;
use super::recipe::{DenseRecipe, NormWeights, Placement, dense};
use crate::config::{ModelConfig, Olmo2Switches};

pub fn build(config: &ModelConfig, init: &mut Init) -> Result<CausalLm> {
    let switches = config.olmo2.unwrap_or(Olmo2Switches { reordered_norm: true, qk_norm: true });
    let recipe = DenseRecipe {
        qk_norm: if switches.qk_norm { QkNorm::WholeProjection { eps: config.rms_norm_eps } } else { QkNorm::None },
        placement: if switches.reordered_norm { Placement::Post } else { Placement::Pre },
        norm_weights: NormWeights::Plain,
        embed_scale: None,
    };
    dense(config, &recipe, init)
}
