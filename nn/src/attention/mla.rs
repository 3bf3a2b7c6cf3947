//! Multi-head latent attention (DeepSeek-V2/V3, Kimi K2). Keys and values are compressed into
//! one latent vector per token (`kv_lora_rank`, 512) plus one small RoPE key shared by all heads
//! (`qk_rope_head_dim`, 64): the cache holds `kv_lora_rank + qk_rope_head_dim` numbers per token
//! and layer, instead of `heads * (qk_head_dim + v_head_dim)` for MHA with the same dimensions
//! (576 vs 128 x (192 + 128) = 40,960 for DeepSeek-V3).
//!
//! Shapes (DeepSeek-V3): queries go through a LoRA `x -> q_a_proj (7168 -> 1536) -> RMSNorm ->
//! q_b_proj (1536 -> 128 * 192)`; each head's 192 dims are 128 "nope" dims and 64 rope dims (the
//! rope part last). `kv_a_proj_with_mqa` gives the 512-dim latent and the 64-dim rope key;
//! `kv_b_proj` expands the normed latent to per-head 128-dim keys and 128-dim values.
//!
//! Two equal ways to compute it:
//! - the plain path expands keys and values per head (training, and the reference);
//! - the absorbed path (decoding with a cache) folds `kv_b_proj` into the query and output sides:
//!   `q_nope . (W_uk c) = (q_nope W_uk) . c`, so attention runs directly on the cached latent as
//!   one shared kv head (MQA) of 576 dims, and `W_uv` is applied after the weighted sum.

use autograd::Var;
use tensor::{AttentionSpec, Result, Tensor};

use super::kv_cache::{CachedRows, KvCache, RowsLike};
use super::masks::MaskKind;
use super::qk_clip::LogitRecorder;
use crate::rope::Rope;
use crate::{Init, Linear, Module, RmsNorm, join};

#[derive(Clone, Debug)]
pub struct MlaConfig {
    pub hidden_size: usize,
    pub num_heads: usize,
    /// `q_lora_rank`: `None` projects queries directly (`q_proj`), as DeepSeek-V2-Lite does.
    pub q_lora_rank: Option<usize>,
    pub kv_lora_rank: usize,
    pub qk_nope_head_dim: usize,
    pub qk_rope_head_dim: usize,
    pub v_head_dim: usize,
    pub rms_norm_eps: f64,
    /// Interleaved pairs: DeepSeek's checkpoints store rope dims as complex pairs.
    pub rope: Rope,
    pub mask: MaskKind,
    /// `qk_head_dim^-0.5`, times YaRN's `mscale^2` when the context is extended.
    pub scale: f64,
}

pub struct MultiHeadLatentAttention {
    pub config: MlaConfig,
    pub q_proj: Option<Linear>,
    pub q_a_proj: Option<Linear>,
    pub q_a_layernorm: Option<RmsNorm>,
    pub q_b_proj: Option<Linear>,
    pub kv_a_proj_with_mqa: Linear,
    pub kv_a_layernorm: RmsNorm,
    pub kv_b_proj: Linear,
    pub o_proj: Linear,
    /// The largest attention logit per head of the last forward, when recording (MuonClip).
    logits: LogitRecorder,
}

