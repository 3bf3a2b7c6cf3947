//! Shared by the nn test binaries: the small attention layers they all build, and the routers
//! the mixture-of-experts tests run through.
#![allow(dead_code)]

use nn::attention::{AttentionConfig, MaskKind, MlaConfig, QkNorm, TemperatureTuning};
use nn::moe::RouterKind;
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

/// Latent attention with 2 heads over a hidden size of 16: query rank 12, latent 10, 6 nope + 4
/// rope dims per query/key head, 5-dim values.
pub fn mla_config() -> MlaConfig {
    MlaConfig {
        hidden_size: 16,
        num_heads: 2,
        q_lora_rank: Some(12),
        kv_lora_rank: 10,
        qk_nope_head_dim: 6,
        qk_rope_head_dim: 4,
        v_head_dim: 5,
        rms_norm_eps: 1e-6,
        rope: Rope::new(4, 10_000.0, &RopeScaling::None, true),
        mask: MaskKind::Causal,
        scale: 10f64.powf(-0.5),
    }
}

/// (router, experts per token, with a shared expert) for each router a test runs over 4
/// experts: Qwen3-MoE's softmax, DeepSeek's sigmoid with groups, Llama 4's top-1.
pub fn routers() -> [(RouterKind, usize, bool); 3] {
    [
        (RouterKind::SoftmaxTopK { norm_topk_prob: true }, 2, false),
        (
            RouterKind::SigmoidGroupLimited {
                n_group: 2,
                topk_group: 1,
                routed_scaling_factor: 2.5,
                norm_topk_prob: true,
            },
            2,
            true,
        ),
        (RouterKind::Top1SigmoidInput, 1, true),
    ]
}
