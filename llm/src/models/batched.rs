//! Several sequences in one forward pass, each with its own cache and position: the decoding
//! step of a server batching requests. The sequences' new tokens are laid end to end as one
//! `[1, N]` row of ids, so the embedding, every norm, the feed-forward blocks (dense or mixture
//! of experts) and the output head run once on all N rows, reading each weight once for the
//! whole batch; decode on a CPU or GPU is bound by reading the weights, so a batch of a few
//! sequences costs little more than one. The attention block's projections run on all rows
//! too; attention itself differs per sequence (its own keys and values, its own positions) and
//! runs per sequence ([`AttentionBlock::forward_segments`](super::blocks::AttentionBlock)).

use autograd::{Var, no_grad};
use nn::attention::KvCache;
use tensor::{DType, Device, Tensor};

use super::blocks::AttentionSegment;
use super::decoder::{CausalLm, DecoderLayer, Residual};
use crate::{Error, Result};

/// One sequence in a batched step: the new ids, the absolute position of the first, and one
/// cache per layer holding every earlier position.
pub struct Segment<'a> {
    pub ids: &'a [u32],
    pub start: usize,
    pub caches: &'a mut [KvCache],
}

impl DecoderLayer {
    /// [`DecoderLayer::forward`] on sequences laid end to end in `x [1, N, hidden]`.
    pub fn forward_segments(&self, x: &Var, segments: &mut [AttentionSegment<'_>]) -> tensor::Result<Var> {
        self.residual(Residual::new(x.clone()), |y| self.self_attn.forward_segments(y, segments))?.sum()
    }
}

impl CausalLm {
    /// Runs each segment's ids after its cache and returns, per segment, the f32 logits of its
    /// last position, read back to the host ([`CausalLm::forward_segments_logits`] keeps them on
    /// the device).
    pub fn forward_segments(&self, segments: &mut [Segment<'_>], device: &Device) -> Result<Vec<Vec<f32>>> {
        if segments.is_empty() {
            return Ok(Vec::new());
        }
        let logits = self.forward_segments_logits(segments, device)?;
        let vocab = self.vocab_size();
        Ok(logits.to_vec::<f32>()?.chunks(vocab).map(<[f32]>::to_vec).collect())
    }

    /// Runs each segment's ids after its cache and returns the f32 logits of each segment's last
    /// position (the only ones a decoding step needs; the head runs on those rows alone) as one
    /// `[segments, vocab]` tensor on `device`, not read back: on a GPU a server picks its tokens
    /// there and reads back ids, not 151,936 logits per sequence and step.
    pub fn forward_segments_logits(&self, segments: &mut [Segment<'_>], device: &Device) -> Result<Tensor> {
        let vocab = self.vocab_size();
        for s in segments.iter() {
            if s.ids.is_empty() {
                return Err(Error::input("a batched step was given a sequence with no new tokens"));
            }
            if let Some(&bad) = s.ids.iter().find(|&&id| id as usize >= vocab) {
                return Err(Error::input(format!("token id {bad} is outside the vocabulary of {vocab}")));
            }
            if s.caches.len() != self.layers.len() {
                return Err(Error::input(format!("{} caches for {} layers", s.caches.len(), self.layers.len())));
            }
        }
        if segments.is_empty() {
            return Ok(Tensor::zeros([0, vocab], DType::F32, device)?);
        }
        no_grad(|| {
            let all: Vec<u32> = segments.iter().flat_map(|s| s.ids.iter().copied()).collect();
            let n = all.len();
            let ids = Tensor::from_vec(all, [1, n], device)?;
            let mut x = self.embed_tokens.forward(&ids)?;
            if let Some(scale) = self.embed_scale {
                // As in `forward`: the scale rounded to the embedding dtype first.
                let scale = Tensor::full(scale, (), self.embed_tokens.weight.dtype(), &Device::cpu())?
                    .to_dtype(DType::F64)?
                    .to_scalar::<f64>()?;
                x = x.mul_scalar(scale)?;
            }
            // The stream with each layer's last add pending, as in `CausalLm::forward`.
            let mut stream = Residual::new(x);
            for (i, layer) in self.layers.iter().enumerate() {
                let mut parts: Vec<AttentionSegment<'_>> = segments
                    .iter_mut()
                    .map(|s| AttentionSegment { start: s.start, len: s.ids.len(), cache: &mut s.caches[i] })
                    .collect();
                stream = layer.residual(stream, |y| layer.self_attn.forward_segments(y, &mut parts))?;
            }
            // Last row of each segment, then the final norm and the head on those rows only.
            let rows = |t: &Var| -> Result<Var> {
                let mut lasts = Vec::with_capacity(segments.len());
                let mut offset = 0;
                for s in segments.iter() {
                    offset += s.ids.len();
                    lasts.push(t.narrow(1, offset - 1, 1)?);
                }
                Ok(Var::cat(&lasts.iter().collect::<Vec<_>>(), 1)?)
            };
            let lasts = Residual { x: rows(&stream.x)?, pending: stream.pending.as_ref().map(rows).transpose()? };
            let (_, x) = lasts.norm(&self.norm)?;
            let mut logits = match &self.lm_head {
                Some(head) => head.forward(&x)?,
                None => self.embed_tokens.project(&x)?,
            };
            if let Some(cap) = self.final_logit_softcap {
                logits = logits.mul_scalar(1.0 / cap)?.tanh()?.mul_scalar(cap)?;
            }
            Ok(logits.value().to_dtype(DType::F32)?.reshape([segments.len(), vocab])?)
        })
    }
}
