//! The shared reading of a config: the `model_type` looked up in the registry, the fields every
//! architecture has (sizes, RoPE, tokens, `layer_types`) with the architecture's class defaults,
//! then the architecture's own `read` for the fields only it has, then the checks that hold for
//! all. Below, the helpers those `read`s share (NoPE layers, layer patterns, windows, experts).

use serde_json::{Map, Value};
use tensor::GluActivation;

use super::fields::{Fields, quoted};
use super::{LayerAttention, LayerKind, ModelConfig, MoeConfig, RouterKind, WeightQuantization, rope};
use crate::models::architecture::Architecture;
use crate::models::registry;
use crate::{Error, Result};

/// The most layers a config may declare.
const MAX_LAYERS: usize = 1 << 16;

pub fn parse(map: &Map<String, Value>, source: &str) -> Result<ModelConfig> {
    let top = Fields { source, map };
    let supported = || registry::model_type_names().join(", ");
    let model_type = top.str_opt("model_type")?.ok_or_else(|| {
        Error::Config(format!("{source}: missing field model_type (expected one of {})", supported()))
    })?;
    let (arch, nested) = registry::by_model_type(model_type).ok_or_else(|| {
        Error::Config(format!(
            "{source}: model_type {} is not supported (expected one of {})",
            quoted(model_type),
            supported()
        ))
    })?;
    let text = if nested {
        top.object("text_config")?
            .ok_or_else(|| Error::Config(format!("{source}: model_type {model_type} needs a text_config object")))?
    } else {
        Fields { source, map }
    };
    let text_type = if nested { arch.text_model_type() } else { model_type };
    let mut config = read_shared(arch, &text, &top, text_type.to_string())?;
    (arch.read)(&text, &mut config)?;
    validate(&config)?;
    Ok(config)
}

/// Reads a field from the text config, falling back to the outer config (multimodal releases
/// keep `tie_word_embeddings` or token ids at the top level).
fn outer_bool(text: &Fields, top: &Fields, field: &str, default: bool) -> Result<bool> {
    if text.has(field) { text.bool_or(field, default) } else { top.bool_or(field, default) }
}

