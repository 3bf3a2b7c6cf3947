//! Pieces every architecture is made of, and the one way they are put together ([`build`]): a
//! [`Recipe`] says which pieces a family uses (attention kind, QK-norm, norm placement and
//! weights, embedding scale, experts and how checkpoints store them); the config's layer kinds
//! say which layers are RoPE or NoPE, windowed or chunked, dense or mixtures of experts.
//! Nothing here knows a family.

use nn::attention::{AttentionConfig, GroupedQueryAttention, MaskKind, MlaConfig, MultiHeadLatentAttention, QkNorm};
use nn::rope::{Rope, RopeScaling, yarn_get_mscale};
use nn::{Embedding, GatedFeedForward, Init, Linear, RmsNorm};

use super::blocks::{AttentionBlock, FeedForwardBlock};
use super::decoder::{CausalLm, DecoderLayer, LayerNorms};
use crate::config::{LayerAttention, LayerKind, ModelConfig};
use crate::{Error, Result};

/// How a layer attends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttentionKind {
    /// Multi-head attention with `num_key_value_heads` shared key/value heads (MHA, GQA, MQA).
    Standard,
    /// Multi-head latent attention (DeepSeek-V2 onwards): keys and values from a low-rank
    /// latent, a shared RoPE key ([`crate::config::MlaSizes`]).
    Latent,
}

/// How queries and keys are normalised before their dot products.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QkNormKind {
    None,
    /// RMSNorm over each head's `head_dim`, one weight vector shared by the heads, before RoPE
    /// (Qwen3, Gemma 3; with Gemma's `(1 + w)` weights where the recipe's norms have them).
    PerHead,
    /// RMSNorm over the whole query and key projections before they are split into heads (OLMo 2).
    WholeProjection,
    /// A weightless L2 norm after RoPE, on RoPE layers when the config's `use_qk_norm` says so
    /// (Llama 4).
    L2AfterRope,
}

/// The weights of a family's RMSNorms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NormWeights {
    /// `x_hat * w`, weights starting at 1.
    Plain,
    /// Gemma's `x_hat * (1 + w)`, weights starting at 0.
    UnitOffset,
}

/// Where a layer normalises: the residual wiring of [`LayerNorms`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// `x + f(norm(x))` (GPT-2 onwards, Llama, Qwen, Mistral, SmolLM3, DeepSeek, gpt-oss).
    Pre,
    /// `x + norm(f(x))`: OLMo 2's reordered norm, the block inputs left unnormalised.
    Post,
    /// `x + norm(f(norm(x)))`: Gemma 3's four norms per layer.
    Sandwich,
}

impl Placement {
    /// How tables name it.
    pub fn name(self) -> &'static str {
        match self {
            Placement::Pre => "pre-norm",
            Placement::Post => "post-norm",
            Placement::Sandwich => "sandwich",
        }
    }
}

/// A factor on the token embeddings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmbedScale {
    None,
    /// `sqrt(hidden_size)` (Gemma).
    SqrtHidden,
}

/// How a checkpoint stores the routed experts (this library keeps them stacked, [E, out, in]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpertStorage {
    /// One tensor per expert and projection (`mlp.experts.{e}.gate_proj.weight`).
    PerExpert,
    /// Fused `gate_up_proj` [E, H, 2I] with gate's half first, `down_proj` [E, I, H] (Llama 4).
    FusedHalves,
    /// Fused `gate_up_proj` with gate and up columns interleaved, and fused biases (gpt-oss).
    FusedInterleaved,
}

/// A family's mixture-of-experts block: the Hugging Face names of its router and shared expert,
/// and how its checkpoints store the experts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExpertsRecipe {
    pub router: &'static str,
    pub shared: &'static str,
    pub storage: ExpertStorage,
}

/// What sets a family's wiring apart. The sizes, the layer kinds (RoPE or NoPE, full, windowed
/// or chunked, dense or experts) and the numbers come from the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recipe {
    pub attention: AttentionKind,
    pub qk_norm: QkNormKind,
    /// A learned logit per head in every attention softmax's denominator (gpt-oss).
    pub sinks: bool,
    pub placement: Placement,
    pub norm_weights: NormWeights,
    pub embed_scale: EmbedScale,
    /// Hugging Face's name for the feed-forward block: `mlp`, or `feed_forward` in Llama 4.
    pub ffn_name: &'static str,
    /// The mixture-of-experts block of the layers the config marks; `None` for dense families.
    pub experts: Option<ExpertsRecipe>,
}

