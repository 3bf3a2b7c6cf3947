//! Gemma 3 (Google, 2025; `Gemma3ForCausalLM`, the text decoder). What sets it apart:
//! - 5 sliding-window layers (window 512-1024) to 1 global layer, so most of the KV cache stays
//!   bounded; local layers rotate with base 10k, global layers with 1M (and linear scaling 8 at
//!   4B and up);
//! - a sandwich of four RMSNorms per layer (pre and post each block), all of the `(1 + w)` kind
//!   with zero-centred weights, and the same norm per head on queries and keys (QK-norm);
//! - embeddings multiplied by sqrt(hidden_size), the softmax scaled by
//!   `query_pre_attn_scalar^-0.5`, GeGLU with tanh-GELU, MQA at 1B and GQA above, tied head.
//!
//! Compare Mistral Small: the same GQA core, but one norm per block input and full attention.

use serde_json::{Value, json};

use serde_json::Map;

use super::architecture::{Architecture, ClassDefaults, Gguf, ModelType, Names, as_released};
use super::recipe::{EmbedScale, LLAMA_STYLE, NormWeights, Placement, QkNormKind, Recipe};
use crate::config::fields::Fields;
use crate::config::read::pattern_unless_typed;
use crate::config::rope::RopeSettings;
use crate::config::{Family, LayerAttention, ModelConfig};
use crate::gguf::config::Metadata;
use crate::gguf::{GgufWriter, Value as GgufValue};
use crate::tiny::TinySizes;
use crate::{Error, Result};
use nn::rope::RopeScaling;

pub const ARCH: Architecture = Architecture {
    family: Family::Gemma3,
    names: Names { shown: "Gemma 3", id: "gemma3", class: "Gemma3ForCausalLM" },
    model_types: &[ModelType::text("gemma3_text"), ModelType::nested("gemma3")],
    // `Gemma3TextConfig`.
    defaults: ClassDefaults {
        vocab_size: 262_208,
        rope_theta: 1_000_000.0,
        local_rope_theta: Some(10_000.0),
        tie_word_embeddings: true,
        head_dim: Some(256),
        hidden_act: "gelu_pytorch_tanh",
        ..ClassDefaults::COMMON
    },
    read,
    recipe: Recipe {
        qk_norm: QkNormKind::PerHead,
        placement: Placement::Sandwich,
        norm_weights: NormWeights::UnitOffset,
        embed_scale: EmbedScale::SqrtHidden,
        ..LLAMA_STYLE
    },
    configure: as_released,
    fixture: "gemma3",
    // llama.cpp's `gemma3` (`Gemma3Model` in the converter, `llama_load_hparams_gemma3` and
    // `llm_build_gemma3` in the runtime). The sandwich norms take their own names; q and k keep
    // their row order (llama.cpp rotates Gemma with NEOX-style halves); the `(1 + w)` norm weights
    // are stored as `w + 1` (`gguf::unit_offset_norm`); the embedding is stored unscaled and
    // scaled by sqrt(hidden_size) at run time, as here.
    gguf: Some(Gguf {
        layer_names: &[
            ("post_attention_layernorm", "post_attention_norm"),
            ("pre_feedforward_layernorm", "ffn_norm"),
            ("post_feedforward_layernorm", "post_ffw_norm"),
        ],
        swa_pattern: Some(6),
        read: read_gguf,
        write: write_gguf,
        ..Gguf::named("gemma3")
    }),
    tiny: Some(tiny),
};

/// The window (4096 by default), the softmax scale's `query_pre_attn_scalar` (256), and without
/// `layer_types` every `sliding_window_pattern`-th layer (6) global, the rest local.
fn read(f: &Fields, c: &mut ModelConfig) -> Result<()> {
    c.sliding_window = Some(f.usize_or("sliding_window", 4096)?);
    c.query_pre_attn_scalar = Some(f.f64_or("query_pre_attn_scalar", 256.0)?);
    let pattern =
        f.usize_opt("sliding_window_pattern")?.or(f.usize_opt("_sliding_window_pattern")?).unwrap_or(6).max(1);
    pattern_unless_typed(
        f,
        c,
        |i, _| {
            if (i + 1) % pattern == 0 { LayerAttention::Full } else { LayerAttention::Sliding }
        },
    )
}

fn tiny(sizes: &TinySizes) -> Value {
    json!({
        "model_type": "gemma3_text",
        "architectures": ["Gemma3ForCausalLM"],
        "hidden_activation": "gelu_pytorch_tanh",
        "query_pre_attn_scalar": sizes.hidden_size / sizes.heads,
        // Local layers see 128 tokens, every sixth layer the whole context, as Gemma 3 does.
        "sliding_window": 128,
        "layer_types": (0..sizes.layers)
            .map(|i| if (i + 1) % 6 == 0 { "full_attention" } else { "sliding_attention" })
            .collect::<Vec<_>>(),
        "rope_parameters": {
            "full_attention": { "rope_type": "default", "rope_theta": 1_000_000.0 },
            "sliding_attention": { "rope_type": "default", "rope_theta": 10_000.0 },
        },
    })
}

