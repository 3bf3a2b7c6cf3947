//! gpt-oss (OpenAI, 2025; `GptOssForCausalLM`, `model_type: gpt_oss`; 20b and 120b): a pre-norm
//! GQA decoder whose every feed-forward block is a mixture of experts. What sets it apart:
//! - attention sinks: a learned logit per head (`self_attn.sinks`) joins every attention
//!   softmax's denominator and reads no value, so a head can attend to nothing;
//! - a 128-token sliding window on every other layer (`layer_types`, sliding first) and full
//!   attention on the rest; biases on the q, k, v and o projections;
//! - YaRN RoPE (base 150,000, factor 32 over 4,096 positions, `truncate: false`) in the
//!   split-halves layout, cos and sin scaled by YaRN's attention factor `0.1 ln 32 + 1`;
//! - a router with a bias (`mlp.router.{weight,bias}`) choosing 4 experts by logit, weighted by
//!   a softmax over just those 4;
//! - experts with biases and a clamped SwiGLU (`swiglu_alpha` 1.702, `swiglu_limit` 7): the gate
//!   clamped from above only, the linear part on both sides and shifted by one. Checkpoints fuse
//!   gate and up as `experts.gate_up_proj` [E, H, 2I] with their columns interleaved (gate at
//!   even, up at odd), `down_proj` [E, I, H], used as `x @ W` (in x out);
//! - untied embeddings, RMSNorm eps 1e-5, no QK-norm.
//!
//! The released experts are MXFP4 (`*_blocks` + `*_scales`, `quantization_config.quant_method`
//! `mxfp4`); the loader repacks them as ggml's MXFP4 blocks and keeps them so (4.25 bits per
//! weight), as it keeps the MXFP4 experts of llama.cpp's `gpt-oss` GGUF files
//! (`experts_load::mxfp4_blocks`).

use nn::moe::SwigluClamp;
use nn::rope::RopeScaling;
use serde_json::{Map, Value, json};

use super::architecture::{Architecture, ClassDefaults, Gguf, ModelType, Names, as_released};
use super::recipe::{ExpertStorage, ExpertsRecipe, LLAMA_STYLE, Recipe};
use crate::config::fields::Fields;
use crate::config::read::{pattern_unless_typed, set_experts, window_null_turns_off};
use crate::config::{Family, LayerAttention, ModelConfig, MoeConfig, RouterKind};
use crate::gguf::GgufWriter;
use crate::gguf::config::Metadata;
use crate::{Error, Result};

pub const ARCH: Architecture = Architecture {
    family: Family::GptOss,
    names: Names { shown: "gpt-oss", id: "gpt_oss", class: "GptOssForCausalLM" },
    model_types: &[ModelType::text("gpt_oss")],
    // `GptOssConfig`.
    defaults: ClassDefaults {
        vocab_size: 201_088,
        rope_theta: 150_000.0,
        rms_norm_eps: 1e-5,
        head_dim: Some(64),
        max_position_embeddings: 131_072,
        attention_bias: true,
        intermediate_size: Some(2880),
        ..ClassDefaults::COMMON
    },
    read,
    recipe: Recipe {
        sinks: true,
        experts: Some(ExpertsRecipe {
            router: "router",
            shared: "shared_experts",
            storage: ExpertStorage::FusedInterleaved,
        }),
        ..LLAMA_STYLE
    },
    configure: as_released,
    fixture: "gpt_oss",
    // llama.cpp's `gpt-oss` (`GptOssModel` in the converter, `LLM_ARCH_OPENAI_MOE` in the
    // runtime). The converter splits the interleaved `gate_up_proj` into `ffn_gate_exps` and
    // `ffn_up_exps` (this model holds them split already) and keeps q and k in order (NEOX-style
    // halves, as here). The runtime fixes the window pattern (`set_swa_pattern(2)`: even layers
    // sliding), the clamped SwiGLU (`swiglu_oai`: alpha 1.702, limit 7) and the sinks; the
    // experts' biases, the router's bias and the sinks are tensors.
    gguf: Some(Gguf {
        layer_names: &[
            ("post_attention_layernorm", "post_attention_norm"),
            ("self_attn.sinks", "attn_sinks"),
            ("mlp.router", "ffn_gate_inp"),
        ],
        swa_pattern: Some(2),
        read: read_gguf,
        write: write_gguf,
        ..Gguf::named("gpt-oss")
    }),
    tiny: None,
};