/// The plain Llama-style recipe: standard attention, pre-norm, no QK-norm, plain norms,
/// unscaled embeddings, dense SwiGLU. The others are written as changes to it.
pub const LLAMA_STYLE: Recipe = Recipe {
    attention: AttentionKind::Standard,
    qk_norm: QkNormKind::None,
    sinks: false,
    placement: Placement::Pre,
    norm_weights: NormWeights::Plain,
    embed_scale: EmbedScale::None,
    ffn_name: "mlp",
    experts: None,
};

/// The rotary embedding of a layer over `dim` rotated dims: `None` on NoPE layers; Gemma 3's
/// sliding layers use the local base.
pub fn rope_for(config: &ModelConfig, layer: &LayerKind, dim: usize) -> Option<Rope> {
    if !layer.rope {
        return None;
    }
    let settings = match (&config.rope.local, layer.attention) {
        (Some(local), LayerAttention::Sliding) => local,
        _ => &config.rope.global,
    };
    Some(Rope::new(dim, settings.theta, &settings.scaling, config.rope_interleaved))
}

/// The mask of a layer kind.
pub fn mask_for(config: &ModelConfig, layer: &LayerKind) -> MaskKind {
    match layer.attention {
        LayerAttention::Full => MaskKind::Causal,
        LayerAttention::Sliding => {
            config.sliding_window.map_or(MaskKind::Causal, |window| MaskKind::Sliding { window })
        }
        LayerAttention::Chunked => {
            config.attention_chunk_size.map_or(MaskKind::Causal, |chunk| MaskKind::Chunked { chunk })
        }
    }
}

/// The QK-norm module a recipe's kind gives a layer.
fn qk_norm_for(config: &ModelConfig, recipe: &Recipe, layer: &LayerKind) -> QkNorm {
    let eps = config.rms_norm_eps;
    match recipe.qk_norm {
        QkNormKind::None => QkNorm::None,
        QkNormKind::PerHead => QkNorm::PerHead { eps, gemma: recipe.norm_weights == NormWeights::UnitOffset },
        QkNormKind::WholeProjection => QkNorm::WholeProjection { eps },
        QkNormKind::L2AfterRope if config.use_qk_norm && layer.rope => QkNorm::L2AfterRope { eps },
        QkNormKind::L2AfterRope => QkNorm::None,
    }
}

/// Standard attention (MHA/GQA/MQA) for a layer, with the given QK-norm.
pub fn attention(
    config: &ModelConfig,
    layer: &LayerKind,
    qk_norm: QkNorm,
    init: &mut Init,
) -> Result<GroupedQueryAttention> {
    let tuning = if layer.rope { None } else { config.temperature_tuning };
    Ok(GroupedQueryAttention::new(
        AttentionConfig {
            hidden_size: config.hidden_size,
            num_heads: config.num_attention_heads,
            num_kv_heads: config.num_key_value_heads,
            head_dim: config.head_dim,
            bias: config.attention_bias,
            qk_norm,
            rope: rope_for(config, layer, config.head_dim),
            mask: mask_for(config, layer),
            scale: config.attention_scale(),
            softcap: config.attn_logit_softcapping,
            temperature_tuning: tuning,
        },
        init,
    )?)
}

