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

use nn::Init;
use nn::attention::QkNorm;
use tensor::Result;

use super::decoder::CausalLm;
use super::recipe::{DenseRecipe, NormWeights, Placement, dense};
use crate::config::ModelConfig;

pub fn build(config: &ModelConfig, init: &mut Init) -> Result<CausalLm> {
    let recipe = DenseRecipe {
        qk_norm: QkNorm::PerHead { eps: config.rms_norm_eps, gemma: true },
        placement: Placement::Sandwich,
        norm_weights: NormWeights::UnitOffset,
        embed_scale: Some((config.hidden_size as f64).sqrt()),
    };
    dense(config, &recipe, init)
}
