//! Llama 4 (Meta, 2025; `Llama4ForCausalLM`, the text decoder of Scout and Maverick). What sets
//! it apart:
//! - iRoPE: three of every four layers use RoPE (as interleaved complex pairs) with *chunked*
//!   attention inside blocks of 8192 positions, and the fourth is NoPE with full causal
//!   attention and temperature tuning of its queries for long contexts;
//! - on RoPE layers (Scout) a weightless L2 norm of queries and keys after the rotation;
//! - mixture of experts with one routed expert per token, chosen by the top logit, whose sigmoid
//!   score scales the expert's *input*, plus a shared expert; every layer (Scout) or every other
//!   layer (Maverick, `interleave_moe_layer_step = 2`) is MoE, the rest dense with
//!   `intermediate_size_mlp`.
//!
//! Pre-norm, GQA, SwiGLU; the feed-forward block is named `feed_forward`.

use nn::attention::TemperatureTuning;

use serde_json::{Map, Value, json};

use super::architecture::{Architecture, ClassDefaults, Gguf, ModelType, Names, as_released};
use super::recipe::{ExpertStorage, ExpertsRecipe, LLAMA_STYLE, QkNormKind, Recipe};
use crate::config::fields::Fields;
use crate::config::read::{no_rope_layers, pattern_unless_typed, set_experts};
use crate::config::{Family, LayerAttention, ModelConfig, MoeConfig, RouterKind};
use crate::gguf::config::Metadata;
use crate::gguf::{GgufWriter, Value as GgufValue};
use crate::{Error, Result};

pub const ARCH: Architecture = Architecture {
    family: Family::Llama4,
    names: Names { shown: "Llama 4", id: "llama4", class: "Llama4ForCausalLM" },
    model_types: &[ModelType::text("llama4_text"), ModelType::nested("llama4")],
    // `Llama4TextConfig`.
    defaults: ClassDefaults {
        vocab_size: 202_048,
        rope_theta: 500_000.0,
        rms_norm_eps: 1e-5,
        head_dim: Some(128),
        ..ClassDefaults::COMMON
    },
    read,
    recipe: Recipe {
        qk_norm: QkNormKind::L2AfterRope,
        ffn_name: "feed_forward",
        experts: Some(ExpertsRecipe { router: "router", shared: "shared_expert", storage: ExpertStorage::FusedHalves }),
        ..LLAMA_STYLE
    },
    configure: as_released,
    fixture: "llama4",
    // llama.cpp's `llama4` (`Llama4Model` in the converter, a `LlamaModel` with
    // `undo_permute = False`: Llama 4 already rotates pairs, as ggml's RoPE does, so q and k keep
    // their row order). The runtime fixes NoPE on every 4th layer, chunked attention on the other
    // three (chunks of 8192), temperature tuning (scale 0.1, floor 8192) and the L2 QK-norm
    // (off only for the 128-expert model); `write_gguf` refuses configs that differ.
    gguf: Some(Gguf {
        layer_names: &[
            ("feed_forward.gate_proj", "ffn_gate"),
            ("feed_forward.up_proj", "ffn_up"),
            ("feed_forward.down_proj", "ffn_down"),
            ("feed_forward.router", "ffn_gate_inp"),
            ("feed_forward.experts.gate_proj", "ffn_gate_exps"),
            ("feed_forward.experts.up_proj", "ffn_up_exps"),
            ("feed_forward.experts.down_proj", "ffn_down_exps"),
            ("feed_forward.shared_expert.gate_proj", "ffn_gate_shexp"),
            ("feed_forward.shared_expert.up_proj", "ffn_up_shexp"),
            ("feed_forward.shared_expert.down_proj", "ffn_down_shexp"),
        ],
        nope_step: Some(4),
        swa_pattern: Some(4),
        read: read_gguf,
        write: write_gguf,
        ..Gguf::named("llama4")
    }),
    tiny: None,
};

fn read(f: &Fields, c: &mut ModelConfig) -> Result<()> {
    let n = c.num_hidden_layers;
    c.attention_chunk_size = Some(f.usize_or("attention_chunk_size", 8192)?);
    c.rope_interleaved = true;
    // NoPE every 4th layer; the RoPE layers attend in chunks, the NoPE ones to everything.
    no_rope_layers(f, c)?;
    pattern_unless_typed(f, c, |_, l| if l.rope { LayerAttention::Chunked } else { LayerAttention::Full })?;
    // Experts as wide as `intermediate_size` with a shared one as wide; the dense layers
    // between them are `intermediate_size_mlp` wide.
    let width = c.dense_intermediate_size;
    c.dense_intermediate_size = f.usize_opt("intermediate_size_mlp")?.unwrap_or(16_384);
    let num_experts = f.usize_or("num_local_experts", 16)?;
    let step = f.usize_or("interleave_moe_layer_step", 1)?.max(1);
    let listed = f.layer_list("moe_layers", n)?;
    let moe = (num_experts > 0).then_some(MoeConfig {
        shared_intermediate_size: Some(width),
        ..MoeConfig::routed(RouterKind::Top1SigmoidInput, num_experts, f.usize_or("num_experts_per_tok", 1)?, width)
    });
    set_experts(c, moe, |i| match &listed {
        Some(list) => list.contains(&i),
        None => (i + 1) % step == 0,
    });
    c.use_qk_norm = f.bool_or("use_qk_norm", true)?;
    if f.bool_or("attn_temperature_tuning", true)? {
        c.temperature_tuning = Some(TemperatureTuning {
            attn_scale: f.f64_or("attn_scale", 0.1)?,
            floor_scale: f.f64_or("floor_scale", 8192.0)?,
        });
    }
    Ok(())
}

