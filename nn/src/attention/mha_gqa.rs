//! Multi-head attention with grouped key/value heads: MHA (kv_heads == heads), GQA (Ainslie et
//! al. 2023; Llama, Qwen, Mistral, SmolLM3, Gemma 3) and MQA (one kv head). Query head `h` reads
//! kv head `h / (heads / kv_heads)`; the fused attention kernel maps heads, so keys and values
//! are never copied per query head.
//!
//! The per-family knobs are fields of [`AttentionConfig`]: QK-norm per head (Qwen3, Gemma 3) or
//! over the whole projection (OLMo 2) before RoPE, or weightless after RoPE (Llama 4); RoPE or
//! NoPE; the mask; the softmax scale; Llama 4's temperature tuning on NoPE layers. gpt-oss adds
//! attention sinks ([`GroupedQueryAttention::with_sinks`]).

use autograd::Var;
use tensor::{AttentionSpec, Result, Tensor};

use super::kv_cache::{KvCache, RowsLike};
use super::masks::MaskKind;
use super::qk_clip::{self, LogitRecorder};
use super::segments::AttentionSegment;
use crate::rope::Rope;
use crate::{Init, Linear, Module, RmsNorm, join};

/// Where a layer normalises its queries and keys.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum QkNorm {
    None,
    /// RMSNorm(head_dim) on each head before RoPE (Qwen3; Gemma 3 with `gemma: true`).
    PerHead {
        eps: f64,
        gemma: bool,
    },
    /// RMSNorm over the whole q / k projection before splitting heads (OLMo 2).
    WholeProjection {
        eps: f64,
    },
    /// Weightless RMS normalisation of each head after RoPE (Llama 4's `Llama4TextL2Norm`). It
    /// runs before the rotation here, as a per-head norm does: a rotation keeps each pair's sum
    /// of squares, so the row's RMS, and the function, are the same (to rounding), and the fused
    /// norm + RoPE kernels serve it (on a GPU, the keys straight into the cache).
    L2AfterRope {
        eps: f64,
    },
}

/// Llama 4's attention temperature tuning (Nakanishi 2025, "Scalable-Softmax"): on NoPE layers
/// queries at position p are scaled by `1 + attn_scale * ln(1 + floor((p + 1) / floor_scale))`,
/// so attention stays sharp over very long contexts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TemperatureTuning {
    pub attn_scale: f64,
    pub floor_scale: f64,
}

impl TemperatureTuning {
    pub fn factor(&self, position: usize) -> f64 {
        1.0 + self.attn_scale * (((position as f64 + 1.0) / self.floor_scale).floor()).ln_1p()
    }
}

/// One layer's attention settings.
#[derive(Clone, Debug)]
pub struct AttentionConfig {
    pub hidden_size: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    /// `attention_bias`: biases on q, k, v (and o).
    pub bias: bool,
    pub qk_norm: QkNorm,
    /// `None` on NoPE layers.
    pub rope: Option<Rope>,
    pub mask: MaskKind,
    /// Softmax scale: `head_dim^-0.5`, or Gemma's `query_pre_attn_scalar^-0.5`.
    pub scale: f64,
    /// `attn_logit_softcapping`.
    pub softcap: Option<f64>,
    pub temperature_tuning: Option<TemperatureTuning>,
}

pub struct GroupedQueryAttention {
    pub config: AttentionConfig,
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub o_proj: Linear,
    pub q_norm: Option<RmsNorm>,
    pub k_norm: Option<RmsNorm>,
    /// gpt-oss's attention sinks `self_attn.sinks` [heads]: a learned logit per head in every
    /// row's softmax denominator, so a head can put weight on no token.
    pub sinks: Option<Var>,
    /// The largest attention logit per head of the last forward, when recording (MuonClip).
    logits: LogitRecorder,
}

impl GroupedQueryAttention {
    pub fn new(config: AttentionConfig, init: &mut Init) -> Result<GroupedQueryAttention> {
        let (h, kv, d, hd) = (config.num_heads, config.num_kv_heads, config.hidden_size, config.head_dim);
        let bias = config.bias;
        let (q_norm, k_norm) = match config.qk_norm {
            QkNorm::None => (None, None),
            QkNorm::PerHead { eps, gemma: false } => {
                (Some(RmsNorm::new(hd, eps, init)?), Some(RmsNorm::new(hd, eps, init)?))
            }
            QkNorm::PerHead { eps, gemma: true } => {
                (Some(RmsNorm::gemma(hd, eps, init)?), Some(RmsNorm::gemma(hd, eps, init)?))
            }
            QkNorm::WholeProjection { eps } => {
                (Some(RmsNorm::new(h * hd, eps, init)?), Some(RmsNorm::new(kv * hd, eps, init)?))
            }
            QkNorm::L2AfterRope { eps } => (Some(RmsNorm::weightless(eps)), Some(RmsNorm::weightless(eps))),
        };
        Ok(GroupedQueryAttention {
            q_proj: Linear::new(d, h * hd, bias, init)?,
            k_proj: Linear::new(d, kv * hd, bias, init)?,
            v_proj: Linear::new(d, kv * hd, bias, init)?,
            o_proj: Linear::new(h * hd, d, bias, init)?,
            q_norm,
            k_norm,
            sinks: None,
            config,
            logits: LogitRecorder::default(),
        })
    }

