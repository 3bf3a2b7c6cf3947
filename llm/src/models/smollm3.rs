//! SmolLM3 (Hugging Face, 2025; `SmolLM3ForCausalLM`). A Llama-style decoder whose twist is
//! NoPE: every 4th layer (`no_rope_layers[i] == 0`: layers 3, 7, 11, ...) skips RoPE entirely and
//! attends with content alone; the other layers rotate as usual. GQA, SwiGLU, pre-norm, tied
//! embeddings. Compare Qwen3: same skeleton, but Qwen3 has QK-norm and RoPE everywhere.

use nn::Init;
use nn::attention::QkNorm;
use tensor::Result;

use super::decoder::{CausalLm, DecoderLayer};
use super::recipe::{assemble, attention, dense_ffn, pre_norms};
use crate::config::ModelConfig;

pub fn build(config: &ModelConfig, init: &mut Init) -> Result<CausalLm> {
    let layers = config
        .layers
        .iter()
        .map(|layer| {
            // `layer.rope` is false on the NoPE layers; `attention` then leaves positions out.
            Ok(DecoderLayer {
                self_attn: Box::new(attention(config, layer, QkNorm::None, init)?),
                ffn: Box::new(dense_ffn(config, config.dense_intermediate_size, init)?),
                ffn_name: "mlp",
                norms: pre_norms(config, init)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    assemble(config, layers, false, None, init)
}