impl MultiHeadLatentAttention {
    pub fn new(config: MlaConfig, init: &mut Init) -> Result<MultiHeadLatentAttention> {
        let c = &config;
        let (d, h) = (c.hidden_size, c.num_heads);
        let qk = c.qk_nope_head_dim + c.qk_rope_head_dim;
        let (q_proj, q_a_proj, q_a_layernorm, q_b_proj) = match c.q_lora_rank {
            None => (Some(Linear::new(d, h * qk, false, init)?), None, None, None),
            Some(r) => (
                None,
                Some(Linear::new(d, r, false, init)?),
                Some(RmsNorm::new(r, c.rms_norm_eps, init)?),
                Some(Linear::new(r, h * qk, false, init)?),
            ),
        };
        Ok(MultiHeadLatentAttention {
            q_proj,
            q_a_proj,
            q_a_layernorm,
            q_b_proj,
            kv_a_proj_with_mqa: Linear::new(d, c.kv_lora_rank + c.qk_rope_head_dim, false, init)?,
            kv_a_layernorm: RmsNorm::new(c.kv_lora_rank, c.rms_norm_eps, init)?,
            kv_b_proj: Linear::new(c.kv_lora_rank, h * (c.qk_nope_head_dim + c.v_head_dim), false, init)?,
            o_proj: Linear::new(h * c.v_head_dim, d, false, init)?,
            config,
            logits: LogitRecorder::default(),
        })
    }

    /// The two products of `x [B, T, hidden]` itself: the queries' first (`q_proj`, or `q_a_proj`
    /// before its norm and `q_b_proj`) and `kv_a_proj_with_mqa` (the latent and the rope key).
    /// One op where no gradient flows (`Linear::forward_each`: a decoded token's are one GPU
    /// dispatch, read in place by the norms and RoPE after them).
    fn project(&self, x: &Var) -> Result<(Var, Var)> {
        let q_first = match (&self.q_proj, &self.q_a_proj, &self.q_a_layernorm, &self.q_b_proj) {
            (Some(p), ..) | (None, Some(p), Some(_), Some(_)) => p,
            _ => return Err(tensor::Error::shape("mla", "query projection is incomplete")),
        };
        let [q, ckv] = Linear::forward_each([q_first, &self.kv_a_proj_with_mqa], x)?;
        Ok((q, ckv))
    }

    /// Queries (B, H, T, nope) and rotated (B, H, T, rope) from the queries' first product `q`.
    fn queries(&self, q: &Var, start: usize) -> Result<(Var, Var)> {
        let c = &self.config;
        let (b, t) = (q.dims()[0], q.dims()[1]);
        let q = match (&self.q_proj, &self.q_a_layernorm, &self.q_b_proj) {
            (None, Some(n), Some(bp)) => bp.forward(&n.forward(q)?)?,
            _ => q.clone(),
        };
        let q = q.reshape([b, t, c.num_heads, c.qk_nope_head_dim + c.qk_rope_head_dim])?.transpose(1, 2)?;
        let parts = q.split(&[c.qk_nope_head_dim, c.qk_rope_head_dim], -1)?;
        Ok((parts[0].clone(), c.rope.apply(&parts[1], start)?))
    }

    /// The normed latent (B, T, kv_lora) and the rotated shared rope key (B, 1, T, rope) from
    /// `kv_a_proj_with_mqa`'s product `ckv`.
    fn latent(&self, ckv: &Var, start: usize) -> Result<(Var, Var)> {
        let c = &self.config;
        let parts = ckv.split(&[c.kv_lora_rank, c.qk_rope_head_dim], -1)?;
        let latent = self.kv_a_layernorm.forward(&parts[0])?;
        let k_rope = c.rope.apply(&parts[1].unsqueeze(1)?, start)?;
        Ok((latent, k_rope))
    }