/// The fields every architecture reads, with its class defaults; the architecture's own fields
/// left as a plain decoder has them (no windows, RoPE on every layer, no experts).
fn read_shared(arch: &Architecture, f: &Fields, top: &Fields, model_type: String) -> Result<ModelConfig> {
    let source = f.source.to_string();
    let defaults = &arch.defaults;
    let hidden_size = f.usize("hidden_size")?;
    let num_hidden_layers = f.usize("num_hidden_layers")?;
    // Per-layer lists are built from this number before any weight is seen: bound it so that a
    // wrong value cannot ask for terabytes. The deepest released decoders have ~130 layers.
    if num_hidden_layers == 0 || num_hidden_layers > MAX_LAYERS {
        return Err(Error::Config(format!(
            "{source}: field num_hidden_layers must be between 1 and {MAX_LAYERS}, got {num_hidden_layers}"
        )));
    }
    let num_attention_heads = f.usize("num_attention_heads")?;
    let num_key_value_heads = f.usize_or("num_key_value_heads", num_attention_heads)?;
    let head_dim = match f.usize_opt("head_dim")?.or(defaults.head_dim) {
        Some(d) => d,
        None => {
            if num_attention_heads == 0 || hidden_size % num_attention_heads != 0 {
                return Err(Error::Config(format!(
                    "{source}: field head_dim is absent and hidden_size {hidden_size} does not divide into num_attention_heads {num_attention_heads}"
                )));
            }
            hidden_size / num_attention_heads
        }
    };
    let max_position_embeddings = f.usize_or("max_position_embeddings", defaults.max_position_embeddings)?;
    let activation_name = match f.str_opt("hidden_activation")? {
        Some(a) => a,
        None => f.str_opt("hidden_act")?.unwrap_or(defaults.hidden_act),
    };
    let activation = match activation_name {
        "silu" | "swish" => GluActivation::Silu,
        "gelu_pytorch_tanh" | "gelu_tanh" => GluActivation::GeluTanh,
        other => {
            return Err(Error::Config(format!(
                "{source}: activation {} is not supported (expected silu or gelu_pytorch_tanh)",
                quoted(other)
            )));
        }
    };
    let rope = rope::read(f, max_position_embeddings, defaults.rope_theta, defaults.local_rope_theta)?;
    let dense_intermediate_size = f
        .usize_opt("intermediate_size")?
        .or(defaults.intermediate_size)
        .ok_or_else(|| Error::Config(format!("{source}: missing required field intermediate_size")))?;
    let layers = match layer_types(f, num_hidden_layers)? {
        Some(types) => types.into_iter().map(|attention| LayerKind { attention, rope: true, moe: false }).collect(),
        None => vec![LayerKind { attention: LayerAttention::Full, rope: true, moe: false }; num_hidden_layers],
    };
    let eos = if f.has("eos_token_id") { f.ids("eos_token_id")? } else { top.ids("eos_token_id")? };
    let bos = if f.has("bos_token_id") { f.ids("bos_token_id")? } else { top.ids("bos_token_id")? };
    let vocab_size = f.usize_or("vocab_size", defaults.vocab_size)?;
    let pad_token_id = padding_idx(if f.has("pad_token_id") { f } else { top }, vocab_size)?;

    Ok(ModelConfig {
        family: arch.family,
        model_type,
        source,
        vocab_size,
        hidden_size,
        num_hidden_layers,
        num_attention_heads,
        num_key_value_heads,
        head_dim,
        dense_intermediate_size,
        rms_norm_eps: f.f64_or("rms_norm_eps", defaults.rms_norm_eps)?,
        max_position_embeddings,
        tie_word_embeddings: outer_bool(f, top, "tie_word_embeddings", defaults.tie_word_embeddings)?,
        activation,
        attention_bias: f.bool_or("attention_bias", defaults.attention_bias)?,
        rope,
        rope_interleaved: false,
        sliding_window: None,
        attention_chunk_size: None,
        layers,
        query_pre_attn_scalar: None,
        attn_logit_softcapping: f.f64_opt("attn_logit_softcapping")?,
        final_logit_softcapping: f.f64_opt("final_logit_softcapping")?,
        use_qk_norm: false,
        temperature_tuning: None,
        moe: None,
        olmo2: None,
        attention_sinks: arch.recipe.sinks,
        swiglu_clamp: None,
        mla: None,
        bos_token_id: bos.first().copied(),
        pad_token_id,
        eos_token_ids: eos,
        mtp_layers: f.usize_or("num_nextn_predict_layers", 0)?,
        quantization: quantization(top)?,
    })
}

/// `quantization_config` (at the top level, also for multimodal releases): the formats the
/// loader decodes, and a clear refusal of the others (GPTQ, AWQ, bitsandbytes...), whose
/// tensors it would otherwise report one by one as unexpected.
fn quantization(top: &Fields) -> Result<Option<WeightQuantization>> {
    let Some(q) = top.object("quantization_config")? else { return Ok(None) };
    let source = top.source;
    let method = q.str_opt("quant_method")?.unwrap_or("");
    match method {
        "mxfp4" => Ok(Some(WeightQuantization::Mxfp4)),
        "fp8" => {
            let format = q.str_opt("fmt")?.unwrap_or("e4m3");
            if format != "e4m3" {
                return Err(Error::Config(format!(
                    "{source}: field quantization_config.fmt: expected \"e4m3\", got {}",
                    quoted(format)
                )));
            }
            let block = match q.usize_list("weight_block_size")?.as_deref() {
                None => tensor::quant::fp8::BLOCK,
                Some(&[rows, cols]) if rows > 0 && cols > 0 => [rows, cols],
                Some(other) => {
                    return Err(Error::Config(format!(
                        "{source}: field quantization_config.weight_block_size: expected two positive sizes [rows, cols], got {other:?}"
                    )));
                }
            };
            Ok(Some(WeightQuantization::Fp8 { block }))
        }
        other => Err(Error::Config(format!(
            "{source}: field quantization_config.quant_method: expected \"fp8\" (DeepSeek-V3, Kimi K2) or \"mxfp4\" (gpt-oss), got {}; \
             load a dequantized checkpoint or a GGUF file",
            quoted(other)
        ))),
    }
}