/// Multi-head latent attention for a layer. Its softmax scale is `qk_head_dim^-0.5`, times
/// `mscale^2` when YaRN extends the context (DeepSeek-V3's `softmax_scale`).
pub fn latent_attention(config: &ModelConfig, layer: &LayerKind, init: &mut Init) -> Result<MultiHeadLatentAttention> {
    let source = &config.source;
    let sizes = config.mla.ok_or_else(|| {
        Error::Config(format!("{source}: latent attention needs the MLA sizes (kv_lora_rank, qk_rope_head_dim, ...)"))
    })?;
    let mut scale = ((sizes.qk_nope_head_dim + sizes.qk_rope_head_dim) as f64).powf(-0.5);
    if let RopeScaling::Yarn { factor, mscale_all_dim, .. } = config.rope.global.scaling
        && mscale_all_dim != 0.0
    {
        let m = yarn_get_mscale(factor, mscale_all_dim);
        scale *= m * m;
    }
    let rope = rope_for(config, layer, sizes.qk_rope_head_dim).ok_or_else(|| {
        Error::Config(format!("{source}: field no_rope_layers: latent attention layers always use RoPE"))
    })?;
    Ok(MultiHeadLatentAttention::new(
        MlaConfig {
            hidden_size: config.hidden_size,
            num_heads: config.num_attention_heads,
            q_lora_rank: sizes.q_lora_rank,
            kv_lora_rank: sizes.kv_lora_rank,
            qk_nope_head_dim: sizes.qk_nope_head_dim,
            qk_rope_head_dim: sizes.qk_rope_head_dim,
            v_head_dim: sizes.v_head_dim,
            rms_norm_eps: config.rms_norm_eps,
            rope,
            mask: mask_for(config, layer),
            scale,
        },
        init,
    )?)
}

/// The dense gated feed-forward block of `width`.
pub fn dense_ffn(config: &ModelConfig, width: usize, init: &mut Init) -> Result<GatedFeedForward> {
    Ok(GatedFeedForward::new(config.hidden_size, width, config.activation, init)?)
}

/// An RMSNorm over `dim` with the config's eps.
pub fn norm(config: &ModelConfig, dim: usize, weights: NormWeights, init: &mut Init) -> Result<RmsNorm> {
    Ok(match weights {
        NormWeights::Plain => RmsNorm::new(dim, config.rms_norm_eps, init)?,
        NormWeights::UnitOffset => RmsNorm::gemma(dim, config.rms_norm_eps, init)?,
    })
}

/// A layer's norms for a placement, in the order Hugging Face names them.
pub fn layer_norms(
    config: &ModelConfig,
    placement: Placement,
    weights: NormWeights,
    init: &mut Init,
) -> Result<LayerNorms> {
    let mut n = || norm(config, config.hidden_size, weights, init);
    Ok(match placement {
        Placement::Pre => LayerNorms::PreNorm { input_layernorm: n()?, post_attention_layernorm: n()? },
        Placement::Post => LayerNorms::PostNorm { post_attention_layernorm: n()?, post_feedforward_layernorm: n()? },
        Placement::Sandwich => LayerNorms::Sandwich {
            input_layernorm: n()?,
            post_attention_layernorm: n()?,
            pre_feedforward_layernorm: n()?,
            post_feedforward_layernorm: n()?,
        },
    })
}

