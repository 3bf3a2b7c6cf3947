//! Real-scale anatomy from a config alone, no weights: parameter counts (total, active per
//! token, by component), KV-cache bytes per token and at a context length, and FLOPs per token.
//! The parameters are counted on the model itself: built from the config with shape-only
//! weights (nothing allocated) and walked by name, so the counts follow the recipes.
//!
//! Counting rules (the ones behind the published figures): weights, plus the biases a config
//! declares (gpt-oss's attention, router and expert biases, and its attention sinks; no other
//! shipped config has any); RMSNorm vectors included; router weights included; DeepSeek's correction-bias buffer and its
//! multi-token-prediction layer excluded; a tied output head counted once. "Active" counts, as
//! DeepSeek states them for "37B", include the embedding matrix and the output head in full,
//! plus everything a token's forward pass multiplies by: attention, norms, dense layers, the
//! router, the shared expert and the k chosen routed experts of each MoE layer.

use nn::{Init, ModuleExt};
use serde_json::{Value, json};
use tensor::{DType, Device};

use crate::Result;
use crate::config::{Family, LayerAttention, ModelConfig};
use crate::models::recipe::Recipe;

/// Parameters by component.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Parameters {
    pub embedding: u64,
    pub attention: u64,
    pub norms: u64,
    pub dense_ffn: u64,
    pub routers: u64,
    pub shared_experts: u64,
    /// All routed experts (total), or the chosen ones (active).
    pub routed_experts: u64,
    pub head: u64,
}

impl Parameters {
    pub fn total(&self) -> u64 {
        self.embedding
            + self.attention
            + self.norms
            + self.dense_ffn
            + self.routers
            + self.shared_experts
            + self.routed_experts
            + self.head
    }
}

/// The anatomy of one config.
#[derive(Clone, Debug)]
pub struct Anatomy {
    pub family: Family,
    pub model_type: String,
    pub total: Parameters,
    pub active: Parameters,
    /// Numbers each layer's cache grows by per token: (full-attention layers, sliding-window
    /// layers, chunked layers).
    pub kv_numbers_per_token: (u64, u64, u64),
    pub sliding_window: Option<usize>,
    pub attention_chunk_size: Option<usize>,
    /// Multiply-adds per token through the weights (2 FLOPs each), without attention scores.
    pub matmul_flops_per_token: u64,
    /// Per key position attended, per token: QK^T and PV FLOPs summed over layers and heads,
    /// split like the cache (full, sliding, chunked). MLA is counted on the absorbed path that
    /// cached decoding runs ([`mla_absorbed_flops_per_position`]).
    pub attention_flops_per_position: (u64, u64, u64),
    pub attention_kind: String,
    pub norm_placement: &'static str,
    pub positions: String,
    pub experts: String,
}

/// Where a parameter's count goes, by its Hugging Face name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Embedding,
    Attention,
    Norm,
    DenseFfn,
    Router,
    Shared,
    /// A stacked tensor of all routed experts ([E, ...]).
    Routed,
    Head,
    /// Not a parameter as the published counts have them (DeepSeek's correction bias, a buffer).
    Uncounted,
}

/// The component a parameter belongs to: `self_attn.*` (with its QK-norm, sinks and MLA's
/// latent norms) is attention; the feed-forward block's router, shared expert and stacked
/// experts are named by the recipe; the rest of a layer is its norms.
fn part(name: &str, recipe: &Recipe) -> Part {
    let Some(rest) = name.strip_prefix("model.layers.") else {
        return match name {
            "lm_head.weight" => Part::Head,
            n if n.starts_with("model.embed_tokens.") => Part::Embedding,
            _ => Part::Norm,
        };
    };
    let within = rest.split_once('.').map_or(rest, |(_, w)| w);
    let (block, param) = within.split_once('.').unwrap_or((within, ""));
    if block == "self_attn" {
        return Part::Attention;
    }
    if block != recipe.ffn_name {
        return Part::Norm;
    }
    let sub = param.split('.').next().unwrap_or("");
    match recipe.experts {
        Some(_) if sub == "experts" => Part::Routed,
        Some(e) if sub == e.router && param.ends_with("e_score_correction_bias") => Part::Uncounted,
        Some(e) if sub == e.router => Part::Router,
        Some(e) if sub == e.shared => Part::Shared,
        _ => Part::DenseFfn,
    }
}

