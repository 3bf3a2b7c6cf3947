//! gpt-oss (OpenAI, 2025; `GptOssForCausalLM`, `model_type: gpt_oss`; 20b and 120b): a pre-norm
//! GQA decoder whose every feed-forward block is a mixture of experts. What sets it apart:
//! - attention sinks: a learned logit per head (`self_attn.sinks`) joins every attention
//!   softmax's denominator and reads no value, so a head can attend to nothing;
//! - a 128-token sliding window on every other layer (`layer_types`, sliding first) and full
//!   attention on the rest; biases on the q, k, v and o projections;
//! - YaRN RoPE (base 150,000, factor 32 over 4,096 positions, `truncate: false`) in the
//!   split-halves layout, cos and sin scaled by YaRN's attention factor `0.1 ln 32 + 1`;
//! - a router with a bias (`mlp.router.{weight,bias}`) choosing 4 experts by logit, weighted by
//!   a softmax over just those 4;
//! - experts with biases and a clamped SwiGLU (`swiglu_alpha` 1.702, `swiglu_limit` 7): the gate
//!   clamped from above only, the linear part on both sides and shifted by one. Checkpoints fuse
//!   gate and up as `experts.gate_up_proj` [E, H, 2I] with their columns interleaved (gate at
//!   even, up at odd), `down_proj` [E, I, H], used as `x @ W` (in x out);
//! - untied embeddings, RMSNorm eps 1e-5, no QK-norm.
//!
//! The released experts are MXFP4 (`*_blocks` + `*_scales`); the loader names them and stops.

use nn::Init;
use nn::attention::QkNorm;
use nn::rope::RopeScaling;
use tensor::Result;

use super::blocks::FeedForwardBlock;
use super::decoder::{CausalLm, DecoderLayer};
use super::recipe::{NormWeights, assemble, attention, pre_norms, sparse_moe};
use crate::config::{LayerAttention, ModelConfig};

/// The `model_type` this architecture answers to.
pub const MODEL_TYPE: &str = "gpt_oss";

// `GptOssConfig` class defaults (transformers), used where a config leaves a field out.
pub const VOCAB_SIZE: usize = 201_088;
pub const ROPE_THETA: f64 = 150_000.0;
pub const RMS_NORM_EPS: f64 = 1e-5;
pub const HEAD_DIM: usize = 64;
pub const INTERMEDIATE_SIZE: usize = 2880;
pub const MAX_POSITION_EMBEDDINGS: usize = 131_072;
pub const SLIDING_WINDOW: usize = 128;
pub const NUM_LOCAL_EXPERTS: usize = 128;
pub const NUM_EXPERTS_PER_TOK: usize = 4;
pub const SWIGLU_ALPHA: f64 = 1.702;
pub const SWIGLU_LIMIT: f64 = 7.0;

/// The class's RoPE default when a config has neither `rope_scaling` nor `rope_parameters`.
pub fn default_rope_scaling() -> RopeScaling {
    RopeScaling::Yarn {
        factor: 32.0,
        beta_fast: 32.0,
        beta_slow: 1.0,
        mscale: 1.0,
        mscale_all_dim: 0.0,
        original_max_position_embeddings: 4096.0,
        truncate: false,
    }
}

/// The class's layer pattern without `layer_types`: sliding on even layers, full on odd.
pub fn default_layer_attention(layer: usize) -> LayerAttention {
    if layer.is_multiple_of(2) { LayerAttention::Sliding } else { LayerAttention::Full }
}

pub fn build(config: &ModelConfig, init: &mut Init) -> Result<CausalLm> {
    let layers = config
        .layers
        .iter()
        .map(|layer| {
            let ffn: Box<dyn FeedForwardBlock> = Box::new(sparse_moe(config, ("router", "shared_experts"), init)?);
            Ok(DecoderLayer {
                self_attn: Box::new(attention(config, layer, QkNorm::None, init)?.with_sinks(init)?),
                ffn,
                ffn_name: "mlp",
                norms: pre_norms(config, init)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    assemble(config, layers, NormWeights::Plain, None, init)
}
