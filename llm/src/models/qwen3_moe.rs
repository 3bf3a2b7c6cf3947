//! Qwen3 MoE (Qwen team, 2025; `Qwen3MoeForCausalLM`): the Qwen3 layer (GQA with per-head
//! QK-norm) with every feed-forward block replaced by a mixture of experts (128 experts, 8 per
//! token at 30B-A3B and 235B-A22B): softmax router over all experts, top-k renormalised, no
//! shared expert. `mlp_only_layers` / `decoder_sparse_step` can keep some layers dense.

use serde_json::{Map, Value, json};

use super::architecture::{Architecture, Gguf, ModelType, Names, as_released};
use super::recipe::{ExpertStorage, ExpertsRecipe, Recipe};
use crate::Result;
use crate::config::fields::Fields;
use crate::config::read::set_experts;
use crate::config::{Family, ModelConfig, MoeConfig, RouterKind};
use crate::gguf::config::Metadata;

pub const ARCH: Architecture = Architecture {
    family: Family::Qwen3Moe,
    names: Names { shown: "Qwen3 MoE", id: "qwen3_moe", class: "Qwen3MoeForCausalLM" },
    model_types: &[ModelType::text("qwen3_moe")],
    // `Qwen3MoeConfig` shares `Qwen3Config`'s defaults.
    defaults: super::qwen3::ARCH.defaults,
    read,
    recipe: Recipe {
        experts: Some(ExpertsRecipe { router: "gate", shared: "shared_experts", storage: ExpertStorage::PerExpert }),
        ..super::qwen3::ARCH.recipe
    },
    configure: as_released,
    fixture: "qwen3_moe",
    gguf: Some(Gguf { read: read_gguf, ..Gguf::named("qwen3moe") }),
    tiny: None,
};

fn read(f: &Fields, c: &mut ModelConfig) -> Result<()> {
    let num_experts = match f.usize_opt("num_experts")? {
        Some(n) => n,
        None => f.usize_or("num_local_experts", 128)?,
    };
    let step = f.usize_or("decoder_sparse_step", 1)?.max(1);
    let dense_only = f.layer_list("mlp_only_layers", c.num_hidden_layers)?.unwrap_or_default();
    let moe = (num_experts > 0).then_some(MoeConfig {
        norm_topk_prob: f.bool_or("norm_topk_prob", false)?,
        ..MoeConfig::routed(
            RouterKind::SoftmaxTopK,
            num_experts,
            f.usize_or("num_experts_per_tok", 8)?,
            f.usize_or("moe_intermediate_size", 768)?,
        )
    });
    set_experts(c, moe, |i| !dense_only.contains(&i) && (i + 1) % step == 0);
    Ok(())
}

/// llama.cpp's `qwen3moe`: the expert sizes, every layer a mixture of experts.
fn read_gguf(m: &Metadata, c: &mut Map<String, Value>) -> Result<()> {
    c.insert("num_experts".into(), json!(m.need("expert_count")?));
    c.insert("num_experts_per_tok".into(), json!(m.need("expert_used_count")?));
    c.insert("moe_intermediate_size".into(), json!(m.need("expert_feed_forward_length")?));
    // llama.cpp always renormalises the chosen experts' weights for qwen3moe.
    c.insert("norm_topk_prob".into(), json!(m.bool("expert_weights_norm")?.unwrap_or(true)));
    c.insert("decoder_sparse_step".into(), json!(1));
    c.insert("mlp_only_layers".into(), json!([]));
    Ok(())
}