/// Parameters by component, total and active, from the model the config builds with
/// shape-only weights (placeholders: nothing is allocated, even at a trillion parameters)
/// walked by name. Active routed experts are the `top_k` of `num_experts`.
fn parameters(c: &ModelConfig) -> Result<(Parameters, Parameters)> {
    let model = crate::models::build(c, &mut Init::placeholders(&Device::cpu()))?;
    let recipe = c.recipe();
    let (mut total, mut active) = (Parameters::default(), Parameters::default());
    for (name, var) in model.named_parameters() {
        let n = var.dims().iter().map(|&d| d as u64).product::<u64>();
        let (slot, chosen) = match part(&name, &recipe) {
            Part::Embedding => (&mut total.embedding, &mut active.embedding),
            Part::Attention => (&mut total.attention, &mut active.attention),
            Part::Norm => (&mut total.norms, &mut active.norms),
            Part::DenseFfn => (&mut total.dense_ffn, &mut active.dense_ffn),
            Part::Router => (&mut total.routers, &mut active.routers),
            Part::Shared => (&mut total.shared_experts, &mut active.shared_experts),
            Part::Routed => {
                let k_of_e = c.moe.map_or((1, 1), |m| (m.top_k as u64, m.num_experts as u64));
                total.routed_experts += n;
                active.routed_experts += n / k_of_e.1 * k_of_e.0;
                continue;
            }
            Part::Head => (&mut total.head, &mut active.head),
            Part::Uncounted => continue,
        };
        *slot += n;
        *chosen += n;
    }
    Ok((total, active))
}

/// Attention FLOPs per attended position per layer for MLA on the path decoding runs: the
/// absorbed one (`nn::attention::mla`), where each head scores its query against the cached
/// latent plus rope key (`kv_lora_rank + qk_rope_head_dim`) and sums the latents
/// (`kv_lora_rank`), then applies `W_uv` once per token (counted with the weights). That is
/// `2 * h * (512 + 64 + 512)` for DeepSeek-V3, about 3.4x the expanded path's
/// `2 * h * (128 + 64 + 128)`: the compute MLA pays for its small cache (DeepSeek-V2, arXiv
/// 2405.04434, section 2.1.3).
pub fn mla_absorbed_flops_per_position(heads: usize, m: &crate::config::MlaSizes) -> u64 {
    2 * heads as u64 * (2 * m.kv_lora_rank + m.qk_rope_head_dim) as u64
}

/// The same for the expanded path (keys and values rebuilt per head, as training runs it):
/// `2 * h * (qk_nope + qk_rope + v_head_dim)`.
pub fn mla_expanded_flops_per_position(heads: usize, m: &crate::config::MlaSizes) -> u64 {
    2 * heads as u64 * (m.qk_nope_head_dim + m.qk_rope_head_dim + m.v_head_dim) as u64
}

impl Anatomy {
    /// The anatomy of a config that builds, as every shipped one does ([`Anatomy::try_of`]
    /// for a config from elsewhere).
    pub fn of(c: &ModelConfig) -> Anatomy {
        Anatomy::try_of(c).unwrap_or_else(|e| panic!("{}: {e}", c.source))
    }

