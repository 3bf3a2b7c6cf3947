//! DeepSeek-V3 (DeepSeek-AI, 2024; `DeepseekV3ForCausalLM`). Two ideas carry it:
//! - multi-head latent attention: keys and values come from a 512-dim latent per token plus a
//!   64-dim RoPE key shared by all 128 heads, so the cache holds 576 numbers per token and layer
//!   (`nn::attention::mla`); queries go through their own low-rank bottleneck; rope dims rotate as
//!   interleaved pairs with YaRN (factor 40), whose `mscale^2` multiplies the softmax scale;
//! - a fine-grained mixture of experts after the first `first_k_dense_replace` dense layers:
//!   256 routed experts, 8 per token, chosen by a sigmoid router with a correction bias and
//!   group-limited top-k, plus one shared expert always on.
//!
//! Pre-norm, SwiGLU, untied head. Kimi K2 is this recipe with other numbers (`kimi_k2.rs`).

use nn::rope::RopeScaling;
use serde_json::{Map, Value, json};

use super::architecture::{Architecture, ClassDefaults, Gguf, Joined, ModelType, Names, Split, as_released};
use super::recipe::{AttentionKind, ExpertStorage, ExpertsRecipe, LLAMA_STYLE, Recipe};
use crate::config::fields::Fields;
use crate::config::read::set_experts;
use crate::config::{Family, MlaSizes, ModelConfig, MoeConfig, RouterKind};
use crate::gguf::config::Metadata;
use crate::gguf::{GgufFile, GgufWriter, Value as GgufValue};
use crate::{Error, Result};

pub const ARCH: Architecture = Architecture {
    family: Family::DeepseekV3,
    names: Names { shown: "DeepSeek-V3", id: "deepseek_v3", class: "DeepseekV3ForCausalLM" },
    model_types: &[ModelType::text("deepseek_v3")],
    // `DeepseekV3Config`.
    defaults: ClassDefaults { vocab_size: 129_280, ..ClassDefaults::COMMON },
    read,
    recipe: Recipe {
        attention: AttentionKind::Latent,
        experts: Some(ExpertsRecipe { router: "gate", shared: "shared_experts", storage: ExpertStorage::PerExpert }),
        ..LLAMA_STYLE
    },
    configure: as_released,
    fixture: "deepseek_v3",
    // llama.cpp's `deepseek2` (`DeepseekV2Model` in the converter, which DeepSeek-V3 and Kimi K2
    // go through too; `llm_build_deepseek2` in the runtime). The rope dims of q and k keep their
    // row order: HF's `apply_rotary_pos_emb_interleave` rotates adjacent pairs (it de-interleaves,
    // rotates halves, and q.k is the same under the one reordering of both), which is ggml's
    // normal RoPE, so the converter permutes nothing. `kv_b_proj` is split per head into
    // `attn_k_b` (the key rows, transposed) and `attn_v_b` for the absorbed MLA llama.cpp runs
    // ([`split_kv_b`]); files from before that split hold `attn_kv_b`, read as it is.
    gguf: Some(Gguf {
        layer_names: &[
            ("self_attn.q_a_proj", "attn_q_a"),
            ("self_attn.q_a_layernorm", "attn_q_a_norm"),
            ("self_attn.q_b_proj", "attn_q_b"),
            ("self_attn.kv_a_proj_with_mqa", "attn_kv_a_mqa"),
            ("self_attn.kv_a_layernorm", "attn_kv_a_norm"),
            ("self_attn.kv_b_proj", "attn_kv_b"),
            ("mlp.gate.e_score_correction_bias", "exp_probs_b.bias"),
            ("mlp.shared_experts.gate_proj", "ffn_gate_shexp"),
            ("mlp.shared_experts.up_proj", "ffn_up_shexp"),
            ("mlp.shared_experts.down_proj", "ffn_down_shexp"),
        ],
        read: read_gguf,
        write: write_gguf,
        split: split_kv_b,
        join: join_kv_b,
        ..Gguf::named("deepseek2")
    }),
    tiny: None,
};