/// The RoPE base llama.cpp hard-codes for Gemma 3's sliding-window layers
/// (`rope_freq_base_train_swa`, unscaled; the file has no key for it).
const LLAMA_CPP_LOCAL_THETA: f64 = 10_000.0;

/// The `query_pre_attn_scalar` llama.cpp uses (it has no key for it): `hidden_size /
/// num_attention_heads` for the 27B model (known by its 62 layers), `head_dim` otherwise
/// (`f_attention_scale` in `llama_load_hparams_gemma3`, after gemma_pytorch's configs).
fn llama_cpp_attn_scalar(layers: u64, hidden: u64, heads: u64, head_dim: u64) -> u64 {
    if layers == 62 { hidden / heads.max(1) } else { head_dim }
}

/// The Gemma 3 fields of a file's config: llama.cpp's window pattern, its two RoPE schedules
/// (global: the file's base and linear scaling; local: base 10k), its attention scale and the
/// final logit cap.
fn read_gguf(m: &Metadata, c: &mut Map<String, Value>) -> Result<()> {
    let layers = m.need("block_count")?;
    let (hidden, heads) = (m.need("embedding_length")?, m.need("attention.head_count")?);
    if heads == 0 {
        return Err(m.error("attention.head_count", "is 0"));
    }
    // Without `key_length` llama.cpp's head width is hidden / heads (not the class's 256).
    let head_dim = m.uint("attention.key_length")?.unwrap_or(hidden / heads);
    c.insert("head_dim".into(), json!(head_dim));
    c.insert("query_pre_attn_scalar".into(), json!(llama_cpp_attn_scalar(layers, hidden, heads, head_dim)));
    let window = m.uint("attention.sliding_window")?.filter(|&w| w > 0);
    let layer_types: Vec<&str> = (0..layers)
        .map(|i| match window.is_some() && (i + 1) % 6 != 0 {
            true => "sliding_attention",
            false => "full_attention",
        })
        .collect();
    c.insert("layer_types".into(), json!(layer_types));
    c.insert("sliding_window".into(), json!(window.unwrap_or(4096)));
    let global = c.remove("rope_parameters").unwrap_or_else(|| json!({ "rope_type": "default" }));
    c.insert(
        "rope_parameters".into(),
        json!({
            "full_attention": global,
            "sliding_attention": { "rope_type": "default", "rope_theta": LLAMA_CPP_LOCAL_THETA },
        }),
    );
    if let Some(cap) = m.float("final_logit_softcapping")?.filter(|&x| x != 0.0) {
        c.insert("final_logit_softcapping".into(), json!(cap));
    }
    Ok(())
}

/// Writes the final logit cap, and refuses what llama.cpp's fixed choices would compute
/// otherwise: another attention scale or another local RoPE schedule (the window pattern is
/// checked by the writer from `swa_pattern`).
fn write_gguf(c: &ModelConfig, w: &mut GgufWriter) -> Result<()> {
    let (layers, hidden, heads) = (c.num_hidden_layers as u64, c.hidden_size as u64, c.num_attention_heads as u64);
    let expected = llama_cpp_attn_scalar(layers, hidden, heads, c.head_dim as u64) as f64;
    let scalar = c.query_pre_attn_scalar.unwrap_or(c.head_dim as f64);
    if scalar != expected {
        return Err(Error::input(format!(
            "{}: query_pre_attn_scalar is {scalar}, but llama.cpp's gemma3 scales attention by {expected}^-0.5 \
             (head_dim, or hidden_size / num_attention_heads at 62 layers), so GGUF cannot hold it",
            c.model_type
        )));
    }
    let sliding = c.layers.iter().any(|l| l.attention == LayerAttention::Sliding);
    let llama_cpp_local = RopeSettings { theta: LLAMA_CPP_LOCAL_THETA, scaling: RopeScaling::None };
    if let Some(local) = &c.rope.local
        && sliding
        && *local != llama_cpp_local
    {
        return Err(Error::input(format!(
            "{}: the sliding layers' RoPE ({} base, {:?}) is not llama.cpp's fixed 10000 unscaled, so GGUF cannot hold it",
            c.model_type, local.theta, local.scaling
        )));
    }
    if let Some(cap) = c.final_logit_softcapping {
        w.set("gemma3.final_logit_softcapping", GgufValue::F32(cap as f32));
    }
    Ok(())
}