/// The class's RoPE default when a config has neither `rope_scaling` nor `rope_parameters`.
pub fn default_rope_scaling() -> RopeScaling {
    RopeScaling::Yarn {
        factor: 32.0,
        beta_fast: 32.0,
        beta_slow: 1.0,
        mscale: 1.0,
        mscale_all_dim: 0.0,
        original_max_position_embeddings: 4096.0,
        truncate: false,
    }
}

/// YaRN by default, the 128-token window on even layers (sliding first) unless `layer_types`
/// says otherwise, every layer a mixture of experts with the clamped SwiGLU.
fn read(f: &Fields, c: &mut ModelConfig) -> Result<()> {
    if !f.has("rope_scaling") && !f.has("rope_parameters") {
        c.rope.global.scaling = default_rope_scaling();
    }
    c.sliding_window = window_null_turns_off(f, 128)?;
    pattern_unless_typed(
        f,
        c,
        |i, _| {
            if i.is_multiple_of(2) { LayerAttention::Sliding } else { LayerAttention::Full }
        },
    )?;
    let num_experts = match f.usize_opt("num_local_experts")? {
        Some(n) => n,
        None => f.usize_or("num_experts", 128)?,
    };
    let top_k = f.usize_or("num_experts_per_tok", 4)?;
    let moe = MoeConfig::routed(RouterKind::BiasedSoftmaxOverChosen, num_experts, top_k, c.dense_intermediate_size);
    set_experts(c, Some(moe), |_| true);
    c.swiglu_clamp =
        Some(SwigluClamp { alpha: f.f64_or("swiglu_alpha", 1.702)?, limit: f.f64_or("swiglu_limit", 7.0)? });
    Ok(())
}

/// The clamped SwiGLU llama.cpp hard-codes for gpt-oss (`ggml_swiglu_oai`, no metadata key).
const LLAMA_CPP_SWIGLU: SwigluClamp = SwigluClamp { alpha: 1.702, limit: 7.0 };

/// The gpt-oss fields of a file's config: the window on even layers, the experts, the fixed
/// SwiGLU.
fn read_gguf(m: &Metadata, c: &mut Map<String, Value>) -> Result<()> {
    let layers = m.need("block_count")?;
    let window = m.need("attention.sliding_window")?;
    if window == 0 {
        return Err(m.error("attention.sliding_window", "is 0; llama.cpp's gpt-oss needs a window"));
    }
    c.insert("sliding_window".into(), json!(window));
    let types: Vec<&str> =
        (0..layers).map(|i| if i % 2 == 0 { "sliding_attention" } else { "full_attention" }).collect();
    c.insert("layer_types".into(), json!(types));
    c.insert("num_local_experts".into(), json!(m.need("expert_count")?));
    c.insert("num_experts_per_tok".into(), json!(m.need("expert_used_count")?));
    c.insert("intermediate_size".into(), json!(m.need("expert_feed_forward_length")?));
    c.insert("swiglu_alpha".into(), json!(LLAMA_CPP_SWIGLU.alpha));
    c.insert("swiglu_limit".into(), json!(LLAMA_CPP_SWIGLU.limit));
    Ok(())
}

/// Refuses what llama.cpp's gpt-oss fixes otherwise (the window pattern is checked by the writer
/// from `swa_pattern`): another SwiGLU clamp, no sinks, no window.
fn write_gguf(c: &ModelConfig, w: &mut GgufWriter) -> Result<()> {
    let refuse = |what: String| Err(Error::input(format!("{}: {what}, so GGUF cannot hold it", c.model_type)));
    if c.swiglu_clamp != Some(LLAMA_CPP_SWIGLU) {
        return refuse(format!(
            "its SwiGLU clamp is {:?}, but llama.cpp's gpt-oss hard-codes alpha 1.702 and limit 7",
            c.swiglu_clamp
        ));
    }
    if !c.attention_sinks {
        return refuse("it has no attention sinks, which llama.cpp's gpt-oss always reads".into());
    }
    if !w.has("gpt-oss.attention.sliding_window") {
        return refuse("it has no sliding layers, but llama.cpp's gpt-oss makes every even layer one".into());
    }
    let Some(moe) = &c.moe else {
        return refuse("it has no experts".into());
    };
    // (The converter's `feed_forward_length` is the experts' width too.)
    w.set("gpt-oss.feed_forward_length", crate::gguf::Value::U32(moe.expert_intermediate_size as u32));
    Ok(())
}