    /// The anatomy of a config, or why its model cannot be built.
    pub fn try_of(c: &ModelConfig) -> Result<Anatomy> {
        let d = c.hidden_size as u64;
        let v = c.vocab_size as u64;
        let (total, active) = parameters(c)?;
        let (mut kv_full, mut kv_sliding, mut kv_chunked) = (0u64, 0u64, 0u64);
        let (mut att_full, mut att_sliding, mut att_chunked) = (0u64, 0u64, 0u64);
        let kv_per_layer = match &c.mla {
            Some(m) => (m.kv_lora_rank + m.qk_rope_head_dim) as u64,
            None => 2 * (c.num_key_value_heads * c.head_dim) as u64,
        };
        // QK^T and PV multiply-adds per attended position, times 2 FLOPs.
        let att_per_layer = match &c.mla {
            Some(m) => mla_absorbed_flops_per_position(c.num_attention_heads, m),
            None => 2 * c.num_attention_heads as u64 * 2 * c.head_dim as u64,
        };
        for layer in &c.layers {
            let (kv, att) = match layer.attention {
                LayerAttention::Full => (&mut kv_full, &mut att_full),
                LayerAttention::Sliding => (&mut kv_sliding, &mut att_sliding),
                LayerAttention::Chunked => (&mut kv_chunked, &mut att_chunked),
            };
            *kv += kv_per_layer;
            *att += att_per_layer;
        }
        // Everything a token multiplies by, except the embedding (a lookup).
        let matmul_flops_per_token =
            2 * (active.total() - active.embedding - active.norms) + if c.tie_word_embeddings { 2 * v * d } else { 0 };
        let mut attention_kind = match &c.mla {
            Some(m) => format!("MLA, latent {} + rope {}", m.kv_lora_rank, m.qk_rope_head_dim),
            None => match (c.num_attention_heads, c.num_key_value_heads) {
                (h, kv) if h == kv => format!("MHA {h} heads"),
                (h, 1) => format!("MQA {h}:1"),
                (h, kv) => format!("GQA {h}:{kv}"),
            },
        };
        if c.attention_sinks {
            attention_kind.push_str(" + sinks");
        }
        let norm_placement = c.recipe().placement.name();
        let nope = c.layers.iter().filter(|l| !l.rope).count();
        let sliding = c.layers.iter().filter(|l| l.attention == LayerAttention::Sliding).count();
        let chunked = c.layers.iter().filter(|l| l.attention == LayerAttention::Chunked).count();
        let mut positions =
            if nope == 0 { "RoPE".to_string() } else { format!("RoPE, NoPE on {nope}/{} layers", c.layers.len()) };
        if sliding > 0 {
            positions.push_str(&format!(", window {} on {sliding}/{}", c.sliding_window.unwrap_or(0), c.layers.len()));
        }
        if chunked > 0 {
            positions.push_str(&format!(
                ", chunks of {} on {chunked}/{}",
                c.attention_chunk_size.unwrap_or(0),
                c.layers.len()
            ));
        }
        let experts = match &c.moe {
            Some(m) if c.moe_layer_count() > 0 => format!(
                "{} routed, {} per token{}, on {}/{} layers",
                m.num_experts,
                m.top_k,
                if m.shared_intermediate_size.is_some() { " + 1 shared" } else { "" },
                c.moe_layer_count(),
                c.layers.len()
            ),
            _ => "dense".to_string(),
        };
        Ok(Anatomy {
            family: c.family,
            model_type: c.model_type.clone(),
            total,
            active,
            kv_numbers_per_token: (kv_full, kv_sliding, kv_chunked),
            sliding_window: c.sliding_window,
            attention_chunk_size: c.attention_chunk_size,
            matmul_flops_per_token,
            attention_flops_per_position: (att_full, att_sliding, att_chunked),
            attention_kind,
            norm_placement,
            positions,
            experts,
        })
    }

    pub fn total_params(&self) -> u64 {
        self.total.total()
    }

    pub fn active_params(&self) -> u64 {
        self.active.total()
    }

    /// Parameters outside the embedding and the output head.
    pub fn non_embedding_params(&self) -> u64 {
        self.total.total() - self.total.embedding - self.total.head
    }

    /// Bytes every layer's cache grows by per token, at `dtype`.
    pub fn kv_cache_bytes_per_token(&self, dtype: DType) -> u64 {
        let (f, s, c) = self.kv_numbers_per_token;
        (f + s + c) * dtype.size_in_bytes() as u64
    }

    /// Cache bytes at `context` tokens: full layers hold every position, sliding layers at most
    /// the window, chunked layers at most one chunk.
    pub fn kv_cache_bytes(&self, context: usize, dtype: DType) -> u64 {
        let (f, s, c) = self.kv_numbers_per_token;
        let ctx = context as u64;
        let window = self.sliding_window.map_or(ctx, |w| ctx.min(w as u64));
        let chunk = self.attention_chunk_size.map_or(ctx, |k| ctx.min(k as u64));
        (f * ctx + s * window + c * chunk) * dtype.size_in_bytes() as u64
    }

