//! Per-family parsing: which fields each family reads, its class defaults (from the
//! transformers `*Config` classes), and how it derives its layer kinds.

use nn::attention::TemperatureTuning;
use nn::moe::SwigluClamp;
use serde_json::{Map, Value};
use tensor::GluActivation;

use super::fields::{Fields, quoted};
use super::{Family, LayerAttention, LayerKind, MlaSizes, ModelConfig, MoeConfig, Olmo2Switches, RouterKind, rope};
use crate::models::gpt_oss;
use crate::{Error, Result};

fn family_of(model_type: &str) -> Option<(Family, bool)> {
    // (family, whether the text decoder sits in a nested `text_config`)
    Some(match model_type {
        "deepseek_v3" => (Family::DeepseekV3, false),
        "kimi_k2" => (Family::KimiK2, false),
        "olmo2" => (Family::Olmo2, false),
        "gemma3_text" => (Family::Gemma3, false),
        "gemma3" => (Family::Gemma3, true),
        "mistral" => (Family::Mistral, false),
        "mistral3" => (Family::Mistral, true),
        "llama4_text" => (Family::Llama4, false),
        "llama4" => (Family::Llama4, true),
        "qwen3" => (Family::Qwen3, false),
        "qwen3_moe" => (Family::Qwen3Moe, false),
        "smollm3" => (Family::SmolLM3, false),
        gpt_oss::MODEL_TYPE => (Family::GptOss, false),
        _ => return None,
    })
}

/// The most layers a config may declare.
const MAX_LAYERS: usize = 1 << 16;

const SUPPORTED: &str = "deepseek_v3, kimi_k2, olmo2, gemma3_text, gemma3, mistral, mistral3, llama4_text, llama4, qwen3, qwen3_moe, smollm3, gpt_oss";

pub fn parse(map: &Map<String, Value>, source: &str) -> Result<ModelConfig> {
    let top = Fields { source, map };
    let model_type = top
        .str_opt("model_type")?
        .ok_or_else(|| Error::Config(format!("{source}: missing field model_type (expected one of {SUPPORTED})")))?;
    let (family, nested) = family_of(model_type).ok_or_else(|| {
        Error::Config(format!(
            "{source}: model_type {} is not supported (expected one of {SUPPORTED})",
            quoted(model_type)
        ))
    })?;
    let text = if nested {
        top.object("text_config")?
            .ok_or_else(|| Error::Config(format!("{source}: model_type {model_type} needs a text_config object")))?
    } else {
        Fields { source, map }
    };
    let text_type = match family {
        Family::Gemma3 => "gemma3_text",
        Family::Mistral => "mistral",
        Family::Llama4 => "llama4_text",
        _ => model_type,
    };
    let config = read(family, &text, &top, text_type.to_string())?;
    validate(&config)?;
    Ok(config)
}

/// Reads a field from the text config, falling back to the outer config (multimodal releases
/// keep `tie_word_embeddings` or token ids at the top level).
fn outer_bool(text: &Fields, top: &Fields, field: &str, default: bool) -> Result<bool> {
    if text.has(field) { text.bool_or(field, default) } else { top.bool_or(field, default) }
}

