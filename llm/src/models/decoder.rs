//! The one decoder every architecture here shares: token embedding, a stack of layers
//! (attention and feed-forward, each inside a residual connection with its norms), a final
//! norm, and the output head. Architectures differ only in which blocks and norm placement each
//! layer gets (their recipes in the sibling files).

use std::sync::Arc;

use autograd::Var;
use nn::attention::{BlockPool, KvCache};
use nn::{Embedding, Linear, Module, RmsNorm, join};
use tensor::{DType, Result, Tensor};

use super::blocks::{AttentionBlock, FeedForwardBlock};

/// Where a layer's norms sit around its two residual branches. (One per layer, so the variants'
/// different sizes, two norms against four, cost nothing worth a box.)
#[allow(clippy::large_enum_variant)]
pub enum LayerNorms {
    /// `h = x + attn(norm1(x)); out = h + ffn(norm2(h))` (Llama, Qwen, Mistral, SmolLM3, DeepSeek,
    /// Llama 4). HF calls the second norm `post_attention_layernorm` although it precedes the FFN.
    PreNorm { input_layernorm: RmsNorm, post_attention_layernorm: RmsNorm },
    /// `h = x + norm1(attn(x)); out = h + norm2(ffn(h))`: OLMo 2's norms inside the residual, after
    /// each block, with no norm on the block's input.
    PostNorm { post_attention_layernorm: RmsNorm, post_feedforward_layernorm: RmsNorm },
    /// `h = x + norm2(attn(norm1(x))); out = h + norm4(ffn(norm3(h)))`: Gemma 3's sandwich.
    Sandwich {
        input_layernorm: RmsNorm,
        post_attention_layernorm: RmsNorm,
        pre_feedforward_layernorm: RmsNorm,
        post_feedforward_layernorm: RmsNorm,
    },
}

impl LayerNorms {
    pub fn name(&self) -> &'static str {
        match self {
            LayerNorms::PreNorm { .. } => "pre-norm",
            LayerNorms::PostNorm { .. } => "post-norm (inside the residual)",
            LayerNorms::Sandwich { .. } => "sandwich (pre + post)",
        }
    }

    /// The norms with their HF names, in the order the layer applies them (how a checkpoint
    /// names them; `residual` wires them by role instead).
    pub fn named(&self) -> Vec<(&'static str, &RmsNorm)> {
        match self {
            LayerNorms::PreNorm { input_layernorm, post_attention_layernorm } => {
                vec![("input_layernorm", input_layernorm), ("post_attention_layernorm", post_attention_layernorm)]
            }
            LayerNorms::PostNorm { post_attention_layernorm, post_feedforward_layernorm } => vec![
                ("post_attention_layernorm", post_attention_layernorm),
                ("post_feedforward_layernorm", post_feedforward_layernorm),
            ],
            LayerNorms::Sandwich {
                input_layernorm,
                post_attention_layernorm,
                pre_feedforward_layernorm,
                post_feedforward_layernorm,
            } => vec![
                ("input_layernorm", input_layernorm),
                ("post_attention_layernorm", post_attention_layernorm),
                ("pre_feedforward_layernorm", pre_feedforward_layernorm),
                ("post_feedforward_layernorm", post_feedforward_layernorm),
            ],
        }
    }
}

pub struct DecoderLayer {
    pub self_attn: Box<dyn AttentionBlock>,
    pub ffn: Box<dyn FeedForwardBlock>,
    /// HF's name for the feed-forward block: `mlp`, or `feed_forward` in Llama 4.
    pub ffn_name: &'static str,
    pub norms: LayerNorms,
}

/// The residual stream between layers: `x` plus the last branch's output, kept apart until the
/// next norm adds them as it normalises (`RmsNorm::add_forward`: on a GPU one kernel for the add
/// and the norm, where no gradient flows). A pre-norm or sandwich layer ends with `h + ffn(..)`
/// and the next begins with its input norm; so does the last layer with the final norm. That
/// saves one dispatch per layer of a decoding step; the values are the same, the add is the same
/// f32 add either way.
pub struct Residual {
    pub x: Var,
    /// The branch output not yet added to `x`.
    pub pending: Option<Var>,
}