/// `layer_types`, one entry per layer, when the config gives it.
fn layer_types(f: &Fields, num_hidden_layers: usize) -> Result<Option<Vec<LayerAttention>>> {
    let Some(types) = f.str_list("layer_types")? else { return Ok(None) };
    if types.len() != num_hidden_layers {
        return Err(Error::Config(format!(
            "{}: field layer_types has {} entries for num_hidden_layers {num_hidden_layers}",
            f.source,
            types.len()
        )));
    }
    types
        .iter()
        .map(|t| match *t {
            "full_attention" => Ok(LayerAttention::Full),
            "sliding_attention" => Ok(LayerAttention::Sliding),
            "chunked_attention" => Ok(LayerAttention::Chunked),
            other => {
                Err(Error::Config(format!("{}: field layer_types: unknown layer type {}", f.source, quoted(other))))
            }
        })
        .collect::<Result<_>>()
        .map(Some)
}

/// Sets each layer's attention by the architecture's rule, unless the config lists
/// `layer_types` (which then stand as given).
pub fn pattern_unless_typed(
    f: &Fields,
    config: &mut ModelConfig,
    rule: impl Fn(usize, &LayerKind) -> LayerAttention,
) -> Result<()> {
    if f.str_list("layer_types")?.is_none() {
        for (i, layer) in config.layers.iter_mut().enumerate() {
            layer.attention = rule(i, layer);
        }
    }
    Ok(())
}

/// The NoPE layers of `no_rope_layers` (1 = RoPE, 0 = NoPE), or without it every
/// `no_rope_layer_interval`-th layer (default 4) counting from 1.
pub fn no_rope_layers(f: &Fields, config: &mut ModelConfig) -> Result<()> {
    let n = config.num_hidden_layers;
    let rope: Vec<bool> = match f.usize_list("no_rope_layers")? {
        Some(flags) if !flags.is_empty() => flags.iter().map(|&x| x != 0).collect(),
        _ => {
            let interval = f.usize_or("no_rope_layer_interval", 4)?.max(1);
            (0..n).map(|i| (i + 1) % interval != 0).collect()
        }
    };
    if rope.len() != n {
        return Err(Error::Config(format!(
            "{}: field no_rope_layers has {} entries for num_hidden_layers {n}",
            f.source,
            rope.len()
        )));
    }
    for (layer, rope) in config.layers.iter_mut().zip(rope) {
        layer.rope = rope;
    }
    Ok(())
}

/// `sliding_window` as the classes that turn the window off with null read it: absent, the
/// class's `default`; null, no window.
pub fn window_null_turns_off(f: &Fields, default: usize) -> Result<Option<usize>> {
    if f.map.contains_key("sliding_window") { f.usize_opt("sliding_window") } else { Ok(Some(default)) }
}

/// Marks the layers `is_moe` picks as mixtures of experts with the settings `moe`.
pub fn set_experts(config: &mut ModelConfig, moe: Option<MoeConfig>, is_moe: impl Fn(usize) -> bool) {
    for (i, layer) in config.layers.iter_mut().enumerate() {
        layer.moe = moe.is_some() && is_moe(i);
    }
    config.moe = moe;
}

impl MoeConfig {
    /// `num_experts` experts of `width` chosen `top_k` at a time by `router`, with no shared
    /// expert, no renormalisation, scaling or groups: the other fields are changes to this.
    pub fn routed(router: RouterKind, num_experts: usize, top_k: usize, width: usize) -> MoeConfig {
        MoeConfig {
            router,
            num_experts,
            top_k,
            expert_intermediate_size: width,
            shared_intermediate_size: None,
            norm_topk_prob: false,
            routed_scaling_factor: 1.0,
            n_group: 1,
            topk_group: 1,
        }
    }
}

/// `pad_token_id` as the embedding's `padding_idx`: PyTorch's `nn.Embedding` counts a negative
/// index from the end of the table (and `validate` refuses one past it).
fn padding_idx(f: &Fields, vocab_size: usize) -> Result<Option<u32>> {
    let Some(v) = f.get("pad_token_id") else { return Ok(None) };
    let id = v.as_i64().map(|i| if i < 0 { i + vocab_size as i64 } else { i });
    match id {
        Some(i) if (0..=u32::MAX as i64).contains(&i) => Ok(Some(i as u32)),
        _ => Err(f.err("pad_token_id", "a token id", v)),
    }
}

