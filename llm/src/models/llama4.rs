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

use nn::Init;
use nn::attention::QkNorm;
use tensor::Result;

use super::blocks::FeedForwardBlock;
use super::decoder::{CausalLm, DecoderLayer};
use super::recipe::{NormWeights, assemble, attention, dense_ffn, pre_norms, sparse_moe};
use crate::config::ModelConfig;

pub fn build(config: &ModelConfig, init: &mut Init) -> Result<CausalLm> {
    let layers = config
        .layers
        .iter()
        .map(|layer| {
            let qk_norm = if config.use_qk_norm && layer.rope {
                QkNorm::L2AfterRope { eps: config.rms_norm_eps }
            } else {
                QkNorm::None
            };
            let ffn: Box<dyn FeedForwardBlock> = if layer.moe {
                Box::new(sparse_moe(config, ("router", "shared_expert"), init)?)
            } else {
                Box::new(dense_ffn(config, config.dense_intermediate_size, init)?)
            };
            Ok(DecoderLayer {
                self_attn: Box::new(attention(config, layer, qk_norm, init)?),
                ffn,
                ffn_name: "feed_forward",
                norms: pre_norms(config, init)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    assemble(config, layers, NormWeights::Plain, None, init)
}
