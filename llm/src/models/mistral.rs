//! Mistral Small 3.1 (Mistral AI, 2025; the text decoder of `Mistral3ForConditionalGeneration`,
//! `MistralForCausalLM`). The plainest recipe here: GQA (32 query heads to 8 kv heads), RoPE
//! with a very large base (1e9), SwiGLU, pre-norm, no QK-norm, and an explicit `head_dim` of 128
//! that is not hidden/heads (5120/32 = 160). An optional sliding window (null in 3.1) applies to
//! every layer.

use nn::Init;
use tensor::Result;

use super::decoder::CausalLm;
use super::recipe::{LLAMA_STYLE, dense};
use crate::config::ModelConfig;

pub fn build(config: &ModelConfig, init: &mut Init) -> Result<CausalLm> {
    dense(config, &LLAMA_STYLE, init)
}