/// The class defaults of the expert layout, which Kimi K2 changes.
pub struct ExpertDefaults {
    pub first_k_dense_replace: usize,
    pub routed_scaling_factor: f64,
    pub n_group: usize,
    pub topk_group: usize,
}

fn read(f: &Fields, c: &mut ModelConfig) -> Result<()> {
    read_with(f, c, &ExpertDefaults { first_k_dense_replace: 3, routed_scaling_factor: 2.5, n_group: 8, topk_group: 4 })
}

/// The latent attention sizes, the rope layout and the experts, with `defaults` for the fields
/// the two classes default differently.
pub fn read_with(f: &Fields, c: &mut ModelConfig, defaults: &ExpertDefaults) -> Result<()> {
    c.rope_interleaved = f.bool_or("rope_interleave", true)?;
    c.mla = Some(MlaSizes {
        q_lora_rank: if f.map.contains_key("q_lora_rank") { f.usize_opt("q_lora_rank")? } else { Some(1536) },
        kv_lora_rank: f.usize_or("kv_lora_rank", 512)?,
        qk_nope_head_dim: f.usize_or("qk_nope_head_dim", 128)?,
        qk_rope_head_dim: f.usize_or("qk_rope_head_dim", 64)?,
        v_head_dim: f.usize_or("v_head_dim", 128)?,
    });
    let num_experts = f.usize_or("n_routed_experts", 0)?;
    let first_dense = f.usize_or("first_k_dense_replace", defaults.first_k_dense_replace)?;
    let freq = f.usize_or("moe_layer_freq", 1)?.max(1);
    if let Some(scoring) = f.str_opt("scoring_func")?
        && scoring != "sigmoid"
    {
        return Err(Error::Config(format!(
            "{}: field scoring_func: only \"sigmoid\" routing is supported, got {scoring:?}",
            f.source
        )));
    }
    let expert = f.usize_or("moe_intermediate_size", 2048)?;
    let shared = f.usize_or("n_shared_experts", 1)?;
    // Each factor is below 2^40, the product need not be: refuse it rather than overflow.
    let shared_width = match shared {
        0 => None,
        _ => Some(expert.checked_mul(shared).filter(|w| *w < (1 << 40)).ok_or_else(|| {
            Error::Config(format!(
                "{}: fields moe_intermediate_size ({expert}) times n_shared_experts ({shared}) is too large",
                f.source
            ))
        })?),
    };
    let moe = (num_experts > 0).then_some(MoeConfig {
        shared_intermediate_size: shared_width,
        norm_topk_prob: f.bool_or("norm_topk_prob", true)?,
        routed_scaling_factor: f.f64_or("routed_scaling_factor", defaults.routed_scaling_factor)?,
        n_group: f.usize_or("n_group", defaults.n_group)?,
        topk_group: f.usize_or("topk_group", defaults.topk_group)?,
        ..MoeConfig::routed(RouterKind::SigmoidGroupLimited, num_experts, f.usize_or("num_experts_per_tok", 8)?, expert)
    });
    set_experts(c, moe, |i| i >= first_dense && i % freq == 0);
    Ok(())
}

/// llama.cpp's `LLAMA_EXPERT_GATING_FUNC_TYPE_SIGMOID` (`expert_gating_func`).
const GATING_SIGMOID: u64 = 2;

/// The converter writes `rope.scaling.yarn_log_multiplier` as `0.1 * mscale_all_dim` and
/// llama.cpp's deepseek2 divides it by 0.1 again ("for legacy reasons").
const YARN_LOG_MUL_PER_MSCALE: f64 = 0.1;