impl Residual {
    pub fn new(x: Var) -> Residual {
        Residual { x, pending: None }
    }

    /// The stream as one tensor.
    pub fn sum(self) -> Result<Var> {
        match self.pending {
            Some(p) => self.x.add(&p),
            None => Ok(self.x),
        }
    }

    /// `(stream, norm(stream))`, adding the pending branch inside the norm's op.
    pub fn norm(self, norm: &RmsNorm) -> Result<(Var, Var)> {
        match self.pending {
            Some(p) => norm.add_forward(&self.x, &p),
            None => {
                let n = norm.forward(&self.x)?;
                Ok((self.x, n))
            }
        }
    }

    /// Positions `start..start + len` of the stream (axis 1), the pending branch's too.
    pub fn narrow(self, start: usize, len: usize) -> Result<Residual> {
        Ok(Residual {
            x: self.x.narrow(1, start, len)?,
            pending: self.pending.map(|p| p.narrow(1, start, len)).transpose()?,
        })
    }
}

impl DecoderLayer {
    pub fn forward(&self, x: &Var, start: usize, cache: Option<&mut KvCache>) -> Result<Var> {
        self.residual(Residual::new(x.clone()), |y| self.self_attn.forward(y, start, cache))?.sum()
    }

    /// The layer's two residual branches around its norms, with `attn` as the attention step
    /// (one sequence with its cache, or several laid end to end: `forward_segments`). Takes and
    /// gives the stream with its last add pending (see [`Residual`]).
    pub(crate) fn residual(&self, x: Residual, attn: impl FnOnce(&Var) -> Result<Var>) -> Result<Residual> {
        let (x, pending) = match &self.norms {
            LayerNorms::PreNorm { input_layernorm, post_attention_layernorm } => {
                let (x, normed) = x.norm(input_layernorm)?;
                tensor::cpu::profile::mark("norm (with the last add)");
                let a = attn(&normed)?;
                let (h, normed) = post_attention_layernorm.add_forward(&x, &a)?;
                tensor::cpu::profile::mark("add + norm");
                (h, self.ffn.forward(&normed)?)
            }
            LayerNorms::PostNorm { post_attention_layernorm, post_feedforward_layernorm } => {
                let x = x.sum()?;
                tensor::cpu::profile::mark("add");
                let a = attn(&x)?;
                let h = x.add(&post_attention_layernorm.forward(&a)?)?;
                tensor::cpu::profile::mark("norm + add");
                let f = post_feedforward_layernorm.forward(&self.ffn.forward(&h)?)?;
                tensor::cpu::profile::mark("norm");
                (h, f)
            }
            LayerNorms::Sandwich {
                input_layernorm,
                post_attention_layernorm,
                pre_feedforward_layernorm,
                post_feedforward_layernorm,
            } => {
                let (x, normed) = x.norm(input_layernorm)?;
                tensor::cpu::profile::mark("norm (with the last add)");
                let a = attn(&normed)?;
                let (h, normed) = pre_feedforward_layernorm.add_forward(&x, &post_attention_layernorm.forward(&a)?)?;
                tensor::cpu::profile::mark("norm + add + norm");
                let f = self.ffn.forward(&normed)?;
                let f = post_feedforward_layernorm.forward(&f)?;
                tensor::cpu::profile::mark("norm");
                (h, f)
            }
        };
        Ok(Residual { x, pending: Some(pending) })
    }
}

impl Module for DecoderLayer {
    fn visit_packed(&self, prefix: &str, f: &mut dyn FnMut(&str, &nn::PackedSlot)) {
        self.self_attn.visit_packed(&join(prefix, "self_attn"), f);
        self.ffn.visit_packed(&join(prefix, self.ffn_name), f);
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var)) {
        self.self_attn.visit(&join(prefix, "self_attn"), f);
        self.ffn.visit(&join(prefix, self.ffn_name), f);
        for (name, norm) in self.norms.named() {
            norm.visit(&join(prefix, name), f);
        }
    }
    fn set_training(&self, training: bool) {
        self.self_attn.set_training(training);
        self.ffn.set_training(training);
    }
    fn record_attention_logits(&self, on: bool) {
        self.self_attn.record_attention_logits(on);
    }
    fn clip_qk(&self, tau: f64) -> Result<()> {
        self.self_attn.clip_qk(tau)
    }
}

