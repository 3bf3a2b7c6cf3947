//! Kimi K2 (Moonshot AI, 2025; `model_type: kimi_k2`, the `DeepseekV3ForCausalLM` class). The
//! DeepSeek-V3 recipe unchanged; the differences are all in the config: 384 experts instead of
//! 256 (still 8 per token and one shared), 64 attention heads instead of 128, one dense layer
//! instead of three, no expert groups (`n_group = topk_group = 1`), routed scaling 2.827, RoPE
//! base 50k with YaRN factor 32, and a 160k vocabulary. It was trained with MuonClip
//! (`nn::optim`), which keeps attention logits bounded by rescaling query/key weights.

use super::architecture::{Architecture, ModelType, Names};
use super::deepseek_v3::{self, ExpertDefaults};
use crate::Result;
use crate::config::fields::Fields;
use crate::config::{Family, ModelConfig};

pub const ARCH: Architecture = Architecture {
    family: Family::KimiK2,
    names: Names { shown: "Kimi K2", id: "kimi_k2", class: "DeepseekV3ForCausalLM" },
    model_types: &[ModelType::text("kimi_k2")],
    read,
    fixture: "kimi_k2",
    ..deepseek_v3::ARCH
};

fn read(f: &Fields, c: &mut ModelConfig) -> Result<()> {
    deepseek_v3::read_with(
        f,
        c,
        &ExpertDefaults { first_k_dense_replace: 1, routed_scaling_factor: 2.827, n_group: 1, topk_group: 1 },
    )
}
