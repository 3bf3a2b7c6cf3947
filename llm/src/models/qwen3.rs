//! Qwen3 dense (Qwen team, 2025; `Qwen3ForCausalLM`). What sets it apart from a Llama-style
//! decoder: a per-head QK-norm (RMSNorm over `head_dim`, weights shared across heads) on queries
//! and keys before RoPE. GQA, SwiGLU, pre-norm; tied embeddings at the small sizes.

use nn::Init;
use nn::attention::QkNorm;
use tensor::Result;

use super::decoder::{CausalLm, DecoderLayer};
use super::recipe::{assemble, attention, dense_ffn, pre_norms};
use crate::config::ModelConfig;

pub fn build(config: &ModelConfig, init: &mut Init) -> Result<CausalLm> {
    let qk_norm = QkNorm::PerHead { eps: config.rms_norm_eps, gemma: false };
    let layers = config
        .layers
        .iter()
        .map(|layer| {
            Ok(DecoderLayer {
                self_attn: Box::new(attention(config, layer, qk_norm, init)?),
                ffn: Box::new(dense_ffn(config, config.dense_intermediate_size, init)?),
                ffn_name: "mlp",
                norms: pre_norms(config, init)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    assemble(config, layers, false, None, init)
}
