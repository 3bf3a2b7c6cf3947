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

use super::decoder::{CausalLm, DecoderLayer, LayerNorms};
use super::recipe::{assemble, attention, dense_ffn, norm, pre_norms};
use crate::config::{ModelConfig, Olmo2Switches};

pub fn build(config: &ModelConfig, init: &mut Init) -> Result<CausalLm> {
    let switches = config.olmo2.unwrap_or(Olmo2Switches { reordered_norm: true, qk_norm: true });
    let qk_norm = if switches.qk_norm { QkNorm::WholeProjection { eps: config.rms_norm_eps } } else { QkNorm::None };
    let d = config.hidden_size;
    let layers = config
        .layers
        .iter()
        .map(|layer| {
            Ok(DecoderLayer {
                self_attn: Box::new(attention(config, layer, qk_norm, init)?),
                ffn: Box::new(dense_ffn(config, config.dense_intermediate_size, init)?),
                ffn_name: "mlp",
                norms: if switches.reordered_norm {
                    LayerNorms::PostNorm {
                        post_attention_layernorm: norm(config, d, false, init)?,
                        post_feedforward_layernorm: norm(config, d, false, init)?,
                    }
                } else {
                    pre_norms(config, init)?
                },
            })
        })
        .collect::<Result<Vec<_>>>()?;
    assemble(config, layers, false, None, init)
}