/// A decoder-only language model: ids in, next-token logits out.
pub struct CausalLm {
    pub embed_tokens: Embedding,
    /// Gemma multiplies embeddings by sqrt(hidden_size) (rounded to the embedding dtype).
    pub embed_scale: Option<f64>,
    pub layers: Vec<DecoderLayer>,
    pub norm: RmsNorm,
    /// `None` when the output head is the embedding matrix (`tie_word_embeddings`).
    pub lm_head: Option<Linear>,
    /// Gemma 2's `final_logit_softcapping` (None for every model here, kept for completeness).
    pub final_logit_softcap: Option<f64>,
    /// The dtype the caches of [`CausalLm::new_caches`] keep keys and values in (`--kv-dtype`;
    /// `None`: the activations', f32). f16 or bf16 halve the cache and what attention reads.
    pub kv_dtype: Option<tensor::DType>,
}

/// What a forward pass can hand back besides the logits.
pub struct ForwardOutput {
    /// [B, T, vocab]
    pub logits: Var,
    /// With `keep_hidden`: the embedding output, each layer's output, and the final norm's
    /// output (HF's `hidden_states` with the last entry normed), each [B, T, hidden].
    pub hidden_states: Vec<Tensor>,
}

impl CausalLm {
    /// Runs ids [B, T] at positions `start..`. With caches (one per layer), keys and values are
    /// appended to them and reused: the decoding path.
    pub fn forward(
        &self,
        ids: &Tensor,
        start: usize,
        caches: Option<&mut [KvCache]>,
        keep_hidden: bool,
    ) -> Result<ForwardOutput> {
        let mut hidden_states = Vec::new();
        let x = self.trunk(ids, start, caches, keep_hidden.then_some(&mut hidden_states))?;
        let (_, x) = x.norm(&self.norm)?;
        if keep_hidden {
            hidden_states.push(x.value());
        }
        Ok(ForwardOutput { logits: self.head(&x)?, hidden_states })
    }

    /// Like [`CausalLm::forward`], but the logits of the last position only, [B, 1, vocab]:
    /// what generation samples from. The final norm and the output head (the largest single
    /// matrix of a small model: 151,936 x 1024 in Qwen3-0.6B) then run on one row instead of T.
    pub fn forward_last(&self, ids: &Tensor, start: usize, caches: Option<&mut [KvCache]>) -> Result<Var> {
        let x = self.trunk(ids, start, caches, None)?;
        let t = x.x.dims()[1];
        let x = if t > 1 { x.narrow(t - 1, 1)? } else { x };
        let normed = x.norm(&self.norm)?.1;
        tensor::cpu::profile::mark("final norm");
        let logits = self.head(&normed)?;
        tensor::cpu::profile::mark("head");
        Ok(logits)
    }

