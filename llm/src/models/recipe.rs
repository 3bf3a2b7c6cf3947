//! Pieces every recipe draws on: the RoPE and mask a layer kind gets, a standard attention
//! block, the dense feed-forward block, norms, and the embedding/final-norm/head around the
//! layers. Recipes choose among them; nothing here knows a family.

use nn::attention::{AttentionConfig, GroupedQueryAttention, MaskKind, QkNorm};
use nn::rope::Rope;
use nn::{Embedding, GatedFeedForward, Init, Linear, RmsNorm};
use tensor::Result;

use super::decoder::{CausalLm, DecoderLayer, LayerNorms};
use crate::config::{LayerAttention, LayerKind, ModelConfig};

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

/// Standard attention (MHA/GQA/MQA) for a layer, with the given QK-norm.
pub fn attention(
    config: &ModelConfig,
    layer: &LayerKind,
    qk_norm: QkNorm,
    init: &mut Init,
) -> Result<GroupedQueryAttention> {
    let tuning = if layer.rope { None } else { config.temperature_tuning };
    GroupedQueryAttention::new(
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
    )
}

/// The dense gated feed-forward block of `width`.
pub fn dense_ffn(config: &ModelConfig, width: usize, init: &mut Init) -> Result<GatedFeedForward> {
    GatedFeedForward::new(config.hidden_size, width, config.activation, init)
}

/// The weights of a family's RMSNorms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NormWeights {
    /// `x_hat * w`, weights starting at 1.
    Plain,
    /// Gemma's `x_hat * (1 + w)`, weights starting at 0.
    UnitOffset,
}

/// Where a layer normalises: the residual wiring of [`LayerNorms`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Placement {
    /// `x + f(norm(x))` (GPT-2 onwards, Llama, Qwen, Mistral, SmolLM3, DeepSeek, gpt-oss).
    Pre,
    /// `x + norm(f(x))`: OLMo 2's reordered norm, the block inputs left unnormalised.
    Post,
    /// `x + norm(f(norm(x)))`: Gemma 3's four norms per layer.
    Sandwich,
}

/// What sets a dense decoder family apart; layers, embedding, final norm and head are otherwise
/// the shared ones ([`dense`]).
#[derive(Clone, Copy, Debug)]
pub struct DenseRecipe {
    pub qk_norm: QkNorm,
    pub placement: Placement,
    pub norm_weights: NormWeights,
    /// A factor on the embeddings (Gemma's `sqrt(hidden_size)`).
    pub embed_scale: Option<f64>,
}

/// The plain Llama-style recipe: pre-norm, no QK-norm, plain norms, unscaled embeddings
/// (Mistral; SmolLM3, whose NoPE layers come from its config).
pub const LLAMA_STYLE: DenseRecipe = DenseRecipe {
    qk_norm: QkNorm::None,
    placement: Placement::Pre,
    norm_weights: NormWeights::Plain,
    embed_scale: None,
};

/// A dense decoder: every layer standard attention with the recipe's QK-norm (RoPE or NoPE and
/// the mask as the config's layer kinds say) and the dense gated feed-forward block, wired as
/// the recipe places its norms.
pub fn dense(config: &ModelConfig, recipe: &DenseRecipe, init: &mut Init) -> Result<CausalLm> {
    let layers = config
        .layers
        .iter()
        .map(|layer| {
            Ok(DecoderLayer {
                self_attn: Box::new(attention(config, layer, recipe.qk_norm, init)?),
                ffn: Box::new(dense_ffn(config, config.dense_intermediate_size, init)?),
                ffn_name: "mlp",
                norms: layer_norms(config, recipe.placement, recipe.norm_weights, init)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    assemble(config, layers, recipe.norm_weights, recipe.embed_scale, init)
}

/// An RMSNorm over `dim` with the config's eps.
pub fn norm(config: &ModelConfig, dim: usize, weights: NormWeights, init: &mut Init) -> Result<RmsNorm> {
    match weights {
        NormWeights::Plain => RmsNorm::new(dim, config.rms_norm_eps, init),
        NormWeights::UnitOffset => RmsNorm::gemma(dim, config.rms_norm_eps, init),
    }
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

/// The two norms of a pre-norm layer.
pub fn pre_norms(config: &ModelConfig, init: &mut Init) -> Result<LayerNorms> {
    layer_norms(config, Placement::Pre, NormWeights::Plain, init)
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
    })
}

/// The mixture-of-experts block a config describes; `names` are the HF names of the router and
/// the shared expert in this family.
pub fn sparse_moe(
    config: &ModelConfig,
    names: (&'static str, &'static str),
    init: &mut Init,
) -> Result<nn::moe::SparseMoe> {
    use crate::config::RouterKind as Kind;
    use nn::moe::{Experts, MoeRouter, RouterKind, SparseMoe};
    let moe = config
        .moe
        .ok_or_else(|| tensor::Error::shape("moe", format!("{}: a MoE layer needs expert settings", config.source)))?;
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
        router_name: names.0,
        shared_name: names.1,
    })
}
