//! Reading a Hugging Face `config.json` into one validated [`ModelConfig`]: the numbers every
//! architecture needs under one set of names, each architecture's class defaults applied where a
//! field is absent, and the per-layer kinds derived the way each architecture derives them.
//!
//! The accepted `model_type`s are those of [`crate::models::registry`]; each architecture's own
//! fields are read in its file under `models/`, the shared ones in [`read`].

pub mod fields;
pub mod read;
pub mod rope;
pub mod shipped;

use std::path::Path;

use nn::attention::TemperatureTuning;
use nn::moe::SwigluClamp;
use tensor::GluActivation;

pub use rope::{RopeConfig, RopeSettings};
pub use shipped::{SHIPPED, ShippedConfig};

use crate::models::architecture::Architecture;
use crate::models::recipe::Recipe;
use crate::{Error, Result};

/// The architectures, as keys of [`crate::models::registry`] (in its order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    DeepseekV3,
    KimiK2,
    Olmo2,
    Gemma3,
    Mistral,
    Llama4,
    Qwen3,
    Qwen3Moe,
    SmolLM3,
    GptOss,
}

impl Family {
    /// The display name used in tables.
    pub fn name(self) -> &'static str {
        self.architecture().name()
    }

    /// The architecture's registry entry.
    pub fn architecture(self) -> &'static Architecture {
        crate::models::registry::of(self)
    }
}

/// How a layer attends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerAttention {
    /// Every earlier position (`full_attention`).
    Full,
    /// The last `sliding_window` positions (`sliding_attention`, Gemma 3's local layers).
    Sliding,
    /// Within blocks of `attention_chunk_size` (`chunked_attention`, Llama 4's RoPE layers).
    Chunked,
}

/// What one decoder layer is made of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayerKind {
    pub attention: LayerAttention,
    /// false on NoPE layers (SmolLM3 and Llama 4 every 4th layer).
    pub rope: bool,
    /// A mixture of experts instead of the dense feed-forward block.
    pub moe: bool,
}

/// Multi-head latent attention sizes (DeepSeek-V3, Kimi K2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MlaSizes {
    /// `q_lora_rank` (None: queries are projected directly).
    pub q_lora_rank: Option<usize>,
    pub kv_lora_rank: usize,
    pub qk_nope_head_dim: usize,
    pub qk_rope_head_dim: usize,
    pub v_head_dim: usize,
}

/// How a mixture of experts picks experts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouterKind {
    /// Qwen3-MoE: softmax over all experts, top-k, optionally renormalised.
    SoftmaxTopK,
    /// DeepSeek-V3 / Kimi K2 (`noaux_tc`): sigmoid scores, a correction bias for choosing only,
    /// group-limited top-k, normalised weights times `routed_scaling_factor`.
    SigmoidGroupLimited,
    /// Llama 4: top-1 by logit, the sigmoid score applied to the expert's input.
    Top1SigmoidInput,
    /// gpt-oss: logits with a learned bias, top-k, softmax over the chosen k.
    BiasedSoftmaxOverChosen,
}

/// Mixture-of-experts sizes and routing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MoeConfig {
    pub router: RouterKind,
    /// `n_routed_experts` / `num_experts` / `num_local_experts`.
    pub num_experts: usize,
    /// `num_experts_per_tok`.
    pub top_k: usize,
    /// Width of each routed expert (`moe_intermediate_size`; Llama 4's `intermediate_size`).
    pub expert_intermediate_size: usize,
    /// Width of the always-on shared expert, if any (DeepSeek: `moe_intermediate_size *
    /// n_shared_experts`; Llama 4: `intermediate_size`).
    pub shared_intermediate_size: Option<usize>,
    /// `norm_topk_prob`.
    pub norm_topk_prob: bool,
    /// `routed_scaling_factor` (1 where the family has none).
    pub routed_scaling_factor: f64,
    /// `n_group` / `topk_group` (1 / 1 where the family has no groups).
    pub n_group: usize,
    pub topk_group: usize,
}

/// OLMo 2's two changes for training stability (arXiv 2501.00656, section 3.3), each a switch so
/// that its effect can be measured alone (`examples/norm_placement.rs`). Released OLMo 2
/// configs have neither key and get both; `reordered_norm` and `qk_norm` are this library's
/// keys, not Hugging Face's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Olmo2Switches {
    /// Norms after each block, inside the residual (`x + norm(f(x))`); off: Llama's pre-norm
    /// (`x + f(norm(x))`).
    pub reordered_norm: bool,
    /// RMSNorm over the whole query and key projections; off: no QK-norm.
    pub qk_norm: bool,
}

