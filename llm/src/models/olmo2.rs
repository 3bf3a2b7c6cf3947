//! OLMo 2 (AI2, 2024; `Olmo2ForCausalLM`). Two departures from the Llama recipe, both for
//! training stability:
//! - norms move inside the residual, after each block, and the block inputs are not normalised:
//!   `h = x + norm(attn(x))`, `out = h + norm(mlp(h))` (`post_attention_layernorm`,
//!   `post_feedforward_layernorm`; there is no `input_layernorm`);
//! - QK-norm over the whole query and key projections (RMSNorm of width heads*head_dim and
//!   kv_heads*head_dim) before they are split into heads and rotated.
//!
//! MHA, SwiGLU, untied embeddings.

use nn::Init;
use nn::attention::QkNorm;
use tensor::Result;

use super::decoder::{CausalLm, DecoderLayer, LayerNorms};
use super::recipe::{assemble, attention, dense_ffn, norm};
use crate::config::ModelConfig;

pub fn build(config: &ModelConfig, init: &mut Init) -> Result<CausalLm> {
    let qk_norm = QkNorm::WholeProjection { eps: config.rms_norm_eps };
    let d = config.hidden_size;
    let layers = config
        .layers
        .iter()
        .map(|layer| {
            Ok(DecoderLayer {
                self_attn: Box::new(attention(config, layer, qk_norm, init)?),
                ffn: Box::new(dense_ffn(config, config.dense_intermediate_size, init)?),
                ffn_name: "mlp",
                norms: LayerNorms::PostNorm {
                    post_attention_layernorm: norm(config, d, false, init)?,
                    post_feedforward_layernorm: norm(config, d, false, init)?,
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    assemble(config, layers, false, None, init)
}