/// Contradictions a config can contain, each named.
fn validate(c: &ModelConfig) -> Result<()> {
    let s = &c.source;
    let fail = |msg: String| Err(Error::Config(format!("{s}: {msg}")));
    for (name, v) in [
        ("vocab_size", c.vocab_size),
        ("hidden_size", c.hidden_size),
        ("num_hidden_layers", c.num_hidden_layers),
        ("num_attention_heads", c.num_attention_heads),
        ("num_key_value_heads", c.num_key_value_heads),
        ("head_dim", c.head_dim),
    ] {
        if v == 0 {
            return fail(format!("field {name} must be at least 1"));
        }
    }
    if c.max_position_embeddings == 0 {
        return fail("field max_position_embeddings must be at least 1".to_string());
    }
    if let Some(pad) = c.pad_token_id
        && pad as usize >= c.vocab_size
    {
        return fail(format!("field pad_token_id ({pad}) must be below vocab_size ({})", c.vocab_size));
    }
    for (name, rope) in [("rope_theta", Some(&c.rope.global)), ("rope_local_base_freq", c.rope.local.as_ref())] {
        if let Some(r) = rope
            && r.theta <= 0.0
        {
            return fail(format!("field {name} must be positive, got {}", r.theta));
        }
    }
    if !c.num_attention_heads.is_multiple_of(c.num_key_value_heads) {
        return fail(format!(
            "field num_key_value_heads ({}) must divide num_attention_heads ({})",
            c.num_key_value_heads, c.num_attention_heads
        ));
    }
    if c.rms_norm_eps.is_nan() || c.rms_norm_eps <= 0.0 {
        return fail(format!("field rms_norm_eps must be positive, got {}", c.rms_norm_eps));
    }
    if let Some(w) = c.sliding_window
        && (w == 0 || w > c.max_position_embeddings)
    {
        return fail(format!(
            "field sliding_window ({w}) must be between 1 and max_position_embeddings ({})",
            c.max_position_embeddings
        ));
    }
    if c.attention_chunk_size == Some(0) {
        return fail("field attention_chunk_size must be at least 1".to_string());
    }
    let needs_rope_dims = c.mla.map_or(c.head_dim, |m| m.qk_rope_head_dim);
    if !needs_rope_dims.is_multiple_of(2) && c.layers.iter().any(|l| l.rope) {
        return fail(format!("rotary dims ({needs_rope_dims}) must be even"));
    }
    if let Some(m) = &c.moe {
        if m.top_k == 0 || m.top_k > m.num_experts {
            return fail(format!(
                "field num_experts_per_tok ({}) must be between 1 and the number of experts ({})",
                m.top_k, m.num_experts
            ));
        }
        if m.n_group == 0 || !m.num_experts.is_multiple_of(m.n_group) {
            return fail(format!(
                "field n_group ({}) must divide the number of experts ({})",
                m.n_group, m.num_experts
            ));
        }
        if m.topk_group == 0 || m.topk_group > m.n_group {
            return fail(format!("field topk_group ({}) must be between 1 and n_group ({})", m.topk_group, m.n_group));
        }
        if m.top_k > m.topk_group * (m.num_experts / m.n_group) {
            return fail(format!(
                "field num_experts_per_tok ({}) exceeds the experts in the kept groups ({})",
                m.top_k,
                m.topk_group * (m.num_experts / m.n_group)
            ));
        }
        if m.expert_intermediate_size == 0 {
            return fail("the expert width (moe_intermediate_size) must be at least 1".to_string());
        }
    }
    if let Some(clamp) = &c.swiglu_clamp
        && !(clamp.limit > 0.0 && clamp.alpha.is_finite())
    {
        return fail(format!(
            "fields swiglu_limit ({}) must be positive and swiglu_alpha ({}) finite",
            clamp.limit, clamp.alpha
        ));
    }
    if let Some(m) = &c.mla
        && (m.kv_lora_rank == 0 || m.qk_nope_head_dim + m.qk_rope_head_dim == 0 || m.v_head_dim == 0)
    {
        return fail(
            "MLA sizes kv_lora_rank, qk_nope_head_dim + qk_rope_head_dim and v_head_dim must be at least 1".to_string(),
        );
    }
    Ok(())
}