/// Everything the architectures read from a config, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    pub family: Family,
    /// The `model_type` of the text decoder (`gemma3_text` for a nested `gemma3`).
    pub model_type: String,
    /// Where the config came from, for messages.
    pub source: String,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_key_value_heads: usize,
    /// `head_dim`, or `hidden_size / num_attention_heads` when the config has none.
    pub head_dim: usize,
    /// Width of the dense feed-forward layers (Llama 4: `intermediate_size_mlp`).
    pub dense_intermediate_size: usize,
    pub rms_norm_eps: f64,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// `hidden_act` / `hidden_activation`.
    pub activation: GluActivation,
    pub attention_bias: bool,
    pub rope: RopeConfig,
    /// Rope dims rotate as interleaved pairs (Llama 4; DeepSeek's `rope_interleave`).
    pub rope_interleaved: bool,
    pub sliding_window: Option<usize>,
    pub attention_chunk_size: Option<usize>,
    /// One entry per layer.
    pub layers: Vec<LayerKind>,
    /// Gemma: the softmax scale is `query_pre_attn_scalar^-0.5`.
    pub query_pre_attn_scalar: Option<f64>,
    pub attn_logit_softcapping: Option<f64>,
    pub final_logit_softcapping: Option<f64>,
    /// Llama 4 `use_qk_norm`: weightless L2 norm on RoPE layers.
    pub use_qk_norm: bool,
    /// Llama 4 `attn_temperature_tuning` on NoPE layers.
    pub temperature_tuning: Option<TemperatureTuning>,
    pub moe: Option<MoeConfig>,
    /// OLMo 2's norm placement and QK-norm switches (`Some` for OLMo 2 only).
    pub olmo2: Option<Olmo2Switches>,
    /// gpt-oss: a learned sink logit per head in every attention softmax.
    pub attention_sinks: bool,
    /// gpt-oss: experts with biases and the clamped SwiGLU (`swiglu_alpha`, `swiglu_limit`).
    pub swiglu_clamp: Option<SwigluClamp>,
    pub mla: Option<MlaSizes>,
    pub bos_token_id: Option<u32>,
    /// `pad_token_id`: every family's HF embedding is built with `padding_idx = pad_token_id`,
    /// so that row gets no gradient from the lookup (it still does through a tied head).
    pub pad_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    /// DeepSeek's multi-token-prediction layers (`num_nextn_predict_layers`), not part of the
    /// main model.
    pub mtp_layers: usize,
    /// `quantization_config`: weights the release stores quantized in its safetensors.
    pub quantization: Option<WeightQuantization>,
}

/// The block-quantized safetensors layouts releases ship (`quantization_config.quant_method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightQuantization {
    /// gpt-oss (`mxfp4`): the routed experts as `*_blocks` (E2M1 codes) and `*_scales` (E8M0),
    /// 32 weights per scale.
    Mxfp4,
    /// DeepSeek-V3 and Kimi K2 (`fp8`, `fmt: e4m3`): each projection weight as E4M3 bytes with
    /// one f32 `weight_scale_inv` per tile of `weight_block_size` [rows, cols].
    Fp8 { block: [usize; 2] },
}

impl ModelConfig {
    /// Reads `config.json` from a model directory, or a json file given directly.
    pub fn from_path(path: &Path) -> Result<ModelConfig> {
        let file = if path.is_dir() { path.join("config.json") } else { path.to_path_buf() };
        let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
        ModelConfig::from_json_str(&text, &file.display().to_string())
    }

    /// Parses config text; `source` names it in messages.
    pub fn from_json_str(text: &str, source: &str) -> Result<ModelConfig> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::Config(format!("{source}: not valid JSON: {e}")))?;
        let map = value.as_object().ok_or_else(|| Error::Config(format!("{source}: expected a JSON object")))?;
        read::parse(map, source)
    }

    /// The architecture this config describes.
    pub fn architecture(&self) -> &'static Architecture {
        self.family.architecture()
    }

    /// The wiring this config asks for: its architecture's recipe, as the config may change it.
    pub fn recipe(&self) -> Recipe {
        let arch = self.architecture();
        (arch.configure)(self, arch.recipe)
    }

    /// The layers that use a mixture of experts.
    pub fn moe_layer_count(&self) -> usize {
        self.layers.iter().filter(|l| l.moe).count()
    }

    /// The softmax scale of standard attention layers.
    pub fn attention_scale(&self) -> f64 {
        match self.query_pre_attn_scalar {
            Some(s) => s.powf(-0.5),
            None => (self.head_dim as f64).powf(-0.5),
        }
    }
}
