//! SmolLM3 (Hugging Face, 2025; `SmolLM3ForCausalLM`). A Llama-style decoder whose twist is
//! NoPE: every 4th layer (`no_rope_layers[i] == 0`: layers 3, 7, 11, ...) skips RoPE entirely and
//! attends with content alone; the other layers rotate as usual. GQA, SwiGLU, pre-norm, tied
//! embeddings. Compare Qwen3: same skeleton, but Qwen3 has QK-norm and RoPE everywhere.

use nn::Init;
use tensor::Result;

use super::decoder::CausalLm;
use super::recipe::{LLAMA_STYLE, dense};
use crate::config::ModelConfig;

/// `layer.rope` is false on the NoPE layers (from `no_rope_layers`); `dense` then leaves
/// positions out of their attention.
pub fn build(config: &ModelConfig, init: &mut Init) -> Result<CausalLm> {
    dense(config, &LLAMA_STYLE, init)
}
