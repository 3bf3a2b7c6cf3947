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

use nn::Init;
use nn::attention::{MlaConfig, MultiHeadLatentAttention};
use nn::rope::{RopeScaling, yarn_get_mscale};
use tensor::Result;

use super::blocks::FeedForwardBlock;
use super::decoder::{CausalLm, DecoderLayer};
use super::recipe::{NormWeights, assemble, dense_ffn, mask_for, pre_norms, rope_for, sparse_moe};
use crate::config::ModelConfig;

pub fn build(config: &ModelConfig, init: &mut Init) -> Result<CausalLm> {
    let sizes = config
        .mla
        .ok_or_else(|| tensor::Error::shape("deepseek_v3", format!("{}: MLA sizes missing", config.source)))?;
    // Softmax scale: qk_head_dim^-0.5, times mscale^2 when YaRN extends the context.
    let mut scale = ((sizes.qk_nope_head_dim + sizes.qk_rope_head_dim) as f64).powf(-0.5);
    if let RopeScaling::Yarn { factor, mscale_all_dim, .. } = config.rope.global.scaling
        && mscale_all_dim != 0.0
    {
        let m = yarn_get_mscale(factor, mscale_all_dim);
        scale *= m * m;
    }
    let layers = config
        .layers
        .iter()
        .map(|layer| {
            let rope = rope_for(config, layer, sizes.qk_rope_head_dim)
                .ok_or_else(|| tensor::Error::shape("deepseek_v3", "MLA layers always use RoPE"))?;
            let attn = MultiHeadLatentAttention::new(
                MlaConfig {
                    hidden_size: config.hidden_size,
                    num_heads: config.num_attention_heads,
                    q_lora_rank: sizes.q_lora_rank,
                    kv_lora_rank: sizes.kv_lora_rank,
                    qk_nope_head_dim: sizes.qk_nope_head_dim,
                    qk_rope_head_dim: sizes.qk_rope_head_dim,
                    v_head_dim: sizes.v_head_dim,
                    rms_norm_eps: config.rms_norm_eps,
                    rope,
                    mask: mask_for(config, layer),
                    scale,
                },
                init,
            )?;
            let ffn: Box<dyn FeedForwardBlock> = if layer.moe {
                Box::new(sparse_moe(config, ("gate", "shared_experts"), init)?)
            } else {
                Box::new(dense_ffn(config, config.dense_intermediate_size, init)?)
            };
            Ok(DecoderLayer { self_attn: Box::new(attn), ffn, ffn_name: "mlp", norms: pre_norms(config, init)? })
        })
        .collect::<Result<Vec<_>>>()?;
    assemble(config, layers, NormWeights::Plain, None, init)
}