/// The model a config describes, wired as `recipe` says: per layer the attention block (with
/// its QK-norm and sinks), the dense or mixture-of-experts feed-forward block the layer kind
/// asks for, and the norms where the recipe places them; then embedding, final norm and head.
pub fn build(config: &ModelConfig, recipe: &Recipe, init: &mut Init) -> Result<CausalLm> {
    let layers = config
        .layers
        .iter()
        .enumerate()
        .map(|(i, layer)| {
            let self_attn: Box<dyn AttentionBlock> = match recipe.attention {
                AttentionKind::Standard => {
                    let attn = attention(config, layer, qk_norm_for(config, recipe, layer), init)?;
                    Box::new(if recipe.sinks { attn.with_sinks(init)? } else { attn })
                }
                AttentionKind::Latent => Box::new(latent_attention(config, layer, init)?),
            };
            let ffn: Box<dyn FeedForwardBlock> = match (layer.moe, &recipe.experts) {
                (false, _) => Box::new(dense_ffn(config, config.dense_intermediate_size, init)?),
                (true, Some(experts)) => Box::new(sparse_moe(config, experts, init)?),
                (true, None) => {
                    return Err(Error::Config(format!(
                        "{}: layer {i} is marked as a mixture of experts, which {} has none of",
                        config.source, config.model_type
                    )));
                }
            };
            Ok(DecoderLayer {
                self_attn,
                ffn,
                ffn_name: recipe.ffn_name,
                norms: layer_norms(config, recipe.placement, recipe.norm_weights, init)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let embed_scale = match recipe.embed_scale {
        EmbedScale::None => None,
        EmbedScale::SqrtHidden => Some((config.hidden_size as f64).sqrt()),
    };
    assemble(config, layers, recipe.norm_weights, embed_scale, init)
}

/// Embedding, layers, final norm and output head (tied to the embedding when the config says so).
pub fn assemble(
    config: &ModelConfig,
    layers: Vec<DecoderLayer>,
    norm_weights: NormWeights,
    embed_scale: Option<f64>,
    init: &mut Init,
) -> Result<CausalLm> {
    Ok(CausalLm {
        embed_tokens: Embedding::new(config.vocab_size, config.hidden_size, init)?.with_padding(config.pad_token_id),
        embed_scale,
        layers,
        norm: norm(config, config.hidden_size, norm_weights, init)?,
        lm_head: if config.tie_word_embeddings {
            None
        } else {
            Some(Linear::new(config.hidden_size, config.vocab_size, false, init)?)
        },
        final_logit_softcap: config.final_logit_softcapping,
        kv_dtype: None,
    })
}

/// The mixture-of-experts block a config describes, its router and shared expert under the
/// names `names` gives.
pub fn sparse_moe(config: &ModelConfig, names: &ExpertsRecipe, init: &mut Init) -> Result<nn::moe::SparseMoe> {
    use crate::config::RouterKind as Kind;
    use nn::moe::{Experts, MoeRouter, RouterKind, SparseMoe};
    let moe = config.moe.ok_or_else(|| {
        Error::Config(format!(
            "{}: a mixture-of-experts layer needs the expert settings (num_experts_per_tok and the number of experts)",
            config.source
        ))
    })?;
    let kind = match moe.router {
        Kind::SoftmaxTopK => RouterKind::SoftmaxTopK { norm_topk_prob: moe.norm_topk_prob },
        Kind::SigmoidGroupLimited => RouterKind::SigmoidGroupLimited {
            n_group: moe.n_group,
            topk_group: moe.topk_group,
            routed_scaling_factor: moe.routed_scaling_factor,
            norm_topk_prob: moe.norm_topk_prob,
        },
        Kind::Top1SigmoidInput => RouterKind::Top1SigmoidInput,
        Kind::BiasedSoftmaxOverChosen => RouterKind::BiasedSoftmaxOverChosen,
    };
    let (e, h, i) = (moe.num_experts, config.hidden_size, moe.expert_intermediate_size);
    let experts = match config.swiglu_clamp {
        Some(clamp) => Experts::clamped_swiglu(e, h, i, clamp, init)?,
        None => Experts::new(e, h, i, config.activation, init)?,
    };
    Ok(SparseMoe {
        router: MoeRouter::new(kind, moe.num_experts, moe.top_k, config.hidden_size, init)?,
        experts,
        shared: moe.shared_intermediate_size.map(|w| dense_ffn(config, w, init)).transpose()?,
        router_name: names.router,
        shared_name: names.shared,
    })
}

#[cfg(test)]
mod tests {
    use nn::Init;
    use tensor::Device;

    use crate::Error;
    use crate::config::ModelConfig;
    use crate::models::differences::probe_config;
    use crate::models::registry;

    fn build(config: &ModelConfig) -> crate::Result<()> {
        crate::models::build(config, &mut Init::placeholders(&Device::cpu())).map(|_| ())
    }

    /// A config that cannot describe the model its recipe builds is a config error naming what
    /// is missing, not a tensor shape error.
    #[test]
    fn inconsistent_configs_are_config_errors() {
        let deepseek = probe_config(registry::of(crate::config::Family::DeepseekV3)).expect("probe config");
        assert!(build(&deepseek).is_ok());
        let mut no_latent = deepseek.clone();
        no_latent.mla = None;
        assert!(matches!(build(&no_latent), Err(Error::Config(m)) if m.contains("kv_lora_rank")));
        let mut no_experts = deepseek.clone();
        no_experts.moe = None;
        assert!(matches!(build(&no_experts), Err(Error::Config(m)) if m.contains("num_experts_per_tok")));
        let mut dense = probe_config(registry::of(crate::config::Family::Qwen3)).expect("probe config");
        dense.layers[1].moe = true;
        assert!(matches!(build(&dense), Err(Error::Config(m)) if m.contains("layer 1")));
    }
}