fn read(family: Family, f: &Fields, top: &Fields, model_type: String) -> Result<ModelConfig> {
    let source = f.source.to_string();
    // Defaults that differ by family, from the transformers config classes.
    let (default_vocab, default_theta, default_eps, default_tie) = match family {
        Family::DeepseekV3 | Family::KimiK2 => (129_280, 10_000.0, 1e-6, false),
        Family::Olmo2 => (50_304, 10_000.0, 1e-5, false),
        Family::Gemma3 => (262_208, 1_000_000.0, 1e-6, true),
        Family::Mistral => (32_000, 10_000.0, 1e-6, false),
        Family::Llama4 => (202_048, 500_000.0, 1e-5, false),
        Family::Qwen3 | Family::Qwen3Moe => (151_936, 10_000.0, 1e-6, false),
        Family::SmolLM3 => (128_256, 2_000_000.0, 1e-6, true),
        Family::GptOss => (gpt_oss::VOCAB_SIZE, gpt_oss::ROPE_THETA, gpt_oss::RMS_NORM_EPS, false),
    };
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
    let default_head_dim = match family {
        Family::Gemma3 => Some(256),
        Family::Llama4 | Family::Qwen3 | Family::Qwen3Moe => Some(128),
        Family::GptOss => Some(gpt_oss::HEAD_DIM),
        _ => None,
    };
    let head_dim = match f.usize_opt("head_dim")?.or(default_head_dim) {
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
    let default_max_positions = if family == Family::GptOss { gpt_oss::MAX_POSITION_EMBEDDINGS } else { 4096 };
    let max_position_embeddings = f.usize_or("max_position_embeddings", default_max_positions)?;
    let activation_name = match f.str_opt("hidden_activation")? {
        Some(a) => a,
        None => f.str_opt("hidden_act")?.unwrap_or(if family == Family::Gemma3 { "gelu_pytorch_tanh" } else { "silu" }),
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
    let default_local_theta = (family == Family::Gemma3).then_some(10_000.0);
    let mut rope = rope::read(f, max_position_embeddings, default_theta, default_local_theta)?;
    if family == Family::GptOss && !f.has("rope_scaling") && !f.has("rope_parameters") {
        rope.global.scaling = gpt_oss::default_rope_scaling();
    }

    let intermediate_size = match family {
        Family::GptOss => Some(f.usize_or("intermediate_size", gpt_oss::INTERMEDIATE_SIZE)?),
        _ => f.usize_opt("intermediate_size")?,
    };
    let require = |v: Option<usize>, name: &str| {
        v.ok_or_else(|| Error::Config(format!("{source}: missing required field {name}")))
    };

    // Attention windows.
    let sliding_window = match family {
        Family::Gemma3 => Some(f.usize_or("sliding_window", 4096)?),
        // MistralConfig defaults to a 4096 window when the key is absent; null turns it off.
        Family::Mistral | Family::GptOss => {
            if f.map.contains_key("sliding_window") {
                f.usize_opt("sliding_window")?
            } else {
                Some(if family == Family::GptOss { gpt_oss::SLIDING_WINDOW } else { 4096 })
            }
        }
        _ => None,
    };
    let attention_chunk_size = match family {
        Family::Llama4 => Some(f.usize_or("attention_chunk_size", 8192)?),
        _ => None,
    };

    // Which layers see positions (`no_rope_layers`: 1 = RoPE).
    let rope_layers: Vec<bool> = match family {
        Family::Llama4 | Family::SmolLM3 => match f.usize_list("no_rope_layers")? {
            Some(flags) if !flags.is_empty() => flags.iter().map(|&x| x != 0).collect(),
            _ => {
                let interval = f.usize_or("no_rope_layer_interval", 4)?.max(1);
                (0..num_hidden_layers).map(|i| (i + 1) % interval != 0).collect()
            }
        },
        _ => vec![true; num_hidden_layers],
    };
    if rope_layers.len() != num_hidden_layers {
        return Err(Error::Config(format!(
            "{source}: field no_rope_layers has {} entries for num_hidden_layers {num_hidden_layers}",
            rope_layers.len()
        )));
    }

    // How each layer attends: `layer_types` when given, else the family's rule.
    let attention: Vec<LayerAttention> = match f.str_list("layer_types")? {
        Some(types) => {
            if types.len() != num_hidden_layers {
                return Err(Error::Config(format!(
                    "{source}: field layer_types has {} entries for num_hidden_layers {num_hidden_layers}",
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
                        Err(Error::Config(format!("{source}: field layer_types: unknown layer type {}", quoted(other))))
                    }
                })
                .collect::<Result<_>>()?
        }
        None => (0..num_hidden_layers)
            .map(|i| match family {
                Family::Gemma3 => {
                    let pattern = f
                        .usize_opt("sliding_window_pattern")?
                        .or(f.usize_opt("_sliding_window_pattern")?)
                        .unwrap_or(6)
                        .max(1);
                    Ok(if (i + 1) % pattern == 0 { LayerAttention::Full } else { LayerAttention::Sliding })
                }
                Family::Llama4 => Ok(if rope_layers[i] { LayerAttention::Chunked } else { LayerAttention::Full }),
                Family::Mistral if sliding_window.is_some() => Ok(LayerAttention::Sliding),
                Family::GptOss => Ok(gpt_oss::default_layer_attention(i)),
                _ => Ok(LayerAttention::Full),
            })
            .collect::<Result<_>>()?,
    };
    // Layers typed full in a Mistral config with a window still slide (Mistral applies one window
    // to every layer); elsewhere the types are taken as given.
    let attention: Vec<LayerAttention> = if family == Family::Mistral && sliding_window.is_some() {
        vec![LayerAttention::Sliding; num_hidden_layers]
    } else {
        attention
    };

    // Experts.
    let (moe, moe_layers): (Option<MoeConfig>, Vec<bool>) = match family {
        Family::DeepseekV3 | Family::KimiK2 => {
            let num_experts = f.usize_or("n_routed_experts", 0)?;
            let first_dense = f.usize_or("first_k_dense_replace", if family == Family::KimiK2 { 1 } else { 3 })?;
            let freq = f.usize_or("moe_layer_freq", 1)?.max(1);
            let layers = (0..num_hidden_layers).map(|i| num_experts > 0 && i >= first_dense && i % freq == 0).collect();
            if let Some(scoring) = f.str_opt("scoring_func")?
                && scoring != "sigmoid"
            {
                return Err(Error::Config(format!(
                    "{source}: field scoring_func: only \"sigmoid\" routing is supported, got {scoring:?}"
                )));
            }
            let expert = f.usize_or("moe_intermediate_size", 2048)?;
            let shared = f.usize_or("n_shared_experts", 1)?;
            let moe = (num_experts > 0).then_some(MoeConfig {
                router: RouterKind::SigmoidGroupLimited,
                num_experts,
                top_k: f.usize_or("num_experts_per_tok", 8)?,
                expert_intermediate_size: expert,
                shared_intermediate_size: match shared {
                    0 => None,
                    // Each factor is below 2^40, the product need not be: refuse it rather
                    // than overflow.
                    _ => Some(expert.checked_mul(shared).filter(|w| *w < (1 << 40)).ok_or_else(|| {
                        Error::Config(format!(
                            "{source}: fields moe_intermediate_size ({expert}) times n_shared_experts ({shared}) is too large"
                        ))
                    })?),
                },
                norm_topk_prob: f.bool_or("norm_topk_prob", true)?,
                routed_scaling_factor: f
                    .f64_or("routed_scaling_factor", if family == Family::KimiK2 { 2.827 } else { 2.5 })?,
                n_group: f.usize_or("n_group", if family == Family::KimiK2 { 1 } else { 8 })?,
                topk_group: f.usize_or("topk_group", if family == Family::KimiK2 { 1 } else { 4 })?,
            });
            (moe, layers)
        }
        Family::Qwen3Moe => {
            let num_experts = match f.usize_opt("num_experts")? {
                Some(n) => n,
                None => f.usize_or("num_local_experts", 128)?,
            };
            let step = f.usize_or("decoder_sparse_step", 1)?.max(1);
            let dense_only = f.layer_list("mlp_only_layers", num_hidden_layers)?.unwrap_or_default();
            let layers = (0..num_hidden_layers)
                .map(|i| num_experts > 0 && !dense_only.contains(&i) && (i + 1) % step == 0)
                .collect();
            let moe = (num_experts > 0).then_some(MoeConfig {
                router: RouterKind::SoftmaxTopK,
                num_experts,
                top_k: f.usize_or("num_experts_per_tok", 8)?,
                expert_intermediate_size: f.usize_or("moe_intermediate_size", 768)?,
                shared_intermediate_size: None,
                norm_topk_prob: f.bool_or("norm_topk_prob", false)?,
                routed_scaling_factor: 1.0,
                n_group: 1,
                topk_group: 1,
            });
            (moe, layers)
        }
        Family::Llama4 => {
            let num_experts = f.usize_or("num_local_experts", 16)?;
            let step = f.usize_or("interleave_moe_layer_step", 1)?.max(1);
            let listed = f.layer_list("moe_layers", num_hidden_layers)?;
            let layers = (0..num_hidden_layers)
                .map(|i| match &listed {
                    Some(list) => list.contains(&i),
                    None => (i + 1) % step == 0,
                })
                .collect();
            let width = require(intermediate_size, "intermediate_size")?;
            let moe = (num_experts > 0).then_some(MoeConfig {
                router: RouterKind::Top1SigmoidInput,
                num_experts,
                top_k: f.usize_or("num_experts_per_tok", 1)?,
                expert_intermediate_size: width,
                shared_intermediate_size: Some(width),
                norm_topk_prob: false,
                routed_scaling_factor: 1.0,
                n_group: 1,
                topk_group: 1,
            });
            (moe, layers)
        }
        Family::GptOss => {
            let num_experts = match f.usize_opt("num_local_experts")? {
                Some(n) => n,
                None => f.usize_or("num_experts", gpt_oss::NUM_LOCAL_EXPERTS)?,
            };
            let moe = MoeConfig {
                router: RouterKind::BiasedSoftmaxOverChosen,
                num_experts,
                top_k: f.usize_or("num_experts_per_tok", gpt_oss::NUM_EXPERTS_PER_TOK)?,
                expert_intermediate_size: require(intermediate_size, "intermediate_size")?,
                shared_intermediate_size: None,
                norm_topk_prob: false,
                routed_scaling_factor: 1.0,
                n_group: 1,
                topk_group: 1,
            };
            (Some(moe), vec![true; num_hidden_layers])
        }
        _ => (None, vec![false; num_hidden_layers]),
    };
    let dense_intermediate_size = match family {
        Family::Llama4 => f.usize_opt("intermediate_size_mlp")?.unwrap_or(16_384),
        _ => require(intermediate_size, "intermediate_size")?,
    };

    let mla = match family {
        Family::DeepseekV3 | Family::KimiK2 => Some(MlaSizes {
            q_lora_rank: if f.map.contains_key("q_lora_rank") { f.usize_opt("q_lora_rank")? } else { Some(1536) },
            kv_lora_rank: f.usize_or("kv_lora_rank", 512)?,
            qk_nope_head_dim: f.usize_or("qk_nope_head_dim", 128)?,
            qk_rope_head_dim: f.usize_or("qk_rope_head_dim", 64)?,
            v_head_dim: f.usize_or("v_head_dim", 128)?,
        }),
        _ => None,
    };

    let layers = (0..num_hidden_layers)
        .map(|i| LayerKind { attention: attention[i], rope: rope_layers[i], moe: moe_layers[i] })
        .collect();
    let temperature_tuning = (family == Family::Llama4 && f.bool_or("attn_temperature_tuning", true)?)
        .then(|| -> Result<TemperatureTuning> {
            Ok(TemperatureTuning {
                attn_scale: f.f64_or("attn_scale", 0.1)?,
                floor_scale: f.f64_or("floor_scale", 8192.0)?,
            })
        })
        .transpose()?;
    let eos = if f.has("eos_token_id") { f.ids("eos_token_id")? } else { top.ids("eos_token_id")? };
    let bos = if f.has("bos_token_id") { f.ids("bos_token_id")? } else { top.ids("bos_token_id")? };
    let vocab_size = f.usize_or("vocab_size", default_vocab)?;
    let pad_token_id = padding_idx(if f.has("pad_token_id") { f } else { top }, vocab_size)?;

    Ok(ModelConfig {
        family,
        model_type,
        source,
        vocab_size,
        hidden_size,
        num_hidden_layers,
        num_attention_heads,
        num_key_value_heads,
        head_dim,
        dense_intermediate_size,
        rms_norm_eps: f.f64_or("rms_norm_eps", default_eps)?,
        max_position_embeddings,
        tie_word_embeddings: outer_bool(f, top, "tie_word_embeddings", default_tie)?,
        activation,
        attention_bias: f.bool_or("attention_bias", family == Family::GptOss)?,
        rope,
        rope_interleaved: match family {
            Family::Llama4 => true,
            Family::DeepseekV3 | Family::KimiK2 => f.bool_or("rope_interleave", true)?,
            _ => false,
        },
        sliding_window,
        attention_chunk_size,
        layers,
        query_pre_attn_scalar: match family {
            Family::Gemma3 => Some(f.f64_or("query_pre_attn_scalar", 256.0)?),
            _ => None,
        },
        attn_logit_softcapping: f.f64_opt("attn_logit_softcapping")?,
        final_logit_softcapping: f.f64_opt("final_logit_softcapping")?,
        use_qk_norm: family == Family::Llama4 && f.bool_or("use_qk_norm", true)?,
        temperature_tuning,
        moe,
        olmo2: (family == Family::Olmo2)
            .then(|| -> Result<Olmo2Switches> {
                Ok(Olmo2Switches {
                    reordered_norm: f.bool_or("reordered_norm", true)?,
                    qk_norm: f.bool_or("qk_norm", true)?,
                })
            })
            .transpose()?,
        attention_sinks: family == Family::GptOss,
        swiglu_clamp: match family {
            Family::GptOss => Some(SwigluClamp {
                alpha: f.f64_or("swiglu_alpha", gpt_oss::SWIGLU_ALPHA)?,
                limit: f.f64_or("swiglu_limit", gpt_oss::SWIGLU_LIMIT)?,
            }),
            _ => None,
        },
        mla,
        bos_token_id: bos.first().copied(),
        pad_token_id,
        eos_token_ids: eos,
        mtp_layers: f.usize_or("num_nextn_predict_layers", 0)?,
    })
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
