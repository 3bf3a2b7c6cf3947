//! What the decoder needs of an attention block and of a feed-forward block, so one decoder
//! loop serves standard attention and MLA, dense FFNs and mixtures of experts.

use autograd::Var;
use nn::Module;
pub use nn::attention::AttentionSegment;
use nn::attention::{GroupedQueryAttention, KvCache, MaskKind, MultiHeadLatentAttention};
use tensor::Result;

/// A self-attention block: `x [B, T, hidden]` at positions `start..` -> `[B, T, hidden]`.
pub trait AttentionBlock: Module + Send + Sync {
    fn forward(&self, x: &Var, start: usize, cache: Option<&mut KvCache>) -> Result<Var>;
    /// Several sequences laid end to end in `x [1, N, hidden]`, each attending to its own cache
    /// (a server's batched step); equal to `forward` on each sequence alone.
    fn forward_segments(&self, x: &Var, segments: &mut [AttentionSegment<'_>]) -> Result<Var>;
    /// The mask this layer applies (so its cache keeps only what the mask can still see).
    fn mask(&self) -> MaskKind;
    /// Cache bytes this layer adds per token at `dtype_bytes` per number.
    fn kv_bytes_per_token(&self, dtype_bytes: usize) -> usize;
    /// A short description for printing a model's anatomy.
    fn describe(&self) -> String;
    /// The largest scaled logit `q . k / sqrt(d)` of each query head in the last forward pass,
    /// when the block was asked to record them (`Module::record_attention_logits`).
    fn max_logits(&self) -> Option<Vec<f64>>;
}

impl AttentionBlock for GroupedQueryAttention {
    fn forward(&self, x: &Var, start: usize, cache: Option<&mut KvCache>) -> Result<Var> {
        GroupedQueryAttention::forward(self, x, start, cache)
    }
    fn forward_segments(&self, x: &Var, segments: &mut [AttentionSegment<'_>]) -> Result<Var> {
        GroupedQueryAttention::forward_segments(self, x, segments)
    }
    fn mask(&self) -> MaskKind {
        self.config.mask
    }
    fn kv_bytes_per_token(&self, dtype_bytes: usize) -> usize {
        GroupedQueryAttention::kv_bytes_per_token(self, dtype_bytes)
    }
    fn describe(&self) -> String {
        let c = &self.config;
        let kind = match (c.num_heads, c.num_kv_heads) {
            (h, kv) if h == kv => "MHA".to_string(),
            (_, 1) => "MQA".to_string(),
            (h, kv) => format!("GQA {h}:{kv}"),
        };
        let pos = if c.rope.is_some() { "RoPE" } else { "NoPE" };
        let sinks = if self.sinks.is_some() { " + sinks" } else { "" };
        format!("{kind}{sinks}, {pos}, {}", c.mask.name())
    }
    fn max_logits(&self) -> Option<Vec<f64>> {
        GroupedQueryAttention::max_logits(self)
    }
}

impl AttentionBlock for MultiHeadLatentAttention {
    fn forward(&self, x: &Var, start: usize, cache: Option<&mut KvCache>) -> Result<Var> {
        MultiHeadLatentAttention::forward(self, x, start, cache)
    }
    /// MLA's projections are not shared across sequences yet: each runs on its own rows.
    fn forward_segments(&self, x: &Var, segments: &mut [AttentionSegment<'_>]) -> Result<Var> {
        attention_segments(self, x, segments)
    }
    fn mask(&self) -> MaskKind {
        self.config.mask
    }
    fn kv_bytes_per_token(&self, dtype_bytes: usize) -> usize {
        MultiHeadLatentAttention::kv_bytes_per_token(self, dtype_bytes)
    }
    fn describe(&self) -> String {
        format!(
            "MLA (latent {} + rope {}), {}",
            self.config.kv_lora_rank,
            self.config.qk_rope_head_dim,
            self.config.mask.name()
        )
    }
    fn max_logits(&self) -> Option<Vec<f64>> {
        MultiHeadLatentAttention::max_logits(self)
    }
}

/// A position-wise block: `x [.., hidden] -> [.., hidden]`.
pub trait FeedForwardBlock: Module + Send + Sync {
    fn forward(&self, x: &Var) -> Result<Var>;
    fn describe(&self) -> String;
}

impl FeedForwardBlock for nn::GatedFeedForward {
    fn forward(&self, x: &Var) -> Result<Var> {
        nn::GatedFeedForward::forward(self, x)
    }
    fn describe(&self) -> String {
        let act = match self.activation {
            tensor::GluActivation::Silu => "SwiGLU",
            tensor::GluActivation::GeluTanh => "GeGLU",
        };
        format!("dense {act} {}", self.gate_proj.out_features())
    }
}

impl FeedForwardBlock for nn::moe::SparseMoe {
    fn forward(&self, x: &Var) -> Result<Var> {
        nn::moe::SparseMoe::forward(self, x)
    }
    fn describe(&self) -> String {
        let shared = if self.shared.is_some() { " + shared expert" } else { "" };
        let clamped = if self.experts.clamp.is_some() { ", clamped SwiGLU" } else { "" };
        format!("MoE {} experts, top-{}{shared}{clamped}", self.router.num_experts, self.router.top_k)
    }
}

/// Attention over several sequences laid end to end along the time axis of `x [1, N, hidden]`:
/// each sequence attends only to its own cache. This runs the block once per sequence on its
/// rows, for blocks that share no work across sequences (see [`AttentionBlock::forward_segments`]).
pub fn attention_segments(block: &dyn AttentionBlock, x: &Var, segments: &mut [AttentionSegment<'_>]) -> Result<Var> {
    let mut outs = Vec::with_capacity(segments.len());
    let mut offset = 0;
    for s in segments.iter_mut() {
        let rows = x.narrow(1, offset, s.len)?;
        outs.push(block.forward(&rows, s.start, Some(&mut *s.cache))?);
        offset += s.len;
    }
    Var::cat(&outs.iter().collect::<Vec<_>>(), 1)
}