/// The DeepSeek fields of a file's config. The converter writes MLA as MQA over the latent
/// (`head_count_kv` 1, `key_length` = kv_lora_rank + rope dims, `value_length` = kv_lora_rank)
/// and the per-head sizes as `key_length_mla` / `value_length_mla`; files from before the
/// absorbed MLA have only `key_length` / `value_length`, then the per-head sizes.
fn read_gguf(m: &Metadata, c: &mut Map<String, Value>) -> Result<()> {
    let heads = m.need("attention.head_count")?;
    c.insert("num_key_value_heads".into(), json!(heads));
    let rope_dim = m.need("rope.dimension_count")?;
    let (qk, v) = match m.uint("attention.key_length_mla")? {
        Some(k) => (k, m.need("attention.value_length_mla")?),
        None => (m.need("attention.key_length")?, m.need("attention.value_length")?),
    };
    if qk <= rope_dim {
        return Err(m.error("attention.key_length_mla", format!("is {qk}, not more than the {rope_dim} rope dims")));
    }
    c.insert("q_lora_rank".into(), json!(m.uint("attention.q_lora_rank")?));
    c.insert("kv_lora_rank".into(), json!(m.need("attention.kv_lora_rank")?));
    c.insert("qk_nope_head_dim".into(), json!(qk - rope_dim));
    c.insert("qk_rope_head_dim".into(), json!(rope_dim));
    c.insert("v_head_dim".into(), json!(v));
    c.insert("head_dim".into(), json!(rope_dim));
    // llama.cpp rotates adjacent pairs (see `ARCH.gguf`).
    c.insert("rope_interleave".into(), json!(true));
    c.insert("first_k_dense_replace".into(), json!(m.need("leading_dense_block_count")?));
    c.insert("moe_layer_freq".into(), json!(1));
    c.insert("n_routed_experts".into(), json!(m.need("expert_count")?));
    c.insert("num_experts_per_tok".into(), json!(m.need("expert_used_count")?));
    c.insert("moe_intermediate_size".into(), json!(m.need("expert_feed_forward_length")?));
    c.insert("n_shared_experts".into(), json!(m.need("expert_shared_count")?));
    // llama.cpp's defaults when absent: no scaling, no renormalisation, one group.
    c.insert("routed_scaling_factor".into(), json!(m.float("expert_weights_scale")?.unwrap_or(1.0)));
    c.insert("norm_topk_prob".into(), json!(m.bool("expert_weights_norm")?.unwrap_or(false)));
    c.insert("n_group".into(), json!(m.uint("expert_group_count")?.unwrap_or(1)));
    c.insert("topk_group".into(), json!(m.uint("expert_group_used_count")?.unwrap_or(1)));
    match m.uint("expert_gating_func")? {
        Some(GATING_SIGMOID) => {
            c.insert("scoring_func".into(), json!("sigmoid"));
        }
        None => {
            return Err(m.error(
                "expert_gating_func",
                "is missing (llama.cpp then routes by softmax, as for DeepSeek-V2); only sigmoid routing (2) is read",
            ));
        }
        Some(other) => {
            return Err(m.error(
                "expert_gating_func",
                format!("is {other}; only sigmoid routing (2, DeepSeek-V3 and Kimi K2) is read"),
            ));
        }
    }
    c.insert("num_nextn_predict_layers".into(), json!(0));
    let yarn = c.get("rope_parameters").and_then(|r| r.get("rope_type")).and_then(Value::as_str) == Some("yarn");
    if yarn {
        let mul = m.float("rope.scaling.yarn_log_multiplier")?.filter(|&x| x != 0.0).ok_or_else(|| {
            m.error(
                "rope.scaling.yarn_log_multiplier",
                "is missing with YaRN (llama.cpp's deepseek2 then scales attention in a way no HF config does)",
            )
        })?;
        // Back to the f32 the converter started from (0.1 * 1.0 is not exactly 0.1 in f32).
        let mscale_all_dim = (mul / YARN_LOG_MUL_PER_MSCALE) as f32 as f64;
        let rope = c.get_mut("rope_parameters").and_then(Value::as_object_mut).expect("rope_parameters is set");
        // llama.cpp takes `mscale` equal to `mscale_all_dim` (see `write_gguf`).
        rope.insert("mscale".into(), json!(mscale_all_dim));
        rope.insert("mscale_all_dim".into(), json!(mscale_all_dim));
    }
    Ok(())
}

