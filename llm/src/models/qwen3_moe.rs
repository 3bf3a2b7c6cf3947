//! Qwen3 MoE (Qwen team, 2025; `Qwen3MoeForCausalLM`): the Qwen3 layer (GQA with per-head
//! QK-norm) with every feed-forward block replaced by a mixture of experts (128 experts, 8 per
//! token at 30B-A3B and 235B-A22B): softmax router over all experts, top-k renormalised, no
//! shared expert. `mlp_only_layers` / `decoder_sparse_step` can keep some layers dense.

use nn::Init;
use nn::attention::QkNorm;
use tensor::Result;

use super::blocks::FeedForwardBlock;
use super::decoder::{CausalLm, DecoderLayer};
use super::recipe::{NormWeights, assemble, attention, dense_ffn, pre_norms, sparse_moe};
use crate::config::ModelConfig;

pub fn build(config: &ModelConfig, init: &mut Init) -> Result<CausalLm> {
    let qk_norm = QkNorm::PerHead { eps: config.rms_norm_eps, gemma: false };
    let layers = config
        .layers
        .iter()
        .map(|layer| {
            let ffn: Box<dyn FeedForwardBlock> = if layer.moe {
                Box::new(sparse_moe(config, ("gate", "shared_experts"), init)?)
            } else {
                Box::new(dense_ffn(config, config.dense_intermediate_size, init)?)
            };
            Ok(DecoderLayer {
                self_attn: Box::new(attention(config, layer, qk_norm, init)?),
                ffn,
                ffn_name: "mlp",
                norms: pre_norms(config, init)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    assemble(config, layers, NormWeights::Plain, None, init)
}
