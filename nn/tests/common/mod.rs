//! Shared by the nn test binaries: the small attention layer they all build.
#![allow(dead_code)]

use nn::attention::{AttentionConfig, MaskKind, QkNorm, TemperatureTuning};
use nn::rope::{Rope, RopeScaling};

/// 4 query heads sharing 2 kv heads of 8 dims over a hidden size of 16.
pub fn gqa_config(mask: MaskKind, qk_norm: QkNorm, rope: bool, tuning: Option<TemperatureTuning>) -> AttentionConfig {
    AttentionConfig {
        hidden_size: 16,
        num_heads: 4,
        num_kv_heads: 2,
        head_dim: 8,
        bias: false,
        qk_norm,
        rope: rope.then(|| Rope::new(8, 10_000.0, &RopeScaling::None, false)),
        mask,
        scale: 8f64.powf(-0.5),
        softcap: None,
        temperature_tuning: tuning,
    }
}