    /// FLOPs for one token at position `context` (attending to what its layers can see).
    pub fn flops_per_token(&self, context: usize) -> u64 {
        let (f, s, c) = self.attention_flops_per_position;
        let ctx = context as u64;
        let window = self.sliding_window.map_or(ctx, |w| ctx.min(w as u64));
        let chunk = self.attention_chunk_size.map_or(ctx, |k| ctx.min(k as u64));
        self.matmul_flops_per_token + f * ctx + s * window + c * chunk
    }

    pub fn to_json(&self, context: usize, dtype: DType) -> Value {
        let (f, s, c) = self.kv_numbers_per_token;
        let b = dtype.size_in_bytes() as u64;
        let parts = |p: &Parameters| {
            json!({
                "embedding": p.embedding, "attention": p.attention, "norms": p.norms, "dense_ffn": p.dense_ffn,
                "routers": p.routers, "shared_experts": p.shared_experts, "routed_experts": p.routed_experts, "head": p.head,
            })
        };
        json!({
            "model_type": self.model_type,
            "family": self.family.name(),
            "total_params": self.total_params(),
            "active_params": self.active_params(),
            "non_embedding_params": self.non_embedding_params(),
            "total_by_component": parts(&self.total),
            "active_by_component": parts(&self.active),
            "dtype": dtype.name(),
            "kv_cache_bytes_per_token": self.kv_cache_bytes_per_token(dtype),
            "kv_cache_bytes_per_token_by_layer_kind": {"full": f * b, "sliding": s * b, "chunked": c * b},
            "context": context,
            "kv_cache_bytes_at_context": self.kv_cache_bytes(context, dtype),
            "flops_per_token": self.flops_per_token(context),
            "attention": self.attention_kind,
            "norm_placement": self.norm_placement,
            "positions": self.positions,
            "experts": self.experts,
        })
    }
}

/// `1234567890` as `1.23B`.
pub fn human_count(n: u64) -> String {
    let n = n as f64;
    match n {
        x if x >= 1e12 => format!("{:.2}T", x / 1e12),
        x if x >= 1e9 => format!("{:.2}B", x / 1e9),
        x if x >= 1e6 => format!("{:.1}M", x / 1e6),
        x if x >= 1e3 => format!("{:.1}K", x / 1e3),
        x => format!("{x}"),
    }
}

/// Bytes as `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    let n = n as f64;
    match n {
        x if x >= (1u64 << 30) as f64 => format!("{:.2} GiB", x / (1u64 << 30) as f64),
        x if x >= (1u64 << 20) as f64 => format!("{:.1} MiB", x / (1u64 << 20) as f64),
        x if x >= 1024.0 => format!("{:.1} KiB", x / 1024.0),
        x => format!("{x} B"),
    }
}

impl std::fmt::Display for Anatomy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let bf16 = DType::BF16;
        writeln!(f, "{} ({})", self.family.name(), self.model_type)?;
        writeln!(
            f,
            "  parameters      {} total, {} active per token, {} non-embedding",
            human_count(self.total_params()),
            human_count(self.active_params()),
            human_count(self.non_embedding_params())
        )?;
        writeln!(f, "  attention       {}", self.attention_kind)?;
        writeln!(f, "  positions       {}", self.positions)?;
        writeln!(f, "  norms           {}", self.norm_placement)?;
        writeln!(f, "  feed-forward    {}", self.experts)?;
        let (full, sliding, chunked) = self.kv_numbers_per_token;
        write!(f, "  KV cache        {} per token (bf16)", human_bytes(self.kv_cache_bytes_per_token(bf16)))?;
        if sliding + chunked > 0 {
            write!(
                f,
                ": {} from full layers, {} from windowed, {} from chunked",
                human_bytes(full * 2),
                human_bytes(sliding * 2),
                human_bytes(chunked * 2)
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "                  {} at 32k context, {} at 128k",
            human_bytes(self.kv_cache_bytes(32_768, bf16)),
            human_bytes(self.kv_cache_bytes(131_072, bf16))
        )?;
        write!(f, "  compute         {} GFLOP per token at 4k context", self.flops_per_token(4096) / 1_000_000_000)
    }
}