    /// Appends the step's cache entries, `[normed latent | rotated rope key]` (B, 1, T, r + rope),
    /// and returns the cached rows. Where the cache takes rows written in place, the key is
    /// rotated straight into its part of each entry and the latent copied into the rest in the
    /// same pass (`Tensor::rope_into`: on a GPU one dispatch, where the rotation, the
    /// concatenation and the cache's copy were four).
    fn cache_latent(&self, ckv: &Var, start: usize, cache: &mut KvCache) -> Result<CachedRows> {
        let c = &self.config;
        let (r, rope) = (c.kv_lora_rank, c.qk_rope_head_dim);
        let parts = ckv.split(&[r, rope], -1)?;
        let latent = self.kv_a_layernorm.forward(&parts[0])?.unsqueeze(1)?.value(); // (B, 1, T, r)
        let key = parts[1].unsqueeze(1)?.value(); // (B, 1, T, rope), before the rotation
        let [b, _, t, _] = <[usize; 4]>::try_from(key.dims()).map_err(|_| tensor::Error::shape("mla", "key rows"))?;
        let like = RowsLike { dims: [b, 1, t, r + rope], dtype: latent.dtype(), device: latent.device().clone() };
        if latent.dtype() == key.dtype()
            && let Some(slots) = cache.slots(&[like])?
        {
            let entry = &slots[0];
            c.rope.apply_into(
                &key,
                None,
                start,
                &entry.narrow(3, r, rope)?,
                Some((&latent, &entry.narrow(3, 0, r)?)),
            )?;
            return cache.commit(t);
        }
        let k_rope = c.rope.apply(&Var::constant(key), start)?.value();
        cache.append(&[&Tensor::cat(&[&latent, &k_rope], 3)?])
    }

    /// `x [B, T, hidden]` at positions `start..` -> `[B, T, hidden]`. Without a cache: the plain
    /// path. With one: the absorbed path over the cached latents.
    pub fn forward(&self, x: &Var, start: usize, cache: Option<&mut KvCache>) -> Result<Var> {
        let out = match cache {
            None => self.forward_plain(x, start),
            Some(cache) => self.forward_absorbed(x, start, cache),
        };
        tensor::cpu::profile::mark("MLA attention");
        out
    }

    /// Expands per-head keys and values from the latent, then ordinary attention.
    pub fn forward_plain(&self, x: &Var, start: usize) -> Result<Var> {
        let c = &self.config;
        let (b, t, h) = (x.dims()[0], x.dims()[1], c.num_heads);
        let (q, ckv) = self.project(x)?;
        let (q_nope, q_rope) = self.queries(&q, start)?;
        let (latent, k_rope) = self.latent(&ckv, start)?;
        let kv =
            self.kv_b_proj.forward(&latent)?.reshape([b, t, h, c.qk_nope_head_dim + c.v_head_dim])?.transpose(1, 2)?;
        let parts = kv.split(&[c.qk_nope_head_dim, c.v_head_dim], -1)?;
        let k_rope = k_rope.broadcast_to([b, h, t, c.qk_rope_head_dim])?;
        let q = Var::cat(&[&q_nope, &q_rope], -1)?;
        let k = Var::cat(&[&parts[0], &k_rope], -1)?;
        let spec = AttentionSpec { scale: c.scale, mask: c.mask.at(start, start), softcap: None };
        self.logits.record(&q, &k, &spec)?;
        let out = Var::attention(&q, &k, &parts[1], &spec)?; // (B, H, T, v)
        self.o_proj.forward(&out.transpose(1, 2)?.reshape([b, t, h * c.v_head_dim])?)
    }

    /// Attention on the cached latent: queries absorb `W_uk`, outputs apply `W_uv` afterwards.
    pub fn forward_absorbed(&self, x: &Var, start: usize, cache: &mut KvCache) -> Result<Var> {
        let c = &self.config;
        let (b, t, h) = (x.dims()[0], x.dims()[1], c.num_heads);
        let (q, ckv) = self.project(x)?;
        let (q_nope, q_rope) = self.queries(&q, start)?;
        let rows = self.cache_latent(&ckv, start, cache)?;
        // kv_b_proj.weight [H*(nope+v), kv_lora] viewed per head: W_uk [H, nope, r], W_uv [H, v, r].
        let w = self.kv_b_proj.weight.reshape([h, c.qk_nope_head_dim + c.v_head_dim, c.kv_lora_rank])?;
        let w_parts = w.split(&[c.qk_nope_head_dim, c.v_head_dim], 1)?;
        let q_latent = q_nope.matmul(&w_parts[0].to_dtype(q_nope.dtype())?)?; // (B, H, T, r)
        let q = Var::cat(&[&q_latent, &q_rope], -1)?; // (B, H, T, r + rope)
        // One kv head shared by all query heads; the values are the latent part of the keys.
        let (k, v) = (&rows.tensors[0], &rows.tensors[0].narrow(3, 0, c.kv_lora_rank)?);
        let spec = AttentionSpec { scale: c.scale, mask: c.mask.at(start, rows.k_start), softcap: None };
        let out_latent = rows.attention(&q, k, v, None, &spec)?; // (B, H, T, r)
        let out = out_latent.matmul(&w_parts[1].to_dtype(out_latent.dtype())?.t()?)?; // (B, H, T, v)
        self.o_proj.forward(&out.transpose(1, 2)?.reshape([b, t, h * c.v_head_dim])?)
    }