/// Writes the MLA sizes, the expert layout and routing and YaRN's log multiplier as
/// `DeepseekV2Model.set_gguf_parameters` does, and refuses what llama.cpp's deepseek2 would
/// compute otherwise.
fn write_gguf(c: &ModelConfig, w: &mut GgufWriter) -> Result<()> {
    let refuse = |what: String| Err(Error::input(format!("{}: {what}, so GGUF cannot hold it", c.model_type)));
    let u32v = |n: usize| GgufValue::U32(n as u32);
    let key = |k: &str| format!("deepseek2.{k}");
    let Some(mla) = c.mla else {
        return refuse("it has no MLA sizes".into());
    };
    if !c.rope_interleaved {
        return refuse(
            "its rope dims rotate as halves (rope_interleave: false), but llama.cpp's deepseek2 rotates \
             adjacent pairs of rows the converter keeps in order"
                .into(),
        );
    }
    let Some(moe) = c.moe else {
        return refuse("it has no routed experts, and llama.cpp's deepseek2 needs them".into());
    };
    if moe.router != RouterKind::SigmoidGroupLimited {
        return refuse(format!("its router is {:?}, not DeepSeek's sigmoid router", moe.router));
    }
    let leading = c.layers.iter().take_while(|l| !l.moe).count();
    if c.layers[leading..].iter().any(|l| !l.moe) {
        return refuse("its MoE layers are not all the layers after the first dense ones (moe_layer_freq 1)".into());
    }
    let shared = match moe.shared_intermediate_size {
        None => 0,
        Some(w) if w.is_multiple_of(moe.expert_intermediate_size) => w / moe.expert_intermediate_size,
        Some(w) => return refuse(format!("its shared expert width {w} is not a whole number of experts")),
    };
    // MLA as MQA over the latent, and the per-head sizes (see `read_gguf`).
    w.set(&key("attention.head_count_kv"), u32v(1));
    w.set(&key("attention.key_length"), u32v(mla.kv_lora_rank + mla.qk_rope_head_dim));
    w.set(&key("attention.value_length"), u32v(mla.kv_lora_rank));
    w.set(&key("attention.key_length_mla"), u32v(mla.qk_nope_head_dim + mla.qk_rope_head_dim));
    w.set(&key("attention.value_length_mla"), u32v(mla.v_head_dim));
    if let Some(q) = mla.q_lora_rank {
        w.set(&key("attention.q_lora_rank"), u32v(q));
    }
    w.set(&key("attention.kv_lora_rank"), u32v(mla.kv_lora_rank));
    w.set(&key("rope.dimension_count"), u32v(mla.qk_rope_head_dim));
    w.set(&key("leading_dense_block_count"), u32v(leading));
    w.set(&key("expert_shared_count"), u32v(shared));
    w.set(&key("expert_weights_scale"), GgufValue::F32(moe.routed_scaling_factor as f32));
    // (The converter writes the key only when true, llama.cpp's default being false.)
    if moe.norm_topk_prob {
        w.set(&key("expert_weights_norm"), GgufValue::Bool(true));
    }
    w.set(&key("expert_gating_func"), u32v(GATING_SIGMOID as usize));
    w.set(&key("expert_group_count"), u32v(moe.n_group));
    w.set(&key("expert_group_used_count"), u32v(moe.topk_group));
    if let RopeScaling::Yarn { mscale, mscale_all_dim, .. } = c.rope.global.scaling {
        // llama.cpp's deepseek2 multiplies the softmax scale by `(0.1 mscale_all_dim ln factor +
        // 1)^2`, as HF does, but takes `mscale` (the cos/sin factor is their ratio) to be
        // `mscale_all_dim`; and without `mscale_all_dim` it still scales the softmax by
        // `(0.1 ln factor + 1)^2`, which HF does not.
        if mscale_all_dim == 0.0 || mscale != mscale_all_dim {
            return refuse(format!(
                "YaRN with mscale {mscale} and mscale_all_dim {mscale_all_dim}, but llama.cpp's deepseek2 \
                 computes as if both were the same non-zero value"
            ));
        }
        w.set(
            &key("rope.scaling.yarn_log_multiplier"),
            GgufValue::F32((YARN_LOG_MUL_PER_MSCALE * mscale_all_dim) as f32),
        );
    }
    Ok(())
}