/// llama.cpp's fixed chunk size (`n_swa = 8192`; no metadata key).
const LLAMA_CPP_CHUNK: usize = 8192;
/// llama.cpp's fixed temperature tuning (`f_attn_temp_scale`, `n_attn_temp_floor_scale`).
const LLAMA_CPP_TEMPERATURE: TemperatureTuning = TemperatureTuning { attn_scale: 0.1, floor_scale: 8192.0 };

/// llama.cpp turns the L2 QK-norm off for the 128-expert model only (`use_kq_norm`, by its
/// expert count: Maverick's config has `use_qk_norm: false`).
fn llama_cpp_qk_norm(experts: usize) -> bool {
    experts != 128
}

/// The Llama 4 fields of a file's config: the expert sizes (Hugging Face's `intermediate_size`
/// is the experts' width, `intermediate_size_mlp` the dense layers'), the MoE step, and what
/// llama.cpp fixes (chunks, temperature tuning, QK-norm).
fn read_gguf(m: &Metadata, c: &mut Map<String, Value>) -> Result<()> {
    if m.uint("attention.sliding_window")? == Some(0) {
        return Err(m.error("attention.sliding_window", "is 0 (a Llama 4 without chunked attention); not read yet"));
    }
    let experts = m.need("expert_count")?;
    c.insert("num_local_experts".into(), json!(experts));
    c.insert("num_experts_per_tok".into(), json!(m.need("expert_used_count")?));
    let dense = c.remove("intermediate_size").unwrap_or(Value::Null);
    c.insert("intermediate_size_mlp".into(), dense);
    c.insert("intermediate_size".into(), json!(m.need("expert_feed_forward_length")?));
    c.insert("interleave_moe_layer_step".into(), json!(m.need("interleave_moe_layer_step")?));
    c.insert("attention_chunk_size".into(), json!(LLAMA_CPP_CHUNK));
    c.insert("attn_temperature_tuning".into(), json!(true));
    c.insert("attn_scale".into(), json!(LLAMA_CPP_TEMPERATURE.attn_scale));
    c.insert("floor_scale".into(), json!(LLAMA_CPP_TEMPERATURE.floor_scale));
    c.insert("use_qk_norm".into(), json!(llama_cpp_qk_norm(experts as usize)));
    Ok(())
}

/// Writes the MoE step (`interleave_moe_layer_step`), and refuses what llama.cpp's fixed choices
/// would compute otherwise (the NoPE and chunk patterns are checked by the writer).
fn write_gguf(c: &ModelConfig, w: &mut GgufWriter) -> Result<()> {
    let refuse = |what: String| Err(Error::input(format!("{}: {what}, so GGUF cannot hold it", c.model_type)));
    let chunked = c.layers.iter().any(|l| l.attention == LayerAttention::Chunked);
    if !chunked || c.attention_chunk_size != Some(LLAMA_CPP_CHUNK) {
        return refuse(format!(
            "attention_chunk_size is {} (chunked layers: {chunked}), but llama.cpp's llama4 attends in chunks of {LLAMA_CPP_CHUNK}",
            c.attention_chunk_size.map_or("none".to_string(), |n| n.to_string())
        ));
    }
    if c.temperature_tuning != Some(LLAMA_CPP_TEMPERATURE) {
        return refuse(format!(
            "temperature tuning is {:?}, but llama.cpp's llama4 fixes attn_scale 0.1 and floor_scale 8192",
            c.temperature_tuning
        ));
    }
    let Some(moe) = &c.moe else {
        return refuse("it has no experts, and llama.cpp's llama4 needs them".into());
    };
    if c.use_qk_norm != llama_cpp_qk_norm(moe.num_experts) {
        return refuse(format!(
            "use_qk_norm is {}, but llama.cpp's llama4 uses it exactly when there are not 128 experts",
            c.use_qk_norm
        ));
    }
    if moe.shared_intermediate_size != Some(moe.expert_intermediate_size) {
        return refuse("its shared expert is not as wide as the routed ones, as llama.cpp's llama4 assumes".into());
    }
    let n = c.layers.len();
    let Some(step) = (1..=n).find(|s| c.layers.iter().enumerate().all(|(i, l)| l.moe == (i + 1).is_multiple_of(*s)))
    else {
        return refuse("its MoE layers are not every n-th layer (llama.cpp's interleave_moe_layer_step)".into());
    };
    w.set("llama4.interleave_moe_layer_step", GgufValue::U32(step as u32));
    Ok(())
}