    pub fn max_logits(&self) -> Option<Vec<f64>> {
        self.logits.last()
    }

    /// Cache numbers per token: the latent and the shared rope key.
    pub fn kv_bytes_per_token(&self, dtype_bytes: usize) -> usize {
        (self.config.kv_lora_rank + self.config.qk_rope_head_dim) * dtype_bytes
    }
}

impl Module for MultiHeadLatentAttention {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var)) {
        self.q_proj.visit(&join(prefix, "q_proj"), f);
        self.q_a_proj.visit(&join(prefix, "q_a_proj"), f);
        self.q_a_layernorm.visit(&join(prefix, "q_a_layernorm"), f);
        self.q_b_proj.visit(&join(prefix, "q_b_proj"), f);
        self.kv_a_proj_with_mqa.visit(&join(prefix, "kv_a_proj_with_mqa"), f);
        self.kv_a_layernorm.visit(&join(prefix, "kv_a_layernorm"), f);
        self.kv_b_proj.visit(&join(prefix, "kv_b_proj"), f);
        self.o_proj.visit(&join(prefix, "o_proj"), f);
    }

    /// All projections but `kv_b_proj`, whose weight is split per head and multiplied directly.
    fn visit_packed(&self, prefix: &str, f: &mut dyn FnMut(&str, &crate::PackedSlot)) {
        self.q_proj.visit_packed(&join(prefix, "q_proj"), f);
        self.q_a_proj.visit_packed(&join(prefix, "q_a_proj"), f);
        self.q_b_proj.visit_packed(&join(prefix, "q_b_proj"), f);
        self.kv_a_proj_with_mqa.visit_packed(&join(prefix, "kv_a_proj_with_mqa"), f);
        self.o_proj.visit_packed(&join(prefix, "o_proj"), f);
    }

    fn record_attention_logits(&self, on: bool) {
        self.logits.set_on(on);
    }

    /// QK-Clip for MLA (Kimi K2, Algorithm 1): for a head over `tau`, with `gamma = tau / max`,
    /// its non-rotary query rows (in `q_b_proj` or `q_proj`) and non-rotary key rows (in
    /// `kv_b_proj`) are scaled by `sqrt(gamma)`, its rotary query rows by `gamma`; the shared
    /// rotary key is left alone because every head uses it.
    fn clip_qk(&self, tau: f64) -> Result<()> {
        let over = self.logits.take_over(tau);
        let c = &self.config;
        let q_weight = match (&self.q_proj, &self.q_b_proj) {
            (Some(p), _) | (None, Some(p)) => &p.weight,
            _ => return Ok(()),
        };
        let (nope, rope, v) = (c.qk_nope_head_dim, c.qk_rope_head_dim, c.v_head_dim);
        for (head, gamma) in over {
            let q0 = head * (nope + rope);
            super::qk_clip::scale_rows(q_weight, q0, nope, gamma.sqrt())?;
            super::qk_clip::scale_rows(q_weight, q0 + nope, rope, gamma)?;
            super::qk_clip::scale_rows(&self.kv_b_proj.weight, head * (nope + v), nope, gamma.sqrt())?;
        }
        Ok(())
    }
}
