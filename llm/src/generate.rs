//! Autoregressive generation with the KV cache: the prompt is processed in one forward pass
//! (prefill), then one token at a time (decode), each step reusing every earlier key and value.

use autograd::no_grad;
use tensor::{DType, Device, Tensor};

use crate::models::CausalLm;
use crate::sample::{Sampler, Sampling};
use crate::{Error, Result};

/// When to stop besides the token budget.
#[derive(Clone, Debug, Default)]
pub struct StopAt {
    /// End-of-sequence ids (`eos_token_id`, one or several).
    pub eos: Vec<u32>,
}

/// Generates up to `max_new` tokens after `prompt` (batch 1), calling `on_token` with each new
/// token as soon as it is chosen. Returns prompt and new tokens together.
pub fn generate(
    model: &CausalLm,
    prompt: &[u32],
    max_new: usize,
    sampling: Sampling,
    stop: &StopAt,
    device: &Device,
    mut on_token: impl FnMut(u32) -> Result<()>,
) -> Result<Vec<u32>> {
    sampling.validate()?;
    if prompt.is_empty() {
        return Err(Error::input("the prompt is empty: give at least one token"));
    }
    let vocab = model.vocab_size();
    if let Some(&bad) = prompt.iter().find(|&&id| id as usize >= vocab) {
        return Err(Error::input(format!("token id {bad} is outside the vocabulary of {vocab}")));
    }
    no_grad(|| {
        let mut caches = model.new_caches();
        let mut sampler = Sampler::new(sampling);
        let mut tokens = prompt.to_vec();
        let mut input = prompt.to_vec();
        let mut position = 0;
        for _ in 0..max_new {
            let ids = Tensor::from_vec(input.clone(), [1, input.len()], device)?;
            let out = model.forward(&ids, position, Some(&mut caches), false)?;
            position += input.len();
            // Only the last position's logits are needed: read back one row of the vocabulary.
            let last = out.logits.value().narrow(1, input.len() - 1, 1)?.to_dtype(DType::F32)?.to_vec::<f32>()?;
            // NaN logits would make every draw meaningless (and sampling silently picks the last
            // candidate); -inf is left alone, it only rules a token out.
            if let Some(bad) = last.iter().find(|x| x.is_nan() || **x == f32::INFINITY) {
                return Err(Error::numeric(format!(
                    "the logits after {} tokens hold {bad}: a weight or an activation is not finite; run with --check-finite (or LLM_CHECK_FINITE=1) to find the first layer that produced it",
                    tokens.len()
                )));
            }
            let next = sampler.pick(&last);
            tokens.push(next);
            on_token(next)?;
            if stop.eos.contains(&next) {
                break;
            }
            input = vec![next];
        }
        Ok(tokens)
    })
}

/// Greedy decoding without a cache: every step reruns the whole sequence. Slow; the reference
/// that the cached path is tested against.
pub fn generate_uncached_greedy(model: &CausalLm, prompt: &[u32], max_new: usize, device: &Device) -> Result<Vec<u32>> {
    no_grad(|| {
        let mut tokens = prompt.to_vec();
        for _ in 0..max_new {
            let ids = Tensor::from_vec(tokens.clone(), [1, tokens.len()], device)?;
            let out = model.forward(&ids, 0, None, false)?;
            let last = out.logits.value().narrow(1, tokens.len() - 1, 1)?.to_dtype(DType::F32)?.to_vec::<f32>()?;
            tokens.push(crate::sample::argmax(&last));
        }
        Ok(tokens)
    })
}