/// The layer of `model.layers.N.self_attn.kv_b_proj.weight`, or None for other parameters.
fn kv_b_layer(hf: &str) -> Option<usize> {
    hf.strip_prefix("model.layers.")?.strip_suffix(".self_attn.kv_b_proj.weight")?.parse().ok()
}

/// (heads, qk_nope_head_dim, v_head_dim, kv_lora_rank).
fn kv_b_sizes(c: &ModelConfig) -> Result<(usize, usize, usize, usize)> {
    let m = c.mla.ok_or_else(|| Error::input(format!("{}: kv_b_proj without MLA sizes", c.model_type)))?;
    Ok((c.num_attention_heads, m.qk_nope_head_dim, m.v_head_dim, m.kv_lora_rank))
}

/// `kv_b_proj` [heads * (nope + v), kv_lora_rank] split as the converter does for llama.cpp's
/// absorbed MLA (`DeepseekV2Model.modify_tensors`): per head, the key rows transposed,
/// `attn_k_b` [heads, kv_lora_rank, nope], and the value rows as they are, `attn_v_b` [heads, v,
/// kv_lora_rank] (row-major shapes; ggml lists them reversed).
pub fn split_kv_b(c: &ModelConfig, hf: &str, shape: &[usize], values: &[f32]) -> Split {
    let Some(layer) = kv_b_layer(hf) else {
        return Ok(None);
    };
    let (h, nope, v, r) = kv_b_sizes(c)?;
    if shape != [h * (nope + v), r] {
        return Err(Error::input(format!("{hf}: shape {shape:?} is not [{h} heads x ({nope} + {v}), {r}]")));
    }
    let (mut k_b, mut v_b) = (Vec::with_capacity(h * r * nope), Vec::with_capacity(h * v * r));
    for head in 0..h {
        let rows = head * (nope + v);
        for i in 0..r {
            k_b.extend((0..nope).map(|j| values[(rows + j) * r + i]));
        }
        v_b.extend_from_slice(&values[(rows + nope) * r..(rows + nope + v) * r]);
    }
    Ok(Some(vec![
        (format!("blk.{layer}.attn_k_b.weight"), vec![h, r, nope], k_b),
        (format!("blk.{layer}.attn_v_b.weight"), vec![h, v, r], v_b),
    ]))
}

/// `kv_b_proj` from a file's `attn_k_b` and `attn_v_b` (undoing [`split_kv_b`]); None for a file
/// with the older single `attn_kv_b` (read as it is) and for other parameters.
pub fn join_kv_b(c: &ModelConfig, hf: &str, file: &GgufFile) -> Joined {
    let Some(layer) = kv_b_layer(hf) else {
        return Ok(None);
    };
    let (k_name, v_name) = (format!("blk.{layer}.attn_k_b.weight"), format!("blk.{layer}.attn_v_b.weight"));
    if file.tensor(&k_name).is_none()
        && file.tensor(&v_name).is_none()
        && file.tensor(&format!("blk.{layer}.attn_kv_b.weight")).is_some()
    {
        return Ok(None);
    }
    let (h, nope, v, r) = kv_b_sizes(c)?;
    let part = |name: &str, want: [usize; 3]| -> Result<Vec<f32>> {
        let (values, shape) = file.dequantize(name)?;
        if shape != want {
            return Err(Error::format(
                &file.path,
                format!("tensor {name} has shape {shape:?}, but the config implies {want:?}"),
            ));
        }
        Ok(values)
    };
    let (k_b, v_b) = (part(&k_name, [h, r, nope])?, part(&v_name, [h, v, r])?);
    let mut kv_b = Vec::with_capacity(h * (nope + v) * r);
    for head in 0..h {
        let k = &k_b[head * r * nope..(head + 1) * r * nope];
        for j in 0..nope {
            kv_b.extend((0..r).map(|i| k[i * nope + j]));
        }
        kv_b.extend_from_slice(&v_b[head * v * r..(head + 1) * v * r]);
    }
    Ok(Some((kv_b, vec![k_name, v_name])))
}