    /// Adds attention sinks, one learned logit per query head (gpt-oss).
    pub fn with_sinks(mut self, init: &mut Init) -> Result<GroupedQueryAttention> {
        self.sinks = Some(init.normal([self.config.num_heads])?);
        Ok(self)
    }

    /// `x [B, T, hidden]` at positions `start..start + T` -> `[B, T, hidden]`. With a cache, the
    /// step's keys and values are appended and the queries attend to everything the cache holds.
    pub fn forward(&self, x: &Var, start: usize, cache: Option<&mut KvCache>) -> Result<Var> {
        let (q, k, v) = self.project(x)?;
        tensor::cpu::profile::mark("q, k, v");
        let heads = self.attend(q, k, v, start, cache)?;
        let out = self.o_proj.forward(&heads)?;
        tensor::cpu::profile::mark("o");
        Ok(out)
    }

    /// Several sequences laid end to end along the time axis of `x [1, N, hidden]`, each with its
    /// own positions and cache (a server's batched step): the q, k, v and o projections run once
    /// over all N rows, reading each weight once for the whole batch; only the attention itself
    /// runs per sequence. Equal to [`forward`](Self::forward) on each sequence alone.
    pub fn forward_segments(&self, x: &Var, segments: &mut [AttentionSegment<'_>]) -> Result<Var> {
        let (q, k, v) = self.project(x)?;
        let mut outs = Vec::with_capacity(segments.len());
        let mut offset = 0;
        for s in segments.iter_mut() {
            let rows = |y: &Var| y.narrow(1, offset, s.len);
            outs.push(self.attend(rows(&q)?, rows(&k)?, rows(&v)?, s.start, Some(&mut *s.cache))?);
            offset += s.len;
        }
        self.o_proj.forward(&Var::cat(&outs.iter().collect::<Vec<_>>(), 1)?)
    }

    /// The position-wise part: q, k, v projections `[B, T, heads * head_dim]`, with OLMo 2's
    /// QK-norm over the whole projection (also per row). Without biases (all but gpt-oss) and
    /// gradients the three products are one op (`Linear::forward_each`: a decoded token's are one
    /// GPU dispatch, and q, k and v views of its output, which the norms, RoPE and the cache read
    /// in place).
    fn project(&self, x: &Var) -> Result<(Var, Var, Var)> {
        let [mut q, mut k, v] = Linear::forward_each([&self.q_proj, &self.k_proj, &self.v_proj], x)?;
        if let QkNorm::WholeProjection { .. } = self.config.qk_norm {
            q = self.norm_q(&q)?;
            k = self.norm_k(&k)?;
        }
        Ok((q, k, v))
    }

    /// The per-sequence part, from projections `[B, T, ..]` at positions `start..`: heads,
    /// per-head QK-norm, RoPE (or NoPE's temperature tuning), the cache, attention; gives the
    /// heads' outputs `[B, T, heads * head_dim]`, before `o_proj`.
    fn attend(&self, q: Var, k: Var, v: Var, start: usize, cache: Option<&mut KvCache>) -> Result<Var> {
        let c = &self.config;
        let (b, t) = (q.dims()[0], q.dims()[1]);
        let (h, kv, hd) = (c.num_heads, c.num_kv_heads, c.head_dim);
        // (B, T, H*hd) -> (B, H, T, hd)
        let heads = |y: Var, n: usize| y.reshape([b, t, n, hd])?.transpose(1, 2);
        let (mut q, mut k) = (heads(q, h)?, heads(k, kv)?);
        let v = heads(v, kv)?;
        // Llama 4's L2 norm after RoPE is the same function before it (see `QkNorm::L2AfterRope`).
        let per_head_norm = matches!(c.qk_norm, QkNorm::PerHead { .. } | QkNorm::L2AfterRope { .. });
        if per_head_norm && c.rope.is_none() {
            q = self.norm_q(&q)?;
            k = self.norm_k(&k)?;
        }
        let mut cache = cache;
        // Keys (and values) already in the cache, when the rotation wrote them there.
        let mut cached = None;
        if let Some(rope) = &c.rope {
            // A per-head QK-norm goes with the rotation: one fused op where no gradient flows.
            let rotate = |x: &Var, norm: Option<&RmsNorm>| match norm {
                Some(norm) if per_head_norm => rope.apply_after_norm(x, norm, start),
                _ => rope.apply(x, start),
            };
            q = rotate(&q, self.q_norm.as_ref())?;
            // With a cache the keys reach attention only through it (no gradient flows into
            // them there), so they may be rotated straight into the cache's rows: on a GPU one
            // dispatch for the norm, the rotation and the writes of the keys and the values.
            if let Some(cache) = cache.as_deref_mut()
                && let Some(slots) = cache.slots(&[RowsLike::of(&k.value())?, RowsLike::of(&v.value())?])?
            {
                let norm = self.k_norm.as_ref().filter(|_| per_head_norm);
                rope.apply_into(&k.value(), norm, start, &slots[0], Some((&v.value(), &slots[1])))?;
                cached = Some(cache.commit(t)?);
            }
            if cached.is_none() {
                k = rotate(&k, self.k_norm.as_ref())?;
            }
        } else if let Some(tuning) = c.temperature_tuning {
            let scales: Vec<f32> = (start..start + t).map(|p| tuning.factor(p) as f32).collect();
            let scales =
                Tensor::from_vec(scales, [1, 1, t, 1], &tensor::Device::cpu())?.to(&q.device())?.to_dtype(q.dtype())?;
            q = q.mul_tensor(&scales)?;
        }
        tensor::cpu::profile::mark("QK-norm, RoPE, cache writes");
        let spec = |k_start| AttentionSpec { scale: c.scale, mask: c.mask.at(start, k_start), softcap: c.softcap };
        let out = match cache {
            Some(cache) => {
                let rows = match cached {
                    Some(rows) => rows,
                    None => cache.append(&[&k.value(), &v.value()])?,
                };
                let spec = spec(rows.k_start);
                if rows.paged.is_none() {
                    self.logits.record(&q, &Var::untracked(rows.tensors[0].clone()), &spec)?;
                }
                rows.attention(&q, &rows.tensors[0], &rows.tensors[1], self.sinks.as_ref(), &spec)?
            }
            None => {
                let spec = spec(start);
                self.logits.record(&q, &k, &spec)?;
                Var::attention_with_sinks(&q, &k, &v, self.sinks.as_ref(), &spec)?
            }
        }; // (B, H, T, hd)
        let out = out.transpose(1, 2)?.reshape([b, t, h * hd]);
        tensor::cpu::profile::mark("attention");
        out
    }

    fn norm_q(&self, x: &Var) -> Result<Var> {
        match &self.q_norm {
            Some(n) => n.forward(x),
            None => Ok(x.clone()),
        }
    }

    fn norm_k(&self, x: &Var) -> Result<Var> {
        match &self.k_norm {
            Some(n) => n.forward(x),
            None => Ok(x.clone()),
        }
    }

    /// The largest scaled logit per query head of the last forward while recording.
    pub fn max_logits(&self) -> Option<Vec<f64>> {
        self.logits.last()
    }

    /// KV-cache bytes this layer adds per token at `dtype_bytes` per number.
    pub fn kv_bytes_per_token(&self, dtype_bytes: usize) -> usize {
        2 * self.config.num_kv_heads * self.config.head_dim * dtype_bytes
    }
}

impl Module for GroupedQueryAttention {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var)) {
        self.q_proj.visit(&join(prefix, "q_proj"), f);
        self.k_proj.visit(&join(prefix, "k_proj"), f);
        self.v_proj.visit(&join(prefix, "v_proj"), f);
        self.o_proj.visit(&join(prefix, "o_proj"), f);
        self.q_norm.visit(&join(prefix, "q_norm"), f);
        self.k_norm.visit(&join(prefix, "k_norm"), f);
        if let Some(s) = &self.sinks {
            f(&join(prefix, "sinks"), s);
        }
    }

    fn visit_packed(&self, prefix: &str, f: &mut dyn FnMut(&str, &crate::PackedSlot)) {
        self.q_proj.visit_packed(&join(prefix, "q_proj"), f);
        self.k_proj.visit_packed(&join(prefix, "k_proj"), f);
        self.v_proj.visit_packed(&join(prefix, "v_proj"), f);
        self.o_proj.visit_packed(&join(prefix, "o_proj"), f);
    }

    fn record_attention_logits(&self, on: bool) {
        self.logits.set_on(on);
    }

    /// QK-Clip (Kimi K2): heads whose max logit exceeded `tau` get their query and key rows scaled
    /// so the logit comes back to `tau`. With one kv head per query head (MHA) the factor
    /// `gamma = tau / max` is split as `sqrt(gamma)` on each side; a kv head shared by a group
    /// (GQA) is left alone and its query heads take the whole `gamma`, as MLA does with its shared
    /// rope key.
    fn clip_qk(&self, tau: f64) -> Result<()> {
        let c = &self.config;
        let shared = c.num_kv_heads != c.num_heads;
        for (head, gamma) in self.logits.take_over(tau) {
            let (q_scale, k_scale) = if shared { (gamma, 1.0) } else { (gamma.sqrt(), gamma.sqrt()) };
            qk_clip::scale_rows(&self.q_proj.weight, head * c.head_dim, c.head_dim, q_scale)?;
            if k_scale != 1.0 {
                qk_clip::scale_rows(&self.k_proj.weight, head * c.head_dim, c.head_dim, k_scale)?;
            }
        }
        Ok(())
    }
}