    /// Embedding and decoder layers: the hidden states [B, T, hidden] before the final norm, with
    /// the last layer's add pending. With `hidden_states`, the embedding output and every layer's
    /// output but the last are pushed to it.
    fn trunk(
        &self,
        ids: &Tensor,
        start: usize,
        caches: Option<&mut [KvCache]>,
        mut hidden_states: Option<&mut Vec<Tensor>>,
    ) -> Result<Residual> {
        let mut x = self.embed_tokens.forward(ids)?;
        tensor::cpu::profile::mark("embedding");
        if let Some(scale) = self.embed_scale {
            // HF casts the scale to the embedding dtype first: sqrt(640) becomes 25.25 in bf16.
            let scale = Tensor::full(scale, (), self.embed_tokens.weight.dtype(), &tensor::Device::cpu())?
                .to_dtype(DType::F64)?
                .to_scalar::<f64>()?;
            x = x.mul_scalar(scale)?;
        }
        crate::finite::check_activation(&x.value(), || "the token embedding".to_string())?;
        if let Some(h) = hidden_states.as_deref_mut() {
            h.push(x.value());
        }
        let mut caches = caches;
        if let Some(c) = caches.as_deref()
            && c.len() != self.layers.len()
        {
            return Err(tensor::Error::shape(
                "forward",
                format!("{} caches for {} layers", c.len(), self.layers.len()),
            ));
        }
        // Each layer's output is summed only where it is looked at (the finite check, the hidden
        // states); else its last add waits for the next layer's first norm.
        let look = crate::finite::check_finite() || hidden_states.is_some();
        let mut stream = Residual::new(x);
        for (i, layer) in self.layers.iter().enumerate() {
            let cache = caches.as_deref_mut().map(|c| &mut c[i]);
            stream = layer.residual(stream, |y| layer.self_attn.forward(y, start, cache))?;
            if look {
                let x = stream.sum()?;
                crate::finite::check_activation(&x.value(), || format!("decoder layer {i} (model.layers.{i})"))?;
                if let Some(h) = hidden_states.as_deref_mut()
                    && i + 1 < self.layers.len()
                {
                    h.push(x.value());
                }
                stream = Residual::new(x);
            }
        }
        Ok(stream)
    }

    /// The output head (and soft-capping) over normed hidden states.
    fn head(&self, x: &Var) -> Result<Var> {
        let mut logits = match &self.lm_head {
            Some(head) => head.forward(x)?,
            None => self.embed_tokens.project(x)?,
        };
        if let Some(cap) = self.final_logit_softcap {
            logits = logits.mul_scalar(1.0 / cap)?.tanh()?.mul_scalar(cap)?;
        }
        crate::finite::check_activation(&logits.value(), || "the output head".to_string())?;
        Ok(logits)
    }

    /// One empty cache per layer, each keeping what its layer's mask can still see.
    pub fn new_caches(&self) -> Vec<KvCache> {
        self.layers.iter().map(|l| KvCache::new(l.self_attn.mask()).stored_as(self.kv_dtype)).collect()
    }

    /// One empty cache per layer whose rows live in blocks of `pool` (the server's), each giving
    /// back the blocks its layer's mask no longer sees.
    pub fn new_paged_caches(&self, pool: &Arc<BlockPool>) -> Vec<KvCache> {
        self.layers.iter().map(|l| KvCache::paged(l.self_attn.mask(), pool.clone()).stored_as(self.kv_dtype)).collect()
    }

    /// The largest attention logit of the last forward pass over every head of every layer, when
    /// the layers record them ([`Module::record_attention_logits`]): the quantity that grows
    /// before a loss spike (Wortsman et al. 2023) and that MuonClip's QK-Clip bounds.
    pub fn max_attention_logit(&self) -> Option<f64> {
        self.layers.iter().filter_map(|l| l.self_attn.max_logits()).flatten().reduce(f64::max)
    }

    pub fn vocab_size(&self) -> usize {
        self.embed_tokens.weight.dims()[0]
    }

    pub fn hidden_size(&self) -> usize {
        self.embed_tokens.weight.dims()[1]
    }
}

impl Module for CausalLm {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &Var)) {
        self.embed_tokens.visit(&join(prefix, "model.embed_tokens"), f);
        self.layers.visit(&join(prefix, "model.layers"), f);
        self.norm.visit(&join(prefix, "model.norm"), f);
        self.lm_head.visit(&join(prefix, "lm_head"), f);
    }
    fn visit_packed(&self, prefix: &str, f: &mut dyn FnMut(&str, &nn::PackedSlot)) {
        self.embed_tokens.visit_packed(&join(prefix, "model.embed_tokens"), f);
        self.layers.visit_packed(&join(prefix, "model.layers"), f);
        self.lm_head.visit_packed(&join(prefix, "lm_head"), f);
    }
    fn set_training(&self, training: bool) {
        self.layers.set_training(training);
    }
    fn record_attention_logits(&self, on: bool) {
        self.layers.record_attention_logits(on);
    }
    fn clip_qk(&self, tau: f64) -> Result<()> {
        self.layers.clip_qk(tau)
    }
}
