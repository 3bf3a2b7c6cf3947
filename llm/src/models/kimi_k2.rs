//! Kimi K2 (Moonshot AI, 2025; `model_type: kimi_k2`, the `DeepseekV3ForCausalLM` class). The
//! DeepSeek-V3 recipe unchanged; the differences are all in the config: 384 experts instead of
//! 256 (still 8 per token and one shared), 64 attention heads instead of 128, one dense layer
//! instead of three, no expert groups (`n_group = topk_group = 1`), routed scaling 2.827, RoPE
//! base 50k with YaRN factor 32, and a 160k vocabulary. It was trained with MuonClip
//! (`nn::optim`), which keeps attention logits bounded by rescaling query/key weights.

use nn::Init;
use tensor::Result;

use super::decoder::CausalLm;
use crate::config::ModelConfig;

pub fn build(config: &ModelConfig, init: &mut Init) -> Result<CausalLm> {
    super::deepseek_v3::build(config, init)
}
